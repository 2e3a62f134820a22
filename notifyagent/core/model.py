"""The agent's vocabulary: run statuses, step kinds and the rows it works with (pure).

Statuses and kinds are the one-letter codes of the pgagent tables (their CHECK constraints
allow nothing else), typed so that a typo is a type error rather than a silent mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    """``pga_joblog.jlgstatus`` of a run, ``pga_jobsteplog.jslstatus`` of a step, and a step's
    on-error rule (``jstonerror``: the status a failed step is given)."""

    RUNNING = "r"
    SUCCEEDED = "s"
    FAILED = "f"
    #: a run: internal failure (a step vanished before it ran); a step: a failure ignored
    INTERNAL = "i"
    ABORTED = "d"


#: the words people read in tables and messages
_LABELS = {
    RunStatus.RUNNING: "running",
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "failed",
    RunStatus.INTERNAL: "internal error",
    RunStatus.ABORTED: "aborted",
}


def status_label(code: str | None) -> str | None:
    """The word for a stored status letter; ``None`` and unknown letters (rows made by hand)
    as they are."""
    if code is None:
        return None
    try:
        return _LABELS[RunStatus(code)]
    except ValueError:
        return code


class StepKind(StrEnum):
    """``pga_jobstep.jstkind``."""

    SQL = "s"
    BATCH = "b"


@dataclass(frozen=True)
class Step:
    id: int
    name: str
    kind: StepKind
    code: str
    connstr: str
    dbname: str
    onerror: RunStatus
    #: libpq keywords over the step's connection (annotations: @DATABASE_HOST/NAME/LOGIN/...)
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Step:
        return cls(
            id=int(d["id"]),
            name=str(d["name"]),
            kind=StepKind(d["kind"]),
            code=str(d["code"]),
            connstr=str(d["connstr"] or ""),
            dbname=str(d["dbname"] or ""),
            onerror=RunStatus(d["onerror"] or RunStatus.FAILED),
        )


@dataclass(frozen=True)
class Outcome:
    """What one step did: pgAgent's ``jslresult`` and ``jsloutput``."""

    ok: bool
    result: int
    output: str


@dataclass(frozen=True, slots=True)
class JobState:
    """What the due-queue needs to know about one pga_job row."""

    job_id: int
    name: str
    enabled: bool
    host_agent: str
    agent_id: int | None
    #: NULL (None) or a time; 'infinity' is None with ``never`` set
    next_run: datetime | None
    never: bool
    #: the server's clock when the row was read (due-ness is decided on that clock)
    server_now: datetime
    #: the next run is a pending retry (policy retries) that a release wrote
    retry: bool = False
    #: the job already ran for its stored next run (joblastrun >= jobnextrun): stale, not due
    ran: bool = False


@dataclass(frozen=True)
class ClaimedJob:
    job_id: int
    name: str
    jlgid: int
    #: seconds from its due time to the end of the claim (server clock); negative when it was
    #: claimed ahead of its due time: the run waits that long before its first step
    lag: float
    steps: tuple[Step, ...]
    #: the log row of the first step, written by the claim itself (None: no steps)
    first_jslid: int | None
    #: jobnextrun when it was claimed (the due time of this run)
    due: datetime
    #: when the run counts as started (joblastrun): the claim's transaction time, or the due
    #: time for a job claimed ahead of it
    claimed_at: datetime
    #: failed attempts retried so far when this run is a pending retry (policy retries; kept
    #: in the database, so the chain goes on whichever agent claims the retry); else 0
    attempts: int = 0
