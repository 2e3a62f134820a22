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
"""

from __future__ import annotations

import datetime
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

__all__ = [
    "Schedule",
    "ScheduleError",
    "ScheduleException",
    "clear_cache",
    "job_next_run",
    "next_run",
    "next_runs",
    "schedule_from_arrays",
]

UTC: Final = datetime.UTC
_ONE_MINUTE: Final = datetime.timedelta(minutes=1)
_ONE_DAY: Final = datetime.timedelta(days=1)
_NAIVE_EPOCH: Final = datetime.datetime(1970, 1, 1)
_UTC_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=UTC)
_NO_WINDOW: Final = datetime.datetime.min.replace(tzinfo=UTC)
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# Field name -> expected array length, in pgAgent's column order.
_ARRAY_LENGTHS: Final = (
    ("minutes", 60),
    ("hours", 24),
    ("weekdays", 7),
    ("monthdays", 32),
    ("months", 12),
)

# Bounds of the two module-level memo tables; when one is full it is simply cleared, which keeps
# the hot path to a single dict lookup and the memory use flat.
_SPEC_CACHE_SIZE: Final = 4096
_RESULT_CACHE_SIZE: Final = 16384


class ScheduleError(ValueError):
    """A schedule's data cannot be used: wrong array length, bad element, naive timestamp..."""


@dataclass(frozen=True, slots=True)
class ScheduleException:
    """One ``pga_exception`` row, in local wall-clock time of the zone the schedule is read in.

    date and time: skip that exact minute; date only: skip the whole day; time only: skip that
    minute every day; neither: matches nothing (as in pgAgent).
    """

    date: datetime.date | None
    time: datetime.time | None


class _Spec:
    """A schedule's arrays and exceptions compiled into sorted value lists and lookup sets.

    Instances are interned (one per distinct arrays+exceptions combination), so the identity of
    a ``_Spec`` is a cheap, exact key for memoising results shared by many identical schedules.
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
        # DST treatment depends on whether specific hours were chosen (see _first_run_careful).
        self.fixed_hours = 0 < sum(hours) < 24
        # Python's weekday() is Monday=0; pgAgent's array is indexed by DOW with Sunday=0.
        self.weekday_ok = (
            tuple(weekdays[(wd + 1) % 7] for wd in range(7)) if any(weekdays) else ((True,) * 7)
        )
        self.days_by_length = _days_by_length(monthdays)

        self.excluded_days = frozenset(
            e.date for e in exceptions if e.date is not None and e.time is None
        )
        self.excluded_times = frozenset(
            _minute_of_day(e.time) for e in exceptions if e.date is None and _whole_minute(e.time)
        )
        self.excluded_slots = frozenset(
            (e.date, _minute_of_day(e.time))
            for e in exceptions
            if e.date is not None and e.time is not None and _whole_minute(e.time)
        )
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


def _whole_minute(value: datetime.time | None) -> bool:
    """pgAgent compares exception times for equality with whole-minute run times."""
    return value is not None and value.second == 0 and value.microsecond == 0


def _minute_of_day(value: datetime.time | None) -> int:
    assert value is not None  # callers filter None out first
    return value.hour * 60 + value.minute


# Interned specs keyed by the raw (arrays, exceptions) as given; see Schedule.__post_init__.
_SPECS: dict[tuple[object, ...], _Spec] = {}


class _Plan(NamedTuple):
    """What the search needs from a Schedule, attached to it once at construction."""

    spec: _Spec
    start: datetime.datetime  # jscstart truncated to the minute, UTC
    end: datetime.datetime | None  # jscend in UTC, not truncated


@dataclass(frozen=True, slots=True)
class Schedule:
    """One ``pga_schedule`` row plus its exceptions; validated on construction.

    The arrays use pgAgent's layout shifted to 0-based indexes: ``weekdays[0]`` is Sunday,
    ``monthdays[30]`` is day 31 and ``monthdays[31]`` is "last day of month". Lists and SQL NULL
    elements (``None``, read as false like pgAgent does) are accepted and stored as bool tuples.
    The private ``_plan`` field (not in ``__init__``, ``repr`` or comparisons) holds the
    compiled form, so that computing a next run does no validation or parsing.
    """

    id: int
    job_id: int
    start: datetime.datetime
    end: datetime.datetime | None
    minutes: tuple[bool, ...]
    hours: tuple[bool, ...]
    weekdays: tuple[bool, ...]
    monthdays: tuple[bool, ...]
    months: tuple[bool, ...]
    enabled: bool = True
    exceptions: tuple[ScheduleException, ...] = ()
    _plan: _Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate, normalise to tuples, and attach the compiled spec and UTC bounds.

        Compiled specs are interned by the raw values, so loading many identical schedules
        costs one dict lookup each instead of a full validation and compilation.
        """
        key = (
            _as_tuple("minutes", self.minutes),
            _as_tuple("hours", self.hours),
            _as_tuple("weekdays", self.weekdays),
            _as_tuple("monthdays", self.monthdays),
            _as_tuple("months", self.months),
            _as_tuple("exceptions", self.exceptions),
        )
        try:
            spec = _SPECS.get(key)
        except TypeError:  # an unhashable element: let validation name it
            spec = None
        if spec is None:
            spec = _compile(key)
        setter = object.__setattr__
        minutes, hours, weekdays, monthdays, months = spec.arrays
        setter(self, "minutes", minutes)
        setter(self, "hours", hours)
        setter(self, "weekdays", weekdays)
        setter(self, "monthdays", monthdays)
        setter(self, "months", months)
        setter(self, "exceptions", spec.exceptions)
        start = _truncate_minute(_check_aware("start", self.start))
        end = None if self.end is None else _check_aware("end", self.end).astimezone(UTC)
        setter(self, "_plan", _Plan(spec, start, end))


