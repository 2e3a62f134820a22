"""notifyagent and the real C++ pgAgent on one database: both run jobs, no double runs, no
claims left."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator

import psycopg
import pytest

from notifyagent import conninfo
from tests.agent import AgentProcess
from tests.pg import Database, Server, new_database, wait_for

JOBS = 100
ROUNDS = 3
#: notifyagent's step connections inherit its DSN's application_name; pgAgent builds its own
#: connection strings for steps, so a step can tell which agent ran it.
NA_APP = "na_side_by_side"
#: A small concurrency keeps notifyagent from claiming a whole round the moment it is due, so
#: pgAgent's polls (every second) find due jobs too and both agents compete for the claims.
NA_CONCURRENCY = 4
#: Steps last long enough that a round at that concurrency outlasts pgAgent's poll interval.
STEP_SECONDS = 0.1


@pytest.fixture
def db() -> Iterator[Database]:
    """A database on a server of its own: pgAgent opens a connection per due job and one per
    step (200 for 100 jobs), more than the default max_connections of 100 allows."""
    server = Server({"max_connections": "400"})
    try:
        server.create_template()
        yield from new_database(server)
    finally:
        server.close()


@pytest.mark.slow
def test_side_by_side_with_pgagent(
    db: Database, agent_factory: Callable[..., AgentProcess]
) -> None:
    pgagent = shutil.which("pgagent")
    if pgagent is None:
        pytest.fail("the pgagent binary is missing: scripts/setup installs the Debian package")
    # Each step records its job, the round it ran for and the application_name of the
    # connection it ran on (which agent ran it).
    db.execute("ALTER TABLE public.tick ADD COLUMN rnd int, ADD COLUMN app text")
    db.execute("CREATE TABLE public.cur_round (r int NOT NULL)")
    db.execute("INSERT INTO public.cur_round VALUES (0)")
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
        "SELECT 1, 'both' || g FROM generate_series(1, %s) g",
        (JOBS,),
    )
    db.execute(
        "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
        "SELECT jobid, 's', 's', 'SELECT pg_sleep(' || %s || '); "
        "INSERT INTO public.tick(label, rnd, app) SELECT ''' || jobid"
        " || ''', r, current_setting(''application_name'') FROM public.cur_round',"
        " current_database() FROM pgagent.pga_job",
        (STEP_SECONDS,),
    )
    agent_factory(
        "--max-concurrency",
        str(NA_CONCURRENCY),
        dsn=conninfo.with_params(db.dsn, application_name=NA_APP),
    )
    proc = subprocess.Popen(
        [pgagent, "-f", "-t", "1", db.dsn],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 2, 20)
        for rnd in range(1, ROUNDS + 1):
            db.execute("UPDATE public.cur_round SET r = %s", (rnd,))
            db.execute("UPDATE pgagent.pga_job SET jobnextrun = now()")

            def round_done(rnd: int = rnd) -> bool:
                try:
                    ran = db.value(
                        "SELECT count(DISTINCT label) FROM public.tick WHERE rnd = %s", (rnd,)
                    )
                    claimed = db.value(
                        "SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL"
                    )
                except psycopg.OperationalError:  # "too many clients" while pgAgent's threads run
                    return False
                return bool(ran == JOBS and claimed == 0)

            wait_for(round_done, 60, what=f"round {rnd}: every job ran and was released")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    ticks = db.rows("SELECT label, rnd, app FROM public.tick")
    per_run = Counter((t["label"], t["rnd"]) for t in ticks)
    doubled = {k: n for k, n in per_run.items() if n > 1}
    assert not doubled, f"runs that happened more than once for one due time: {doubled}"
    jobids = {str(r["jobid"]) for r in db.rows("SELECT jobid FROM pgagent.pga_job")}
    assert set(per_run) == {(j, r) for j in jobids for r in range(1, ROUNDS + 1)}
    by_agent = Counter("notifyagent" if t["app"] == NA_APP else "pgagent" for t in ticks)
    assert by_agent["notifyagent"] > 0, f"notifyagent ran no job: {dict(by_agent)}"
    assert by_agent["pgagent"] > 0, f"pgAgent ran no job: {dict(by_agent)}"
    assert db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r'") == 0
    assert (
        db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 's'") == JOBS * ROUNDS
    )
