"""TOML -> specs, validated (pure): every error names the file, the job and the field, and says
what would be accepted, so that a bad file is refused before anything is written."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

from notifyagent import conninfo
from notifyagent.core.annotations import alert_value
from notifyagent.core.cron import every_minute_if_empty, parse_cron
from notifyagent.core.interval import check_every
from notifyagent.core.policy import DEFAULT, POLICY_KEYS, Catchup, Overlap, Policy
from notifyagent.errors import ConfigError
from notifyagent.jobsfile.durations import render_duration
from notifyagent.jobsfile.spec import (
    ARRAY_FIELDS,
    DEFAULT_CLASS,
    EXCEPTION_KEYS,
    JOB_KEYS,
    KINDS,
    ON_ERROR,
    SCHEDULE_KEYS,
    STEP_KEYS,
    ExceptionSpec,
    JobSpec,
    ScheduleSpec,
    StepSpec,
    quote,
    show,
)
from notifyagent.jobsfile.values import (
    Where,
    check_keys,
    get_array,
    get_bool,
    get_choice,
    get_date_or_time,
    get_datetime,
    get_duration,
    get_str,
    get_tables,
)

#: PostgreSQL's ``name`` type (pga_jobstep.jstdbname) keeps at most this many bytes.
NAME_MAX_BYTES = 63
MAX_RETRIES = 100


def _exception(table: Mapping[str, Any], where: Where) -> ExceptionSpec:
    check_keys(table, EXCEPTION_KEYS, where)
    day = get_date_or_time(table, "date", where, dt.date, "a date like 2026-12-25")
    clock = get_date_or_time(table, "time", where, dt.time, "a time like 03:00")
    if clock is not None and clock.tzinfo is not None:
        raise where.error("time", "an exception time is local wall-clock time: drop the offset")
    return ExceptionSpec(day, clock)


def _policy(value: object, where: Where) -> Policy:
    if not isinstance(value, dict):
        raise where.error(None, f"{show(value)} is not a table (write [jobs.policy])")
    check_keys(value, POLICY_KEYS, where)
    retries = value.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise where.error("retries", f"{show(retries)} is not a whole number (0 to {MAX_RETRIES})")
    if not 0 <= retries <= MAX_RETRIES:
        raise where.error("retries", f"{retries} is out of range (0 to {MAX_RETRIES})")
    retry_delay = get_duration(value, "retry_delay", where, positive=False)
    every = get_duration(value, "every", where, positive=True)
    if every is not None and (why := check_every(every)) is not None:
        raise where.error("every", f"{render_duration(every)} {why}")
    alerts: dict[str, object] = {}
    for key in ("max_failures", "alert_to", "alert_on"):
        if key in value:
            try:
                alerts[key] = alert_value(key, value[key])
            except ValueError as err:
                raise where.error(key, str(err)) from None
    return Policy(
        **alerts,  # type: ignore[arg-type]
        job_timeout=get_duration(value, "job_timeout", where, positive=True),
        step_timeout=get_duration(value, "step_timeout", where, positive=True),
        retries=retries,
        retry_delay=DEFAULT.retry_delay if retry_delay is None else retry_delay,
        overlap=Overlap(get_choice(value, "overlap", where, Overlap, DEFAULT.overlap)),
        catchup=Catchup(get_choice(value, "catchup", where, Catchup, DEFAULT.catchup)),
        every=every,
    )


def _step(table: Mapping[str, Any], where: Where) -> StepSpec:
    check_keys(table, STEP_KEYS, where)
    name = get_str(table, "name", where)
    kind = get_choice(table, "kind", where, KINDS, None)
    database = get_str(table, "database", where, "")
    connstr = get_str(table, "connstr", where, "")
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
        code=get_str(table, "code", where),
        database=database,
        connstr=connstr,
        on_error=get_choice(table, "on_error", where, ON_ERROR, "fail"),
        enabled=get_bool(table, "enabled", where, True),
        description=get_str(table, "description", where, ""),
    )


def _schedule(table: Mapping[str, Any], where: Where) -> ScheduleSpec:
    check_keys(table, SCHEDULE_KEYS, where)
    start = get_datetime(table, "start", where)
    end = get_datetime(table, "end", where)
    if start and end and end < start:
        raise where.error("end", f"{end.isoformat()} is before start {start.isoformat()}")
    exceptions: list[ExceptionSpec] = []
    for n, t in enumerate(
        get_tables(table, "exceptions", where, 'exceptions = [{date = "..."}]'), 1
    ):
        spec = _exception(t, where.at(item=f"{where.item}.exceptions[{n}]"))
        if spec in exceptions:
            raise where.error(f"exceptions[{n}]", f"{spec.describe()} is listed twice")
        exceptions.append(spec)
    arrays = _arrays(table, where)
    return ScheduleSpec(
        name=get_str(table, "name", where),
        enabled=get_bool(table, "enabled", where, True),
        start=start,
        end=end,
        exceptions=frozenset(exceptions),
        description=get_str(table, "description", where, ""),
        minutes=arrays["minutes"],
        hours=arrays["hours"],
        weekdays=arrays["weekdays"],
        monthdays=arrays["monthdays"],
        months=arrays["months"],
    )


def _arrays(table: Mapping[str, Any], where: Where) -> dict[str, tuple[bool, ...]]:
    """The schedule's fields, or its ``cron`` line mapped onto them (not both)."""
    if "cron" not in table:
        found = {f: get_array(table, f, where) for f in ARRAY_FIELDS}
        if any("*" in str(table.get(f, "")) for f in ARRAY_FIELDS):
            found = {f: tuple(v) for f, v in every_minute_if_empty(found).items()}
        return found
    given = [f for f in ARRAY_FIELDS if f in table]
    if given:
        raise where.error("cron", f"give either cron or {', '.join(given)}, not both")
    try:
        arrays = parse_cron(get_str(table, "cron", where))
    except ConfigError as err:
        raise where.error("cron", str(err).removeprefix("cron: ")) from None
    return {f: tuple(v) for f, v in arrays.items()}


