"""The jobs file's I/O: reading the pgagent tables into specs, writing a plan back in one
transaction, and the ``apply`` and ``export`` entry points."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from notifyagent import db
from notifyagent.core.fields import FIELDS
from notifyagent.core.policy import POLICY_KEYS, Policy
from notifyagent.db import schema
from notifyagent.db.sql import query
from notifyagent.errors import ConfigError
from notifyagent.jobsfile.diff import diff
from notifyagent.jobsfile.parse import check_classes, check_policy_table, load
from notifyagent.jobsfile.plan import JobPlan, Plan
from notifyagent.jobsfile.spec import (
    ARRAY_FIELDS,
    KINDS,
    ON_ERROR,
    Bools,
    ExceptionSpec,
    JobSpec,
    ScheduleSpec,
    StepSpec,
    quote,
)
from notifyagent.jobsfile.toml import render_jobs

_KIND_NAMES = {v: k for k, v in KINDS.items()}
_ON_ERROR_NAMES = {v: k for k, v in ON_ERROR.items()}


def _bools(values: Sequence[bool | None] | None, field_name: str) -> Bools:
    """A stored bool array; NULL (made by hand) selects nothing, as an all-false one does."""
    if values is None:
        return (False,) * FIELDS[field_name][0]
    return tuple(bool(v) for v in values)


def _timestamp(text: str | None, what: str) -> dt.datetime | None:
    if text is None:
        return None
    # 'infinity' and '-infinity' (made by hand): the latest and earliest instants Python has,
    # which behave the same in a schedule and make export -> apply a no-op
    if text == "infinity":
        return dt.datetime.max.replace(tzinfo=dt.UTC)
    if text == "-infinity":
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{what}: the stored value {text!r} cannot be written in a jobs file"
        ) from None


def _step_from_row(s: Mapping[str, Any]) -> StepSpec:
    return StepSpec(
        name=s["name"],
        kind=_KIND_NAMES[s["kind"]],
        code=s["code"],
        database=s["database"],
        connstr=s["connstr"],
        on_error=_ON_ERROR_NAMES[s["on_error"]],
        enabled=s["enabled"],
        description=s["description"],
        id=s["id"],
    )


def _schedule_from_row(s: Mapping[str, Any], jobid: object) -> ScheduleSpec:
    what = f"job {jobid} schedule {s['id']}"
    return ScheduleSpec(
        name=s["name"],
        enabled=s["enabled"],
        start=_timestamp(s["start"], f"{what}: start"),
        end=_timestamp(s["end"], f"{what}: end"),
        exceptions=frozenset(
            ExceptionSpec(
                dt.date.fromisoformat(e["date"]) if e["date"] else None,
                dt.time.fromisoformat(e["time"]) if e["time"] else None,
            )
            for e in s["exceptions"]
        ),
        description=s["description"],
        id=s["id"],
        minutes=_bools(s["minutes"], "minutes"),
        hours=_bools(s["hours"], "hours"),
        weekdays=_bools(s["weekdays"], "weekdays"),
        monthdays=_bools(s["monthdays"], "monthdays"),
        months=_bools(s["months"], "months"),
    )


def job_from_row(row: Mapping[str, Any], policy: Policy | None = None) -> JobSpec:
    """A job as the ``jobsfile_read`` query returns it (JSON) -> :class:`JobSpec` with ids."""
    return JobSpec(
        name=row["name"],
        enabled=row["enabled"],
        job_class=row["class"],
        description=row["description"],
        host_agent=row["host_agent"],
        steps=tuple(_step_from_row(s) for s in row["steps"]),
        schedules=tuple(_schedule_from_row(s, row["id"]) for s in row["schedules"]),
        policy=policy,
        id=row["id"],
    )


@dataclass
class DbState:
    classes: dict[str, int]
    jobs: list[JobSpec]
    dbname: str
    #: whether notifyagent.job_policy exists (notifyagent's schema is installed)
    policies: bool = False


async def read_state(conn: db.AsyncConn) -> DbState:
    """Every job with its steps, schedules and exceptions, in one statement, and the policies
    when notifyagent's table exists (export reads both in one snapshot; apply after its lock)."""
    cur = await conn.execute(query("jobsfile_policy_table"))
    present = await cur.fetchone()
    assert present is not None
    policies: dict[int, Policy] = {}
    if present["present"]:
        cur = await conn.execute(query("jobsfile_read_policies"))
        policies = {r["jobid"]: Policy.from_row(r) for r in await cur.fetchall()}
    cur = await conn.execute(query("jobsfile_read"))
    row = await cur.fetchone()
    assert row is not None
    return DbState(
        classes={c["name"]: c["id"] for c in row["classes"] or []},
        jobs=[job_from_row(j, policies.get(j["id"])) for j in row["jobs"] or []],
        dbname=row["dbname"],
        policies=bool(present["present"]),
    )


