"""From wall-clock minutes to instants: the first run at or after a UTC minute, with DST.

Specific hours ("fixed time", like a cron job with a fixed hour) run once per wall-clock time:
a time inside a spring-forward gap runs at the first instant after the gap, a repeated time
runs at its first occurrence only. Wildcard hours follow real time: wall times in a gap simply
do not happen, and repeated times run in both occurrences.
"""

from __future__ import annotations

import datetime
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

from notifyagent.core.schedule import memo
from notifyagent.core.schedule.search import next_wall, wall_fields
from notifyagent.core.schedule.spec import Spec

UTC: Final = datetime.UTC
_ONE_MINUTE: Final = datetime.timedelta(minutes=1)
_ONE_DAY: Final = datetime.timedelta(days=1)
_NAIVE_EPOCH: Final = datetime.datetime(1970, 1, 1)
_UTC_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=UTC)
_NO_WINDOW: Final = datetime.datetime.min.replace(tzinfo=UTC)


def to_instant(wall: datetime.datetime, offset: datetime.timedelta) -> datetime.datetime:
    """UTC instant of the naive wall time at this UTC offset (timedelta maths beats replace())."""
    return _UTC_EPOCH + (wall - _NAIVE_EPOCH - offset)


def to_wall(instant: datetime.datetime, offset: datetime.timedelta) -> datetime.datetime:
    """Naive wall time of the UTC instant at this UTC offset."""
    return _NAIVE_EPOCH + (instant - _UTC_EPOCH + offset)


def offset_at(instant: datetime.datetime, tz: ZoneInfo) -> datetime.timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    return offset


def _wall_offset(wall: datetime.datetime, tz: ZoneInfo, fold: int) -> datetime.timedelta:
    """UTC offset PEP 495 gives the wall time: fold=0 is the offset before a transition."""
    local = datetime.datetime(
        wall.year, wall.month, wall.day, wall.hour, wall.minute, 0, 0, tz, fold=fold
    )
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    return offset


