"""The runs this agent holds: one task per claimed job, with its cancel request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger

from notifyagent.agent.job import Cancel
from notifyagent.core import events
from notifyagent.core.model import ClaimedJob


@dataclass(frozen=True)
class Run:
    job: ClaimedJob
    task: asyncio.Task[None]
    cancel: Cancel


class Runs:
    """The running set, by job id; ``finished(job_id)`` is called when a run's task ends."""

    def __init__(self, finished: Callable[[int], None]) -> None:
        self._runs: dict[int, Run] = {}
        self._finished = finished

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._runs

    def __iter__(self) -> Iterator[int]:
        return iter(self._runs)

    def due(self) -> dict[int, datetime]:
        """The due time of each run (what ``jobnextrun`` held when it was claimed)."""
        return {j: r.job.due for j, r in self._runs.items()}

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return [r.task for r in self._runs.values()]

    def start(self, job: ClaimedJob, run: Callable[[Cancel], Coroutine[Any, Any, None]]) -> None:
        cancel = Cancel()
        task = asyncio.create_task(run(cancel), name=f"job-{job.job_id}")
        self._runs[job.job_id] = Run(job, task, cancel)
        task.add_done_callback(lambda t: self._done(job.job_id, t))

    def _done(self, job_id: int, task: asyncio.Task[None]) -> None:
        run = self._runs.get(job_id)
        if run is not None and run.task is task:
            del self._runs[job_id]
            self._finished(job_id)

    def detach(self) -> list[asyncio.Task[None]]:
        """Let go of every run (they go on, nobody here waits for them)."""
        tasks = self.tasks
        self._runs.clear()
        return tasks

    def cancel(self, request: events.CancelJob) -> None:
        """Stop a run of ours on request; a job running elsewhere (or not at all) is left to
        the agent holding it (``cancel_job()`` said whether anyone does)."""
        run = self._runs.get(request.job_id)
        if run is None:
            logger.debug("cancel of job {}: not running on this agent", request.job_id)
            return
        what = "its running step" if request.step_only else "the run"
        logger.bind(job_id=run.job.job_id, job_name=run.job.name).warning(
            "job {} ({}): cancel requested by {}: stopping {}",
            run.job.job_id,
            run.job.name,
            request.who,
            what,
        )
        run.cancel.request(request.who, request.step_only)
