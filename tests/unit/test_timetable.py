"""When the agent replaces a stored next run with the engine's (fake clock, no database)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from notifyagent.core.events import payload_items
from notifyagent.core.schedule import schedule_from_arrays
from notifyagent.core.timetable import EPOCH, Origin, Row, Stored, Timetable, parse_stored

UTC = dt.UTC
NOW = dt.datetime(2030, 1, 1, 10, 30, 20, tzinfo=UTC)


def every_hour_at(minute: int, job_id: int = 1, enabled: bool = True):
    return schedule_from_arrays(
        job_id * 10,
        job_id,
        dt.datetime(2029, 1, 1, tzinfo=UTC),
        None,
        [m == minute for m in range(60)],
        [False] * 24,
        [False] * 7,
        [False] * 32,
        [False] * 12,
        enabled=enabled,
    )


@pytest.fixture
def table() -> Timetable:
    t = Timetable(ZoneInfo("UTC"))
    t.replace([every_hour_at(15), every_hour_at(45), every_hour_at(5, enabled=False)], None)
    return t


def at(hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2030, 1, 1, hour, minute, tzinfo=UTC)


def test_next_run_is_the_earliest_enabled_schedule(table: Timetable) -> None:
    assert table.next_run(1, NOW) == at(10, 45)
    assert table.next_run(2, NOW) is None


@pytest.mark.parametrize("origin", [Origin.RECOMPUTED, Origin.SCHEDULES, Origin.RESYNC])
def test_a_computed_value_that_differs_is_corrected(table: Timetable, origin: Origin) -> None:
    row = Row(1, enabled=True, claimed=False, next_run=at(11, 15))
    assert table.correction(row, origin, NOW) == (True, at(10, 45))


def test_explicit_values_are_honoured(table: Timetable) -> None:
    row = Row(1, enabled=True, claimed=False, next_run=at(12, 0))
    assert table.correction(row, Origin.EXPLICIT, NOW) == (False, None)


def test_due_values_run_first_after_a_resync_or_a_schedule_change(table: Timetable) -> None:
    """A due time is never corrected away: after a reconnect it is a catch-up run; after a
    recompute it is a due time the trigger kept (a schedule saved as the job fell due) or one
    computed in a transaction that committed after it: either way the run is due."""
    overdue = Row(1, enabled=True, claimed=False, next_run=at(10, 0))
    for origin in (Origin.RESYNC, Origin.RECOMPUTED, Origin.SCHEDULES):
        assert table.correction(overdue, origin, NOW) == (False, None)
    future = Row(1, enabled=True, claimed=False, next_run=at(12, 0))
    assert table.correction(future, Origin.RECOMPUTED, NOW) == (True, at(10, 45))


def test_a_due_time_the_job_already_ran_for_is_corrected(table: Timetable) -> None:
    """A recompute in a transaction that began before the due time and committed after the
    run wrote that due time again (joblastrun >= jobnextrun): running it would run the job
    twice for one time."""
    stale = Row(1, enabled=True, claimed=False, next_run=at(10, 0), ran=True)
    for origin in (Origin.RESYNC, Origin.RECOMPUTED, Origin.SCHEDULES):
        assert table.correction(stale, origin, NOW) == (True, at(10, 45))


def test_equal_values_disabled_and_claimed_jobs_are_left_alone(table: Timetable) -> None:
    assert table.correction(Row(1, True, False, at(10, 45)), Origin.RESYNC, NOW) == (False, None)
    assert table.correction(Row(1, False, False, at(9, 0)), Origin.RESYNC, NOW) == (False, None)
    assert table.correction(Row(1, True, True, at(11, 0)), Origin.RECOMPUTED, NOW) == (False, None)


def test_infinity_becomes_the_engine_value_or_null(table: Timetable) -> None:
    never = Row(1, enabled=True, claimed=False, next_run=None, never=True)
    assert table.correction(never, Origin.RECOMPUTED, NOW) == (True, at(10, 45))
    lonely = Row(2, enabled=True, claimed=False, next_run=None, never=True)
    assert table.correction(lonely, Origin.RESYNC, NOW) == (True, None)
    assert table.correction(Row(2, True, False, None), Origin.RESYNC, NOW) == (False, None)


def test_a_job_without_schedules_keeps_a_time_set_while_the_agent_was_away(
    table: Timetable,
) -> None:
    later = Row(2, enabled=True, claimed=False, next_run=at(12, 0))
    assert table.correction(later, Origin.RESYNC, NOW) == (False, None)
    assert table.correction(later, Origin.RECOMPUTED, NOW) == (False, None)


def test_replace_for_some_jobs_keeps_the_others(table: Timetable) -> None:
    table.replace([every_hour_at(50, job_id=2)], [2, 3])
    assert table.next_run(2, NOW) == at(10, 50)
    assert table.next_run(1, NOW) == at(10, 45)
    table.replace([], [1])
    assert table.next_run(1, NOW) is None
    assert len(table) == 1


@pytest.mark.parametrize("origin", [Origin.RECOMPUTED, Origin.SCHEDULES])
def test_a_value_written_after_the_notification_is_left_to_that_write(
    table: Timetable, origin: Origin
) -> None:
    """A Run now committed right after a schedule change, read while handling the change."""
    run_now = Row(1, enabled=True, claimed=False, next_run=NOW)
    recomputed = Stored(at(11, 15))
    assert table.correction(run_now, origin, NOW, notified=recomputed) == (False, None)
    # the value the notification names is still there: it is checked against the engine
    row = Row(1, enabled=True, claimed=False, next_run=at(11, 15))
    assert table.correction(row, origin, NOW, notified=recomputed) == (True, at(10, 45))
    never = Row(1, enabled=True, claimed=False, next_run=None, never=True)
    assert table.correction(never, origin, NOW, notified=Stored(None, never=True)) == (
        True,
        at(10, 45),
    )
    assert table.correction(never, origin, NOW, notified=Stored(None)) == (False, None)


def test_payload_values_as_the_triggers_write_them() -> None:
    assert parse_stored("") == Stored(None)
    assert parse_stored("i") == Stored(None, never=True)
    micros = (NOW - EPOCH) // dt.timedelta(microseconds=1)
    assert parse_stored(str(micros)) == Stored(NOW)
    assert parse_stored(str(micros + 1)) == Stored(NOW + dt.timedelta(microseconds=1))
    assert parse_stored("-1") == Stored(EPOCH - dt.timedelta(microseconds=1))
    assert parse_stored(str(10**20)) is None  # beyond year 9999: unknown
    with pytest.raises(ValueError, match="invalid literal"):
        parse_stored("x")
    # version 3 payloads name values; version 2 payloads (an older install) do not
    assert payload_items(f"7={micros},8=,9=i") == [
        (7, Stored(NOW)),
        (8, Stored(None)),
        (9, Stored(None, never=True)),
    ]
    assert payload_items("7,8") == [(7, None), (8, None)]