def _compile(key: tuple[tuple[object, ...], ...]) -> _Spec:
    """Validate raw arrays and exceptions, and return the shared compiled spec for them."""
    arrays = tuple(
        _check_array(name, length, values)
        for (name, length), values in zip(_ARRAY_LENGTHS, key, strict=False)
    )
    exceptions = _check_exceptions(key[5])
    canonical_key = (*arrays, exceptions)
    spec = _SPECS.get(canonical_key) or _Spec(arrays, exceptions)
    if len(_SPECS) >= _SPEC_CACHE_SIZE:
        _SPECS.clear()
    _SPECS[canonical_key] = spec
    _SPECS[key] = spec  # validated values are all hashable
    return spec


def _as_tuple(name: str, values: object) -> tuple[object, ...]:
    if type(values) is tuple:
        return values
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ScheduleError(f"{name}: expected a sequence, got {type(values).__name__}")
    return tuple(values)


def _check_array(name: str, length: int, values: tuple[object, ...]) -> tuple[bool, ...]:
    """Check one boolean array's length and elements; SQL NULL (None) elements count as false."""
    if len(values) != length:
        raise ScheduleError(f"{name}: expected {length} values, got {len(values)}")
    for index, value in enumerate(values):
        if value is not None and value not in (True, False):
            raise ScheduleError(f"{name}[{index}]: expected true, false or None, got {value!r}")
    return tuple(value is not None and bool(value) for value in values)


def _check_exceptions(exceptions: tuple[object, ...]) -> tuple[ScheduleException, ...]:
    checked: list[ScheduleException] = []
    for index, exc in enumerate(exceptions):
        if not isinstance(exc, ScheduleException):
            raise ScheduleError(
                f"exceptions[{index}]: expected ScheduleException, got {type(exc).__name__}"
            )
        if exc.date is not None and (
            not isinstance(exc.date, datetime.date) or isinstance(exc.date, datetime.datetime)
        ):
            raise ScheduleError(f"exceptions[{index}].date: expected a date, got {exc.date!r}")
        if exc.time is not None and (
            not isinstance(exc.time, datetime.time) or exc.time.tzinfo is not None
        ):
            raise ScheduleError(
                f"exceptions[{index}].time: expected a time without time zone, got {exc.time!r}"
            )
        checked.append(exc)
    return tuple(checked)


def _check_aware(name: str, value: object) -> datetime.datetime:
    if not isinstance(value, datetime.datetime) or value.utcoffset() is None:
        raise ScheduleError(f"{name}: expected a timezone-aware datetime, got {value!r}")
    return value


def _truncate_minute(value: datetime.datetime) -> datetime.datetime:
    """The UTC minute containing ``value`` (pgAgent's ``date_trunc('minute', ...)``)."""
    t = value.astimezone(UTC)
    return datetime.datetime(t.year, t.month, t.day, t.hour, t.minute, 0, 0, UTC)


