"""Agents writing the same jobs at once never deadlock (found by the chaos soak: two agents
corrected the next runs of the same jobs after a reconnect, each in its own order; the server
aborted one correction as a deadlock, and its agent resynced seconds late).

Every statement of the agent that may wait for several pga_job rows locks them in job id order
(sql/queries.sql: correct_next_runs, release, adopt_jobs, reap_zombie; the last two take the
agent's row before), so two agents can only queue behind each other.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from notifyagent.db.sql import query
from tests.agent import dead_agent_with_a_run, make_job, sql_step
from tests.pg import Database, connect, wait_for

pytestmark = pytest.mark.slow

JOBS = 60
WAITING = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND application_name LIKE 'correct %%'"
)


def test_corrections_of_the_same_jobs_in_opposite_orders_do_not_deadlock(db: Database) -> None:
    """Two corrections of the same jobs (one lists them upwards, the other downwards) meet at
    a row another transaction holds; when it ends, both go through and the first one's values
    stay (the second finds the rows changed since it read them)."""
    ids = [make_job(db, f"job {n}") for n in range(JOBS)]
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = '2100-01-01' WHERE jobid = ANY(%s)", (ids,))
    # with statistics the planner walks the list of jobs as given (a hash join from it), so
    # without an order of its own each correction would lock the rows in its list's order
    db.execute("ANALYZE pgagent.pga_job")
    seen = db.value("SELECT jobnextrun FROM pgagent.pga_job WHERE jobid = %s", (ids[0],))
    middle = ids[JOBS // 2]
    errors: dict[str, BaseException] = {}
    written: dict[str, int] = {}

    def correct(name: str, order: list[int], value: str) -> None:
        try:
            with psycopg.connect(db.dsn, autocommit=True, application_name=name) as conn:
                params: dict[str, Any] = {
                    "ids": order,
                    "seen": [seen] * len(order),
                    "next": [value] * len(order),
                }
                written[name] = len(conn.execute(query("correct_next_runs"), params).fetchall())
        except psycopg.Error as err:
            errors[name] = err

    with connect(db.dsn) as holder:
        holder.execute("BEGIN")
        # the middle row only: a correction in the list's order takes the rows before it, the
        # other takes those after it, and each then waits for the row the other holds
        holder.execute("SELECT 1 FROM pgagent.pga_job WHERE jobid = %s FOR UPDATE", (middle,))
        threads = [
            threading.Thread(target=correct, args=("correct up", ids, "2100-01-02")),
            threading.Thread(target=correct, args=("correct down", ids[::-1], "2100-01-03")),
        ]
        for t in threads:
            t.start()
        wait_for(lambda: db.value(WAITING) == 2, 10, what="both corrections waiting for the rows")
        holder.execute("COMMIT")
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert sorted(written.values()) == [0, JOBS], written  # one wrote every row, the other none
    values = db.value(
        "SELECT count(DISTINCT jobnextrun) FROM pgagent.pga_job WHERE jobid = ANY(%s)", (ids,)
    )
    assert values == 1


def test_a_claim_move_and_the_old_identitys_clean_up_agree(db: Database) -> None:
    """Found by the chaos soak (a listener killed: the agent moved its claims to its new
    identity while two other agents cleaned up the old one; the server aborted two clean-ups
    as deadlocks, the move came 7 s late). The clean-up (reap_zombie) took the run logs, step
    logs and job rows before the agent's row, the move (adopt_jobs) the agent's row first.
    Here the clean-up starts first and waits at a step log another transaction holds, then the
    move runs. Either may win, but not both: the run moved and still running, or aborted and
    its job free. Before, the move took the job and the clean-up then aborted the run and freed
    the job anyway (a running job free to be claimed again)."""
    job = make_job(db, "moving", [sql_step("step", "SELECT 1")])
    old, new = 900_001, 900_002
    jlgid = dead_agent_with_a_run(db, old, job)
    db.execute("INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (%s, 'moved')", (new,))
    login = db.value("SELECT jaglogintime FROM pgagent.pga_jobagent WHERE jagpid = %s", (old,))
    errors: list[BaseException] = []
    reaped: list[dict[str, Any]] = []

    def reap() -> None:
        try:
            with psycopg.connect(db.dsn, autocommit=True, application_name="reap") as conn:
                cur = conn.execute(query("reap_zombie"), {"pid": old})
                names = [c.name for c in cur.description or ()]
                reaped.extend(dict(zip(names, row, strict=True)) for row in cur.fetchall())
        except psycopg.Error as err:
            errors.append(err)

    with connect(db.dsn) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM pgagent.pga_jobsteplog WHERE jsljlgid = %s FOR UPDATE",
                       (jlgid,))  # fmt: skip
        cleanup = threading.Thread(target=reap)
        cleanup.start()
        wait_for(lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE "
                                  "wait_event_type = 'Lock' AND application_name = 'reap'"),
                 10, what="the clean-up waiting")  # fmt: skip
        with psycopg.connect(db.dsn, autocommit=True, options="-c lock_timeout=5s") as mover:
            try:
                moved = mover.execute(
                    query("adopt_jobs"), {"old": old, "login": login, "new": new}
                ).fetchone()
            except psycopg.errors.LockNotAvailable:
                moved = None  # it waits for the clean-up (the holder is still open)
        holder.execute("ROLLBACK")
        cleanup.join(20)
    assert not errors, errors
    run = db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgid = %s", (jlgid,))
    holder_of_job = db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (job,))
    if moved is not None and moved[1] == 1:
        assert (run, holder_of_job) == ("r", new), "the clean-up undid the move"
    else:
        assert (run, holder_of_job) == ("d", None)
    assert reaped
