"""Bounded memo tables shared by all schedules.

A full table is simply cleared, which keeps the hot path to a single dict lookup and the memory
use flat; :func:`clear_all` empties every table (benchmarks and tests measure cold caches).
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

K = TypeVar("K")
V = TypeVar("V")

SPEC_TABLE_SIZE: Final = 4096
RESULT_TABLE_SIZE: Final = 16384

_TABLES: list[dict[Any, Any]] = []


def table() -> dict[Any, Any]:
    """A new memo table, registered so that :func:`clear_all` empties it."""
    new: dict[Any, Any] = {}
    _TABLES.append(new)
    return new


def remember(memo: dict[K, V], key: K, value: V, size: int) -> V:
    """Store ``value`` under ``key``, clearing ``memo`` first when it holds ``size`` entries."""
    if len(memo) >= size:
        memo.clear()
    memo[key] = value
    return value


def clear_all() -> None:
    for memo in _TABLES:
        memo.clear()
