"""Agents writing the same jobs at once never deadlock (found by the chaos soak: two agents
corrected the next runs of the same jobs after a reconnect, each in its own order; the server
aborted one correction as a deadlock, and its agent resynced seconds late).

Every statement of the agent that may wait for several pga_job rows locks them in job id order
(sql/queries.sql: correct_next_runs, release), so two agents can only queue behind each other.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from notifyagent.db.sql import query
from tests.agent import make_job
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
