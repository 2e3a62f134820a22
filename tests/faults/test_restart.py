"""The server goes away under the agent (restart, outage) or is not there when it starts.

These tests stop and start PostgreSQL, so they use a private cluster (``private_db``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.agent import (
    batch_step,
    joblogs,
    make_job,
    run_now,
    sql_step,
    steplogs,
    tick_job,
    wait_finished,
)
from tests.faults.conftest import AgentStarter, Measure, PrivateServer, log_lines, log_times
from tests.pg import Database, wait_for

pytestmark = pytest.mark.slow

EVERY_MINUTE = (
    "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
    "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))"
)
#: Seconds the server stays down in the outage test.
OUTAGE = 8.0
#: Seconds the server stays down after the agent's first attempt in the start-up test.
DOWN_AT_START = 7.0


def _agent_pid(db: Database) -> int | None:
    rows = db.rows("SELECT jagpid FROM pgagent.pga_jobagent")
    return int(rows[0]["jagpid"]) if len(rows) == 1 else None


def _no_open_rows(db: Database) -> bool:
    return bool(
        db.value(
            "SELECT (SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r') + "
            "(SELECT count(*) FROM pgagent.pga_jobsteplog WHERE jslstatus = 'r') + "
            "(SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL)"
        )
        == 0
    )


def _released(db: Database, jobid: int) -> None:
    """Wait for ``jobid`` to be released (also when its release raced the re-registration,
    see test_listener.py::test_release_that_waits_across_a_listener_reconnect)."""
    wait_for(
        lambda: db.value(
            "SELECT jobagentid IS NULL FROM pgagent.pga_job WHERE jobid = %s", (jobid,)
        ),
        10,
        what=f"job {jobid} released",
    )


def test_fast_restart_while_a_job_runs(
    private_server: PrivateServer, private_db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """``pg_ctl restart -m fast`` kills the running step's session: the step and run end 'f'
    with the server's reason (not 'r' for ever), the job is released; the agent is back within
    2 s of the server accepting connections, under a new pid, with one agent row, and runs jobs
    again."""
    db = private_db
    agent = agents(db.dsn, "--liveness-interval", "1")
    old_pid = _agent_pid(db)
    long = make_job(db, "long", [sql_step("sleep", "SELECT pg_sleep(60)")])
    run_now(db, long)
    wait_for(
        lambda: db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
        ),
        10,
        what="the step to run",
    )
    private_server.own.restart("fast")
    accepting = time.monotonic()
    new_pid = wait_for(
        lambda: (p := _agent_pid(db)) != old_pid and p, 10, interval=0.01, what="re-registration"
    )
    reconnect = time.monotonic() - accepting
    measure("reconnect after pg_ctl restart -m fast", reconnect, "s")
    assert reconnect < 2.0, reconnect
    assert new_pid != old_pid

    # the step's session was terminated: the step fails with the server's reason, written once
    # the agent's bookkeeping reaches the server again; nothing is left 'r'
    wait_for(
        lambda: joblogs(db, long)[0]["jlgstatus"] != "r", 15, what="the interrupted run to end"
    )
    assert [r["jlgstatus"] for r in joblogs(db, long)] == ["f"]
    (step,) = steplogs(db, long)
    assert step["jslstatus"] == "f"
    assert "terminating connection due to administrator command" in step["jsloutput"]
    _released(db, long)
    wait_for(lambda: _no_open_rows(db), 10, what="no run, step or claim left open")
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1

    # and service goes on
    probe = tick_job(db, "after-restart")
    run_now(db, probe)
    assert [r["jlgstatus"] for r in wait_finished(db, probe)] == ["s"]
    agent.wait_log("lost the LISTEN connection")
    agent.wait_log("reconnected to the database")
    assert len(log_lines(agent, "database unreachable")) <= 1


def _hidden_overdue_job(db: Database, name: str) -> int:
    """A tick job with an every-minute schedule whose next run was ten minutes ago, written
    with the triggers off: the agent is not told, so it can learn of the job only from the
    reload after a reconnect (it cannot run it before)."""
    with psycopg.connect(db.dsn) as conn:
        conn.execute("SET session_replication_role = replica")
        row = conn.execute(
            "INSERT INTO pgagent.pga_job (jobjclid, jobname, jobnextrun) "
            "VALUES (1, %s, date_trunc('minute', now()) - interval '10 min') RETURNING jobid",
            (name,),
        ).fetchone()
        assert row is not None
        jobid = int(row[0])
        conn.execute(
            "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
            "VALUES (%s, 'step', 's', %s, current_database())",
            (jobid, f"INSERT INTO public.tick(label) VALUES ('{name}')"),
        )
        conn.execute(EVERY_MINUTE, (jobid,))
    return jobid


def _next_boundary(t: datetime) -> datetime:
    """The first minute boundary after ``t``: an every-minute schedule's next occurrence."""
    return t.replace(second=0, microsecond=0) + timedelta(minutes=1)


