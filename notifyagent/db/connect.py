"""Opening connections, with failures turned into clear, password-free errors."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import weakref
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.rows import DictRow, dict_row

from notifyagent import conninfo
from notifyagent.errors import ConnectError

RV = TypeVar("RV")
#: How often (seconds) a wait on a connection wakes up with nothing to read (see Connection).
QUIET_INTERVAL = 3600.0


class Connection(psycopg.AsyncConnection[DictRow]):
    """A connection whose waits wake up for its socket alone. psycopg's also wake every
    0.1 s (to notice Ctrl-C in its blocking twin): waiting for notifications, an idle agent
    woke ten times a second. asyncio cancels a wait without that."""

    def hang_up(self) -> None:
        """End the connection from our side so that a task waiting on it wakes at once (its
        socket reads end of file) and handles it as lost. Closing it instead would leave such
        a wait asleep: the event loop stops watching a closed descriptor."""
        with (
            contextlib.suppress(OSError, psycopg.Error),
            socket.socket(fileno=os.dup(self.pgconn.socket)) as sock,
        ):
            sock.shutdown(socket.SHUT_RDWR)

    async def wait(
        self,
        gen: PQGen[RV],
        interval: float = QUIET_INTERVAL,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg's signature
    ) -> RV:
        return await super().wait(gen, interval, timeout)


AsyncConn = Connection


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
        return await Connection.connect(target, autocommit=autocommit, row_factory=dict_row)
    except (psycopg.Error, OSError) as err:
        raise ConnectError(describe_connect_error(dsn, err)) from None


class IdleCheck:
    """Check a pooled connection with an empty query only when it sat idle for a while.

    A connection used moments ago is alive as far as we can know cheaply; one that waited
    longer (a server restart takes longer than ``after`` seconds) gets a round trip first.
    This keeps the round trip off the path from due time to step start.
    """

    def __init__(self, after: float = 1.0) -> None:
        self.after = after
        self._last_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def used(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._last_used[conn] = time.monotonic()

    async def check(self, conn: psycopg.AsyncConnection[Any], after: float | None = None) -> None:
        """Send the empty query when ``conn`` sat idle longer than ``after`` (default: the
        check's own)."""
        last = self._last_used.get(conn)
        if last is None or time.monotonic() - last > (self.after if after is None else after):
            await conn.execute("")
