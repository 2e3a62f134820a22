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
    """Start ``notifyagent serve`` processes against the test database; all stopped at the end."""
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
    for a in started:
        if a.proc is not None and a.proc.poll() is None:
            a.stop()
        a.close()


@pytest.fixture
def agent(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    """One running agent with station 'test-station'."""
    return agent_factory()
