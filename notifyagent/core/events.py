"""Notifications on channel ``notifyagent`` as typed events, and what they leave to do (pure).

The triggers (``sql/install.sql``) send ``<kind>:<id>[=<value>],...`` for job, schedule and
exception changes, ``policy:<id>,...`` for policy rows, ``resync`` when a change is too large
to describe; the liveness check sends ``ping:<agent>:<n>`` to itself. ``notifyagent.cancel_job()``
sends ``cancel:<id>:<who>`` (``cancel-step:`` for the running step only), and jpgAgent's
channel ``jpgagent_kill_job`` carries a bare job id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from notifyagent.core.timetable import Origin, Stored, parse_stored

CHANNEL = "notifyagent"
ORIGINS = {o.value: o for o in (Origin.EXPLICIT, Origin.RECOMPUTED, Origin.SCHEDULES)}
ORIGINS["exception"] = Origin.SCHEDULES
POLICY = "policy"
#: jpgAgent's kill channel: ``NOTIFY jpgagent_kill_job, '<jobid>'`` cancels a running job
KILL_CHANNEL = "jpgagent_kill_job"
CANCEL = "cancel"
CANCEL_STEP = "cancel-step"


@dataclass(frozen=True)
class JobsChanged:
    """Rows of some jobs changed; ``items`` are (job id, the value its transaction left, or
    None when the payload does not say)."""

    origin: Origin
    items: tuple[tuple[int, Stored | None], ...]


@dataclass(frozen=True)
class PoliciesChanged:
    job_ids: tuple[int, ...]


@dataclass(frozen=True)
class Resync:
    """Reload everything."""


@dataclass(frozen=True)
class Ping:
    payload: str


@dataclass(frozen=True)
class Malformed:
    payload: str


@dataclass(frozen=True)
class CancelJob:
    """Stop a running job (or only its running step); only the agent holding it acts."""

    job_id: int
    step_only: bool
    #: who asked, for the step's output (session user, application name)
    who: str


Event = JobsChanged | PoliciesChanged | Resync | Ping | Malformed | CancelJob


def payload_items(rest: str) -> list[tuple[int, Stored | None]]:
    """The ``<id>`` or ``<id>=<value>`` items of a job notification, with the value the
    notifying transaction left (None when the payload does not say). Raises ValueError."""
    items = []
    for item in rest.split(","):
        if not item:
            continue
        job_id, sep, value = item.partition("=")
        items.append((int(job_id), parse_stored(value) if sep else None))
    return items


def label(payload: str) -> str:
    """The notification's kind as counted in the metrics (unknown kinds are 'other')."""
    kind = payload.partition(":")[0]
    return kind if kind in ORIGINS or kind in ("ping", "resync", CANCEL, CANCEL_STEP) else "other"


def parse_kill(payload: str, sender: int) -> Event:
    """A notification on jpgAgent's channel: the job id alone (who sent it is only known as
    the sending backend's pid)."""
    try:
        job_id = int(payload.strip())
    except ValueError:
        return Malformed(payload)
    return CancelJob(job_id, False, f"NOTIFY {KILL_CHANNEL} from backend pid {sender}")


def _cancel(kind: str, rest: str, payload: str) -> Event:
    job_id, _, who = rest.partition(":")
    try:
        return CancelJob(int(job_id), kind == CANCEL_STEP, who or "unknown")
    except ValueError:
        return Malformed(payload)


def parse(payload: str) -> Event:
    kind, _, rest = payload.partition(":")
    if kind in (CANCEL, CANCEL_STEP):
        return _cancel(kind, rest, payload)
    origin = ORIGINS.get(kind)
    if origin is not None:
        try:
            items = payload_items(rest)
        except ValueError:
            items = []
        return JobsChanged(origin, tuple(items)) if items else Malformed(payload)
    if kind == POLICY:
        try:
            return PoliciesChanged(tuple(int(x) for x in rest.split(",") if x))
        except ValueError:
            return Malformed(payload)
    if payload == "resync":
        return Resync()
    if kind == "ping":
        return Ping(payload)
    return Malformed(payload)


@dataclass
class Changes:
    """What notifications said changed since the scheduler last looked.

    ``jobs`` keeps, per job, the origin of the *last* notification: they arrive in commit
    order, so it says who wrote the stored next run last, a client (honour it) or a recompute
    (check it), and ``notified`` which value that was."""

    resync: bool = True
    jobs: dict[int, Origin] = field(default_factory=dict)
    notified: dict[int, Stored] = field(default_factory=dict)
    schedules: set[int] = field(default_factory=set)
    policies: set[int] = field(default_factory=set)

    def record(self, event: JobsChanged | PoliciesChanged | Resync) -> None:
        match event:
            case JobsChanged(origin, items):
                for job_id, value in items:
                    self.jobs[job_id] = origin
                    if value is None:
                        self.notified.pop(job_id, None)
                    else:
                        self.notified[job_id] = value
                if origin is Origin.SCHEDULES:
                    self.schedules.update(job_id for job_id, _ in items)
            case PoliciesChanged(job_ids):
                self.policies.update(job_ids)
            case Resync():
                self.resync = True

    def reschedule(self, job_ids: Iterable[int]) -> None:
        """Check the next run of ``job_ids`` again as after a schedule change (their interval
        changed), unless a notification already asks."""
        for job_id in job_ids:
            self.jobs.setdefault(job_id, Origin.SCHEDULES)

    def touch(self, job_id: int) -> None:
        """Look at a job's row again (a run of it ended), unless a notification already asks."""
        self.jobs.setdefault(job_id, Origin.EXPLICIT)

    def take_resync(self) -> bool:
        """Whether everything is to be reloaded; if so, what was pending is covered by it."""
        if not self.resync:
            return False
        self.resync = False
        self.jobs.clear()
        self.notified.clear()
        self.schedules.clear()
        self.policies.clear()
        return True

    def take_policies(self) -> list[int]:
        ids, self.policies = sorted(self.policies), set()
        return ids

    def take_jobs(self) -> tuple[dict[int, Origin], dict[int, Stored], list[int]]:
        """(origin per job, notified values, jobs whose schedules changed)."""
        jobs, self.jobs = self.jobs, {}
        notified, self.notified = self.notified, {}
        schedules, self.schedules = sorted(self.schedules), set()
        return jobs, notified, schedules

    def explicit(self) -> frozenset[int]:
        """Jobs a client wrote since the rows being handled were read."""
        return frozenset(j for j, o in self.jobs.items() if o is Origin.EXPLICIT)
