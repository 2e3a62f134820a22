"""Half-open network: the path to PostgreSQL stops carrying bytes but nothing is closed.

The agent reaches the server through :class:`tests.proxy.StallProxy`. A stalled
proxy keeps both TCP connections up and its kernel acknowledges everything (keepalive probes
too), so TCP keepalives and ``tcp_user_timeout`` cannot see the fault: only the agent's own
round-trip check (a NOTIFY ping that must come back on the LISTEN connection) can.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from notifyagent.cluster import TCP_PASSWORD
from tests.agent import joblogs, run_now, tick_job, wait_finished
from tests.faults.conftest import AgentStarter, Measure, log_lines
from tests.pg import Database, Server, wait_for
from tests.proxy import StallProxy

pytestmark = pytest.mark.slow

#: What the test DSN passes (the issue's values) instead of the agent's production defaults.
FAST_TCP = "keepalives_idle=1 keepalives_interval=1 keepalives_count=2 tcp_user_timeout=3000"
#: --liveness-interval (seconds).
LIVENESS = 1.0
#: docs/operations.md: a liveness check that gets no answer in 10 s counts as failed, so a
#: stalled path is noticed within the interval plus 10 s; the rest is headroom.
DETECTION_BOUND = LIVENESS + 10.0 + 2.5


def test_stalled_path_is_detected_and_service_resumes(
    pg_server: Server,
    db: Database,
    stall_proxy: Callable[[int], StallProxy],
    agents: AgentStarter,
    measure: Measure,
) -> None:
    """The path stalls: the liveness check notices within interval + 10 s (every 1 s here; a
    check that gets no answer in 10 s counts as failed) and replaces the listener; a job made
    due during the stall runs once the path is back."""
    if pg_server.cluster is None:
        pytest.skip("needs the test cluster's TCP port")
    proxy = stall_proxy(pg_server.cluster.port)
    dsn = (
        f"host=127.0.0.1 port={proxy.port} user=postgres dbname={db.name} "
        f"password={TCP_PASSWORD} {FAST_TCP}"
    )
    agent = agents(dsn, "--liveness-interval", f"{LIVENESS:g}")
    before = tick_job(db, "before")
    run_now(db, before)
    wait_finished(db, before)
    old = db.value("SELECT jagpid FROM pgagent.pga_jobagent")

    during = tick_job(db, "during")
    proxy.stall()
    stalled = time.monotonic()
    run_now(db, during)  # due while the path is down
    wait_for(
        lambda: log_lines(agent, "no answer") or log_lines(agent, "lost the LISTEN"),
        30,
        interval=0.1,
        what="the agent to notice the stalled path",
    )
    detected = time.monotonic() - stalled
    measure("half-open path detected (liveness 1 s)", detected)
    assert detected < DETECTION_BOUND, detected
    assert joblogs(db, during) == []  # nothing can reach the server meanwhile

    proxy.resume()
    resumed = time.monotonic()
    wait_finished(db, during, timeout=40)
    measure("job due during the stall done after the path returns", time.monotonic() - resumed)
    wait_for(
        lambda: db.value(
            "SELECT count(*) = 1 AND min(jagpid) <> %s FROM pgagent.pga_jobagent", (old,)
        ),
        20,
        what="one agent row, the new LISTEN connection's",
    )
    assert [r["jlgstatus"] for r in joblogs(db, during)] == ["s"]
    after = tick_job(db, "after")
    run_now(db, after)
    assert [r["jlgstatus"] for r in wait_finished(db, after, timeout=20)] == ["s"]
    assert db.value("SELECT count(*) FROM public.tick") == 3
