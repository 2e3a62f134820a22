"""Scheduled runs, as pgAdmin shows them, after the timeline's two minute boundaries.

The jobs were made through pgAdmin when the tier started (``tests/pgadmin/timeline.py``);
this module runs last, so most of the wait for M1 is already over.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.pgadmin.pga import Rows, Stage
from tests.pgadmin.timeline import REPEAT_STEPS, Timeline, pg_time

#: A scheduled run starts this soon after its minute: pgAgent polls every second,
#: notifyagent starts within milliseconds; the rest is room for a loaded machine.
GRACE = timedelta(seconds=20)
#: What each step of ``tl_repeat`` shows in its Statistics tab: status, result, output.
REPEAT_OUTCOME = {
    "a_count": ("s", 3, ""),
    "b_remote_fails": ("s", -1, "ERROR:  division by zero"),
    "c_batch": ("i", 3, "out\n\nScript Error: \nerr\n\n"),
    "d_insert": ("s", 1, ""),
}


def interval(text: str) -> timedelta:
    """An interval as pgAdmin shows it (``00:00:00.024167``)."""
    hours, minutes, seconds = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def started(row: dict[str, object]) -> datetime:
    start = pg_time(str(row["Start time"]))
    assert start is not None
    return start


def wait_for_m1(stage: Stage, timeline: Timeline, jid: int) -> Rows:
    left = (timeline.m1 + GRACE - datetime.now(timeline.m1.tzinfo)).total_seconds()
    return stage.wait_runs(jid, 1, timeout=max(left, 0) + 30)


@pytest.mark.timeout(300)
def test_scheduled_runs_at_the_right_times(stage: Stage, timeline: Timeline) -> None:
    """The next runs pgAdmin showed while the jobs were made, then one run of each at M1 and
    none at M0 (an exception; an edited schedule) or ever (a disabled job)."""
    ids, seen = timeline.jobs[stage.kind], timeline.seen[stage.kind]
    m0, m1 = timeline.m0, timeline.m1
    assert pg_time(seen["repeat_next"]) == m1  # the exception skips M0
    assert pg_time(seen["moved_before"]) == m0
    assert seen["moved_node"]["label"] == "at_m1"
    assert pg_time(seen["moved_after"]) == m1
    assert pg_time(seen["disabled_before"]) == m0
    assert seen["disabled_node"]["icon"] == "icon-pga_job-disabled"
    assert seen["disabled_after"] is None

    for role in ("repeat", "moved"):
        (run,) = wait_for_m1(stage, timeline, ids[role])
        assert m1 <= started(run) < m1 + GRACE, (role, run)
        assert run["Status"] == "s", (role, run)
        assert pg_time(run["End time"]) == started(run) + interval(run["Duration"])
    assert stage.job_stats(ids["disabled"]) == []
    assert stage.job(ids["disabled"])["jlgstatus"] is None

    # the step Statistics tabs of the four-step job, and its Properties after the run
    props = stage.job(ids["repeat"])
    (run,) = stage.job_stats(ids["repeat"])
    end = pg_time(run["End time"])
    assert end is not None
    assert [s["jstname"] for s in props["jsteps"]] == list(REPEAT_STEPS)
    shown = {}
    for step in props["jsteps"]:
        (row,) = stage.step_stats(ids["repeat"], step["jstid"])
        assert started(run) <= started(row) <= end
        shown[step["jstname"]] = (row["Status"], row["Result"], row["Output"])
    assert shown == REPEAT_OUTCOME
    assert props["jlgstatus"] == "s"
    last = pg_time(props["joblastrun"])
    assert last is not None
    assert m1 <= last <= started(run)
    assert pg_time(props["jobnextrun"]) == m0 + timedelta(days=1)
    # no run of any timeline job is still going or stuck
    assert stage.db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r' "
                          "AND jlgjobid = ANY(%s)", (list(ids.values()),)) == 0  # fmt: skip
