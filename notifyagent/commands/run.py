"""``notifyagent run JOB [--wait] [--step NAME]``: Run now, as pgAdmin does it, and optionally
follow the run; with ``--step`` the run is that one step (a row in ``notifyagent.step_request``
that the agent's claim consumes)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import psycopg

from notifyagent import db
from notifyagent.commands.common import as_json, find_job
from notifyagent.commands.history import render_runs
from notifyagent.core.model import RunStatus
from notifyagent.core.model import status_label as label
from notifyagent.db.sql import fetch, query
from notifyagent.errors import ConfigError, NotifyAgentError


class RunFailed(NotifyAgentError):
    """``run --wait``: the run ended, but not with success."""

    exit_code = 1


async def run(
    dsn: str,
    job: str,
    wait: bool,
    give_up_after: float | None,
    json_output: bool,
    step: str | None = None,
) -> int:
    async with await db.connect(dsn, app="notifyagent run") as conn:
        jobid, name = await find_job(conn, job)
        what = f"job {jobid} ({name})"
        if step is None:
            (row,) = await fetch(conn, "run_now", jobid=jobid)
        else:
            row, step_name = await _request_step(conn, jobid, what, step)
            what = f"{what}, step {step_name!r} only"
        if not row["jobenabled"]:
            raise ConfigError(f"{what} is disabled: Run now does nothing (enable it first)")
        agents = await fetch(conn, "status_agents")
        if not any(a["alive"] for a in agents):
            _progress("warning: no live agent is registered; the job runs when one starts")
        if not wait:
            print(f"{what}: next run set to now")
            return 0
        ended = await _follow(conn, jobid, what, row["last_jlgid"], give_up_after)
        steps = await fetch(conn, "run_steps", runs=[ended["jlgid"]])
    if json_output:
        print(as_json({"job": {"id": jobid, "name": name}, "run": {**ended, "steps": steps}}))
    else:
        print(f"{what}\n{render_runs([ended], steps)}")
    if ended["jlgstatus"] != RunStatus.SUCCEEDED:
        raise RunFailed(f"{what} ended {label(ended['jlgstatus'])}")
    return 0


async def _follow(
    conn: db.AsyncConn, jobid: int, what: str, after: int, give_up_after: float | None
) -> dict[str, Any]:
    """Wait for the first run after log row ``after`` to end, with a note every 5 s."""
    started = last_note = time.monotonic()
    seen_running = False
    while True:
        runs = await fetch(conn, "runs", jobid=jobid, after=after, limit=1)
        if runs and runs[0]["jlgstatus"] != RunStatus.RUNNING:
            return runs[0]
        now = time.monotonic()
        if runs and not seen_running:
            seen_running = True
            _progress(f"{what} is running (run {runs[0]['jlgid']})")
        if now - last_note >= 5:
            last_note = now
            doing = "running" if runs else "waiting for an agent to start it"
            _progress(f"... {doing} ({now - started:.0f}s)")
        if give_up_after is not None and now - started > give_up_after:
            raise RunFailed(f"{what}: no result after {give_up_after:g}s")
        await asyncio.sleep(0.1)


async def _request_step(
    conn: db.AsyncConn, jobid: int, what: str, step: str
) -> tuple[dict[str, Any], str]:
    """Ask for a run of one step: the request and the Run now in one transaction, refused while
    the job runs (the request would wait for the next run)."""
    steps = await fetch(conn, "find_step", jobid=jobid, step=step)
    if not steps:
        raise ConfigError(f"{what} has no step with name or id {step!r}")
    if len(steps) > 1 and str(steps[0]["jstid"]) != step:
        ids = ", ".join(str(s["jstid"]) for s in steps)
        raise ConfigError(f"{what} has {len(steps)} steps named {step!r} (ids {ids}): give the id")
    try:
        async with conn.transaction():
            (locked,) = await fetch(conn, "lock_job", jobid=jobid)
            if not locked["jobenabled"]:
                raise ConfigError(f"{what} is disabled: it does not run (enable it first)")
            if locked["jobagentid"] is not None:
                raise ConfigError(f"{what} is running: try again when the run has ended")
            await conn.execute(query("request_step"), {"jobid": jobid, "jstid": steps[0]["jstid"]})
            (row,) = await fetch(conn, "run_now", jobid=jobid)
    except psycopg.errors.UndefinedTable:
        raise ConfigError(
            "notifyagent's schema is not installed in this database: run `notifyagent install` "
            "(or start `notifyagent serve`) first"
        ) from None
    return row, str(steps[0]["jstname"])


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
