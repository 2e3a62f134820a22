"""Passwords never appear in agent logs, step outputs, errors or status output.

Runs last in the fault suite (file order): the first test greps the log of every agent the
suite started (collected by the ``agents`` fixture, which also checks each log on teardown).
"""

from __future__ import annotations

import pytest

from notifyagent.cluster import TCP_PASSWORD, free_port
from tests.cli import run_cli
from tests.faults.conftest import COLLECTED_LOGS, SECRETS, AgentStarter, leaked_secrets
from tests.pg import Database, Server


def test_no_password_in_any_agent_log_of_the_suite() -> None:
    if not COLLECTED_LOGS:
        pytest.skip("no agent ran in this session (run the whole tests/faults suite)")
    leaks = {test: leaked_secrets(text) for test, text in COLLECTED_LOGS if leaked_secrets(text)}
    assert not leaks, leaks
    assert TCP_PASSWORD in SECRETS


def test_check_and_serve_hide_the_password(
    pg_server: Server, db: Database, agents: AgentStarter
) -> None:
    """``check`` (its report and its errors) and ``serve`` (a login that keeps failing)."""
    if pg_server.cluster is None:
        pytest.skip("needs the test cluster's TCP password login")
    wrong = "Wr0ng-Serve-Pa55"
    SECRETS.add(wrong)
    good = pg_server.cluster.tcp_dsn(db.name)
    report = run_cli("check", "--dsn", good)
    assert report.code == 0, report.err
    assert "password=********" in report.out
    for r in (
        run_cli("check", "--dsn", pg_server.cluster.tcp_dsn(db.name, password=wrong)),
        run_cli(
            "check",
            env={"NOTIFYAGENT_DSN": f"postgresql://postgres:{wrong}@127.0.0.1:{free_port()}/x"},
        ),
    ):
        assert r.code == 3, (r.out, r.err)
        assert not leaked_secrets(r.out + r.err), r.err
    agent = agents(pg_server.cluster.tcp_dsn(db.name, password=wrong), wait=False)
    agent.wait_log("password authentication failed")
    assert not leaked_secrets(agent.log())
