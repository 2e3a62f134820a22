"""The group commit under the releases (notifyagent.db.batch), with a recording ``send``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from notifyagent.db.batch import MAX_BATCH, Batcher


class Sender:
    def __init__(self, fail: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail or set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail & set(items):
            raise ValueError(f"bad item in {list(items)}")
        return [i * 10 for i in items]


def test_requests_of_one_loop_turn_go_in_one_statement() -> None:
    async def main() -> None:
        s = Sender()
        b = Batcher(s.send)
        assert await asyncio.gather(*(b.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
        assert s.batches == [[0, 1, 2, 3, 4]]
        assert await b.submit(7) == 70  # a lone request: sent at once, alone
        assert s.batches[-1] == [7]

    asyncio.run(main())


def test_what_arrives_while_a_statement_is_out_goes_in_the_next() -> None:
    async def main() -> None:
        s = Sender()
        b = Batcher(s.send)
        s.gate.clear()
        first = asyncio.gather(b.submit(1), b.submit(2))
        await asyncio.sleep(0)  # the submits queue their items
        await asyncio.sleep(0)  # the flush sends them and waits at the gate
        assert s.batches == [[1, 2]]
        later = asyncio.gather(b.submit(3), b.submit(4), b.submit(5))
        await asyncio.sleep(0)
        s.gate.set()
        assert list(await first) == [10, 20]
        assert list(await later) == [30, 40, 50]
        assert s.batches == [[1, 2], [3, 4, 5]]

    asyncio.run(main())


def test_a_failing_batch_is_sent_again_item_by_item() -> None:
    async def main() -> None:
        s = Sender(fail={2})
        b = Batcher(s.send)
        results = await asyncio.gather(*(b.submit(i) for i in (1, 2, 3)), return_exceptions=True)
        assert results[0] == 10
        assert results[2] == 30
        assert isinstance(results[1], ValueError)
        assert s.batches[0] == [1, 2, 3]
        assert sorted(map(tuple, s.batches[1:])) == [(1,), (2,), (3,)]

    asyncio.run(main())


def test_batches_are_capped() -> None:
    async def main() -> None:
        s = Sender()
        b = Batcher(s.send)
        n = MAX_BATCH + 3
        assert len(await asyncio.gather(*(b.submit(i) for i in range(n)))) == n
        assert [len(x) for x in s.batches] == [MAX_BATCH, 3]

    asyncio.run(main())


def test_a_request_whose_caller_gave_up_is_not_sent() -> None:
    async def main() -> None:
        s = Sender()
        b = Batcher(s.send)
        gone = asyncio.ensure_future(b.submit(1))
        kept = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == 20
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert s.batches == [[2]]

    asyncio.run(main())
