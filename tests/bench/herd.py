"""Scenario 3, herd: many jobs due at the same instant; also the herd of 10,000 (more runs at
once than the server has connections) and the scale-out herd with several agents."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from tests.bench.agents import Agent, wait_until
from tests.bench.config import AGENT_APP, STATION, BenchError, Variant
from tests.bench.harness import Harness
from tests.bench.jobs import make_jobs, released, runs_result, tick_lags
from tests.bench.procstat import Usage, server_cpu_seconds
from tests.pg import Conn, fetch_rows, fetch_value


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """N jobs due at once a few seconds ahead: how many ran (and how), their lags, and when
    the last one finished."""
    return herd(h, variant, h.sizes.herd_jobs, "herd")


def run_10k(h: Harness, variant: Variant) -> dict[str, Any]:
    """The herd of 10,000 with --max-concurrency 500 against max_connections = 100: no run
    may fail for want of a connection."""
    z = h.sizes
    args = ("--max-concurrency", str(z.herd10k_concurrency))
    return {**herd(h, variant, z.herd10k_jobs, "herd10k", args), "agent_args": list(args)}


def run_scale_out(h: Harness, variant: Variant) -> dict[str, Any]:
    """The same herd with 1, 2, 3 agents (stations) on one database: total time and each
    agent's share; the server's CPU shows when it, not the agents, is the limit."""
    z = h.sizes
    by_agents = {
        str(k): herd(h, variant, z.scaleout_jobs, f"scaleout{k}", agents=k)
        for k in z.scaleout_agents
    }
    return {"jobs": z.scaleout_jobs, "ran": min(r["ran"] for r in by_agents.values()),
            "by_agents": by_agents}  # fmt: skip


def herd(
    h: Harness,
    variant: Variant,
    n: int,
    name: str,
    extra_args: tuple[str, ...] = (),
    agents: int = 1,
) -> dict[str, Any]:
    """``n`` jobs due at one instant, ``agents`` agents (each its own station) running them."""
    z = h.sizes
    datadir = h.site(variant).cluster.datadir
    with h.scenario(variant, name) as (db, conn), contextlib.ExitStack() as stack:
        ids = make_jobs(conn, n, name)
        running: list[Agent] = []
        for i in range(agents):
            # several agents: each its own station, and its own application_name, which the
            # steps record in bench_tick.app (the run log does not say which agent ran a job)
            own = ("--station", f"{STATION}{i + 1}") if agents > 1 else ()
            app = f"{AGENT_APP}_{i + 1}" if agents > 1 else AGENT_APP
            args = (*extra_args, *own)
            agent = h.running(variant, db.name, conn, "INFO", args, app=app)
            running.append(stack.enter_context(agent))
        usage = Usage([a.pid for a in running]).start()
        server_cpu = -server_cpu_seconds(datadir)
        due: dt.datetime = fetch_value(
            conn,
            "UPDATE pgagent.pga_job SET jobnextrun = "
            "date_trunc('milliseconds', statement_timestamp()) + make_interval(secs => %s)"
            " WHERE jobid = ANY(%s) RETURNING jobnextrun",
            (z.herd_lead, ids),
        )
        incomplete = _wait_all(variant, conn, running, ids, z.herd_lead + z.herd_timeout)
        usage.stop()
        server_cpu += server_cpu_seconds(datadir)
        stack.close()  # the agents stop here
        result = runs_result(conn, ids, tick_lags(conn))
        result.update(_outcome(conn, ids, due))
        result.update(
            phantom_i=result["statuses"].get("i", 0),
            incomplete=incomplete,
            agents=agents,
            agent_cpu_s=usage.cpu_s,
            agent_cpu_ms_per_run=usage.cpu_s * 1000 / max(result["ran"], 1),
            server_cpu_s=server_cpu,
        )
        return result


def _outcome(conn: Conn, ids: list[int], due: dt.datetime) -> dict[str, Any]:
    """Successes, failures, phantom 'i' rows, when the last run finished and which agent
    ran how many."""
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
    shares = {
        str(r["app"]): int(r["n"])
        for r in fetch_rows(
            conn,
            "SELECT app, count(*) AS n FROM public.bench_tick WHERE jobid = ANY(%s) "
            "GROUP BY 1 ORDER BY 1",
            (ids,),
        )
    }
    return {
        "succeeded": ok,
        "failed": len(ids) - ok,
        "last_finished_s": last,
        "shares": shares,
    }


def _wait_all(
    variant: Variant, conn: Conn, agents: list[Agent], ids: list[int], timeout: float
) -> str | None:
    """Wait until every job has run and been released; for pgAgent, which can lose runs for
    good or die, a deadline is a result (returned as the reason), not an error."""

    def all_released() -> bool:
        for a in agents[1:]:
            a.check_alive()
        return released(conn, ids) == len(ids)

    try:
        wait_until(all_released, timeout, f"{len(ids)} herd jobs to run", agents[0], interval=0.1)
    except BenchError as err:
        if not variant.is_pgagent:
            raise
        return str(err).splitlines()[0]
    return None
