"""The scheduler's decisions with plain values and a fixed clock (no database, no event loop)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifyagent.core.decisions import (
    Correction,
    Known,
    NeverFires,
    Reason,
    after_run,
    cancelled_step_status,
    locked_retry_delay,
    plan_queue,
    plan_refresh,
)
from notifyagent.core.model import JobState, RunStatus
from notifyagent.core.policy import Catchup, Overlap, Policy
from notifyagent.core.schedule import schedule_from_arrays
from notifyagent.core.timetable import Origin, Stored, Timetable

UTC = dt.UTC
NOW = dt.datetime(2030, 1, 1, 10, 30, 20, tzinfo=UTC)


def at(hour: int, minute: int, day: int = 1) -> dt.datetime:
    return dt.datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def schedule(job_id: int, minutes=(15,), monthdays=None, months=None):
    return schedule_from_arrays(
        job_id * 10,
        job_id,
        dt.datetime(2029, 1, 1, tzinfo=UTC),
        None,
        [m in minutes for m in range(60)],
        [False] * 24,
        [False] * 7,
        monthdays or [False] * 32,
        months or [False] * 12,
    )


def state(job_id: int, next_run: dt.datetime | None, **kw) -> JobState:
    values: dict[str, Any] = {
        "name": f"job{job_id}",
        "enabled": True,
        "host_agent": "",
        "agent_id": None,
        "never": False,
        "server_now": NOW,
    }
    values.update(kw)
    return JobState(job_id=job_id, next_run=next_run, **values)


@pytest.fixture
def table() -> Timetable:
    t = Timetable(ZoneInfo("UTC"))
    # job 1: hh:15; job 2: no schedule; job 3: 30 February only
    feb30 = [d == 29 for d in range(32)]
    t.replace([schedule(1), schedule(3, monthdays=feb30, months=[m == 1 for m in range(12)])], None)
    return t


def known(table: Timetable, **kw) -> Known:
    return Known(table, NOW, "here", **kw)


def test_a_recomputed_value_is_corrected_and_queued_at_the_engines_time(table) -> None:
    rows = [state(1, at(11, 45))]
    plan = plan_refresh(rows, {1: Origin.RECOMPUTED}, known(table))
    assert plan.corrections == (Correction(1, at(11, 45), at(11, 15)),)
    queued = plan_queue(rows, [1], {1: at(11, 15)}, known(table))
    assert queued.due == {1: at(11, 15)}


def test_an_explicit_value_is_honoured(table) -> None:
    rows = [state(1, at(12, 0))]
    assert plan_refresh(rows, {1: Origin.EXPLICIT}, known(table)).corrections == ()
    assert plan_queue(rows, [1], {}, known(table)).due == {1: at(12, 0)}


def test_a_pending_retry_survives_a_resync(table) -> None:
    """A future next run that is not the schedule's is corrected after a (re)connect, unless
    the row says it is a pending retry (notifyagent.retry): that stays, like a Run now."""
    retry = NOW + dt.timedelta(seconds=20)
    plan = plan_refresh([state(1, retry)], {1: Origin.RESYNC}, known(table))
    assert plan.corrections == (Correction(1, retry, at(11, 15)),)
    rows = [state(1, retry, retry=True)]
    assert plan_refresh(rows, {1: Origin.RESYNC}, known(table)).corrections == ()
    assert plan_queue(rows, [1], {}, known(table)).due == {1: retry}


def test_a_client_write_after_the_read_is_left_to_its_own_notification(table) -> None:
    rows = [state(1, at(11, 45))]
    plan = plan_refresh(rows, {1: Origin.RECOMPUTED}, known(table), later_explicit={1})
    assert plan.corrections == ()


def test_our_own_release_is_checked_like_a_computed_value(table) -> None:
    """The payload names the extension's value, but the row holds what we wrote since."""
    rows = [state(1, at(11, 45))]
    notified = {1: Stored(at(11, 0))}
    plan = plan_refresh(rows, {1: Origin.SCHEDULES}, known(table), notified=notified)
    assert plan.corrections == ()  # somebody else wrote it after the notification
    mine = known(table, written={1: Stored(at(11, 45))})
    plan = plan_refresh(rows, {1: Origin.SCHEDULES}, mine, notified=notified)
    assert plan.corrections == (Correction(1, at(11, 45), at(11, 15)),)


def test_run_now_while_it_runs_asks_for_a_rerun_and_no_correction(table) -> None:
    running = known(table, running={1: at(10, 15)})
    rows = [state(1, NOW - dt.timedelta(seconds=1), agent_id=99)]
    plan = plan_refresh(rows, {1: Origin.EXPLICIT}, running)
    assert plan.reruns == ((1, "job1", NOW - dt.timedelta(seconds=1)),)
    # the due time of the run itself, or a future time, is no Run now
    for value in (at(10, 15), at(11, 0)):
        assert plan_refresh([state(1, value)], {1: Origin.EXPLICIT}, running).reruns == ()
    # a running job is neither corrected nor queued
    recomputed = plan_refresh([state(1, at(11, 45))], {1: Origin.RECOMPUTED}, running)
    assert recomputed.corrections == ()
    assert plan_queue([state(1, at(11, 45))], [1], {}, running).due == {}


