"""``notifyagent status JOB``: the policy a job runs with (``job_policy`` row > annotation in
pgAdmin's fields > default), where each value came from, its step settings and the problems
of its annotations — computed by the same core functions the agent uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from notifyagent import db
from notifyagent.commands.common import as_json, find_job, table
from notifyagent.core.alerts import redact
from notifyagent.core.annotations import NONE, StepText, Texts, parse
from notifyagent.core.effective import Effective, effective
from notifyagent.core.policy import POLICY_KEYS, Policy
from notifyagent.core.secrets import MASK, add_secret
from notifyagent.db.sql import fetch


async def job_status(dsn: str, job: str, json_output: bool) -> int:
    async with await db.connect(dsn, app="notifyagent status") as conn:
        job_id, name = await find_job(conn, job)
        installed = (await fetch(conn, "jobsfile_policy_table"))[0]["present"]
        rows = await fetch(conn, "policies", ids=[job_id]) if installed else []
        texts = await fetch(conn, "descriptions", ids=[job_id])
    row = Policy.from_row(rows[0]) if rows else None
    found = parse(_texts(texts[0])) if texts else NONE
    plan = effective(row, found)
    report = _report(job_id, name, plan)
    if json_output:
        print(as_json(report))
    else:
        _print(report)
    return 0


def _texts(row: dict[str, Any]) -> Texts:
    steps = tuple(StepText(int(s["id"]), str(s["name"]), str(s["desc"])) for s in row["steps"])
    return Texts(str(row["jobdesc"]), steps)


def _value(value: object, key: str = "") -> object:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if key == "alert_to" and isinstance(value, str):
        return " ".join(redact(u) + "/..." for u in value.split())
    return value


def _report(job_id: int, name: str, plan: Effective) -> dict[str, Any]:
    steps = []
    for step_id, s in sorted(plan.steps.items()):
        for key, value in s.connection:
            if key == "password":
                add_secret(value)
        steps.append(
            {
                "step_id": step_id,
                "step_timeout": _value(s.step_timeout),
                "parallel": s.parallel,
                "connection": {k: MASK if k == "password" else v for k, v in s.connection},
            }
        )
    return {
        "job_id": job_id,
        "job_name": name,
        "policy": {
            k: {"value": _value(getattr(plan.policy, k), k), "source": str(plan.sources[k])}
            for k in POLICY_KEYS
        },
        "steps": steps,
        "email": dict(plan.annotations.email),
        "problems": [
            {"severity": str(p.severity), "where": p.where, "what": p.what, "fix": p.fix}
            for p in plan.annotations.problems
        ],
    }


def _show(value: object) -> object:
    """Durations (seconds in the report) as "600s"."""
    return f"{value:g}s" if isinstance(value, float) else value


def _print(report: dict[str, Any]) -> None:
    print(f"job {report['job_id']} ({report['job_name']}): effective policy")
    print(
        table(
            ["key", "value", "from"],
            [[k, _show(v["value"]), v["source"]] for k, v in report["policy"].items()],
        )
    )
    if report["steps"]:
        print("\nstep annotations")
        print(
            table(
                ["step id", "step_timeout", "parallel", "connection"],
                [
                    [
                        s["step_id"],
                        s["step_timeout"],
                        s["parallel"],
                        " ".join(f"{k}={v}" for k, v in s["connection"].items()),
                    ]
                    for s in report["steps"]
                ],
            )
        )
    if report["email"]:
        print("\ne-mail (@EMAIL_*; sent through the agent's alert_email setting)")
        for key, value in report["email"].items():
            print(f"  {key}: {value}")
    print(f"\nannotation problems ({len(report['problems'])})")
    for p in report["problems"]:
        fix = f"; {p['fix']}" if p["fix"] else ""
        print(f"  {p['severity']}: {p['where']}: {p['what']}{fix}")
