"""pgAgent bugs that notifyagent fixes, each shown on the real thing where that is cheap.

docs/compatibility.md points here for the "fixed" rows that the integration tests do not
already cover. Where a test runs the real pgAgent too, it first shows pgAgent's bug, so the
test fails loudly if the reference ever stops having it (and the doc row must change).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from notifyagent.cluster import TCP_PASSWORD
from tests.agent import (
    AgentProcess,
    batch_step,
    make_job,
    run_now,
    sql_step,
    steplogs,
    wait_finished,
)
from tests.compat import scenario
from tests.compat.pgagent import PgAgentProcess
from tests.compat.runner import run_under_notifyagent, run_under_pgagent
from tests.compat.scenario import ScenarioJob
from tests.pg import Database, Server, new_database, wait_for

NO_CONNECTION = "Couldn't get a connection to the database!"
Factory = Callable[..., AgentProcess]


@pytest.fixture
def second_db(pg_server: Server) -> Iterator[Database]:
    yield from new_database(pg_server, prefix="compat_fix")


def test_step_connstr_with_password(pg_server: Server, db: Database, second_db: Database) -> None:
    """pgAgent 4.2.2 replaces password=... in a step's connection string by ``*****``, so
    password authentication always fails (pgagent #27; fixed in 4.2.3 by commit a172ef5).
    notifyagent uses the string as it is."""
    cluster = pg_server.cluster
    if cluster is None:
        pytest.skip("needs the test cluster's TCP password login")

    def jobs(target: Database) -> list[ScenarioJob]:
        step = sql_step("a", "SELECT 1", connstr=cluster.tcp_dsn(target.name), onerror="i")
        return [
            ScenarioJob("password_connstr", [step], expect_steps=["i" if target is db else "s"])
        ]

    reference = run_under_pgagent(db, jobs(db))
    (step,) = reference["password_connstr"].runs[0].steps
    assert (step.status, step.output) == ("i", NO_CONNECTION), "pgAgent 4.2.2's bug is gone?"

    candidate = run_under_notifyagent(second_db, jobs(second_db))
    (step,) = candidate["password_connstr"].runs[0].steps
    assert (step.status, step.result, step.output) == ("s", 1, "")
    assert TCP_PASSWORD not in (step.output or "")


def test_batch_temp_dir_is_private(db: Database, second_db: Database) -> None:
    """pgAgent 4.2.2 names the batch temp dir from ``srand(time)`` with the default mode
    (predictable and world-readable; fixed in 4.2.3, commit 1ecd193). notifyagent uses
    ``mkdtemp`` (random name, mode 0700) and a 0700 script, and removes both afterwards."""
    code = 'stat -c %a "$(dirname "$0")" "$0"\n'
    jobs = [ScenarioJob("tempdir", [batch_step("a", code)], expect_steps=["s"])]
    reference = run_under_pgagent(db, jobs)
    assert reference["tempdir"].runs[0].steps[0].output == "755\n700\n", "pgAgent 4.2.2?"
    candidate = run_under_notifyagent(second_db, jobs)
    assert candidate["tempdir"].runs[0].steps[0].output == "700\n700\n"


def test_output_after_a_nul_byte_is_kept(db: Database, second_db: Database) -> None:
    """pgAgent reads a script's output line by line (``fgets``) and appends each line as a C
    string: the rest of a line after a NUL byte is lost, newline included. notifyagent drops
    only the NUL bytes (a text column cannot hold them)."""
    code = "printf 'before\\000after\\n'\necho second line\n"
    jobs = [ScenarioJob("nul", [batch_step("a", code)], expect_steps=["s"])]
    reference = run_under_pgagent(db, jobs)
    assert reference["nul"].runs[0].steps[0].output == "beforesecond line\n"
    candidate = run_under_notifyagent(second_db, jobs)
    assert candidate["nul"].runs[0].steps[0].output == "beforeafter\nsecond line\n"


def test_concurrent_batch_steps_keep_their_own_stderr(db: Database, agent: AgentProcess) -> None:
    """pgAgent redirects the whole process's stderr to one step's file (freopen), so batch
    steps running at the same time mix up or lose their stderr (pgadmin4 #3658, #4235).
    notifyagent reads each script's stdout and stderr through its own pipes."""
    n = 6
    ids = [
        make_job(
            db,
            f"parallel_{i}",
            [batch_step("a", f"echo out-{i}\necho err-{i} >&2\nsleep 0.3\necho late-{i} >&2\n")],
        )
        for i in range(n)
    ]
    run_now(db, *ids)
    for jobid in ids:
        wait_finished(db, jobid)
    for i, jobid in enumerate(ids):
        (step,) = steplogs(db, jobid)
        assert step["jsloutput"] == f"out-{i}\n\nScript Error: \nerr-{i}\nlate-{i}\n\n"


def test_station_name_is_a_parameter(db: Database, agent_factory: Factory) -> None:
    """pgAgent splices the host name into its INSERT unquoted (pgagent #26): a station name
    with a quote breaks registration. notifyagent passes it as a parameter."""
    station = "o'brien.example"
    agent_factory(station=station)
    assert db.value("SELECT jagstation FROM pgagent.pga_jobagent") == station
    jobid = make_job(db, "pinned", [sql_step("a", "SELECT 1")], hostagent=station)
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"


def test_registration_recovers_from_a_row_with_our_pid(
    db: Database, agent_factory: Factory
) -> None:
    """A ``pga_jobagent`` row that already has the agent's backend pid (left by an agent of an
    earlier server incarnation, e.g. a container restart) makes pgAgent's registration fail
    with ``duplicate key ... pga_jobagent_pkey`` and count as a failed connection attempt
    (pgagent PR #13). notifyagent deletes that row and registers.

    A test cannot make a backend pid collide, so a trigger raises the same unique_violation
    on the first registration attempt only."""
    db.execute(
        "CREATE SEQUENCE public.collide; "
        "CREATE FUNCTION public.collide() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF nextval('public.collide') = 1 THEN RAISE unique_violation USING MESSAGE = "
        "'duplicate key value violates unique constraint \"pga_jobagent_pkey\"'; END IF; "
        "RETURN NEW; END $$; "
        "CREATE TRIGGER collide BEFORE INSERT ON pgagent.pga_jobagent "
        "FOR EACH ROW EXECUTE FUNCTION public.collide()"
    )
    agent = agent_factory()
    assert "removed a stale pga_jobagent row that had our pid" in agent.log()
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1
    jobid = make_job(db, "after", [sql_step("a", "SELECT 1")])
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"


def test_waits_for_the_database_at_startup(pg_server: Server, agent_factory: Factory) -> None:
    """pgAgent tries to connect 10 times, T seconds apart, then exits 1 (§3.2). notifyagent
    keeps retrying with backoff and starts working when the database is there."""
    name = f"compat_late_{os.getpid()}"
    dsn = pg_server.dsn(name)
    agent = agent_factory(dsn=dsn, wait=False)
    try:
        agent.wait_log("database unreachable, retrying with backoff", timeout=20)
        assert agent.proc is not None
        assert agent.proc.poll() is None
        pg_server.admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_server.template}"')
        agent.wait_log("queue loaded", timeout=30)
        late = Database(pg_server, name)
        jobid = make_job(late, "late", [sql_step("a", "SELECT 1")])
        run_now(late, jobid)
        assert wait_finished(late, jobid)[0]["jlgstatus"] == "s"
        assert agent.stop() == 0
    finally:
        agent.close()
        pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_survives_a_postgresql_restart(
    pg_server: Server, db: Database, agent_factory: Factory
) -> None:
    """pgAgent exits 1 at its first poll after the server went away (pgagent #43, §3.9): its
    jobs then stop until someone restarts it. notifyagent reconnects, runs them, and cleans up
    the agent row the dead pgAgent left behind."""
    cluster = pg_server.cluster
    if cluster is None:
        pytest.skip("restarts the tests' own throwaway cluster")
    agent = agent_factory("--liveness-interval", "1")
    pgagent = PgAgentProcess(db).start(scenario.station())
    try:
        cluster.restart()
        assert pgagent.proc is not None
        try:
            code = pgagent.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError("pgAgent survived a server restart?") from None
        assert code == 1, pgagent.log()
    finally:
        pgagent.close()
    agent.wait_log("reconnected to the database", timeout=30)
    jobid = make_job(db, "after_restart", [sql_step("a", "SELECT 1")])
    run_now(db, jobid)
    assert wait_finished(db, jobid, timeout=30)[0]["jlgstatus"] == "s"

    def agents() -> list[dict[str, object]]:
        return db.rows(
            "SELECT jagstation, jagpid IN (SELECT pid FROM pg_stat_activity) AS alive "
            "FROM pgagent.pga_jobagent"
        )

    # exactly one row: notifyagent's, registered again under its new backend pid; pgAgent's
    # row (its pid died with the restart) reaped by notifyagent's liveness check
    only_ours = [{"jagstation": "test-station", "alive": True}]
    wait_for(lambda: agents() == only_ours, 10, what="only notifyagent's live agent row")
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1
