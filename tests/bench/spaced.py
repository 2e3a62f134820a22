"""Scenario 1, spaced: jobs due at staggered random instants, measured one by one."""

from __future__ import annotations

from typing import Any

from tests.bench.agents import wait_until
from tests.bench.config import Variant
from tests.bench.harness import Harness
from tests.bench.jobs import make_jobs, released, runs_result, tick_lags, warm_up


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """After one warm-up run, N jobs are set due at random instants over a span (once the
    agent is up, so that start-up costs nothing here); lag of each job's first run."""
    z = h.sizes
    with h.scenario(variant, "spaced") as (db, conn):
        ids = make_jobs(conn, z.spaced_jobs, "spaced")
        with h.running(variant, db.name, conn) as agent:
            first_run = warm_up(conn, agent, variant.poll)
            offsets = sorted(h.rng.uniform(0, z.spaced_span) for _ in ids)
            h.rng.shuffle(offsets)
            conn.execute(
                "UPDATE pgagent.pga_job j "
                "SET jobnextrun = clock_timestamp() + make_interval(secs => %s + o.off) "
                "FROM unnest(%s::int[], %s::float8[]) AS o(jobid, off) WHERE j.jobid = o.jobid",
                (z.spaced_lead, ids, offsets),
            )
            grace = z.spaced_lead + z.spaced_span + (variant.poll or 0) + 15
            wait_until(
                lambda: released(conn, ids) == len(ids),
                grace,
                f"{len(ids)} spaced jobs to run",
                agent,
            )
        result = runs_result(conn, ids, tick_lags(conn, ids))
        return {**result, "first_run_lag_ms": first_run}
