"""One run of a claimed job: its steps in order, with pgAgent's on-error rules.

Step status: ``s`` on success, else the step's on-error code (``f`` fail, ``s`` success,
``i`` ignore). Job status: ``f`` as soon as a step ends ``f`` (later steps do not run), ``i``
when a step vanished before it could be logged, else ``s`` (also for a job without steps).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

from notifyagent.steps import StepRunner
from notifyagent.store import ClaimedJob, Store

#: Called with (step kind, step status, seconds) after every step, e.g. for metrics.
StepObserver = Callable[[str, str, float], None]


async def run_steps(
    job: ClaimedJob, store: Store, runner: StepRunner, observe: StepObserver | None = None
) -> str:
    """Run every step of ``job``, writing its step log rows; return the job status."""
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
            return "i"
        started = time.monotonic()
        outcome = await runner.run(job.job_id, step)
        status = "s" if outcome.ok else step.onerror
        elapsed = time.monotonic() - started
        if observe is not None:
            observe(step.kind, status, elapsed)
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
        logged = await store.step_finish(jslid, status, outcome)
        if status == "f" or not logged:
            return "f"
    return "s"


def first_line(output: str) -> str:
    """The first informative line of a step's output (skipping pgAgent's stderr header)."""
    for line in output.splitlines():
        if line.strip() and line.strip() != "Script Error:":
            return line.strip()
    return ""
