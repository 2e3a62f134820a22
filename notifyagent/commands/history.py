"""``notifyagent history JOB``: the last runs of a job with their steps and output."""

from __future__ import annotations

from typing import Any

from notifyagent import db
from notifyagent.commands.common import as_json, cell, find_job
from notifyagent.core.model import status_label as label
from notifyagent.db.sql import fetch


def render_runs(runs: list[dict[str, Any]], steps: list[dict[str, Any]]) -> str:
    """Runs with their steps and the first 20 lines of each step's output."""
    out = []
    for run in runs:
        out.append(
            f"run {run['jlgid']}: {label(run['jlgstatus'])} ({run['jlgstatus']}), started "
            f"{cell(run['jlgstart'])}, duration {cell(run['jlgduration'])}"
        )
        for s in (s for s in steps if s["jsljlgid"] == run["jlgid"]):
            out.append(
                f"  step {s['jstname']}: {label(s['jslstatus'])} ({s['jslstatus']}), "
                f"result {s['jslresult']}, {cell(s['jslduration'])}"
            )
            out += [
                f"    | {line}" for line in (s["jsloutput"] or "").rstrip("\n").splitlines()[:20]
            ]
    return "\n".join(out) if out else "no runs"


async def history(dsn: str, job: str, limit: int, json_output: bool) -> int:
    async with await db.connect(dsn, app="notifyagent history") as conn:
        jobid, name = await find_job(conn, job)
        runs = await fetch(conn, "runs", jobid=jobid, after=0, limit=limit)
        steps = await fetch(conn, "run_steps", runs=[r["jlgid"] for r in runs])
    if json_output:
        for r in runs:
            r["steps"] = [s for s in steps if s["jsljlgid"] == r["jlgid"]]
        print(as_json({"job": {"id": jobid, "name": name}, "runs": runs}))
    else:
        print(f"job {jobid} ({name}): last {len(runs)} run(s)")
        print(render_runs(runs, steps))
    return 0
