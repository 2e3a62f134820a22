"""A plan: what apply does to make the database match the file (``diff`` makes it, the writer
carries it out), and its text, which apply prints whether it wrote or not (dry run)."""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from notifyagent import conninfo
from notifyagent.core.fields import render_field
from notifyagent.jobsfile.durations import render_duration
from notifyagent.jobsfile.spec import (
    ARRAY_FIELDS,
    ExceptionSpec,
    JobSpec,
    ScheduleSpec,
    StepSpec,
    quote,
)

Action = Literal["add", "change", "remove", "same"]


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: object
    new: object


S = TypeVar("S", JobSpec, StepSpec, ScheduleSpec)


@dataclass
class ItemPlan(Generic[S]):
    """What to do with a job, a step or a schedule, matched by name (None: not there)."""

    action: Action
    label: str
    current: S | None
    wanted: S | None
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class StepPlan(ItemPlan[StepSpec]):
    """A step's: nothing beyond its fields."""


@dataclass
class SchedulePlan(ItemPlan[ScheduleSpec]):
    """``wanted`` of a matched schedule whose file gives no start has the stored start."""

    exceptions_added: list[ExceptionSpec] = field(default_factory=list)
    exceptions_removed: list[ExceptionSpec] = field(default_factory=list)


@dataclass
class JobPlan(ItemPlan[JobSpec]):
    steps: list[StepPlan] = field(default_factory=list)
    schedules: list[SchedulePlan] = field(default_factory=list)
    #: the job's row in notifyagent.job_policy: "add", "change" (``policy_changes``), "remove"
    #: (the file has no [jobs.policy]: back to pgAgent's behaviour) or "same"
    policy_action: Action = "same"
    policy_changes: list[FieldChange] = field(default_factory=list)
    #: why a job is removed: "not in the file" (prune) or "the file has N of that name"
    reason: str = ""


@dataclass
class Plan:
    jobs: list[JobPlan]
    #: jobs not in the file, left alone (no --prune)
    unmanaged: list[JobSpec]
    prune: bool = False

    def count(self, action: Action) -> int:
        return sum(1 for j in self.jobs if j.action == action)

    @property
    def changed(self) -> bool:
        return any(j.action != "same" for j in self.jobs)

    def render(self, source: str = "jobs file", *, dry_run: bool = False) -> str:
        lines = [line for job in self.jobs for line in _job_lines(job)]
        lines.append(_summary_line(self, source))
        if dry_run:
            lines.append("dry run: nothing was written")
        return "\n".join(lines) + "\n"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _value_text(key: str, value: object) -> str:
    if key in ARRAY_FIELDS:
        assert isinstance(value, tuple)
        return render_field(key, value) or "any"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if key in ("kind", "on_error"):
        return str(value)
    if key == "connstr" and isinstance(value, str) and value:
        return quote(conninfo.display(value))
    return quote(str(value))


def _change_lines(change: FieldChange, indent: str) -> list[str]:
    """``key: old -> new``, or a unified diff when the text has several lines (code)."""
    old, new = change.old, change.new
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        lines = [f"{indent}{change.field}:"]
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), n=1, lineterm=""):
            if line.startswith(("---", "+++")):
                continue
            lines.append(f"{indent}  {line}")
        return lines
    old_text, new_text = _value_text(change.field, old), _value_text(change.field, new)
    return [f"{indent}{change.field}: {old_text} -> {new_text}"]


def _policy_value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, dt.timedelta):
        return render_duration(value)
    return str(value)


def _policy_lines(job: JobPlan) -> list[str]:
    if job.policy_action == "add":
        assert job.wanted is not None
        assert job.wanted.policy is not None
        items = job.wanted.policy.non_defaults()
        text = "; ".join(f"{k} {_policy_value(v)}" for k, v in items) or "all defaults"
        return [f"    + policy: {text}"]
    if job.policy_action == "remove":
        return ["    - policy: none in the file, back to pgAgent's behaviour"]
    return [
        f"    ~ policy: {c.field}: {_policy_value(c.old)} -> {_policy_value(c.new)}"
        for c in job.policy_changes
    ]


def _step_summary(s: StepSpec) -> str:
    if s.kind == "batch":
        text = "batch"
    elif s.database:
        text = f"sql on database {s.database}"
    else:
        text = f"sql on {conninfo.display(s.connstr)}"
    if s.on_error != "fail":
        text += f", on error {s.on_error}"
    if not s.enabled:
        text += ", disabled"
    return text


def _schedule_summary(s: ScheduleSpec) -> str:
    parts = [f"{f} {render_field(f, s.array(f))}" for f in ARRAY_FIELDS if any(s.array(f))]
    parts = parts or ["nothing selected"]
    if s.end:
        parts.append(f"until {s.end.isoformat()}")
    if s.exceptions:
        parts.append(_plural(len(s.exceptions), "exception"))
    if not s.enabled:
        parts.append("disabled")
    return "; ".join(parts)


def _item_lines(item: StepPlan | SchedulePlan) -> list[str]:
    """A step's or a schedule's lines under its job: none when it stays as it is."""
    if item.action == "same":
        return []
    if item.action == "add":
        assert item.wanted is not None
        if isinstance(item.wanted, StepSpec):
            summary = _step_summary(item.wanted)
        else:
            summary = _schedule_summary(item.wanted)
        return [f"    + {item.label}: {summary}"]
    if item.action == "remove":
        return [f"    - {item.label}"]
    lines = [f"    ~ {item.label}"]
    for change in item.changes:
        lines.extend(_change_lines(change, "        "))
    return lines


def _schedule_lines(sched: SchedulePlan) -> list[str]:
    lines = _item_lines(sched)
    if sched.action == "change":
        lines.extend(f"        + exception {e.describe()}" for e in sched.exceptions_added)
        lines.extend(f"        - exception {e.describe()}" for e in sched.exceptions_removed)
    return lines


def _job_lines(job: JobPlan) -> list[str]:
    if job.action == "same":
        return []
    if job.action == "remove":
        assert job.current is not None
        counts = (
            f"{_plural(len(job.current.steps), 'step')}, "
            f"{_plural(len(job.current.schedules), 'schedule')}"
        )
        return [f"- {job.label} ({counts}): {job.reason}"]
    if job.action == "add":
        assert job.wanted is not None
        extra = f"class {job.wanted.job_class}" + ("" if job.wanted.enabled else ", disabled")
        lines = [f"+ {job.label}: {extra}"]
    else:
        lines = [f"~ {job.label}"]
    for change in job.changes:
        lines.extend(_change_lines(change, "    "))
    lines.extend(_policy_lines(job))
    for step in job.steps:
        lines.extend(_item_lines(step))
    for sched in job.schedules:
        lines.extend(_schedule_lines(sched))
    return lines


def _summary_line(plan: Plan, source: str) -> str:
    added, changed, removed = plan.count("add"), plan.count("change"), plan.count("remove")
    same = plan.count("same")
    if plan.changed:
        summary = (
            f"{source}: {_plural(added, 'job')} added, {changed} changed, {removed} removed, "
            f"{same} unchanged"
        )
    else:
        summary = f"{source}: no changes ({_plural(same, 'job')} up to date)"
    if plan.unmanaged:
        summary += (
            f"; {_plural(len(plan.unmanaged), 'job')} not in the file left alone "
            "(--prune deletes them)"
        )
    return summary
