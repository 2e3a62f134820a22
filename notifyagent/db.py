"""Opening connections, with failures turned into clear, password-free errors."""

from __future__ import annotations

import psycopg
from psycopg.rows import DictRow, dict_row

from notifyagent import conninfo
from notifyagent.errors import ConnectError

AsyncConn = psycopg.AsyncConnection[DictRow]


def describe_connect_error(dsn: str, err: BaseException) -> str:
    """One message: where we tried to connect and libpq's reason, without the password."""
    reason = " ".join(str(err).split()) or type(err).__name__
    return conninfo.scrub(f"cannot connect to {conninfo.display(dsn)}: {reason}")


async def connect(dsn: str, *, autocommit: bool = True, app: str = "notifyagent") -> AsyncConn:
    """Connect with keepalives and ``application_name``; raise :class:`ConnectError` on failure."""
    try:
        target = conninfo.with_keepalives(dsn)
        if "application_name" not in conninfo.parse(dsn):
            target = conninfo.with_params(target, application_name=app)
        return await psycopg.AsyncConnection.connect(
            target, autocommit=autocommit, row_factory=dict_row
        )
    except (psycopg.Error, OSError) as err:
        raise ConnectError(describe_connect_error(dsn, err)) from None
