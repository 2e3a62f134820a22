"""The scheduler's decisions as pure functions: what a refresh corrects and queues, what a
finished run asks for next, how long to wait for a locked row.

The agent reads rows and notifications, asks these functions, then writes and logs what they
answer; so every decision can be tested with plain values and a fixed ``now``.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifyagent.core import backoff
from notifyagent.core.model import JobState, RunStatus
from notifyagent.core.policy import DEFAULT, Catchup, Overlap, Policy
from notifyagent.core.timetable import Origin, Row, Stored, Timetable

#: Seconds before a due time that the scheduler claims the job: the claim's round trip (~0.5
#: to 1.5 ms, more on a busy server) and the first step's connection are then done by the due
#: time, and the run waits for it (server clock, so never early).
CLAIM_LEAD = 0.01
#: How far ahead the claim statement accepts a job (the agent asks only for jobs due within
#: CLAIM_LEAD by its estimate of the server's clock; this bounds how wrong that may be).
CLAIM_HORIZON = 1.0
#: First retry delay (seconds) for a due job whose row another session holds locked.
LOCKED_RETRY = 0.05
#: Longest such delay.
LOCKED_RETRY_MAX = 2.0


@dataclass(frozen=True)
class Known:
    """What the agent knows besides the rows it just read."""

    timetable: Timetable
    #: the server's clock, estimated
    now: datetime
    station: str
    #: jobs running here, with the due time of their run
    running: Mapping[int, datetime] = field(default_factory=dict)
    policies: Mapping[int, Policy] = field(default_factory=dict)
    #: the next run this agent last wrote itself (release, correction), per job
    written: Mapping[int, Stored] = field(default_factory=dict)


@dataclass(frozen=True)
class Correction:
    """Write ``value`` as the job's next run if the row still holds ``seen``."""

    job_id: int
    seen: datetime | None
    value: datetime | None


@dataclass(frozen=True)
class NeverFires:
    """A job with enabled, unexpired schedules that name no date that exists."""

    job_id: int
    name: str
    schedule_ids: tuple[int, ...]


@dataclass(frozen=True)
class Refresh:
    """What rows read after notifications ask for, before anything is written."""

    corrections: tuple[Correction, ...] = ()
    #: Run now made while the job runs: (job id, name, time) to run it again right after
    reruns: tuple[tuple[int, str, datetime], ...] = ()
    never_fires: tuple[NeverFires, ...] = ()


def plan_refresh(
    states: Sequence[JobState],
    origins: Mapping[int, Origin],
    known: Known,
    *,
    notified: Mapping[int, Stored] | None = None,
    later_explicit: Collection[int] = (),
) -> Refresh:
    """Which next runs to correct, which Run nows to repeat after a run, which jobs never fire.

    ``notified``: per job, the next run the handled notification says its transaction left;
    a row read with another value was written since (see notifyagent.timetable).
    ``later_explicit``: jobs a client wrote after the rows were read (a Run now right after a
    schedule change): what was read is theirs, and the next round handles it as explicit.
    """
    corrections, reruns, never = [], [], []
    for s in states:
        origin = origins.get(s.job_id, Origin.EXPLICIT)
        due = known.running.get(s.job_id)
        if (
            due is not None
            and origin is Origin.EXPLICIT
            and s.next_run is not None
            and s.next_run != due
            and s.next_run <= known.now
        ):
            reruns.append((s.job_id, s.name, s.next_run))
        wanted, value = _correction(s, origin, known, notified)
        if wanted and s.job_id not in later_explicit and s.job_id not in known.running:
            corrections.append(Correction(s.job_id, s.next_run, value))
        if origin is not Origin.EXPLICIT and s.enabled and value is None:
            found = never_fires(s, known.timetable, known.now)
            if found is not None:
                never.append(found)
    return Refresh(tuple(corrections), tuple(reruns), tuple(never))


def _correction(
    s: JobState, origin: Origin, known: Known, notified: Mapping[int, Stored] | None
) -> tuple[bool, datetime | None]:
    row = Row(s.job_id, s.enabled, s.agent_id is not None, s.next_run, s.never, s.ran)
    if s.retry and origin is Origin.RESYNC:
        # a pending retry, written by a release (perhaps another agent's, perhaps before a
        # restart): explicit, as that release's notification said, not a schedule's value
        origin = Origin.EXPLICIT
    catchup_skip = known.policies.get(s.job_id, DEFAULT).catchup is Catchup.SKIP
    seen = notified.get(s.job_id) if notified else None
    if seen is not None and known.written.get(s.job_id) == row.stored:
        # the later write is our own (a release with what the engine said before this
        # change reached us): check it against the engine like any computed value
        seen = None
    return known.timetable.correction(row, origin, known.now, catchup_skip, seen)


