"""Scenario 5, scale (notifyagent only): start-up, memory and a large schedule change with
100,000 scheduled jobs."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.bench.agents import Agent, wait_until
from tests.bench.config import Variant, say
from tests.bench.harness import Harness
from tests.bench.jobs import TICK_STEP, make_jobs, run_now, tick_count
from tests.bench.logs import AGENT_LOG_RE, LOADED_RE, QUEUE_RE, LogTail, agent_log_time
from tests.pg import Conn, fetch_rows, fetch_value

MS = 1000.0


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """Phase A at the default log level (as deployed), phase B at DEBUG, where every changed
    job's `queue: job N due at` line is checked against pga_job (see --help, scale)."""
    z = h.sizes
    with h.scenario(variant, "scale") as (db, conn):
        probe, changed, setup_s = _setup(h, conn, db.name)
        say(f"  created in {setup_s:.1f}s; starting the agent (INFO)")
        info = _phase_info(h, variant, db.name, conn, changed, probe)
        say("  again at --log-level DEBUG (queue lines checked against pga_job)")
        debug = _phase_debug(h, variant, db.name, conn, changed, probe)
        mismatched = _mismatched(conn, changed, debug["seen"])
        probes = fetch_rows(
            conn, "SELECT ran_at FROM public.bench_tick WHERE jobid = %s ORDER BY id", (probe,)
        )
        ran = int(
            fetch_value(conn, "SELECT count(*) FROM public.bench_tick WHERE jobid <> %s", (probe,))
        )
    return {
        "jobs": z.scale_jobs,
        "setup_s": round(setup_s, 3),
        **info["start"],
        "rss_mb": info["proc"].get("VmRSS", 0) / 1024,
        "hwm_mb": info["proc"].get("VmHWM", 0) / 1024,
        "rss_mb_after_update": info["proc_after"].get("VmRSS", 0) / 1024,
        "changed": len(changed),
        "update_stmt_ms": info["update_stmt_ms"],
        "queue_updated_ms": _ms_since(info["committed"], probes[0]["ran_at"]),
        "debug": _debug_numbers(debug, probes[1]["ran_at"]),
        "mismatched_due": mismatched,
        "ran": ran,
    }


def _ms_since(committed: dt.datetime, ran_at: dt.datetime) -> float:
    return (ran_at - committed).total_seconds() * MS


def _setup(h: Harness, conn: Conn, dbname: str) -> tuple[int, list[int], float]:
    """The jobs, the probe, which jobs the change touches, and notifyagent's triggers;
    returns (probe, changed job ids, seconds it took to create the jobs)."""
    z = h.sizes
    say(f"  creating {z.scale_jobs} jobs with a schedule and a step each")
    t = time.monotonic()
    scale_data(conn, z.scale_jobs)
    (probe,) = make_jobs(conn, 1, "probe")  # no schedule: only runs when run-now
    setup_s = time.monotonic() - t
    changed = [
        int(r["jobid"])
        for r in fetch_rows(
            conn,
            "SELECT jobid FROM pgagent.pga_job WHERE jobid <> %s ORDER BY jobid LIMIT %s",
            (probe, z.scale_changed),
        )
    ]
    subprocess.run(
        [sys.executable, "-m", "notifyagent", "install", "--dsn", h.dsn(dbname)],
        check=True,
        capture_output=True,
        env=h.launch.env,
        cwd=h.code,
    )
    return probe, changed, setup_s


def scale_data(conn: Conn, n: int) -> None:
    """n more jobs, one step and one schedule each (due 10-14 h ahead, spread over minutes);
    built with the triggers off, then one UPDATE lets pgagent's trigger compute every new
    jobnextrun exactly as it would for schedules saved in pgAdmin."""
    after = int(fetch_value(conn, "SELECT coalesce(max(jobid), 0) FROM pgagent.pga_job"))
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
            "SELECT 1, 'scale' || g FROM generate_series(1, %s) g",
            (n,),
        )
        conn.execute(
            "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
            "SELECT jobid, 'tick', 's', format(%s, jobid), current_database() "
            "FROM pgagent.pga_job WHERE jobid > %s",
            (TICK_STEP, after),
        )
        conn.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
            "SELECT jobid, 'daily', (SELECT array_agg(m = jobid %% 60 ORDER BY m) "
            "FROM generate_series(0, 59) m), (SELECT array_agg(h = (extract(hour FROM now())"
            "::int + 10 + jobid %% 5) %% 24 ORDER BY h) FROM generate_series(0, 23) h) "
            "FROM pgagent.pga_job WHERE jobid > %s",
            (after,),
        )
    conn.execute("UPDATE pgagent.pga_job SET jobnextrun = NULL WHERE jobid > %s", (after,))
    conn.execute("VACUUM ANALYZE pgagent.pga_job")
    conn.execute("VACUUM ANALYZE pgagent.pga_jobstep")
    conn.execute("VACUUM ANALYZE pgagent.pga_schedule")


