"""The agent: listens for changes, keeps the due-queue, claims and runs jobs on time.

These tasks share one event loop:

* the *listener* owns the LISTEN connection, which is also the agent's identity in
  ``pga_jobagent`` (its backend pid), and turns notifications into dirty job ids;
* the *scheduler* owns the due-queue: it refreshes what changed, claims due jobs up to the
  free concurrency slots and sleeps until the next deadline or the next notification;
* the *liveness* task checks the notification round trip and reaps dead agents;
* the *retention* task deletes old run history (only when configured);
* one task per running job.

No task polls the job table: an idle agent sends only the liveness check.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from loguru import logger

from notifyagent import conninfo, db, schema
from notifyagent.core import config
from notifyagent.core.config import Settings
from notifyagent.core.observability import parse_address
from notifyagent.core.policy import DEFAULT, Catchup, Overlap, Policy
from notifyagent.core.queue import DueQueue
from notifyagent.core.timetable import Origin, Row, Stored, Timetable, parse_stored
from notifyagent.errors import (
    ConfigError,
    ConnectError,
    ExtensionMissing,
    NotifyAgentError,
    SchemaVersionMismatch,
)
from notifyagent.jobs import run_steps
from notifyagent.obs import log
from notifyagent.obs.metrics import HealthServer, Metrics
from notifyagent.sqlfiles import query
from notifyagent.steps import StepRunner
from notifyagent.store import ClaimedJob, JobState, Store

CHANNEL = "notifyagent"
ORIGINS = {o.value: o for o in (Origin.EXPLICIT, Origin.RECOMPUTED, Origin.SCHEDULES)}
ORIGINS["exception"] = Origin.SCHEDULES
POLICY = "policy"
#: How long a statement of the liveness check may go unanswered before the database is taken
#: to be unreachable and the LISTEN connection is replaced (result ``timeout``).
LIVENESS_TIMEOUT = 10.0
#: How long the ping may take to come back on the LISTEN connection, counted from the answer
#: of the statement that sent it, before the listener is taken to be deaf and replaced (result
#: ``ping_lost``). A budget of its own: the statement's timeout cannot pre-empt it.
PING_TIMEOUT = 10.0
#: Longest wait between attempts to reach an unreachable server (seconds).
RECONNECT_BACKOFF_MAX = 1.0
#: First retry delay for a due job whose row another session holds locked.
LOCKED_RETRY = 0.05

T = TypeVar("T")


@dataclass
class _Departure:
    """The connections and identity in use before a DSN change. Whether the new DSN names
    the same database is known only once the listener registered there (``other_database``)."""

    store: Store
    runner: StepRunner
    agent: int | None
    login: datetime | None
    tasks: list[asyncio.Task[None]]
    other_database: asyncio.Future[bool]


def payload_items(rest: str) -> list[tuple[int, Stored | None]]:
    """The ``<id>`` or ``<id>=<value>`` items of a job notification, with the value the
    notifying transaction left (None when the payload does not say). Raises ValueError."""
    items = []
    for item in rest.split(","):
        if not item:
            continue
        job_id, sep, value = item.partition("=")
        items.append((int(job_id), parse_stored(value) if sep else None))
    return items


def schema_gone(err: BaseException) -> bool:
    """Whether ``err`` says the pgagent (or notifyagent) objects are missing."""
    return isinstance(
        err,
        psycopg.errors.UndefinedTable
        | psycopg.errors.UndefinedFunction
        | psycopg.errors.InvalidSchemaName,
    )


class Agent:
    def __init__(self, settings: Settings, reload: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        self._reload_settings = reload
        self.queue = DueQueue()
        self.store, self.runner = self._connections()
        self.agent_id: int | None = None
        #: the login time of our pga_jobagent row (with the pid, what makes the row ours)
        self._login: datetime | None = None
        self.running: dict[int, asyncio.Task[None]] = {}
        #: a DSN change not yet settled by the listener's registration under the new DSN
        self._departure: _Departure | None = None
        #: pools of databases a DSN change left, with the agent id our runs there still hold
        self._departed: dict[Store, int] = {}
        #: runs still going in such a database
        self._departing: set[asyncio.Task[None]] = set()
        self._claimed: dict[int, ClaimedJob] = {}
        #: Run now requested while the job was running: run again right after it.
        self._rerun: dict[int, datetime] = {}
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._dirty: dict[int, Origin] = {}
        #: the jobnextrun the last notification of a dirty job says its transaction left
        self._notified: dict[int, Stored] = {}
        #: the jobnextrun this agent last wrote itself (release, correction), per job
        self._written: dict[int, Stored] = {}
        self._dirty_policies: set[int] = set()
        self._schedules_changed: set[int] = set()
        self.policies: dict[int, Policy] = {}
        #: failed attempts of jobs whose policy retries them
        self._attempts: dict[int, int] = {}
        self._resync = True
        self.timetable: Timetable | None = None
        #: server clock minus local clock (seconds), measured with every job_states query
        self._clock_offset = 0.0
        self._locked_retries: dict[int, int] = {}
        self._ping_seq = itertools.count(1)
        self._ping_expected: str | None = None
        self._ping_back = asyncio.Event()
        self._listen_conn: db.AsyncConn | None = None
        self._first_connect: asyncio.Future[None] | None = None
        self._loaded = False
        self._background: set[asyncio.Future[Any]] = set()
        self.metrics = Metrics()
        self.metrics.queue_size.set_function(lambda: len(self.queue))
        self.metrics.running.set_function(lambda: len(self.running))
        self._health: HealthServer | None = None
        #: Set once the due-queue was loaded from the database for the first time.
        self.ready = asyncio.Event()

    def _connections(self) -> tuple[Store, StepRunner]:
        """The bookkeeping pool and the step runner for the current settings."""
        s = self.settings
        store = Store(s.dsn, max_size=min(s.max_concurrency, 8) + 2)
        runner = StepRunner(
            s.dsn, max_output=s.max_output, batch_steps=s.batch_steps, max_idle=s.max_concurrency
        )
        return store, runner

    # -- lifecycle ----------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        self._first_connect = loop.create_future()
        logger.info(
            "notifyagent starting: station {!r}, database {}, max concurrency {}",
            self.settings.station,
            conninfo.display(self.settings.dsn),
            self.settings.max_concurrency,
        )
        if self.settings.metrics_address:
            self._health = HealthServer(
                parse_address(self.settings.metrics_address), self.metrics, loop, self.readiness
            )
            self._health.start()
            host, port = self._health.address
            logger.info("metrics and health on http://{}:{}/metrics, /healthz, /readyz", host, port)
        listener = asyncio.create_task(self._listen_forever(), name="listener")
        tasks: list[asyncio.Task[None]] = [listener]
        try:
            stop = asyncio.ensure_future(self._stop.wait())
            waiting: list[asyncio.Future[Any]] = [self._first_connect, stop]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if self._first_connect.done():
                self._first_connect.result()  # a fatal schema error ends serve() here
                await self.store.open()
                tasks.append(asyncio.create_task(self._liveness_forever(), name="liveness"))
                tasks.append(asyncio.create_task(self._retention_forever(), name="retention"))
                await self._schedule_forever()
        finally:
            await self._shutdown(tasks)
        return 0

    def readiness(self) -> tuple[bool, str]:
        """For /readyz: connected, listening and the queue loaded (and not stopping)."""
        if self._stop.is_set():
            return False, "stopping"
        if not self._connected.is_set():
            return False, "not connected to the database"
        if not self._loaded:
            return False, "queue not loaded yet"
        return True, f"ready: agent {self.agent_id}, {len(self.queue)} job(s) queued"

    def request_reload(self, source: str = "SIGHUP") -> None:
        """Read the settings again (config file, environment) and apply what changed."""
        if self._reload_settings is None:
            logger.warning("reload requested ({}) but there is no config to reload", source)
            return
        logger.info("reload requested ({})", source)
        try:
            new = self._reload_settings()
        except NotifyAgentError as err:
            logger.error("reload refused, keeping the current settings: {}", err)
            return
        self.apply_settings(new)

    def apply_settings(self, new: Settings) -> None:
        """Apply changed settings; running jobs are never interrupted. DSN and station changes
        reconnect the LISTEN connection (and so re-register); the rest applies at once."""
        changes = config.diff(self.settings, new)
        if not changes:
            logger.info("reload: nothing changed")
            return
        for key, (old, value) in changes.items():
            shown = (
                (conninfo.display(old), conninfo.display(value)) if key == "dsn" else (old, value)
            )
            logger.info("reload: {} {!r} -> {!r}", key, *shown)
        self.settings = new
        if {"log_level", "log_format"} & changes.keys():
            log.setup(new.log_level, new.log_format)
        if "metrics_address" in changes:
            logger.warning("metrics_address changes take effect at the next start")
        self.runner.max_output = new.max_output
        self.runner.batch_steps = new.batch_steps
        if "dsn" in changes:
            self._replace_connections()
        if {"dsn", "station"} & changes.keys() and self._listen_conn is not None:
            asyncio.get_running_loop().create_task(self._listen_conn.close())
        if "timezone" in changes and self._listen_conn is not None:
            # the reconnect reads the new zone and resyncs, which corrects the next runs
            asyncio.get_running_loop().create_task(self._listen_conn.close())
        self._wake.set()

    def _replace_connections(self) -> None:
        """New pools for the new DSN; jobs running now finish on the old ones. No claims until
        the listener registered under the new DSN: only then is it known whether that names
        the same database (the runs' claims move to the new identity) or another one (the runs
        are released where they were claimed, and the old agent row is deleted there)."""
        loop = asyncio.get_running_loop()
        old = _Departure(
            self.store,
            self.runner,
            self.agent_id,
            self._login,
            list(self.running.values()),
            loop.create_future(),
        )
        self._departure = old
        self.store, self.runner = self._connections()
        self._connected.clear()

        async def retire() -> None:
            await self.store.open()
            await asyncio.gather(*old.tasks, return_exceptions=True)
            if await old.other_database and old.agent is not None:
                try:
                    await old.store.unregister(old.agent)
                    logger.info("left the old database: agent {} unregistered there", old.agent)
                except (psycopg.Error, OSError) as err:
                    logger.warning("could not delete agent row {} there: {}", old.agent, err)
            self._departed.pop(old.store, None)
            await old.store.close()
            await old.runner.close()

        task = loop.create_task(retire())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _settle_departure(self, other_database: bool) -> None:
        """The listener registered under the new DSN: ``other_database`` says whether the old
        identity was found there. Runs of another database leave the running set (they no
        longer block this database's jobs of the same id) and are released where they run."""
        departure, self._departure = self._departure, None
        if departure is None:
            return
        if other_database and departure.agent is not None:
            self._departed[departure.store] = departure.agent
            self._departing.update(self.running.values())
            if self.running:
                logger.info(
                    "the new DSN names another database: {} running job(s) finish and are "
                    "released in the old one",
                    len(self.running),
                )
            self.running, self._claimed = {}, {}
            self._rerun.clear()
            self._attempts.clear()
        departure.other_database.set_result(other_database)

    def request_stop(self) -> None:
        if self._stop.is_set():
            logger.warning("second stop signal: cancelling running jobs now")
            self._abort.set()
        else:
            logger.info(
                "stop requested: no new jobs; waiting up to {}s for {} running job(s)",
                self.settings.shutdown_timeout,
                len(self.running),
            )
            self._stop.set()
        self._wake.set()

    async def _shutdown(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        self._stop.set()
        await self._wait_or_cancel_jobs()
        self._settle_departure(False)
        if self._background:
            await asyncio.wait(self._background, timeout=10)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.agent_id is not None:
            try:
                await asyncio.wait_for(self.store.unregister(self.agent_id), 10)
                logger.info("unregistered agent {} from pgagent.pga_jobagent", self.agent_id)
            except (psycopg.Error, TimeoutError, OSError) as err:
                logger.warning("could not delete agent row {}: {}", self.agent_id, err)
        if self._listen_conn is not None:
            await self._listen_conn.close()
        await self.store.close()
        await self.runner.close()
        if self._health is not None:
            self._health.stop()
        logger.info("notifyagent stopped")

    async def _wait_or_cancel_jobs(self) -> None:
        """Let running jobs finish until the shutdown timeout (or a second signal); then cancel
        them: their runs are marked 'd' and their jobs released by the job tasks themselves."""
        pending = set(self.running.values()) | self._departing
        if not pending:
            return
        deadline = time.monotonic() + self.settings.shutdown_timeout
        while pending and not self._abort.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            abort = asyncio.ensure_future(self._abort.wait())
            done, _ = await asyncio.wait(
                [*pending, abort], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            abort.cancel()
            pending -= done
        if pending:
            logger.warning("cancelling {} running job(s)", len(pending))
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- listener -----------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        backoff = 0.1
        state = "starting"
        while not self._stop.is_set():
            try:
                conn = await db.connect(self.settings.dsn, app="notifyagent")
            except ConnectError as err:
                if state != "down":
                    logger.warning("database unreachable, retrying with backoff: {}", err)
                    state = "down"
                await self._sleep_or_stop(backoff)
                # capped low: a refused connect costs nothing, and the agent must be back
                # within moments of the server accepting connections again
                backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX, self.settings.max_backoff)
                continue
            self._listen_conn = conn
            try:
                await self._on_connect(conn)
                backoff = 0.1
                if state == "down" or state == "lost":
                    if self._loaded:  # the pool is open: drop the connections that died
                        await self.store.check()
                    logger.info("reconnected to the database (agent id {})", self.agent_id)
                state = "up"
                async with contextlib.aclosing(conn.notifies()) as notifies:
                    async for n in notifies:
                        self._on_notify(n.payload, n.pid)
            except (ExtensionMissing, SchemaVersionMismatch, ConfigError) as err:
                if self._first_connect is not None and not self._first_connect.done():
                    self._first_connect.set_exception(err)
                    return
                if state != "schema":
                    logger.error("{} (retrying with backoff)", err)
                    state = "schema"
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff)
            except (psycopg.Error, OSError) as err:
                if self._stop.is_set():
                    return
                if state == "up":
                    logger.warning(
                        "lost the LISTEN connection ({}); reconnecting and resyncing",
                        " ".join(str(err).split()) or type(err).__name__,
                    )
                    state = "lost"
                await self._sleep_or_stop(min(backoff, 0.2) if state == "lost" else backoff)
                backoff = min(backoff * 2, self.settings.max_backoff)
            finally:
                self._connected.clear()
                self.metrics.connected.set(0)
                self._listen_conn = None
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _on_connect(self, conn: db.AsyncConn) -> None:
        """Verify and install, LISTEN, register (or move our claims to the new pid); then the
        scheduler resyncs, so a change made while we were away cannot be missed."""
        await schema.verify_pgagent(conn)
        await schema.install(conn)
        await conn.execute(f"LISTEN {CHANNEL}")
        await self._set_timezone(conn)
        old, login = self.agent_id, self._login
        new, self._login = await self._register(conn)
        found = True
        if old is not None and old != new:
            cur = await conn.execute(query("adopt_jobs"), {"old": old, "login": login, "new": new})
            row = await cur.fetchone()
            found = bool(row and row["found"])
            moved = row["moved"] if row else 0
            logger.info("agent id changed {} -> {}; {} running claim(s) moved", old, new, moved)
        self._settle_departure(not found)
        if old is not None:
            self.metrics.reconnects.inc()
        self.agent_id = new
        self._resync = True
        self._connected.set()
        self.metrics.connected.set(1)
        self._wake.set()
        if self._first_connect is not None and not self._first_connect.done():
            logger.info(
                "registered as agent {} (station {!r}); listening on channel {!r}",
                new,
                self.settings.station,
                CHANNEL,
            )
            self._first_connect.set_result(None)

    async def _set_timezone(self, conn: db.AsyncConn) -> None:
        """Schedules are read in one explicit zone: --timezone, else the database's default
        TimeZone (what pgAdmin's sessions use when they save a schedule)."""
        if self.settings.timezone:
            name, source = self.settings.timezone, "--timezone"
        else:
            cur = await conn.execute(query("timezone"))
            row = await cur.fetchone()
            assert row is not None
            name, source = str(row["tz"]), f"database default ({row['source']})"
            if row["source"] == "client":
                logger.warning(
                    "TimeZone {} comes from this client's environment (PGTZ?), not from the "
                    "database; pgAdmin may save schedules in another zone: set --timezone",
                    name,
                )
        if self.timetable is not None and self.timetable.tz.key == name:
            return
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"time zone {name!r} ({source}) is not an IANA time zone name: "
                "pass --timezone, e.g. --timezone Europe/Berlin"
            ) from None
        logger.info("schedules are read in time zone {} ({})", name, source)
        if self.timetable is None:
            self.timetable = Timetable(tz)
        else:
            self.timetable.tz = tz

    async def _register(self, conn: db.AsyncConn) -> tuple[int, datetime]:
        params = {"station": self.settings.station}
        try:
            cur = await conn.execute(query("register"), params)
        except psycopg.errors.UniqueViolation:
            # A row with our pid left by an agent of an earlier server incarnation (pid reuse):
            # it is certainly dead, since the pid is ours now. Clean it up like any zombie.
            pid = conn.info.backend_pid
            await conn.execute(query("reap_zombie"), {"pid": pid})
            logger.warning("removed a stale pga_jobagent row that had our pid {}", pid)
            cur = await conn.execute(query("register"), params)
        row = await cur.fetchone()
        assert row is not None
        return int(row["jagpid"]), row["jaglogintime"]

    def _on_notify(self, payload: str, sender: int) -> None:
        kind, _, rest = payload.partition(":")
        origin = ORIGINS.get(kind)
        self.metrics.notifications.labels(
            kind if origin or kind in ("ping", "resync") else "other"
        ).inc()
        if origin is not None:
            try:
                items = payload_items(rest)
            except ValueError:
                items = []
            if origin is Origin.EXPLICIT and sender in self.store.pids:
                # our own write (a release, a correction): the queue already knows; taking it
                # for a client's explicit value would stop the next correction of these jobs
                return
            if items:
                # notifications arrive in commit order, so the last one says who wrote the
                # stored next run last: a client (honour it) or a recompute (check it), and
                # which value that was
                for job_id, value in items:
                    self._dirty[job_id] = origin
                    if value is None:
                        self._notified.pop(job_id, None)
                    else:
                        self._notified[job_id] = value
                if origin is Origin.SCHEDULES:
                    self._schedules_changed.update(job_id for job_id, _ in items)
                self._wake.set()
                return
        elif kind == POLICY:
            try:
                self._dirty_policies.update(int(x) for x in rest.split(",") if x)
            except ValueError:
                pass
            else:
                self._wake.set()
                return
        elif payload == "resync":
            logger.debug("resync requested by a notification")
            self._resync = True
            self._wake.set()
            return
        elif kind == "ping":
            if payload == self._ping_expected:
                self._ping_back.set()
            return
        logger.warning(
            "ignored a malformed notification on channel {!r} from backend {}: {!r}",
            CHANNEL,
            sender,
            payload[:200],
        )

    # -- scheduler ----------------------------------------------------------------------

    async def _schedule_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if not self._connected.is_set():
                    await self._wait_connected()
                if self._stop.is_set():
                    break
                await self._refresh()
                while await self._dispatch():
                    pass
            except (psycopg.Error, OSError) as err:
                self._resync = True
                if schema_gone(err):
                    await self._schema_lost(err)
                    continue
                logger.warning("scheduler: database error ({}); will resync", err)
                await self._sleep_or_stop(0.2)
                continue
            timeout = self.settings.max_sleep
            nxt = self.queue.next_deadline()
            self.metrics.next_due.set(float("nan") if nxt is None else nxt - loop.time())
            if nxt is not None and len(self.running) < self.settings.max_concurrency:
                timeout = min(timeout, max(0.0, nxt - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _schema_lost(self, err: BaseException) -> None:
        """The pgagent tables vanished (DROP EXTENSION): stop using the database and let the
        listener find the schema again (it retries with backoff and says so once)."""
        if not self._connected.is_set():
            return
        self._connected.clear()
        self._resync = True
        logger.error(
            "the pgagent schema is gone ({}): waiting for CREATE EXTENSION pgagent",
            str(err).splitlines()[0],
        )
        if self._listen_conn is not None:
            await self._listen_conn.close()

    async def _wait_connected(self) -> None:
        connected = asyncio.ensure_future(self._connected.wait())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([connected, stop], return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        stop.cancel()

    async def _refresh(self) -> None:
        """Bring the queue up to date: everything after a (re)connect, else the dirty jobs."""
        assert self.timetable is not None
        if self._resync:
            self._resync = False
            self._dirty.clear()
            self._notified.clear()
            self._schedules_changed.clear()
            started = time.monotonic()
            self._dirty_policies.clear()
            self.policies = await self.store.policies(None)
            self.timetable.replace(await self.store.schedules(None), None)
            states = await self.store.job_states(None)
            await self._apply_states(states, {s.job_id: Origin.RESYNC for s in states}, full=True)
            if not self._loaded:
                self._loaded = True
                self.ready.set()
                logger.info(
                    "queue loaded: {} scheduled job(s) of {} in {:.0f} ms",
                    len(self.queue),
                    len(states),
                    (time.monotonic() - started) * 1000,
                )
            else:
                logger.info("resynced: {} scheduled job(s)", len(self.queue))
        if self._dirty_policies:
            ids, self._dirty_policies = sorted(self._dirty_policies), set()
            found = await self.store.policies(ids)
            for job_id in ids:
                self.policies.pop(job_id, None)
            self.policies.update(found)
            logger.debug("policies reloaded for job(s) {}", ids)
        if self._dirty:
            dirty, self._dirty = self._dirty, {}
            notified, self._notified = self._notified, {}
            changed, self._schedules_changed = sorted(self._schedules_changed), set()
            if changed:
                self.timetable.replace(await self.store.schedules(changed), changed)
            states = await self.store.job_states(sorted(dirty))
            await self._apply_states(states, dirty, full=False, notified=notified)

    def server_now(self) -> datetime:
        """The database server's clock, estimated from the last reading."""
        return datetime.fromtimestamp(time.time() + self._clock_offset, UTC)

    async def _apply_states(
        self,
        states: Sequence[JobState],
        origins: Mapping[int, Origin],
        *,
        full: bool,
        notified: Mapping[int, Stored] | None = None,
    ) -> None:
        """Correct next runs where the engine says so, then (re)queue the runnable jobs.

        ``notified``: per job, the next run the handled notification says its transaction
        left; a row read with another value was written since (see notifyagent.core.timetable).
        """
        assert self.timetable is not None
        if states and states[0].server_now is not None:
            self._clock_offset = states[0].server_now.timestamp() - time.time()
        now = self.server_now()
        corrections = []
        for s in states:
            origin = origins.get(s.job_id, Origin.EXPLICIT)
            claimed = self._claimed.get(s.job_id)
            if (
                claimed is not None
                and origin is Origin.EXPLICIT
                and s.next_run is not None
                and s.next_run != claimed.due
                and s.next_run <= now
            ):
                logger.info(
                    "job {} ({}): Run now while it runs: it runs again when this run ends",
                    claimed.job_id,
                    claimed.name,
                )
                self._rerun[s.job_id] = s.next_run
            row = Row(s.job_id, s.enabled, s.agent_id is not None, s.next_run, s.never)
            catchup_skip = self.policies.get(s.job_id, DEFAULT).catchup is Catchup.SKIP
            seen = notified.get(s.job_id) if notified else None
            if seen is not None and self._written.get(s.job_id) == row.stored:
                # the later write is our own (a release with what the engine said before this
                # change reached us): check it against the engine like any computed value
                seen = None
            wanted, value = self.timetable.correction(row, origin, now, catchup_skip, seen)
            if wanted and not full and self._dirty.get(s.job_id) is Origin.EXPLICIT:
                # a client wrote the row after the notification we are handling (a Run now
                # right after a schedule change): what we read is theirs; the next round
                # handles it as explicit (needed when the payload names no value: triggers
                # of an older install)
                wanted = False
            if wanted and s.job_id not in self.running:
                corrections.append((s.job_id, s.next_run, value))
            if origin is not Origin.EXPLICIT and s.enabled and value is None:
                self._warn_if_never(s, now)
        corrected: dict[int, datetime | None] = {}
        if corrections:
            done = await self.store.correct_next_runs(corrections)
            corrected = {j: v for j, _, v in corrections if j in done}
            self._written.update((j, Stored(v)) for j, v in corrected.items())
            logger.debug("corrected the next run of {} job(s)", len(corrected))
        loop_now = asyncio.get_running_loop().time()
        entries: dict[int, float] = {}
        for s in states:
            if s.job_id in self.running:
                continue
            next_run = corrected.get(s.job_id, s.next_run)
            if (
                next_run is not None
                and s.enabled
                and s.agent_id is None
                and s.host_agent in ("", self.settings.station)
            ):
                entries[s.job_id] = loop_now + max(0.0, (next_run - now).total_seconds())
        if full:
            self.queue.replace_all(entries.items())
            return
        next_runs = {s.job_id: s.next_run for s in states}
        next_runs.update(corrected)
        for job_id in origins:
            if job_id in entries:
                if self.queue.deadline(job_id) != entries[job_id]:
                    logger.debug(
                        "queue: job {} due at {} (in {:.3f}s)",
                        job_id,
                        next_runs[job_id],
                        entries[job_id] - loop_now,
                    )
                self.queue.set(job_id, entries[job_id])
            elif job_id in self.queue:
                self.queue.discard(job_id)
                self._locked_retries.pop(job_id, None)
                logger.debug("queue: job {} removed", job_id)
            if job_id not in next_runs:
                self.timetable.forget(job_id)
                self._written.pop(job_id, None)

    def _warn_if_never(self, s: JobState, now: datetime) -> None:
        """Say why a job with enabled, unexpired schedules has no next run: no date they
        describe exists (30 February, 31 April)."""
        assert self.timetable is not None
        live = [
            x
            for x in self.timetable.schedules(s.job_id)
            if x.enabled and (x.end is None or x.end > now)
        ]
        if live and self.timetable.next_run(s.job_id, now) is None:
            logger.warning(
                "job {} ({}): schedule(s) {} never fire (they name a date that does not "
                "exist, e.g. 30 February): the job has no next run",
                s.job_id,
                s.name,
                ", ".join(str(x.id) for x in live),
            )

    async def _dispatch(self) -> bool:
        """Claim due jobs for the free slots and start them; True if it should run again."""
        free = self.settings.max_concurrency - len(self.running)
        if free <= 0 or self._stop.is_set() or self.agent_id is None:
            return False
        if not self._connected.is_set():  # e.g. a DSN change waiting for its listener
            return False
        loop = asyncio.get_running_loop()
        ids = self.queue.pop_due(loop.time(), limit=free)
        if not ids:
            return False
        began = loop.time()
        store, runner = self.store, self.runner
        claimed = await store.claim(
            ids, limit=free, station=self.settings.station, agent=self.agent_id
        )
        logger.debug(
            "claimed {} of {} due job(s) in {:.1f} ms",
            len(claimed),
            len(ids),
            (loop.time() - began) * 1000,
        )
        for job in claimed:
            self._locked_retries.pop(job.job_id, None)
            self.running[job.job_id] = asyncio.create_task(
                self._run(job, store, runner), name=f"job-{job.job_id}"
            )
        leftover = sorted(set(ids) - {j.job_id for j in claimed})
        if leftover:
            await self._recheck(leftover)
        return len(claimed) == len(ids)

    async def _recheck(self, ids: Sequence[int]) -> None:
        """Jobs we tried and did not get: claimed elsewhere, not due after all (our clock ran
        ahead), or locked by another session (then retry with a growing delay)."""
        states = await self.store.job_states(ids)
        await self._apply_states(states, dict.fromkeys(ids, Origin.EXPLICIT), full=False)
        now = asyncio.get_running_loop().time()
        for job_id in ids:
            deadline = self.queue.deadline(job_id)
            if deadline is not None and deadline <= now:
                n = self._locked_retries.get(job_id, 0)
                self._locked_retries[job_id] = n + 1
                delay = min(LOCKED_RETRY * 2**n, 2.0)
                logger.debug("job {} is locked by another session; retry in {:.2f}s", job_id, delay)
                self.queue.set(job_id, now + delay)

    # -- running a job ------------------------------------------------------------------

    async def _run(self, job: ClaimedJob, store: Store, runner: StepRunner) -> None:
        """One run on the connections it was claimed with (a DSN change does not move it)."""
        started = time.monotonic()
        self.metrics.runs_started.labels(job.name).inc()
        self.metrics.start_lag.observe(max(0.0, job.lag))
        log = logger.bind(job_id=job.job_id, job_name=job.name)
        log.bind(lag_ms=round(job.lag * 1000, 1)).info(
            "job {} ({}) started, {:.1f} ms after due, {} step(s)",
            job.job_id,
            job.name,
            job.lag * 1000,
            len(job.steps),
        )
        status = "i"
        self._claimed[job.job_id] = job
        try:
            status = await run_steps(
                job, store, runner, self._observe_step, self.policy(job.job_id)
            )
        except asyncio.CancelledError:
            status = "d"
        except psycopg.OperationalError as err:
            status = "d"
            log.warning(
                "job {} ({}): lost the database during the run ({}); run marked aborted",
                job.job_id,
                job.name,
                " ".join(str(err).split()),
            )
        except psycopg.DatabaseError as err:
            status = "d"
            log.warning(
                "job {} ({}): its log rows cannot be written ({}); run marked aborted",
                job.job_id,
                job.name,
                str(err).splitlines()[0],
            )
        except Exception as err:
            log.opt(exception=err).error(
                "job {} ({}): internal error, run ends 'i': {}", job.job_id, job.name, err
            )
        finally:
            try:
                await self._release(job, status, store)
            finally:
                me = asyncio.current_task()
                self._departing.discard(me)
                if self.running.get(job.job_id) is me:
                    del self.running[job.job_id]
                    self._claimed.pop(job.job_id, None)
                    self._dirty.setdefault(job.job_id, Origin.EXPLICIT)
                self._wake.set()
        duration = time.monotonic() - started
        self.metrics.runs_finished.labels(job.name, status).inc()
        log.bind(status=status, duration_s=round(duration, 3)).info(
            "job {} ({}) finished: status {} in {:.3f}s", job.job_id, job.name, status, duration
        )

    def policy(self, job_id: int) -> Policy:
        return self.policies.get(job_id, DEFAULT)

    def _after_run(self, job: ClaimedJob, status: str) -> datetime | None:
        """The next run this run's outcome asks for, before the schedule's: a Run now made
        while it ran, a retry of a failure (policy retries), or a run that fell due while it
        ran (policy overlap queue-one)."""
        rerun = self._rerun.pop(job.job_id, None)
        if rerun is not None:
            return rerun
        policy = self.policy(job.job_id)
        now = self.server_now()
        if status == "f" and policy.retries > 0:
            attempt = self._attempts.get(job.job_id, 0) + 1
            if attempt <= policy.retries:
                self._attempts[job.job_id] = attempt
                delay = policy.retry_delay_for(attempt)
                logger.bind(job_id=job.job_id, job_name=job.name).info(
                    "job {} ({}) failed: retry {} of {} in {:g}s",
                    job.job_id,
                    job.name,
                    attempt,
                    policy.retries,
                    delay,
                )
                return now + timedelta(seconds=delay)
            logger.warning(
                "job {} ({}) failed after {} retries", job.job_id, job.name, policy.retries
            )
        self._attempts.pop(job.job_id, None)
        if policy.overlap is Overlap.QUEUE_ONE and job.claimed_at and self.timetable is not None:
            missed = self.timetable.next_run(job.job_id, job.claimed_at)
            if missed is not None and missed <= now:
                logger.info(
                    "job {} ({}) fell due at {} while it ran: running it again now",
                    job.job_id,
                    job.name,
                    missed,
                )
                return missed
        return None

    def _observe_step(self, kind: str, status: str, seconds: float) -> None:
        self.metrics.step_duration.labels("sql" if kind == "s" else "batch", status).observe(
            seconds
        )

    async def _release(self, job: ClaimedJob, status: str, store: Store) -> None:
        """Release ``job`` whatever happens: retry while the database is away; if the triggers
        cannot compute its next run, release it without that (and say why)."""
        departed = self._departed.get(store)
        if departed is not None:
            await self._release_departed(job, status, store, departed)
            return
        delay = 0.1
        rerun = self._after_run(job, status)
        while True:
            agent = self.agent_id
            assert agent is not None
            assert self.timetable is not None
            next_run = rerun or self.timetable.next_run(job.job_id, self.server_now())
            try:
                released = await store.release(job, status, agent, next_run)
                if released:
                    self._written[job.job_id] = Stored(next_run)
                if released or self.agent_id == agent:
                    return
                # the statement waited (pool, lock) while the listener came back under a new
                # pid and adopt_jobs moved our claim: release it under the new id
                logger.debug("job {}: agent id changed during the release; again", job.job_id)
                continue
            except psycopg.OperationalError as err:
                # once, not once per retry
                (logger.warning if delay == 0.1 else logger.debug)(
                    "job {}: release failed ({}); retrying until the database is back",
                    job.job_id,
                    " ".join(str(err).split()),
                )
            except psycopg.DatabaseError as err:
                if schema_gone(err):
                    logger.warning(
                        "job {} ({}): not released: the pgagent schema is gone ({})",
                        job.job_id,
                        job.name,
                        str(err).splitlines()[0],
                    )
                    return
                logger.error(
                    "job {} ({}): its next run cannot be computed ({}); released without one "
                    "until its schedule is fixed",
                    job.job_id,
                    job.name,
                    " ".join(str(err).split()),
                )
                try:
                    released = await store.release_without_recompute(job, status, agent)
                    if released:
                        self._written[job.job_id] = Stored(None, never=True)
                    if released or self.agent_id == agent:
                        return
                    continue
                except psycopg.OperationalError as err2:
                    logger.warning("job {}: release failed ({}); retrying", job.job_id, err2)
            if self._abort.is_set() and delay >= self.settings.max_backoff:
                logger.error(
                    "job {}: giving up the release; the liveness check of the next agent "
                    "cleans it up",
                    job.job_id,
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.max_backoff)

    async def _release_departed(
        self, job: ClaimedJob, status: str, store: Store, agent: int
    ) -> None:
        """Release a run of a database a DSN change left: our schedules are not that
        database's, so its triggers compute the next run, as for a pgAgent release."""
        for delay in (0.1, 0.5, 1.0, 2.0, 5.0):
            try:
                await store.release(job, status, agent, None, recompute=True)
                return
            except psycopg.Error as err:
                logger.warning(
                    "job {}: release in the old database failed ({}); retrying",
                    job.job_id,
                    " ".join(str(err).split()),
                )
            await asyncio.sleep(delay)
        logger.error(
            "job {}: giving up its release in the old database; an agent there cleans it up",
            job.job_id,
        )

    # -- history retention --------------------------------------------------------------

    async def _retention_forever(self) -> None:
        """Delete old run history now and then (off the scheduling path; off by default)."""
        while not self._stop.is_set():
            days, keep = self.settings.history_days, self.settings.history_keep
            if (days is not None or keep is not None) and self._connected.is_set():
                try:
                    deleted = await self.store.prune_history(days, keep)
                except (psycopg.Error, OSError) as err:
                    logger.warning("history cleanup failed: {}", err)
                else:
                    if deleted is None:
                        logger.debug("history cleanup: another agent is doing it")
                    else:
                        self.metrics.history_deleted.inc(deleted)
                        logger.info(
                            "history cleanup: deleted {} run(s) (older than {} days / beyond "
                            "the newest {} per job)",
                            deleted,
                            "-" if days is None else f"{days:g}",
                            "-" if keep is None else keep,
                        )
            await self._sleep_or_stop(max(1.0, self.settings.history_interval))

    # -- liveness -----------------------------------------------------------------------

    async def _liveness_forever(self) -> None:
        while not self._stop.is_set():
            interval = self.settings.liveness_interval
            if self._connected.is_set():
                result: str | None
                try:
                    result = await self._liveness_check()
                except TimeoutError:
                    result = "timeout"
                    logger.warning(
                        "liveness check got no answer in {:g}s: reconnecting", LIVENESS_TIMEOUT
                    )
                    if self._listen_conn is not None:
                        await self._listen_conn.close()
                except (psycopg.Error, OSError) as err:
                    result = "error"
                    if schema_gone(err):
                        await self._schema_lost(err)
                    else:
                        logger.warning("liveness check failed: {}", err)
                if result is not None:
                    self.metrics.liveness.labels(result).inc()
            if interval <= 0:
                return
            await self._sleep_or_stop(interval)

    async def _bounded(self, aw: Awaitable[T], seconds: float) -> T:
        """``aw``'s result, or TimeoutError after ``seconds``. Not wait_for: cancelling
        a query on a stalled link can itself stall, so the abandoned statement is cancelled in
        the background."""
        task = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            task.cancel()
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            raise TimeoutError
        return task.result()

    async def _liveness_check(self) -> str | None:
        """One statement sends the ping and finds the dead agents; then the ping's round trip
        and the cleanup run side by side, each with its own time limit: a lost ping neither
        cancels the cleanup nor passes for a database that does not answer (TimeoutError).

        Returns 'ok' or 'ping_lost'; None when the listener was replaced during the check (a
        ping sent before its LISTEN cannot reach it; that loss was noticed already).
        """
        me = self.agent_id
        listener = self._listen_conn
        ping = f"ping:{me}:{next(self._ping_seq)}"
        self._ping_expected = ping
        self._ping_back.clear()
        zombies = await self._bounded(self.store.liveness(ping), LIVENESS_TIMEOUT)
        cleanup = asyncio.ensure_future(self._reap_zombies(zombies, me))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ping_back.wait(), PING_TIMEOUT)
        except BaseException:
            cleanup.cancel()
            raise
        result: str | None = "ok"
        if not self._ping_back.is_set():
            if listener is None or self._listen_conn is not listener:
                result = None
            else:
                result = "ping_lost"
                logger.warning(
                    "notification round trip failed (no ping back in {:g}s): reconnecting the "
                    "listener",
                    PING_TIMEOUT,
                )
                await listener.close()
        await cleanup
        return result

    async def _reap_zombies(self, pids: Sequence[int], me: int | None) -> None:
        """Clean up after each dead agent, one transaction each."""
        for pid in pids:
            if pid in (me, self.agent_id):
                continue  # our own earlier identity: the reconnect moves its claims
            try:
                done = await self._bounded(self.store.reap_zombie(pid), LIVENESS_TIMEOUT)
            except TimeoutError:
                logger.warning(
                    "could not clean up dead agent {}: no answer in {:g}s", pid, LIVENESS_TIMEOUT
                )
                return
            except psycopg.Error as err:
                logger.error("could not clean up dead agent {}: {}", pid, err)
                continue
            self.metrics.zombies.inc()
            logger.warning(
                "cleaned up dead agent {} (station {}): {} run(s) marked aborted, "
                "{} job(s) released",
                pid,
                done["station"],
                done["runs"],
                done["jobs"],
            )
