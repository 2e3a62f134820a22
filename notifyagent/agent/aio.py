"""The few asyncio patterns the agent's parts share, written once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from notifyagent.core import backoff

T = TypeVar("T")


async def first_of(
    aws: Iterable[Awaitable[Any]], seconds: float | None = None
) -> set[asyncio.Future[Any]]:
    """Wait until the first of ``aws`` is done, or ``seconds``; return those done.

    Coroutines are wrapped in tasks that are cancelled when they lose; futures and tasks given
    are left running (they belong to the caller)."""
    created: list[asyncio.Future[Any]] = []
    waiting: list[asyncio.Future[Any]] = []
    for aw in aws:
        if asyncio.isfuture(aw):
            waiting.append(aw)
        else:
            wrapped = asyncio.ensure_future(aw)
            created.append(wrapped)
            waiting.append(wrapped)
    try:
        done, _ = await asyncio.wait(waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for loser in created:
            loser.cancel()
    return done


#: The last part of a precise wait (seconds) is slept in a thread: the event loop's timers
#: wake up to ~1 ms late (epoll counts whole milliseconds), a thread's nanosleep ~0.1 ms.
FINE_WAIT = 0.0015
_alarm = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notifyagent-alarm")


async def sleep_until(at: float) -> None:
    """Sleep until loop time ``at``, to within ~0.1 ms rather than asyncio's ~1 ms."""
    loop = asyncio.get_running_loop()
    coarse = at - loop.time() - FINE_WAIT
    if coarse > 0:
        await asyncio.sleep(coarse)
    remaining = at - loop.time()
    if remaining > 0:
        await loop.run_in_executor(_alarm, _nap_until, time.monotonic() + remaining)
    # a loop on a clock of its own (the tests' fake clock) may not be there yet: never early
    left = at - loop.time()
    if left > 0:
        await asyncio.sleep(left)


def _nap_until(deadline: float) -> None:
    """In the alarm thread: sleep until ``deadline`` (monotonic clock), unless already past
    (a wait queued behind an earlier one)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class Background:
    """Tasks nobody awaits (a statement abandoned after its time limit, a connection closing,
    the old connections of a DSN change), kept referenced until done, awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def add(self, aw: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self, seconds: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=seconds)

    async def bounded(self, aw: Awaitable[T], seconds: float) -> T:
        """``aw``'s result, or TimeoutError after ``seconds``. Not asyncio.timeout: cancelling
        a query on a stalled link can itself stall, so the abandoned statement is cancelled
        here in the background."""
        task = asyncio.ensure_future(aw)
        if not await first_of([task], seconds):
            task.cancel()
            self.add(task)
            raise TimeoutError
        return task.result()


@dataclass
class Backoff:
    """Waits that double from ``first`` up to a cap, for retrying what failed."""

    first: float = 0.1
    delay: float = field(init=False)
    #: waits taken since the last reset
    waits: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.delay = self.first

    def reset(self) -> None:
        self.delay, self.waits = self.first, 0

    async def wait(
        self, cap: float, stop: asyncio.Event | None = None, at_most: float | None = None
    ) -> None:
        """Sleep the current delay (or ``at_most``, if shorter), or until ``stop`` is set;
        then double the delay up to ``cap``."""
        delay = self.delay if at_most is None else min(self.delay, at_most)
        if stop is None:
            await asyncio.sleep(delay)
        else:
            await wait_event(stop, delay)
        self.delay = backoff.delay(self.delay, 1, cap)
        self.waits += 1
