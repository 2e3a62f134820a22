"""Scheduling behaviour of the real scheduler and runner on the in-memory store, in fake time:
minutes of schedules pass in milliseconds, and every time asserted is exact."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import pytest

from notifyagent.core.model import RunStatus, Step
from notifyagent.core.policy import Catchup, Overlap, Policy
from notifyagent.core.schedule import Schedule, schedule_from_arrays
from notifyagent.testing import FakeClock, MemoryAgent, MemoryStore, steps

START = dt.datetime(2030, 1, 1, 10, 0, 30, tzinfo=dt.UTC)
S, F, D = RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ABORTED


def every(job_id: int, minutes: range | tuple[int, ...] = tuple(range(60))) -> Schedule:
    return schedule_from_arrays(
        job_id,
        job_id,
        START - dt.timedelta(days=1),
        None,
        [m in minutes for m in range(60)],
        [False] * 24,
        [False] * 7,
        [False] * 32,
        [False] * 12,
    )


Scenario = Callable[[MemoryStore, FakeClock], Coroutine[Any, Any, None]]


def play(scenario: Scenario) -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock.now)
    clock.run(scenario(store, clock))


def at(minute: int, second: float = 0) -> dt.datetime:
    return START.replace(minute=minute, second=0) + dt.timedelta(seconds=second)


def starts(store: MemoryStore, job_id: int) -> list[dt.datetime]:
    return [r.start for r in store.runs(job_id)]


async def until(clock: FakeClock, when: dt.datetime) -> None:
    await asyncio.sleep((when - clock.now()).total_seconds())


def test_run_now_during_a_run_runs_again_right_after() -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("long", steps("sleep 10"))
        async with MemoryAgent(store, clock):
            store.run_now(job)
            await asyncio.sleep(2)
            store.run_now(job)  # while it runs
            await asyncio.sleep(30)
        assert store.statuses(job) == [S, S]
        first, second = store.runs(job)
        assert second.start == first.start + dt.timedelta(seconds=10)

    play(scenario)


@pytest.mark.parametrize(
    ("overlap", "second"), [(Overlap.SKIP, at(3)), (Overlap.QUEUE_ONE, at(2, 30))]
)
def test_a_run_due_while_running_is_skipped_or_queued(
    overlap: Overlap, second: dt.datetime
) -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("slow", steps("sleep 90"))
        store.set_policy(job, Policy(overlap=overlap))
        store.set_schedules(job, [every(job)])
        async with MemoryAgent(store, clock):
            await until(clock, at(3, 30))
        assert starts(store, job)[:2] == [at(1), second]

    play(scenario)


@pytest.mark.parametrize(
    ("handover", "scheduled"),
    [(False, False), (True, False), (True, True)],
    ids=["one-agent", "handover", "handover-scheduled"],
)
def test_failures_are_retried_with_a_doubling_delay(handover: bool, scheduled: bool) -> None:
    """With ``handover`` the agent that ran the first failure stops before the retry: the
    next one continues the chain (the count comes with the claim), not a new one; and its
    resync keeps the pending retry of a job with a schedule (not the schedule's next run)."""

    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("flaky", steps("sleep 1; fail"))
        store.set_policy(job, Policy(retries=2, retry_delay=dt.timedelta(seconds=10)))
        if scheduled:
            store.set_schedules(job, [every(job, (30,))])
        async with MemoryAgent(store, clock):
            store.run_now(job)
            await asyncio.sleep(5 if handover else 60)
        if handover:
            assert (store.statuses(job), store.t.retries[job][0]) == ([F], 1)
            async with MemoryAgent(store, clock):
                await asyncio.sleep(60)
        assert store.statuses(job) == [F, F, F]
        first = starts(store, job)[0]
        offsets = [(s - first).total_seconds() for s in starts(store, job)]
        assert offsets == [0, 11, 32]  # each run takes 1 s, then waits 10 s, then 20 s
        # then the schedule's next run, or none without one
        assert store.snapshot(job).next_run == (at(30) if scheduled else None)
        assert store.t.retries == {}  # the chain ended

    play(scenario)


def test_a_locked_row_is_claimed_soon_after_the_lock_goes() -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("locked", steps("ok"))
        store.t.locked.add(job)
        async with MemoryAgent(store, clock):
            store.run_now(job)
            await asyncio.sleep(1)
            assert store.runs(job) == []
            store.t.locked.discard(job)
            unlocked = clock.now()
            await asyncio.sleep(5)
        (run,) = store.runs(job)
        # the retries grow to at most 2 s between claims
        assert unlocked < run.start <= unlocked + dt.timedelta(seconds=2)

    play(scenario)


@pytest.mark.parametrize(("catchup", "ran"), [(Catchup.ONCE, True), (Catchup.SKIP, False)])
def test_a_time_missed_while_no_agent_ran(catchup: Catchup, ran: bool) -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("hourly", steps("ok"))
        store.set_policy(job, Policy(catchup=catchup))
        store.set_schedules(job, [every(job, (15,))])
        store.t.jobs[job].next_run = at(0) - dt.timedelta(minutes=45)  # 09:15, missed
        async with MemoryAgent(store, clock):
            await asyncio.sleep(1)
        assert bool(store.runs(job)) is ran
        assert store.snapshot(job).next_run == at(15)

    play(scenario)


def test_an_explicit_next_run_is_honoured_and_a_recomputed_one_corrected() -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        explicit = store.add_job("explicit", steps("ok"))
        computed = store.add_job("computed", steps("ok"))
        for job in (explicit, computed):
            store.set_schedules(job, [every(job, (15,))])
        async with MemoryAgent(store, clock):
            store.set_next_run(explicit, at(5))
            store.set_next_run(computed, at(5), recomputed=True)
            await until(clock, at(6))
            assert starts(store, explicit) == [at(5)]
            assert starts(store, computed) == []
            assert store.snapshot(computed).next_run == at(15)

    play(scenario)


def test_a_stop_lets_short_runs_finish_and_aborts_long_ones() -> None:
    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        short = store.add_job("short", steps("sleep 2"))
        long = store.add_job("long", steps("sleep 100"))
        agent = MemoryAgent(store, clock)
        async with agent:
            store.run_now(short)
            store.run_now(long)
            await asyncio.sleep(1)
            await agent.drain(5)
            assert clock.now() == START + dt.timedelta(seconds=6)
        assert (store.statuses(short), store.statuses(long)) == ([S], [D])
        assert store.snapshot(long).agent_id is None
        assert [s.status for s in store.t.step_logs.values()] == [S, D]

    play(scenario)


def test_a_cancel_aborts_the_run_and_the_schedule_goes_on() -> None:
    """A cancel stops the running step at once (no later step runs), the run ends 'd' with
    an output naming who asked, and the next scheduled run happens as usual."""

    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        job = store.add_job("long", steps("sleep 100", "ok"))
        store.set_schedules(job, [every(job, (1, 5))])
        async with MemoryAgent(store, clock) as agent:
            await until(clock, at(1, 3))
            assert store.cancel_job(job, "alice (psql)")
            await until(clock, at(1, 4))
            assert store.statuses(job) == [D]
            assert store.snapshot(job).agent_id is None
            assert not store.cancel_job(job, "alice (psql)")  # not running: nothing happens
            await until(clock, at(5, 1))
            assert agent.steps.started == [(job, "step1"), (job, "step1")]
        logs = list(store.t.step_logs.values())
        assert logs[0].status == D
        assert "cancelled after 3.0s by alice (psql)" in str(logs[0].output)
        assert starts(store, job) == [at(1), at(5)]

    play(scenario)


@pytest.mark.parametrize(("onerror", "run"), [(S, S), (RunStatus.INTERNAL, S), (F, F)])
def test_a_step_cancel_follows_the_steps_on_error_rule(onerror: RunStatus, run: RunStatus) -> None:
    """``cancel --step`` stops only the running step; its on-error rule decides whether the
    job goes on ('s', 'i') or fails ('f')."""

    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        first, second = steps("sleep 100", "ok")
        job = store.add_job("two", (with_onerror(first, onerror), second))
        async with MemoryAgent(store, clock) as agent:
            store.run_now(job)
            await asyncio.sleep(2)
            assert store.cancel_job(job, "bob", step_only=True)
            await asyncio.sleep(1)
            went_on = (job, "step2") in agent.steps.started
        assert store.statuses(job) == [run]
        assert went_on is (run is S)
        assert next(iter(store.t.step_logs.values())).status == onerror

    play(scenario)


def with_onerror(step: Step, onerror: RunStatus) -> Step:
    return replace(step, onerror=onerror)


def test_a_lagging_clock_estimate_never_runs_a_tick_twice() -> None:
    """The agent estimates the server's clock from the rows it reads; a slow answer makes the
    estimate lag. A run that ends within that lag of its due time must not ask for that due
    time again as its next run (the hour-long soak ran `every` jobs twice that way)."""

    async def scenario(store: MemoryStore, clock: FakeClock) -> None:
        store.read_lag = 0.05
        job = store.add_job("tick", steps("sleep 0"))
        store.set_policy(job, Policy(every=dt.timedelta(seconds=7)))
        async with MemoryAgent(store, clock):
            await until(clock, at(1, 0))
        due = [int(t.timestamp()) // 7 for t in starts(store, job)]  # the tick each ran for
        assert len(due) >= 4, due
        assert len(due) == len(set(due)), due

    play(scenario)
