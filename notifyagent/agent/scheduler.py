"""The scheduler: owns the due-queue, the timetable and the running jobs.

It refreshes what notifications said changed (everything after a (re)connect), claims due jobs
up to the free concurrency slots, starts a run for each, and sleeps until the next deadline or
the next notification. What to correct, queue or run next is decided in
:mod:`notifyagent.core.decisions`; this module reads, writes and logs.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import psycopg
from loguru import logger

from notifyagent.agent import collector
from notifyagent.agent.aio import first_of, wait_event
from notifyagent.agent.connections import Connections, schema_gone
from notifyagent.agent.policies import PolicyBook
from notifyagent.agent.runner import JobRunner
from notifyagent.agent.runs import Runs
from notifyagent.core import events
from notifyagent.core.config import Settings
from notifyagent.core.decisions import (
    CLAIM_HORIZON,
    CLAIM_LEAD,
    AfterRun,
    Known,
    QueuePlan,
    after_run,
    claim_at_once,
    locked_retry_delay,
    plan_queue,
    plan_refresh,
)
from notifyagent.core.effective import Effective
from notifyagent.core.events import Changes
from notifyagent.core.model import ClaimedJob, JobState, RunStatus
from notifyagent.core.policy import Policy
from notifyagent.core.ports import Store
from notifyagent.core.queue import DueQueue
from notifyagent.core.timetable import Origin, Stored, Timetable
from notifyagent.obs.metrics import Metrics


class Link(Protocol):
    """The listener, as far as the scheduler is concerned."""

    agent_id: int | None
    connected: asyncio.Event

    async def schema_lost(self, err: BaseException) -> None: ...


class Scheduler:
    def __init__(
        self,
        settings: Callable[[], Settings],
        connections: Callable[[], Connections],
        link: Link,
        runner: JobRunner,
        metrics: Metrics,
        stop: asyncio.Event,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        #: the local clock (seconds since the epoch)
        self._wall = wall
        self._connections = connections
        self._link = link
        self._runner = runner
        self._metrics = metrics
        self._stop = stop
        self.queue = DueQueue()
        #: the zone is the database's, set on every connect
        self.timetable = Timetable(ZoneInfo("UTC"))
        #: job_policy rows merged with the annotations in pgAdmin's fields
        self.book = PolicyBook(metrics)
        #: set once the due-queue was loaded from the database for the first time
        self.ready = asyncio.Event()
        self._changes = Changes()
        self._wake = asyncio.Event()
        self.runs = Runs(self._finished)
        #: Run now requested while the job was running: run again right after it
        self._rerun: dict[int, datetime] = {}
        #: the jobnextrun this agent last wrote itself (release, correction), per job
        self._written: dict[int, Stored] = {}
        self._locked_retries: dict[int, int] = {}
        self._warming: asyncio.Future[None] | None = None
        #: server clock minus local clock (seconds), measured with every job_states query
        self._clock_offset = 0.0

    # -- what the other parts tell -------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def notify(self, event: events.JobsChanged | events.PoliciesChanged | events.Resync) -> None:
        self._changes.record(event)
        self._wake.set()

    def cancel(self, request: events.CancelJob) -> None:
        self.runs.cancel(request)

    def connected(self, tz: ZoneInfo) -> None:
        """(Re)connected: read schedules in ``tz`` and reload everything."""
        self.timetable.tz = tz
        self._changes.resync = True
        self._wake.set()

    @property
    def running(self) -> list[asyncio.Task[None]]:
        return self.runs.tasks

    def detach_runs(self) -> list[asyncio.Task[None]]:
        """Let go of the runs (a DSN change to another database): they finish and are released
        there, and no longer hold back this database's jobs of the same ids."""
        self._rerun.clear()
        return self.runs.detach()

    # -- what a finishing run asks ---------------------------------------------------------

    def policy(self, job_id: int) -> Policy:
        return self.book.policy(job_id)

    def plan(self, job_id: int) -> Effective:
        return self.book.plan(job_id)

    def server_now(self) -> datetime:
        """The database server's clock, estimated from the last reading."""
        return datetime.fromtimestamp(self._wall() + self._clock_offset, UTC)

    def after_run(self, job: ClaimedJob, status: RunStatus) -> AfterRun:
        """What comes after ``job``; its retry count came with the claim (the database keeps
        it, so any agent continues a chain another one started)."""
        return after_run(
            job.job_id,
            status,
            self.policy(job.job_id),
            rerun=self._rerun.pop(job.job_id, None),
            attempts=job.attempts,
            claimed_at=job.claimed_at,
            timetable=self.timetable,
            now=self.server_now(),
        )

    def next_run(self, job_id: int, after: datetime) -> datetime | None:
        """The schedule's next run of ``job_id`` from now, and later than ``after`` (the due
        time of the run that just ended: the estimate of the server's clock can lag it by a
        round trip, and a next run at that due time would run the job twice for it)."""
        now = max(self.server_now(), after + timedelta(microseconds=1))
        return self.timetable.next_run(job_id, now)

    def released(self, job_id: int, value: Stored) -> None:
        """We wrote ``value`` as the job's next run (its notification is ours)."""
        self._written[job_id] = value

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if not self._link.connected.is_set():
                    await first_of([self._link.connected.wait(), self._stop.wait()])
                if self._stop.is_set():
                    break
                with collector.paused():  # a refresh may build 100,000s of objects
                    await self._refresh()
                while await self._dispatch():
                    pass
            except (psycopg.Error, OSError) as err:
                self._changes.resync = True
                if schema_gone(err):
                    await self._link.schema_lost(err)
                    continue
                logger.warning("scheduler: database error ({}); will resync", err)
                await wait_event(self._stop, 0.2)
                continue
            timeout = self._settings().max_sleep
            nxt = self.queue.next_deadline()
            self._metrics.next_due.set(float("nan") if nxt is None else nxt - loop.time())
            if nxt is not None and len(self.runs) < self._settings().max_concurrency:
                timeout = min(timeout, max(0.0, nxt - CLAIM_LEAD - loop.time()))
            await wait_event(self._wake, timeout)

    async def _refresh(self) -> None:
        """Bring the queue up to date: everything after a (re)connect, else the dirty jobs."""
        store = self._connections().store
        if self._changes.take_resync():
            started = time.monotonic()
            read = await self._load(store)
            if not self.ready.is_set():
                self.ready.set()
                logger.info(
                    "queue loaded: {} scheduled job(s) of {} in {:.0f} ms",
                    len(self.queue),
                    read,
                    (time.monotonic() - started) * 1000,
                )
            else:
                logger.info("resynced: {} scheduled job(s)", len(self.queue))
            collector.settle()
        if self._changes.policies:
            ids = self._changes.take_policies()
            await self.book.load(store, ids)
            logger.debug("policies reloaded for job(s) {}", ids)
            found = {j: self.book.policies[j] for j in ids if j in self.book.policies}
            # a changed interval moves the next run: check it as after a schedule change
            self._changes.reschedule(self.timetable.set_intervals(_intervals(found), ids))
        if self._changes.jobs:
            await self._run_now()
            dirty, notified, changed = self._changes.take_jobs()
            if changed:
                self.timetable.replace(await store.schedules(changed), changed)
            states = await store.job_states(sorted(dirty))
            await self._apply(states, dirty, full=False, notified=notified)

    async def _load(self, store: Store) -> int:
        """Read everything (after a (re)connect); the number of jobs read. The rows are let
        go on return, before the load is logged."""
        self._connections().steps.limit_connections(await store.connection_room())
        await self.book.load(store, None)
        self.timetable.set_intervals(_intervals(self.book.policies), None)
        self.timetable.replace(await store.schedules(None), None)
        states = await store.job_states(None)
        await self._apply(states, {s.job_id: Origin.RESYNC for s in states}, full=True)
        return len(states)

    async def _run_now(self) -> None:
        """Claim what a client just made due before reading the rows (decisions.claim_at_once)."""
        agent, free = self._free()
        c = self._changes
        ids = claim_at_once(c.jobs, c.notified, self.runs, self.server_now())[:free]
        if agent is not None and ids:
            await self._claim(ids, agent, free)

    def _known(self) -> Known:
        return Known(
            self.timetable,
            self.server_now(),
            self._settings().station,
            self.runs.due(),
            self.book.policies,
            self._written,
        )

    async def _apply(
        self,
        states: Sequence[JobState],
        origins: dict[int, Origin],
        *,
        full: bool,
        notified: dict[int, Stored] | None = None,
    ) -> None:
        """Correct next runs where the engine says so, then (re)queue the runnable jobs."""
        if states:
            self._clock_offset = states[0].server_now.timestamp() - self._wall()
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
            done = await self._connections().store.correct_next_runs(
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
        for job_id in plan.gone:
            self.timetable.forget(job_id)
            self._written.pop(job_id, None)

    # -- claims ----------------------------------------------------------------------------

    async def _dispatch(self) -> bool:
        """Claim the jobs due (within CLAIM_LEAD) for the free slots and start them; True if
        it should run again."""
        agent, free = self._free()
        if agent is None:
            return False
        ids = self.queue.pop_due(asyncio.get_running_loop().time() + CLAIM_LEAD, limit=free)
        if not ids:
            return False
        claimed = await self._claim(ids, agent, free)
        leftover = sorted(set(ids) - claimed)
        if leftover:
            await self._recheck(leftover)
        return len(claimed) == len(ids)

    def _free(self) -> tuple[int | None, int]:
        """Our agent id and the free slots; no id when nothing may be claimed now (stopping,
        slots full, not registered, or a DSN change waiting for its listener)."""
        free = self._settings().max_concurrency - len(self.runs)
        if free <= 0 or self._stop.is_set() or not self._link.connected.is_set():
            return None, 0
        return self._link.agent_id, free

    async def _claim(self, ids: Sequence[int], agent: int, free: int) -> set[int]:
        """Claim what of ``ids`` is due and start a run for each; the ids claimed."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        conns = self._connections()
        # a job due now starts on the connection its last step used: wake it meanwhile
        self._warming = asyncio.ensure_future(conns.steps.warm())
        claimed = await conns.store.claim(
            ids, limit=free, station=self._settings().station, agent=agent, ahead=CLAIM_HORIZON
        )
        received = loop.time()
        logger.debug(
            "claimed {} of {} due job(s) in {:.1f} ms",
            len(claimed),
            len(ids),
            (received - began) * 1000,
        )
        for job in claimed:
            self._locked_retries.pop(job.job_id, None)
            self.runs.start(
                job, functools.partial(self._runner.run, job, conns, self, claimed=received)
            )
        return {job.job_id for job in claimed}

    def _finished(self, job_id: int) -> None:
        self._changes.touch(job_id)
        self._wake.set()

    async def _recheck(self, ids: Sequence[int]) -> None:
        """Jobs we tried and did not get: claimed elsewhere, not due after all (our clock ran
        ahead), or locked by another session (then retry with a growing delay)."""
        states = await self._connections().store.job_states(ids)
        await self._apply(states, dict.fromkeys(ids, Origin.EXPLICIT), full=False)
        now = asyncio.get_running_loop().time()
        for job_id in ids:
            deadline = self.queue.deadline(job_id)
            if deadline is not None and deadline <= now + CLAIM_LEAD:
                n = self._locked_retries.get(job_id, 0)
                self._locked_retries[job_id] = n + 1
                delay = locked_retry_delay(n)
                logger.debug("job {} is locked by another session; retry in {:.2f}s", job_id, delay)
                self.queue.set(job_id, now + delay)


def _intervals(policies: dict[int, Policy]) -> dict[int, timedelta]:
    """The sub-minute intervals (policy ``every``) of ``policies``."""
    return {j: p.every for j, p in policies.items() if p.every is not None}