def _step_params(step: StepSpec) -> dict[str, Any]:
    return {
        "id": step.id,
        "name": step.name,
        "kind": KINDS[step.kind],
        "code": step.code,
        "database": step.database,
        "connstr": step.connstr,
        "on_error": ON_ERROR[step.on_error],
        "enabled": step.enabled,
        "description": step.description,
    }


def _policy_params(jobid: int, policy: Policy) -> dict[str, Any]:
    return {"job": jobid, **{key: getattr(policy, key) for key in POLICY_KEYS}}


def _schedule_params(sched: ScheduleSpec) -> dict[str, Any]:
    return {
        "id": sched.id,
        "name": sched.name,
        "enabled": sched.enabled,
        "start": sched.start,
        "end": sched.end,
        "description": sched.description,
        **{f: list(sched.array(f)) for f in ARRAY_FIELDS},
    }


class _Writer:
    """Carries out a plan, each statement labelled so that a refusal names the job and item."""

    def __init__(self, conn: db.AsyncConn, classes: Mapping[str, int], source: str) -> None:
        self.conn, self.classes, self.source = conn, classes, source

    async def run(self, name: str, params: dict[str, Any], what: str) -> Any:
        try:
            cur = await self.conn.execute(query(name), params)
        except psycopg.Error as err:
            reason = err.diag.message_primary or " ".join(str(err).split())
            if err.diag.message_detail:
                reason += f" ({err.diag.message_detail})"
            raise ConfigError(
                f"{self.source}: {what}: the database refused the change: {reason}"
            ) from None
        if cur.description:
            row = await cur.fetchone()
            return None if row is None else next(iter(row.values()))
        return None

    def job_params(self, job: JobSpec) -> dict[str, Any]:
        """The columns of pga_job that insert and update both write."""
        return {
            "class": self.classes[job.job_class],
            "description": job.description,
            "host_agent": job.host_agent,
            "enabled": job.enabled,
        }

    async def write(self, plan: Plan) -> None:
        # Deletions first, so that an exception may move between schedules (pgagent's UNIQUE
        # index on (jexdate, jextime) spans all schedules), then updates, then insertions.
        for job in plan.jobs:
            if job.action == "remove":
                assert job.current is not None
                await self.run("jobsfile_delete_job", {"id": job.current.id}, job.label)
        changed = [j for j in plan.jobs if j.action == "change"]
        for job in changed:
            await self.delete_parts(job)
        for job in changed:
            await self.update(job)
        for job in plan.jobs:
            if job.action in ("add", "change"):
                await self.insert(job)

    async def delete_parts(self, job: JobPlan) -> None:
        """The steps, schedules and exceptions of a kept job that the file no longer has."""
        for step in job.steps:
            if step.action == "remove":
                assert step.current is not None
                what = f"{job.label}: {step.label}"
                await self.run("jobsfile_delete_step", {"id": step.current.id}, what)
        for sched in job.schedules:
            what = f"{job.label}: {sched.label}"
            if sched.action == "remove":
                assert sched.current is not None
                await self.run("jobsfile_delete_schedule", {"id": sched.current.id}, what)
            for e in sched.exceptions_removed:
                assert sched.current is not None
                await self.run(
                    "jobsfile_delete_exception",
                    {"schedule": sched.current.id, "date": e.date, "time": e.time},
                    f"{what}: exception {e.describe()}",
                )

    async def update(self, job: JobPlan) -> None:
        assert job.wanted is not None
        assert job.current is not None
        if job.changes:
            params = {"id": job.current.id, **self.job_params(job.wanted)}
            await self.run("jobsfile_update_job", params, job.label)
        for step in job.steps:
            if step.action == "change":
                assert step.wanted is not None
                what = f"{job.label}: {step.label}"
                await self.run("jobsfile_update_step", _step_params(step.wanted), what)
        for sched in job.schedules:
            if sched.action == "change" and sched.changes:
                assert sched.wanted is not None
                what = f"{job.label}: {sched.label}"
                await self.run("jobsfile_update_schedule", _schedule_params(sched.wanted), what)

    async def insert(self, job: JobPlan) -> None:
        """A new job, or the new steps, schedules, exceptions and policy of a kept one."""
        assert job.wanted is not None
        jobid = job.current.id if job.current else None
        if jobid is None:
            params = {"name": job.wanted.name, **self.job_params(job.wanted)}
            jobid = await self.run("jobsfile_insert_job", params, job.label)
        assert jobid is not None
        for step in job.steps:
            if step.action == "add":
                assert step.wanted is not None
                params = {**_step_params(step.wanted), "job": jobid}
                await self.run("jobsfile_insert_step", params, f"{job.label}: {step.label}")
        for sched in job.schedules:
            what = f"{job.label}: {sched.label}"
            if sched.action == "add":
                assert sched.wanted is not None
                params = {**_schedule_params(sched.wanted), "job": jobid}
                jscid = await self.run("jobsfile_insert_schedule", params, what)
                await self.insert_exceptions(jscid, sched.wanted.exceptions, what)
            elif sched.exceptions_added:
                assert sched.current is not None
                assert sched.current.id is not None
                await self.insert_exceptions(sched.current.id, sched.exceptions_added, what)
        await self.write_policy(jobid, job)

    async def insert_exceptions(
        self, jscid: int, exceptions: Iterable[ExceptionSpec], what: str
    ) -> None:
        for e in sorted(exceptions, key=ExceptionSpec.sort_key):
            await self.run(
                "jobsfile_insert_exception",
                {"schedule": jscid, "date": e.date, "time": e.time},
                f"{what}: exception {e.describe()}",
            )

    async def write_policy(self, jobid: int, job: JobPlan) -> None:
        what = f"{job.label}: policy"
        if job.policy_action == "remove":
            await self.run("jobsfile_delete_policy", {"job": jobid}, what)
        elif job.policy_action in ("add", "change"):
            assert job.wanted is not None
            assert job.wanted.policy is not None
            params = _policy_params(jobid, job.wanted.policy)
            await self.run("jobsfile_upsert_policy", params, what)


