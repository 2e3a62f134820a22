"""Work off the scheduling path: the liveness check (with the cleanup after dead agents) and
history retention.

The liveness check is the only traffic of an idle agent: one statement sends a ping through
the notification channel and finds the dead agents; the ping must come back on the LISTEN
connection, or the listener is taken to be deaf and replaced.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import psycopg
from loguru import logger

from notifyagent.agent.aio import Background, wait_event
from notifyagent.agent.connections import schema_gone
from notifyagent.core.config import Settings
from notifyagent.core.ports import Reaped, Store
from notifyagent.obs.metrics import Metrics

#: How long a statement of the liveness check may go unanswered before the database is taken
#: to be unreachable and the LISTEN connection is replaced (result ``timeout``).
LIVENESS_TIMEOUT = 10.0
#: How long the ping may take to come back on the LISTEN connection, counted from the answer
#: of the statement that sent it, before the listener is taken to be deaf and replaced (result
#: ``ping_lost``). A budget of its own: the statement's timeout cannot pre-empt it.
PING_TIMEOUT = 10.0


class Link(Protocol):
    """The listener, as far as the liveness check is concerned."""

    agent_id: int | None
    connected: asyncio.Event

    @property
    def connection(self) -> object | None: ...

    async def drop(self, conn: object | None = None) -> None: ...

    async def schema_lost(self, err: BaseException) -> None: ...


class Maintenance:
    def __init__(
        self,
        settings: Callable[[], Settings],
        store: Callable[[], Store],
        link: Link,
        metrics: Metrics,
        stop: asyncio.Event,
        background: Background,
    ) -> None:
        self._settings = settings
        self._store = store
        self._link = link
        self._metrics = metrics
        self._stop = stop
        self._background = background
        self._ping_seq = itertools.count(1)
        self._ping_expected: str | None = None
        self._ping_back = asyncio.Event()
        #: told of the overdue count of each liveness check, and of each dead agent cleaned up
        self.on_overdue: Callable[[int], Awaitable[None]] | None = None
        self.on_dead_agent: Callable[[int, Reaped], None] | None = None

    def pong(self, payload: str) -> None:
        """A ping came back on the LISTEN connection."""
        if payload == self._ping_expected:
            self._ping_back.set()

    # -- liveness ----------------------------------------------------------------------------

    async def liveness_forever(self) -> None:
        while not self._stop.is_set():
            interval = self._settings().liveness_interval
            if self._link.connected.is_set():
                result = await self._checked()
                if result is not None:
                    self._metrics.liveness.labels(result).inc()
            if interval <= 0:
                return
            await wait_event(self._stop, interval)

    async def _checked(self) -> str | None:
        """One check, its failures turned into results: 'timeout', 'error'."""
        try:
            return await self._liveness_check()
        except TimeoutError:
            logger.warning("liveness check got no answer in {:g}s: reconnecting", LIVENESS_TIMEOUT)
            await self._link.drop()
            return "timeout"
        except (psycopg.Error, OSError) as err:
            if schema_gone(err):
                await self._link.schema_lost(err)
            else:
                logger.warning("liveness check failed: {}", err)
            return "error"

    async def _liveness_check(self) -> str | None:
        """One statement sends the ping and finds the dead agents; then the ping's round trip
        and the cleanup run side by side, each with its own time limit: a lost ping neither
        cancels the cleanup nor passes for a database that does not answer (TimeoutError).

        Returns 'ok' or 'ping_lost'; None when the listener was replaced during the check (a
        ping sent before its LISTEN cannot reach it; that loss was noticed already).
        """
        me = self._link.agent_id
        listener = self._link.connection
        ping = f"ping:{me}:{next(self._ping_seq)}"
        self._ping_expected = ping
        self._ping_back.clear()
        grace = self._settings().missed_grace or None
        found = await self._background.bounded(
            self._store().liveness(ping, grace), LIVENESS_TIMEOUT
        )
        cleanup = asyncio.ensure_future(self._reap_zombies(found.zombies, me))
        try:
            back = await wait_event(self._ping_back, PING_TIMEOUT)
        except BaseException:
            cleanup.cancel()
            raise
        result: str | None = "ok"
        if not back:
            if listener is None or self._link.connection is not listener:
                result = None
            else:
                result = "ping_lost"
                logger.warning(
                    "notification round trip failed (no ping back in {:g}s): reconnecting the "
                    "listener",
                    PING_TIMEOUT,
                )
                await self._link.drop(listener)
        await cleanup
        if self.on_overdue is not None:
            await self.on_overdue(found.overdue)
        return result

    async def _reap_zombies(self, pids: Sequence[int], me: int | None) -> None:
        """Clean up after each dead agent, one transaction each."""
        for pid in pids:
            if pid in (me, self._link.agent_id):
                continue  # our own earlier identity: the reconnect moves its claims
            try:
                done = await self._background.bounded(
                    self._store().reap_zombie(pid), LIVENESS_TIMEOUT
                )
            except TimeoutError:
                logger.warning(
                    "could not clean up dead agent {}: no answer in {:g}s", pid, LIVENESS_TIMEOUT
                )
                return
            except psycopg.Error as err:
                logger.error("could not clean up dead agent {}: {}", pid, err)
                continue
            self._metrics.zombies.inc()
            if self.on_dead_agent is not None and done.station is not None:
                self.on_dead_agent(pid, done)
            logger.warning(
                "cleaned up dead agent {} (station {}): {} run(s) marked aborted, "
                "{} job(s) released",
                pid,
                done.station,
                done.runs,
                done.jobs,
            )

    # -- history retention -------------------------------------------------------------------

    async def retention_forever(self) -> None:
        """Delete old run history now and then (off by default)."""
        while not self._stop.is_set():
            days, keep = self._settings().history_days, self._settings().history_keep
            if (days is not None or keep is not None) and self._link.connected.is_set():
                await self._prune(days, keep)
            await wait_event(self._stop, max(1.0, self._settings().history_interval))

    async def _prune(self, days: float | None, keep: int | None) -> None:
        try:
            deleted = await self._store().prune_history(days, keep)
        except (psycopg.Error, OSError) as err:
            logger.warning("history cleanup failed: {}", err)
            return
        if deleted is None:
            logger.debug("history cleanup: another agent is doing it")
            return
        self._metrics.history_deleted.inc(deleted)
        logger.info(
            "history cleanup: deleted {} run(s) (older than {} days / beyond the newest {} "
            "per job)",
            deleted,
            "-" if days is None else f"{days:g}",
            "-" if keep is None else keep,
        )
