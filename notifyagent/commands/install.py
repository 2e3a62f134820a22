"""``notifyagent install`` / ``uninstall``: notifyagent's triggers and tables in a database."""

from __future__ import annotations

from loguru import logger

from notifyagent import db
from notifyagent.db import schema


async def install(dsn: str, force: bool) -> int:
    async with await db.connect(dsn) as conn:
        if not await schema.install(conn, force=force):
            logger.info(
                "notifyagent triggers are up to date (version {})",
                schema.NOTIFYAGENT_SCHEMA_VERSION,
            )
    return 0


async def uninstall(dsn: str) -> int:
    async with await db.connect(dsn) as conn:
        await schema.uninstall(conn)
    return 0
