"""Scenario 3, herd: many jobs due at the same instant."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.bench.agents import Agent, wait_until
from tests.bench.config import BenchError, Variant
from tests.bench.harness import Harness
from tests.bench.jobs import make_jobs, released, runs_result, tick_lags
from tests.pg import Conn, fetch_value


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """N jobs due at once a few seconds ahead: how many ran (and how), their lags, and when
    the last one finished."""
    z = h.sizes
    with h.scenario(variant, "herd") as (db, conn):
        ids = make_jobs(conn, z.herd_jobs, "herd")
        with h.running(variant, db.name, conn) as agent:
            due: dt.datetime = fetch_value(
                conn,
                "UPDATE pgagent.pga_job SET jobnextrun = "
                "date_trunc('milliseconds', statement_timestamp()) + make_interval(secs => %s)"
                " WHERE jobid = ANY(%s) RETURNING jobnextrun",
                (z.herd_lead, ids),
            )
            incomplete = _wait_all(variant, conn, agent, ids, z.herd_lead + z.herd_timeout)
        result = runs_result(conn, ids, tick_lags(conn))
        last = fetch_value(
            conn,
            "SELECT extract(epoch FROM max(jlgstart + jlgduration) - %s)::float8 "
            "FROM pgagent.pga_joblog WHERE jlgjobid = ANY(%s) AND jlgduration IS NOT NULL",
            (due, ids),
        )
        ok = int(
            fetch_value(
                conn,
                "SELECT count(DISTINCT jlgjobid) FROM pgagent.pga_joblog "
                "WHERE jlgjobid = ANY(%s) AND jlgstatus = 's'",
                (ids,),
            )
        )
        result.update(
            succeeded=ok,
            failed=len(ids) - ok,
            phantom_i=result["statuses"].get("i", 0),
            last_finished_s=last,
            incomplete=incomplete,
        )
        return result


def _wait_all(
    variant: Variant, conn: Conn, agent: Agent, ids: list[int], timeout: float
) -> str | None:
    """Wait until every job has run and been released; for pgAgent, which can lose runs for
    good or die, a deadline is a result (returned as the reason), not an error."""
    try:
        wait_until(
            lambda: released(conn, ids) == len(ids),
            timeout,
            f"{len(ids)} herd jobs to run",
            agent,
            interval=0.1,
        )
    except BenchError as err:
        if not variant.is_pgagent:
            raise
        return str(err).splitlines()[0]
    return None
