"""pg_cron as a third agent, wherever a scenario fits its model: a herd due at one minute
boundary, a job every second, and an idle cluster. pg_cron runs inside the server (its
launcher is a background worker of the ``cron`` site's cluster); its jobs live in one database
(``cron.database_name``) and run, over libpq on the cluster's socket, in the scenario's."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.bench.agents import wait_until
from tests.bench.config import BenchError, Variant, say
from tests.bench.procstat import Usage
from tests.bench.stats import lag_stats
from tests.pg import Conn, Server, connect, fetch_rows, fetch_value

CRON_DB = "bench_cron"
#: Each pg_cron job's command, for format() with the job's number: the step start, stamped
#: by the server, as in every other scenario (the due time is the boundary, known here).
TICK_CMD = "INSERT INTO public.bench_tick (jobid) VALUES (%s)"


def available(bindir: Path) -> bool:
    """Whether the server has pg_cron (Debian: postgresql-15-cron, scripts/setup installs it)."""
    return (bindir.parent / "lib" / "pg_cron.so").exists()


def server_settings(socket_dir: str) -> dict[str, str]:
    """pg_cron loaded, its jobs in CRON_DB, connecting over the cluster's own socket."""
    return {
        "shared_preload_libraries": "'pg_cron'",
        "cron.database_name": f"'{CRON_DB}'",
        "cron.host": f"'{socket_dir}'",
    }


def install(server: Server, dsn: str) -> None:
    server.admin(f'CREATE DATABASE "{CRON_DB}"')
    with connect(dsn) as conn:
        conn.execute("CREATE EXTENSION pg_cron")


def launcher_pid(admin: Conn) -> int:
    """The launcher's pid (it shows in pg_stat_activity once it has connected to CRON_DB)."""
    pid = wait_until(
        lambda: fetch_value(
            admin, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'"
        ),
        15,
        "pg_cron's launcher in pg_stat_activity (shared_preload_libraries = 'pg_cron'?)",
    )
    return int(pid)


def _schedule(cron: Conn, n: int, dbname: str, schedule: str, command: str) -> list[int]:
    """n pg_cron jobs in ``dbname``; job k runs ``command`` formatted with k."""
    return [
        int(r["id"])
        for r in fetch_rows(
            cron,
            "SELECT cron.schedule_in_database('bench' || g, %s, format(%s, g), %s) AS id "
            "FROM generate_series(1, %s) g",
            (schedule, command, dbname, n),
        )
    ]


def _unschedule_all(cron: Conn) -> None:
    cron.execute("SELECT cron.unschedule(jobid) FROM cron.job")


def _next_boundary(cron: Conn, margin: float = 4.0) -> dt.datetime:
    """The next minute boundary at least ``margin`` s away (time for pg_cron to see the jobs).
    When the current minute is nearly over or just began, wait until 2 s into a minute: pg_cron
    runs jobs added before it processed a minute for that minute (seen: a herd added 0.1 s after the
    boundary ran 59.5 s before the boundary measured from)."""
    left = float(fetch_value(cron, "SELECT 60 - extract(epoch FROM now())::numeric % 60"))
    if left < margin:
        time.sleep(left + 2.0)
    elif left > 58.0:  # the minute just began: pg_cron may not have processed it yet
        time.sleep(left - 58.0)
    boundary: dt.datetime = fetch_value(
        cron, "SELECT date_trunc('minute', clock_timestamp()) + interval '1 minute'"
    )
    return boundary


def herd(h: Any, variant: Variant) -> dict[str, Any]:
    """N one-statement jobs due at the same minute boundary: lag from the boundary, failures
    (cron.job_run_details), and when the last one finished."""
    z = h.sizes
    site = h.site(variant)
    with h.scenario(variant, "herd") as (db, conn), connect(site.dsn(CRON_DB)) as cron:
        boundary = _next_boundary(cron)
        ids = _schedule(cron, z.herd_jobs, db.name, "* * * * *", TICK_CMD)
        wait_s = (boundary - fetch_value(cron, "SELECT clock_timestamp()")).total_seconds()
        say(f"  {len(ids)} pg_cron jobs due at the minute boundary, {wait_s:.0f} s ahead")
        usage = Usage([launcher_pid(site.admin)]).start()
        try:
            incomplete = _wait_finished(cron, ids, wait_s + z.herd_timeout)
        finally:
            _unschedule_all(cron)
        usage.stop()
        return _herd_result(conn, cron, ids, boundary, usage, incomplete)


def _wait_finished(cron: Conn, ids: list[int], timeout: float) -> str | None:
    def finished() -> bool:
        done = fetch_value(
            cron,
            "SELECT count(DISTINCT jobid) FROM cron.job_run_details WHERE jobid = ANY(%s) "
            "AND status IN ('succeeded', 'failed')",
            (ids,),
        )
        return int(done) == len(ids)

    try:
        wait_until(finished, timeout, f"{len(ids)} pg_cron jobs to finish", interval=0.2)
    except BenchError as err:
        return str(err)
    return None


