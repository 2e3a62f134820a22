"""Fixtures: one throwaway PostgreSQL server per test session, one database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.agent import AgentProcess
from tests.pg import Database, Server, new_database


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    server = Server()
    try:
        server.create_template()
        yield server
    finally:
        server.close()


@pytest.fixture
def db(pg_server: Server) -> Iterator[Database]:
    """A fresh database with the pgagent extension and a ``public.tick`` table for steps."""
    yield from new_database(pg_server)


@pytest.fixture
def agent_factory(db: Database) -> Iterator[Callable[..., AgentProcess]]:
    """Start ``notifyagent serve`` processes against the test database; all stopped at the end.

    At teardown every agent still running must stop on SIGTERM with exit code 0, and no agent
    that ran to a clean exit may have logged a traceback. Agents that already exited with
    another code (killed by the test, or a refusal the test checked) are exempt."""
    started: list[AgentProcess] = []

    def start(
        *args: str,
        dsn: str | None = None,
        station: str = "test-station",
        wait: bool = True,
        env: dict[str, str] | None = None,
    ) -> AgentProcess:
        a = AgentProcess(dsn or db.dsn, args, station=station, env=env or {})
        started.append(a)
        return a.start(wait_registered=wait)

    yield start
    problems: list[str] = []
    for a in started:
        try:
            if a.proc is None:
                continue
            was_running = a.proc.poll() is None
            if was_running and (code := a.stop()) != 0:
                problems.append(f"agent {a.station!r} exited {code} on SIGTERM:\n{a.log()}")
            elif (
                (was_running or a.proc.returncode == 0)
                and a.logfile.exists()  # gone if the test closed the agent itself
                and "Traceback" in a.log()
            ):
                problems.append(f"agent {a.station!r} logged a traceback:\n{a.log()}")
        except AssertionError as err:  # did not stop in time
            problems.append(str(err))
        finally:
            a.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def agent(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    """One running agent with station 'test-station'."""
    return agent_factory()
