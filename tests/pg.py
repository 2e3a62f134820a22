"""Test helpers for a real PostgreSQL server: the server, per-test databases, waiting."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row

from notifyagent import conninfo
from notifyagent.cluster import Cluster

T = TypeVar("T")
Conn = psycopg.Connection[DictRow]
_counter = itertools.count(1)


def connect(dsn: str) -> Conn:
    """An autocommit connection whose rows are dicts, like every helper here expects."""
    return psycopg.connect(dsn, autocommit=True, row_factory=dict_row)


def fetch_rows(conn: Conn, query: Any, params: Any = None) -> list[dict[str, Any]]:
    """Every row of ``query`` on ``conn``; none for a statement without a result."""
    cur = conn.execute(query, params)
    return list(cur.fetchall()) if cur.description else []


def fetch_value(conn: Conn, query: Any, params: Any = None) -> Any:
    """The first column of the first row of ``query`` on ``conn`` (None without rows)."""
    rows = fetch_rows(conn, query, params)
    return next(iter(rows[0].values())) if rows else None


class Server:
    """The server the tests use: our own throwaway cluster, or NOTIFYAGENT_TEST_DSN's."""

    def __init__(
        self, settings: dict[str, str] | None = None, cluster: Cluster | None = None
    ) -> None:
        """``cluster``: one made (not started) by the caller, who then knows its directory
        before it starts and can remove it even if the start fails."""
        own = settings is not None or cluster is not None
        external = None if own else os.environ.get("NOTIFYAGENT_TEST_DSN")
        self.cluster: Cluster | None = None
        if external:
            self.base_dsn = external
        else:
            self.cluster = cluster or Cluster(settings=settings)
            self.cluster.start()
            self.base_dsn = self.cluster.dsn()
        self.template = f"na_template_{os.getpid()}"

    def dsn(self, dbname: str = "postgres") -> str:
        return conninfo.with_params(self.base_dsn, dbname=dbname)

    def admin(self, *statements: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            for s in statements:
                conn.execute(s.encode())

    def create_template(self) -> None:
        self.admin(
            f'DROP DATABASE IF EXISTS "{self.template}"', f'CREATE DATABASE "{self.template}"'
        )
        with psycopg.connect(self.dsn(self.template), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgagent")
            conn.execute(
                "CREATE TABLE public.tick (id serial PRIMARY KEY, label text, "
                "ran_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.destroy()
        else:
            self.admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


@dataclass
class Database:
    """One database cloned from the template for one test."""

    server: Server
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)

    def rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        with connect(self.dsn) as conn:
            return fetch_rows(conn, query.encode() if params is None else query, params)

    def value(self, query: str, params: Any = None) -> Any:
        with connect(self.dsn) as conn:
            return fetch_value(conn, query.encode() if params is None else query, params)

    def execute(self, query: str, params: Any = None) -> None:
        self.rows(query, params)


def new_database(
    server: Server, prefix: str = "t", template: str | None = None
) -> Generator[Database, None, None]:
    """A database cloned from ``template``, dropped (WITH FORCE) when the generator closes."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    tmpl = template or server.template
    server.admin(f'CREATE DATABASE "{name}" TEMPLATE "{tmpl}"')
    try:
        yield Database(server, name)
    finally:
        server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for(
    check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Return ``check()``'s first truthy value; fail with ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout
    last = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)
        last = check()
    return last
