"""The LISTEN connection, which is also the agent's identity in ``pga_jobagent``.

Like pgAgent's main connection, its backend pid is the agent id. It verifies and installs the
schema, listens, registers (or moves our claims to a new pid after a reconnect), and turns
notifications into events for the other parts. It reconnects with backoff, saying so once per
state change.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from loguru import logger

from notifyagent import db
from notifyagent.agent.aio import Backoff
from notifyagent.core import events
from notifyagent.core.config import Settings
from notifyagent.core.events import CHANNEL
from notifyagent.core.timetable import Origin
from notifyagent.db import identity, schema
from notifyagent.errors import (
    ConfigError,
    ConnectError,
    ExtensionMissing,
    NotifyAgentError,
    SchemaVersionMismatch,
)
from notifyagent.obs.metrics import Metrics

#: Longest wait between attempts to reach an unreachable server (seconds).
RECONNECT_BACKOFF_MAX = 1.0


class LinkState(enum.Enum):
    STARTING = "starting"
    UP = "up"
    #: the server cannot be reached
    DOWN = "down"
    #: the connection broke (it was up)
    LOST = "lost"
    #: the pgagent schema is missing or of another version
    SCHEMA = "schema"


class Host(Protocol):
    """What the listener needs from the agent it serves."""

    @property
    def settings(self) -> Settings: ...

    def own_pids(self) -> set[int]:
        """Backend pids of our pool: their notifications are our own writes."""
        ...

    def registered(self, other_database: bool) -> None:
        """Registered; ``other_database``: our previous identity was not found here."""
        ...

    def connected(self, tz: ZoneInfo) -> None: ...

    async def reconnected(self) -> None: ...

    def event(self, event: events.Event) -> None: ...


class Listener:
    def __init__(self, host: Host, metrics: Metrics, stop: asyncio.Event) -> None:
        self._host = host
        self._metrics = metrics
        self._stop = stop
        #: our backend pid, as registered in pga_jobagent
        self.agent_id: int | None = None
        #: the login time of our pga_jobagent row (with the pid, what makes the row ours)
        self._login: datetime | None = None
        #: set while registered and listening
        self.connected = asyncio.Event()
        #: cleared while a (re)connect registers a new id and moves our claims to it
        self._settled = asyncio.Event()
        self._settled.set()
        self.state = LinkState.STARTING
        self._conn: db.AsyncConn | None = None
        self._zone: str | None = None
        self._first = asyncio.Event()
        self._fatal: NotifyAgentError | None = None

    @property
    def connection(self) -> object | None:
        """The current connection (an identity to compare, nothing to use)."""
        return self._conn

    async def settled(self) -> None:
        """Return once no change of our agent id is under way (a release that found its claim
        moved by adopt_jobs waits here for the id it moved to)."""
        await self._settled.wait()

    async def first_registration(self) -> None:
        """Return once registered the first time; raise what made that impossible."""
        await self._first.wait()
        if self._fatal is not None:
            raise self._fatal

    def restart(self) -> None:
        """Reconnect (a new DSN, station or zone): no claims until registered again."""
        self.connected.clear()
        if self._conn is not None:
            self._conn.hang_up()

    async def drop(self, conn: object | None = None) -> None:
        """End ``conn`` (default: the current connection), if it is still the current one;
        the loop closes it, reconnects, re-registers and the scheduler resyncs."""
        if self._conn is not None and (conn is None or conn is self._conn):
            self._conn.hang_up()

    async def schema_lost(self, err: BaseException) -> None:
        """The pgagent tables vanished (DROP EXTENSION): stop using the database and find the
        schema again (retrying with backoff, saying so once)."""
        if not self.connected.is_set():
            return
        self.connected.clear()
        logger.error(
            "the pgagent schema is gone ({}): waiting for CREATE EXTENSION pgagent",
            str(err).splitlines()[0],
        )
        await self.drop()

    async def close(self) -> None:
        await self.drop()

    async def run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                conn = await db.connect(self._host.settings.dsn, app="notifyagent")
            except ConnectError as err:
                if self.state is not LinkState.DOWN:
                    logger.warning("database unreachable, retrying with backoff: {}", err)
                    self.state = LinkState.DOWN
                # capped low: a refused connect costs nothing, and the agent must be back
                # within moments of the server accepting connections again
                cap = min(RECONNECT_BACKOFF_MAX, self._host.settings.max_backoff)
                await backoff.wait(cap, self._stop)
                continue
            self._conn = conn
            try:
                await self._session(conn, backoff)
            except (ExtensionMissing, SchemaVersionMismatch, ConfigError) as err:
                if not self._first.is_set():
                    self._fatal = err
                    self._first.set()
                    return
                if self.state is not LinkState.SCHEMA:
                    logger.error("{} (retrying with backoff)", err)
                    self.state = LinkState.SCHEMA
                await backoff.wait(self._host.settings.max_backoff, self._stop)
            except (psycopg.Error, OSError) as err:
                if self._stop.is_set():
                    return
                await self._lost(err, backoff)
            finally:
                self.connected.clear()
                self._metrics.connected.set(0)
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _lost(self, err: BaseException, backoff: Backoff) -> None:
        if self.state is LinkState.UP:
            logger.warning(
                "lost the LISTEN connection ({}); reconnecting and resyncing",
                " ".join(str(err).split()) or type(err).__name__,
            )
            self.state = LinkState.LOST
        at_most = 0.2 if self.state is LinkState.LOST else None
        await backoff.wait(self._host.settings.max_backoff, self._stop, at_most)

    async def _session(self, conn: db.AsyncConn, backoff: Backoff) -> None:
        await self._on_connect(conn)
        backoff.reset()
        if self.state in (LinkState.DOWN, LinkState.LOST):
            await self._host.reconnected()
            logger.info("reconnected to the database (agent id {})", self.agent_id)
        self.state = LinkState.UP
        async with contextlib.aclosing(conn.notifies()) as notifies:
            async for n in notifies:
                self._notified(n.payload, n.pid, n.channel)

    async def _on_connect(self, conn: db.AsyncConn) -> None:
        """Verify and install, LISTEN, register (or move our claims to the new pid); then the
        scheduler resyncs, so a change made while we were away cannot be missed."""
        await schema.verify_pgagent(conn)
        await schema.install(conn)
        await identity.listen(conn)
        tz = await self._timezone(conn)
        old = self.agent_id
        self._settled.clear()
        try:
            found, new = await self._register(conn)
        finally:
            self._settled.set()
        self._host.registered(other_database=not found)
        if old is not None:
            self._metrics.reconnects.inc()
        self.connected.set()
        self._metrics.connected.set(1)
        self._host.connected(tz)
        if not self._first.is_set():
            logger.info(
                "registered as agent {} (station {!r}); listening on channel {!r}",
                new,
                self._host.settings.station,
                CHANNEL,
            )
            self._first.set()

    async def _register(self, conn: db.AsyncConn) -> tuple[bool, int]:
        """Register a new id and move our running claims to it; (whether our previous identity
        was found in this database, the new id). The new id counts once the claims moved to it:
        an attempt that fails between the two leaves the old one (and its login time) for the
        next attempt to adopt."""
        old, login = self.agent_id, self._login
        new, new_login = await identity.register(conn, self._host.settings.station)
        found = True
        if old is not None and old != new:
            found, moved = await identity.adopt(conn, old, login, new)
            logger.info("agent id changed {} -> {}; {} running claim(s) moved", old, new, moved)
        self.agent_id, self._login = new, new_login
        return found, new

    async def _timezone(self, conn: db.AsyncConn) -> ZoneInfo:
        """Schedules are read in one explicit zone: --timezone, else the database's default
        TimeZone (what pgAdmin's sessions use when they save a schedule)."""
        if self._host.settings.timezone:
            name, source = self._host.settings.timezone, "--timezone"
        else:
            name, origin = await identity.timezone(conn)
            source = f"database default ({origin})"
            if origin == "client":
                logger.warning(
                    "TimeZone {} comes from this client's environment (PGTZ?), not from the "
                    "database; pgAdmin may save schedules in another zone: set --timezone",
                    name,
                )
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"time zone {name!r} ({source}) is not an IANA time zone name: "
                "pass --timezone, e.g. --timezone Europe/Berlin"
            ) from None
        if name != self._zone:
            logger.info("schedules are read in time zone {} ({})", name, source)
            self._zone = name
        return tz

    def _notified(self, payload: str, sender: int, channel: str = CHANNEL) -> None:
        kind = events.label(payload) if channel == CHANNEL else events.CANCEL
        self._metrics.notifications.labels(kind).inc()
        event = received(payload, sender, self._host.own_pids(), channel)
        if event is not None:
            self._host.event(event)


def received(
    payload: str, sender: int, own_pids: set[int], channel: str = CHANNEL
) -> events.Event | None:
    """The event a notification brings; None when there is nothing to do."""
    if channel == events.KILL_CHANNEL:
        event = events.parse_kill(payload, sender)
    else:
        event = events.parse(payload)
    match event:
        case events.JobsChanged(origin) if origin is Origin.EXPLICIT and sender in own_pids:
            # our own write (a release, a correction): the queue already knows; taking it
            # for a client's explicit value would stop the next correction of these jobs
            return None
        case events.Malformed():
            logger.warning(
                "ignored a malformed notification on channel {!r} from backend {}: {!r}",
                channel,
                sender,
                payload[:200],
            )
            return None
        case events.Resync():
            logger.debug("resync requested by a notification")
    return event
