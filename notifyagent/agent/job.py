"""One run of a claimed job: its steps in order, with pgAgent's on-error rules.

Step status: ``s`` on success, else the step's on-error code (``f`` fail, ``s`` success,
``i`` ignore). Job status: ``f`` as soon as a step ends ``f`` (later steps do not run), ``i``
when a step vanished before it could be logged, else ``s`` (also for a job without steps).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger

from notifyagent.agent.steps import NO_CONNECTION
from notifyagent.core.model import ClaimedJob, Outcome, RunStatus, Step, StepKind
from notifyagent.core.policy import DEFAULT, Policy
from notifyagent.core.ports import Steps, Store

#: Called with (step kind, step status, seconds) after every step, e.g. for metrics.
StepObserver = Callable[[StepKind, RunStatus, float], None]


async def run_steps(
    job: ClaimedJob,
    store: Store,
    runner: Steps,
    observe: StepObserver | None = None,
    policy: Policy = DEFAULT,
) -> RunStatus:
    """Run every step of ``job``, writing its step log rows; return the job status.

    The policy's job and step timeouts cancel a step (SQL: cancel request; batch: its process
    group is killed) and fail it and the job with an output that says which limit it hit.
    """
    clock = asyncio.get_running_loop().time
    deadline = None if policy.job_timeout_s is None else clock() + policy.job_timeout_s
    for n, step in enumerate(job.steps):
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
        status, outcome = await _run_step(job, step, runner, policy, deadline)
        elapsed = clock() - started
        if observe is not None:
            observe(step.kind, status, elapsed)
        _log_step(job, step, status, outcome, elapsed)
        logged = await store.step_finish(jslid, status, outcome)
        if status is RunStatus.FAILED or not logged:
            return RunStatus.FAILED
    return RunStatus.SUCCEEDED


async def _run_step(
    job: ClaimedJob, step: Step, runner: Steps, policy: Policy, deadline: float | None
) -> tuple[RunStatus, Outcome]:
    """The step's status and outcome, within the policy's timeouts."""
    clock = asyncio.get_running_loop().time
    started = clock()
    limit, which, configured = _limit(policy, deadline, started)
    try:
        outcome = await asyncio.wait_for(runner.run(job.job_id, step), limit)
    except TimeoutError:
        return RunStatus.FAILED, Outcome(
            False,
            -1,
            f"notifyagent: step cancelled after {clock() - started:.1f}s: "
            f"the {which} timeout of {configured:g}s (notifyagent.job_policy) was reached",
        )
    return (RunStatus.SUCCEEDED if outcome.ok else step.onerror), outcome


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
