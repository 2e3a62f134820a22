"""Migrating from a running pgAgent: it is stopped in the middle of a job, notifyagent starts.

The real C++ pgAgent (``pgagent -f -t 1``, see tests/compat/pgagent.py) claims a job and runs a
long SQL step; the operator stops it (``systemctl stop`` sends SIGTERM; a crash or ``kill -9``
is SIGKILL). pgAgent handles neither: it dies at once and leaves its ``pga_jobagent`` row, its
claim on the job and a run and step 'r' behind. notifyagent started on the same database must
clean that up as a dead agent's, then run the job at its next due time, once.
"""

from __future__ import annotations

import signal
from datetime import datetime
from typing import Any

import pytest

from tests.agent import joblogs, make_job, sql_step, steplogs, wait_finished
from tests.compat import scenario
from tests.compat.pgagent import PgAgentProcess
from tests.faults.conftest import AgentStarter, Measure, log_times
from tests.pg import Database, wait_for

pytestmark = pytest.mark.slow

#: Sleeps 30 s unless public.tick holds 'short' when it starts; each finished run adds 'ran'.
STEP = (
    "SELECT pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM public.tick WHERE label = 'short') "
    "THEN 0 ELSE 30 END); INSERT INTO public.tick(label) VALUES ('ran')"
)
#: notifyagent's --liveness-interval (seconds): its liveness check cleans up dead agents.
LIVENESS = 1.0
#: docs/operations.md: a dead agent is cleaned up within one liveness interval plus a
#: statement (the first check runs as soon as the agent is up); the rest is headroom.
CLEANUP_BOUND = LIVENESS + 1.5


def _step_queries(db: Database) -> int:
    return int(
        db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'SELECT pg_sleep(CASE%'"
        )
    )


def _state(db: Database, jobid: int) -> dict[str, Any]:
    return db.rows(
        "SELECT jobagentid, jobnextrun, "
        "(SELECT array_agg(jagpid ORDER BY jagpid) FROM pgagent.pga_jobagent) AS agents "
        "FROM pgagent.pga_job WHERE jobid = %s",
        (jobid,),
    )[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_pgagent_stopped_mid_job_then_notifyagent_takes_over(
    db: Database, agents: AgentStarter, measure: Measure, sig: signal.Signals
) -> None:
    """pgAgent is stopped while its job runs: notifyagent marks the interrupted run and step
    'd', releases the claim and deletes pgAgent's agent row within one liveness interval of
    starting, does not run the job again at once, and runs it at its next due time, once."""
    # the server ends the orphaned step's query once it sees pgAgent's connection is gone
    db.execute(f"ALTER DATABASE \"{db.name}\" SET client_connection_check_interval = '1s'")
    jobid = make_job(db, "migrated", [sql_step("long", STEP)])
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s", (jobid,))
    station = scenario.station()  # what both agents call themselves by default

    pgagent = PgAgentProcess(db)
    try:
        pgagent.start(station)
        pgagent_id = int(db.value("SELECT jagpid FROM pgagent.pga_jobagent"))
        wait_for(
            lambda: [s["jslstatus"] for s in steplogs(db, jobid)] == ["r"] and _step_queries(db),
            20,
            what="pgAgent to run the step",
        )
        assert _state(db, jobid)["jobagentid"] == pgagent_id
        assert pgagent.proc is not None
        pgagent.proc.send_signal(sig)
        assert pgagent.proc.wait(10) == -sig, pgagent.log()
    finally:
        pgagent.close()
    # what pgAgent leaves behind: its row, its claim, a run and a step 'r'
    wait_for(
        lambda: not db.value("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pgagent_id,)),
        10,
        what="pgAgent's backend to end",
    )
    left = _state(db, jobid)
    assert (left["jobagentid"], left["agents"]) == (pgagent_id, [pgagent_id])
    assert [r["jlgstatus"] for r in joblogs(db, jobid)] == ["r"]
    assert [s["jslstatus"] for s in steplogs(db, jobid)] == ["r"]
    db.execute("INSERT INTO public.tick(label) VALUES ('short')")  # later runs are short

    agent = agents(db.dsn, "--liveness-interval", f"{LIVENESS:g}", station=station)

    def cleaned() -> bool:
        s = _state(db, jobid)
        return (
            s["jobagentid"] is None
            and s["agents"] is not None
            and pgagent_id not in s["agents"]
            and [r["jlgstatus"] for r in joblogs(db, jobid)] == ["d"]
        )

    wait_for(cleaned, 20, interval=0.05, what="notifyagent to clean up after pgAgent")
    agent.wait_log(
        f"cleaned up dead agent {pgagent_id} (station {station}): 1 run(s) marked aborted, "
        "1 job(s) released"
    )
    took = (
        log_times(agent, f"cleaned up dead agent {pgagent_id}")[0]
        - log_times(agent, "registered as agent")[0]
    ).total_seconds()
    measure(f"pgAgent stopped ({sig.name}): its run cleaned up after notifyagent registered", took)
    (run,) = joblogs(db, jobid)
    assert run["jlgduration"] is None  # as pgAgent's own cleanup leaves it
    assert [s["jslstatus"] for s in steplogs(db, jobid)] == ["d"]
    me = db.rows("SELECT jagpid, jagstation FROM pgagent.pga_jobagent")
    assert me == [{"jagpid": me[0]["jagpid"], "jagstation": station}]
    assert me[0]["jagpid"] != pgagent_id
    wait_for(lambda: _step_queries(db) == 0, 10, what="the orphaned step query to end")

    # the job is not run again at once: its next run comes from the schedule
    nxt = _state(db, jobid)["jobnextrun"]
    assert nxt is not None
    assert (nxt.second, nxt.microsecond) == (0, 0), nxt
    agent.wait_log(f"queue: job {jobid} due at {nxt:%Y-%m-%d %H:%M:%S}")
    assert len(joblogs(db, jobid)) == 1
    # rather than wait for the minute boundary, bring the next due time forward
    due: datetime = db.value(
        "UPDATE pgagent.pga_job SET jobnextrun = clock_timestamp() + interval '0.5 s' "
        "WHERE jobid = %s RETURNING jobnextrun",
        (jobid,),
    )
    logs = wait_finished(db, jobid, runs=2, timeout=15)
    assert [r["jlgstatus"] for r in logs] == ["d", "s"]
    assert [s["jslstatus"] for s in steplogs(db, jobid)] == ["d", "s"]
    assert 0 <= (logs[1]["jlgstart"] - due).total_seconds() < 1.0, (logs[1], due)
    agent.wait_log(f"job {jobid} (migrated) finished: status s")
    # one completed run in all: pgAgent's never finished, notifyagent's ran once
    assert db.value("SELECT count(*) FROM public.tick WHERE label = 'ran'") == 1
    after = _state(db, jobid)
    assert after["jobagentid"] is None
    assert after["jobnextrun"] > logs[1]["jlgstart"]
    assert (after["jobnextrun"].second, after["jobnextrun"].microsecond) == (0, 0)
    assert after["agents"] == [me[0]["jagpid"]]
    assert took < CLEANUP_BOUND, took
