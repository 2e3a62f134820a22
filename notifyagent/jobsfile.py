"""Jobs as code: a TOML jobs file synced into the pgagent tables (``apply``) and written from
them (``export``).

The file is a list of ``[[jobs]]``, each with ``[[jobs.steps]]`` and ``[[jobs.schedules]]`` and
optionally a ``[jobs.policy]`` (a row of ``notifyagent.job_policy``; a job without one has no
row, which is pgAgent's behaviour); ``notifyagent/examples/jobs.toml`` shows every field. Jobs
are matched by name; the steps and schedules of a job by their name too; a job, step or
schedule whose name occurs several times is matched by its position among those of that name
(ordered by id in the database). Jobs whose name is not in the file (made in pgAdmin, say) are
left alone unless ``prune`` is asked for.

Layers: :func:`loads`/:func:`load` parse and validate (pure), :func:`diff` compares the
database's jobs with the file's and makes a :class:`Plan` (pure), :func:`render_jobs` writes a
file (pure); :func:`apply_file` and :func:`export_jobs` do the I/O.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg

from notifyagent import conninfo, db, schema
from notifyagent.errors import ConfigError
from notifyagent.preview import FIELDS, parse_field
from notifyagent.sqlfiles import query

DEFAULT_CLASS = "Routine Maintenance"
#: file value -> pgagent code
KINDS: dict[str, str] = {"sql": "s", "batch": "b"}
ON_ERROR: dict[str, str] = {"fail": "f", "success": "s", "ignore": "i"}
#: The schedule fields that are bool arrays in pgagent, in pgAdmin's order.
ARRAY_FIELDS: tuple[str, ...] = tuple(FIELDS)
#: PostgreSQL's ``name`` type (pga_jobstep.jstdbname) keeps at most this many bytes.
NAME_MAX_BYTES = 63

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
    *ARRAY_FIELDS,
    "exceptions",
)
EXCEPTION_KEYS = ("date", "time")
POLICY_KEYS = ("job_timeout", "step_timeout", "retries", "retry_delay", "overlap", "catchup")
#: notifyagent.job_policy's CHECK constraints
OVERLAP = ("skip", "queue-one")
CATCHUP = ("once", "skip")
MAX_RETRIES = 100

Bools = tuple[bool, ...]


def _nothing(field_name: str) -> Bools:
    return (False,) * FIELDS[field_name][0]


# ----------------------------------------------------------------------------- specifications


@dataclass(frozen=True)
class ExceptionSpec:
    """A schedule exception: a whole day (time None), a time every day (date None), or both."""

    date: dt.date | None = None
    time: dt.time | None = None

    def sort_key(self) -> tuple[dt.date, dt.time]:
        return (self.date or dt.date.min, self.time or dt.time.min)

    def describe(self) -> str:
        if self.date is not None and self.time is not None:
            return f"{self.date.isoformat()} {_time_text(self.time)}"
        if self.date is not None:
            return f"{self.date.isoformat()} (all day)"
        if self.time is not None:
            return f"{_time_text(self.time)} every day"
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
class PolicySpec:
    """A row of ``notifyagent.job_policy``; the defaults are the columns' defaults."""

    job_timeout: dt.timedelta | None = None
    step_timeout: dt.timedelta | None = None
    retries: int = 0
    retry_delay: dt.timedelta = dt.timedelta(minutes=1)
    overlap: str = "skip"
    catchup: str = "once"


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
    policy: PolicySpec | None = None
    id: int | None = field(default=None, compare=False)


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


# ----------------------------------------------------------------------------- parsing


class _Where:
    """Where a value sits, for messages: ``file: job "x": steps[2].kind: ...``."""

    def __init__(self, source: str, job: str | None = None, item: str | None = None) -> None:
        self.source, self.job, self.item = source, job, item

    def at(self, *, job: str | None = None, item: str | None = None) -> _Where:
        return _Where(self.source, job or self.job, item)

    def error(self, key: str | None, message: str) -> ConfigError:
        loc = self.source
        if self.job:
            loc += f": {self.job}"
        path = ".".join(p for p in (self.item, key) if p)
        if path:
            loc += f": {path}"
        return ConfigError(f"{loc}: {message}")


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _check_keys(table: Mapping[str, Any], known: Sequence[str], where: _Where) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            raise where.error(key, f"unknown key ({hint})")


