"""``notifyagent next``: the next run times of a job, or of a schedule typed on the command line.

Field syntax for inline schedules (what pgAdmin's Repeat tab selects): comma-separated values
ranges and cron steps, e.g. ``--minutes 0,30 --hours 8-17 --weekdays mon-fri --monthdays
1,15,last`` or ``--minutes */15``; or a whole crontab line, ``--cron '*/15 8-17 * * mon-fri'``.
An omitted field means "any", as an all-false array does in pgAgent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import psycopg

from notifyagent import db
from notifyagent.commands.common import find_job
from notifyagent.core.cron import every_minute_if_empty, parse_cron
from notifyagent.core.fields import FIELDS, parse_field
from notifyagent.core.interval import next_tick
from notifyagent.core.policy import Policy
from notifyagent.core.schedule import Schedule, next_runs, schedule_from_arrays
from notifyagent.db.sql import fetch
from notifyagent.db.store import PgStore as Store
from notifyagent.errors import ConfigError


async def next_times(
    dsn: str,
    job: str | None,
    count: int,
    tz_name: str | None,
    fields: Mapping[str, str | None],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> int:
    """Print the next ``count`` runs of ``job``, or without a job of the inline schedule
    (``fields``, ``start``, ``end``; times without a zone are in ``tz_name``, default UTC)."""
    if job is None:
        tz = ZoneInfo(tz_name or "UTC")
        schedule = inline_schedule(fields, _in_zone(start, tz), _in_zone(end, tz))
        print(render(merge_runs([schedule], dt.datetime.now(dt.UTC), tz, count), tz))
        return 0
    if any(fields.values()) or start or end:
        raise ConfigError("give either JOB or an inline schedule (--minutes ...), not both")
    label, runs, tz = await job_runs(dsn, job, count, tz_name)
    print(label)
    print(render(runs, tz))
    return 0


def _in_zone(moment: dt.datetime | None, tz: ZoneInfo) -> dt.datetime | None:
    return moment.replace(tzinfo=moment.tzinfo or tz) if moment else None


def inline_schedule(
    fields: Mapping[str, str | None], start: dt.datetime | None, end: dt.datetime | None
) -> Schedule:
    line = fields.get("cron")
    if line is not None:
        given = [f"--{name}" for name in FIELDS if fields.get(name)]
        if given:
            raise ConfigError(f"give either --cron or {', '.join(given)}, not both")
        arrays = parse_cron(line)
    else:
        arrays = {name: parse_field(name, fields.get(name)) for name in FIELDS}
        if any("*" in (fields.get(name) or "") for name in FIELDS):
            arrays = every_minute_if_empty(arrays)
    return schedule_from_arrays(
        0,
        0,
        start or dt.datetime.now(dt.UTC),
        end,
        arrays["minutes"],
        arrays["hours"],
        arrays["weekdays"],
        arrays["monthdays"],
        arrays["months"],
    )


def render(runs: Sequence[dt.datetime], tz: ZoneInfo) -> str:
    if not runs:
        return "no run: the schedule never fires (ended, or nothing can match)"
    clock = "%H:%M:%S" if any(run.second for run in runs) else "%H:%M"
    lines = [f"{'#':>3}  {'local time (' + tz.key + ')':<34} UTC"]
    for n, run in enumerate(runs, 1):
        local = run.astimezone(tz)
        lines.append(
            f"{n:>3}  {local:%Y-%m-%d {clock} %a} {local.tzname() or '':<15} {run:%Y-%m-%d {clock}}"
        )
    return "\n".join(lines)


def merge_runs(
    schedules: Sequence[Schedule],
    now: dt.datetime,
    tz: ZoneInfo,
    count: int,
    every: dt.timedelta | None = None,
) -> list[dt.datetime]:
    """The next ``count`` runs of a job: the earliest over its enabled schedules and, with a
    sub-minute interval (policy ``every``), its ticks, as the agent runs them."""
    found = {r for s in schedules if s.enabled for r in next_runs(s, now, tz, count)}
    if every is not None:
        tick = now
        for _ in range(count):
            tick = next_tick(every, tick)
            found.add(tick)
    return sorted(found)[:count]


async def job_runs(
    dsn: str, job: str, count: int, tz_name: str | None
) -> tuple[str, list[dt.datetime], ZoneInfo]:
    """(job label, next runs, zone) of a job given by id or name, read from the database."""
    async with await db.connect(dsn, app="notifyagent next") as conn:
        jobid, name = await find_job(conn, job)
        if tz_name is None:
            (row,) = await fetch(conn, "timezone")
            tz_name = str(row["tz"])
    store = Store(dsn, max_size=1)
    await store.open()
    try:
        schedules = await store.schedules([jobid])
        policy = await _policy(store, jobid)
    finally:
        await store.close()
    tz = ZoneInfo(tz_name)
    every = policy.every if policy is not None else None
    runs = merge_runs(schedules, dt.datetime.now(dt.UTC), tz, count, every)
    return f"job {jobid} ({name})", runs, tz


async def _policy(store: Store, jobid: int) -> Policy | None:
    """The job's policy; None too before any agent installed its schema (no policies yet)."""
    try:
        return (await store.policies([jobid])).get(jobid)
    except psycopg.errors.UndefinedTable:
        return None
