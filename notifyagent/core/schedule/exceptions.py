"""Schedule exceptions (``pga_exception`` rows) and the lookup sets a search checks them with."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class ScheduleException:
    """One ``pga_exception`` row, in local wall-clock time of the zone the schedule is read in.

    date and time: skip that exact minute; date only: skip the whole day; time only: skip that
    minute every day; neither: matches nothing (as in pgAgent).
    """

    date: datetime.date | None
    time: datetime.time | None


class Exclusions(NamedTuple):
    """Exceptions as sets: whole days, minutes of every day, and (day, minute) pairs."""

    days: frozenset[datetime.date]
    times: frozenset[int]
    slots: frozenset[tuple[datetime.date, int]]


def exclusions(exceptions: tuple[ScheduleException, ...]) -> Exclusions:
    """The lookup sets of ``exceptions``; times with seconds never match a run (as in pgAgent)."""
    return Exclusions(
        frozenset(e.date for e in exceptions if e.date is not None and e.time is None),
        frozenset(
            _minute_of_day(e.time) for e in exceptions if e.date is None and _whole_minute(e.time)
        ),
        frozenset(
            (e.date, _minute_of_day(e.time))
            for e in exceptions
            if e.date is not None and e.time is not None and _whole_minute(e.time)
        ),
    )


def _whole_minute(value: datetime.time | None) -> bool:
    """pgAgent compares exception times for equality with whole-minute run times."""
    return value is not None and value.second == 0 and value.microsecond == 0


def _minute_of_day(value: datetime.time | None) -> int:
    assert value is not None  # callers filter None out first
    return value.hour * 60 + value.minute
