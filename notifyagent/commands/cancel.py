"""``notifyagent cancel JOB [--step]``: stop a running job (or its running step) through
``notifyagent.cancel_job()``, the same function pgAdmin's Query Tool can call."""

from __future__ import annotations

from notifyagent import db
from notifyagent.commands.common import find_job
from notifyagent.db.sql import fetch
from notifyagent.errors import NotifyAgentError


class NotRunning(NotifyAgentError):
    """Nothing to cancel: no agent runs the job."""

    exit_code = 1


async def cancel(dsn: str, job: str, step_only: bool) -> int:
    async with await db.connect(dsn, app="notifyagent cancel") as conn:
        jobid, name = await find_job(conn, job)
        what = f"job {jobid} ({name})"
        (row,) = await fetch(conn, "cancel_job", jobid=jobid, step_only=step_only)
    if not row["running"]:
        raise NotRunning(f"{what} is not running: nothing was cancelled")
    target = "its running step" if step_only else "the run"
    print(f"{what}: cancel sent; the agent running it stops {target} (see `history {jobid}`)")
    return 0