def test_outage_catch_up_runs_each_missed_job_once(
    private_server: PrivateServer, private_db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """Server down for 8 s while jobs fall due: within 2 s of the server accepting connections
    the agent is back and has run every due job exactly once (pgAgent's catch-up: one run,
    however many occurrences were missed), then the schedules resume; nothing is left 'r'.
    A run before the outage (a minute boundary passed during the set-up) is not a catch-up
    run: only runs that started after the server was restarted count."""
    db = private_db
    cluster = private_server.own
    agent = agents(db.dsn, "--liveness-interval", "1")
    old_pid = _agent_pid(db)
    due_in_outage = [tick_job(db, f"due-{i}") for i in range(3)]
    for j in due_in_outage:
        db.execute(EVERY_MINUTE, (j,))
    for j in due_in_outage:  # the schedules are in the queue before the next runs change (BUG-9)
        agent.wait_log(f"queue: job {j} due at")
    overdue = _hidden_overdue_job(db, "overdue")  # ten occurrences missed
    jobs = [*due_in_outage, overdue]
    due = db.value(
        "UPDATE pgagent.pga_job SET jobnextrun = clock_timestamp() + interval '3 s' "
        "WHERE jobid = ANY(%s) RETURNING clock_timestamp() + interval '3 s'",
        (due_in_outage,),
    )
    agent.wait_log(f"queue: job {due_in_outage[-1]} due at {due:%Y-%m-%d %H:%M:%S}")
    cluster.stop("fast")
    down = datetime.now(UTC)
    stopped = time.monotonic()
    assert down < due, "set-up: the server stopped only after the jobs fell due"
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))  # the outage itself
    cluster.start()
    up = datetime.now(UTC)
    accepting = datetime.now()
    restarted = db.value("SELECT pg_postmaster_start_time()")
    new_pid = wait_for(
        lambda: (p := _agent_pid(db)) != old_pid and p, 30, interval=0.01, what="re-registration"
    )
    assert new_pid

    def catch_up_runs() -> dict[int, dict[str, Any]] | None:
        """The first finished run of each job since the server went down."""
        first = {}
        for j in jobs:
            after = [r for r in joblogs(db, j) if r["jlgstart"] > down]
            if not after or after[0]["jlgstatus"] == "r":
                return None
            first[j] = after[0]
        return first

    catch_up = wait_for(catch_up_runs, 30, what="a catch-up run of every job")
    reconnected = log_times(agent, "reconnected to the database")[-1]
    first_run = min(r["jlgstart"] for r in catch_up.values())
    last_run = max(r["jlgstart"] for r in catch_up.values())
    measure(
        f"listener back after a {OUTAGE:.0f} s outage", (reconnected - accepting).total_seconds()
    )
    measure(f"first catch-up run after a {OUTAGE:.0f} s outage", (first_run - up).total_seconds())
    measure(f"last catch-up run after a {OUTAGE:.0f} s outage", (last_run - up).total_seconds())

    # one run each after the outage, then the schedule resumes: the next run is a minute
    # boundary after the catch-up run, not another catch-up (a boundary may legitimately pass
    # meanwhile and run the job again; a boundary before the outage may have run it already)
    wait_for(lambda: _no_open_rows(db), 10, what="no run, step or claim left open")
    nxt = {
        r["jobid"]: r["jobnextrun"]
        for r in db.rows("SELECT jobid, jobnextrun FROM pgagent.pga_job ORDER BY jobid")
    }
    total = 0
    for j in jobs:
        runs = joblogs(db, j)
        total += len(runs)
        before = [r for r in runs if r["jlgstart"] < down]
        after = [r for r in runs if r["jlgstart"] > down]
        assert before + after == runs, runs
        assert [r["jlgstatus"] for r in runs] == ["s"] * len(runs), runs
        catch = catch_up[j]
        assert after[0] == catch
        assert catch["jlgstart"] > restarted, (catch, restarted)
        boundary = _next_boundary(catch["jlgstart"])
        assert [r for r in after if r["jlgstart"] < boundary] == [catch], runs
        assert nxt[j] is not None
        assert nxt[j] >= boundary, (j, nxt[j], catch)
        assert (nxt[j].second, nxt[j].microsecond) == (0, 0), nxt[j]
    assert joblogs(db, overdue)[0] == catch_up[overdue]  # the agent could not run it before
    assert db.value("SELECT count(*) FROM public.tick") == total
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1
    assert len(log_lines(agent, "database unreachable")) == 1  # once per outage, not per attempt
    assert (reconnected - accepting).total_seconds() < 2.0, reconnected - accepting
    assert (first_run - up).total_seconds() < 2.0, first_run - up
    assert (last_run - up).total_seconds() < 2.5, last_run - up


