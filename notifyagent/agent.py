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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from loguru import logger

from notifyagent import config, conninfo, db, log, schema
from notifyagent.config import Settings
from notifyagent.core import events
from notifyagent.core.decisions import (
    AfterRun,
    Known,
    QueuePlan,
    Reason,
    after_run,
    locked_retry_delay,
    plan_queue,
    plan_refresh,
)
from notifyagent.core.events import CHANNEL, Changes
from notifyagent.core.model import ClaimedJob, JobState, RunStatus, StepKind
from notifyagent.errors import (
    ConfigError,
    ConnectError,
    ExtensionMissing,
    NotifyAgentError,
    SchemaVersionMismatch,
)
from notifyagent.jobs import run_steps
from notifyagent.metrics import HealthServer, Metrics, parse_address
from notifyagent.policy import DEFAULT, Policy
from notifyagent.queue import DueQueue
from notifyagent.sqlfiles import query
from notifyagent.steps import StepRunner
from notifyagent.store import Store
from notifyagent.timetable import Origin, Stored, Timetable

#: How long a statement of the liveness check may go unanswered before the database is taken
#: to be unreachable and the LISTEN connection is replaced (result ``timeout``).
LIVENESS_TIMEOUT = 10.0
#: How long the ping may take to come back on the LISTEN connection, counted from the answer
#: of the statement that sent it, before the listener is taken to be deaf and replaced (result
#: ``ping_lost``). A budget of its own: the statement's timeout cannot pre-empt it.
PING_TIMEOUT = 10.0
#: Longest wait between attempts to reach an unreachable server (seconds).
RECONNECT_BACKOFF_MAX = 1.0

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
        #: what notifications said changed since the last refresh
        self._changes = Changes()
        #: the jobnextrun this agent last wrote itself (release, correction), per job
        self._written: dict[int, Stored] = {}
        self.policies: dict[int, Policy] = {}
        #: failed attempts of jobs whose policy retries them
        self._attempts: dict[int, int] = {}
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
        self._changes.resync = True
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
        self.metrics.notifications.labels(events.label(payload)).inc()
        event = events.parse(payload)
        match event:
            case events.JobsChanged(origin) if (
                origin is Origin.EXPLICIT and sender in self.store.pids
            ):
                # our own write (a release, a correction): the queue already knows; taking it
                # for a client's explicit value would stop the next correction of these jobs
                return
            case events.Ping(ping):
                if ping == self._ping_expected:
                    self._ping_back.set()
                return
            case events.Malformed():
                logger.warning(
                    "ignored a malformed notification on channel {!r} from backend {}: {!r}",
                    CHANNEL,
                    sender,
                    payload[:200],
                )
                return
            case events.Resync():
                logger.debug("resync requested by a notification")
        self._changes.record(event)
        self._wake.set()

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
                self._changes.resync = True
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
        self._changes.resync = True
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
        if self._changes.take_resync():
            started = time.monotonic()
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
        if self._changes.policies:
            ids = self._changes.take_policies()
            found = await self.store.policies(ids)
            for job_id in ids:
                self.policies.pop(job_id, None)
            self.policies.update(found)
            logger.debug("policies reloaded for job(s) {}", ids)
        if self._changes.jobs:
            dirty, notified, changed = self._changes.take_jobs()
            if changed:
                self.timetable.replace(await self.store.schedules(changed), changed)
            states = await self.store.job_states(sorted(dirty))
            await self._apply_states(states, dirty, full=False, notified=notified)

    def server_now(self) -> datetime:
        """The database server's clock, estimated from the last reading."""
        return datetime.fromtimestamp(time.time() + self._clock_offset, UTC)

    def _known(self) -> Known:
        assert self.timetable is not None
        return Known(
            self.timetable,
            self.server_now(),
            self.settings.station,
            {j: c.due for j, c in self._claimed.items()},
            self.policies,
            self._written,
        )

    async def _apply_states(
        self,
        states: Sequence[JobState],
        origins: dict[int, Origin],
        *,
        full: bool,
        notified: dict[int, Stored] | None = None,
    ) -> None:
        """Correct next runs where the engine says so, then (re)queue the runnable jobs."""
        if states:
            self._clock_offset = states[0].server_now.timestamp() - time.time()
        known = self._known()
        later = frozenset() if full else self._changes.explicit()
        plan = plan_refresh(states, origins, known, notified=notified, later_explicit=later)
        for job_id, name, at in plan.reruns:
            logger.info(
                "job {} ({}): Run now while it runs: it runs again when this run ends",
                job_id,
                name,
            )
            self._rerun[job_id] = at
        for never in plan.never_fires:
            logger.warning(
                "job {} ({}): schedule(s) {} never fire (they name a date that does not "
                "exist, e.g. 30 February): the job has no next run",
                never.job_id,
                never.name,
                ", ".join(str(x) for x in never.schedule_ids),
            )
        corrected: dict[int, datetime | None] = {}
        if plan.corrections:
            done = await self.store.correct_next_runs(
                [(c.job_id, c.seen, c.value) for c in plan.corrections]
            )
            corrected = {c.job_id: c.value for c in plan.corrections if c.job_id in done}
            self._written.update((j, Stored(v)) for j, v in corrected.items())
            logger.debug("corrected the next run of {} job(s)", len(corrected))
        self._requeue(plan_queue(states, origins, corrected, self._known()), known.now, full)

    def _requeue(self, plan: QueuePlan, now: datetime, full: bool) -> None:
        loop_now = asyncio.get_running_loop().time()
        entries = {j: loop_now + max(0.0, (at - now).total_seconds()) for j, at in plan.due.items()}
        if full:
            self.queue.replace_all(entries.items())
            return
        for job_id, deadline in entries.items():
            if self.queue.deadline(job_id) != deadline:
                logger.debug(
                    "queue: job {} due at {} (in {:.3f}s)",
                    job_id,
                    plan.due[job_id],
                    deadline - loop_now,
                )
            self.queue.set(job_id, deadline)
        for job_id in plan.remove:
            if job_id in self.queue:
                self.queue.discard(job_id)
                self._locked_retries.pop(job_id, None)
                logger.debug("queue: job {} removed", job_id)
        assert self.timetable is not None
        for job_id in plan.gone:
            self.timetable.forget(job_id)
            self._written.pop(job_id, None)

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
            self._claimed[job.job_id] = job
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
                delay = locked_retry_delay(n)
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
        status = RunStatus.INTERNAL
        try:
            status = await run_steps(
                job, store, runner, self._observe_step, self.policy(job.job_id)
            )
        except asyncio.CancelledError:
            status = RunStatus.ABORTED
        except psycopg.OperationalError as err:
            status = RunStatus.ABORTED
            log.warning(
                "job {} ({}): lost the database during the run ({}); run marked aborted",
                job.job_id,
                job.name,
                " ".join(str(err).split()),
            )
        except psycopg.DatabaseError as err:
            status = RunStatus.ABORTED
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
                    self._changes.touch(job.job_id)
                self._wake.set()
        duration = time.monotonic() - started
        self.metrics.runs_finished.labels(job.name, status).inc()
        log.bind(status=status, duration_s=round(duration, 3)).info(
            "job {} ({}) finished: status {} in {:.3f}s", job.job_id, job.name, status, duration
        )

    def policy(self, job_id: int) -> Policy:
        return self.policies.get(job_id, DEFAULT)

    def _after_run(self, job: ClaimedJob, status: RunStatus) -> datetime | None:
        """The next run this run's outcome asks for, before the schedule's (and say why)."""
        assert self.timetable is not None
        policy = self.policy(job.job_id)
        nxt = after_run(
            job.job_id,
            status,
            policy,
            rerun=self._rerun.pop(job.job_id, None),
            attempts=self._attempts.get(job.job_id, 0),
            claimed_at=job.claimed_at,
            timetable=self.timetable,
            now=self.server_now(),
        )
        if nxt.attempts:
            self._attempts[job.job_id] = nxt.attempts
        else:
            self._attempts.pop(job.job_id, None)
        self._log_after_run(job, policy, nxt)
        return nxt.at

    @staticmethod
    def _log_after_run(job: ClaimedJob, policy: Policy, nxt: AfterRun) -> None:
        if nxt.reason is Reason.RETRY:
            logger.bind(job_id=job.job_id, job_name=job.name).info(
                "job {} ({}) failed: retry {} of {} in {:g}s",
                job.job_id,
                job.name,
                nxt.attempts,
                policy.retries,
                nxt.delay,
            )
        if nxt.gave_up:
            logger.warning(
                "job {} ({}) failed after {} retries", job.job_id, job.name, policy.retries
            )
        if nxt.reason is Reason.MISSED:
            logger.info(
                "job {} ({}) fell due at {} while it ran: running it again now",
                job.job_id,
                job.name,
                nxt.at,
            )

    def _observe_step(self, kind: StepKind, status: RunStatus, seconds: float) -> None:
        self.metrics.step_duration.labels(
            "sql" if kind is StepKind.SQL else "batch", status
        ).observe(seconds)

    async def _release(self, job: ClaimedJob, status: RunStatus, store: Store) -> None:
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
        self, job: ClaimedJob, status: RunStatus, store: Store, agent: int
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
