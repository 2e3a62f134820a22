"""The ports through which the agent reaches the outside: the pgagent tables and step execution.

:class:`notifyagent.db.store.PgStore` implements :class:`Store` on PostgreSQL;
:class:`notifyagent.testing.MemoryStore` implements it in memory for tests, and
``tests/integration/test_store_conformance.py`` keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from notifyagent.core.annotations import Texts
from notifyagent.core.model import ClaimedJob, JobState, Outcome, RunStatus, Step
from notifyagent.core.policy import Policy
from notifyagent.core.schedule import Schedule

#: (job id, the next run seen, the next run to write)
NextRunCorrection = tuple[int, datetime | None, datetime | None]


@dataclass(frozen=True)
class Reaped:
    """What the cleanup after one dead agent did."""

    station: str | None
    runs: int
    steps: int
    jobs: int


@dataclass(frozen=True)
class Liveness:
    """What the liveness check found."""

    #: the ids of agents whose backend is gone
    zombies: Sequence[int]
    #: jobs due for longer than the grace period that nobody runs
    overdue: int = 0


class Store(Protocol):
    """Every read and write the agent makes to the pgagent tables."""

    @property
    def pids(self) -> set[int]:
        """Sessions of this store open now: notifications they cause are our own writes."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Replace connections that died (after the listener saw the server go away)."""

    async def job_states(self, ids: Sequence[int] | None) -> list[JobState]:
        """The rows of some jobs (all when ``ids`` is None)."""
        ...

    async def schedules(self, ids: Sequence[int] | None) -> list[Schedule]:
        """The valid schedules (with exceptions) of some jobs (of all when ``ids`` is None)."""
        ...

    async def policies(self, ids: Sequence[int] | None) -> dict[int, Policy]: ...

    async def descriptions(self, ids: Sequence[int] | None) -> dict[int, Texts]:
        """The annotated job comments and step descriptions of some jobs (all when None);
        jobs without any annotation are left out."""
        ...

    async def correct_next_runs(self, corrections: Sequence[NextRunCorrection]) -> set[int]:
        """Write next runs of jobs nobody runs whose row still holds the value seen; returns
        the jobs updated. A new value None is stored as NULL without a recompute."""
        ...

    async def claim(
        self, ids: Sequence[int], *, limit: int, station: str, agent: int, ahead: float = 0.0
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` of ``ids`` that are due within ``ahead`` seconds, enabled,
        unclaimed, allowed on ``station`` and not locked; start their run logs and first step
        logs (stamped with the due time when claimed ahead of it). A job claimed at the due
        time of the retry a release asked for comes with that chain's ``attempts``."""
        ...

    async def step_start(self, jlgid: int, step_id: int) -> int | None:
        """The new step log id, or None when the step no longer exists."""
        ...

    async def step_finish(self, jslid: int, status: RunStatus, outcome: Outcome) -> bool:
        """Whether the step log was still running (and is now finished)."""
        ...

    async def release(
        self,
        job: ClaimedJob,
        status: RunStatus,
        agent: int,
        next_run: datetime | None,
        *,
        recompute: bool = False,
        attempts: int = 0,
    ) -> bool:
        """Finish the run log and hand the job back with ``next_run``; False when ``agent`` no
        longer holds the job. ``recompute``: the extension computes the next run.
        ``attempts`` > 0: ``next_run`` is a retry and the chain so far is kept for whichever
        agent claims it (any agent continues the count); 0 ends the job's chain."""
        ...

    async def release_without_recompute(
        self, job: ClaimedJob, status: RunStatus, agent: int
    ) -> bool:
        """The fallback when the next run cannot be computed: stored as 'infinity'."""
        ...

    async def connection_room(self) -> int:
        """How many more connections the server accepts now."""
        ...

    async def liveness(self, ping: str, grace: float | None = None) -> Liveness:
        """Send ``ping`` through the notification channel; the dead agents' ids and the
        number of jobs overdue by more than ``grace`` seconds (None: not counted)."""
        ...

    async def reap_zombie(self, pid: int) -> Reaped:
        """Abort the runs of a dead agent, release its jobs, delete its row."""
        ...

    async def prune_history(self, days: float | None, keep: int | None) -> int | None:
        """Delete finished runs older than ``days`` or beyond the newest ``keep`` per job;
        None when another agent is doing it."""
        ...

    async def unregister(self, agent: int) -> None: ...


class Steps(Protocol):
    """Runs job steps (SQL on connections of its own, batch scripts in subprocesses)."""

    max_output: int
    batch_steps: bool

    async def run(self, job_id: int, step: Step) -> Outcome: ...

    def limit_connections(self, room: int) -> None:
        """The server accepts ``room`` more connections (read at connect): open no more."""
        ...

    async def warm(self, step: Step | None = None) -> None:
        """Make what ``step`` will run on ready (its connection open and awake), quietly: a
        failure shows when the step runs. No step: what the last step ran on."""
        ...

    async def close(self) -> None: ...
