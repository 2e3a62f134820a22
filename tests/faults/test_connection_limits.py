"""A run never fails for want of a connection: step connections stay within what the server
allows, and "too many clients" / a connection limit makes a step wait and retry, not fail."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest

from notifyagent import conninfo
from tests.agent import AgentProcess
from tests.pg import Database, wait_for

Factory = Callable[..., AgentProcess]


def _jobs(db: Database, n: int, code: str, connstr: str = "") -> None:
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
        "SELECT 1, 'limited' || g FROM generate_series(1, %s) g",
        (n,),
    )
    db.execute(
        "INSERT INTO pgagent.pga_jobstep "
        "(jstjobid, jstname, jstkind, jstcode, jstdbname, jstconnstr) "
        "SELECT jobid, 's', 's', %s, CASE WHEN %s = '' THEN current_database() ELSE '' END, %s "
        "FROM pgagent.pga_job",
        (code, connstr, connstr),
    )


def _all_ran(db: Database, n: int, timeout: float) -> None:
    wait_for(
        lambda: (
            db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus <> 'r'") == n
            and db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL") == 0
        ),
        timeout,
        what=f"{n} runs",
    )


def _statuses(db: Database) -> dict[str, int]:
    rows = db.rows("SELECT jlgstatus, count(*) AS n FROM pgagent.pga_joblog GROUP BY 1")
    return {r["jlgstatus"]: r["n"] for r in rows}


@pytest.fixture
def limited_role(db: Database) -> Iterator[str]:
    """A login role that may hold only 2 connections at once (the server says "too many
    connections for role" beyond that, SQLSTATE 53300 like "too many clients")."""
    role = f"limited_{os.getpid()}"
    db.server.admin(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
    try:
        yield role
    finally:
        db.server.admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
            f"DROP ROLE IF EXISTS {role}",
        )


def test_steps_wait_for_a_free_connection_slot_instead_of_failing(
    db: Database, agent_factory: Factory, limited_role: str
) -> None:
    """12 jobs due at once, each step connecting as a role limited to 2 connections: pgAgent
    fails most of them; every run here succeeds, the steps queue for the 2 slots."""
    params = conninfo.parse(db.dsn)
    connstr = f"host={params['host']} port={params['port']} dbname={db.name} user={limited_role}"
    _jobs(db, 12, "SELECT pg_sleep(0.2)", connstr)
    agent = agent_factory("--max-concurrency", "12")
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now()")
    _all_ran(db, 12, 60)
    assert _statuses(db) == {"s": 12}, db.rows(
        "SELECT jsloutput FROM pgagent.pga_jobsteplog WHERE jslstatus <> 's'"
    )
    log = agent.log()
    assert "waits for a free connection slot" in log
    assert "too many connections for role" in log


def test_step_connections_stay_within_max_connections(db: Database, agent_factory: Factory) -> None:
    """--max-concurrency 300 against a server with max_connections = 100: the agent sizes its
    step connections from what the server allows, so 150 slow jobs due at once all run and
    the server never has to refuse a connection."""
    assert int(db.value("SHOW max_connections")) == 100
    _jobs(db, 150, "SELECT pg_sleep(0.5)")
    agent = agent_factory("--max-concurrency", "300")
    agent.wait_log("SQL steps use at most")
    cap = int(re.findall(r"SQL steps use at most (\d+) connection", agent.log())[-1])
    assert 1 < cap < 100
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now()")
    _all_ran(db, 150, 90)
    assert _statuses(db) == {"s": 150}
    assert "too many clients" not in agent.log()