def _phase_info(
    h: Harness, variant: Variant, dbname: str, conn: Conn, changed: list[int], probe: int
) -> dict[str, Any]:
    """The agent as deployed (INFO): start-up, memory, and the probe after the change."""
    with h.running(variant, dbname, conn) as agent:
        start = loaded(agent)
        proc = read_proc_status(agent.pid)
        change = _change_schedules(conn, changed, 30, probe)
        _wait_probe(conn, probe, 1, agent)
        proc_after = read_proc_status(agent.pid)
    return {"start": start, "proc": proc, "proc_after": proc_after, **change}


def _phase_debug(
    h: Harness, variant: Variant, dbname: str, conn: Conn, changed: list[int], probe: int
) -> dict[str, Any]:
    """At DEBUG: when each changed job's `queue: job N due at` line appeared (agent clock,
    epoch seconds), and the due time it said, in `seen`."""
    with h.running(variant, dbname, conn, log_level="DEBUG") as agent:
        start = loaded(agent)
        tail = LogTail.from_end(agent.logfile)
        change = _change_schedules(conn, changed, 45, probe)
        seen: dict[int, tuple[float, str]] = {}
        want = set(changed)
        wait_until(
            lambda: _queue_lines(tail, want, seen) == len(want),
            120,
            f"the queue to reflect {len(want)} changed schedules",
            agent,
        )
        _wait_probe(conn, probe, 2, agent)
    return {"start": start, "seen": seen, **change}


def _debug_numbers(phase: dict[str, Any], probe_ran: dt.datetime) -> dict[str, Any]:
    """The `debug` part of the result: the queue lines' times relative to the commit."""
    t_commit = phase["committed"].timestamp()
    seen: dict[int, tuple[float, str]] = phase["seen"]
    return {
        **phase["start"],
        "update_stmt_ms": phase["update_stmt_ms"],
        "queue_updated_ms": (max(ts for ts, _ in seen.values()) - t_commit) * MS,
        "first_queue_line_ms": (min(ts for ts, _ in seen.values()) - t_commit) * MS,
        "probe_ms": _ms_since(phase["committed"], probe_ran),
        "queue_lines": len(seen),
    }


def _queue_lines(tail: LogTail, want: set[int], seen: dict[int, tuple[float, str]]) -> int:
    """Record in ``seen`` (job -> (log time, due)) the new queue lines of ``want``'s jobs;
    returns how many of them have been seen so far."""
    for line in tail.lines():
        m = AGENT_LOG_RE.match(line)
        q = QUEUE_RE.match(m[3]) if m else None
        if m and q and int(q[1]) in want:
            seen[int(q[1])] = (agent_log_time(m[1]), q[2])
    return len(seen)


def _mismatched(conn: Conn, changed: list[int], seen: dict[int, tuple[float, str]]) -> int:
    """How many logged due times differ from pga_job.jobnextrun."""
    db_next = {
        int(r["jobid"]): r["jobnextrun"]
        for r in fetch_rows(
            conn,
            "SELECT jobid, jobnextrun FROM pgagent.pga_job WHERE jobid = ANY(%s)",
            (changed,),
        )
    }
    return sum(1 for j, (_, due) in seen.items() if dt.datetime.fromisoformat(due) != db_next[j])


def loaded(agent: Agent) -> dict[str, Any]:
    """Start-up numbers from the agent's `queue loaded` line."""
    line = next(ln for ln in agent.log_text().splitlines() if "queue loaded" in ln)
    lm = LOADED_RE.search(line)
    sm = AGENT_LOG_RE.match(line)
    assert lm is not None, line
    assert sm is not None, line
    return {
        "scheduled": int(lm[1]),
        "loaded_of": int(lm[2]),
        "load_ms_agent": int(lm[3]),
        "start_to_loaded_ms": (agent_log_time(sm[1]) - agent.started_at) * 1000,
    }


def _change_schedules(conn: Conn, ids: Sequence[int], shift: int, probe: int) -> dict[str, Any]:
    """One UPDATE of the schedules of ``ids`` (minute moved by ``shift``), then a run-now
    of the ``probe`` job last in the same transaction: its notification is delivered
    after all others, and the agent refreshes everything it was told before claiming it,
    so the probe's start bounds the time until the queue reflects the whole change."""
    with conn.transaction():
        t0 = time.perf_counter()
        conn.execute(
            "UPDATE pgagent.pga_schedule SET jscminutes = "
            "(SELECT array_agg(m = (jscjobid + %s) %% 60 ORDER BY m) "
            "FROM generate_series(0, 59) m) WHERE jscjobid = ANY(%s)",
            (shift, list(ids)),
        )
        stmt_ms = (time.perf_counter() - t0) * 1000
        committed = run_now(conn, probe)
    return {"update_stmt_ms": stmt_ms, "committed": committed}


def _wait_probe(conn: Conn, probe: int, runs: int, agent: Agent) -> None:
    wait_until(lambda: tick_count(conn, probe) >= runs, 120, "the probe job to run", agent)


def read_proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in kB from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out
