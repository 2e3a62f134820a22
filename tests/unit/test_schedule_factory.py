"""ScheduleFactory: the bulk builder of the agent's schedule reads gives the same schedules as
schedule_from_arrays, validates every shape and bound, and shares what rows have in common."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import pytest

from notifyagent.core.schedule import (
    ScheduleError,
    ScheduleException,
    ScheduleFactory,
    job_next_run,
    schedule_from_arrays,
)
from notifyagent.core.schedule.model import Shape

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
NOW = dt.datetime(2026, 5, 4, 13, 39, 29, tzinfo=UTC)


def flags(n: int, *on: int) -> list[bool | None]:
    return [i in on for i in range(n)]


def shape(minute: int, exceptions: Sequence[tuple[dt.date | None, dt.time | None]] = ()) -> Shape:
    return (flags(60, minute), flags(24), flags(7), flags(32), flags(12), list(exceptions))


ROWS = [
    # (shape key, minute, id, job, start, end, enabled)
    ("a", 5, 1, 10, dt.datetime(2026, 1, 1, 8, 30, 45, tzinfo=UTC), None, True),
    ("a", 5, 2, 11, dt.datetime(2026, 1, 1, 8, 30, 45, tzinfo=UTC), None, False),
    ("a", 5, 3, 12, dt.datetime(2026, 3, 1, 9, tzinfo=BERLIN), NOW + dt.timedelta(hours=2), True),
    ("b", 7, 4, 13, dt.datetime(2026, 1, 1, tzinfo=UTC), None, True),
]  # fmt: skip


def test_rows_give_the_schedules_schedule_from_arrays_gives() -> None:
    factory = ScheduleFactory()
    for key, minute, id_, job, start, end, enabled in ROWS:
        built = factory.build(key, functools.partial(shape, minute), id_, job, start, end, enabled)
        expected = schedule_from_arrays(id_, job, start, end, *shape(minute)[:5], enabled=enabled)
        assert built == expected
        assert built.plan == expected.plan
        assert job_next_run([built], NOW, BERLIN) == job_next_run([expected], NOW, BERLIN)


def test_a_shape_is_read_once_and_equal_bounds_are_shared() -> None:
    factory = ScheduleFactory()
    calls: list[str] = []

    def counted(key: str) -> Shape:
        calls.append(key)
        return shape(5)

    start = dt.datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
    made = [
        factory.build("a", lambda: counted("a"), i, i, start + dt.timedelta(0), None, True)
        for i in range(3)
    ]
    assert calls == ["a"]
    assert made[1].plan is made[0].plan
    assert made[2].start is made[0].start
    assert [m.id for m in made] == [0, 1, 2]


def test_exceptions_are_part_of_the_shape() -> None:
    factory = ScheduleFactory()
    exc = [(dt.date(2026, 5, 4), dt.time(14, 5))]
    built = factory.build("x", lambda: shape(5, exc), 1, 1, NOW, None, True)
    assert built.exceptions == (ScheduleException(dt.date(2026, 5, 4), dt.time(14, 5)),)
    assert job_next_run([built], NOW, UTC_ZONE) == dt.datetime(2026, 5, 4, 15, 5, tzinfo=UTC)


def test_a_bad_shape_or_bound_raises_for_its_row_only() -> None:
    factory = ScheduleFactory()
    bad: Shape = (flags(59), flags(24), flags(7), flags(32), flags(12), [])
    for _ in range(2):  # not remembered: every row of a bad shape is reported
        with pytest.raises(ScheduleError, match="minutes: expected 60 values, got 59"):
            factory.build("bad", lambda: bad, 1, 1, NOW, None, True)
    factory.build("a", lambda: shape(5), 2, 2, NOW, None, True)
    with pytest.raises(ScheduleError, match="start: expected a timezone-aware datetime"):
        factory.build("a", lambda: shape(5), 3, 3, NOW.replace(tzinfo=None), None, True)
    with pytest.raises(ScheduleError, match="end: expected a timezone-aware datetime"):
        factory.build("a", lambda: shape(5), 4, 4, NOW, NOW.replace(tzinfo=None), True)
    assert factory.build("a", lambda: shape(5), 5, 5, NOW, None, True).id == 5