def _transition(
    before: datetime.datetime, after: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime:
    """First whole minute in (before, after] that already has ``after``'s UTC offset.

    Used only next to a DST change, so a binary search over at most a few hours is cheap.
    """
    target = offset_at(after, tz)
    low, high = 0, -(-(after - before) // _ONE_MINUTE)
    while high - low > 1:
        middle = (low + high) // 2
        if offset_at(before + middle * _ONE_MINUTE, tz) == target:
            high = middle
        else:
            low = middle
    return before + high * _ONE_MINUTE


def _start_wall(local: datetime.datetime) -> tuple[int, int, int, int, int]:
    """Wall-clock fields of the first whole local minute at or after ``local``."""
    return (
        local.year,
        local.month,
        local.day,
        local.hour,
        local.minute + (1 if local.second or local.microsecond else 0),
    )


class _Origin(NamedTuple):
    """Where a search from a lower bound starts on the wall clock, and what DST does near it."""

    start: tuple[int, int, int, int, int]  # first local minute at or after lower
    offset: datetime.timedelta  # lower's UTC offset
    steady_until: datetime.datetime  # hits mapped with ``offset`` up to here need no DST check
    skipped_from: datetime.datetime | None  # first wall minute skipped by a gap ending at lower
    skipped_to: datetime.datetime  # lower's own wall time (end of that gap)


_ORIGINS: dict[tuple[datetime.datetime, ZoneInfo], _Origin] = memo.table()


def _origin(lower: datetime.datetime, tz: ZoneInfo) -> _Origin:
    """Describe the wall clock at ``lower``; memoised, as a whole job table shares one lower.

    ``steady_until`` is lower + 1 day if no clock change falls in (lower, lower + 1 day] and
    lower is not in the second pass of a repeated hour, else the earliest datetime (no window).
    Offsets equal at both ends of a day are taken to mean no change in between: no zone
    changes its clock twice within one day. ``skipped_from`` is set when lower is the first
    minute after a spring-forward gap, because fixed-time runs from the gap belong to lower.
    """
    key = (lower, tz)
    try:
        return _ORIGINS[key]
    except KeyError:
        pass
    local = lower.astimezone(tz)
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    later = lower + _ONE_DAY
    steady_until = later if local.fold == 0 and offset_at(later, tz) == offset else _NO_WINDOW
    wall = to_wall(lower, offset)
    previous = lower - _ONE_MINUTE
    after_previous = to_wall(previous, offset_at(previous, tz)) + _ONE_MINUTE
    skipped_from = after_previous if after_previous < wall else None
    origin = _Origin(_start_wall(local), offset, steady_until, skipped_from, wall)
    return memo.remember(_ORIGINS, key, origin, memo.RESULT_TABLE_SIZE)


def first_run(spec: Spec, lower: datetime.datetime, tz: ZoneInfo) -> datetime.datetime | None:
    """Earliest run instant at or after ``lower`` (a UTC minute), ignoring start and end.

    Fast path: search wall-clock time from lower's local time and map the hit back with lower's
    UTC offset. The hit stands if it lies in the window where that offset is known to hold, or
    if the round trip gives the same wall time as a first (fold=0) occurrence; for wildcard hours
    the latter only within a day, since lower could sit in the first pass of a repeated hour
    whose second pass would come before a hit made with the old offset. Anything else goes the
    careful way.
    """
    if spec.never:
        return None
    try:
        origin = _origin(lower, tz)
        if spec.fixed_hours and origin.skipped_from is not None:
            skipped = next_wall(spec, *wall_fields(origin.skipped_from))
            if skipped is not None and skipped < origin.skipped_to:
                return lower
        wall = next_wall(spec, *origin.start)
        if wall is None:
            return None
        offset = origin.offset
        instant = to_instant(wall, offset)
        if instant <= origin.steady_until:
            return instant
        check = instant.astimezone(tz)
        if (
            check.fold == 0
            and check.utcoffset() == offset
            and (spec.fixed_hours or instant - lower <= _ONE_DAY)
        ):
            return instant
        return _first_run_careful(spec, lower, tz)
    except OverflowError:  # the search ran off the end of the calendar (year 9999)
        return None


def _first_run_careful(
    spec: Spec, lower: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    """Earliest run at or after ``lower``, resolving DST gaps and overlaps explicitly (see the
    module docstring for the rules)."""
    local = lower.astimezone(tz)
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    start = _start_wall(local)
    wall = datetime.datetime(*start[:4]) + start[4] * _ONE_MINUTE
    if local.fold == 0:
        later_offset = _wall_offset(wall, tz, fold=1)
        if later_offset < offset:
            # lower is in the first pass of a repeated hour: first finish that pass with the
            # current offset, then continue from the clock change.
            change = _transition(lower, lower + (offset - later_offset), tz)
            pass_end = to_wall(change, offset)
            found = next_wall(spec, *wall_fields(wall))
            if found is not None and found < pass_end:
                return to_instant(found, offset)
            lower = change
            wall = pass_end if spec.fixed_hours else to_wall(change, later_offset)
    return _search_across_changes(spec, lower, wall, tz)


def _search_across_changes(
    spec: Spec, lower: datetime.datetime, wall: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    """The first matching wall time from ``wall`` on, as an instant at or after ``lower``: a
    repeated wall time runs once (fixed hours) or in both passes (wildcard hours); a skipped
    one runs at the change (fixed hours) or not at all (wildcard hours)."""
    while True:
        found = next_wall(spec, *wall_fields(wall))
        if found is None:
            return None
        before, after = _wall_offset(found, tz, fold=0), _wall_offset(found, tz, fold=1)
        first, second = to_instant(found, before), to_instant(found, after)
        if before == after:
            return first
        if before > after:  # repeated wall time: first < second
            if first >= lower:
                return first
            if not spec.fixed_hours:
                return second
            wall = to_wall(_transition(first, second, tz), before)  # end of the repeat
            continue
        change = _transition(second, first, tz)  # skipped wall time: second < change <= first
        if spec.fixed_hours:
            return change
        wall = to_wall(change, after)
