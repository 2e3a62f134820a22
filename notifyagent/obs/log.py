"""Logging: loguru configured once, stdlib loggers (psycopg) routed into it, secrets scrubbed."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from loguru import logger

from notifyagent.core.observability import LEVELS
from notifyagent.core.secrets import scrub

if TYPE_CHECKING:
    from loguru import Record

HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<level>{message}</level>"
)

_handler_id: int | None = None


def _scrub_record(record: Record) -> None:
    record["message"] = scrub(record["message"])
    if record["exception"] is not None:
        exc = record["exception"]
        if exc.value is not None:
            record["extra"]["error"] = scrub(str(exc.value))


class _InterceptHandler(logging.Handler):
    """Send stdlib log records (psycopg, psycopg.pool) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        if record.name.startswith("psycopg.pool") and record.levelno < logging.ERROR:
            # one line per reconnect attempt or discarded connection: the agent itself says
            # when the database goes away and comes back
            level = "DEBUG"
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def setup(level: str = "INFO", fmt: str = "human") -> None:
    """(Re)configure the single log sink; safe to call again on a config reload."""
    global _handler_id
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    logger.configure(patcher=_scrub_record)
    if _handler_id is not None:
        logger.remove(_handler_id)
    else:
        logger.remove()
    if fmt == "json":
        _handler_id = logger.add(sys.stderr, level=level, serialize=True, backtrace=False)
    else:
        _handler_id = logger.add(
            sys.stderr, level=level, format=HUMAN_FORMAT, backtrace=False, diagnose=False
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
