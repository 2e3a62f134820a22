"""What a jobs file says, as frozen dataclasses (the parser makes them, the database reader
makes them with ids, the rest only reads them), and the text helpers every layer's messages
share."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from notifyagent.core.fields import FIELDS
from notifyagent.core.policy import Policy

DEFAULT_CLASS = "Routine Maintenance"
#: file value -> pgagent code
KINDS: dict[str, str] = {"sql": "s", "batch": "b"}
ON_ERROR: dict[str, str] = {"fail": "f", "success": "s", "ignore": "i"}
#: The schedule fields that are bool arrays in pgagent, in pgAdmin's order.
ARRAY_FIELDS: tuple[str, ...] = tuple(FIELDS)

JOB_KEYS = (
    "name",
    "class",
    "description",
    "enabled",
    "host_agent",
    "policy",
    "steps",
    "schedules",
)
STEP_KEYS = ("name", "kind", "database", "connstr", "on_error", "enabled", "description", "code")
SCHEDULE_KEYS = (
    "name",
    "description",
    "enabled",
    "start",
    "end",
    "cron",
    *ARRAY_FIELDS,
    "exceptions",
)
EXCEPTION_KEYS = ("date", "time")

Bools = tuple[bool, ...]


def quote(text: str) -> str:
    """A name as messages and the plan show it: double-quoted, escaped like JSON."""
    return json.dumps(text, ensure_ascii=False)


def show(value: object) -> str:
    """A TOML value as an error message names it."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def time_text(t: dt.time) -> str:
    """03:00 rather than 03:00:00, unless the seconds matter."""
    return t.isoformat(timespec="minutes") if not (t.second or t.microsecond) else t.isoformat()


@dataclass(frozen=True)
class ExceptionSpec:
    """A schedule exception: a whole day (time None), a time every day (date None), or both."""

    date: dt.date | None = None
    time: dt.time | None = None

    def sort_key(self) -> tuple[dt.date, dt.time]:
        return (self.date or dt.date.min, self.time or dt.time.min)

    def describe(self) -> str:
        if self.date is not None and self.time is not None:
            return f"{self.date.isoformat()} {time_text(self.time)}"
        if self.date is not None:
            return f"{self.date.isoformat()} (all day)"
        if self.time is not None:
            return f"{time_text(self.time)} every day"
        return "{} (no date, no time: matches nothing)"


@dataclass(frozen=True)
class StepSpec:
    name: str
    kind: str = "sql"
    code: str = ""
    database: str = ""
    connstr: str = ""
    on_error: str = "fail"
    enabled: bool = True
    description: str = ""
    id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    enabled: bool = True
    #: None in a file: keep the stored start (new schedules: now)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    minutes: Bools = (False,) * 60
    hours: Bools = (False,) * 24
    weekdays: Bools = (False,) * 7
    monthdays: Bools = (False,) * 32
    months: Bools = (False,) * 12
    exceptions: frozenset[ExceptionSpec] = frozenset()
    description: str = ""
    id: int | None = field(default=None, compare=False)

    def array(self, field_name: str) -> Bools:
        value: Bools = getattr(self, field_name)
        return value


@dataclass(frozen=True)
class JobSpec:
    name: str
    enabled: bool = True
    job_class: str = DEFAULT_CLASS
    description: str = ""
    host_agent: str = ""
    steps: tuple[StepSpec, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    #: None: no row in notifyagent.job_policy (pgAgent's behaviour)
    policy: Policy | None = None
    id: int | None = field(default=None, compare=False)
