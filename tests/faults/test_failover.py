"""Primary failover: a streaming standby is promoted after the primary stops.

The agent's DSN lists both servers with ``target_session_attrs=read-write``, so libpq skips
the standby until it is promoted; the agent must follow, keep scheduling, and never run a job
on a read-only server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest

from notifyagent.cluster import Cluster
from tests.agent import joblogs, make_job, run_now, sql_step, steplogs, wait_finished
from tests.faults.conftest import AgentStarter, Measure, PrivateServer, log_lines, log_times
from tests.pg import Database, wait_for
from tests.replica import PRIMARY_SETTINGS, Standby

pytestmark = pytest.mark.slow

DBNAME = "failover"
#: A step that records which server ran it, and whether that server was in recovery.
WHERE_AM_I = (
    "INSERT INTO public.tick(label) "
    "SELECT '{name}:' || current_setting('port') || ':' || pg_is_in_recovery()::text"
)


def _db(c: Cluster) -> Database:
    return Database(PrivateServer(c), DBNAME)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Cluster, Standby]]:
    primary = Cluster(settings=PRIMARY_SETTINGS)
    standby: Standby | None = None
    try:
        primary.start()
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DBNAME}")
        with psycopg.connect(primary.dsn(DBNAME), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgagent")
            conn.execute(
                "CREATE TABLE public.tick (id serial PRIMARY KEY, label text, "
                "ran_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )
        standby = Standby(primary)
        standby.start()
        yield primary, standby
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


def test_agent_follows_a_promoted_standby(
    pair: tuple[Cluster, Standby], agents: AgentStarter, measure: Measure
) -> None:
    """Primary stopped, standby promoted: the agent waits while only a read-only server is
    reachable, then registers on the new primary, runs the job that fell due meanwhile once,
    and keeps scheduling; every step ran on a read-write server."""
    primary, standby = pair
    both = (
        f"host={primary.host},{standby.host} port={primary.port},{standby.port} "
        f"user=postgres dbname={DBNAME} target_session_attrs=read-write"
    )
    agent = agents(both, "--liveness-interval", "1")
    old, new = _db(primary), _db(standby)
    old_pid = old.value("SELECT jagpid FROM pgagent.pga_jobagent")
    before = make_job(old, "before", [sql_step("s", WHERE_AM_I.format(name="before"))])
    pending = make_job(old, "pending", [sql_step("s", WHERE_AM_I.format(name="pending"))])
    run_now(old, before)
    wait_finished(old, before)
    # due while there is no primary at all
    old.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 s' WHERE jobid = %s",
        (pending,),
    )
    agent.wait_log(f"queue: job {pending} due at")

    primary.stop("fast")
    agent.wait_log("database unreachable")
    time.sleep(2)  # only the read-only standby is reachable: the agent must not use it
    assert new.value("SELECT pg_is_in_recovery()") is True
    assert joblogs(new, pending) == []
    standby.promote()
    promoted = datetime.now()
    wait_for(
        lambda: new.value(
            "SELECT count(*) FROM pgagent.pga_jobagent WHERE jagpid <> %s", (old_pid,)
        ),
        20,
        interval=0.02,
        what="the agent registered on the promoted standby",
    )
    wait_finished(new, pending, timeout=20)
    registered = log_times(agent, "reconnected to the database")[-1]
    ran = joblogs(new, pending)[0]["jlgstart"].astimezone().replace(tzinfo=None)
    measure("failover: agent registered after promote", (registered - promoted).total_seconds())
    measure("failover: job due meanwhile ran after promote", (ran - promoted).total_seconds())
    after = make_job(new, "after", [sql_step("s", WHERE_AM_I.format(name="after"))])
    run_now(new, after)
    wait_finished(new, after)

    labels = sorted(str(r["label"]) for r in new.rows("SELECT label FROM public.tick"))
    assert labels == sorted(
        [
            f"before:{primary.port}:false",
            f"pending:{standby.port}:false",
            f"after:{standby.port}:false",
        ]
    ), labels
    for j in (before, pending, after):
        assert [r["jlgstatus"] for r in joblogs(new, j)] == ["s"]
        assert [s["jslstatus"] for s in steplogs(new, j)] == ["s"]
    agents_left = new.rows("SELECT jagpid FROM pgagent.pga_jobagent")
    assert len(agents_left) == 1
    assert agents_left[0]["jagpid"] != old_pid
    assert len(log_lines(agent, "database unreachable")) == 1
    # libpq skipped the standby ("session is read-only") and nothing ran there
    assert not log_lines(agent, "read-only transaction")
