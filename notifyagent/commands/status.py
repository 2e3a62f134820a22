"""``notifyagent status``: the agents, and every job with its next and last run."""

from __future__ import annotations

from notifyagent import db
from notifyagent.commands.common import as_json, table
from notifyagent.core.model import status_label as label
from notifyagent.db.sql import fetch


async def status(dsn: str, json_output: bool) -> int:
    async with await db.connect(dsn, app="notifyagent status") as conn:
        agents = await fetch(conn, "status_agents")
        jobs = await fetch(conn, "status_jobs")
    if json_output:
        print(as_json({"agents": agents, "jobs": jobs}))
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
    return 0
