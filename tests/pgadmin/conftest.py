"""The pgAdmin tier: the real pgAdmin 4 drives notifyagent, and the real C++ pgAgent too.

One pgAdmin in desktop mode for the session (``notifyagent.pgadmin``), one PostgreSQL
cluster of the tier's own, and one *stage* per agent kind: a database cloned from the
template, registered in pgAdmin as a server whose maintenance database it is (pgAdmin looks
for pgAgent's schema only there), with its agent running, station = the host name (what
pgAgent registers). Tests that take ``stage`` run once per kind: the same pgAdmin actions
and the same expectations, except the differences listed in ``tests/pgadmin/differences.py``.

pgAdmin and Chromium are installed by ``scripts/setup-pgadmin`` (``scripts/test`` runs it);
when either is missing the tests fail and say so, they are not skipped. A failing test's
report carries the end of pgAdmin's log and of the agents' logs.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from notifyagent.pgadmin import PgAdmin, PgAdminClient, installed_script
from tests.agent import AgentProcess
from tests.compat.pgagent import PgAgentProcess
from tests.pg import Server, new_database
from tests.pgadmin.pga import Stage
from tests.pgadmin.timeline import Timeline

KINDS = ("notifyagent", "pgagent")
#: kind -> the server's name in pgAdmin's Object Explorer
SERVER_NAMES = {"notifyagent": "notifyagent", "pgagent": "pgAgent (C++)"}
#: name -> the end of a log, attached to the report of every failing test of the tier
LOGS: dict[str, Callable[[], str]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the end of pgAdmin's log and of the agents' logs:
    what pgAdmin answered is often explained only there."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, tail in LOGS.items():
            report.sections.append((name, tail()))


@pytest.fixture(scope="session")
def pgadmin() -> Iterator[PgAdmin]:
    """pgAdmin in desktop mode for the whole tier; missing, it is a failure, not a skip."""
    script = installed_script()
    if script is None:
        pytest.fail(
            "pgAdmin 4 is not installed: run scripts/setup-pgadmin (scripts/test does)",
            pytrace=False,
        )
    running = PgAdmin(script).start()
    LOGS["pgAdmin log"] = running.log
    try:
        yield running
    finally:
        del LOGS["pgAdmin log"]
        running.stop()


@pytest.fixture(scope="session")
def pgadmin_api(pgadmin: PgAdmin) -> PgAdminClient:
    """One logged-in pgAdmin session for the tier's HTTP calls."""
    return pgadmin.client()


@pytest.fixture(scope="session")
def tier_server() -> Iterator[Server]:
    """A cluster of the tier's own: pgAgent opens a connection per running job and step, and
    pgAdmin several per server; the other tiers' server keeps its default limits."""
    server = Server({"max_connections": "400"})
    try:
        server.create_template()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def stages(tier_server: Server, pgadmin_api: PgAdminClient) -> Iterator[dict[str, Stage]]:
    """Both stages, their agents running; at the end notifyagent must stop with exit code 0
    and no traceback in its log."""
    station = socket.gethostname()
    assert tier_server.cluster is not None
    with contextlib.ExitStack() as stack:
        out: dict[str, Stage] = {}
        for kind in KINDS:
            db = stack.enter_context(contextmanager(new_database)(tier_server, f"pga_{kind}"))
            sid = pgadmin_api.register_server(
                SERVER_NAMES[kind], tier_server.cluster.tcp_dsn(db.name)
            )
            pgadmin_api.connect_server(sid)
            out[kind] = Stage(pgadmin_api, sid, kind, db, station)
        na = AgentProcess(out["notifyagent"].db.dsn, station=station)
        stack.callback(na.close)
        na.start()
        LOGS["notifyagent log"] = lambda: na.log()[-6000:]
        ref = PgAgentProcess(out["pgagent"].db)
        stack.callback(ref.close)
        ref.start(station)
        LOGS["pgagent log"] = ref.log
        yield out
        code = na.stop()
        LOGS.pop("notifyagent log")
        LOGS.pop("pgagent log")
        assert code == 0, f"notifyagent exited {code}:\n{na.log()[-6000:]}"
        assert "Traceback" not in na.log(), na.log()[-6000:]


@pytest.fixture(params=KINDS)
def stage(request: pytest.FixtureRequest, stages: dict[str, Stage]) -> Stage:
    """Each test that takes it runs once against notifyagent, once against pgAgent."""
    return stages[request.param]


@pytest.fixture(scope="session", autouse=True)
def timeline(stages: dict[str, Stage]) -> Timeline:
    """The scheduled jobs of ``test_zz_timeline.py``, made at the tier's start: their runs
    are due in the next minutes, while the other tests run."""
    return Timeline.create(stages)
