"""Checks of the pgagent schema and installation of notifyagent's own objects (``sql/``)."""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from notifyagent.db.connect import AsyncConn
from notifyagent.db.sql import fetch, query, script
from notifyagent.errors import ExtensionMissing, SchemaVersionMismatch

#: The pgagent schema version this agent speaks (pgAgent 4.x).
PGAGENT_SCHEMA_VERSION = 4
#: The version of sql/install.sql (must match ``notifyagent.version()`` defined there).
NOTIFYAGENT_SCHEMA_VERSION = 6


@dataclass(frozen=True)
class Probe:
    server_version: str
    dbname: str
    pgagent_version: str | None
    schema_version: int
    notifyagent_version: int | None


async def verify_pgagent(conn: AsyncConn) -> Probe:
    """Raise a clear error unless the database has the pgagent schema at version 4."""
    p = (await fetch(conn, "probe"))[0]
    if not p["has_pgagent"]:
        raise ExtensionMissing(
            f"database {p['dbname']!r} has no pgagent schema (table pgagent.pga_job not found): "
            f"run CREATE EXTENSION pgagent; in that database (pgAdmin and pgAgent use the "
            f"server's maintenance database, usually 'postgres'), then try again"
        )
    if not p["has_version_fn"]:
        raise SchemaVersionMismatch(
            "function pgagent.pgagent_schema_version() is missing: the pgagent schema is older "
            'than version 4; run ALTER EXTENSION "pgagent" UPDATE; and try again'
        )
    version = int((await fetch(conn, "pgagent_schema_version"))[0]["version"])
    if version != PGAGENT_SCHEMA_VERSION:
        raise SchemaVersionMismatch(
            f"unsupported pgagent schema version {version}: version {PGAGENT_SCHEMA_VERSION} is "
            'required; run ALTER EXTENSION "pgagent" UPDATE; (pgagent 4.x) and try again'
        )
    installed = None
    if p["has_notifyagent"]:
        installed = int((await fetch(conn, "notifyagent_version"))[0]["version"])
    return Probe(
        server_version=p["server_version"],
        dbname=p["dbname"],
        pgagent_version=p["extversion"],
        schema_version=version,
        notifyagent_version=installed,
    )


async def install(conn: AsyncConn, *, force: bool = False) -> bool:
    """Install or upgrade notifyagent's triggers; returns whether anything was done.

    Idempotent and safe when several agents start at once (advisory lock, one transaction).
    """
    probe = await verify_pgagent(conn)
    if probe.notifyagent_version == NOTIFYAGENT_SCHEMA_VERSION and not force:
        return False
    async with conn.transaction():
        await conn.execute(query("install_lock"))
        await conn.execute(script("install").encode())
    if probe.notifyagent_version is None:
        logger.info("installed notifyagent triggers (version {})", NOTIFYAGENT_SCHEMA_VERSION)
    elif probe.notifyagent_version != NOTIFYAGENT_SCHEMA_VERSION:
        logger.info(
            "upgraded notifyagent triggers from version {} to {}",
            probe.notifyagent_version,
            NOTIFYAGENT_SCHEMA_VERSION,
        )
    return True


async def uninstall(conn: AsyncConn) -> bool:
    """Remove notifyagent's schema and triggers; pgagent's own objects stay untouched.

    Returns whether there was anything to remove; says which, as :func:`install` does.
    """
    async with conn.transaction():
        await conn.execute(query("install_lock"))
        cur = await conn.execute(script("uninstall").encode())
        row = await cur.fetchone()
    present = bool(row and row["present"])
    if present:
        logger.info("removed notifyagent's schema and triggers")
    else:
        logger.info("nothing to remove: notifyagent is not installed in this database")
    return present
