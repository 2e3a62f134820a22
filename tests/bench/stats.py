"""Lag statistics: the numbers every timing scenario reports the same way."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (like percentile_cont)."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def lag_stats(lags_ms: Sequence[float]) -> dict[str, Any]:
    """min / p50 / p99 / max / mean, then every lag (rounded to µs) for the JSON."""
    return {
        "lag_ms_min": min(lags_ms) if lags_ms else None,
        "lag_ms_p50": percentile(lags_ms, 0.50),
        "lag_ms_p99": percentile(lags_ms, 0.99),
        "lag_ms_max": max(lags_ms) if lags_ms else None,
        "lag_ms_mean": sum(lags_ms) / len(lags_ms) if lags_ms else None,
        "lags_ms": [round(x, 3) for x in lags_ms],
    }


def first_runs(
    ids: Sequence[int], ticks: Sequence[dict[str, Any]]
) -> tuple[dict[str, int], list[float]]:
    """Lags of each job's first run; every further run counts as extra. A run whose step
    saw no jobnextrun started after its job had been released: a duplicate run (pgAgent's
    claim does not re-check jobnextrun, docs/compatibility.md §3.10).

    ``ticks`` are public.bench_tick rows (jobid, lag_ms) in insertion order; returns the
    run counts and the first-run lags in the order of ``ids``.
    """
    first: dict[int, float] = {}
    runs = Counter(int(t["jobid"]) for t in ticks)
    for t in ticks:
        if t["lag_ms"] is not None:
            first.setdefault(int(t["jobid"]), float(t["lag_ms"]))
    counts = {
        "jobs": len(ids),
        "ran": len(first),
        "extra_runs": sum(runs.values()) - len(first),
        "runs_after_release": sum(1 for t in ticks if t["lag_ms"] is None),
    }
    return counts, [first[j] for j in ids if j in first]
