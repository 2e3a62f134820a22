"""Reconnects move the running claims to the new identity; neither a failed attempt nor a
release that meets the move may lose one (both found by the chaos soak).

After a reconnect the agent registers its new LISTEN pid and then moves its running claims
from the old identity to it (adopt_jobs, which needs the old row's login time). An attempt
that failed between the two used to leave the *new* login time behind, so the next attempt
found no old row with it: no claim moved, and the runs were left to the zombie cleanup. A run
that ended during the move used to give its claim up for lost (see the second test).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from notifyagent.cluster import TCP_PASSWORD
from tests.agent import make_job, run_now, sql_step, wait_finished
from tests.faults.conftest import AgentStarter, log_lines
from tests.pg import Database, Server, connect, wait_for
from tests.proxy import StallProxy

pytestmark = pytest.mark.slow

ROWS = "SELECT jagpid FROM pgagent.pga_jobagent ORDER BY jaglogintime"


def test_a_failed_reconnect_attempt_leaves_the_claims_to_the_next(
    db: Database, agents: AgentStarter
) -> None:
    agent = agents(db.dsn)
    old = db.value(ROWS)
    job = make_job(db, "slow", [sql_step("sleep", "SELECT pg_sleep(6)")])
    run_now(db, job)
    wait_for(
        lambda: db.value(
            "SELECT jobagentid = %s FROM pgagent.pga_job WHERE jobid = %s", (old, job)
        ),
        10,
        what="the job running under the agent's first identity",
    )
    with connect(db.dsn) as holder:
        holder.execute("BEGIN")
        # the old row held: the next attempt registers, then waits in adopt_jobs
        holder.execute("SELECT 1 FROM pgagent.pga_jobagent WHERE jagpid = %s FOR UPDATE", (old,))
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        first = wait_for(
            lambda: db.value(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%%pga_jobagent%%' AND pid <> %s",
                (old,),
            ),
            15,
            what="the first reconnect attempt waiting in adopt_jobs",
        )
        db.execute("SELECT pg_terminate_backend(%s)", (first,))  # that attempt fails
        holder.execute("ROLLBACK")
    wait_for(lambda: log_lines(agent, "running claim(s) moved"), 20, what="the claims adopted")
    assert "1 running claim(s) moved" in log_lines(agent, "running claim(s) moved")[-1]
    logs = wait_finished(db, job, timeout=20)
    assert [r["jlgstatus"] for r in logs] == ["s"]


#: how late adopt_jobs' answer reaches the agent (it comes through a proxy)
ADOPT_ANSWER_LAG = 1.5
WAITING = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = %s AND query LIKE %s"


def test_a_release_that_finds_its_claim_moved_retries_under_the_new_id(
    pg_server: Server,
    db: Database,
    stall_proxy: Callable[[int], StallProxy],
    agents: AgentStarter,
) -> None:
    """Found by the chaos soak: a reconnect moved 31 running claims to the new id while their
    runs ended; their releases, blocked by adopt_jobs, then found the claims moved and, the
    listener not having taken the new id yet, took them for another agent's: the jobs stayed
    claimed, and Run now requests on them were lost. Here adopt_jobs' answer reaches the agent
    late, and the run's release queues behind it."""
    if pg_server.cluster is None:
        pytest.skip("needs the test cluster's TCP port")
    proxy = stall_proxy(pg_server.cluster.port)
    proxy.slow_answers = (b"moved", ADOPT_ANSWER_LAG)  # a column of adopt_jobs' answer only
    dsn = f"host=127.0.0.1 port={proxy.port} user=postgres dbname={db.name} password={TCP_PASSWORD}"
    agent = agents(dsn)
    old = db.value(ROWS)
    job = make_job(db, "gated", [sql_step("gate", "SELECT pg_advisory_xact_lock(4242)")])
    with connect(db.dsn) as gate, connect(db.dsn) as holder:
        gate.execute("SELECT pg_advisory_lock(4242)")
        run_now(db, job)
        wait_for(lambda: db.value(WAITING, ("Lock", "%pg_advisory_xact_lock%")), 10,
                 what="the step waiting at the gate")  # fmt: skip
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM pgagent.pga_job WHERE jobid = %s FOR UPDATE", (job,))
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        wait_for(lambda: db.value(WAITING, ("Lock", "%DELETE FROM pgagent.pga_jobagent%")), 15,
                 what="the reconnect waiting in adopt_jobs")  # fmt: skip
        gate.execute("SELECT pg_advisory_unlock(4242)")  # the run ends; its release queues
        wait_for(lambda: db.value(WAITING, ("Lock", "%released AS%")), 10,
                 what="the release waiting behind adopt_jobs")  # fmt: skip
        holder.execute("ROLLBACK")
    wait_for(lambda: log_lines(agent, "running claim(s) moved"), 20, what="the claims adopted")
    assert "1 running claim(s) moved" in log_lines(agent, "running claim(s) moved")[-1]
    logs = wait_finished(db, job, timeout=15)  # released: not left claimed under the new id
    assert [r["jlgstatus"] for r in logs] == ["s"]
