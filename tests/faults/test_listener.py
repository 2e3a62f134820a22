"""The LISTEN connection (the agent's identity) is killed while the server stays up.

tests/integration/test_serve.py::test_listener_killed_reconnects_and_resyncs covers the plain
kill; here the gap is held open (a lock on pga_jobagent keeps the new connection from
registering) so that jobs really fall due, and are made due, while nobody listens.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import cast

import psycopg

from tests.agent import joblogs, make_job, run_now, sql_step, tick_job, wait_finished
from tests.faults.conftest import AgentStarter, Measure, log_lines
from tests.pg import Database, wait_for


def _agent_pid(db: Database) -> int:
    return int(db.value("SELECT jagpid FROM pgagent.pga_jobagent"))


def _waiting_on_lock(db: Database, text: str) -> bool:
    return bool(
        db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            (f"%{text}%",),
        )
    )


def test_jobs_due_while_the_listener_is_away(
    db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """A job that falls due and a job made due (Run now) while the listener is gone both run
    once, right after it is back; the agent keeps one row in pga_jobagent."""
    agent = agents(db.dsn, "--liveness-interval", "1")
    old = _agent_pid(db)
    queued = tick_job(db, "queued")
    made_due = tick_job(db, "made-due")
    due = db.value(
        "UPDATE pgagent.pga_job SET jobnextrun = clock_timestamp() + interval '1 s' "
        "WHERE jobid = %s RETURNING jobnextrun",
        (queued,),
    )
    agent.wait_log(f"queue: job {queued} due at")
    with psycopg.connect(db.dsn) as blocker:
        # the reconnecting listener waits on this lock when it registers
        blocker.execute("LOCK TABLE pgagent.pga_jobagent IN ACCESS EXCLUSIVE MODE")
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        agent.wait_log("lost the LISTEN connection")
        run_now(db, made_due)  # its notification goes nowhere
        wait_for(
            lambda: _waiting_on_lock(db, "pga_jobagent") and db.value("SELECT now() > %s", (due,)),
            10,
            what="the listener blocked in registration and the queued job due",
        )
        time.sleep(0.5)  # the gap: both jobs are due and nobody may run them
        assert joblogs(db, queued) == []
        assert joblogs(db, made_due) == []
        back = time.monotonic()
        blocker.commit()
    for j in (queued, made_due):
        wait_finished(db, j)
    ran = time.monotonic() - back
    measure("listener gap: due jobs done after the listener is back", ran)
    assert ran < 2.0, ran
    for j in (queued, made_due):
        assert [r["jlgstatus"] for r in joblogs(db, j)] == ["s"]
    assert db.value("SELECT count(*) FROM public.tick") == 2
    rows = db.rows("SELECT jagpid FROM pgagent.pga_jobagent")
    assert len(rows) == 1
    assert rows[0]["jagpid"] != old
    assert log_lines(agent, "resynced")


def test_release_that_waits_across_a_listener_reconnect(db: Database, agents: AgentStarter) -> None:
    """The run ends while the listener is being replaced and the release statement is held up
    (here by a lock; in production by the pool reconnecting after an outage) until after the
    claim moved to the new agent id: the job must still be released."""
    agent = agents(db.dsn)
    old = _agent_pid(db)
    jobid = make_job(db, "releasing", [sql_step("s", "SELECT pg_sleep(1)")])
    run_now(db, jobid)
    wait_for(
        lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sl%'"),
        10,
        what="the step to run",
    )
    with psycopg.connect(db.dsn) as blocker:
        # of the agent's statements only the release writes pga_joblog while the step runs
        blocker.execute("LOCK TABLE pgagent.pga_joblog IN SHARE MODE")
        wait_for(lambda: _waiting_on_lock(db, "pga_joblog"), 10, what="the release to wait")
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        agent.wait_log("1 running claim(s) moved")
        blocker.commit()
    logs = wait_finished(db, jobid, timeout=10)
    assert [r["jlgstatus"] for r in logs] == ["s"]
    assert db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL") == 0


def _run_now_committed_at(db: Database, jobid: int) -> datetime:
    """Run now (``jobnextrun = now()``, as pgAdmin writes it); returns the server's clock read
    in the committing transaction, just before the commit that sends the notification."""
    with psycopg.connect(db.dsn) as conn:
        conn.execute("UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s", (jobid,))
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        conn.commit()
    return cast(datetime, row[0])


def _first_start(db: Database, jobid: int) -> datetime | None:
    return cast(
        "datetime | None",
        db.value("SELECT min(jlgstart) FROM pgagent.pga_joblog WHERE jlgjobid = %s", (jobid,)),
    )


def test_run_now_right_after_a_schedule_change_is_not_lost(
    db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """A schedule change, then at once a Run now (a script, or pgAdmin's two dialogs quickly):
    the agent may read the row after both, but it must still run the job now. The lock on
    pga_exception holds the agent's schedule read until the Run now has committed, which
    happens by chance within ~2 ms (a 0-7 ms gap lost 8 Run nows of 40 here). The schedule
    first fires hours ahead, so only the Run now can make the job run: a lost Run now is
    corrected to the schedule's time and the job does not start."""
    agent = agents(db.dsn)
    jobid = tick_job(db, "edited")
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscminutes) "
        "VALUES (%s, 'every minute, from 3 hours on', now() + interval '3 hours', "
        "array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    agent.wait_log(f"queue: job {jobid} due at")
    with psycopg.connect(db.dsn) as blocker:
        blocker.execute("LOCK TABLE pgagent.pga_exception IN ACCESS EXCLUSIVE MODE")
        # what the schedule triggers send when a schedule is saved (saving one here would wait
        # for the lock too: the extension's recompute reads pga_exception)
        db.execute("SELECT pg_notify('notifyagent', %s)", (f"schedule:{jobid}",))
        wait_for(lambda: _waiting_on_lock(db, "pga_exception"), 10, what="the schedule read")
        committed = _run_now_committed_at(db, jobid)
        blocker.commit()
    started = wait_for(lambda: _first_start(db, jobid), 10, what="the Run now's run to start")
    lag = (started - committed).total_seconds()
    measure("Run now right after a schedule change: run started after its commit", lag)
    assert 0 <= lag < 1.0, lag
    assert [r["jlgstatus"] for r in wait_finished(db, jobid, timeout=10)] == ["s"]
    # the schedule is in charge again: next run hours ahead, nothing else ran
    assert db.value(
        "SELECT jobnextrun > now() + interval '2 hours' FROM pgagent.pga_job WHERE jobid = %s",
        (jobid,),
    )
    assert db.value("SELECT count(*) FROM public.tick") == 1