def test_server_down_at_start_up(
    private_server: PrivateServer, private_db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """The agent starts before the server: it waits and retries with backoff, says so once
    (not once per attempt), then starts normally and runs the due job once, within about 2 s
    of the server accepting connections: the retry delay doubles from 0.1 s but only up to
    1 s (RECONNECT_BACKOFF_MAX)."""
    db = private_db
    cluster = private_server.own
    job = tick_job(db, "first")
    run_now(db, job)  # due before the agent is even there
    cluster.stop("fast")
    agent = agents(db.dsn, wait=False)
    agent.wait_log("database unreachable, retrying with backoff")
    first_attempt = time.monotonic()
    # down long enough for the delay to reach its cap; a delay that kept doubling (0.1, 0.2,
    # ..., 3.2, 6.4 s: attempts at 6.3 and 12.7 s) would keep the agent away for seconds
    time.sleep(max(0.0, DOWN_AT_START - (time.monotonic() - first_attempt)))
    assert agent.proc is not None
    assert agent.proc.poll() is None
    cluster.start()
    up = datetime.now(UTC)
    accepting = datetime.now()
    restarted = db.value("SELECT pg_postmaster_start_time()")
    agent.wait_log("queue loaded", timeout=20)
    logs = wait_finished(db, job)
    registered = log_times(agent, "registered as agent")[0]
    ran = (logs[0]["jlgstart"] - up).total_seconds()
    measure(
        "start-up: registered after the server came up", (registered - accepting).total_seconds()
    )
    measure("start-up: the due job started after the server came up", ran)
    assert [r["jlgstatus"] for r in logs] == ["s"]
    assert logs[0]["jlgstart"] > restarted
    assert db.value("SELECT count(*) FROM public.tick") == 1
    lines = agent.log().splitlines()
    assert len(log_lines(agent, "database unreachable")) == 1, lines
    # nothing else is said per attempt either
    assert not [line for line in lines if "WARNING" in line and "unreachable" not in line], lines
    assert (registered - accepting).total_seconds() < 1.5, registered - accepting
    assert ran < 2.0, ran


def test_outage_during_a_run_is_logged_once_per_state_change(
    private_server: PrivateServer, private_db: Database, agents: AgentStarter
) -> None:
    """A batch step ends while the server is down: its rows wait for the server (the run is
    not lost: it ends 's' once the server is back) and the agent says what happened once per
    state change (lost, unreachable, back), not once per retry."""
    db = private_db
    cluster = private_server.own
    agent = agents(db.dsn, "--liveness-interval", "1")
    jobid = make_job(db, "ends-in-outage", [batch_step("sleep", "sleep 1")])
    run_now(db, jobid)
    wait_for(lambda: steplogs(db, jobid), 10, what="the step to start")
    cluster.stop("fast")
    time.sleep(5)  # the step ends meanwhile; its rows wait for the server
    cluster.start()
    wait_finished(db, jobid, timeout=30)
    lines = agent.log().splitlines()
    start = next(i for i, line in enumerate(lines) if "(ends-in-outage) starts" in line)
    noisy = [line for line in lines[start:] if " WARNING " in line or " ERROR " in line]
    assert len(log_lines(agent, "database unreachable")) == 1
    assert len([line for line in noisy if "release failed" in line]) <= 1, noisy
    assert not [line for line in noisy if "in 'notifyagent'" in line or "discarding" in line], noisy
    assert len(noisy) <= 4, noisy
    assert [r["jlgstatus"] for r in joblogs(db, jobid)] == ["s"]
    assert [s["jslstatus"] for s in steplogs(db, jobid)] == ["s"]
