"""The same store scenarios on ``PgStore`` (the test server) and ``MemoryStore``: what the
in-memory twin answers is what PostgreSQL answers, so tests on the twin mean something."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator

import pytest

from notifyagent.core import events
from notifyagent.core.model import Outcome, RunStatus, StepKind
from notifyagent.core.timetable import Origin, Stored
from tests.integration.store_tables import HOUR, MemoryTables, PgTables, Tables, now

S, F, D = RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ABORTED


@pytest.fixture(params=["pg", "memory"])
def tables(request: pytest.FixtureRequest) -> Iterator[Tables]:
    if request.param == "memory":
        yield MemoryTables()
        return
    pg = PgTables(request.getfixturevalue("db"))
    try:
        yield pg
    finally:
        pg.close()


def is_next_hourly(value: dt.datetime | None) -> bool:
    """The schedule of :meth:`Tables.every_hour`'s next run from now."""
    return value is not None and value.minute == 7 and now() < value <= now() + HOUR


def play(tables: Tables, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await tables.store.open()
        try:
            await scenario()
        finally:
            await tables.store.close()

    asyncio.run(main())


AGENT = 7001


def test_a_claim_takes_only_due_enabled_unclaimed_jobs_for_this_station(tables: Tables) -> None:
    past = now() - dt.timedelta(minutes=1)
    due = tables.add_job("due", next_run=past)
    ours = tables.add_job("ours", next_run=past, host_agent="here")
    others = [
        tables.add_job("future", next_run=now() + HOUR),
        tables.add_job("none"),
        tables.add_job("disabled", next_run=past, enabled=False),
        tables.add_job("elsewhere", next_run=past, host_agent="there"),
    ]
    locked = tables.add_job("locked", next_run=past)
    tables.register(AGENT)

    async def scenario() -> None:
        with tables.lock(locked):
            claimed = await tables.store.claim(
                [due, ours, *others, locked], limit=10, station="here", agent=AGENT
            )
        assert sorted(j.job_id for j in claimed) == [due, ours]
        first = next(j for j in claimed if j.job_id == due)
        assert first.first_jslid is not None
        assert [s.name for s in first.steps] == ["step1"]
        assert first.steps[0].kind is StepKind.SQL
        assert first.claimed_at >= first.due
        again = await tables.store.claim([due], limit=10, station="here", agent=AGENT)
        assert again == []

    play(tables, scenario)
    assert tables.runs(due) == [("r", ["r"])]
    assert tables.job(due)[0] == AGENT
    assert all(tables.job(j)[0] is None for j in [*others, locked])


def test_a_claim_respects_its_limit_in_due_order(tables: Tables) -> None:
    jobs = [tables.add_job(f"j{n}", next_run=now() - dt.timedelta(minutes=n)) for n in (1, 3, 2)]
    tables.register(AGENT)

    async def scenario() -> None:
        claimed = await tables.store.claim(jobs, limit=2, station="here", agent=AGENT)
        assert [j.job_id for j in claimed] == [jobs[1], jobs[2]]

    play(tables, scenario)


def test_steps_are_logged_and_the_release_hands_back_the_job(tables: Tables) -> None:
    job = tables.add_job("two steps", n_steps=2, next_run=now() - dt.timedelta(seconds=1))
    tables.register(AGENT)
    later = (now() + HOUR).replace(microsecond=0)

    async def scenario() -> None:
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        assert run.first_jslid is not None
        assert await tables.store.step_finish(run.first_jslid, S, Outcome(True, 1, ""))
        assert not await tables.store.step_finish(run.first_jslid, F, Outcome(False, -1, "x"))
        second = await tables.store.step_start(run.jlgid, run.steps[1].id)
        assert second is not None
        assert await tables.store.step_start(run.jlgid, 999_999) is None
        assert not await tables.store.release(run, F, AGENT + 1, later)  # not the holder
        assert await tables.store.release(run, F, AGENT, later)
        assert not await tables.store.release(run, F, AGENT, later)  # released already

    play(tables, scenario)
    assert tables.runs(job) == [("f", ["s", "r"])]
    assert tables.job(job) == (None, later)


def test_runs_released_together_each_get_their_own_answer(tables: Tables) -> None:
    """PgStore sends concurrent releases as one statement: each still learns whether the job
    was its own, and a run aborted in the same batch still aborts its running steps."""
    jobs = [tables.add_job(f"herd {n}", n_steps=1, next_run=now() - HOUR) for n in range(6)]
    tables.register(AGENT)
    later = (now() + HOUR).replace(microsecond=0)

    async def scenario() -> None:
        runs = await tables.store.claim(jobs, limit=6, station="here", agent=AGENT)
        assert [r.job_id for r in runs] == jobs
        results = await asyncio.gather(
            *(
                tables.store.release(
                    r, D if n == 4 else S, AGENT + 1 if n == 2 else AGENT, None if n == 5 else later
                )
                for n, r in enumerate(runs)
            )
        )
        assert results == [True, True, False, True, True, True]

    play(tables, scenario)
    assert [tables.job(j)[0] for j in jobs] == [None, None, AGENT, None, None, None]
    assert [tables.job(j)[1] for j in jobs[:2] + jobs[3:]] == [later, later, later, later, None]
    assert [tables.runs(j)[0][0] for j in jobs] == ["s", "s", "s", "s", "d", "s"]
    assert tables.runs(jobs[4]) == [("d", ["d"])]


def test_an_aborted_run_aborts_its_running_steps_and_none_stores_null(tables: Tables) -> None:
    job = tables.add_job("aborted", n_steps=1, next_run=now() - dt.timedelta(seconds=1))
    tables.register(AGENT)

    async def scenario() -> None:
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        assert await tables.store.release(run, D, AGENT, None)

    play(tables, scenario)
    assert tables.runs(job) == [("d", ["d"])]
    assert tables.job(job) == (None, None)


def test_a_release_that_recomputes_gets_the_schedules_next_run(tables: Tables) -> None:
    job = tables.add_job("hourly")
    tables.every_hour(job)
    assert is_next_hourly(tables.job(job)[1])
    tables.set_next_run(job, now() - dt.timedelta(seconds=1))  # Run now
    tables.register(AGENT)

    async def scenario() -> None:
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        assert await tables.store.release(run, S, AGENT, None, recompute=True)

    play(tables, scenario)
    agent, next_run = tables.job(job)
    assert agent is None
    assert is_next_hourly(next_run)


def test_a_release_without_recompute_stores_infinity(tables: Tables) -> None:
    job = tables.add_job("broken", next_run=now() - dt.timedelta(seconds=1))
    tables.register(AGENT)

    async def scenario() -> None:
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        assert not await tables.store.release_without_recompute(run, S, AGENT + 1)
        assert await tables.store.release_without_recompute(run, S, AGENT)
        (state,) = await tables.store.job_states([job])
        assert (state.next_run, state.never, state.agent_id) == (None, True, None)

    play(tables, scenario)
    assert tables.runs(job) == [("s", ["r"])]


def test_a_retry_chain_goes_on_with_whichever_agent_claims_the_retry(tables: Tables) -> None:
    """A release with attempts keeps them for the claim at that next run, by any agent; a
    claim at another time (a Run now) starts afresh; a release with 0 ends the chain."""
    times = [(now() - dt.timedelta(seconds=s)).replace(microsecond=0) for s in (9, 7, 5)]
    job = tables.add_job("flaky", next_run=times[0])
    tables.register(AGENT)
    tables.register(AGENT + 1)

    async def claim(agent: int) -> tuple[dt.datetime, int]:
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=agent)
        assert await tables.store.release(run, F, agent, times[1], attempts=run.attempts + 1)
        return run.due, run.attempts

    async def scenario() -> None:
        assert await claim(AGENT) == (times[0], 0)
        (state,) = await tables.store.job_states([job])
        assert state.retry  # a resync leaves the pending retry alone
        assert await claim(AGENT + 1) == (times[1], 1)  # another agent goes on counting
        assert await claim(AGENT) == (times[1], 2)
        tables.set_next_run(job, times[2])  # Run now: a new chain
        (state,) = await tables.store.job_states([job])
        assert not state.retry
        assert await claim(AGENT + 1) == (times[2], 0)
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        assert (run.due, run.attempts) == (times[1], 1)
        assert await tables.store.release(run, S, AGENT, times[1], attempts=0)  # it succeeded
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        assert (run.due, run.attempts) == (times[1], 0)  # the chain ended
        assert await tables.store.release(run, S, AGENT, None)

    play(tables, scenario)
    assert [r[0] for r in tables.runs(job)] == ["f"] * 4 + ["s", "s"]


