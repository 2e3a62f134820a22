"""Statements that many runs send at about the same time, sent as one (group commit).

A herd of runs ending together would otherwise send one release each: a statement, a commit
and a notification per run, each commit waiting for the notification queue's lock. Here the
first request of a loop turn starts a flush; what arrives while a statement is on its way goes
in the next one. An idle agent pays nothing: a lone request is sent at once, alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Most requests in one statement (its arrays stay small enough to plan and send quickly).
MAX_BATCH = 500


class Batcher(Generic[T, R]):
    """Sends the items of concurrent :meth:`submit` calls with ``send`` (one statement for a
    list of items, returning one result per item, in order). When a batch of several fails,
    each item is sent again alone, so only the item at fault gets the error."""

    def __init__(self, send: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> None:
        self._send = send
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            batch = [(item, done) for item, done in batch if not done.cancelled()]
            if len(batch) > 1:
                try:
                    results = await self._send([item for item, _ in batch])
                except Exception:  # each item again, alone, gets its own answer
                    await asyncio.gather(*(self._one(item, done) for item, done in batch))
                    continue
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)
            elif batch:
                await self._one(*batch[0])

    async def _one(self, item: T, done: asyncio.Future[R]) -> None:
        try:
            (result,) = await self._send([item])
        except Exception as err:  # handed to the caller
            if not done.done():
                done.set_exception(err)
            return
        if not done.done():
            done.set_result(result)