async def apply_file(
    dsn: str, path: Path | str, *, prune: bool = False, dry_run: bool = False
) -> str:
    """Make the database's jobs match the jobs file ``path``, in one transaction; return the
    diff (what was done, or with ``dry_run`` what would be done, writing nothing)."""
    wanted = load(path)
    source = str(path)
    conn = await db.connect(dsn, app="notifyagent apply")
    async with conn:
        await schema.verify_pgagent(conn)
        async with conn.transaction(force_rollback=dry_run):
            if not dry_run:
                await conn.execute(query("jobsfile_lock"))
            state = await read_state(conn)
            check_classes(wanted, list(state.classes), source)
            check_policy_table(wanted, state.policies, source, state.dbname)
            plan = diff(state.jobs, wanted, prune, source=source)
            if not dry_run:
                await _Writer(conn, state.classes, source).write(plan)
    return plan.render(source, dry_run=dry_run)


async def export_jobs(dsn: str) -> str:
    """The database's jobs as a jobs file (applying it to the same database changes nothing)."""
    conn = await db.connect(dsn, app="notifyagent export")
    async with conn:
        await schema.verify_pgagent(conn)
        async with conn.transaction():
            await conn.execute(query("jobsfile_snapshot"))
            state = await read_state(conn)
    return render_jobs(state.jobs, origin=f"database {quote(state.dbname)}")
