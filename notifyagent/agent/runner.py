"""One run of a claimed job: its steps (notifyagent.agent.job), then its release, whatever happens.

A run uses the connections it was claimed with. Its release writes the run's status and the
job's next run in one statement, retrying while the database is away; a run of a database a
DSN change left is released there, by that database's triggers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import psycopg
from loguru import logger

from notifyagent.agent.aio import Backoff, first_of, sleep_until
from notifyagent.agent.connections import Connections, schema_gone
from notifyagent.agent.job import Cancel, first_step, run_steps
from notifyagent.core.config import Settings
from notifyagent.core.decisions import AfterRun, Reason
from notifyagent.core.effective import Effective
from notifyagent.core.model import ClaimedJob, RunStatus, StepKind
from notifyagent.core.policy import Policy
from notifyagent.core.ports import Steps, Store
from notifyagent.core.timetable import Stored
from notifyagent.obs.metrics import Metrics

#: Attempts to release a run in a database a DSN change left.
DEPARTED_RELEASES = 5


class Identity(Protocol):
    """Our agent id, which a reconnect replaces (notifyagent.agent.listener.Listener)."""

    @property
    def agent_id(self) -> int | None: ...

    async def settled(self) -> None:
        """Return once no change of the id is under way."""


class Advisor(Protocol):
    """What a run asks the scheduler."""

    def policy(self, job_id: int) -> Policy: ...

    def plan(self, job_id: int) -> Effective: ...

    def after_run(self, job: ClaimedJob, status: RunStatus) -> AfterRun: ...

    def next_run(self, job_id: int, after: datetime) -> datetime | None: ...

    def released(self, job_id: int, value: Stored) -> None: ...


class JobRunner:
    def __init__(
        self,
        settings: Callable[[], Settings],
        identity: Identity,
        abort: asyncio.Event,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._identity = identity
        self._abort = abort
        self._metrics = metrics
        #: told of each released run (alerts); must not wait
        self.on_finished: Callable[[ClaimedJob, RunStatus], None] | None = None

    async def run(
        self,
        job: ClaimedJob,
        conns: Connections,
        advisor: Advisor,
        cancel: Cancel | None = None,
        claimed: float | None = None,
    ) -> None:
        """Run ``job`` and release it. ``claimed`` is the loop time the claim's result came
        in: a job claimed ahead of its due time (negative lag) waits until then, with its
        first step's connection made ready meanwhile."""
        clock = asyncio.get_running_loop().time
        claimed = clock() if claimed is None else claimed
        self._metrics.runs_started.inc()
        plan = advisor.plan(job.job_id)
        status = RunStatus.INTERNAL
        lag = job.lag
        try:
            if job.lag < 0:
                await _ready(job, conns.steps, plan, claimed - job.lag)
            lag = job.lag + clock() - claimed
            self._metrics.start_lag.observe(max(0.0, lag))
            logger.debug("job {} ({}) starts {:.2f} ms after due", job.job_id, job.name, lag * 1e3)
            status = await self._steps(job, conns, plan, cancel)
        except asyncio.CancelledError:
            status = RunStatus.ABORTED
        finally:
            await self._release(job, status, conns, advisor)
            if self.on_finished is not None:
                self.on_finished(job, status)
        duration = clock() - claimed
        self._metrics.runs_finished.labels(status).inc()
        self._metrics.run_duration.labels(status).observe(duration)
        logger.bind(
            job_id=job.job_id,
            job_name=job.name,
            status=status,
            lag_ms=round(lag * 1000, 2),
            duration_s=round(duration, 3),
        ).info(
            "job {} ({}) finished: status {} in {:.3f}s, started {:.1f} ms after due",
            job.job_id,
            job.name,
            status,
            duration,
            lag * 1000,
        )

    async def _steps(
        self, job: ClaimedJob, conns: Connections, plan: Effective, cancel: Cancel | None
    ) -> RunStatus:
        """The run's status; a lost database or log row that cannot be written aborts it."""
        log = logger.bind(job_id=job.job_id, job_name=job.name)
        try:
            return await run_steps(
                job, conns.store, conns.steps, self._observe, plan=plan, cancel=cancel
            )
        except psycopg.OperationalError as err:
            log.warning(
                "job {} ({}): lost the database during the run ({}); run marked aborted",
                job.job_id,
                job.name,
                " ".join(str(err).split()),
            )
            return RunStatus.ABORTED
        except psycopg.DatabaseError as err:
            log.warning(
                "job {} ({}): its log rows cannot be written ({}); run marked aborted",
                job.job_id,
                job.name,
                str(err).splitlines()[0],
            )
            return RunStatus.ABORTED
        except Exception as err:
            log.opt(exception=err).error(
                "job {} ({}): internal error, run ends 'i': {}", job.job_id, job.name, err
            )
            return RunStatus.INTERNAL

    def _observe(self, kind: StepKind, status: RunStatus, seconds: float) -> None:
        label = "sql" if kind is StepKind.SQL else "batch"
        self._metrics.step_duration.labels(label, status).observe(seconds)

    async def _release(
        self, job: ClaimedJob, status: RunStatus, conns: Connections, advisor: Advisor
    ) -> None:
        """Release ``job`` whatever happens: retry while the database is away; if the triggers
        cannot compute its next run, release it without that (and say why)."""
        if conns.departed_as is not None:
            await self._release_departed(job, status, conns.store, conns.departed_as)
            return
        nxt = advisor.after_run(job, status)
        rerun = _explained(job, advisor.policy(job.job_id), nxt)
        backoff = Backoff()
        while True:
            agent = self._identity.agent_id
            assert agent is not None
            after = (rerun or advisor.next_run(job.job_id, job.due), nxt.attempts)
            try:
                if await self._release_once(job, status, conns.store, agent, after, advisor):
                    return
                # the statement waited (pool, lock) while the listener came back under a new
                # pid and adopt_jobs moved our claim: release it under the new id
                logger.debug("job {}: agent id changed during the release; again", job.job_id)
                continue
            except psycopg.OperationalError as err:
                # once, not once per retry
                (logger.warning if backoff.waits == 0 else logger.debug)(
                    "job {}: release failed ({}); retrying until the database is back",
                    job.job_id,
                    " ".join(str(err).split()),
                )
            max_backoff = self._settings().max_backoff
            if self._abort.is_set() and backoff.delay >= max_backoff:
                logger.error(
                    "job {}: giving up the release; the liveness check of the next agent "
                    "cleans it up",
                    job.job_id,
                )
                return
            await backoff.wait(max_backoff)

    async def _release_once(
        self,
        job: ClaimedJob,
        status: RunStatus,
        store: Store,
        agent: int,
        after: tuple[datetime | None, int],
        advisor: Advisor,
    ) -> bool:
        """One attempt; False when our agent id changed under it (try again). ``after``: the
        next run and, when it is a retry, the failed attempts so far (else 0)."""
        next_run, attempts = after
        try:
            released = await store.release(job, status, agent, next_run, attempts=attempts)
            value = Stored(next_run)
        except psycopg.OperationalError:
            raise
        except psycopg.DatabaseError as err:
            if schema_gone(err):
                logger.warning(
                    "job {} ({}): not released: the pgagent schema is gone ({})",
                    job.job_id,
                    job.name,
                    str(err).splitlines()[0],
                )
                return True
            logger.error(
                "job {} ({}): its next run cannot be computed ({}); released without one "
                "until its schedule is fixed",
                job.job_id,
                job.name,
                " ".join(str(err).split()),
            )
            released = await store.release_without_recompute(job, status, agent)
            value = Stored(None, never=True)
        if released:
            advisor.released(job.job_id, value)
            return True
        # Not ours any more: another agent took us for dead, or a reconnect moved the claim to
        # our new id (adopt_jobs committed, the listener not told yet): wait for the new id.
        await self._identity.settled()
        return self._identity.agent_id == agent

    async def _release_departed(
        self, job: ClaimedJob, status: RunStatus, store: Store, agent: int
    ) -> None:
        """Release a run of a database a DSN change left: our schedules are not that
        database's, so its triggers compute the next run, as for a pgAgent release."""
        backoff = Backoff()
        while backoff.waits < DEPARTED_RELEASES:
            try:
                await store.release(job, status, agent, None, recompute=True)
                return
            except psycopg.Error as err:
                logger.warning(
                    "job {}: release in the old database failed ({}); retrying",
                    job.job_id,
                    " ".join(str(err).split()),
                )
            await backoff.wait(cap=5.0)
        logger.error(
            "job {}: giving up its release in the old database; an agent there cleans it up",
            job.job_id,
        )


