"""Scenario every: a job every second, notifyagent's sub-minute policy
(notifyagent.job_policy.every) against pg_cron's '1 seconds' schedule; pgAgent's schedules
are minute-granular."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

from tests.bench import cron
from tests.bench.agents import wait_until
from tests.bench.config import Variant
from tests.bench.harness import Harness
from tests.bench.jobs import make_jobs, tick_count
from tests.bench.procstat import Usage
from tests.bench.stats import lag_stats
from tests.pg import fetch_rows, fetch_value


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """After two warm-up ticks, every tick due in a window: how many ran, their lag after
    the tick (jobnextrun, read by the step), and the agent's CPU and wake-ups per tick."""
    if variant.is_cron:
        return cron.every(h, variant)
    window = h.sizes.every_window
    with h.scenario(variant, "every") as (db, conn):
        (job,) = make_jobs(conn, 1, "every")
        with h.running(variant, db.name, conn) as agent:
            conn.execute(
                "INSERT INTO notifyagent.job_policy (jobid, every) VALUES (%s, '1 second')",
                (job,),
            )
            wait_until(lambda: tick_count(conn, job) >= 2, 15, "the first two ticks", agent)
            t0: dt.datetime = fetch_value(conn, "SELECT clock_timestamp()")
            usage = Usage([agent.pid]).start()
            time.sleep(window)
            usage.stop()
            t1 = t0 + dt.timedelta(seconds=window)
            wait_until(
                lambda: (
                    fetch_value(
                        conn, "SELECT max(due) FROM public.bench_tick WHERE jobid = %s", (job,)
                    )
                    >= t1
                ),
                10,
                "the tick after the window",
                agent,
            )
        rows = fetch_rows(
            conn,
            "SELECT extract(epoch FROM ran_at - due)::float8 * 1000 AS lag "
            "FROM public.bench_tick WHERE jobid = %s AND due >= %s AND due < %s ORDER BY id",
            (job, t0, t1),
        )
    expected = math.ceil(t1.timestamp()) - math.ceil(t0.timestamp())
    lags = [float(r["lag"]) for r in rows]
    return {
        "expected": expected,
        "ran": len(lags),
        "missed": max(expected - len(lags), 0),
        "cpu_ms_per_tick": usage.cpu_s * 1000 / max(len(lags), 1),
        "wakeups_per_tick": usage.wakeups / max(len(lags), 1),
        **lag_stats(lags),
    }