def _herd_result(
    conn: Conn, cron: Conn, ids: list[int], boundary: dt.datetime, usage: Usage, inc: str | None
) -> dict[str, Any]:
    ticks = fetch_rows(conn, "SELECT jobid, ran_at FROM public.bench_tick ORDER BY id")
    first: dict[int, dt.datetime] = {}
    for t in ticks:
        first.setdefault(int(t["jobid"]), t["ran_at"])
    lags = [(ran - boundary).total_seconds() * 1000 for ran in first.values()]
    statuses = {
        r["status"]: int(r["n"])
        for r in fetch_rows(
            cron,
            "SELECT status, count(*) AS n FROM cron.job_run_details WHERE jobid = ANY(%s) "
            "GROUP BY 1",
            (ids,),
        )
    }
    last = fetch_value(
        cron,
        "SELECT extract(epoch FROM max(end_time) - %s)::float8 FROM cron.job_run_details "
        "WHERE jobid = ANY(%s)",
        (boundary, ids),
    )
    ok = statuses.get("succeeded", 0)
    return {
        "jobs": len(ids),
        "ran": len(first),
        "extra_runs": len(ticks) - len(first),
        "statuses": statuses,
        "succeeded": ok,
        "failed": len(ids) - ok,
        "last_finished_s": last,
        "incomplete": inc,
        "agent_cpu_ms_per_run": usage.cpu_s * 1000 / max(len(first), 1),
        "agent_cpu_note": "pg_cron launcher only (its jobs' connections are server backends)",
        **lag_stats(lags),
    }


def every(h: Any, variant: Variant) -> dict[str, Any]:
    """A job every second ('1 seconds', pg_cron >= 1.5): ticks in the window and their lag
    after the whole second; older pg_cron rejects the schedule, which is the result."""
    site = h.site(variant)
    with h.scenario(variant, "every") as (db, conn), connect(site.dsn(CRON_DB)) as cron:
        version = fetch_value(cron, "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")
        try:
            _schedule(cron, 1, db.name, "1 seconds", TICK_CMD)
        except psycopg.Error as err:
            msg = str(err).splitlines()[0]
            return {"unsupported": f"pg_cron {version} rejects '1 seconds': {msg}"}
        try:
            t0 = fetch_value(conn, "SELECT clock_timestamp() + interval '2 seconds'")
            time.sleep(2 + h.sizes.every_window)
        finally:
            _unschedule_all(cron)
        rows = fetch_rows(
            conn,
            "SELECT extract(epoch FROM ran_at - date_trunc('second', ran_at))::float8 * 1000 "
            "AS lag FROM public.bench_tick WHERE ran_at >= %s AND ran_at < %s",
            (t0, t0 + dt.timedelta(seconds=h.sizes.every_window)),
        )
    expected = int(h.sizes.every_window)
    lags = [float(r["lag"]) for r in rows]
    return {"expected": expected, "ran": len(lags), "missed": max(expected - len(lags), 0),
            **lag_stats(lags)}  # fmt: skip


def idle(h: Any, variant: Variant) -> dict[str, Any]:
    """Jobs scheduled months ahead; over the window: the launcher's wake-ups and CPU, and the
    transactions of its database (pg_cron reads its table over SPI, which log_statement does
    not show: pg_stat_database counts them)."""
    z = h.sizes
    site = h.site(variant)
    month = (dt.datetime.now(dt.UTC).month + 5) % 12 + 1  # half a year ahead
    with connect(site.dsn(CRON_DB)) as cron:
        _schedule(cron, z.idle_jobs, CRON_DB, f"0 0 1 {month} *", "SELECT %s")
    try:
        time.sleep(z.idle_settle)
        pid = launcher_pid(site.admin)
        x0 = _xacts(site.admin)
        usage = Usage([pid]).start()
        t0 = time.monotonic()
        time.sleep(z.idle_window)
        seconds = time.monotonic() - t0
        usage.stop()
        xacts = _xacts(site.admin) - x0
    finally:
        with connect(site.dsn(CRON_DB)) as cron:
            _unschedule_all(cron)
    per_min = 60.0 / seconds
    return {
        "window_s": round(seconds, 3),
        "jobs": z.idle_jobs,
        "ran": 0,
        "transactions": xacts,
        "tx_per_min": xacts * per_min,
        "liveness_tx": 0,
        "tx_per_min_beyond_liveness": xacts * per_min,
        "pg_stat_xacts_per_min": xacts * per_min,
        "wakeups_per_min": usage.wakeups * per_min,
        "cpu_ms_per_min": usage.cpu_s * 1000 * per_min,
    }


def _xacts(admin: Conn) -> int:
    return int(
        fetch_value(
            admin,
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (CRON_DB,),
        )
    )