def test_corrections_apply_only_where_the_row_holds_what_was_seen(tables: Tables) -> None:
    seen = (now() + HOUR).replace(microsecond=0)
    new = seen + HOUR
    free = tables.add_job("free", next_run=seen)
    moved = tables.add_job("moved", next_run=seen + dt.timedelta(minutes=1))
    disabled = tables.add_job("disabled", enabled=False)
    cleared = tables.add_job("cleared", next_run=seen)
    tables.register(AGENT)

    async def scenario() -> None:
        done = await tables.store.correct_next_runs(
            [(free, seen, new), (moved, seen, new), (disabled, None, new), (cleared, seen, None)]
        )
        assert done == {free, cleared}
        states = {s.job_id: s for s in await tables.store.job_states([free, moved, cleared])}
        assert states[free].next_run == new
        assert states[cleared].next_run is None
        assert not states[cleared].never
        assert states[moved].next_run == seen + dt.timedelta(minutes=1)

    play(tables, scenario)


def test_a_dead_agents_runs_are_aborted_and_its_jobs_released(tables: Tables) -> None:
    job = tables.add_job("orphan", next_run=now() - dt.timedelta(seconds=1))
    tables.every_hour(job)
    tables.set_next_run(job, now() - dt.timedelta(seconds=1))
    tables.register(AGENT)

    async def scenario() -> None:
        await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        reaped = await tables.store.reap_zombie(AGENT)
        assert (reaped.station, reaped.runs, reaped.steps, reaped.jobs) == ("here", 1, 1, 1)

    play(tables, scenario)
    assert tables.runs(job) == [("d", ["d"])]
    agent, next_run = tables.job(job)
    assert agent is None
    assert is_next_hourly(next_run)
    assert AGENT not in tables.agents()


