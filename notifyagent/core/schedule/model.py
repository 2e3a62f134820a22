"""The Schedule type: one ``pga_schedule`` row, validated and compiled once on construction."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Hashable, Iterable, Sequence
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


#: (minutes, hours, weekdays, monthdays, months, exceptions) as schedule_from_arrays takes them
Shape = tuple[
    Sequence[bool | None],
    Sequence[bool | None],
    Sequence[bool | None],
    Sequence[bool | None],
    Sequence[bool | None],
    Iterable[ScheduleException | tuple[datetime.date | None, datetime.time | None]],
]
#: a row's plan and its bounds as given
_Bounds = tuple[Plan, datetime.datetime, datetime.datetime | None]


class ScheduleFactory:
    """Builds the many Schedules of one bulk read, where rows share few distinct shapes.

    A shape (arrays and exceptions) is validated and compiled once, at its first row; later
    rows of the same shape only check their bounds (once per distinct start and end) and share
    the arrays, the plan and even the bound objects of the rows before them, which keeps both
    the time and the memory per schedule small.
    """

    def __init__(self) -> None:
        self._templates: dict[Hashable, Schedule] = {}
        #: (spec, start, end) -> (plan, start, end): the first row's objects, shared
        self._bounds: dict[tuple[Spec, datetime.datetime, datetime.datetime | None], _Bounds] = {}

    def build(
        self,
        shape_key: Hashable,
        shape: Callable[[], Shape],
        id: int,  # mirrors the dataclass field
        job_id: int,
        start: datetime.datetime,
        end: datetime.datetime | None,
        enabled: bool,
    ) -> Schedule:
        """The schedule of one row; ``shape`` (called only for a new ``shape_key``) gives the
        raw arrays and exceptions. Raises ScheduleError like schedule_from_arrays."""
        template = self._templates.get(shape_key)
        if template is None:
            minutes, hours, weekdays, monthdays, months, exceptions = shape()
            template = schedule_from_arrays(
                id, job_id, start, end, minutes, hours, weekdays, monthdays, months, enabled,
                exceptions,
            )  # fmt: skip
            self._templates[shape_key] = template
            first = (template.plan, template.start, template.end)
            self._bounds.setdefault((template.plan.spec, start, end), first)
            return template
        key = (template.plan.spec, start, end)
        bounds = self._bounds.get(key)
        if bounds is None:
            start = _check_aware("start", start)
            end = None if end is None else _check_aware("end", end)
            utc_end = None if end is None else end.astimezone(UTC)
            bounds = self._bounds[key] = (Plan(key[0], truncate_minute(start), utc_end), start, end)
        return _assemble(template, id, job_id, bounds, enabled)


_set: Final = object.__setattr__


def _assemble(template: Schedule, id: int, job_id: int, bounds: _Bounds, enabled: bool) -> Schedule:
    """A copy of ``template`` for another row: its validated arrays, another id and bounds."""
    plan, start, end = bounds
    new = object.__new__(Schedule)
    _set(new, "id", id)
    _set(new, "job_id", job_id)
    _set(new, "start", start)
    _set(new, "end", end)
    _set(new, "minutes", template.minutes)
    _set(new, "hours", template.hours)
    _set(new, "weekdays", template.weekdays)
    _set(new, "monthdays", template.monthdays)
    _set(new, "months", template.months)
    _set(new, "enabled", enabled)
    _set(new, "exceptions", template.exceptions)
    _set(new, "plan", plan)
    return new


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
