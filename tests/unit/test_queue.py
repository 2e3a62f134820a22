"""The due-queue, driven by a fake clock (plain floats)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from notifyagent.core.queue import DueQueue


def test_earliest_first_and_only_due() -> None:
    q = DueQueue()
    q.set(1, 30.0)
    q.set(2, 10.0)
    q.set(3, 20.0)
    assert q.next_deadline() == 10.0
    assert q.pop_due(now=25.0) == [2, 3]
    assert q.next_deadline() == 30.0
    assert len(q) == 1
    assert q.pop_due(now=29.9) == []


def test_reschedule_and_discard_invalidate_old_entries() -> None:
    q = DueQueue()
    q.set(1, 10.0)
    q.set(1, 50.0)
    q.set(2, 20.0)
    q.discard(2)
    assert q.next_deadline() == 50.0
    assert q.pop_due(now=40.0) == []
    assert q.pop_due(now=50.0) == [1]
    assert q.next_deadline() is None


def test_limit_keeps_the_rest_queued() -> None:
    q = DueQueue()
    for j in range(10):
        q.set(j, float(j))
    assert q.pop_due(now=100.0, limit=3) == [0, 1, 2]
    assert len(q) == 7
    assert q.pop_due(now=100.0) == [3, 4, 5, 6, 7, 8, 9]


def test_equal_deadlines_in_job_id_order() -> None:
    q = DueQueue()
    for j in (5, 3, 9):
        q.set(j, 1.0)
    assert q.pop_due(now=1.0) == [3, 5, 9]


def test_replace_all() -> None:
    q = DueQueue()
    q.set(1, 1.0)
    q.replace_all([(2, 5.0), (3, 4.0)])
    assert 1 not in q
    assert q.pop_due(now=10.0) == [3, 2]


@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 100)), max_size=200), st.floats(0, 100))
def test_matches_a_dict_model(ops: list[tuple[int, float]], now: float) -> None:
    q = DueQueue()
    model: dict[int, float] = {}
    for job, deadline in ops:
        if deadline > 90:
            q.discard(job)
            model.pop(job, None)
        else:
            q.set(job, deadline)
            model[job] = deadline
    expected = sorted((d, j) for j, d in model.items() if d <= now)
    assert q.pop_due(now) == [j for _, j in expected]
    assert len(q) == len(model) - len(expected)
