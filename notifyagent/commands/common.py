"""What the operator commands share: a job found by id or name, rows as dicts, and text
tables or JSON for printing them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from notifyagent import db
from notifyagent.db.sql import fetch
from notifyagent.errors import ConfigError


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table sized to its contents."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def cell(value: Any) -> str:
    """One value as table text: times to the second, durations in seconds, text on one line."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():.3f}s"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())[:60]


def as_json(value: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return o.isoformat()
        if isinstance(o, dt.timedelta):
            return o.total_seconds()
        raise TypeError(type(o).__name__)

    return json.dumps(value, default=default, indent=2)


async def find_job(conn: db.AsyncConn, job: str) -> tuple[int, str]:
    """(id, name) of the job whose id or name is ``job``; an ambiguous name must be an id."""
    rows = await fetch(conn, "find_job", job=job)
    if not rows:
        raise ConfigError(f"no job with id or name {job!r}")
    if len(rows) > 1 and str(rows[0]["jobid"]) != job:
        ids = ", ".join(str(r["jobid"]) for r in rows)
        raise ConfigError(f"{len(rows)} jobs are named {job!r} (ids {ids}): give the id")
    return int(rows[0]["jobid"]), str(rows[0]["jobname"])
