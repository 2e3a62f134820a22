"""Scenario 2, run-now: the lag from a commit making a job due now to its step's start."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.bench.agents import Agent, wait_until
from tests.bench.config import Variant
from tests.bench.harness import Harness
from tests.bench.jobs import make_jobs, released, statuses, warm_up
from tests.bench.stats import lag_stats
from tests.pg import Conn, fetch_rows, fetch_value


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """After one warm-up run, on an idle agent, one run-now at a time (see --help)."""
    with h.scenario(variant, "runnow") as (db, conn):
        (job,) = make_jobs(conn, 1, "runnow")
        with h.running(variant, db.name, conn) as agent:
            first_run = warm_up(conn, agent, variant.poll)
            commits = _samples(h, variant, conn, agent, job)
        ticks = fetch_rows(
            conn,
            "SELECT due, ran_at FROM public.bench_tick WHERE jobid = %s ORDER BY id",
            (job,),
        )
        lags = [
            (t["ran_at"] - commits[t["due"]]).total_seconds() * 1000
            for t in ticks
            if t["due"] in commits
        ]
        return {
            "samples": len(commits),
            "first_run_lag_ms": first_run,
            "ran": len(lags),
            "statuses": statuses(conn, [job]),
            **lag_stats(lags),
        }


def _samples(
    h: Harness, variant: Variant, conn: Conn, agent: Agent, job: int
) -> dict[dt.datetime, dt.datetime]:
    """Run ``job`` now, wait until that run is released, pause, repeat; returns each run's
    due time (now() of the UPDATE, which the step records) -> its commit time."""
    commits: dict[dt.datetime, dt.datetime] = {}
    for i in range(h.sizes.runnow_samples):
        # a random phase, not a wait for state: pgAgent's poll phase is sampled evenly
        pause = h.rng.uniform(0.0, variant.poll) if variant.poll else h.rng.uniform(0.05, 0.5)
        time.sleep(pause)
        r = fetch_rows(
            conn,
            "UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s "
            "RETURNING jobnextrun, clock_timestamp() AS committed",
            (job,),
        )[0]
        commits[r["jobnextrun"]] = r["committed"]

        def sample_done(n: int = i + 1) -> bool:
            finished = fetch_value(
                conn,
                "SELECT count(*) FROM pgagent.pga_joblog WHERE jlgjobid = %s AND jlgstatus <> 'r'",
                (job,),
            )
            return bool(finished >= n and released(conn, [job]) == 1)

        wait_until(sample_done, (variant.poll or 0) + 15, f"run-now sample {i + 1}", agent)
    return commits
