"""Specs -> a jobs file (pure, deterministic): what export writes, so that applying it to the
same database changes nothing; defaults are left out to keep the file short."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from notifyagent.core.cron import render_cron
from notifyagent.core.fields import render_field
from notifyagent.core.policy import Policy
from notifyagent.jobsfile.durations import render_duration
from notifyagent.jobsfile.spec import (
    ARRAY_FIELDS,
    ExceptionSpec,
    JobSpec,
    ScheduleSpec,
    StepSpec,
    time_text,
)

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(text: str, *, multiline: bool = False) -> str:
    """A TOML string for ``text``: a multi-line literal string (readable code) when ``multiline``
    and possible, else a basic string with escapes."""
    if (
        multiline
        and "\n" in text
        and "'''" not in text
        and not text.endswith("'")
        and not any((ord(c) < 0x20 and c not in "\t\n") or ord(c) == 0x7F for c in text)
    ):
        return "'''\n" + text + "'''"
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


HEADER = """\
# notifyagent jobs file: pgAgent jobs as code{origin}.
#
#   notifyagent apply FILE [--dry-run] [--prune]   make the database's jobs match this file
#   notifyagent export [-o FILE]                   write the database's jobs as such a file
#
# Jobs are matched by name, and their steps and schedules by name too. Jobs that are not in
# this file (made in pgAdmin, say) are left alone, unless apply is given --prune.
# Schedule fields take values, lists, ranges and steps: minutes = "0,30", hours = "8-17",
# weekdays = "mon-fri", monthdays = "1,15,last", months = ["jan", "jul"], minutes = "*/15";
# an omitted field (or "*") means any. Or a whole crontab line: cron = "*/15 8-17 * * mon-fri".
# A schedule without start keeps its stored start (new schedules: now).
# [jobs.policy] is notifyagent's per-job policy (job_timeout, step_timeout, retries,
# retry_delay, overlap, catchup, every = "10s" to also run it at that sub-minute interval;
# durations like "90s", "5 min", "1h30m"); a job without one behaves as under pgAgent.
"""


def render_jobs(jobs: Sequence[JobSpec], *, origin: str = "") -> str:
    """A jobs file for ``jobs`` (deterministic; defaults are left out, except the class)."""
    out = [HEADER.format(origin=f", exported from {origin}" if origin else "")]
    for job in jobs:
        out.extend(_job_toml(job))
        if job.policy is not None:
            out.extend(_policy_toml(job.policy))
        for step in job.steps:
            out.extend(_step_toml(step))
        for sched in job.schedules:
            out.extend(_schedule_toml(sched))
    return "\n".join(out).rstrip("\n") + "\n"


def _description(text: str) -> list[str]:
    return [f"description = {toml_string(text, multiline=True)}"] if text else []


def _disabled(enabled: bool) -> list[str]:
    return [] if enabled else ["enabled = false"]


def _job_toml(job: JobSpec) -> list[str]:
    out = ["[[jobs]]", f"name = {toml_string(job.name)}", f"class = {toml_string(job.job_class)}"]
    out += _description(job.description) + _disabled(job.enabled)
    if job.host_agent:
        out.append(f"host_agent = {toml_string(job.host_agent)}")
    return [*out, ""]


def _policy_toml(policy: Policy) -> list[str]:
    out = ["[jobs.policy]"]
    for key, value in policy.non_defaults():
        if isinstance(value, dt.timedelta):
            out.append(f'{key} = "{render_duration(value)}"')
        elif isinstance(value, int):
            out.append(f"{key} = {value}")
        else:
            out.append(f"{key} = {toml_string(str(value))}")
    return [*out, ""]


def _step_toml(step: StepSpec) -> list[str]:
    out = ["[[jobs.steps]]", f"name = {toml_string(step.name)}", f'kind = "{step.kind}"']
    if step.database:
        out.append(f"database = {toml_string(step.database)}")
    if step.connstr:
        out.append(f"connstr = {toml_string(step.connstr)}")
    if step.on_error != "fail":
        out.append(f'on_error = "{step.on_error}"')
    out += _disabled(step.enabled) + _description(step.description)
    return [*out, f"code = {toml_string(step.code, multiline=True)}", ""]


def _schedule_toml(sched: ScheduleSpec) -> list[str]:
    out = ["[[jobs.schedules]]", f"name = {toml_string(sched.name)}"]
    out += _description(sched.description) + _disabled(sched.enabled)
    if sched.start is not None:
        out.append(f'start = "{sched.start.isoformat()}"')
    if sched.end is not None:
        out.append(f'end = "{sched.end.isoformat()}"')
    line = render_cron({f: list(sched.array(f)) for f in ARRAY_FIELDS})
    if line is not None:
        out.append(f'cron = "{line}"')
    for f in ARRAY_FIELDS if line is None else ():
        if any(sched.array(f)):
            out.append(f'{f} = "{render_field(f, sched.array(f))}"')
    return [*out, *_exceptions_toml(sched.exceptions), ""]


def _exceptions_toml(exceptions: frozenset[ExceptionSpec]) -> list[str]:
    """One inline table each, on one line when there is only one."""
    if not exceptions:
        return []
    items = [_exception_toml(e) for e in sorted(exceptions, key=ExceptionSpec.sort_key)]
    if len(items) == 1:
        return [f"exceptions = [{items[0]}]"]
    return ["exceptions = [", *(f"  {item}," for item in items), "]"]


def _exception_toml(e: ExceptionSpec) -> str:
    parts = []
    if e.date is not None:
        parts.append(f'date = "{e.date.isoformat()}"')
    if e.time is not None:
        parts.append(f'time = "{time_text(e.time)}"')
    return "{ " + ", ".join(parts) + " }" if parts else "{}"
