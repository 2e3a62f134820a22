"""Fixtures: one throwaway PostgreSQL server per test session, one database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
