"""The SQL steps' connections: kept open between runs, never more than the server allows.

A run opens none when an idle connection to its target is kept (the most recent one first:
its server process is the warmest). The number open at once is capped by :attr:`capacity`,
which the agent sets from what the server allows (``max_connections`` less the reserved slots
and the sessions in use, read at every connect); a step that finds no room waits for a
connection to come back instead of failing. A server that still answers "too many clients"
(other clients took the room meanwhile) makes the step wait and try again with backoff, as
for a server that is down: pgAgent fails such runs, a herd of due jobs then fails most of them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from typing import Any

import psycopg
from loguru import logger
from psycopg import pq

from notifyagent.agent.aio import Backoff
from notifyagent.db.connect import IdleCheck, describe_connect_error

#: Longest wait (seconds) between attempts after "too many clients".
FULL_BACKOFF_CAP = 2.0

Conn = psycopg.AsyncConnection[Any]


#: What the server says when it refuses a connection for want of a slot (SQLSTATE 53300,
#: which psycopg does not report for a failed connect): max_connections reached, the slots
#: left are reserved, or a role's or database's CONNECTION LIMIT reached.
FULL = ("too many clients", "connection slots are reserved", "too many connections for")


def server_full(err: BaseException) -> bool:
    """Whether a failed connect means no connection slot is free for us right now."""
    if getattr(err, "sqlstate", None) == "53300":
        return True
    return any(text in str(err) for text in FULL)


class StepConnections:
    def __init__(self, max_idle: int, capacity: int) -> None:
        self.max_idle = max_idle
        #: most connections open at once (idle and in use)
        self.capacity = max(1, capacity)
        self.open = 0
        self._idle: dict[str, list[Conn]] = defaultdict(list)
        self._idle_check = IdleCheck()
        #: steps waiting for room, woken one per connection that comes back or closes
        self._waiters: deque[asyncio.Future[None]] = deque()

    def set_capacity(self, capacity: int) -> None:
        capacity = max(1, capacity)
        if capacity != self.capacity:
            logger.info(
                "SQL steps use at most {} connection(s) at once (what the server allows)",
                capacity,
            )
        self.capacity = capacity

    async def acquire(self, target: str, idle_after: float | None = None) -> Conn:
        """A connection to ``target``: an idle one (checked with an empty query when idle
        longer than ``idle_after`` seconds), else a new one once there is room."""
        backoff = Backoff()
        while True:
            conn = await self._idle_one(target, idle_after)
            if conn is not None:
                return conn
            if self.open >= self.capacity and not await self._close_other_idle(target):
                await self._wait_room()
                continue
            self.open += 1
            try:
                return await self._connect(target)
            except (psycopg.Error, OSError) as err:
                self.open -= 1
                if not server_full(err):
                    raise
                self._full(target, err, backoff)
            await backoff.wait(FULL_BACKOFF_CAP)

    async def _idle_one(self, target: str, idle_after: float | None) -> Conn | None:
        idle = self._idle[target]
        while idle:
            conn = idle.pop()
            try:
                await self._idle_check.check(conn, idle_after)
                return conn
            except psycopg.Error:
                await self.close(conn)
        return None

    async def _close_other_idle(self, target: str) -> bool:
        """Make room by closing an idle connection to another target; whether there was one."""
        for other, idle in self._idle.items():
            if other != target and idle:
                await self.close(idle.pop(0))
                return True
        return False

    @staticmethod
    async def _connect(target: str) -> Conn:
        conn = await psycopg.AsyncConnection.connect(target, autocommit=True)
        # Step code is the user's, run as pgAgent runs it (simple query protocol); never let
        # psycopg prepare statements: DISCARD ALL between steps would drop them under it.
        conn.prepare_threshold = None
        return conn

    def _full(self, target: str, err: BaseException, backoff: Backoff) -> None:
        (logger.warning if backoff.waits == 0 else logger.debug)(
            "{}; the step waits for a free connection slot (retrying with backoff)",
            describe_connect_error(target, err),
        )
        # the room read at connect was taken by others: stay below what we hold now
        self.capacity = max(1, min(self.capacity, self.open))

    def keep(self, target: str, conn: Conn) -> None:
        """Put a clean connection on top of the idle list (it is taken next)."""
        self._idle_check.used(conn)
        self._idle[target].append(conn)
        self._wake()

    async def done(self, target: str, conn: Conn) -> None:
        """A step is done with ``conn``: keep it clean (no open transaction, no session state)
        for the next one, or close it."""
        if conn.closed:
            self._closed()
            return
        try:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                await conn.rollback()
            await conn.execute("DISCARD ALL")
        except psycopg.Error:
            await self.close(conn)
            return
        if len(self._idle[target]) < self.max_idle:
            self.keep(target, conn)
        else:
            await self.close(conn)

    async def close(self, conn: Conn) -> None:
        """Close a connection that was open (idle or in use) and make its room available."""
        await conn.close()
        self._closed()

    def _closed(self) -> None:
        self.open -= 1
        self._wake()

    async def _wait_room(self) -> None:
        room = asyncio.get_running_loop().create_future()
        self._waiters.append(room)
        try:
            await room
        finally:
            if not room.done():
                room.cancel()

    def _wake(self) -> None:
        """Wake the longest waiting step (it looks again for a connection or room)."""
        while self._waiters:
            room = self._waiters.popleft()
            if not room.done():
                room.set_result(None)
                return

    async def close_all(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                await self.close(conn)
        self._idle.clear()
