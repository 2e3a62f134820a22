"""Scenario curve (notifyagent only): start-up and memory at 10k, 100k (and with --scale
1M) scheduled jobs in one growing database, so that the cost per job shows whether it grows
linearly."""

from __future__ import annotations

import time
from typing import Any

from tests.bench.agents import Agent, wait_until
from tests.bench.config import SCALE_CURVE, Variant, say
from tests.bench.harness import Harness
from tests.bench.jobs import make_jobs, run_now, tick_count
from tests.bench.procstat import cpu_seconds
from tests.bench.scale import loaded, read_proc_status, scale_data
from tests.pg import Conn, fetch_value

KB_PER_MB = 1024.0


def sizes(h: Harness) -> tuple[int, ...]:
    return SCALE_CURVE if h.args.scale else h.sizes.curve_jobs


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """For each size: add jobs up to it, start the agent, read its `queue loaded` line,
    VmRSS / VmHWM and the CPU it took, run a probe job now (it runs with all of them
    loaded), stop it."""
    points: list[dict[str, Any]] = []
    with h.scenario(variant, "curve") as (db, conn):
        (probe,) = make_jobs(conn, 1, "probe")  # no schedule: runs only when run now
        have = 0
        for n in sizes(h):
            t = time.monotonic()
            scale_data(conn, n - have)
            have = n
            say(f"  {n:,} jobs (created in {time.monotonic() - t:.1f}s); starting the agent")
            with h.running(variant, db.name, conn, ready_timeout=60 + n / 5000) as agent:
                start = loaded(agent)
                proc = read_proc_status(agent.pid)
                cpu = cpu_seconds(agent.pid)
                start["probe_run_now_ms"] = _probe(conn, agent, probe, len(points) + 1)
            points.append(_point(n, start, proc, cpu, points[-1] if points else None))
    return {"ran": 0, "points": points, "jobs": max(p["jobs"] for p in points)}


def _probe(conn: Conn, agent: Agent, probe: int, runs: int) -> float:
    """Run now -> step start of the probe job, with every job loaded."""
    committed = run_now(conn, probe)
    wait_until(lambda: tick_count(conn, probe) >= runs, 60, "the probe job to run", agent)
    ran = fetch_value(conn, "SELECT max(ran_at) FROM public.bench_tick WHERE jobid = %s", (probe,))
    return float((ran - committed).total_seconds() * 1000)


def _point(
    n: int,
    start: dict[str, Any],
    proc: dict[str, int],
    cpu: float,
    prev: dict[str, Any] | None,
) -> dict[str, Any]:
    """One point: totals, cost per job, and the marginal cost per job since ``prev``."""
    rss_kb = proc.get("VmRSS", 0)
    point: dict[str, Any] = {
        "jobs": n,
        **start,
        "rss_mb": rss_kb / KB_PER_MB,
        "hwm_mb": proc.get("VmHWM", 0) / KB_PER_MB,
        "startup_cpu_s": cpu,
        "load_us_per_job": start["load_ms_agent"] * 1000 / n,
        "rss_kb_per_job": rss_kb / n,
    }
    if prev is not None:
        dn = n - prev["jobs"]
        point["marginal_load_us_per_job"] = (
            (start["load_ms_agent"] - prev["load_ms_agent"]) * 1000 / dn
        )
        point["marginal_rss_kb_per_job"] = (rss_kb - prev["rss_mb"] * KB_PER_MB) / dn
    return point