def test_catch_up_once_runs_a_missed_time_and_skip_moves_on(table) -> None:
    missed = [state(1, at(10, 15))]
    once = plan_refresh(missed, {1: Origin.RESYNC}, known(table))
    assert once.corrections == ()
    skip = known(table, policies={1: Policy(catchup=Catchup.SKIP)})
    assert plan_refresh(missed, {1: Origin.RESYNC}, skip).corrections == (
        Correction(1, at(10, 15), at(11, 15)),
    )
    # an explicit time set while no agent ran (a Run now) still runs with catchup skip
    explicit = [state(1, at(10, 20))]
    assert plan_refresh(explicit, {1: Origin.RESYNC}, skip).corrections == ()


def test_schedules_that_never_fire_are_named(table) -> None:
    plan = plan_refresh([state(3, None)], {3: Origin.SCHEDULES}, known(table))
    assert plan.never_fires == (NeverFires(3, "job3", (30,)),)
    assert plan_refresh([state(3, None)], {3: Origin.EXPLICIT}, known(table)).never_fires == ()


def test_only_runnable_jobs_for_this_station_are_queued(table) -> None:
    rows = [
        state(1, at(10, 45)),
        state(2, at(10, 45), enabled=False),
        state(4, at(10, 45), agent_id=7),
        state(5, at(10, 45), host_agent="elsewhere"),
        state(6, at(10, 45), host_agent="here"),
        state(7, None),
    ]
    plan = plan_queue(rows, [1, 2, 4, 5, 6, 7, 8], {}, known(table))
    assert plan.due == {1: at(10, 45), 6: at(10, 45)}
    assert plan.remove == (2, 4, 5, 7, 8)
    assert plan.gone == (8,)


def test_a_correction_not_written_keeps_the_value_read(table) -> None:
    rows = [state(1, at(11, 45))]
    assert plan_queue(rows, [1], {}, known(table)).due == {1: at(11, 45)}
    assert plan_queue(rows, [1], {1: None}, known(table)).due == {}


def finished(table, status=RunStatus.SUCCEEDED, policy: Policy | None = None, **kw):
    policy = policy or Policy()
    values: dict[str, Any] = {"rerun": None, "attempts": 0, "claimed_at": at(10, 0), "now": NOW}
    values.update(kw)
    return after_run(1, status, policy, timetable=table, **values)


def test_a_run_now_made_during_the_run_comes_first(table) -> None:
    nxt = finished(table, RunStatus.FAILED, Policy(retries=3), rerun=at(10, 20), attempts=1)
    assert (nxt.reason, nxt.at, nxt.attempts) == (Reason.RUN_NOW, at(10, 20), 1)


def test_failures_are_retried_with_a_doubling_delay_then_given_up(table) -> None:
    policy = Policy(retries=2, retry_delay=dt.timedelta(seconds=10))
    first = finished(table, RunStatus.FAILED, policy)
    assert (first.reason, first.attempts, first.delay) == (Reason.RETRY, 1, 10)
    assert first.at == NOW + dt.timedelta(seconds=10)
    second = finished(table, RunStatus.FAILED, policy, attempts=1)
    assert (second.reason, second.attempts, second.delay) == (Reason.RETRY, 2, 20)
    last = finished(table, RunStatus.FAILED, policy, attempts=2)
    assert (last.reason, last.at, last.attempts, last.gave_up) == (Reason.SCHEDULE, None, 0, True)
    # a success ends the retries
    assert finished(table, RunStatus.SUCCEEDED, policy, attempts=1).attempts == 0


def test_a_time_missed_while_running_runs_next_with_queue_one(table) -> None:
    assert finished(table).reason is Reason.SCHEDULE
    nxt = finished(table, policy=Policy(overlap=Overlap.QUEUE_ONE))
    assert (nxt.reason, nxt.at) == (Reason.MISSED, at(10, 15))
    # nothing fell due since the claim
    later = finished(table, policy=Policy(overlap=Overlap.QUEUE_ONE), claimed_at=at(10, 16))
    assert later.reason is Reason.SCHEDULE


def test_a_locked_row_is_tried_again_sooner_than_later() -> None:
    assert [locked_retry_delay(n) for n in range(8)] == [
        0.05,
        0.1,
        0.2,
        0.4,
        0.8,
        1.6,
        2.0,
        2.0,
    ]


@pytest.mark.parametrize("onerror", [RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.INTERNAL])
def test_a_cancelled_step(onerror: RunStatus) -> None:
    """A cancel of the job aborts its step; a cancel of the step alone follows the step's
    on-error rule, like any failure of that step."""
    assert cancelled_step_status(False, onerror) is RunStatus.ABORTED
    assert cancelled_step_status(True, onerror) is onerror
