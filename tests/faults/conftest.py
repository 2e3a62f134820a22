"""Fixtures for the fault-tolerance suite.

* ``agents``: starts ``notifyagent serve`` processes against any DSN (the shared session
  cluster, a private cluster, a proxy); on teardown it stops them, keeps their logs for the
  suite-wide password check and fails the test if a known password appears in a log.
* ``private_server`` / ``private_db``: a module-scoped cluster of its own for the tests that stop,
  restart or fail over the server, so the shared session cluster is never disturbed.
* ``stall_proxy``: :class:`tests.proxy.StallProxy`, a loopback TCP proxy that can stop
  forwarding without closing anything (a half-open path as far as both ends can tell).
* ``measure``: numbers for docs/operations.md, printed in a summary at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from notifyagent.cluster import TCP_PASSWORD, Cluster
from tests.agent import AgentProcess
from tests.pg import Database, Server, new_database
from tests.proxy import StallProxy

#: Every password the suite uses; none may appear in any agent log, step output or error.
SECRETS: set[str] = {TCP_PASSWORD}
#: (test id, agent log) of every agent the suite started, for the final redaction check.
COLLECTED_LOGS: list[tuple[str, str]] = []
#: name -> (value, unit, test id): the numbers quoted in docs/operations.md.
MEASURED: dict[str, tuple[float, str, str]] = {}

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")

AgentStarter = Callable[..., AgentProcess]


def leaked_secrets(text: str) -> list[str]:
    """The known passwords that occur in ``text``."""
    return sorted(s for s in SECRETS if s and s in text)


def log_times(agent: AgentProcess, text: str) -> list[datetime]:
    """Local times of the agent's log lines that contain ``text``."""
    found = []
    for line in agent.log().splitlines():
        m = LOG_TIME.match(line)
        if m and text in line:
            found.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f"))
    return found


def log_lines(agent: AgentProcess, text: str) -> list[str]:
    return [line for line in agent.log().splitlines() if text in line]


# -- agents ---------------------------------------------------------------------------------


@pytest.fixture
def agents(request: pytest.FixtureRequest) -> Iterator[AgentStarter]:
    """``start(dsn, *args, station=..., wait=True, env=None)`` -> a running agent.

    Set ``NOTIFYAGENT_KEEP_LOGS=<dir>`` to keep every agent log there."""
    started: list[AgentProcess] = []

    def start(
        dsn: str,
        *args: str,
        station: str = "fault-station",
        wait: bool = True,
        env: dict[str, str] | None = None,
    ) -> AgentProcess:
        a = AgentProcess(dsn, args, station=station, env=env or {})
        started.append(a)
        return a.start(wait_registered=wait)

    yield start
    leaks: list[str] = []
    problems: list[str] = []
    # agents still running now must stop cleanly (exit 0, no traceback); the ones the test
    # killed or stopped itself are its business
    running = [a.proc is not None and a.proc.poll() is None for a in started]
    try:
        for n, a in enumerate(started):
            if running[n]:
                try:
                    code: int | str = a.stop(timeout=40)
                except AssertionError:
                    code = "none: it did not stop within 40 s"
                if code != 0:
                    problems.append(f"agent {n} ({a.station}) exit code {code}:\n{a.log()[-6000:]}")
                elif "Traceback" in (text := a.log()):
                    tb = text[max(0, text.index("Traceback") - 2000) :][:6000]
                    problems.append(f"agent {n} ({a.station}) logged a traceback:\n{tb}")
    finally:
        for n, a in enumerate(started):
            text = a.log()
            COLLECTED_LOGS.append((request.node.nodeid, text))
            if keep := os.environ.get("NOTIFYAGENT_KEEP_LOGS"):
                Path(keep).mkdir(parents=True, exist_ok=True)
                (Path(keep) / f"{request.node.name}-{n}.log").write_text(text)
            leaks += leaked_secrets(text)
            a.close()
    assert not leaks, f"a password appeared in an agent log: {leaks}"
    assert not problems, "\n\n".join(problems)


# -- measurements ---------------------------------------------------------------------------


class Measure(Protocol):
    def __call__(self, name: str, value: float, unit: str = "s") -> None: ...


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Measure:
    def record(name: str, value: float, unit: str = "s") -> None:
        MEASURED[name] = (value, unit, request.node.name)

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURED:
        return
    terminalreporter.section("fault suite measurements")
    for name, (value, unit, test) in MEASURED.items():
        terminalreporter.write_line(f"{name:<52} {value:10.3f} {unit:<4} ({test})")


# -- a private cluster ----------------------------------------------------------------------


class PrivateServer(Server):
    """A :class:`tests.pg.Server` over a cluster of its own (which it destroys on close)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.base_dsn = cluster.dsn()
        self.template = f"na_faults_{os.getpid()}"

    @property
    def own(self) -> Cluster:
        assert self.cluster is not None
        return self.cluster


@pytest.fixture(scope="module")
def private_server() -> Iterator[PrivateServer]:
    cluster = Cluster()
    try:
        cluster.start()
        server = PrivateServer(cluster)
        server.create_template()
        yield server
    finally:
        cluster.destroy()


@pytest.fixture
def private_db(private_server: PrivateServer) -> Iterator[Database]:
    """A database on the private cluster; the cluster is (re)started when a test left it down."""
    cluster = private_server.own
    if not cluster.is_running():
        cluster.start()
    databases = new_database(private_server, prefix="f")
    db = next(databases)
    try:
        yield db
    finally:
        if not cluster.is_running():
            cluster.start()
        with contextlib.suppress(StopIteration):
            next(databases)


# -- a proxy that can stall -----------------------------------------------------------------


@pytest.fixture
def stall_proxy() -> Iterator[Callable[[int], StallProxy]]:
    made: list[StallProxy] = []

    def make(upstream_port: int) -> StallProxy:
        p = StallProxy(upstream_port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
