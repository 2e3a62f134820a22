"""The rows of :class:`notifyagent.testing.memory.MemoryStore`: the pgagent tables (jobs, run
and step logs, agents) and notifyagent's own (policies, pending retries), as plain objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifyagent.core.annotations import Texts
from notifyagent.core.model import RunStatus, Step
from notifyagent.core.policy import Policy
from notifyagent.core.schedule import Schedule


@dataclass
class JobRow:
    job_id: int
    name: str
    enabled: bool = True
    host_agent: str = ""
    agent_id: int | None = None
    next_run: datetime | None = None
    never: bool = False
    last_run: datetime | None = None


@dataclass
class RunLog:
    jlgid: int
    job_id: int
    status: RunStatus
    start: datetime
    duration: timedelta | None = None


@dataclass
class StepLog:
    jslid: int
    jlgid: int
    step_id: int
    status: RunStatus
    result: int | None = None
    output: str | None = None


@dataclass
class Tables:
    jobs: dict[int, JobRow] = field(default_factory=dict)
    steps: dict[int, tuple[Step, ...]] = field(default_factory=dict)
    schedules: dict[int, tuple[Schedule, ...]] = field(default_factory=dict)
    policies: dict[int, Policy] = field(default_factory=dict)
    descriptions: dict[int, Texts] = field(default_factory=dict)
    runs: dict[int, RunLog] = field(default_factory=dict)
    step_logs: dict[int, StepLog] = field(default_factory=dict)
    #: agent id -> station
    agents: dict[int, str] = field(default_factory=dict)
    #: rows another session holds locked (a claim skips them)
    locked: set[int] = field(default_factory=set)
    #: notifyagent.retry: job id -> (attempts so far, due time of the next retry)
    retries: dict[int, tuple[int, datetime]] = field(default_factory=dict)
