"""Scenario floor: what this machine can do at best, measured in the same run as the agents,
so that a target below it shows the measurement that proves the floor. Bare asyncio and
psycopg (async, autocommit, like the agent), no agent: a timer's lateness, a round trip to an
idle backend (read, and a write with its commit: the WAL flush on the durable server), and a
LISTEN/NOTIFY round trip (NOTIFY sent -> notification received on another connection)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from tests.bench.config import Variant
from tests.bench.harness import Harness
from tests.bench.stats import percentile

MS = 1000.0
#: Pause (seconds) before each measured round trip.
IDLE = (0.05, 0.3)


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    with h.scenario(variant, "floor") as (db, conn):
        conn.execute("CREATE TABLE public.floor_write (id int)")
        dsn = h.dsn(db.name, variant)
        samples = asyncio.run(_measure(dsn, h.sizes.floor_samples, random.Random(h.args.seed)))
    out: dict[str, Any] = {"samples": h.sizes.floor_samples}
    for name, values in {**samples, **floors(samples)}.items():
        out.update(_summary(name, values))
    return out


def floors(parts: dict[str, list[float]]) -> dict[str, list[float]]:
    """The least lag an agent can have on this machine, sample by sample from the parts
    (measured independently, so the i-th sums are samples of the sum): a timed run = the
    timer's lateness + the step's statement reaching its backend (half a read round trip; a
    claim made ahead of the due time is off the path); a run-now = the notification's round
    trip + the claim (a write round trip with its commit) + the same step."""
    step = [r / 2 for r in parts["read_ms"]]
    claim_and_step = [w + s for w, s in zip(parts["write_ms"], step, strict=True)]
    return {
        "floor_timed_ms": [t + s for t, s in zip(parts["timer_late_ms"], step, strict=True)],
        "floor_run_now_ms": [
            n + c for n, c in zip(parts["notify_ms"], claim_and_step, strict=True)
        ],
    }


def _summary(name: str, samples: list[float]) -> dict[str, Any]:
    return {
        f"{name}_p50": percentile(samples, 0.5),
        f"{name}_p99": percentile(samples, 0.99),
        f"{name}_max": max(samples),
    }


async def _measure(dsn: str, n: int, rng: random.Random) -> dict[str, list[float]]:
    out = {"timer_late_ms": await _timer(n, rng)}
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as a,
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as b,
    ):
        out["read_ms"] = await _idle_trips(n, rng, lambda: a.execute("SELECT 1"))
        write = "INSERT INTO public.floor_write VALUES (1)"
        out["write_ms"] = await _idle_trips(n, rng, lambda: a.execute(write))
        out["notify_ms"] = await _notify(a, b, n, rng)
    return out


async def _timer(n: int, rng: random.Random) -> list[float]:
    """How late asyncio.sleep(d) returns, d uniform in 1-20 ms (the agent's due-time timer)."""
    late = []
    for _ in range(n):
        d = rng.uniform(0.001, 0.02)
        t0 = time.perf_counter()
        await asyncio.sleep(d)
        late.append((time.perf_counter() - t0 - d) * MS)
    return late


async def _idle_trips(
    n: int, rng: random.Random, trip: Callable[[], Awaitable[object]]
) -> list[float]:
    """Round trips after a pause of 50-300 ms: the backend sleeps in between, as the agent's
    do between the runs of the spaced and run-now scenarios (a backend that slept longer
    answers slower: ~0.1 ms more after 50 ms, ~0.5 ms after 300 ms on this machine)."""
    times = []
    for _ in range(n):
        await asyncio.sleep(rng.uniform(*IDLE))
        t0 = time.perf_counter()
        await trip()
        times.append((time.perf_counter() - t0) * MS)
    return times


async def _notify(
    a: psycopg.AsyncConnection[Any], b: psycopg.AsyncConnection[Any], n: int, rng: random.Random
) -> list[float]:
    """NOTIFY on ``b`` (autocommit) -> the notification read on ``a``, which LISTENs."""
    await a.execute("LISTEN bench_floor")
    gen = a.notifies()
    times = []
    for _ in range(n):
        await asyncio.sleep(rng.uniform(*IDLE))
        t0 = time.perf_counter()
        await b.execute("NOTIFY bench_floor")
        await anext(gen)
        times.append((time.perf_counter() - t0) * MS)
    return times
