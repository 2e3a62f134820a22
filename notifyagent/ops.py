"""Operator commands: ``status``, ``run JOB [--wait]`` and ``history JOB`` (tables or JSON)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from notifyagent import db
from notifyagent.db.sql import query
from notifyagent.errors import ConfigError, NotifyAgentError

STATUS = {"r": "running", "s": "success", "f": "failed", "i": "internal error", "d": "aborted"}


class RunFailed(NotifyAgentError):
    """``run --wait``: the run ended, but not with success."""

    exit_code = 1


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table sized to its contents."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():.3f}s"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())[:60]


def as_json(value: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return o.isoformat()
        if isinstance(o, dt.timedelta):
            return o.total_seconds()
        raise TypeError(type(o).__name__)

    return json.dumps(value, default=default, indent=2)


async def _fetch(conn: db.AsyncConn, name: str, **params: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(query(name), params or None)
    return [dict(r) for r in await cur.fetchall()]


async def find_job(conn: db.AsyncConn, job: str) -> tuple[int, str]:
    rows = await _fetch(conn, "find_job", job=job)
    if not rows:
        raise ConfigError(f"no job with id or name {job!r}")
    if len(rows) > 1 and str(rows[0]["jobid"]) != job:
        ids = ", ".join(str(r["jobid"]) for r in rows)
        raise ConfigError(f"{len(rows)} jobs are named {job!r} (ids {ids}): give the id")
    return int(rows[0]["jobid"]), str(rows[0]["jobname"])


async def status(dsn: str, as_json_output: bool) -> str:
    async with await db.connect(dsn, app="notifyagent status") as conn:
        agents = await _fetch(conn, "status_agents")
        jobs = await _fetch(conn, "status_jobs")
    if as_json_output:
        return as_json({"agents": agents, "jobs": jobs})
    out = [f"agents ({len(agents)})"]
    out.append(
        table(
            ["pid", "station", "since", "alive"],
            [[a["jagpid"], a["jagstation"], a["jaglogintime"], a["alive"]] for a in agents],
        )
    )
    out.append(f"\njobs ({len(jobs)})")
    out.append(
        table(
            ["id", "name", "enabled", "next run", "last run", "last result", "running on"],
            [
                [
                    j["jobid"],
                    j["jobname"],
                    j["jobenabled"],
                    j["jobnextrun"],
                    j["joblastrun"],
                    STATUS.get(j["last_status"] or "", j["last_status"]),
                    j["running_on"],
                ]
                for j in jobs
            ],
        )
    )
    return "\n".join(out)


def _render_runs(runs: list[dict[str, Any]], steps: list[dict[str, Any]]) -> str:
    out = []
    for run in runs:
        status_text = STATUS.get(run["jlgstatus"], run["jlgstatus"])
        out.append(
            f"run {run['jlgid']}: {status_text} ({run['jlgstatus']}), started "
            f"{_cell(run['jlgstart'])}, duration {_cell(run['jlgduration'])}"
        )
        mine = [s for s in steps if s["jsljlgid"] == run["jlgid"]]
        for s in mine:
            out.append(
                f"  step {s['jstname']}: {STATUS.get(s['jslstatus'], s['jslstatus'])} "
                f"({s['jslstatus']}), result {s['jslresult']}, {_cell(s['jslduration'])}"
            )
            for line in (s["jsloutput"] or "").rstrip("\n").splitlines()[:20]:
                out.append(f"    | {line}")
    return "\n".join(out) if out else "no runs"


async def history(dsn: str, job: str, limit: int, as_json_output: bool) -> str:
    async with await db.connect(dsn, app="notifyagent history") as conn:
        jobid, name = await find_job(conn, job)
        runs = await _fetch(conn, "runs", jobid=jobid, after=0, limit=limit)
        steps = await _fetch(conn, "run_steps", runs=[r["jlgid"] for r in runs])
    if as_json_output:
        for r in runs:
            r["steps"] = [s for s in steps if s["jsljlgid"] == r["jlgid"]]
        return as_json({"job": {"id": jobid, "name": name}, "runs": runs})
    return f"job {jobid} ({name}): last {len(runs)} run(s)\n" + _render_runs(runs, steps)


async def run(
    dsn: str, job: str, wait: bool, give_up_after: float | None, as_json_output: bool
) -> str:
    """Run now (as pgAdmin does it); with ``wait``, follow the run to its end."""
    async with await db.connect(dsn, app="notifyagent run") as conn:
        jobid, name = await find_job(conn, job)
        (row,) = await _fetch(conn, "run_now", jobid=jobid)
        if not row["jobenabled"]:
            raise ConfigError(
                f"job {jobid} ({name}) is disabled: Run now does nothing (enable it first)"
            )
        agents = await _fetch(conn, "status_agents")
        if not any(a["alive"] for a in agents):
            _progress("warning: no live agent is registered; the job runs when one starts")
        if not wait:
            return f"job {jobid} ({name}): next run set to now"
        started = time.monotonic()
        last_note = started
        seen_running = False
        while True:
            runs = await _fetch(conn, "runs", jobid=jobid, after=row["last_jlgid"], limit=1)
            if runs and runs[0]["jlgstatus"] != "r":
                break
            now = time.monotonic()
            if runs and not seen_running:
                seen_running = True
                _progress(f"job {jobid} ({name}) is running (run {runs[0]['jlgid']})")
            if now - last_note >= 5:
                last_note = now
                what = "running" if runs else "waiting for an agent to start it"
                _progress(f"... {what} ({now - started:.0f}s)")
            if give_up_after is not None and now - started > give_up_after:
                raise RunFailed(f"job {jobid} ({name}): no result after {give_up_after:g}s")
            await asyncio.sleep(0.1)
        steps = await _fetch(conn, "run_steps", runs=[runs[0]["jlgid"]])
    if as_json_output:
        text = as_json({"job": {"id": jobid, "name": name}, "run": {**runs[0], "steps": steps}})
    else:
        text = f"job {jobid} ({name})\n" + _render_runs(runs, steps)
    if runs[0]["jlgstatus"] != "s":
        print(text)
        raise RunFailed(f"job {jobid} ({name}) ended {STATUS.get(runs[0]['jlgstatus'])}")
    return text


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
