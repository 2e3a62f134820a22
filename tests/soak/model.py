"""What the soak records and what it checks against: plain values, no I/O.

Times are aware datetimes (UTC) from the server's clock or this machine's (the same clock:
the cluster runs here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class JobModel:
    """One job of the mix and what its runs must look like.

    ``minutes``: the minutes of the hour its schedule selects (every hour, every day), or None
    without a schedule; ``every``: its sub-minute interval policy in seconds (ticks at
    epoch + k·every); neither: it runs only when asked (Run now)."""

    jobid: int
    kind: str
    station: str = ""
    minutes: frozenset[int] | None = None
    every: int | None = None
    retries: int = 0
    overlap: str = "skip"
    #: final status of a run outside any fault ('s', 'f'), None: not checked
    expect: str | None = "s"

    @property
    def on_demand(self) -> bool:
        return self.minutes is None and self.every is None


@dataclass(frozen=True)
class Edit:
    """A schedule change made through pgAdmin's SQL: from ``at`` the job runs at ``minutes``."""

    jobid: int
    at: datetime
    minutes: frozenset[int]


@dataclass(frozen=True)
class Request:
    """A Run now (pgAdmin's statement), at the server's transaction time."""

    jobid: int
    at: datetime


@dataclass(frozen=True)
class Run:
    """One pga_joblog row and what its steps wrote into public.soak_tick."""

    jobid: int
    jlgid: int
    start: datetime
    end: datetime | None
    status: str
    #: first tick this run wrote (its first step's start, measured inside the step)
    ticked: datetime | None = None
    ticks: int = 0
    #: the station whose agent ran it (its steps' application_name), when a step ticked
    station: str | None = None


@dataclass
class Window:
    """A fault, from when it began until the probes show every agent working again.

    ``station``: the agent it hit ('' = all: the server); ``relaxes``: while it lasts, a due
    run of a job it concerns may be missed as long as the catch-up rule makes up for it."""

    kind: str
    start: datetime
    end: datetime
    station: str = ""
    relaxes: bool = False
    detail: dict[str, object] = field(default_factory=dict)

    def covers(self, t: datetime, before: float = 1.0, after: float = 1.0) -> bool:
        return (t - self.start).total_seconds() >= -before and (
            self.end - t
        ).total_seconds() >= -after

    def concerns(self, job: JobModel) -> bool:
        return not self.station or self.station == job.station


@dataclass
class Soak:
    """Everything the checker needs: the mix, what the workload did, the faults, the runs."""

    jobs: dict[int, JobModel]
    start: datetime
    end: datetime
    edits: list[Edit]
    requests: list[Request]
    windows: list[Window]
    runs: list[Run]
