"""What the agent knows about every job's schedules, and when to correct ``jobnextrun``.

Pure: no I/O. The agent feeds it schedules and job rows; it answers with the engine's next run
(notifyagent.core.schedule) and whether the stored ``jobnextrun`` should be replaced by it.

Whose value wins:

* an explicit time a client wrote (pgAdmin's Run now writes ``now()``) is honoured: the job
  runs then, and the release puts the schedule back in charge;
* a value the extension computed (a schedule or exception edit, enabling a job, a release by
  another agent, saving an impossible date) is replaced by the engine's, so pgAdmin shows the
  time the job really runs;
* after a (re)connect the stored value is corrected when it lies in the future (or is
  'infinity') and differs; a due or overdue value runs once first (pgAgent's catch-up).

A job with a sub-minute interval (policy ``every``, :mod:`notifyagent.core.interval`) runs at
its ticks *besides* its schedules: its next run is the earlier of the two.

The agent reads a row some time after the notification that sent it there. A recompute or
schedule notification names the value its transaction left (:class:`Stored`): a row holding
another value was written again since, and that write's own notification decides (a Run now
committed right after a schedule change is honoured, however the two are timed).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from notifyagent.core.interval import is_tick, next_tick
from notifyagent.core.schedule import Schedule, job_next_run


class Origin(enum.StrEnum):
    """Why a job's row is being looked at."""

    EXPLICIT = "job"  # a client wrote jobnextrun (or another column) directly
    RECOMPUTED = "recompute"  # the extension's trigger computed jobnextrun
    SCHEDULES = "schedule"  # its schedules or exceptions changed
    RESYNC = "resync"  # everything reloaded after a (re)connect


@dataclass(frozen=True)
class Stored:
    """A ``jobnextrun`` value: a time, NULL (``at`` None) or 'infinity' (``never``)."""

    at: dt.datetime | None
    never: bool = False


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_stored(text: str) -> Stored | None:
    """A value as the triggers write it in a payload (``notifyagent.payload_time``):
    microseconds since the epoch, 'i' for 'infinity', '' for NULL. None when it cannot be
    represented here (beyond Python's years), i.e. unknown. Raises ValueError when malformed."""
    if text == "":
        return Stored(None)
    if text == "i":
        return Stored(None, never=True)
    micros = int(text)
    try:
        return Stored(EPOCH + dt.timedelta(microseconds=micros))
    except OverflowError:
        return None


@dataclass(frozen=True, slots=True)
class Row:
    """The columns of a pga_job row that matter here."""

    job_id: int
    enabled: bool
    claimed: bool
    next_run: dt.datetime | None  # NULL, or 'infinity' when never is set
    never: bool = False
    #: the job already ran for ``next_run`` (a stale recompute): not due, to be corrected
    ran: bool = False

    @property
    def stored(self) -> Stored:
        return Stored(None if self.never else self.next_run, self.never)