def schedule_from_arrays(
    id: int,  # mirrors the dataclass field
    job_id: int,
    start: datetime.datetime,
    end: datetime.datetime | None,
    minutes: Sequence[bool | None],
    hours: Sequence[bool | None],
    weekdays: Sequence[bool | None],
    monthdays: Sequence[bool | None],
    months: Sequence[bool | None],
    enabled: bool = True,
    exceptions: Iterable[
        ScheduleException | tuple[datetime.date | None, datetime.time | None]
    ] = (),
) -> Schedule:
    """Build a Schedule from a ``pga_schedule`` row as psycopg returns it (lists for bool[]).

    Exceptions may be given as ScheduleException or as ``(jexdate, jextime)`` pairs. Raises
    ScheduleError naming the field, the length found and the length expected.
    """
    excs = tuple(
        e if isinstance(e, ScheduleException) else ScheduleException(*e) for e in exceptions
    )
    return Schedule(
        id=id,
        job_id=job_id,
        start=start,
        end=end,
        minutes=tuple(minutes),  # type: ignore[arg-type]  # None elements are normalised
        hours=tuple(hours),  # type: ignore[arg-type]
        weekdays=tuple(weekdays),  # type: ignore[arg-type]
        monthdays=tuple(monthdays),  # type: ignore[arg-type]
        months=tuple(months),  # type: ignore[arg-type]
        enabled=enabled,
        exceptions=excs,
    )


# --------------------------------------------------------------------------------------------
# Searching wall-clock time


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


