"""Sub-minute intervals (policy ``every``): the pure tick rule, the timetable's earlier-of
rule, and the real scheduler and runner running an interval job in fake time."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyagent.core.interval import ANCHOR, check_every, is_tick, next_tick
from notifyagent.core.policy import Overlap, Policy
from notifyagent.core.timetable import Origin, Row, Timetable
from notifyagent.testing import FakeClock, MemoryAgent, MemoryStore, steps
from tests.unit.test_memory_agent import START, every, play, starts

SEC = dt.timedelta(seconds=1)


def test_next_tick_is_anchored_and_strictly_after() -> None:
    t = dt.datetime(2030, 1, 1, 10, 0, 0, tzinfo=dt.UTC)
    assert next_tick(10 * SEC, t) == t + 10 * SEC  # a tick itself: the next one
    assert next_tick(10 * SEC, t + dt.timedelta(milliseconds=1)) == t + 10 * SEC
    assert next_tick(10 * SEC, t - dt.timedelta(microseconds=1)) == t
    # counted from the epoch, not from t: t is 1 s past a multiple of 7 s
    assert (t - ANCHOR).total_seconds() % 7 == 1
    assert next_tick(7 * SEC, t) == t + 6 * SEC
    # a late run does not move later ticks: the tick after a late moment is still on the grid
    late = t + dt.timedelta(seconds=3, milliseconds=900)
    assert next_tick(SEC, late) == t + 4 * SEC
    assert next_tick(dt.timedelta(milliseconds=1500), t) == t + dt.timedelta(milliseconds=1500)


@given(
    st.integers(1_000_000, 59_999_999),
    st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)),
)
def test_next_tick_properties(micros: int, after: dt.datetime) -> None:
    step = dt.timedelta(microseconds=micros)
    tick = next_tick(step, after)
    assert after < tick <= after + step
    assert is_tick(step, tick)
    assert (tick - ANCHOR) % step == dt.timedelta(0)


def test_sixty_ticks_of_one_second_have_no_drift() -> None:
    t = dt.datetime(2030, 1, 1, 10, 0, 0, 250_000, tzinfo=dt.UTC)
    ticks = [next_tick(SEC, t)]
    for _ in range(59):
        # each next tick is computed after a run that ended a little late
        ticks.append(next_tick(SEC, ticks[-1] + dt.timedelta(milliseconds=37)))
    assert ticks[59] - ticks[0] == 59 * SEC


@pytest.mark.parametrize(
    ("seconds", "ok"), [(0.5, False), (1, True), (10, True), (59.999, True), (60, False)]
)
def test_every_range(seconds: float, ok: bool) -> None:
    assert (check_every(dt.timedelta(seconds=seconds)) is None) is ok


def test_timetable_takes_the_earlier_of_interval_and_schedules() -> None:
    tt = Timetable(ZoneInfo("UTC"))
    tt.replace([every(1, (0, 30))], None)
    now = dt.datetime(2030, 1, 1, 10, 29, 55, tzinfo=dt.UTC)
    assert tt.next_run(1, now) == now.replace(minute=30, second=0)
    assert tt.set_intervals({1: 20 * SEC, 2: 10 * SEC}, None) == {1, 2}
    assert tt.next_run(1, now - 20 * SEC) == now.replace(second=40)  # 10:29:40, the tick
    assert tt.next_run(1, now) == now.replace(minute=30, second=0)  # both: one run
    assert tt.next_run(2, now) == now.replace(minute=30, second=0)  # interval only
    assert tt.is_scheduled_time(2, now.replace(second=50))
    assert not tt.is_scheduled_time(2, now.replace(second=51))
    # a job with an interval and no schedule gets its next run written (not left as Run now)
    row = Row(2, True, False, None)
    assert tt.correction(row, Origin.SCHEDULES, now) == (True, now.replace(minute=30, second=0))
    assert tt.set_intervals({}, [2]) == {2}
    assert tt.next_run(2, now) is None
    assert tt.set_intervals({}, [2]) == set()


def test_a_one_second_job_runs_sixty_times_a_minute_without_drift() -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("tick", steps("sleep 0.3"))
        store.set_policy(job, Policy(every=SEC))
        async with MemoryAgent(store, clock):
            await asyncio.sleep(61)
        ran = [s for s in starts(store, job) if START + SEC <= s < START + 61 * SEC]
        assert len(ran) == 60
        assert ran[59] - ran[0] == 59 * SEC
        assert all(s.microsecond == 0 for s in ran)  # on the anchored ticks exactly
        nxt = store.snapshot(job).next_run  # pgAdmin's next run: the coming tick
        assert nxt is not None
        assert is_tick(SEC, nxt)
        assert clock.now() <= nxt <= clock.now() + SEC

    play(scenario)


@pytest.mark.parametrize(("overlap", "runs"), [(Overlap.SKIP, 4), (Overlap.QUEUE_ONE, 6)])
def test_a_tick_due_while_running_follows_the_overlap_policy(overlap: Overlap, runs: int) -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("slow", steps("sleep 2.5"))
        store.set_policy(job, Policy(every=2 * SEC, overlap=overlap))
        async with MemoryAgent(store, clock):
            await asyncio.sleep(15.9)
        ran = starts(store, job)
        # skip: a run every 2.5 s drops the tick under it (ticks 2, 6, 10, 14 ...);
        # queue-one: the missed tick runs right after, so runs follow back to back
        assert len(ran) == runs, ran
        if overlap is Overlap.SKIP:
            assert all(is_tick(2 * SEC, s) for s in ran)

    play(scenario)


def test_changing_every_moves_the_next_run() -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("changed", steps("ok"))
        store.set_schedules(job, [every(job, (1,))])
        async with MemoryAgent(store, clock):
            await asyncio.sleep(1)
            assert store.snapshot(job).next_run == START.replace(minute=1, second=0)
            store.set_policy(job, Policy(every=5 * SEC))
            await asyncio.sleep(0.1)
            assert store.snapshot(job).next_run == next_tick(5 * SEC, clock.now())
            store.set_policy(job, None)
            await asyncio.sleep(0.1)
            assert store.snapshot(job).next_run == START.replace(minute=1, second=0)

    play(scenario)


def test_a_job_without_schedules_stops_when_its_interval_goes() -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("fast only", steps("ok"))
        store.set_policy(job, Policy(every=5 * SEC))
        async with MemoryAgent(store, clock):
            await asyncio.sleep(11)
            assert len(store.runs(job)) == 2
            store.set_policy(job, None)
            await asyncio.sleep(20)
            assert len(store.runs(job)) == 2
            assert store.snapshot(job).next_run is None

    play(scenario)
