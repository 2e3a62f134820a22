"""PgStore on the test server: the agent's sessions run without JIT, their pids are the agent's
own only while they are open, and the schedules of many jobs come back as the engine's
Schedules, shared shapes and all."""

from __future__ import annotations

import asyncio
import datetime as dt

from loguru import logger

from notifyagent.core.schedule import Schedule, ScheduleException
from notifyagent.db.store import PgStore
from tests.pg import Database, wait_for


def read_schedules(db: Database) -> list[Schedule]:
    """Every schedule, as a fresh PgStore reads them."""

    async def main() -> list[Schedule]:
        store = PgStore(db.dsn, max_size=2)
        await store.open()
        try:
            return list(await store.schedules(None))
        finally:
            await store.close()

    return asyncio.run(main())


def test_a_closed_connections_pid_is_no_longer_ours(db: Database) -> None:
    """The server gives a closed session's pid to later ones: a Run now written by such a
    session would pass for the agent's own write and be ignored."""

    async def main() -> tuple[bool, bool]:
        store = PgStore(db.dsn, max_size=2)
        await store.open()
        try:
            async with store.pool.connection() as conn:
                pid = conn.info.backend_pid
                while_open = pid in store.pids
            db.execute("SELECT pg_terminate_backend(%s)", (pid,))
            wait_for(
                lambda: not db.value("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)),
                10,
                what="the session to end",
            )
            await store.check()  # the pool drops the dead connection and opens another
            return while_open, pid in store.pids
        finally:
            await store.close()

    assert asyncio.run(main()) == (True, False)


FLAGS = "(SELECT array_agg(i = {} ORDER BY i) FROM generate_series(0, {}) i)"


def test_the_agents_sessions_run_without_jit(db: Database) -> None:
    """The planner JIT-compiles a read of every job's annotations (0.13 s for 20 ms of work)."""
    db.execute(f'ALTER DATABASE "{db.name}" SET jit = on')

    async def main() -> list[str]:
        store = PgStore(db.dsn, max_size=2)
        await store.open()
        try:
            found = []
            for pool in (store.pool, store.scheduler):
                async with pool.connection() as conn:
                    row = await (await conn.execute("SHOW jit")).fetchone()
                    assert row is not None
                    found.append(row["jit"])
            return found
        finally:
            await store.close()

    assert asyncio.run(main()) == ["off", "off"]


def test_many_schedules_share_shapes_and_keep_their_own_bounds(db: Database) -> None:
    jobs = [
        db.value(
            "INSERT INTO pgagent.pga_job (jobjclid, jobname) VALUES (1, %s) RETURNING jobid",
            (f"j{n}",),
        )
        for n in range(6)
    ]
    start = dt.datetime(2030, 1, 1, 8, 30, 15, tzinfo=dt.UTC)
    for n, job in enumerate(jobs):
        db.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscend, jscenabled, "
            f"jscminutes, jschours) VALUES (%s, 's', %s, %s, %s, {FLAGS.format(n % 2, 59)}, "
            f"{FLAGS.format(3, 23)})",
            (job, start + dt.timedelta(days=n // 3), None if n < 4 else start, n != 1),
        )
    scid = db.value("SELECT jscid FROM pgagent.pga_schedule WHERE jscjobid = %s", (jobs[5],))
    db.execute(
        "INSERT INTO pgagent.pga_exception (jexscid, jexdate, jextime) VALUES (%s, NULL, '03:01')",
        (scid,),
    )

    found = {s.job_id: s for s in read_schedules(db)}
    assert sorted(found) == sorted(jobs)
    for n, job in enumerate(jobs):
        s = found[job]
        assert s.minutes == tuple(i == n % 2 for i in range(60))
        assert s.hours == tuple(i == 3 for i in range(24))
        assert s.start == start + dt.timedelta(days=n // 3)
        assert s.end == (None if n < 4 else start)
        assert s.enabled is (n != 1)
    assert found[jobs[5]].exceptions == (ScheduleException(None, dt.time(3, 1)),)
    assert found[jobs[4]].exceptions == ()
    assert found[jobs[2]].plan is found[jobs[0]].plan  # same shape and bounds
    assert found[jobs[3]].plan is not found[jobs[1]].plan  # another start


def test_an_exception_python_cannot_read_skips_its_schedule_with_an_error(db: Database) -> None:
    """PostgreSQL accepts 'infinity' dates and 24:00 times; the schedule is reported and
    ignored, and the other schedules load."""
    jobs = []
    for n, (jexdate, jextime) in enumerate([("infinity", None), (None, "24:00"), (None, None)]):
        job = db.value(
            "INSERT INTO pgagent.pga_job (jobjclid, jobname) VALUES (1, %s) RETURNING jobid",
            (f"x{n}",),
        )
        scid = db.value(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname) VALUES (%s, 's') RETURNING jscid",
            (job,),
        )
        if jexdate or jextime:
            db.execute(
                "INSERT INTO pgagent.pga_exception (jexscid, jexdate, jextime) VALUES (%s, %s, %s)",
                (scid, jexdate, jextime),
            )
        jobs.append(job)

    logged: list[str] = []
    sink = logger.add(logged.append, level="ERROR", format="{message}")
    try:
        assert [s.job_id for s in read_schedules(db)] == [jobs[2]]
    finally:
        logger.remove(sink)
    errors = [m for m in logged if "invalid and ignored" in m]
    assert len(errors) == 2
    assert "date infinity" in errors[0]
    assert "time 24:00:00" in errors[1]
