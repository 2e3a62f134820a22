"""collector.paused: no automatic collection inside, the collector back on after (also after an
error), and a collector someone else turned off stays off."""

from __future__ import annotations

import gc
import weakref

import pytest

from notifyagent.agent import collector


def _load(seen: list[bool]) -> None:
    with collector.paused():
        seen.append(gc.isenabled())
        with collector.paused():
            seen.append(gc.isenabled())
        seen.append(gc.isenabled())  # the inner one leaves the outer pause alone
        raise RuntimeError


def test_paused_inside_and_restored_after_an_error() -> None:
    assert gc.isenabled()
    seen: list[bool] = []
    with pytest.raises(RuntimeError):
        _load(seen)
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


class Entry:
    """A table entry (weak-referenceable, tracked by the collector)."""

    other: object = None


def test_settle_freezes_what_is_loaded_and_refcounting_still_frees_it() -> None:
    table = [Entry() for _ in range(1000)]
    first = weakref.ref(table[0])
    try:
        collector.settle()
        assert gc.get_freeze_count() >= len(table)
        del table
        assert first() is None  # freed at once, without a collection
    finally:
        gc.unfreeze()


def test_a_cycle_frozen_by_one_settle_is_freed_by_the_next() -> None:
    """A run in flight at a resync, ended later with an exception (the task, its traceback
    and frame refer to each other), is a cycle among frozen objects: the next resync frees it
    (an agent that reconnects often would otherwise keep every such run)."""
    a, b = Entry(), Entry()
    a.other, b.other = b, a
    cycle = weakref.ref(a)
    try:
        collector.settle()
        del a, b
        gc.collect()
        assert cycle() is not None  # frozen: an ordinary pass does not see it
        collector.settle()
        assert cycle() is None
    finally:
        gc.unfreeze()