class Timetable:
    """Every job's schedules, read in one zone (the agent's ``--timezone`` or the database's)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._schedules: dict[int, tuple[Schedule, ...]] = {}
        #: job id -> its policy's ``every``
        self._intervals: dict[int, dt.timedelta] = {}
        #: job id -> the ``every`` its policy no longer has (its ticks are stale next runs)
        self._dropped: dict[int, dt.timedelta] = {}
        #: the last next run computed, (job id, now, zone, run): a refresh asks twice in a row
        #: for a job (the correction, then whether it never fires)
        self._last: tuple[int, dt.datetime, ZoneInfo, dt.datetime | None] | None = None

    def __len__(self) -> int:
        return sum(len(s) for s in self._schedules.values())

    def replace(self, schedules: Iterable[Schedule], job_ids: Iterable[int] | None) -> None:
        """Replace the schedules of ``job_ids`` (of every job when None) with ``schedules``."""
        self._last = None
        grouped: dict[int, list[Schedule]] = {}
        for s in schedules:
            grouped.setdefault(s.job_id, []).append(s)
        if job_ids is None:
            self._schedules = {j: tuple(v) for j, v in grouped.items()}
            return
        for job_id in job_ids:
            found = grouped.get(job_id)
            if found:
                self._schedules[job_id] = tuple(found)
            else:
                self._schedules.pop(job_id, None)

    def set_intervals(
        self, intervals: dict[int, dt.timedelta], job_ids: Iterable[int] | None
    ) -> set[int]:
        """Replace the intervals of ``job_ids`` (of every job when None); the jobs whose
        interval changed."""
        self._last = None
        old = dict(self._intervals)
        if job_ids is None:
            self._intervals = dict(intervals)
            ids: Iterable[int] = set(old) | set(intervals)
        else:
            ids = list(job_ids)
            for job_id in ids:
                if job_id in intervals:
                    self._intervals[job_id] = intervals[job_id]
                else:
                    self._intervals.pop(job_id, None)
        changed = {j for j in ids if old.get(j) != self._intervals.get(j)}
        for j in changed:
            if j in old and j not in self._intervals:
                self._dropped[j] = old[j]
            else:
                self._dropped.pop(j, None)
        return changed

    def interval(self, job_id: int) -> dt.timedelta | None:
        return self._intervals.get(job_id)

    def forget(self, job_id: int) -> None:
        self._last = None
        self._schedules.pop(job_id, None)

    def schedules(self, job_id: int) -> tuple[Schedule, ...]:
        return self._schedules.get(job_id, ())

    def next_run(self, job_id: int, now: dt.datetime) -> dt.datetime | None:
        """The engine's next run of ``job_id`` after ``now``: the earlier of its schedules'
        and its interval's next tick (None: neither runs)."""
        last = self._last
        if last is not None and last[0] == job_id and last[1] == now and last[2] is self.tz:
            return last[3]
        schedules = self._schedules.get(job_id)
        found = job_next_run(schedules, now, self.tz) if schedules else None
        every = self._intervals.get(job_id)
        if every is not None:
            tick = next_tick(every, now)
            found = tick if found is None else min(found, tick)
        self._last = (job_id, now, self.tz, found)
        return found

    def is_scheduled_time(self, job_id: int, when: dt.datetime) -> bool:
        """Whether ``when`` is a time the job's schedules or interval produce (not an explicit
        Run now)."""
        every = self._intervals.get(job_id)
        if every is not None and is_tick(every, when):
            return True
        schedules = self._schedules.get(job_id)
        if not schedules:
            return False
        return job_next_run(schedules, when - dt.timedelta(minutes=1), self.tz) == when

    def _stale_tick(self, row: Row, origin: Origin, now: dt.datetime) -> bool:
        """Without a schedule a stored time is a client's Run now, except a future tick of an
        interval the job just lost (cleared, so the job stops)."""
        dropped = self._dropped.get(row.job_id)
        return (
            origin is Origin.SCHEDULES
            and dropped is not None
            and row.next_run is not None
            and row.next_run > now
            and is_tick(dropped, row.next_run)
        )

    def correction(
        self,
        row: Row,
        origin: Origin,
        now: dt.datetime,
        catchup_skip: bool = False,
        notified: Stored | None = None,
    ) -> tuple[bool, dt.datetime | None]:
        """``(True, value)`` when the stored next run must become ``value`` (None = NULL).

        ``catchup_skip`` (policy catchup = skip): after a (re)connect, a missed *scheduled*
        time is replaced by the next one instead of running once; an explicit time (Run now)
        still runs.

        ``notified``: the value the notification being handled says its transaction left.
        A row holding another value was written after it, and is left to that write.
        """
        if not row.enabled or row.claimed or origin is Origin.EXPLICIT:
            return False, None
        if notified is not None and row.stored != notified:
            return False, None
        scheduled = self._schedules.get(row.job_id) or row.job_id in self._intervals
        if not scheduled and not row.never:
            return self._stale_tick(row, origin, now), None
        engine = self.next_run(row.job_id, now)
        stored = None if row.never else row.next_run
        if stored == engine and not (row.never and engine is None):
            return False, None
        if stored is not None and stored <= now and not row.ran:
            # due or overdue (after a reconnect, or kept by a schedule change: install.sql's
            # safe_nextrun): it runs once first, then the schedule resumes
            if (
                catchup_skip
                and origin is Origin.RESYNC
                and self.is_scheduled_time(row.job_id, stored)
            ):
                return True, engine
            return False, None
        if row.never and engine is None:
            return True, None
        return True, engine