def _string(table: Mapping[str, Any], key: str, where: _Where, default: str | None = None) -> str:
    if key not in table:
        if default is None:
            raise where.error(key, "missing (a string is required)")
        return default
    value = table[key]
    if not isinstance(value, str):
        raise where.error(key, f"{_show(value)} is not a string")
    if "\x00" in value:
        raise where.error(key, "contains a NUL character, which PostgreSQL cannot store")
    return value


def _bool(table: Mapping[str, Any], key: str, where: _Where, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise where.error(key, f"{_show(value)} is not true or false")
    return value


def _choice(
    table: Mapping[str, Any], key: str, where: _Where, choices: Iterable[str], default: str | None
) -> str:
    value = _string(table, key, where, default)
    options = list(choices)
    if value not in options:
        raise where.error(key, f"{value!r} is not one of {', '.join(options)}")
    return value


def _tables(table: Mapping[str, Any], key: str, where: _Where, how: str) -> list[dict[str, Any]]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise where.error(key, f"{_show(value)} is not an array of tables (write {how})")
    return value


def _datetime(table: Mapping[str, Any], key: str, where: _Where) -> dt.datetime | None:
    value = table.get(key)
    if value is None:
        return None
    example = "e.g. 2026-01-01T00:00:00+01:00 or 2026-01-01T00:00:00Z"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise where.error(
                key, f"{value!r} is not an ISO 8601 date and time ({example})"
            ) from None
    if not isinstance(value, dt.datetime):
        raise where.error(key, f"{_show(value)} is not a date and time ({example})")
    if value.utcoffset() is None:
        raise where.error(
            key, f"{value.isoformat()} has no UTC offset: add one ({example}) to say which instant"
        )
    return value


def _array(table: Mapping[str, Any], key: str, where: _Where) -> Bools:
    value = table.get(key)
    if value is None:
        text = ""
    elif isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, list) and all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        text = ",".join(str(v) for v in value)
    else:
        raise where.error(
            key, f'{_show(value)} is not a value list like "0,30", "8-17" or ["mon-fri", "sun"]'
        )
    try:
        return tuple(parse_field(key, text))
    except ConfigError as err:
        message = str(err).removeprefix(f"{key}: ")
        raise where.error(key, message) from None


def _exception(table: Mapping[str, Any], where: _Where) -> ExceptionSpec:
    _check_keys(table, EXCEPTION_KEYS, where)
    day = table.get("date")
    if isinstance(day, str):
        try:
            day = dt.date.fromisoformat(day.strip())
        except ValueError:
            raise where.error("date", f"{day!r} is not a date like 2026-12-25") from None
    if day is not None and (not isinstance(day, dt.date) or isinstance(day, dt.datetime)):
        raise where.error("date", f"{_show(day)} is not a date like 2026-12-25")
    clock = table.get("time")
    if isinstance(clock, str):
        try:
            clock = dt.time.fromisoformat(clock.strip())
        except ValueError:
            raise where.error("time", f"{clock!r} is not a time like 03:00") from None
    if clock is not None and not isinstance(clock, dt.time):
        raise where.error("time", f"{_show(clock)} is not a time like 03:00")
    if clock is not None and clock.tzinfo is not None:
        raise where.error("time", "an exception time is local wall-clock time: drop the offset")
    return ExceptionSpec(day, clock)


#: duration units (singular, plural, short) -> seconds; written back as d, h, m, s
_UNITS: dict[str, int] = {
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
}
_DURATION_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*")
DURATION_SYNTAX = (
    'a number of seconds, or a text like "90s", "5 min", "1h30m", "2 hours" '
    "(units d, h, m, s or their names, largest first)"
)


def _duration_seconds(text: str) -> Decimal:
    """ "1h30m" -> 5400; raises ValueError with the reason."""
    bad = ValueError(f"{text!r} is not a duration: give {DURATION_SYNTAX}")
    if not text.strip():
        raise bad
    total, pos, last = Decimal(0), 0, None
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise bad
        number, name = m.groups()
        if not name:
            if pos == 0 and m.end() == len(text):
                raise ValueError(f'{text!r} has no unit: write {number} (seconds) or "{number}s"')
            raise bad
        unit = _UNITS.get(name)
        if unit is None:
            raise bad
        if last is not None and unit >= last:
            raise ValueError(f'{text!r}: give each unit once, largest first (like "1h30m")')
        total += Decimal(number) * unit
        pos, last = m.end(), unit
    return total


