"""The jobs the scenarios create, and reading back what their runs left behind.

Every job's one SQL step records (jobid, the jobnextrun it was due at) in public.bench_tick
at its start, so every lag is measured on the server's clock, from outside the agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.bench.agents import Agent, wait_until
from tests.bench.stats import first_runs, lag_stats
from tests.pg import Conn, fetch_rows, fetch_value

#: Every job's step code, for format() with its jobid: the step reads its job's due time
#: itself (jobnextrun does not change while a job runs).
TICK_STEP = (
    "INSERT INTO public.bench_tick (jobid, due) "
    "SELECT jobid, jobnextrun FROM pgagent.pga_job WHERE jobid = %s"
)


def make_jobs(conn: Conn, n: int, prefix: str) -> list[int]:
    """n enabled one-step SQL jobs without schedule; each run records (jobid, due) in
    public.bench_tick at its step's start."""
    with conn.transaction():
        ids = [
            int(r["jobid"])
            for r in fetch_rows(
                conn,
                "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
                "SELECT 1, %s || g FROM generate_series(1, %s) g RETURNING jobid",
                (prefix, n),
            )
        ]
        conn.execute(
            "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
            "SELECT j, 'tick', 's', format(%s, j), current_database() FROM unnest(%s::int[]) j",
            (TICK_STEP, ids),
        )
    return sorted(ids)


def statuses(conn: Conn, ids: Sequence[int]) -> dict[str, int]:
    """How many run logs of ``ids`` end in each status."""
    return {
        r["jlgstatus"]: int(r["n"])
        for r in fetch_rows(
            conn,
            "SELECT jlgstatus, count(*) AS n FROM pgagent.pga_joblog "
            "WHERE jlgjobid = ANY(%s) GROUP BY 1 ORDER BY 1",
            (list(ids),),
        )
    }


def released(conn: Conn, ids: Sequence[int]) -> int:
    """How many of ``ids`` have run and been handed back (no schedule: next run NULL)."""
    return int(
        fetch_value(
            conn,
            "SELECT count(*) FROM pgagent.pga_job WHERE jobid = ANY(%s) "
            "AND jobagentid IS NULL AND jobnextrun IS NULL",
            (list(ids),),
        )
    )


def tick_count(conn: Conn, job: int) -> int:
    """How many runs of ``job`` have started their step."""
    return int(fetch_value(conn, "SELECT count(*) FROM public.bench_tick WHERE jobid = %s", (job,)))


def run_now(conn: Conn, job: int) -> Any:
    """Make ``job`` due now; returns the commit time (autocommit: give or take µs)."""
    return fetch_value(
        conn,
        "UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s "
        "RETURNING clock_timestamp()",
        (job,),
    )


def warm_up(conn: Conn, agent: Agent, poll: float | None) -> float | None:
    """One run of a separate job before measuring: the first run after a start pays for
    new connections and cold per-backend caches (trigger functions compiled, plans made);
    its lag is reported apart as ``first_run_lag_ms``."""
    (job,) = make_jobs(conn, 1, "warmup")
    committed = run_now(conn, job)
    wait_until(
        lambda: released(conn, [job]) == 1 and tick_count(conn, job),
        (poll or 0) + 15,
        "the warm-up run",
        agent,
    )
    ran = fetch_value(conn, "SELECT min(ran_at) FROM public.bench_tick WHERE jobid = %s", (job,))
    return None if ran is None else (ran - committed).total_seconds() * 1000


def tick_lags(conn: Conn, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Every run of ``ids`` (default: of every job) in order, with its lag: its step's start
    minus the jobnextrun it was due at, both on the server's clock."""
    where, params = ("WHERE jobid = ANY(%s) ", (list(ids),)) if ids is not None else ("", None)
    return fetch_rows(
        conn,
        "SELECT jobid, extract(epoch FROM ran_at - due)::float8 * 1000 AS lag_ms "
        f"FROM public.bench_tick {where}ORDER BY id",
        params,
    )


def runs_result(conn: Conn, ids: Sequence[int], ticks: list[dict[str, Any]]) -> dict[str, Any]:
    """Run counts, statuses and first-run lags of ``ids`` (see :func:`stats.first_runs`)."""
    counts, lags = first_runs(ids, ticks)
    return {**counts, "statuses": statuses(conn, ids), **lag_stats(lags)}
