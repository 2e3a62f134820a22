"""Jobs scheduled through pgAdmin for the next two minute boundaries, M0 and M1.

Schedules are minute-granular, so watching a job run "at the right time" costs up to a
minute of waiting. The tier pays it once: these jobs are made, in both stages, when the tier
starts (the ``timeline`` fixture), the other tests run while the clock moves on, and
``test_zz_timeline.py`` asserts at the end, after M1, what pgAdmin shows:

* ``repeat``: four steps (SQL, a failing SQL step on a Remote connection string with on
  error "success", a batch step with stdout, stderr and exit 3 with on error "ignore", SQL);
  Repeat minutes {M0, M1} and an exception at M0: one run, at M1;
* ``moved``: scheduled at M0, then its schedule edited in pgAdmin to M1: no run at M0, one at
  M1;
* ``disabled``: scheduled at M0 and M1, then disabled in pgAdmin: never runs.

M0 and M1 are in the same hour: pgAgent's minute search restarts from the wrong minute when
the hour advances (docs/schedule-semantics.md), which is not what these jobs test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.pgadmin import pga
from tests.pgadmin.pga import Stage

#: Time the set-up may take before M0 (a few dozen pgAdmin calls on a loaded machine).
LEAD = timedelta(seconds=20)
REPEAT_STEPS = ("a_count", "b_remote_fails", "c_batch", "d_insert")


def pg_time(text: str | None) -> datetime | None:
    """A timestamp as pgAdmin shows it (PostgreSQL's text, e.g. ``2026-12-09 03:00:00+00``)."""
    return datetime.fromisoformat(text) if text else None


@dataclass
class Timeline:
    m0: datetime
    m1: datetime
    #: kind -> role -> job id
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)
    #: kind -> what pgAdmin answered while the jobs were made and edited
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls, stages: dict[str, Stage]) -> Timeline:
        first = next(iter(stages.values()))
        zone, now = first.zone(), first.now()
        m0 = now.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        while m0 - now < LEAD or m0.minute == 59:
            m0 += timedelta(minutes=1)
        tl = cls(m0, m0 + timedelta(minutes=1))
        for kind, stage in stages.items():
            tl.jobs[kind], tl.seen[kind] = tl._make(stage, now - timedelta(days=1))
        late = first.now() - (m0 - timedelta(seconds=3))
        assert late < timedelta(0), f"the set-up ended {late} too close to M0 {m0}"
        return tl

    def _make(self, stage: Stage, start: datetime) -> tuple[dict[str, int], dict[str, Any]]:
        m0, m1, db = self.m0, self.m1, stage.db.name
        minutes, hour = (m0.minute, m1.minute), [m0.hour]
        steps = [
            pga.sql_step("a_count", "SELECT g FROM generate_series(1, 3) g", db),
            pga.sql_step("b_remote_fails", "SELECT 1/0", db, "s", stage.remote("tl_repeat")),
            pga.batch_step("c_batch", "echo out; echo err >&2; exit 3", db, "i"),
            pga.sql_step("d_insert", "INSERT INTO public.tick(label) VALUES ('repeat')", db),
        ]
        skip_m0 = [pga.exception(m0.date(), m0.time())]
        one = [pga.sql_step("only", "INSERT INTO public.tick(label) VALUES ('timeline')", db)]
        ids: dict[str, int] = {}
        seen: dict[str, Any] = {}
        twice = pga.schedule("m0_m1", start, minutes=minutes, hours=hour, exceptions=skip_m0)
        ids["repeat"] = stage.create_job(pga.job("tl_repeat", steps, [twice]))["_id"]
        seen["repeat_next"] = stage.job(ids["repeat"])["jobnextrun"]

        at_m0 = pga.schedule("at_m0", start, minutes=[m0.minute], hours=hour)
        ids["moved"] = stage.create_job(pga.job("tl_moved", one, [at_m0]))["_id"]
        props = stage.job(ids["moved"])
        seen["moved_before"] = props["jobnextrun"]
        jscid = props["jschedules"][0]["jscid"]
        seen["moved_node"] = stage.update_schedule(
            ids["moved"], jscid, {"jscname": "at_m1", "jscminutes": pga.flags(60, [m1.minute])}
        )
        seen["moved_after"] = stage.job(ids["moved"])["jobnextrun"]

        both = pga.schedule("m0_m1", start, minutes=minutes, hours=hour)
        ids["disabled"] = stage.create_job(pga.job("tl_disabled", one, [both]))["_id"]
        seen["disabled_before"] = stage.job(ids["disabled"])["jobnextrun"]
        seen["disabled_node"] = stage.update_job(ids["disabled"], {"jobenabled": False})
        seen["disabled_after"] = stage.job(ids["disabled"])["jobnextrun"]
        return ids, seen
