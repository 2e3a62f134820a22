"""One run of a claimed job: its steps in order, with pgAgent's on-error rules.

Step status: ``s`` on success, else the step's on-error code (``f`` fail, ``s`` success,
``i`` ignore). Job status: ``f`` as soon as a step ends ``f`` (later steps do not run), ``i``
when a step vanished before it could be logged, ``d`` when a cancel request stopped it, else
``s`` (also for a job without steps).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from loguru import logger

from notifyagent.agent.aio import first_of
from notifyagent.agent.steps import NO_CONNECTION
from notifyagent.core.annotations import NONE
from notifyagent.core.decisions import cancelled_step_status
from notifyagent.core.effective import Effective, effective, origin, parallel_groups, step_timeout
from notifyagent.core.model import ClaimedJob, Outcome, RunStatus, Step, StepKind
from notifyagent.core.policy import DEFAULT, Policy
from notifyagent.core.ports import Steps, Store

#: Called with (step kind, step status, seconds) after every step, e.g. for metrics.
StepObserver = Callable[[StepKind, RunStatus, float], None]


class Cancel:
    """A cancel request for one run (``notifyagent cancel``, ``notifyagent.cancel_job()``,
    jpgAgent's ``jpgagent_kill_job``), set by the scheduler, read by the step loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.who = ""
        self.step_only = False

    def request(self, who: str, step_only: bool) -> None:
        # a cancel of the whole job is never narrowed by a later cancel of the step
        self.step_only = step_only and (self.step_only or not self._event.is_set())
        self.who = who
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def handled_step(self) -> None:
        """A cancel of the running step was carried out: the next step runs."""
        if self.step_only:
            self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()


async def run_steps(
    job: ClaimedJob,
    store: Store,
    runner: Steps,
    observe: StepObserver | None = None,
    policy: Policy = DEFAULT,
    plan: Effective | None = None,
    cancel: Cancel | None = None,
) -> RunStatus:
    """Run every step of ``job``, writing its step log rows; return the job status.

    ``plan`` (the policy merged with the annotations in pgAdmin's fields) replaces ``policy``
    when given. Its job and step timeouts cancel a step (SQL: cancel request; batch: its
    process group is killed) and fail it and the job with an output that says which limit it
    hit. A step annotated to run in parallel starts together with the step before it; the
    group is awaited before the next step, each step keeps its own log row and on-error rule.
    A cancel request stops the running step(s) the same way, with an output that says who
    asked; a cancel of the whole job ends the run 'd'.
    """
    plan = plan or effective(policy, NONE)
    cancel = cancel or Cancel()
    clock = asyncio.get_running_loop().time
    job_timeout = plan.policy.job_timeout_s
    deadline = None if job_timeout is None else clock() + job_timeout
    run = _Run(job, store, runner, observe, plan, deadline, cancel)
    for n, group in enumerate(parallel_groups(job.steps, plan.steps)):
        first = job.first_jslid if n == 0 else None
        if cancel.requested and not cancel.step_only:
            if first is not None:
                outcome = Outcome(False, -1, f"notifyagent: cancelled by {cancel.who}")
                await store.step_finish(first, RunStatus.ABORTED, outcome)
            return RunStatus.ABORTED
        if len(group) == 1:
            statuses = [await run.step(group[0], first)]
        else:
            statuses = await _together(
                [run.step(s, first if i == 0 else None) for i, s in enumerate(group)]
            )
        if None in statuses:  # a step was deleted before it could run
            return RunStatus.INTERNAL
        if RunStatus.ABORTED in statuses:
            return RunStatus.ABORTED
        if RunStatus.FAILED in statuses:
            return RunStatus.FAILED
    return RunStatus.SUCCEEDED


async def _together(
    steps: list[Coroutine[Any, Any, RunStatus | None]],
) -> list[RunStatus | None]:
    """Run steps at once; an error in one (a lost database) stops the others."""
    tasks = [asyncio.ensure_future(s) for s in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass
class _Run:
    job: ClaimedJob
    store: Store
    runner: Steps
    observe: StepObserver | None
    plan: Effective
    deadline: float | None
    cancel: Cancel

    async def step(self, step: Step, jslid: int | None) -> RunStatus | None:
        """One step with its log row: its status, FAILED when the row could not be finished,
        None when the step was deleted before it could run (the run then ends 'i')."""
        job = self.job
        if jslid is None:
            jslid = await self.store.step_start(job.jlgid, step.id)
        if jslid is None:
            logger.warning(
                "job {} ({}): step {} ({}) was deleted before it could run; run ends 'i'",
                job.job_id,
                job.name,
                step.id,
                step.name,
            )
            return None
        step = with_connection(step, self.plan)
        clock = asyncio.get_running_loop().time
        started = clock()
        status, outcome = await _run_step(
            job, step, self.runner, self.plan, self.deadline, self.cancel
        )
        elapsed = clock() - started
        if self.observe is not None:
            self.observe(step.kind, status, elapsed)
        _log_step(job, step, status, outcome, elapsed)
        logged = await self.store.step_finish(jslid, status, outcome)
        return status if logged else RunStatus.FAILED


def with_connection(step: Step, plan: Effective) -> Step:
    """``step`` with the connection keywords its annotations set, if any."""
    settings = plan.steps.get(step.id)
    if settings is not None and settings.connection:
        return dataclasses.replace(step, params=settings.connection)
    return step


def first_step(job: ClaimedJob, plan: Effective) -> Step | None:
    """The step a run of ``job`` starts with (as it will run), None for a job without steps."""
    return with_connection(job.steps[0], plan) if job.steps else None


async def _run_step(
    job: ClaimedJob,
    step: Step,
    runner: Steps,
    plan: Effective,
    deadline: float | None,
    cancel: Cancel,
) -> tuple[RunStatus, Outcome]:
    """The step's status and outcome, within the timeouts, unless a cancel request stops it
    first (the step's own cancellation path: SQL cancel request, process group killed)."""
    clock = asyncio.get_running_loop().time
    started = clock()
    limit, which, configured, source = _limit(plan, step.id, deadline, started)
    task = asyncio.ensure_future(runner.run(job.job_id, step))
    try:
        await first_of([task, cancel.wait()], limit)
    finally:
        stopped = not task.done()
        if stopped:
            task.cancel()
            await asyncio.wait([task])
    if not stopped:
        outcome = task.result()
        return (RunStatus.SUCCEEDED if outcome.ok else step.onerror), outcome
    took = clock() - started
    if cancel.requested:
        status = cancelled_step_status(cancel.step_only, step.onerror)
        only = " (this step only: its on-error rule decides)" if cancel.step_only else ""
        cancel.handled_step()
        text = f"notifyagent: step cancelled after {took:.1f}s by {cancel.who}{only}"
        return status, Outcome(False, -1, text)
    return RunStatus.FAILED, Outcome(
        False,
        -1,
        f"notifyagent: step cancelled after {took:.1f}s: "
        f"the {which} timeout of {configured:g}s ({source}) was reached",
    )


def _log_step(
    job: ClaimedJob, step: Step, status: RunStatus, outcome: Outcome, elapsed: float
) -> None:
    logger.debug(
        "job {} step {} ({}) -> {} result={} in {:.3f}s",
        job.job_id,
        step.id,
        step.name,
        status,
        outcome.result,
        elapsed,
    )
    if not outcome.ok:
        logger.bind(job_id=job.job_id, job_name=job.name, step=step.name, status=status).info(
            "job {} ({}): step {} ({}) failed (on error '{}'): {}",
            job.job_id,
            job.name,
            step.id,
            step.name,
            step.onerror,
            first_line(outcome.output),
        )


def _limit(
    plan: Effective, step_id: int, deadline: float | None, now: float
) -> tuple[float | None, str, float, str]:
    """How long the next step may run, which timeout sets that limit, its setting and where
    that came from."""
    limits = []
    step_s, step_source = step_timeout(plan, step_id)
    if step_s is not None:
        limits.append((step_s, "step", step_s, step_source))
    job_s = plan.policy.job_timeout_s
    if deadline is not None and job_s is not None:
        limits.append((max(0.0, deadline - now), "job", job_s, origin(plan.sources["job_timeout"])))
    if not limits:
        return None, "", 0.0, ""
    return min(limits)


#: Header lines that say nothing about the cause (pgAgent's, kept in jsloutput as is).
_HEADERS = ("Script Error:", NO_CONNECTION)
#: A log line quotes at most this much of a step's output.
_QUOTE = 500


def first_line(output: str) -> str:
    """The first informative line of a step's output (skipping pgAgent's headers), cut to
    a length fit for a log line."""
    for line in output.splitlines():
        text = line.strip()
        if text and text not in _HEADERS:
            return text if len(text) <= _QUOTE else f"{text[:_QUOTE]}... ({len(text)} chars)"
    return ""