def _next_wall(
    spec: _Spec, year: int, month: int, day: int, hour: int, minute: int
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


def _next_in_month(
    spec: _Spec, year: int, month: int, day: int, hour: int, minute: int
) -> datetime.datetime | None:
    """First allowed minute in this month at or after (day, hour, minute), if any."""
    days = spec.days_by_length[_days_in_month(year, month)]
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


def _next_time(spec: _Spec, year: int, month: int, day: int, hour: int, minute: int) -> int | None:
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


# --------------------------------------------------------------------------------------------
# Mapping wall-clock minutes to instants


def _to_instant(wall: datetime.datetime, offset: datetime.timedelta) -> datetime.datetime:
    """UTC instant of the naive wall time at this UTC offset (timedelta maths beats replace())."""
    return _UTC_EPOCH + (wall - _NAIVE_EPOCH - offset)


def _to_wall(instant: datetime.datetime, offset: datetime.timedelta) -> datetime.datetime:
    """Naive wall time of the UTC instant at this UTC offset."""
    return _NAIVE_EPOCH + (instant - _UTC_EPOCH + offset)


def _offset(instant: datetime.datetime, tz: ZoneInfo) -> datetime.timedelta:
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
    target = _offset(after, tz)
    low, high = 0, -(-(after - before) // _ONE_MINUTE)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(before + middle * _ONE_MINUTE, tz) == target:
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


_ORIGINS: dict[tuple[datetime.datetime, ZoneInfo], _Origin] = {}


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
    steady_until = later if local.fold == 0 and _offset(later, tz) == offset else _NO_WINDOW
    wall = _to_wall(lower, offset)
    previous = lower - _ONE_MINUTE
    after_previous = _to_wall(previous, _offset(previous, tz)) + _ONE_MINUTE
    skipped_from = after_previous if after_previous < wall else None
    origin = _Origin(_start_wall(local), offset, steady_until, skipped_from, wall)
    if len(_ORIGINS) >= _RESULT_CACHE_SIZE:
        _ORIGINS.clear()
    _ORIGINS[key] = origin
    return origin


def _first_run(spec: _Spec, lower: datetime.datetime, tz: ZoneInfo) -> datetime.datetime | None:
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
            skipped = _next_wall(spec, *_wall_fields(origin.skipped_from))
            if skipped is not None and skipped < origin.skipped_to:
                return lower
        wall = _next_wall(spec, *origin.start)
        if wall is None:
            return None
        offset = origin.offset
        instant = _to_instant(wall, offset)
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
    spec: _Spec, lower: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    """Earliest run at or after ``lower``, resolving DST gaps and overlaps explicitly.

    Specific hours ("fixed time", like a cron job with a fixed hour) run once per wall-clock
    time: a time inside a spring-forward gap runs at the first instant after the gap, a
    repeated time runs at its first occurrence only. Wildcard hours follow real time: wall times
    in a gap simply do not happen, and repeated times run in both occurrences.
    """
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
            pass_end = _to_wall(change, offset)
            found = _next_wall(spec, *_wall_fields(wall))
            if found is not None and found < pass_end:
                return _to_instant(found, offset)
            lower = change
            wall = pass_end if spec.fixed_hours else _to_wall(change, later_offset)
    while True:
        found = _next_wall(spec, *_wall_fields(wall))
        if found is None:
            return None
        before, after = _wall_offset(found, tz, fold=0), _wall_offset(found, tz, fold=1)
        first, second = _to_instant(found, before), _to_instant(found, after)
        if before == after:
            return first
        if before > after:  # repeated wall time: first < second
            if first >= lower:
                return first
            if not spec.fixed_hours:
                return second
            wall = _to_wall(_transition(first, second, tz), before)  # end of the repeat
            continue
        change = _transition(second, first, tz)  # skipped wall time: second < change <= first
        if spec.fixed_hours:
            return change
        wall = _to_wall(change, after)


def _wall_fields(wall: datetime.datetime) -> tuple[int, int, int, int, int]:
    return wall.year, wall.month, wall.day, wall.hour, wall.minute


# --------------------------------------------------------------------------------------------
# Public entry points

_RESULTS: dict[tuple[_Spec, datetime.datetime, ZoneInfo], datetime.datetime | None] = {}


def clear_cache() -> None:
    """Forget memoised results and compiled specs (for benchmarks and tests)."""
    _RESULTS.clear()
    _ORIGINS.clear()
    _SPECS.clear()


def _lower_bound(now: datetime.datetime) -> datetime.datetime:
    """The first minute a run may use: the UTC minute after the one containing ``now``."""
    if not isinstance(now, datetime.datetime) or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    return _truncate_minute(now) + _ONE_MINUTE


def _once_run(
    schedule: Schedule, lower: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    """Run time of a schedule with nothing selected: its start minute, if still ahead.

    pgAgent runs such a schedule every two minutes (issue #37); here it means "run once".
    """
    spec, start, _ = schedule._plan
    if start < lower:
        return None
    if spec.any_exception and spec.excluded(_to_wall(start, _offset(start, tz))):
        return None
    return start


def _run_after(
    schedule: Schedule, lower: datetime.datetime, tz: ZoneInfo, memo: bool
) -> datetime.datetime | None:
    """Next run at or after the UTC minute ``lower``, within the schedule's start and end.

    The unbounded search depends only on the compiled spec, the effective lower bound and the
    zone, so its result is memoised under exactly that key and shared by identical schedules;
    the end bound is applied afterwards (the first run is past ``end`` or it is the answer).
    """
    spec, start, end = schedule._plan
    if spec.once:
        run = _once_run(schedule, lower, tz)
    else:
        effective = start if start > lower else lower
        if memo:
            key = (spec, effective, tz)
            try:
                run = _RESULTS[key]
            except KeyError:
                run = _first_run(spec, effective, tz)
                if len(_RESULTS) >= _RESULT_CACHE_SIZE:
                    _RESULTS.clear()
                _RESULTS[key] = run
        else:
            run = _first_run(spec, effective, tz)
    if run is None or (end is not None and run > end):
        return None
    return run


def next_run(schedule: Schedule, now: datetime.datetime, tz: ZoneInfo) -> datetime.datetime | None:
    """Next run of ``schedule`` after ``now`` in UTC, or None if it never runs again.

    ``schedule.enabled`` is not consulted (like ``pga_next_schedule``); see job_next_run.
    """
    return _run_after(schedule, _lower_bound(now), tz, memo=True)


def job_next_run(
    schedules: Iterable[Schedule], now: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    """A job's next run: the earliest next run of its enabled schedules, None if there is none.

    This is the value pgAgent's job trigger stores in ``pga_job.jobnextrun``.
    """
    lower = _lower_bound(now)
    best: datetime.datetime | None = None
    for schedule in schedules:
        if not schedule.enabled:
            continue
        run = _run_after(schedule, lower, tz, memo=True)
        if run is not None and (best is None or run < best):
            best = run
    return best


def next_runs(
    schedule: Schedule, now: datetime.datetime, tz: ZoneInfo, count: int
) -> list[datetime.datetime]:
    """The next ``count`` runs after ``now`` (fewer if the schedule ends), in UTC.

    Each run is computed from the previous one exactly as the agent would after that run
    finished within its minute. Results are not memoised, to keep the shared cache for jobs.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    runs: list[datetime.datetime] = []
    lower = _lower_bound(now)
    while len(runs) < count:
        run = _run_after(schedule, lower, tz, memo=False)
        if run is None:
            break
        runs.append(run)
        lower = run + _ONE_MINUTE
    return runs
