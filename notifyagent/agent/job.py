"""One run of a claimed job: its steps in order, with pgAgent's on-error rules.

Step status: ``s`` on success, else the step's on-error code (``f`` fail, ``s`` success,
``i`` ignore). Job status: ``f`` as soon as a step ends ``f`` (later steps do not run), ``i``
when a step vanished before it could be logged, ``d`` when a cancel request stopped it, else
``s`` (also for a job without steps).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger

from notifyagent.agent.aio import first_of
from notifyagent.agent.steps import NO_CONNECTION
from notifyagent.core.decisions import cancelled_step_status
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
    cancel: Cancel | None = None,
) -> RunStatus:
    """Run every step of ``job``, writing its step log rows; return the job status.

    The policy's job and step timeouts cancel a step (SQL: cancel request; batch: its process
    group is killed) and fail it and the job with an output that says which limit it hit; a
    cancel request stops it the same way, with an output that says who asked.
    """
    clock = asyncio.get_running_loop().time
    cancel = cancel or Cancel()
    deadline = None if policy.job_timeout_s is None else clock() + policy.job_timeout_s
    for n, step in enumerate(job.steps):
        if cancel.requested and not cancel.step_only:
            if n == 0 and job.first_jslid is not None:
                outcome = Outcome(False, -1, f"notifyagent: cancelled by {cancel.who}")
                await store.step_finish(job.first_jslid, RunStatus.ABORTED, outcome)
            return RunStatus.ABORTED
        jslid = job.first_jslid if n == 0 else await store.step_start(job.jlgid, step.id)
        if jslid is None:
            logger.warning(
                "job {} ({}): step {} ({}) was deleted before it could run; run ends 'i'",
                job.job_id,
                job.name,
                step.id,
                step.name,
            )
            return RunStatus.INTERNAL
        started = clock()
        status, outcome = await _run_step(job, step, runner, policy, deadline, cancel)
        elapsed = clock() - started
        if observe is not None:
            observe(step.kind, status, elapsed)
        _log_step(job, step, status, outcome, elapsed)
        logged = await store.step_finish(jslid, status, outcome)
        if status in (RunStatus.FAILED, RunStatus.ABORTED):
            return status
        if not logged:
            return RunStatus.FAILED
    return RunStatus.SUCCEEDED


async def _run_step(
    job: ClaimedJob,
    step: Step,
    runner: Steps,
    policy: Policy,
    deadline: float | None,
    cancel: Cancel,
) -> tuple[RunStatus, Outcome]:
    """The step's status and outcome, within the policy's timeouts, unless a cancel request
    stops it first (the step's own cancellation path: SQL cancel request, process group
    killed)."""
    clock = asyncio.get_running_loop().time
    started = clock()
    limit, which, configured = _limit(policy, deadline, started)
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
        f"the {which} timeout of {configured:g}s (notifyagent.job_policy) was reached",
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


def _limit(policy: Policy, deadline: float | None, now: float) -> tuple[float | None, str, float]:
    """How long the next step may run, which timeout sets that limit, and its setting."""
    limits = []
    if policy.step_timeout_s is not None:
        limits.append((policy.step_timeout_s, "step", policy.step_timeout_s))
    if deadline is not None and policy.job_timeout_s is not None:
        limits.append((max(0.0, deadline - now), "job", policy.job_timeout_s))
    if not limits:
        return None, "", 0.0
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
