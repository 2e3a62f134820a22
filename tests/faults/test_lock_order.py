"""Agents writing the same jobs at once never deadlock (found by the chaos soak: two agents
corrected the next runs of the same jobs after a reconnect, each in its own order; the server
aborted one correction as a deadlock, and its agent resynced seconds late).

Every statement of the agent that may wait for several pga_job rows locks them in job id order
(sql/queries.sql: correct_next_runs, release, adopt_jobs, reap_zombie; the last two take the
agent's row before, in a statement of its own: lock_agent), so two agents can only queue
behind each other.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import psycopg
import pytest

from notifyagent.core.ports import Reaped
from notifyagent.db import identity
from notifyagent.db.connect import AsyncConn
from notifyagent.db.connect import connect as connect_async
from notifyagent.db.sql import query
from tests.agent import dead_agent_with_a_run, make_job, sql_step
from tests.pg import Conn, Database, connect, wait_for

pytestmark = pytest.mark.slow

JOBS = 60
WAITING = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND application_name LIKE 'correct %%'"
)


class Session(threading.Thread):
    """One of the agent's statements (``work``) on a connection of its own, in a thread, so
    that the test can hold rows meanwhile; ``result`` or ``error`` once joined."""

    def __init__(self, db: Database, app: str, work: Callable[[AsyncConn], Awaitable[Any]]):
        super().__init__(name=app)
        self.db, self.app, self.work = db, app, work
        self.result: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        async def main() -> Any:
            conn = await connect_async(self.db.dsn, app=self.app)
            async with conn:
                return await self.work(conn)

        try:
            self.result = asyncio.run(main())
        except BaseException as err:  # handed to the test by outcome()
            self.error = err

    def waiting(self) -> None:
        """Return once the session waits for a lock."""
        sql = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND application_name = %s"
        )
        wait_for(lambda: self.db.value(sql, (self.app,)), 10, what=f"{self.app} waiting")

    def outcome(self) -> Any:
        self.join(30)
        assert not self.is_alive(), f"{self.app} still running"
        if self.error is not None:
            raise self.error
        return self.result


def agent_row(db: Database, pid: int) -> datetime:
    """An agent row with this pid; its login time."""
    login = db.value(
        "INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (%s, 'host') "
        "RETURNING jaglogintime",
        (pid,),
    )
    assert isinstance(login, datetime)
    return login


def move(old: int, login: datetime, new: int) -> Callable[[AsyncConn], Awaitable[Any]]:
    """The move of a reconnecting agent's claims, giving up after 5 s of waiting."""

    async def work(conn: AsyncConn) -> tuple[bool, int] | None:
        await conn.execute("SET lock_timeout = '5s'")
        try:
            return await identity.adopt(conn, old, login, new)
        except psycopg.errors.LockNotAvailable:
            return None

    return work


def clean_up(pid: int) -> Callable[[AsyncConn], Awaitable[Reaped]]:
    """Other agents' clean-up of a dead agent."""
    return lambda conn: identity.reap(conn, pid)


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
    agent_row(db, new)
    login = db.value("SELECT jaglogintime FROM pgagent.pga_jobagent WHERE jagpid = %s", (old,))
    with connect(db.dsn) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM pgagent.pga_jobsteplog WHERE jsljlgid = %s FOR UPDATE",
                       (jlgid,))  # fmt: skip
        cleanup = Session(db, "reap", clean_up(old))
        cleanup.waiting()
        moved = Session(db, "move", move(old, login, new)).outcome()  # None: it gave up waiting
        holder.execute("ROLLBACK")
        reaped = cleanup.outcome()
    run = db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgid = %s", (jlgid,))
    holder_of_job = db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (job,))
    if moved is not None and moved[1] == 1:
        assert (run, holder_of_job) == ("r", new), "the clean-up undid the move"
        assert reaped == Reaped(None, 0, 0, 0)
    else:
        assert (run, holder_of_job) == ("d", None)
        assert reaped == Reaped("dead-host", 1, 1, 1)


def claim_in_flight(claim: Conn, job: int, pid: int) -> int:
    """What the claim statement does, left uncommitted: the job taken under ``pid`` (its
    foreign key check holds the agent row until the commit) and its run started; the run's
    id."""
    claim.execute("BEGIN")
    claim.execute("UPDATE pgagent.pga_job SET jobagentid = %s WHERE jobid = %s", (pid, job))
    row = claim.execute(
        "INSERT INTO pgagent.pga_joblog (jlgjobid, jlgstatus) VALUES (%s, 'r') RETURNING jlgid",
        (job,),
    ).fetchone()
    assert row is not None
    return int(row["jlgid"])


def test_a_claim_committing_while_its_identity_moves_is_moved(db: Database) -> None:
    """A claim under the old id that commits while the move waits for it (the listener died
    with a claim in flight on another connection). Before, the move's snapshot missed the
    claim while its DELETE of the old agent row waited for it, and the foreign key's
    ON DELETE SET NULL then freed the job: running, yet free to be claimed again."""
    job = make_job(db, "claimed", [sql_step("step", "SELECT 1")])
    old, new = 900_011, 900_012
    login = agent_row(db, old)
    agent_row(db, new)
    with connect(db.dsn) as claim:
        jlgid = claim_in_flight(claim, job, old)
        mover = Session(db, "move", move(old, login, new))
        mover.waiting()
        claim.execute("COMMIT")
        assert mover.outcome() == (True, 1)
    assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (job,)) == new
    assert db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgid = %s", (jlgid,)) == "r"


def test_a_claim_committing_while_its_identity_is_cleaned_up_is_aborted(db: Database) -> None:
    """The same claim meeting another agent's clean-up of the old id: the clean-up aborts the
    run and releases the job, as for any run of a dead agent. Before, it missed the claim and
    the foreign key freed the job, its run left 'r' (running) with nobody to end it."""
    job = make_job(db, "claimed", [sql_step("step", "SELECT 1")])
    dead = 900_021
    agent_row(db, dead)
    with connect(db.dsn) as claim:
        jlgid = claim_in_flight(claim, job, dead)
        cleanup = Session(db, "reap", clean_up(dead))
        cleanup.waiting()
        claim.execute("COMMIT")
        assert cleanup.outcome() == Reaped("host", 1, 0, 1)
    assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (job,)) is None
    assert db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgid = %s", (jlgid,)) == "d"
