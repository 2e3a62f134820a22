"""Comparing the database's jobs with the file's (pure): which jobs, steps, schedules,
exceptions and policies to add, change or remove, as a :class:`Plan`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from notifyagent.core.policy import POLICY_KEYS, Policy
from notifyagent.jobsfile.parse import exception_taken, owner, timed_exceptions
from notifyagent.jobsfile.plan import (
    Action,
    FieldChange,
    JobPlan,
    Plan,
    SchedulePlan,
    StepPlan,
)
from notifyagent.jobsfile.spec import (
    ARRAY_FIELDS,
    ExceptionSpec,
    JobSpec,
    ScheduleSpec,
    StepSpec,
    quote,
)

#: (key in the file, attribute) of the fields compared one by one
JOB_FIELDS = (
    ("enabled", "enabled"),
    ("class", "job_class"),
    ("description", "description"),
    ("host_agent", "host_agent"),
)
STEP_FIELDS = tuple(
    (k, k) for k in ("kind", "database", "connstr", "on_error", "enabled", "description", "code")
)
SCHEDULE_FIELDS = tuple((k, k) for k in ("enabled", "start", "end", *ARRAY_FIELDS, "description"))
POLICY_FIELDS = tuple((k, k) for k in POLICY_KEYS)

T = TypeVar("T", JobSpec, StepSpec, ScheduleSpec)


def _label(kind: str, name: str, occurrence: int) -> str:
    return f"{kind} {quote(name)}" + (f" #{occurrence}" if occurrence > 1 else "")


def _match(
    kind: str, current: Sequence[T], wanted: Sequence[T]
) -> list[tuple[T | None, T | None, str]]:
    """Pair items by (name, n-th of that name): wanted order first, then unmatched current."""
    seen: Counter[str] = Counter()
    by_key: dict[tuple[str, int], T] = {}
    for c in current:
        seen[c.name] += 1
        by_key[(c.name, seen[c.name])] = c
    pairs: list[tuple[T | None, T | None, str]] = []
    taken: set[tuple[str, int]] = set()
    seen.clear()
    for w in wanted:
        seen[w.name] += 1
        key = (w.name, seen[w.name])
        taken.add(key)
        pairs.append((by_key.get(key), w, _label(kind, *key)))
    for key, c in by_key.items():
        if key not in taken:
            pairs.append((c, None, _label(kind, *key)))
    return pairs


def _compare(
    fields: Sequence[tuple[str, str]], current: object, wanted: object
) -> list[FieldChange]:
    changes = []
    for key, attr in fields:
        old, new = getattr(current, attr), getattr(wanted, attr)
        if old != new:
            changes.append(FieldChange(key, old, new))
    return changes


def _schedule_plan(
    current: ScheduleSpec | None, wanted: ScheduleSpec | None, label: str
) -> SchedulePlan:
    if current is None:
        assert wanted is not None
        return SchedulePlan("add", label, None, wanted)
    if wanted is None:
        return SchedulePlan("remove", label, current, None)
    if wanted.start is None:
        wanted = replace(wanted, start=current.start)
    wanted = replace(wanted, id=current.id)
    plan = SchedulePlan("same", label, current, wanted, _compare(SCHEDULE_FIELDS, current, wanted))
    plan.exceptions_added = sorted(
        wanted.exceptions - current.exceptions, key=ExceptionSpec.sort_key
    )
    plan.exceptions_removed = sorted(
        current.exceptions - wanted.exceptions, key=ExceptionSpec.sort_key
    )
    if plan.changes or plan.exceptions_added or plan.exceptions_removed:
        plan.action = "change"
    return plan


def _policy_plan(current: Policy | None, wanted: Policy | None) -> tuple[Action, list[FieldChange]]:
    if current is None:
        return ("same" if wanted is None else "add"), []
    if wanted is None:
        return "remove", []
    changes = _compare(POLICY_FIELDS, current, wanted)
    return ("change" if changes else "same"), changes


def _step_plan(current: StepSpec | None, wanted: StepSpec | None, label: str) -> StepPlan:
    if current is None:
        return StepPlan("add", label, None, wanted)
    if wanted is None:
        return StepPlan("remove", label, current, None)
    wanted = replace(wanted, id=current.id)
    changes = _compare(STEP_FIELDS, current, wanted)
    return StepPlan("change" if changes else "same", label, current, wanted, changes)


def _step_plans(current: Sequence[StepSpec], wanted: Sequence[StepSpec]) -> list[StepPlan]:
    return [_step_plan(c, w, label) for c, w, label in _match("step", current, wanted)]


def _schedule_plans(
    current: Sequence[ScheduleSpec], wanted: Sequence[ScheduleSpec]
) -> list[SchedulePlan]:
    return [_schedule_plan(c, w, label) for c, w, label in _match("schedule", current, wanted)]


def _job_plan(current: JobSpec | None, wanted: JobSpec, label: str) -> JobPlan:
    """A job of the file: added, or matched (by name and position) with a stored one."""
    if current is None:
        return JobPlan(
            "add",
            label,
            None,
            wanted,
            steps=_step_plans((), wanted.steps),
            schedules=_schedule_plans((), wanted.schedules),
            policy_action="same" if wanted.policy is None else "add",
        )
    job = JobPlan("same", label, current, replace(wanted, id=current.id))
    job.changes = _compare(JOB_FIELDS, current, wanted)
    job.steps = _step_plans(current.steps, wanted.steps)
    job.schedules = _schedule_plans(current.schedules, wanted.schedules)
    job.policy_action, job.policy_changes = _policy_plan(current.policy, wanted.policy)
    if (
        job.changes
        or job.policy_action != "same"
        or any(p.action != "same" for p in job.steps)
        or any(p.action != "same" for p in job.schedules)
    ):
        job.action = "change"
    return job


def _check_kept_exceptions(plan: Plan, source: str) -> None:
    """The jobs left alone keep their exceptions, so the file cannot have them too."""
    kept: dict[ExceptionSpec, str] = {}
    for job, _, s, e in timed_exceptions(plan.unmanaged):
        kept.setdefault(e, owner(job, s))
    wanted = [j.wanted for j in plan.jobs if j.wanted is not None]
    for job, n, _, e in timed_exceptions(wanted):
        if e in kept:
            raise exception_taken(source, job, n, e, f"{kept[e]}, a job not in the file")


def diff(
    current: Sequence[JobSpec],
    wanted: Sequence[JobSpec],
    prune: bool = False,
    *,
    source: str = "jobs file",
) -> Plan:
    """What to do so that the database holds ``wanted`` (pure).

    ``current`` comes from the database (with ids, ordered by id within a name). Jobs whose
    name is in ``wanted`` are managed: matched, changed, and removed when the file has fewer
    jobs of that name. Other jobs are removed only with ``prune``.
    """
    names = Counter(w.name for w in wanted)
    plan = Plan([], [], prune)
    for cur, want, label in _match("job", current, wanted):
        if want is not None:
            plan.jobs.append(_job_plan(cur, want, label))
            continue
        assert cur is not None
        if cur.name in names:
            reason = f"the file has {names[cur.name]} of that name"
            plan.jobs.append(JobPlan("remove", label, cur, None, reason=reason))
        elif prune:
            plan.jobs.append(JobPlan("remove", label, cur, None, reason="not in the file"))
        else:
            plan.unmanaged.append(cur)
    _check_kept_exceptions(plan, source)
    return plan