def test_history_keeps_the_newest_runs_and_never_a_running_one(tables: Tables) -> None:
    job = tables.add_job("busy")
    tables.register(AGENT)

    async def scenario() -> None:
        for status in (S, F, S, None):
            tables.set_next_run(job, now() - dt.timedelta(seconds=1))
            (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
            if status is not None:
                await tables.store.release(run, status, AGENT, None)
        assert await tables.store.prune_history(None, 2) == 2

    play(tables, scenario)
    assert [status for status, _ in tables.runs(job)] == ["s", "r"]


def test_notifications_say_what_changed_and_whose_write_it_was(tables: Tables) -> None:
    job = tables.add_job("noisy")
    tables.every_hour(job)
    tables.register(AGENT)
    later = (now() + HOUR).replace(microsecond=0)

    def changed(origin: Origin, value: Stored | None = None) -> events.Event:
        return events.JobsChanged(origin, ((job, value),))

    async def scenario() -> None:
        tables.notifications()
        tables.set_next_run(job, now() - dt.timedelta(seconds=1))  # a client's Run now
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        written = Stored(tables.job(job)[1])
        assert tables.notifications() == [(changed(Origin.EXPLICIT, written), False)]  # claim: none
        await tables.store.release(run, S, AGENT, later)
        assert tables.notifications() == [(changed(Origin.EXPLICIT, Stored(later)), True)]
        tables.set_next_run(job, now() - dt.timedelta(seconds=1))
        (run,) = await tables.store.claim([job], limit=1, station="here", agent=AGENT)
        tables.notifications()
        await tables.store.release(run, S, AGENT, None, recompute=True)
        recomputed = Stored(tables.job(job)[1])
        assert tables.notifications() == [(changed(Origin.RECOMPUTED, recomputed), True)]

    play(tables, scenario)
