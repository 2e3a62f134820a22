"""The statements of the LISTEN connection, which is also the agent's identity (its backend pid
is the agent id in ``pga_jobagent``, as pgAgent's main connection's is)."""

from __future__ import annotations

from datetime import datetime

import psycopg
from loguru import logger
from psycopg.rows import DictRow

from notifyagent.core.events import CHANNEL, KILL_CHANNEL
from notifyagent.core.ports import Reaped
from notifyagent.db.connect import AsyncConn
from notifyagent.db.sql import query


async def listen(conn: AsyncConn) -> None:
    """Our channel, and jpgAgent's kill channel (so its users' ``NOTIFY`` keeps working)."""
    await conn.execute(f"LISTEN {CHANNEL}")
    await conn.execute(f"LISTEN {KILL_CHANNEL}")


async def timezone(conn: AsyncConn) -> tuple[str, str]:
    """The database's default TimeZone and where it comes from (pg_settings.source)."""
    cur = await conn.execute(query("timezone"))
    row = await cur.fetchone()
    assert row is not None
    return str(row["tz"]), str(row["source"])


async def register(conn: AsyncConn, station: str) -> tuple[int, datetime]:
    """Insert our pga_jobagent row; (agent id, login time)."""
    params = {"station": station}
    try:
        cur = await conn.execute(query("register"), params)
    except psycopg.errors.UniqueViolation:
        # A row with our pid left by an agent of an earlier server incarnation (pid reuse):
        # it is certainly dead, since the pid is ours now. Clean it up like any zombie.
        pid = conn.info.backend_pid
        await reap(conn, pid)
        logger.warning("removed a stale pga_jobagent row that had our pid {}", pid)
        cur = await conn.execute(query("register"), params)
    row = await cur.fetchone()
    assert row is not None
    return int(row["jagpid"]), row["jaglogintime"]


async def adopt(conn: AsyncConn, old: int, login: datetime | None, new: int) -> tuple[bool, int]:
    """Move the running claims of our previous identity to the new one and delete its row;
    (whether that row was found here, claims moved). Not found after a DSN change: the new
    DSN names another database. Both this and :func:`reap` lock the agent row in a statement
    of their own first (sql/queries.sql: lock_agent)."""
    async with conn.transaction():
        await conn.execute(query("lock_agent"), {"pid": old})
        cur = await conn.execute(query("adopt_jobs"), {"old": old, "login": login, "new": new})
        row = await cur.fetchone()
    return (bool(row["found"]), int(row["moved"])) if row else (False, 0)


async def reap(conn: psycopg.AsyncConnection[DictRow], pid: int) -> Reaped:
    """Clean up after a dead agent: abort its runs, release its jobs, delete its row."""
    async with conn.transaction():
        await conn.execute(query("lock_agent"), {"pid": pid})
        cur = await conn.execute(query("reap_zombie"), {"pid": pid})
        r = await cur.fetchone()
    assert r is not None
    return Reaped(r["station"], int(r["runs"]), int(r["steps"]), int(r["jobs"]))
