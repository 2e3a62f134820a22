"""What the agent alerts about, decided by :mod:`notifyagent.core.alerts` and delivered by
:class:`notifyagent.obs.alerts.Outbox`, all off the scheduling path.

* A finished run: the agent that ran it reads the run's facts (one statement, in a task of
  its own, after the release), disables the job when ``max_failures`` is reached, and queues
  the events. A run is only handed over here (``finished`` never waits), and only when some
  destination or ``max_failures`` could want it, so a job without alerts costs nothing.
* Missed runs and dead agents: found in the liveness round, reported by one agent at a time
  (``missed_round`` holds an advisory lock and remembers each reported due time).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import psycopg
from loguru import logger

from notifyagent.core.alert_text import Alert, Event
from notifyagent.core.alerts import (
    JobRoutes,
    Overdue,
    Routes,
    RunFacts,
    deliveries,
    disabled_reason,
    missed_alert,
    parse_events,
    run_alert,
    run_events,
    should_disable,
    wanted,
)
from notifyagent.core.config import Settings
from notifyagent.core.effective import Effective
from notifyagent.core.model import ClaimedJob, RunStatus
from notifyagent.core.ports import Reaped
from notifyagent.obs.alerts import Outbox
from notifyagent.obs.metrics import Metrics

#: Finished runs waiting for their facts at most; then the oldest is dropped.
PENDING_RUNS = 1024
_RUN_EVENTS = (Event.FAILED, Event.ABORTED, Event.RECOVERED, Event.SUCCEEDED, Event.DISABLED)


class AlertStore(Protocol):
    """The statements alerts need (:class:`notifyagent.db.store.PgStore`)."""

    async def run_facts(self, job_id: int, jlgid: int) -> RunFacts | None: ...

    async def disable_job(self, job_id: int) -> bool: ...

    async def missed_round(self, grace: float) -> list[Overdue]: ...


def routes(s: Settings) -> Routes:
    return Routes(s.alert_urls, s.alert_on, s.alert_email)


def job_routes(plan: Effective) -> JobRoutes:
    """A job's own settings; a bad stored value (a row written by hand) is ignored, loudly."""
    p = plan.policy
    events = None
    if p.alert_on:
        try:
            events = parse_events(p.alert_on)
        except ValueError as err:
            logger.warning("policy alert_on ignored: {}", err)
    return JobRoutes(tuple((p.alert_to or "").split()), events, plan.annotations.email)


class Alerter:
    def __init__(
        self,
        settings: Callable[[], Settings],
        store: Callable[[], AlertStore],
        plan: Callable[[int], Effective],
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._store = store
        self._plan = plan
        self._metrics = metrics
        self.outbox = Outbox(lambda: settings().alert_timeout, metrics)
        self._runs: collections.deque[tuple[int, int]] = collections.deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- finished runs -------------------------------------------------------------------------

    def finished(self, job: ClaimedJob, status: RunStatus) -> None:
        """A run was released (the runner's hook): queue it if anything may want it."""
        plan = self._plan(job.job_id)
        if plan.policy.max_failures is None and not self._wanted(job.job_id, plan, status):
            return
        if len(self._runs) >= PENDING_RUNS:
            self._runs.popleft()
            self._metrics.alerts.labels("run", "dropped").inc()
        self._runs.append((job.job_id, job.jlgid))
        self._idle.clear()
        self._ready.set()

    def _wanted(self, job_id: int, plan: Effective, status: RunStatus) -> bool:
        events = _RUN_EVENTS if status is RunStatus.SUCCEEDED else _RUN_EVENTS[:2]
        return wanted(events, routes(self._settings()), job_routes(plan))

    async def run_forever(self) -> None:
        """The facts of finished runs, one at a time, and the delivery, side by side."""
        delivery = asyncio.ensure_future(self.outbox.run_forever())
        try:
            while True:
                await self._ready.wait()
                while self._runs:
                    await self._run(*self._runs.popleft())
                self._ready.clear()
                self._idle.set()
        finally:
            delivery.cancel()
            self.outbox.close()

    async def flush(self, seconds: float) -> None:
        """At shutdown: let the queued alerts go out for up to ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("{} finished run(s) not alerted before shutdown", len(self._runs))
            return
        await self.outbox.flush(max(0.0, deadline - loop.time()))

    async def _run(self, job_id: int, jlgid: int) -> None:
        try:
            facts = await self._store().run_facts(job_id, jlgid)
        except (psycopg.Error, OSError) as err:
            logger.warning("job {}: alert facts of run {} not read: {}", job_id, jlgid, err)
            return
        if facts is None:
            return
        plan = self._plan(job_id)
        events = run_events(facts)
        reason = ""
        if should_disable(facts, plan.policy.max_failures) and await self._disable(job_id):
            events.append(Event.DISABLED)
            reason = disabled_reason(facts.failures)
        s = self._settings()
        for event in events:
            why = reason if event is Event.DISABLED else ""
            alert = run_alert(event, facts, s.station, datetime.now(UTC), why)
            self._put(alert, job_routes(plan))

    async def _disable(self, job_id: int) -> bool:
        try:
            done = await self._store().disable_job(job_id)
        except (psycopg.Error, OSError) as err:
            logger.error(
                "job {}: max_failures reached but it could not be disabled: {}", job_id, err
            )
            return False
        if done:
            logger.warning("job {}: disabled after max_failures failed runs in a row", job_id)
        return done

    # -- the liveness round ----------------------------------------------------------------------

    async def missed(self, overdue: int) -> None:
        """After a liveness check counted ``overdue`` jobs: report the new misses."""
        self._metrics.overdue.set(overdue)
        grace = self._settings().missed_grace
        if overdue == 0 or grace <= 0:
            return
        try:
            jobs = await self._store().missed_round(grace)
        except (psycopg.Error, OSError) as err:
            logger.warning("missed-run check failed: {}", err)
            return
        self._metrics.overdue.set(len(jobs))
        s = self._settings()
        for job in (j for j in jobs if j.new):
            logger.warning(
                "job {} ({}) missed its run due at {}: {}",
                job.job_id,
                job.name,
                job.due,
                job.reason,
            )
            alert = missed_alert(job, s.station, datetime.now(UTC))
            self._put(alert, job_routes(self._plan(job.job_id)))

    def dead_agent(self, pid: int, done: Reaped) -> None:
        """This agent cleaned up after a dead one (only one agent does, per dead agent)."""
        s = self._settings()
        reason = (
            f"agent {pid} (station {done.station}) is gone: {done.runs} run(s) marked aborted, "
            f"{done.jobs} job(s) released; cleaned up by {s.station}"
        )
        self._put(Alert(Event.DEAD_AGENT, s.station, datetime.now(UTC), reason=reason))

    def _put(self, alert: Alert, job: JobRoutes | None = None) -> None:
        for each, urls in deliveries(alert, routes(self._settings()), job):
            self.outbox.put(each, urls)


async def send_test(settings: Settings, urls: Sequence[str], metrics: Metrics) -> list[str | None]:
    """``notifyagent alert test``: a sample alert to each of ``urls``; why each failed."""
    outbox = Outbox(lambda: settings.alert_timeout, metrics)
    alert = Alert(
        Event.TEST,
        settings.station,
        datetime.now(UTC),
        reason="a test alert sent by notifyagent alert test: this destination works",
    )
    try:
        return await outbox.results(alert, urls)
    finally:
        outbox.close()
