"""Next-run computation for pgAgent schedules (``pgagent.pga_next_schedule``, with its bugs fixed).

Pure functions, no I/O. A schedule is five boolean arrays (minutes, hours, weekdays, month days,
months) read as local wall-clock time in a zone ``tz``, bounded by ``start`` and ``end``, minus
exceptions. The rules, and where they differ from pgAgent, are listed in
``docs/schedule-semantics.md``; in short:

* minute granularity; the next run is in a later minute than ``now`` and never before the
  schedule's start minute nor after its end;
* an all-false array means "any"; weekdays and month days must both match; month-day slot 32
  ("last") is the real last day of the month; impossible dates are skipped;
* a schedule with nothing selected at all runs once, at its start minute (pgAgent issue #37);
* DST: specific hours run once per wall-clock time (a skipped time at the end of the gap, a
  repeated time at its first occurrence); wildcard hours follow real time (no hole, no skip).

Instants handed in and out are aware datetimes; results are in UTC. Wall-clock values used
while searching are naive datetimes and are never returned.

Modules, bottom up: :mod:`.exceptions` (``pga_exception`` rows), :mod:`.spec` (arrays and
exceptions compiled for the search), :mod:`.model` (the validated :class:`Schedule`),
:mod:`.search` (the wall-clock search), :mod:`.dst` (wall clock to instants), :mod:`.runs`
(the entry points), :mod:`.memo` (the shared memo tables).
"""

from notifyagent.core.schedule.exceptions import ScheduleException
from notifyagent.core.schedule.model import (
    Schedule,
    ScheduleError,
    ScheduleFactory,
    schedule_from_arrays,
)
from notifyagent.core.schedule.runs import clear_cache, job_next_run, next_run, next_runs

__all__ = [
    "Schedule",
    "ScheduleError",
    "ScheduleException",
    "ScheduleFactory",
    "clear_cache",
    "job_next_run",
    "next_run",
    "next_runs",
    "schedule_from_arrays",
]
