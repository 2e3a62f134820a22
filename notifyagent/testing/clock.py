"""A fake clock: an event loop whose time jumps to the next timer whenever nothing is ready,
so hours of schedules pass in milliseconds and every run is due exactly when planned."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self._start = start.timestamp()
        #: seconds since ``start``: the loop's time
        self.elapsed = 0.0

    def wall(self) -> float:
        """Seconds since the epoch, as ``time.time()``."""
        return self._start + self.elapsed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    def advance(self, seconds: float) -> None:
        self.elapsed += max(0.0, seconds)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` on an event loop that keeps this clock."""
        with asyncio.Runner(loop_factory=lambda: _Loop(self)) as runner:
            return runner.run(main)


class _Selector(selectors.DefaultSelector):
    """Waiting for a timer takes no time: the clock moves to it instead."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout is None:
            return ready or super().select(None)
        self._clock.advance(timeout)
        return []


class _Loop(asyncio.SelectorEventLoop):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(_Selector(clock))
        self._fake_clock = clock

    def time(self) -> float:
        return self._fake_clock.elapsed

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Run ``func`` at once, in the loop's thread: a thread would run on the real clock
        while this loop's time jumps to its next timer (the agent sleeps the last ~1 ms of a
        precise wait in a thread, see notifyagent.agent.aio.sleep_until; here that wait is
        over as soon as the loop's own time says so)."""
        done: asyncio.Future[T] = self.create_future()
        try:
            done.set_result(func(*args))
        except Exception as err:
            done.set_exception(err)
        return done