def _job(table: Mapping[str, Any], where: Where) -> JobSpec:
    name = get_str(table, "name", where)
    where = where.at(job=f"job {quote(name)}")
    check_keys(table, JOB_KEYS, where)
    steps = tuple(
        _step(t, where.at(item=f"steps[{n}]"))
        for n, t in enumerate(get_tables(table, "steps", where, "[[jobs.steps]]"), 1)
    )
    schedules = tuple(
        _schedule(t, where.at(item=f"schedules[{n}]"))
        for n, t in enumerate(get_tables(table, "schedules", where, "[[jobs.schedules]]"), 1)
    )
    policy = None if "policy" not in table else _policy(table["policy"], where.at(item="policy"))
    return JobSpec(
        name=name,
        enabled=get_bool(table, "enabled", where, True),
        job_class=get_str(table, "class", where, DEFAULT_CLASS),
        description=get_str(table, "description", where, ""),
        host_agent=get_str(table, "host_agent", where, ""),
        steps=steps,
        schedules=schedules,
        policy=policy,
    )


def parse(data: Mapping[str, Any], source: str = "jobs file") -> list[JobSpec]:
    """Validate a parsed TOML document; every error names ``source``, the job and the field."""
    where = Where(source)
    check_keys(data, ("jobs",), where)
    jobs = []
    for n, table in enumerate(get_tables(data, "jobs", where, "[[jobs]]"), 1):
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


def timed_exceptions(
    jobs: Iterable[JobSpec],
) -> Iterator[tuple[JobSpec, int, ScheduleSpec, ExceptionSpec]]:
    """(job, schedule's 1-based position, schedule, exception) of the exceptions with both date
    and time: pgagent's UNIQUE(jexdate, jextime) spans all schedules and counts only those."""
    for job in jobs:
        for n, s in enumerate(job.schedules, 1):
            for e in s.exceptions:
                if e.date is not None and e.time is not None:
                    yield job, n, s, e


def owner(job: JobSpec, schedule: ScheduleSpec) -> str:
    return f"job {quote(job.name)} schedule {quote(schedule.name)}"


def exception_taken(
    source: str, job: JobSpec, n: int, e: ExceptionSpec, taken_by: str
) -> ConfigError:
    """The error for an exception of schedule ``n`` of ``job`` that ``taken_by`` already has."""
    return Where(source, f"job {quote(job.name)}", f"schedules[{n}]").error(
        "exceptions",
        f"{e.describe()} is already an exception of {taken_by}: pgagent allows each date and "
        "time once across all schedules (UNIQUE index pga_exception_datetime)",
    )


def _check_unique_exceptions(jobs: Sequence[JobSpec], source: str) -> None:
    seen: dict[ExceptionSpec, str] = {}
    for job, n, s, e in timed_exceptions(jobs):
        if e in seen:
            raise exception_taken(source, job, n, e, seen[e])
        seen[e] = owner(job, s)


def check_policy_table(
    jobs: Sequence[JobSpec], present: bool, source: str, dbname: str = ""
) -> None:
    """A file with policies needs notifyagent's table ``notifyagent.job_policy``, made by
    ``notifyagent install`` (or ``serve`` on start), not by apply."""
    if present:
        return
    where = f"database {quote(dbname)}" if dbname else "the database"
    for job in jobs:
        if job.policy is not None:
            raise Where(source, f"job {quote(job.name)}").error(
                "policy",
                f"{where} has no table notifyagent.job_policy (notifyagent's own schema is not "
                "installed): run notifyagent install first, or remove the [jobs.policy] tables",
            )


def check_classes(jobs: Sequence[JobSpec], known: Sequence[str], source: str) -> None:
    """Every job's class must exist in pga_jobclass (notifyagent does not create classes)."""
    for job in jobs:
        if job.job_class not in known:
            raise Where(source, f"job {quote(job.name)}").error(
                "class",
                f"{job.job_class!r} is not a job class in the database (known: {', '.join(known)})",
            )