def parse_duration(value: object) -> dt.timedelta:
    """A duration in a jobs file: a number of seconds (TOML integer or float) or a text like
    "90s", "5 min", "1h30m", "2 hours"; raises ValueError with the reason (microseconds are
    kept, as in PostgreSQL's interval)."""
    if isinstance(value, str):
        seconds = _duration_seconds(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        seconds = Decimal(repr(value))
    else:
        raise ValueError(f"{_show(value)} is not a duration: give {DURATION_SYNTAX}")
    if seconds < 0:
        raise ValueError(f"{_show(value)} is negative")
    micro = (seconds * 1_000_000).to_integral_value(ROUND_HALF_EVEN)
    try:
        return dt.timedelta(microseconds=int(micro))
    except OverflowError:
        raise ValueError(f"{_show(value)} is too long") from None


def render_duration(value: dt.timedelta) -> str:
    """A duration in the file's syntax, largest unit first: "1h30m", "1m30s", "0.5s", "0s"."""
    micro = value // dt.timedelta(microseconds=1)
    sign, micro = ("-", -micro) if micro < 0 else ("", micro)
    days, micro = divmod(micro, 86_400_000_000)
    hours, micro = divmod(micro, 3_600_000_000)
    minutes, micro = divmod(micro, 60_000_000)
    seconds, micro = divmod(micro, 1_000_000)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds or micro or not parts:
        parts.append(f"{seconds}{f'.{micro:06d}'.rstrip('0') if micro else ''}s")
    return sign + "".join(parts)


def _duration(
    table: Mapping[str, Any], key: str, where: _Where, *, positive: bool
) -> dt.timedelta | None:
    if key not in table:
        return None
    try:
        value = parse_duration(table[key])
    except ValueError as err:
        raise where.error(key, str(err)) from None
    if positive and not value:
        raise where.error(key, f"must be more than 0 (leave {key} out for no timeout)")
    return value


def _policy(value: object, where: _Where) -> PolicySpec:
    if not isinstance(value, dict):
        raise where.error(None, f"{_show(value)} is not a table (write [jobs.policy])")
    _check_keys(value, POLICY_KEYS, where)
    retries = value.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise where.error("retries", f"{_show(retries)} is not a whole number (0 to {MAX_RETRIES})")
    if not 0 <= retries <= MAX_RETRIES:
        raise where.error("retries", f"{retries} is out of range (0 to {MAX_RETRIES})")
    retry_delay = _duration(value, "retry_delay", where, positive=False)
    return PolicySpec(
        job_timeout=_duration(value, "job_timeout", where, positive=True),
        step_timeout=_duration(value, "step_timeout", where, positive=True),
        retries=retries,
        retry_delay=PolicySpec.retry_delay if retry_delay is None else retry_delay,
        overlap=_choice(value, "overlap", where, OVERLAP, PolicySpec.overlap),
        catchup=_choice(value, "catchup", where, CATCHUP, PolicySpec.catchup),
    )


def _step(table: Mapping[str, Any], where: _Where) -> StepSpec:
    _check_keys(table, STEP_KEYS, where)
    name = _string(table, "name", where)
    kind = _choice(table, "kind", where, KINDS, None)
    database = _string(table, "database", where, "")
    connstr = _string(table, "connstr", where, "")
    if kind == "sql":
        if not database and not connstr:
            raise where.error(
                None, "an sql step needs database (a database on the agent's server) or connstr"
            )
        if database and connstr:
            raise where.error(None, "give database or connstr, not both")
    else:
        for key in ("database", "connstr"):
            if table.get(key):
                raise where.error(key, "a batch step runs a script on the agent's host: remove it")
    if len(database.encode()) > NAME_MAX_BYTES:
        raise where.error("database", f"longer than {NAME_MAX_BYTES} bytes")
    if connstr:
        try:
            conninfo.parse(connstr)
        except psycopg.ProgrammingError as err:
            reason = conninfo.scrub(" ".join(str(err).split()))
            raise where.error("connstr", f"not a valid connection string: {reason}") from None
    return StepSpec(
        name=name,
        kind=kind,
        code=_string(table, "code", where),
        database=database,
        connstr=connstr,
        on_error=_choice(table, "on_error", where, ON_ERROR, "fail"),
        enabled=_bool(table, "enabled", where, True),
        description=_string(table, "description", where, ""),
    )


def _schedule(table: Mapping[str, Any], where: _Where) -> ScheduleSpec:
    _check_keys(table, SCHEDULE_KEYS, where)
    start = _datetime(table, "start", where)
    end = _datetime(table, "end", where)
    if start and end and end < start:
        raise where.error("end", f"{end.isoformat()} is before start {start.isoformat()}")
    exceptions: list[ExceptionSpec] = []
    for n, t in enumerate(_tables(table, "exceptions", where, 'exceptions = [{date = "..."}]'), 1):
        spec = _exception(t, where.at(item=f"{where.item}.exceptions[{n}]"))
        if spec in exceptions:
            raise where.error(f"exceptions[{n}]", f"{spec.describe()} is listed twice")
        exceptions.append(spec)
    arrays = {f: _array(table, f, where) for f in ARRAY_FIELDS}
    return ScheduleSpec(
        name=_string(table, "name", where),
        enabled=_bool(table, "enabled", where, True),
        start=start,
        end=end,
        exceptions=frozenset(exceptions),
        description=_string(table, "description", where, ""),
        minutes=arrays["minutes"],
        hours=arrays["hours"],
        weekdays=arrays["weekdays"],
        monthdays=arrays["monthdays"],
        months=arrays["months"],
    )


def _job(table: Mapping[str, Any], where: _Where) -> JobSpec:
    name = _string(table, "name", where)
    where = where.at(job=f"job {_quote(name)}")
    _check_keys(table, JOB_KEYS, where)
    steps = tuple(
        _step(t, where.at(item=f"steps[{n}]"))
        for n, t in enumerate(_tables(table, "steps", where, "[[jobs.steps]]"), 1)
    )
    schedules = tuple(
        _schedule(t, where.at(item=f"schedules[{n}]"))
        for n, t in enumerate(_tables(table, "schedules", where, "[[jobs.schedules]]"), 1)
    )
    policy = None if "policy" not in table else _policy(table["policy"], where.at(item="policy"))
    return JobSpec(
        name=name,
        enabled=_bool(table, "enabled", where, True),
        job_class=_string(table, "class", where, DEFAULT_CLASS),
        description=_string(table, "description", where, ""),
        host_agent=_string(table, "host_agent", where, ""),
        steps=steps,
        schedules=schedules,
        policy=policy,
    )


def parse(data: Mapping[str, Any], source: str = "jobs file") -> list[JobSpec]:
    """Validate a parsed TOML document; every error names ``source``, the job and the field."""
    where = _Where(source)
    _check_keys(data, ("jobs",), where)
    jobs = []
    for n, table in enumerate(_tables(data, "jobs", where, "[[jobs]]"), 1):
        jobs.append(_job(table, where.at(item=f"jobs[{n}]")))
    _check_unique_exceptions(jobs, source)
    return jobs


def loads(text: str, source: str = "jobs file") -> list[JobSpec]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    return parse(data, source)


def load(path: Path | str) -> list[JobSpec]:
    """Read and validate a jobs file (raises :class:`ConfigError` naming file, job and field)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{source}: cannot read: {err.strerror or err}") from None
    return loads(text, source)


def _global_exceptions(jobs: Iterable[JobSpec]) -> dict[ExceptionSpec, str]:
    """Exceptions with both date and time (pgagent's UNIQUE(jexdate, jextime) counts only those)
    -> 'job "x" schedule "y"'."""
    found: dict[ExceptionSpec, str] = {}
    for job in jobs:
        for s in job.schedules:
            for e in s.exceptions:
                if e.date is not None and e.time is not None:
                    found.setdefault(e, f"job {_quote(job.name)} schedule {_quote(s.name)}")
    return found


def _check_unique_exceptions(jobs: Sequence[JobSpec], source: str) -> None:
    seen: dict[ExceptionSpec, str] = {}
    for job in jobs:
        for n, s in enumerate(job.schedules, 1):
            for e in s.exceptions:
                if e.date is None or e.time is None:
                    continue
                here = f"job {_quote(job.name)} schedule {_quote(s.name)}"
                if e in seen:
                    raise _Where(source, f"job {_quote(job.name)}", f"schedules[{n}]").error(
                        "exceptions",
                        f"{e.describe()} is already an exception of {seen[e]}: pgagent allows "
                        "each date and time once across all schedules (UNIQUE index "
                        "pga_exception_datetime)",
                    )
                seen[e] = here


def check_policy_table(
    jobs: Sequence[JobSpec], present: bool, source: str, dbname: str = ""
) -> None:
    """A file with policies needs notifyagent's table ``notifyagent.job_policy``, made by
    ``notifyagent install`` (or ``serve`` on start), not by apply."""
    if present:
        return
    where = f"database {_quote(dbname)}" if dbname else "the database"
    for job in jobs:
        if job.policy is not None:
            raise _Where(source, f"job {_quote(job.name)}").error(
                "policy",
                f"{where} has no table notifyagent.job_policy (notifyagent's own schema is not "
                "installed): run notifyagent install first, or remove the [jobs.policy] tables",
            )


def check_classes(jobs: Sequence[JobSpec], known: Sequence[str], source: str) -> None:
    """Every job's class must exist in pga_jobclass (notifyagent does not create classes)."""
    for job in jobs:
        if job.job_class not in known:
            raise _Where(source, f"job {_quote(job.name)}").error(
                "class",
                f"{job.job_class!r} is not a job class in the database (known: {', '.join(known)})",
            )


# ----------------------------------------------------------------------------- diff

Action = Literal["add", "change", "remove", "same"]


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: object
    new: object


@dataclass
class StepPlan:
    action: Action
    label: str
    current: StepSpec | None
    wanted: StepSpec | None
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class SchedulePlan:
    action: Action
    label: str
    current: ScheduleSpec | None
    #: for a matched schedule whose file gives no start: the stored start
    wanted: ScheduleSpec | None
    changes: list[FieldChange] = field(default_factory=list)
    exceptions_added: list[ExceptionSpec] = field(default_factory=list)
    exceptions_removed: list[ExceptionSpec] = field(default_factory=list)


@dataclass
class JobPlan:
    action: Action
    label: str
    current: JobSpec | None
    wanted: JobSpec | None
    changes: list[FieldChange] = field(default_factory=list)
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
        return _render_plan(self, source, dry_run)


T = TypeVar("T", JobSpec, StepSpec, ScheduleSpec)


def _label(kind: str, name: str, occurrence: int) -> str:
    return f"{kind} {_quote(name)}" + (f" #{occurrence}" if occurrence > 1 else "")


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


def _policy_plan(
    current: PolicySpec | None, wanted: PolicySpec | None
) -> tuple[Action, list[FieldChange]]:
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
    names = {w.name for w in wanted}
    plan = Plan([], [], prune)
    for cur, want, label in _match("job", current, wanted):
        if want is None:
            assert cur is not None
            if cur.name in names:
                count = sum(1 for w in wanted if w.name == cur.name)
                plan.jobs.append(
                    JobPlan("remove", label, cur, None, reason=f"the file has {count} of that name")
                )
            elif prune:
                plan.jobs.append(JobPlan("remove", label, cur, None, reason="not in the file"))
            else:
                plan.unmanaged.append(cur)
            continue
        if cur is None:
            plan.jobs.append(
                JobPlan(
                    "add",
                    label,
                    None,
                    want,
                    steps=[_step_plan(c, w, lbl) for c, w, lbl in _match("step", (), want.steps)],
                    schedules=[
                        _schedule_plan(c, w, lbl)
                        for c, w, lbl in _match("schedule", (), want.schedules)
                    ],
                    policy_action="same" if want.policy is None else "add",
                )
            )
            continue
        job = JobPlan("same", label, cur, replace(want, id=cur.id))
        job.changes = _compare(JOB_FIELDS, cur, want)
        job.steps = [_step_plan(c, w, lbl) for c, w, lbl in _match("step", cur.steps, want.steps)]
        job.schedules = [
            _schedule_plan(c, w, lbl)
            for c, w, lbl in _match("schedule", cur.schedules, want.schedules)
        ]
        job.policy_action, job.policy_changes = _policy_plan(cur.policy, want.policy)
        if (
            job.changes
            or job.policy_action != "same"
            or any(p.action != "same" for p in job.steps)
            or any(p.action != "same" for p in job.schedules)
        ):
            job.action = "change"
        plan.jobs.append(job)
    kept = _global_exceptions(plan.unmanaged)
    for job in plan.jobs:
        if job.wanted is None:
            continue
        for n, s in enumerate(job.wanted.schedules, 1):
            for e in s.exceptions:
                if e in kept:
                    raise _Where(source, f"job {_quote(job.wanted.name)}", f"schedules[{n}]").error(
                        "exceptions",
                        f"{e.describe()} is already an exception of {kept[e]}, a job not in "
                        "the file: pgagent allows each date and time once across all schedules "
                        "(UNIQUE index pga_exception_datetime)",
                    )
    return plan


# ----------------------------------------------------------------------------- rendering


def render_field(field_name: str, values: Sequence[bool]) -> str:
    """A pgagent bool array in the file's compact syntax: "0,30", "8-17", "mon-fri", "1,15,last";
    "" when nothing is selected (= any)."""
    _, first, names = FIELDS[field_name]
    selected = [i + first for i, v in enumerate(values) if v]
    last = field_name == "monthdays" and 32 in selected
    if last:
        selected.remove(32)

    def word(v: int) -> str:
        return names[v - first] if names else str(v)

    parts: list[str] = []
    i = 0
    while i < len(selected):
        j = i
        while j + 1 < len(selected) and selected[j + 1] == selected[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{word(selected[i])}-{word(selected[j])}")
        else:
            parts.extend(word(v) for v in selected[i : j + 1])
        i = j + 1
    if last:
        parts.append("last")
    return ",".join(parts)


def _time_text(t: dt.time) -> str:
    return t.isoformat(timespec="minutes") if not (t.second or t.microsecond) else t.isoformat()


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
        return _quote(conninfo.display(value))
    return _quote(str(value))


def _change_lines(change: FieldChange, indent: str) -> list[str]:
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


def _policy_items(policy: PolicySpec) -> list[tuple[str, object]]:
    """The keys whose value is not the column's default (what export writes)."""
    default = PolicySpec()
    return [
        (key, getattr(policy, key))
        for key in POLICY_KEYS
        if getattr(policy, key) != getattr(default, key)
    ]


def _policy_lines(job: JobPlan) -> list[str]:
    if job.policy_action == "add":
        assert job.wanted is not None
        assert job.wanted.policy is not None
        items = _policy_items(job.wanted.policy)
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _render_plan(plan: Plan, source: str, dry_run: bool) -> str:
    lines: list[str] = []
    for job in plan.jobs:
        if job.action == "same":
            continue
        if job.action == "remove":
            assert job.current is not None
            counts = (
                f"{_plural(len(job.current.steps), 'step')}, "
                f"{_plural(len(job.current.schedules), 'schedule')}"
            )
            lines.append(f"- {job.label} ({counts}): {job.reason}")
            continue
        if job.action == "add":
            assert job.wanted is not None
            extra = f"class {job.wanted.job_class}" + ("" if job.wanted.enabled else ", disabled")
            lines.append(f"+ {job.label}: {extra}")
        else:
            lines.append(f"~ {job.label}")
        for change in job.changes:
            lines.extend(_change_lines(change, "    "))
        lines.extend(_policy_lines(job))
        for step in job.steps:
            if step.action == "same":
                continue
            if step.action == "add":
                assert step.wanted is not None
                lines.append(f"    + {step.label}: {_step_summary(step.wanted)}")
            elif step.action == "remove":
                lines.append(f"    - {step.label}")
            else:
                lines.append(f"    ~ {step.label}")
                for change in step.changes:
                    lines.extend(_change_lines(change, "        "))
        for sched in job.schedules:
            if sched.action == "same":
                continue
            if sched.action == "add":
                assert sched.wanted is not None
                lines.append(f"    + {sched.label}: {_schedule_summary(sched.wanted)}")
            elif sched.action == "remove":
                lines.append(f"    - {sched.label}")
            else:
                lines.append(f"    ~ {sched.label}")
                for change in sched.changes:
                    lines.extend(_change_lines(change, "        "))
                lines.extend(f"        + exception {e.describe()}" for e in sched.exceptions_added)
                lines.extend(
                    f"        - exception {e.describe()}" for e in sched.exceptions_removed
                )
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
    lines.append(summary)
    if dry_run:
        lines.append("dry run: nothing was written")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- TOML writing

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


def _exception_toml(e: ExceptionSpec) -> str:
    parts = []
    if e.date is not None:
        parts.append(f'date = "{e.date.isoformat()}"')
    if e.time is not None:
        parts.append(f'time = "{_time_text(e.time)}"')
    return "{ " + ", ".join(parts) + " }" if parts else "{}"


HEADER = """\
# notifyagent jobs file: pgAgent jobs as code{origin}.
#
#   notifyagent apply FILE [--dry-run] [--prune]   make the database's jobs match this file
#   notifyagent export [-o FILE]                   write the database's jobs as such a file
#
# Jobs are matched by name, and their steps and schedules by name too. Jobs that are not in
# this file (made in pgAdmin, say) are left alone, unless apply is given --prune.
# Schedule fields take values, lists and ranges: minutes = "0,30", hours = "8-17",
# weekdays = "mon-fri", monthdays = "1,15,last", months = ["jan", "jul"]; an omitted field
# means any. A schedule without start keeps its stored start (new schedules: now).
# [jobs.policy] is notifyagent's per-job policy (job_timeout, step_timeout, retries,
# retry_delay, overlap, catchup; durations like "90s", "5 min", "1h30m"); a job without one
# behaves as under pgAgent.
"""


def render_jobs(jobs: Sequence[JobSpec], *, origin: str = "") -> str:
    """A jobs file for ``jobs`` (deterministic; defaults are left out, except the class)."""
    out = [HEADER.format(origin=f", exported from {origin}" if origin else "")]
    for job in jobs:
        out.append("[[jobs]]")
        out.append(f"name = {toml_string(job.name)}")
        out.append(f"class = {toml_string(job.job_class)}")
        if job.description:
            out.append(f"description = {toml_string(job.description, multiline=True)}")
        if not job.enabled:
            out.append("enabled = false")
        if job.host_agent:
            out.append(f"host_agent = {toml_string(job.host_agent)}")
        out.append("")
        if job.policy is not None:
            out.append("[jobs.policy]")
            for key, value in _policy_items(job.policy):
                if isinstance(value, dt.timedelta):
                    out.append(f'{key} = "{render_duration(value)}"')
                elif isinstance(value, int):
                    out.append(f"{key} = {value}")
                else:
                    out.append(f"{key} = {toml_string(str(value))}")
            out.append("")
        for step in job.steps:
            out.append("[[jobs.steps]]")
            out.append(f"name = {toml_string(step.name)}")
            out.append(f'kind = "{step.kind}"')
            if step.database:
                out.append(f"database = {toml_string(step.database)}")
            if step.connstr:
                out.append(f"connstr = {toml_string(step.connstr)}")
            if step.on_error != "fail":
                out.append(f'on_error = "{step.on_error}"')
            if not step.enabled:
                out.append("enabled = false")
            if step.description:
                out.append(f"description = {toml_string(step.description, multiline=True)}")
            out.append(f"code = {toml_string(step.code, multiline=True)}")
            out.append("")
        for sched in job.schedules:
            out.append("[[jobs.schedules]]")
            out.append(f"name = {toml_string(sched.name)}")
            if sched.description:
                out.append(f"description = {toml_string(sched.description, multiline=True)}")
            if not sched.enabled:
                out.append("enabled = false")
            if sched.start is not None:
                out.append(f'start = "{sched.start.isoformat()}"')
            if sched.end is not None:
                out.append(f'end = "{sched.end.isoformat()}"')
            for f in ARRAY_FIELDS:
                if any(sched.array(f)):
                    out.append(f'{f} = "{render_field(f, sched.array(f))}"')
            if sched.exceptions:
                items = [
                    _exception_toml(e) for e in sorted(sched.exceptions, key=ExceptionSpec.sort_key)
                ]
                if len(items) == 1:
                    out.append(f"exceptions = [{items[0]}]")
                else:
                    out.append("exceptions = [")
                    out.extend(f"  {item}," for item in items)
                    out.append("]")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- database

_KIND_NAMES = {v: k for k, v in KINDS.items()}
_ON_ERROR_NAMES = {v: k for k, v in ON_ERROR.items()}


def _bools(values: Sequence[bool | None] | None, field_name: str) -> Bools:
    if values is None:
        return _nothing(field_name)
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


def policy_from_row(row: Mapping[str, Any]) -> PolicySpec:
    """A row of ``jobsfile_read_policies`` (intervals as timedelta) -> :class:`PolicySpec`."""
    return PolicySpec(
        job_timeout=row["job_timeout"],
        step_timeout=row["step_timeout"],
        retries=int(row["retries"]),
        retry_delay=row["retry_delay"],
        overlap=str(row["overlap"]),
        catchup=str(row["catchup"]),
    )


def job_from_row(row: Mapping[str, Any], policy: PolicySpec | None = None) -> JobSpec:
    """A job as the ``jobsfile_read`` query returns it (JSON) -> :class:`JobSpec` with ids."""
    steps = tuple(
        StepSpec(
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
        for s in row["steps"]
    )
    schedules = tuple(
        ScheduleSpec(
            name=s["name"],
            enabled=s["enabled"],
            start=_timestamp(s["start"], f"job {row['id']} schedule {s['id']}: start"),
            end=_timestamp(s["end"], f"job {row['id']} schedule {s['id']}: end"),
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
        for s in row["schedules"]
    )
    return JobSpec(
        name=row["name"],
        enabled=row["enabled"],
        job_class=row["class"],
        description=row["description"],
        host_agent=row["host_agent"],
        steps=steps,
        schedules=schedules,
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
    policies: dict[int, PolicySpec] = {}
    if present["present"]:
        cur = await conn.execute(query("jobsfile_read_policies"))
        policies = {r["jobid"]: policy_from_row(r) for r in await cur.fetchall()}
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


def _policy_params(jobid: int, policy: PolicySpec) -> dict[str, Any]:
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

    async def insert_exceptions(
        self, jscid: int, exceptions: Iterable[ExceptionSpec], what: str
    ) -> None:
        for e in sorted(exceptions, key=ExceptionSpec.sort_key):
            await self.run(
                "jobsfile_insert_exception",
                {"schedule": jscid, "date": e.date, "time": e.time},
                f"{what}: exception {e.describe()}",
            )

    async def insert_step(self, jobid: int, step: StepSpec, what: str) -> None:
        await self.run("jobsfile_insert_step", {**_step_params(step), "job": jobid}, what)

    async def insert_schedule(self, jobid: int, sched: ScheduleSpec, what: str) -> None:
        jscid = await self.run(
            "jobsfile_insert_schedule", {**_schedule_params(sched), "job": jobid}, what
        )
        await self.insert_exceptions(jscid, sched.exceptions, what)

    async def write(self, plan: Plan) -> None:
        # Deletions first, so that an exception may move between schedules (pgagent's UNIQUE
        # index on (jexdate, jextime) spans all schedules), then updates, then insertions.
        for job in plan.jobs:
            if job.action == "remove":
                assert job.current is not None
                await self.run("jobsfile_delete_job", {"id": job.current.id}, job.label)
        changed = [j for j in plan.jobs if j.action == "change"]
        for job in changed:
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
        for job in changed:
            assert job.wanted is not None
            assert job.current is not None
            if job.changes:
                await self.run(
                    "jobsfile_update_job",
                    {
                        "id": job.current.id,
                        "class": self.classes[job.wanted.job_class],
                        "description": job.wanted.description,
                        "host_agent": job.wanted.host_agent,
                        "enabled": job.wanted.enabled,
                    },
                    job.label,
                )
            for step in job.steps:
                if step.action == "change":
                    assert step.wanted is not None
                    await self.run(
                        "jobsfile_update_step",
                        _step_params(step.wanted),
                        f"{job.label}: {step.label}",
                    )
            for sched in job.schedules:
                if sched.action == "change" and sched.changes:
                    assert sched.wanted is not None
                    await self.run(
                        "jobsfile_update_schedule",
                        _schedule_params(sched.wanted),
                        f"{job.label}: {sched.label}",
                    )
        for job in plan.jobs:
            if job.action not in ("add", "change"):
                continue
            assert job.wanted is not None
            jobid = job.current.id if job.current else None
            if jobid is None:
                jobid = await self.run(
                    "jobsfile_insert_job",
                    {
                        "name": job.wanted.name,
                        "class": self.classes[job.wanted.job_class],
                        "description": job.wanted.description,
                        "host_agent": job.wanted.host_agent,
                        "enabled": job.wanted.enabled,
                    },
                    job.label,
                )
            assert jobid is not None
            for step in job.steps:
                if step.action == "add":
                    assert step.wanted is not None
                    await self.insert_step(jobid, step.wanted, f"{job.label}: {step.label}")
            for sched in job.schedules:
                what = f"{job.label}: {sched.label}"
                if sched.action == "add":
                    assert sched.wanted is not None
                    await self.insert_schedule(jobid, sched.wanted, what)
                elif sched.exceptions_added:
                    assert sched.current is not None
                    assert sched.current.id is not None
                    await self.insert_exceptions(sched.current.id, sched.exceptions_added, what)
            what = f"{job.label}: policy"
            if job.policy_action == "remove":
                await self.run("jobsfile_delete_policy", {"job": jobid}, what)
            elif job.policy_action in ("add", "change"):
                assert job.wanted.policy is not None
                await self.run(
                    "jobsfile_upsert_policy", _policy_params(jobid, job.wanted.policy), what
                )


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
    return render_jobs(state.jobs, origin=f"database {_quote(state.dbname)}")


__all__ = [
    "DbState",
    "ExceptionSpec",
    "FieldChange",
    "JobPlan",
    "JobSpec",
    "Plan",
    "PolicySpec",
    "SchedulePlan",
    "ScheduleSpec",
    "StepPlan",
    "StepSpec",
    "apply_file",
    "check_classes",
    "check_policy_table",
    "diff",
    "export_jobs",
    "job_from_row",
    "load",
    "loads",
    "parse",
    "parse_duration",
    "policy_from_row",
    "read_state",
    "render_duration",
    "render_field",
    "render_jobs",
    "toml_string",
]
