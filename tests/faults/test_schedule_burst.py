"""A burst of schedule changes when jobs fall due must not cancel their runs (found by the
chaos soak: a burst of thousands of changes at a minute boundary dropped hundreds of runs).

The extension's trigger recomputes a job's next run from now() whenever one of its schedules
is saved, whatever column changed. Jobs that had fallen due but were not taken yet, because
the burst's own transaction held their rows, got the next time instead: the run that was due
never happened. notifyagent's trigger (install.sql, safe_nextrun) now keeps a due time that
no agent has taken.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest

from tests.agent import joblogs, make_job, sql_step
from tests.faults.conftest import AgentStarter
from tests.pg import Database, connect, wait_for

pytestmark = pytest.mark.slow

JOBS = 40
WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND query LIKE 'UPDATE pgagent.pga_schedule%'"
)


def _jobs(db: Database) -> list[int]:
    """Jobs with a schedule that is half an hour away (no run of its own during the test)."""
    ids = [make_job(db, f"burst {n}", [sql_step("a", f"INSERT INTO public.tick(label) "
                                                     f"VALUES ('burst {n}')")])
           for n in range(JOBS)]  # fmt: skip
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "SELECT j, 'far', array(SELECT m = (extract(minute FROM now())::int + 30) %% 60 "
        "FROM generate_series(0, 59) m) FROM unnest(%s::int[]) j",
        (ids,),
    )
    return ids


def test_schedules_saved_while_jobs_fall_due_keep_their_runs(
    db: Database, agents: AgentStarter
) -> None:
    """The jobs fall due while another transaction holds their rows; a schedule change then
    waits for those rows and commits after the due time: every job still runs, once."""
    agent = agents(db.dsn, "--liveness-interval", "1")
    ids = _jobs(db)
    due_in = 1.5
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = now() + make_interval(secs => %s) "
        "WHERE jobid = ANY(%s)",
        (due_in, ids),
    )
    agent.wait_log(f"queue: job {ids[-1]} due at")
    with connect(db.dsn) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM pgagent.pga_job WHERE jobid = ANY(%s) FOR UPDATE", (ids,))
        time.sleep(due_in + 0.3)  # past the due time, rows held: the agent cannot take them
        # the schedule change waits for the held rows, and commits after the due time
        edit = threading.Thread(target=db.execute, args=(
            "UPDATE pgagent.pga_schedule SET jscdesc = 'touched' WHERE jscjobid = ANY(%s)",
            (ids,)))  # fmt: skip
        edit.start()
        wait_for(lambda: db.value(WAITING), 10, what="the schedule change waiting for the rows")
        holder.execute("COMMIT")
        edit.join()
    wait_for(
        lambda: db.value("SELECT count(DISTINCT label) FROM public.tick") == JOBS,
        20,
        what="every job that was due to run",
    )
    wait_for(
        lambda: (
            db.value(
                "SELECT count(*) FROM pgagent.pga_job WHERE jobid = ANY(%s) AND jobagentid IS NULL "
                "AND jobnextrun > now() + interval '5 minutes'",
                (ids,),
            )
            == JOBS
        ),
        10,
        what="the jobs released with their schedule's next run",
    )
    assert db.value("SELECT count(*) FROM public.tick") == JOBS
    assert all([r["jlgstatus"] for r in joblogs(db, j)] == ["s"] for j in ids)


def test_a_schedule_saved_in_a_transaction_older_than_the_run_does_not_rerun_it(
    db: Database, agents: AgentStarter
) -> None:
    """The other side: a schedule change in a transaction that began before a due time and
    commits after the job ran for it recomputes from the transaction's start, which writes
    that due time again. The job already ran for it (joblastrun), so the agent corrects it
    instead of running the job twice."""
    agent = agents(db.dsn, "--liveness-interval", "1")
    jobid = make_job(db, "every minute", [sql_step("a", "INSERT INTO public.tick(label) "
                                                        "VALUES ('every minute')")])  # fmt: skip
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    agent.wait_log(f"queue: job {jobid} due at")
    wait_for(lambda: datetime.now().second >= 58, 65, 0.05, "just before a minute boundary")
    with connect(db.dsn) as editor:
        editor.execute("BEGIN")
        began = editor.execute("SELECT now() AS t").fetchone()["t"]  # type: ignore[index]
        wait_for(lambda: db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobid = %s "
                                  "AND joblastrun > %s AND jobagentid IS NULL", (jobid, began)),
                 10, what="the run of the minute boundary, released")  # fmt: skip
        editor.execute(
            "UPDATE pgagent.pga_schedule SET jscdesc = 'late' WHERE jscjobid = %s", (jobid,)
        )
        editor.execute("COMMIT")
    wait_for(lambda: db.value("SELECT jobnextrun > joblastrun FROM pgagent.pga_job "
                              "WHERE jobid = %s", (jobid,)),
             10, what="the stale next run corrected")  # fmt: skip
    assert [r["jlgstatus"] for r in joblogs(db, jobid)] == ["s"]
    assert db.value("SELECT count(*) FROM public.tick") == 1
