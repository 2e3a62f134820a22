"""The due-queue: which job runs next, and when (pure: no I/O, no clock of its own).

A heap of ``(deadline, job id)`` with lazy invalidation: re-scheduling or removing a job only
updates a dict; stale heap entries are dropped when they reach the top. Deadlines are in the
caller's monotonic clock (``loop.time()``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DueQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._deadline: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._deadline)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._deadline

    def deadline(self, job_id: int) -> float | None:
        return self._deadline.get(job_id)

    def set(self, job_id: int, deadline: float) -> None:
        """Schedule ``job_id`` at ``deadline`` (replacing any earlier entry)."""
        if self._deadline.get(job_id) == deadline:
            return
        self._deadline[job_id] = deadline
        heapq.heappush(self._heap, (deadline, job_id))
        if len(self._heap) > 2 * len(self._deadline) + 64:
            self._compact()

    def discard(self, job_id: int) -> None:
        self._deadline.pop(job_id, None)

    def replace_all(self, entries: Iterable[tuple[int, float]]) -> None:
        """Forget everything and load ``entries`` (after a resync)."""
        self._deadline = dict(entries)
        self._compact()

    def _compact(self) -> None:
        self._heap = [(d, j) for j, d in self._deadline.items()]
        heapq.heapify(self._heap)

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._deadline.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def next_deadline(self) -> float | None:
        """The earliest deadline, or None when the queue is empty."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[int]:
        """Remove and return the job ids whose deadline is ``<= now``, earliest first (at most
        ``limit``). The caller puts back with :meth:`set` whatever it could not start."""
        found: list[int] = []
        heap = self._heap
        while heap and (limit is None or len(found) < limit):
            deadline, job_id = heap[0]
            if self._deadline.get(job_id) != deadline:
                heapq.heappop(heap)
                continue
            if deadline > now:
                break
            heapq.heappop(heap)
            del self._deadline[job_id]
            found.append(job_id)
        return found
