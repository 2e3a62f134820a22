"""Searching wall-clock time: the first minute the arrays and exceptions allow.

Wall-clock values are naive datetimes read in the schedule's zone; mapping them to instants
(and DST) is :mod:`.dst`'s business.
"""

from __future__ import annotations

import datetime
from bisect import bisect_left

from notifyagent.core.schedule.spec import Spec, days_in_month


def next_wall(
    spec: Spec, year: int, month: int, day: int, hour: int, minute: int
) -> datetime.datetime | None:
    """First wall-clock minute at or after the given one that the arrays and exceptions allow.

    Advances field by field (month, day, time) with bisect instead of stepping minutes, so a
    monthly schedule costs about as much as an every-minute one. ``minute`` may be 60 (the
    caller rounded seconds up); that simply carries into the next hour.
    """
    months = spec.months
    while year <= datetime.MAXYEAR:
        i = bisect_left(months, month)
        if i == len(months):
            year, month, day, hour, minute = year + 1, months[0], 1, 0, 0
            continue
        if months[i] != month:
            month, day, hour, minute = months[i], 1, 0, 0
        found = _next_in_month(spec, year, month, day, hour, minute)
        if found is not None:
            return found
        month, day, hour, minute = month + 1, 1, 0, 0
    return None


def wall_fields(wall: datetime.datetime) -> tuple[int, int, int, int, int]:
    return wall.year, wall.month, wall.day, wall.hour, wall.minute


def _next_in_month(
    spec: Spec, year: int, month: int, day: int, hour: int, minute: int
) -> datetime.datetime | None:
    """First allowed minute in this month at or after (day, hour, minute), if any."""
    days = spec.days_by_length[days_in_month(year, month)]
    first_weekday = datetime.date(year, month, 1).weekday() if spec.day_filter else 0
    for candidate in days[bisect_left(days, day) :]:
        if candidate != day:
            hour = minute = 0
        if spec.day_filter:
            if not spec.weekday_ok[(first_weekday + candidate - 1) % 7]:
                continue
            if datetime.date(year, month, candidate) in spec.excluded_days:
                continue
        minute_of_day = _next_time(spec, year, month, candidate, hour, minute)
        if minute_of_day is not None:
            return datetime.datetime(
                year, month, candidate, minute_of_day // 60, minute_of_day % 60
            )
    return None


def _next_time(spec: Spec, year: int, month: int, day: int, hour: int, minute: int) -> int | None:
    """First allowed minute of the day (as minutes since midnight) at or after hour:minute."""
    hours, minutes = spec.hours, spec.minutes
    i = bisect_left(hours, hour)
    if not spec.time_filter:
        if i < len(hours) and hours[i] == hour:
            j = bisect_left(minutes, minute)
            if j < len(minutes):
                return hour * 60 + minutes[j]
            i += 1
        return hours[i] * 60 + minutes[0] if i < len(hours) else None
    date = datetime.date(year, month, day)
    for h in hours[i:]:
        for m in minutes[bisect_left(minutes, minute) if h == hour else 0 :]:
            minute_of_day = h * 60 + m
            if minute_of_day not in spec.excluded_times and (
                (date, minute_of_day) not in spec.excluded_slots
            ):
                return minute_of_day
    return None
