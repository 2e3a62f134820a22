"""The SQL that lives in ``sql/`` as files.

``sql/queries.sql`` holds every statement notifyagent sends, each under a ``-- name: <name>``
line, so there is one obvious place to read the claim, the run and the release. An installed
wheel carries the files as package data (``notifyagent/_sql``, see pyproject.toml); a source
checkout reads the repository's ``sql/``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow


def sql_dir() -> Traversable:
    """``notifyagent/_sql`` of the installed package, else the repository's ``sql/``."""
    packaged = resources.files("notifyagent") / "_sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "sql"


@functools.cache
def script(name: str) -> str:
    """The whole text of ``sql/<name>.sql``."""
    return (sql_dir() / f"{name}.sql").read_text()


def named(text: str) -> dict[str, str]:
    """The statements of a file in the ``-- name: <name>`` format, by name (comments dropped)."""
    found: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        m = re.match(r"--\s*name:\s*(\w+)\s*$", line)
        if m:
            if name:
                found[name] = "\n".join(lines).strip().rstrip(";")
            name, lines = m.group(1), []
        elif name is not None and not line.startswith("--"):
            lines.append(line)
    if name:
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


@functools.cache
def _queries() -> dict[str, str]:
    return named(script("queries"))


def query(name: str) -> sql.SQL:
    """The statement named ``name`` in ``sql/queries.sql``, ready for ``execute``."""
    try:
        return sql.SQL(_queries()[name])
    except KeyError:
        raise KeyError(f"no query named {name!r} in {sql_dir() / 'queries.sql'}") from None


async def fetch(
    conn: psycopg.AsyncConnection[DictRow], name: str, **params: Any
) -> list[dict[str, Any]]:
    """The rows of the named query of ``sql/queries.sql`` on ``conn``."""
    cur = await conn.execute(query(name), params or None)
    return [dict(r) for r in await cur.fetchall()] if cur.description else []
