"""The agent computes next runs with its own engine and keeps ``jobnextrun`` truthful."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator

import psycopg
import pytest

from notifyagent.commands import next as next_command
from tests.agent import AgentProcess, joblogs, make_job, run_now, sql_step, tick_job, wait_finished
from tests.cli import run_cli
from tests.compat.pgadmin import PgAdminSession, files, parse, sql_dir
from tests.pg import Database, Server, wait_for

Factory = Callable[..., AgentProcess]


def engine_next(db: Database, job: int | str, timezone: str | None = None) -> dt.datetime | None:
    """What the engine says, computed in this process from the job's rows."""
    _, runs, _ = asyncio.run(next_command.job_runs(db.dsn, str(job), 1, timezone))
    return runs[0] if runs else None


def stored_next(db: Database, jobid: int) -> dt.datetime | None:
    value: dt.datetime | None = db.value(
        "SELECT CASE WHEN isfinite(jobnextrun) THEN jobnextrun END FROM pgagent.pga_job "
        "WHERE jobid = %s",
        (jobid,),
    )
    return value


def wait_truthful(db: Database, jobid: int, timezone: str | None = None) -> dt.datetime:
    """Wait until jobnextrun equals the engine's value; return it."""
    expected = engine_next(db, jobid, timezone)
    assert expected is not None
    wait_for(
        lambda: stored_next(db, jobid) == expected,
        10,
        what=f"jobnextrun of job {jobid} to become {expected}",
    )
    return expected


def bools(n: int, selected: set[int], base: int = 0) -> str:
    return "{" + ",".join("t" if i + base in selected else "f" for i in range(n)) + "}"


def add_schedule(db: Database, jobid: int, **arrays: str) -> None:
    cols = ", ".join(f"jsc{k}" for k in arrays)
    marks = ", ".join("%s::bool[]" for _ in arrays)
    db.execute(
        f"INSERT INTO pgagent.pga_schedule (jscjobid, jscname, {cols}) VALUES (%s, 's', {marks})",
        (jobid, *arrays.values()),
    )


@pytest.fixture
def appdb(pg_server: Server) -> Iterator[None]:
    pg_server.admin("DROP DATABASE IF EXISTS appdb WITH (FORCE)", "CREATE DATABASE appdb")
    yield
    pg_server.admin("DROP DATABASE IF EXISTS appdb WITH (FORCE)")


def test_pgadmin_create_edit_and_run_now(db: Database, appdb: None, agent: AgentProcess) -> None:
    directory = sql_dir()
    if directory is None:
        pytest.fail("pgAdmin's SQL files are missing (tests/compat/pgadmin-sql)")
    by_name = {p.name[:2]: p for p in files(directory)}
    session = PgAdminSession(db.dsn)
    try:
        for call in parse(by_name["02"]):
            if call.kind == "pgadmin":
                session.call(call)
        first = wait_truthful(db, 1)
        for n in ("03", "04", "07", "08", "09", "10"):
            for call in parse(by_name[n]):
                if call.kind == "pgadmin":
                    session.call(call)
        # leave only the schedule that 11 edits in charge (as unticking "Enabled" would)
        session.conn.execute("UPDATE pgagent.pga_schedule SET jscenabled = false WHERE jscid = 1")
        before = wait_truthful(db, 1)
        for call in parse(by_name["11"]):
            session.call(call)
        edited = wait_truthful(db, 1)
        assert edited not in (first, before)  # 11 moved the schedule to 03:15
        assert (edited.hour, edited.minute) == (3, 15)
        for call in parse(by_name["17"]):
            session.call(call)
    finally:
        session.close()
    wait_finished(db, 1)
    assert wait_truthful(db, 1) == edited  # Run now ran once, then the schedule resumed
    assert len(joblogs(db, 1)) == 1


def test_minute_restart_bug_is_corrected(db: Database, agent: AgentProcess) -> None:
    """minutes {0,45} at hour H computed before H: pgAgent gives H:45, the engine H:00."""
    jobid = tick_job(db, "restart-bug")
    now = db.value("SELECT now() AT TIME ZONE 'UTC'")
    hour = (now + dt.timedelta(hours=2)).hour
    add_schedule(db, jobid, minutes=bools(60, {0, 45}), hours=bools(24, {hour}))
    fixed = wait_truthful(db, jobid)
    assert (fixed.hour, fixed.minute) == (hour, 0)
    raw = db.value(
        "SELECT pgagent.pga_next_schedule(jscid, jscstart, jscend, jscminutes, jschours, "
        "jscweekdays, jscmonthdays, jscmonths) FROM pgagent.pga_schedule"
    )
    if 1 <= now.minute < 44:  # the bug needs a minute to restart from, below 45
        assert raw.minute == 45
    if raw != fixed:
        agent.wait_log("corrected the next run of 1 job(s)")


def test_31st_of_the_month_in_a_30_day_month(db: Database, agent_factory: Factory) -> None:
    """Saving works, the agent skips the missing day, and zombie cleanup is not blocked."""
    agent_factory("--liveness-interval", "0.5")
    jobid = tick_job(db, "31st")
    add_schedule(
        db,
        jobid,
        minutes=bools(60, {0}),
        hours=bools(24, {0}),
        monthdays=bools(32, {31}, base=1),
    )
    expected = wait_truthful(db, jobid)
    assert expected.day == 31
    # a dead agent holding that job: its cleanup recomputes the next run and must not fail
    db.execute("INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (999971, 'dead')")
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = now() - interval '1 s' WHERE jobid = %s", (jobid,)
    )
    db.execute("UPDATE pgagent.pga_job SET jobagentid = 999971 WHERE jobid = %s", (jobid,))
    wait_for(
        lambda: db.value("SELECT count(*) FROM pgagent.pga_jobagent WHERE jagpid = 999971") == 0,
        10,
        what="the dead agent cleaned up",
    )
    assert wait_truthful(db, jobid) == expected


