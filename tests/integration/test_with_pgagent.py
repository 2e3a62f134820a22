"""notifyagent and the real C++ pgAgent on one database: no double runs, no claims left."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.agent import AgentProcess
from tests.pg import Database, Server, new_database, wait_for

JOBS = 100
ROUNDS = 3


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
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
        "SELECT 1, 'both' || g FROM generate_series(1, %s) g",
        (JOBS,),
    )
    db.execute(
        "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
        "SELECT jobid, 's', 's', 'INSERT INTO public.tick(label) VALUES (''' || jobid || ''')',"
        " current_database() FROM pgagent.pga_job"
    )
    agent_factory(dsn=db.dsn)
    proc = subprocess.Popen(
        [pgagent, "-f", "-t", "1", db.dsn],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 2, 20)
        for rnd in range(1, ROUNDS + 1):
            db.execute("UPDATE pgagent.pga_job SET jobnextrun = now()")
            expected = JOBS * rnd

            def round_done(expected: int = expected) -> bool:
                try:
                    finished = db.value(
                        "SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 's'"
                    )
                    claimed = db.value(
                        "SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL"
                    )
                except psycopg.OperationalError:  # "too many clients" while pgAgent's threads run
                    return False
                return bool(finished == expected and claimed == 0)

            wait_for(round_done, 60, what=f"round {rnd}: {JOBS} runs and every job released")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    per_job = db.rows("SELECT label, count(*) AS n FROM public.tick GROUP BY label")
    assert len(per_job) == JOBS
    assert {r["n"] for r in per_job} == {ROUNDS}, "a job ran twice for one due time"
    assert db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r'") == 0
    assert (
        db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 's'") == JOBS * ROUNDS
    )
