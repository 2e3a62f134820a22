"""The LISTEN connection goes deaf: it stays open but delivers no notification.

The liveness check's ping (a NOTIFY sent by its statement on a pool connection) must come back
on the LISTEN connection. Here the listener's backend is stopped with SIGSTOP: its socket and
the pool stay healthy and the statement is answered, but the backend forwards nothing, which is
what a listener that lost its LISTEN (a pooler's DISCARD ALL) or hangs looks like to the agent.
Shadowing pg_notify would change the statement under test instead of the path the ping takes.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifyagent.agent.maintenance import PING_TIMEOUT
from notifyagent.cluster import free_port
from tests.agent import dead_agent_with_a_run, tick_job
from tests.faults.conftest import AgentStarter, Measure, log_lines
from tests.pg import Database, wait_for

#: a pga_jobagent row whose pid no backend has (above any pid_max)
DEAD_PID = 2_100_000_001


def liveness(port: int, result: str) -> float:
    """notifyagent_liveness_checks_total{result=...} from the agent's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "notifyagent_liveness_checks_total" and s.labels["result"] == result:
                return float(s.value)
    return 0.0


def agent_pid(db: Database) -> int | None:
    value = db.value("SELECT jagpid FROM pgagent.pga_jobagent WHERE jagstation = 'fault-station'")
    return None if value is None else int(value)


def test_lost_ping_replaces_the_listener_and_the_round_still_cleans_up(
    db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """A lost ping counts as ping_lost (not timeout: the database answered) and replaces the
    listener; a dead agent found by the same check is cleaned up without waiting for the ping."""
    if db.server.cluster is None:
        pytest.skip("needs the server's backends on this host (own test cluster)")
    port = free_port()
    agent = agents(db.dsn, "--liveness-interval", "1", "--metrics-address", str(port))
    listener = agent_pid(db)
    assert listener is not None
    jobid = tick_job(db, "orphaned")
    ok = liveness(port, "ok")
    # just after a check, so the next one (an interval later) is the first to see both faults
    wait_for(lambda: liveness(port, "ok") > ok, 10, what="a liveness check to succeed")
    os.kill(listener, signal.SIGSTOP)
    try:
        deaf = time.monotonic()
        jlgid = dead_agent_with_a_run(db, DEAD_PID, jobid)
        wait_for(
            lambda: db.value(
                "SELECT count(*) = 0 FROM pgagent.pga_jobagent WHERE jagpid = %s", (DEAD_PID,)
            ),
            PING_TIMEOUT + 10,
            what="the dead agent cleaned up",
        )
        measure("deaf listener: dead agent cleaned up after", time.monotonic() - deaf)
        # by the check that found it, while its ping is still out
        assert agent_pid(db) == listener, "cleaned up only after the listener was replaced"
        assert liveness(port, "ping_lost") == 0
        wait_for(
            lambda: liveness(port, "ping_lost") == 1,
            PING_TIMEOUT + 10,
            what="the lost ping counted",
        )
        wait_for(
            lambda: agent_pid(db) not in (None, listener),
            10,
            what="the listener replaced (a new agent id)",
        )
        replaced = time.monotonic() - deaf
        measure("deaf listener: replaced after", replaced)
        assert liveness(port, "timeout") == 0
        assert log_lines(agent, "notification round trip failed")
        ok = liveness(port, "ok")
        wait_for(
            lambda: liveness(port, "ok") > ok, 10, what="pings to come back on the new listener"
        )
    finally:
        os.kill(listener, signal.SIGCONT)
    # at most one interval to the check, then the ping's budget (the bound operations.md quotes)
    assert replaced < 1 + PING_TIMEOUT + 3, replaced
    assert db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgid = %s", (jlgid,)) == "d"
    assert (
        db.value("SELECT jslstatus FROM pgagent.pga_jobsteplog WHERE jsljlgid = %s", (jlgid,))
        == "d"
    )
    assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) is None
    assert log_lines(agent, f"cleaned up dead agent {DEAD_PID}")
