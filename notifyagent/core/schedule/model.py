"""The Schedule type: one ``pga_schedule`` row, validated and compiled once on construction."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from notifyagent.core.schedule import memo
from notifyagent.core.schedule.exceptions import ScheduleException
from notifyagent.core.schedule.spec import Spec

UTC: Final = datetime.UTC

# Field name -> expected array length, in pgAgent's column order.
_ARRAY_LENGTHS: Final = (
    ("minutes", 60),
    ("hours", 24),
    ("weekdays", 7),
    ("monthdays", 32),
    ("months", 12),
)

# Interned specs keyed by the raw (arrays, exceptions) as given; see Schedule.__post_init__.
_SPECS: dict[tuple[object, ...], Spec] = memo.table()


class ScheduleError(ValueError):
    """A schedule's data cannot be used: wrong array length, bad element, naive timestamp..."""


class Plan(NamedTuple):
    """What the search needs from a Schedule, attached to it once at construction."""

    spec: Spec
    start: datetime.datetime  # jscstart truncated to the minute, UTC
    end: datetime.datetime | None  # jscend in UTC, not truncated


@dataclass(frozen=True, slots=True)
class Schedule:
    """One ``pga_schedule`` row plus its exceptions; validated on construction.

    The arrays use pgAgent's layout shifted to 0-based indexes: ``weekdays[0]`` is Sunday,
    ``monthdays[30]`` is day 31 and ``monthdays[31]`` is "last day of month". Lists and SQL NULL
    elements (``None``, read as false like pgAgent does) are accepted and stored as bool tuples.
    The ``plan`` field (not in ``__init__``, ``repr`` or comparisons) holds the compiled form,
    so that computing a next run does no validation or parsing.
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
    plan: Plan = field(init=False, repr=False, compare=False)

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
        start = truncate_minute(_check_aware("start", self.start))
        end = None if self.end is None else _check_aware("end", self.end).astimezone(UTC)
        setter(self, "plan", Plan(spec, start, end))


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


def truncate_minute(value: datetime.datetime) -> datetime.datetime:
    """The UTC minute containing ``value`` (pgAgent's ``date_trunc('minute', ...)``)."""
    t = value.astimezone(UTC)
    return datetime.datetime(t.year, t.month, t.day, t.hour, t.minute, 0, 0, UTC)


def _compile(key: tuple[tuple[object, ...], ...]) -> Spec:
    """Validate raw arrays and exceptions, and return the shared compiled spec for them."""
    arrays = tuple(
        _check_array(name, length, values)
        for (name, length), values in zip(_ARRAY_LENGTHS, key, strict=False)
    )
    exceptions = _check_exceptions(key[5])
    canonical_key = (*arrays, exceptions)
    spec = _SPECS.get(canonical_key) or Spec(arrays, exceptions)
    memo.remember(_SPECS, canonical_key, spec, memo.SPEC_TABLE_SIZE)
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
