"""The agent's asyncio helpers, in fake time."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from notifyagent.agent.aio import Background, Backoff, first_of, wait_event
from notifyagent.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))


def test_first_of_cancels_only_the_coroutines_it_wrapped(clock: FakeClock) -> None:
    async def main() -> None:
        mine = asyncio.ensure_future(asyncio.sleep(10))
        done = await first_of([mine, asyncio.sleep(1, "soon")])
        assert [d.result() for d in done] == ["soon"]
        assert not mine.done()  # the caller's task keeps running
        await mine
        assert await first_of([asyncio.sleep(5)], 2) == set()
        assert clock.elapsed == 12

    clock.run(main())


def test_wait_event_says_whether_it_was_set(clock: FakeClock) -> None:
    async def main() -> None:
        event = asyncio.Event()
        assert not await wait_event(event, 3)
        asyncio.get_running_loop().call_later(1, event.set)
        assert await wait_event(event, 3)
        assert clock.elapsed == 4

    clock.run(main())


def test_backoff_doubles_to_its_cap_and_resets(clock: FakeClock) -> None:
    async def main() -> None:
        backoff = Backoff()
        for _ in range(5):
            await backoff.wait(cap=1.0)
        assert clock.elapsed == pytest.approx(0.1 + 0.2 + 0.4 + 0.8 + 1.0)
        assert backoff.waits == 5
        await backoff.wait(cap=1.0, at_most=0.2)
        assert clock.elapsed == pytest.approx(2.7)
        backoff.reset()
        assert (backoff.delay, backoff.waits) == (0.1, 0)
        stop = asyncio.Event()
        stop.set()
        await backoff.wait(cap=1.0, stop=stop)  # a stop ends the wait at once
        assert clock.elapsed == pytest.approx(2.7)

    clock.run(main())


def test_bounded_gives_up_and_cancels_in_the_background(clock: FakeClock) -> None:
    async def main() -> None:
        background = Background()
        assert await background.bounded(asyncio.sleep(1, "answer"), 2) == "answer"
        slow = asyncio.ensure_future(asyncio.sleep(10))
        with pytest.raises(TimeoutError):
            await background.bounded(slow, 2)
        await background.wait(1)
        assert slow.cancelled()

    clock.run(main())
