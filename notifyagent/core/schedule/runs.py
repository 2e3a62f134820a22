"""The entry points: a schedule's next run(s) and a job's next run, bounded by start and end.

Results of the unbounded search are memoised per (compiled spec, lower bound, zone) and so
shared by identical schedules: a whole job table computed at one instant costs about one
search per distinct schedule.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Final
from zoneinfo import ZoneInfo

from notifyagent.core.schedule import memo
from notifyagent.core.schedule.dst import first_run, offset_at, to_wall
from notifyagent.core.schedule.model import Schedule, truncate_minute
from notifyagent.core.schedule.spec import Spec

_ONE_MINUTE: Final = datetime.timedelta(minutes=1)

_RESULTS: dict[tuple[Spec, datetime.datetime, ZoneInfo], datetime.datetime | None] = memo.table()
#: instant -> its lower bound (see _lower_bound)
_LOWER: dict[datetime.datetime, datetime.datetime] = memo.table()


def clear_cache() -> None:
    """Forget memoised results and compiled specs (benchmarks and tests measure cold caches)."""
    memo.clear_all()


def next_run(schedule: Schedule, now: datetime.datetime, tz: ZoneInfo) -> datetime.datetime | None:
    """Next run of ``schedule`` after ``now`` in UTC, or None if it never runs again.

    ``schedule.enabled`` is not consulted (like ``pga_next_schedule``); see job_next_run.
    """
    return _run_after(schedule, _lower_bound(now), tz, shared=True)


def job_next_run(
    schedules: Iterable[Schedule], now: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    """A job's next run: the earliest next run of its enabled schedules, None if there is none.

    This is the value pgAgent's job trigger stores in ``pga_job.jobnextrun``.
    """
    lower = _lower_bound(now)
    best: datetime.datetime | None = None
    for schedule in schedules:
        if not schedule.enabled:
            continue
        run = _run_after(schedule, lower, tz, shared=True)
        if run is not None and (best is None or run < best):
            best = run
    return best


def next_runs(
    schedule: Schedule, now: datetime.datetime, tz: ZoneInfo, count: int
) -> list[datetime.datetime]:
    """The next ``count`` runs after ``now`` (fewer if the schedule ends), in UTC.

    Each run is computed from the previous one exactly as the agent would after that run
    finished within its minute. Results are not memoised, to keep the shared cache for jobs.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    runs: list[datetime.datetime] = []
    lower = _lower_bound(now)
    while len(runs) < count:
        run = _run_after(schedule, lower, tz, shared=False)
        if run is None:
            break
        runs.append(run)
        lower = run + _ONE_MINUTE
    return runs


def _lower_bound(now: datetime.datetime) -> datetime.datetime:
    """The first minute a run may use: the UTC minute after the one containing ``now``.

    Memoised: a refresh asks for every job at the same instant."""
    try:
        return _LOWER[now]
    except (KeyError, TypeError):  # TypeError: unhashable, let the check below name it
        pass
    if not isinstance(now, datetime.datetime) or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    return memo.remember(_LOWER, now, truncate_minute(now) + _ONE_MINUTE, memo.SPEC_TABLE_SIZE)


def _once_run(
    schedule: Schedule, lower: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    """Run time of a schedule with nothing selected: its start minute, if still ahead.

    pgAgent runs such a schedule every two minutes (issue #37); here it means "run once".
    """
    spec, start, _ = schedule.plan
    if start < lower:
        return None
    if spec.any_exception and spec.excluded(to_wall(start, offset_at(start, tz))):
        return None
    return start


def _run_after(
    schedule: Schedule, lower: datetime.datetime, tz: ZoneInfo, shared: bool
) -> datetime.datetime | None:
    """Next run at or after the UTC minute ``lower``, within the schedule's start and end.

    The unbounded search depends only on the compiled spec, the effective lower bound and the
    zone, so its result is memoised (``shared``) under exactly that key for identical schedules;
    the end bound is applied afterwards (the first run is past ``end`` or it is the answer).
    """
    spec, start, end = schedule.plan
    if spec.once:
        run = _once_run(schedule, lower, tz)
    else:
        effective = start if start > lower else lower
        if shared:
            key = (spec, effective, tz)
            try:
                run = _RESULTS[key]
            except KeyError:
                run = memo.remember(
                    _RESULTS, key, first_run(spec, effective, tz), memo.RESULT_TABLE_SIZE
                )
        else:
            run = first_run(spec, effective, tz)
    if run is None or (end is not None and run > end):
        return None
    return run
