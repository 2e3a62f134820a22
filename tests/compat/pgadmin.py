"""Replaying pgAdmin's SQL (tests/compat/pgadmin-sql/NN_*.sql) the way pgAdmin sends it.

Each file is a sequence of driver calls, each introduced by a marker line
``-- @@pgadmin-call N: ...`` (``-- @@agent-call N: ...`` in file 18, the C++ agent's own
writes). One call is one round trip: the whole block goes to the server as one string over
the simple query protocol on an autocommit connection, so a multi-statement block runs as one
implicit transaction, exactly like pgAdmin's ``execute_*`` calls (pgadmin-client.md §1).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

#: pgAdmin's session start-up (connection.py::_initialize), minus the bytea_output probe.
SESSION_SETUP = "SET DateStyle=ISO; SET client_min_messages=notice; SET client_encoding='UTF8';"

CALL = re.compile(r"^-- @@(pgadmin|agent)-call (\d+):(.*)$", re.MULTILINE)


def sql_dir() -> Path | None:
    """Where the 22 files are: $NOTIFYAGENT_PGADMIN_SQL, a copy in the repository, or the
    shared research folder."""
    here = Path(__file__).resolve().parent
    candidates = [
        os.environ.get("NOTIFYAGENT_PGADMIN_SQL", ""),
        str(here / "pgadmin-sql"),
        str(here.parents[2] / "shared" / "reference" / "pgadmin-sql"),
    ]
    for c in candidates:
        if c and len(list(Path(c).glob("[0-9][0-9]_*.sql"))) == 22:
            return Path(c)
    return None


@dataclass(frozen=True)
class Call:
    file: str
    kind: str  # "pgadmin" or "agent"
    number: int
    label: str
    sql: str

    def __str__(self) -> str:
        return f"{self.file} {self.kind}-call {self.number}:{self.label}"


def parse(path: Path) -> list[Call]:
    """The calls of one file, in order (the file header before the first marker is dropped)."""
    text = path.read_text()
    marks = list(CALL.finditer(text))
    calls = []
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        body = text[m.end() : nxt.start() if nxt is not None else len(text)]
        calls.append(Call(path.name, m.group(1), int(m.group(2)), m.group(3).strip(), body))
    return calls


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9]_*.sql"))


class PgAdminSession:
    """One autocommit connection set up like pgAdmin's."""

    def __init__(self, dsn: str) -> None:
        self.conn: psycopg.Connection[DictRow] = psycopg.connect(
            dsn, autocommit=True, row_factory=dict_row
        )
        self.conn.execute(SESSION_SETUP.encode())

    def call(self, call: Call) -> list[dict[str, Any]] | None:
        """Send one call as one string; return the rows of its *last* result, as pgAdmin's
        ``execute_scalar``/``execute_dict`` do (None when the last result has no rows)."""
        cur = self.conn.execute(call.sql.encode())
        rows: list[dict[str, Any]] | None = None
        while True:
            rows = list(cur.fetchall()) if cur.description is not None else None
            if not cur.nextset():
                return rows

    def close(self) -> None:
        self.conn.close()


# -- the agent's queue log lines ----------------------------------------------------------

QUEUE_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) DEBUG\s+queue: job (?P<job>\d+) "
    r"(?:(?P<removed>removed)|due at (?P<due>.+?) \(in -?[\d.]+s\))\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class QueueEvent:
    at: float  # epoch seconds of the log line (millisecond resolution, truncated)
    job: int
    removed: bool
    due: datetime | None


def queue_events(log: str) -> Iterator[QueueEvent]:
    for m in QUEUE_LINE.finditer(log):
        yield QueueEvent(
            at=datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S.%f").timestamp(),
            job=int(m["job"]),
            removed=m["removed"] is not None,
            due=datetime.fromisoformat(m["due"]) if m["due"] else None,
        )