async def finish_or_cancel(
    runs: Sequence[asyncio.Task[None]], seconds: float, abort: asyncio.Event
) -> None:
    """Let ``runs`` finish for ``seconds`` (or until ``abort``); then cancel the rest: their
    runs end 'd' (aborted) and are released by the run tasks themselves."""
    pending = {t for t in runs if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while pending and not abort.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        pending -= await first_of([*pending, abort.wait()], remaining)
    if pending:
        logger.warning("cancelling {} running job(s)", len(pending))
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _explained(job: ClaimedJob, policy: Policy, nxt: AfterRun) -> datetime | None:
    """Log why the job runs next when it does; the time asked for (None: the schedule's)."""
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
        logger.warning("job {} ({}) failed after {} retries", job.job_id, job.name, policy.retries)
    if nxt.reason is Reason.MISSED:
        logger.info(
            "job {} ({}) fell due at {} while it ran: running it again now",
            job.job_id,
            job.name,
            nxt.at,
        )
    return nxt.at


async def _ready(job: ClaimedJob, steps: Steps, plan: Effective, at: float) -> None:
    """Wait until loop time ``at`` (the due time of a job claimed ahead of it), with the
    connection of its first step made ready meanwhile, so the step starts on a warm one."""
    step = first_step(job, plan)
    if step is not None:
        await steps.warm(step)
    await sleep_until(at)