def test_run_now_is_honoured_once_then_the_schedule_resumes(
    db: Database, agent: AgentProcess
) -> None:
    jobid = tick_job(db, "honoured")
    now = db.value("SELECT now() AT TIME ZONE 'UTC'")
    add_schedule(db, jobid, minutes=bools(60, {7}), hours=bools(24, {(now.hour + 3) % 24}))
    scheduled = wait_truthful(db, jobid)
    run_now(db, jobid)
    wait_finished(db, jobid)
    assert wait_truthful(db, jobid) == scheduled
    probe = tick_job(db, "probe")
    run_now(db, probe)
    wait_finished(db, probe)
    assert db.value("SELECT count(*) FROM public.tick WHERE label = 'honoured'") == 1


def test_values_saved_while_no_agent_ran_are_corrected_at_start(
    db: Database, agent_factory: Factory
) -> None:
    run_cli("install", "--dsn", db.dsn)
    jobid = tick_job(db, "offline")
    now = db.value("SELECT now() AT TIME ZONE 'UTC'")
    add_schedule(db, jobid, minutes=bools(60, {0, 45}), hours=bools(24, {(now.hour + 2) % 24}))
    agent_factory()
    fixed = wait_truthful(db, jobid)
    assert fixed.minute == 0


def test_disable_enable_recomputes_with_the_engine(db: Database, agent: AgentProcess) -> None:
    jobid = tick_job(db, "toggle")
    add_schedule(
        db, jobid, monthdays=bools(32, {31}, base=1), minutes=bools(60, {0}), hours=bools(24, {0})
    )
    expected = wait_truthful(db, jobid)
    db.execute("UPDATE pgagent.pga_job SET jobenabled = false WHERE jobid = %s", (jobid,))
    wait_for(lambda: stored_next(db, jobid) is None, 5)
    db.execute("UPDATE pgagent.pga_job SET jobenabled = true WHERE jobid = %s", (jobid,))
    assert wait_truthful(db, jobid) == expected


def test_timezone_option(db: Database, agent_factory: Factory) -> None:
    agent_factory("--timezone", "Asia/Kolkata")
    jobid = make_job(db, "kolkata", [sql_step("s", "SELECT 1")])
    add_schedule(db, jobid, minutes=bools(60, {0}), hours=bools(24, {9}))
    run_now(db, jobid)
    wait_finished(db, jobid)
    value = wait_truthful(db, jobid, timezone="Asia/Kolkata")
    assert (value.hour, value.minute) == (3, 30)  # 09:00 IST


def test_next_command(db: Database) -> None:
    jobid = make_job(db, "nightly", [sql_step("s", "SELECT 1")])
    add_schedule(db, jobid, minutes=bools(60, {30}), hours=bools(24, {2}))
    for ref in ("nightly", str(jobid)):
        r = run_cli("next", ref, "--count", "3", "--dsn", db.dsn)
        assert r.code == 0, r.err
        lines = r.out.splitlines()
        assert lines[0] == f"job {jobid} (nightly)"
        runs = lines[2:]
        assert len(runs) == 3
        assert all(" 02:30 " in line for line in runs)
    r = run_cli("next", "no-such-job", "--dsn", db.dsn)
    assert r.code == 2
    assert "no job with id or name 'no-such-job'" in r.err


def test_next_command_inline_schedule() -> None:
    r = run_cli(
        "next", "--minutes", "0", "--hours", "9", "--weekdays", "mon-fri",
        "--timezone", "Europe/Berlin", "--count", "7",
    )  # fmt: skip
    assert r.code == 0, r.err
    runs = r.out.splitlines()[1:]
    assert len(runs) == 7
    assert all(" 09:00 " in line for line in runs)
    assert not any(" Sat " in line or " Sun " in line for line in runs)
    bad = run_cli("next", "--hours", "8-25")
    assert bad.code == 2
    assert "hours: 25 is out of range 0-23" in bad.err


def test_run_now_while_running_runs_again_after(db: Database, agent: AgentProcess) -> None:
    """pgAgent loses it (its release writes NULL over it); notifyagent runs the job again."""
    jobid = make_job(
        db,
        "twice",
        [sql_step("s", "INSERT INTO public.tick(label) VALUES ('twice'); SELECT pg_sleep(1)")],
    )
    run_now(db, jobid)
    wait_for(
        lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1)'"),
        10,
        what="the first run's step to be running",
    )
    run_now(db, jobid)
    wait_finished(db, jobid, runs=2)
    assert [r["jlgstatus"] for r in joblogs(db, jobid)] == ["s", "s"]
    assert db.value("SELECT count(*) FROM public.tick") == 2
    agent.wait_log("Run now while it runs")


def test_run_now_right_after_a_schedule_edit_is_honoured(db: Database, agent: AgentProcess) -> None:
    """Both changes can reach the agent in one batch: the later one (Run now) wins."""
    jobid = tick_job(db, "edited")
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        add_schedule_sql = (
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
            "VALUES (%s, 's', %s::bool[], %s::bool[])"
        )
        hour = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)).hour
        conn.execute(add_schedule_sql, (jobid, bools(60, {0}), bools(24, {hour})))
        asked = conn.execute(
            "UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s "
            "RETURNING clock_timestamp()",
            (jobid,),
        ).fetchone()
    assert asked is not None
    logs = wait_finished(db, jobid, timeout=10)
    assert (logs[0]["jlgstart"] - asked[0]).total_seconds() < 5
    assert wait_truthful(db, jobid).hour == hour  # and then the schedule is back in charge
