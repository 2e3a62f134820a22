"""A reconnect that fails half-way must not cost the next attempt the running claims (found by
the chaos soak: a listener killed during a herd came back 8 s late, its 24 running runs
marked aborted by another agent).

After a reconnect the agent registers its new LISTEN pid and then moves its running claims
from the old identity to it (adopt_jobs, which needs the old row's login time). An attempt
that failed between the two used to leave the *new* login time behind, so the next attempt
found no old row with it: no claim moved, and the runs were left to the zombie cleanup.
"""

from __future__ import annotations

import pytest

from tests.agent import make_job, run_now, sql_step, wait_finished
from tests.faults.conftest import AgentStarter, log_lines
from tests.pg import Database, connect, wait_for

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
