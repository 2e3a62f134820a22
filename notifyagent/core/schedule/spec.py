"""A schedule's arrays and exceptions compiled into sorted value lists and lookup sets."""

from __future__ import annotations

import calendar
import datetime
from typing import Final

from notifyagent.core.schedule.exceptions import ScheduleException, exclusions

_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Spec:
    """The compiled form the search works on.

    Instances are interned (one per distinct arrays+exceptions combination, see
    :mod:`.model`), so the identity of a ``Spec`` is a cheap, exact key for memoising results
    shared by many identical schedules.
    """

    __slots__ = (
        "any_exception",
        "arrays",
        "day_filter",
        "days_by_length",
        "exceptions",
        "excluded_days",
        "excluded_slots",
        "excluded_times",
        "fixed_hours",
        "hours",
        "minutes",
        "months",
        "never",
        "once",
        "time_filter",
        "weekday_ok",
    )

    def __init__(
        self,
        arrays: tuple[tuple[bool, ...], ...],
        exceptions: tuple[ScheduleException, ...],
    ) -> None:
        minutes, hours, weekdays, monthdays, months = arrays
        self.arrays = arrays
        self.exceptions = exceptions
        self.once = not any(any(a) for a in arrays)
        self.minutes = _selected(minutes, 0)
        self.hours = _selected(hours, 0)
        self.months = _selected(months, 1)
        # DST treatment depends on whether specific hours were chosen (see dst.first_run_careful).
        self.fixed_hours = 0 < sum(hours) < 24
        # Python's weekday() is Monday=0; pgAgent's array is indexed by DOW with Sunday=0.
        self.weekday_ok = (
            tuple(weekdays[(wd + 1) % 7] for wd in range(7)) if any(weekdays) else ((True,) * 7)
        )
        self.days_by_length = _days_by_length(monthdays)
        self.excluded_days, self.excluded_times, self.excluded_slots = exclusions(exceptions)
        self.any_exception = bool(self.excluded_days or self.excluded_times or self.excluded_slots)
        self.day_filter = not all(self.weekday_ok) or bool(self.excluded_days)
        self.time_filter = bool(self.excluded_times or self.excluded_slots)
        self.never = not self.once and not self._can_ever_match()

    def _can_ever_match(self) -> bool:
        """Whether any minute can ever match, so that searches for impossible ones stop at once.

        Only a month/day combination that never exists (the 30th of February) or time-only
        exceptions covering every selected time can make a schedule empty: every calendar day
        falls on each weekday within the 400-year Gregorian cycle, and dated exceptions are finite.
        """
        day_possible = any(
            self.days_by_length[length]
            for month in self.months
            for length in ((28, 29) if month == 2 else (_DAYS_IN_MONTH[month],))
        )
        time_possible = any(
            hour * 60 + minute not in self.excluded_times
            for hour in self.hours
            for minute in self.minutes
        )
        return day_possible and time_possible

    def excluded(self, wall: datetime.datetime) -> bool:
        """Whether an exception removes the wall-clock minute ``wall``."""
        day = wall.date()
        minute_of_day = wall.hour * 60 + wall.minute
        return (
            day in self.excluded_days
            or minute_of_day in self.excluded_times
            or (day, minute_of_day) in self.excluded_slots
        )


def days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and calendar.isleap(year) else _DAYS_IN_MONTH[month]


def _selected(values: tuple[bool, ...], base: int) -> tuple[int, ...]:
    """Sorted selected values of one array, with "nothing selected" read as "all values"."""
    chosen = tuple(base + i for i, on in enumerate(values) if on)
    return chosen or tuple(range(base, base + len(values)))


def _days_by_length(monthdays: tuple[bool, ...]) -> tuple[tuple[int, ...], ...]:
    """Selected days of the month for each month length (index 28..31), "last" resolved.

    Days past the month's end are dropped, so impossible dates are skipped rather than raising
    as pgAgent does, and the "last day" slot combines with the other selected days.
    """
    days = [d + 1 for d in range(31) if monthdays[d]]
    last = monthdays[31]
    if not days and not last:
        days = list(range(1, 32))
    table: list[tuple[int, ...]] = [() for _ in range(32)]
    for length in (28, 29, 30, 31):
        in_month = {d for d in days if d <= length}
        if last:
            in_month.add(length)
        table[length] = tuple(sorted(in_month))
    return tuple(table)
