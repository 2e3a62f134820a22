"""The agent's lifecycle: start, signals, reload, DSN changes, shutdown.

``Agent`` puts the parts together and routes what one part tells the others:

* the :class:`~notifyagent.agent.listener.Listener` owns the LISTEN connection and the
  agent's identity, and turns notifications into events;
* the :class:`~notifyagent.agent.scheduler.Scheduler` owns the due-queue, the timetable and
  the running jobs, each run done by the :class:`~notifyagent.agent.runner.JobRunner`;
* :class:`~notifyagent.agent.maintenance.Maintenance` checks liveness, cleans up after dead
  agents and prunes history.

No part polls the job table: an idle agent sends only the liveness check.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from zoneinfo import ZoneInfo

import psycopg
from loguru import logger

from notifyagent import conninfo
from notifyagent.agent.aio import Background, first_of
from notifyagent.agent.alerts import Alerter, AlertStore
from notifyagent.agent.connections import Connections
from notifyagent.agent.departure import Departure
from notifyagent.agent.listener import Listener
from notifyagent.agent.maintenance import Maintenance
from notifyagent.agent.runner import JobRunner, finish_or_cancel
from notifyagent.agent.scheduler import Scheduler
from notifyagent.core import config, events
from notifyagent.core.alerts import redact
from notifyagent.core.config import Settings
from notifyagent.core.observability import parse_address
from notifyagent.db.store import PgStore
from notifyagent.errors import NotifyAgentError
from notifyagent.obs import log
from notifyagent.obs.metrics import HealthServer, Metrics

#: How long shutdown waits for the agent row's deletion and for background work.
CLOSE_TIMEOUT = 10.0


class Agent:
    def __init__(self, settings: Settings, reload: Callable[[], Settings] | None = None) -> None:
        self._settings = settings
        self._reload_settings = reload
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._background = Background()
        self.metrics = Metrics()
        self.conns = Connections.open_for(settings)
        self.listener = Listener(self, self.metrics, self._stop)
        runner = JobRunner(self._get_settings, self.listener, self._abort, self.metrics)
        self.scheduler = Scheduler(
            self._get_settings, self._get_conns, self.listener, runner, self.metrics, self._stop
        )
        self.maintenance = Maintenance(
            self._get_settings,
            lambda: self.conns.store,
            self.listener,
            self.metrics,
            self._stop,
            self._background,
        )
        self.alerter = Alerter(
            self._get_settings, self._alert_store, self.scheduler.plan, self.metrics
        )
        runner.on_finished = self.alerter.finished
        self.maintenance.on_overdue = self.alerter.missed
        self.maintenance.on_dead_agent = self.alerter.dead_agent
        #: a DSN change not yet settled by the listener's registration under the new DSN
        self._departure: Departure | None = None
        #: runs still going in a database a DSN change left
        self._departing: set[asyncio.Task[None]] = set()
        self.metrics.queue_size.set_function(lambda: len(self.scheduler.queue))
        self.metrics.running.set_function(lambda: len(self.scheduler.running))
        self._health: HealthServer | None = None
        #: set once the due-queue was loaded from the database for the first time
        self.ready = self.scheduler.ready

    @property
    def settings(self) -> Settings:
        return self._settings

    def _get_settings(self) -> Settings:
        return self._settings

    def _get_conns(self) -> Connections:
        return self.conns

    def _alert_store(self) -> AlertStore:
        store = self.conns.store
        assert isinstance(store, PgStore)  # Connections always hold one
        return store

    # -- lifecycle ----------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        logger.info(
            "notifyagent starting: station {!r}, database {}, max concurrency {}",
            self._settings.station,
            conninfo.display(self._settings.dsn),
            self._settings.max_concurrency,
        )
        self._start_health(loop)
        fatal: NotifyAgentError | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self.listener.run(), name="listener")]
                try:
                    if await self._started():
                        await self.conns.store.open()
                        tasks.append(tg.create_task(self.maintenance.liveness_forever()))
                        tasks.append(tg.create_task(self.maintenance.retention_forever()))
                        tasks.append(tg.create_task(self.alerter.run_forever()))
                        await self.scheduler.run()
                except NotifyAgentError as err:
                    fatal = err  # raised as itself below, not in a TaskGroup's exception group
                finally:
                    await self._drain(tasks)
        finally:
            await self._close()
        if fatal is not None:
            raise fatal
        return 0

    async def _started(self) -> bool:
        """Wait for the first registration (True) or a stop request (False)."""
        first = asyncio.ensure_future(self.listener.first_registration())
        await first_of([first, self._stop.wait()])
        if not first.done():
            first.cancel()
            return False
        first.result()  # a fatal schema or configuration error ends serve() here
        return True

    def _start_health(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._settings.metrics_address:
            return
        address = parse_address(self._settings.metrics_address)
        self._health = HealthServer(address, self.metrics, loop, self.readiness)
        self._health.start()
        host, port = self._health.address
        logger.info("metrics and health on http://{}:{}/metrics, /healthz, /readyz", host, port)

    def readiness(self) -> tuple[bool, str]:
        """For /readyz: connected, listening and the queue loaded (and not stopping)."""
        if self._stop.is_set():
            return False, "stopping"
        if not self.listener.connected.is_set():
            return False, "not connected to the database"
        if not self.scheduler.ready.is_set():
            return False, "queue not loaded yet"
        agent, queued = self.listener.agent_id, len(self.scheduler.queue)
        return True, f"ready: agent {agent}, {queued} job(s) queued"

    def request_stop(self) -> None:
        if self._stop.is_set():
            logger.warning("second stop signal: cancelling running jobs now")
            self._abort.set()
        else:
            logger.info(
                "stop requested: no new jobs; waiting up to {}s for {} running job(s)",
                self._settings.shutdown_timeout,
                len(self.scheduler.running),
            )
            self._stop.set()
        self.scheduler.wake()

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        """Stop: let the runs end (or cancel them), then the parts' own tasks."""
        self._stop.set()
        await self._wait_or_cancel_jobs()
        self.registered(other_database=False)  # a DSN change still pending settles here
        await self._background.wait(CLOSE_TIMEOUT)
        await self.alerter.flush(self._settings.alert_timeout)
        for task in tasks:
            task.cancel()

    async def _close(self) -> None:
        agent = self.listener.agent_id
        if agent is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.conns.store.unregister(agent)
                logger.info("unregistered agent {} from pgagent.pga_jobagent", agent)
            except (psycopg.Error, TimeoutError, OSError) as err:
                logger.warning("could not delete agent row {}: {}", agent, err)
        await self.listener.close()
        await self.conns.close()
        if self._health is not None:
            self._health.stop()
        logger.info("notifyagent stopped")

    async def _wait_or_cancel_jobs(self) -> None:
        """Let running jobs finish until the shutdown timeout (or a second signal); then cancel
        them: their runs are marked 'd' and their jobs released by the job tasks themselves."""
        runs = [*self.scheduler.running, *self._departing]
        await finish_or_cancel(runs, self._settings.shutdown_timeout, self._abort)

    # -- reload ---------------------------------------------------------------------------

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
        """Apply changed settings; running jobs are never interrupted. DSN, station and zone
        changes reconnect the LISTEN connection (which re-registers and resyncs); the rest
        applies at once."""
        changes = config.diff(self._settings, new)
        if not changes:
            logger.info("reload: nothing changed")
            return
        for key, (old, value) in changes.items():
            shown = _shown(key, old, value)
            logger.info("reload: {} {!r} -> {!r}", key, *shown)
        self._settings = new
        if {"log_level", "log_format"} & changes.keys():
            log.setup(new.log_level, new.log_format)
        if "metrics_address" in changes:
            logger.warning("metrics_address changes take effect at the next start")
        self.conns.steps.max_output = new.max_output
        self.conns.steps.batch_steps = new.batch_steps
        if "dsn" in changes:
            self._replace_connections()
        if {"dsn", "station", "timezone"} & changes.keys():
            self.listener.restart()
        self.scheduler.wake()

    def _replace_connections(self) -> None:
        """New pools for the new DSN; jobs running now finish on the old ones (see
        :class:`~notifyagent.agent.departure.Departure`)."""
        old = self.conns
        self.conns = Connections.open_for(self._settings)
        self._departure = Departure(old, self.listener.agent_id, self.scheduler.running)
        self._background.add(self._departure.retire(self.conns.store.open()))

    # -- what the listener tells --------------------------------------------------------

    def own_pids(self) -> set[int]:
        return self.conns.store.pids

    def registered(self, other_database: bool) -> None:
        """Settle a DSN change: runs of another database leave the running set (they no
        longer block this database's jobs of the same id) and are released where they run."""
        departure, self._departure = self._departure, None
        if departure is None:
            return
        if departure.settle(other_database):
            runs = self.scheduler.detach_runs()
            self._departing.update(runs)
            if runs:
                logger.info(
                    "the new DSN names another database: {} running job(s) finish and are "
                    "released in the old one",
                    len(runs),
                )

    def connected(self, tz: ZoneInfo) -> None:
        self.scheduler.connected(tz)

    async def reconnected(self) -> None:
        if self.scheduler.ready.is_set():  # the pool is open: drop the connections that died
            await self.conns.store.check()

    def event(self, event: events.Event) -> None:
        match event:
            case events.Ping(payload):
                self.maintenance.pong(payload)
            case events.JobsChanged() | events.PoliciesChanged() | events.Resync():
                self.scheduler.notify(event)
            case events.CancelJob():
                self.scheduler.cancel(event)


def _shown(key: str, old: object, new: object) -> tuple[object, object]:
    """A changed setting as the reload log shows it: no password, no destination's token."""
    if key == "dsn":
        return conninfo.display(str(old)), conninfo.display(str(new))
    if key in ("alert_urls", "alert_email"):
        return tuple(_redacted(old)), tuple(_redacted(new))
    if key == "alert_on":
        return sorted(map(str, old)), sorted(map(str, new))  # type: ignore[call-overload]
    return old, new


def _redacted(value: object) -> list[str]:
    urls = (value,) if isinstance(value, str) else value or ()
    return [redact(u) for u in urls]  # type: ignore[attr-defined]
