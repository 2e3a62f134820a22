"""The soak's job mix (about a thousand jobs) and pgAdmin's statements that change it.

Every job's first step writes a row into public.soak_tick, so the checker sees from inside the
step when it ran. Schedules select minutes of the hour only (every hour, day and month), and
sub-minute jobs use the ``every`` policy: the due times stay simple arithmetic, computed in
tests/soak/check.py without the agent's schedule engine.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime

from tests.compat.pgadmin import Call, PgAdminSession, parse, sql_dir
from tests.pg import Conn
from tests.soak.model import JobModel

TICK = "INSERT INTO public.soak_tick (jobid) VALUES ({jobid})"
TICK_TABLE = (
    "CREATE TABLE public.soak_tick (id bigserial PRIMARY KEY, jobid int NOT NULL, "
    "ran_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
    "app text DEFAULT current_setting('application_name'))"
)
ALL_MINUTES = frozenset(range(60))
#: the jobs of the special kinds run every other minute, half of them on even minutes and half
#: on odd ones, so that each minute's herd stays about 200 jobs
HALVES = (frozenset(range(0, 60, 2)), frozenset(range(1, 60, 2)))
#: sub-minute intervals, all different: their jobs seldom fall due together
EVERY = (7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 9, 15, 21, 25, 27, 33, 39)


@dataclass
class Spec:
    """One job to create: its steps are (name, kind, code, onerror)."""

    kind: str
    minutes: frozenset[int] | None = None
    every: int | None = None
    station: str = ""
    steps: list[tuple[str, str, str, str]] = field(default_factory=list)
    policy: dict[str, str | int] = field(default_factory=dict)
    expect: str | None = "s"
    #: hours the schedule selects (None: all); a far hour makes a job that never falls due
    hour: int | None = None


def _tick() -> tuple[str, str, str, str]:
    return ("a tick", "s", TICK, "f")


def _then(code: str, onerror: str = "f", kind: str = "s") -> list[tuple[str, str, str, str]]:
    return [_tick(), ("b work", kind, code, onerror)]


def mix(n: int, stations: list[str], rng: random.Random, far_hour: int) -> list[Spec]:
    """About ``n`` jobs (the proportions of a thousand)."""

    def k(count: int) -> int:
        return max(1, round(count * n / 1000))

    def sparse() -> frozenset[int]:
        return frozenset(rng.sample(range(60), rng.randint(1, 3)))

    specs: list[Spec] = []
    specs += [Spec("minute", ALL_MINUTES, steps=[_tick()]) for _ in range(k(100))]
    specs += [Spec("sparse", sparse(), steps=[_tick()]) for _ in range(k(580))]
    specs += [Spec("never", sparse(), steps=[_tick()], hour=far_hour) for _ in range(k(40))]
    specs += [
        Spec("pinned", HALVES[i % 2], station=stations[i % len(stations)], steps=[_tick()])
        for i in range(k(45))
    ]
    specs += [
        Spec("batch", HALVES[i % 2], steps=[("a batch", "b", "echo soak $((6*7))", "f"), _tick()])
        for i in range(k(30))
    ]
    for i in range(k(20)):
        sleep = f"SELECT pg_sleep({rng.randint(65, 80)}) /* soak slow */"
        overlap = "skip" if i % 2 else "queue-one"
        specs.append(Spec("slow", ALL_MINUTES, steps=_then(sleep), policy={"overlap": overlap}))
    for i in range(k(30)):
        onerror = "fsi"[i % 3]
        specs.append(
            Spec(
                f"failing-{onerror}",
                HALVES[i % 2],
                steps=_then("SELECT 1/0", onerror),
                expect="f" if onerror == "f" else "s",
            )
        )
    specs += [
        Spec(
            "retry",
            HALVES[i % 2],
            steps=_then("SELECT 1/0"),
            expect="f",
            policy={"retries": 2, "retry_delay": "4 seconds"},
        )
        for i in range(k(20))
    ]
    specs += [
        Spec(
            "timeout",
            HALVES[i % 2],
            steps=_then("SELECT pg_sleep(30)"),
            expect="f",
            policy={"retries": 1, "retry_delay": "3 seconds", "job_timeout": "3 seconds"},
        )
        for i in range(k(10))
    ]
    specs += [
        Spec(
            "every",
            every=EVERY[i % len(EVERY)],
            steps=[_tick()],
            policy={"every": f"{EVERY[i % len(EVERY)]} seconds"},
        )
        for i in range(k(21))
    ]
    specs += [Spec("edited", frozenset(range(0, 60, 2)), steps=[_tick()]) for _ in range(k(40))]
    specs += [Spec("on-demand", steps=[_tick()]) for _ in range(k(60))]
    specs += [Spec("probe", station=s, steps=[_tick()]) for s in stations]
    return specs


def _bools(selected: set[int] | frozenset[int], size: int) -> str:
    return "{" + ",".join("t" if i in selected else "f" for i in range(size)) + "}"


def create(conn: Conn, dbname: str, specs: list[Spec]) -> dict[int, JobModel]:
    """Insert the jobs (one transaction) and return what the checker expects of each."""
    jobs: dict[int, JobModel] = {}
    with conn.transaction():
        for n, spec in enumerate(specs):
            jobid = int(
                conn.execute(
                    "INSERT INTO pgagent.pga_job (jobjclid, jobname, jobhostagent) "
                    "VALUES (1, %s, %s) RETURNING jobid",
                    (f"soak {spec.kind} {n}", spec.station),
                ).fetchone()["jobid"]  # type: ignore[index]
            )
            for name, kind, code, onerror in spec.steps:
                conn.execute(
                    "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, "
                    "jstdbname, jstonerror) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        jobid,
                        name,
                        kind,
                        code.format(jobid=jobid),
                        dbname if kind == "s" else "",
                        onerror,
                    ),
                )
            if spec.minutes is not None:
                hours = set(range(24)) if spec.hour is None else {spec.hour}
                conn.execute(
                    "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, "
                    "jscminutes, jschours, jscweekdays, jscmonthdays, jscmonths) "
                    "VALUES (%s, 'soak', now() - interval '1 day', %s, %s, %s, %s, %s)",
                    (
                        jobid,
                        _bools(spec.minutes, 60),
                        _bools(hours, 24),
                        _bools(set(range(7)), 7),
                        _bools(set(range(32)), 32),
                        _bools(set(range(12)), 12),
                    ),
                )
            if spec.policy:
                cols = ", ".join(spec.policy)
                marks = ", ".join(["%s"] * len(spec.policy))
                conn.execute(
                    f"INSERT INTO notifyagent.job_policy (jobid, {cols}) VALUES (%s, {marks})",
                    (jobid, *spec.policy.values()),
                )
            minutes = frozenset() if spec.hour is not None else spec.minutes
            jobs[jobid] = JobModel(
                jobid,
                spec.kind,
                spec.station,
                minutes,
                spec.every,
                int(spec.policy.get("retries", 0)),
                str(spec.policy.get("overlap", "skip")),
                spec.expect,
            )
    return jobs


class PgAdmin:
    """pgAdmin's own statements (tests/compat/pgadmin-sql) with other ids and values: "change
    schedule" (its Repeat arrays) and "Run now"."""

    def __init__(self) -> None:
        directory = sql_dir()
        if directory is None:
            raise RuntimeError("pgAdmin's SQL files (tests/compat/pgadmin-sql) are missing")
        self.change: list[Call] = parse(directory / "11_change_schedule.sql")
        self.run_now: Call = parse(directory / "17_run_now.sql")[0]

    def change_minutes(
        self, session: PgAdminSession, jobid: int, jscid: int, minutes: frozenset[int]
    ) -> None:
        for call in self.change:
            sql = re.sub(r"jscid ?= ?2::integer", f"jscid={jscid}::integer", call.sql)
            sql = re.sub(r"jscjobid ?= ?1::integer", f"jscjobid={jobid}::integer", sql)
            sql = re.sub(r"jscminutes='\{[tf,]+\}'", f"jscminutes='{_bools(minutes, 60)}'", sql)
            sql = re.sub(r"jschours='\{[tf,]+\}'", f"jschours='{_bools(set(range(24)), 24)}'", sql)
            session.call(Call(call.file, call.kind, call.number, call.label, sql))

    def request_run(self, session: PgAdminSession, jobid: int) -> None:
        sql = self.run_now.sql.replace("WHERE jobid=1::integer", f"WHERE jobid={jobid}::integer")
        session.call(Call(self.run_now.file, "pgadmin", 1, "run now", sql))


def server_now(session: PgAdminSession) -> datetime:
    row = session.conn.execute("SELECT now() AS now").fetchone()
    assert row is not None
    return row["now"]  # type: ignore[no-any-return]
