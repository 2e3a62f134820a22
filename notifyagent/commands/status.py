"""``notifyagent status``: the agents, and every job with its next and last run."""

from __future__ import annotations

from notifyagent import db
from notifyagent.commands.common import as_json, table
from notifyagent.core.alerts import Overdue
from notifyagent.core.config import Settings
from notifyagent.core.model import status_label as label
from notifyagent.db.sql import fetch


async def status(dsn: str, json_output: bool, grace: float | None = None) -> int:
    """``grace``: seconds a job may stay due before it counts as missed (the agents' default
    ``missed_grace`` when None)."""
    grace = Settings().missed_grace if grace is None else grace
    async with await db.connect(dsn, app="notifyagent status") as conn:
        agents = await fetch(conn, "status_agents")
        jobs = await fetch(conn, "status_jobs")
        installed = (await fetch(conn, "jobsfile_policy_table"))[0]["present"]
        rows = await fetch(conn, "overdue", grace=grace) if installed else []
    overdue = [Overdue.from_row(r) for r in rows]
    if json_output:
        missed = [{"jobid": o.job_id, "due": o.due, "reason": o.reason} for o in overdue]
        print(as_json({"agents": agents, "jobs": jobs, "missed": missed}))
        return 0
    print(f"agents ({len(agents)})")
    print(
        table(
            ["pid", "station", "since", "alive"],
            [[a["jagpid"], a["jagstation"], a["jaglogintime"], a["alive"]] for a in agents],
        )
    )
    print(f"\njobs ({len(jobs)})")
    print(
        table(
            ["id", "name", "enabled", "next run", "last run", "last result", "running on"],
            [
                [
                    j["jobid"],
                    j["jobname"],
                    j["jobenabled"],
                    j["jobnextrun"],
                    j["joblastrun"],
                    label(j["last_status"]),
                    j["running_on"],
                ]
                for j in jobs
            ],
        )
    )
    if overdue:
        print(f"\nmissed: due for more than {grace:g}s, not running ({len(overdue)})")
        print(
            table(
                ["id", "name", "due since", "why"],
                [[o.job_id, o.name, o.due, o.reason] for o in overdue],
            )
        )
    return 0