def never_fires(s: JobState, timetable: Timetable, now: datetime) -> NeverFires | None:
    """Why a job with enabled, unexpired schedules has no next run: no date they describe
    exists (30 February, 31 April)."""
    if timetable.next_run(s.job_id, now) is not None:
        return None
    live = [
        x for x in timetable.schedules(s.job_id) if x.enabled and (x.end is None or x.end > now)
    ]
    return NeverFires(s.job_id, s.name, tuple(x.id for x in live)) if live else None


@dataclass(frozen=True)
class QueuePlan:
    #: job id -> when it is due, for every runnable job read
    due: dict[int, datetime]
    #: jobs looked at that are not runnable here (leave the queue if they are in it)
    remove: tuple[int, ...] = ()
    #: jobs whose row is gone (their schedules and what we wrote are forgotten)
    gone: tuple[int, ...] = ()


def plan_queue(
    states: Sequence[JobState],
    origins: Collection[int],
    corrected: Mapping[int, datetime | None],
    known: Known,
) -> QueuePlan:
    """When each job read is due here (with the corrections written): enabled, unclaimed,
    with a next run, for any station or ours, and not running here."""
    due: dict[int, datetime] = {}
    for s in states:
        if s.job_id in known.running:
            continue
        next_run = corrected.get(s.job_id, s.next_run)
        if (
            next_run is not None
            and s.enabled
            and s.agent_id is None
            and s.host_agent in ("", known.station)
        ):
            due[s.job_id] = next_run
    found = {s.job_id for s in states}
    return QueuePlan(
        due,
        tuple(j for j in origins if j not in due),
        tuple(j for j in origins if j not in found),
    )


class Reason(enum.Enum):
    """Why a finished run's job runs next when it does."""

    RUN_NOW = "Run now made while it ran"
    RETRY = "retry of a failure"
    MISSED = "fell due while it ran (queue-one)"
    SCHEDULE = "the schedule's next run"


@dataclass(frozen=True)
class AfterRun:
    reason: Reason
    #: the time asked for; None: the schedule's next run
    at: datetime | None = None
    #: failed attempts retried so far (0: none pending)
    attempts: int = 0
    #: seconds until the retry
    delay: float = 0.0
    #: a failure after the policy's last retry
    gave_up: bool = False


def after_run(
    job_id: int,
    status: RunStatus,
    policy: Policy,
    *,
    rerun: datetime | None,
    attempts: int,
    claimed_at: datetime,
    timetable: Timetable,
    now: datetime,
) -> AfterRun:
    """The next run a finished run asks for, before the schedule's: a Run now made while it
    ran, a retry of a failure (policy retries, the delay doubling), or a run that fell due
    while it ran (policy overlap queue-one)."""
    if rerun is not None:
        return AfterRun(Reason.RUN_NOW, rerun, attempts)
    gave_up = False
    if status is RunStatus.FAILED and policy.retries > 0:
        attempt = attempts + 1
        if attempt <= policy.retries:
            delay = policy.retry_delay_for(attempt)
            return AfterRun(Reason.RETRY, now + timedelta(seconds=delay), attempt, delay)
        gave_up = True
    if policy.overlap is Overlap.QUEUE_ONE:
        missed = timetable.next_run(job_id, claimed_at)
        if missed is not None and missed <= now:
            return AfterRun(Reason.MISSED, missed, gave_up=gave_up)
    return AfterRun(Reason.SCHEDULE, gave_up=gave_up)


def claim_at_once(
    jobs: Mapping[int, Origin],
    notified: Mapping[int, Stored],
    running: Collection[int],
    now: datetime,
) -> list[int]:
    """Jobs a client just made due (Run now: an explicit next run that has come), to claim
    before their rows are read: that takes a round trip off the way to their start. The claim
    checks that they are due, enabled, free and allowed here; the rows are read afterwards as
    after any change."""
    horizon = now + timedelta(seconds=CLAIM_LEAD)
    return sorted(
        job_id
        for job_id, origin in jobs.items()
        if origin is Origin.EXPLICIT
        and job_id not in running
        and (value := notified.get(job_id)) is not None
        and value.at is not None
        and value.at <= horizon
    )


def locked_retry_delay(tries: int) -> float:
    """Seconds until the next claim of a due job whose row was locked ``tries`` times."""
    return backoff.delay(LOCKED_RETRY, tries, LOCKED_RETRY_MAX)


def cancelled_step_status(step_only: bool, onerror: RunStatus) -> RunStatus:
    """The status of a step stopped by a cancel request. A cancel of the job aborts the step
    and the run ('d'); a cancel of the running step only (``cancel --step``) counts as the
    step failing, so its on-error rule decides: 'f' fails the run, 's' and 'i' go on."""
    return onerror if step_only else RunStatus.ABORTED
