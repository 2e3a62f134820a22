"""A retry chain (policy ``retries``) survives the agent that started it: the count lives in the
database (``notifyagent.retry``), so another agent, or the same one after its LISTEN connection
was replaced, continues it instead of starting again at 0."""

from __future__ import annotations

import pytest

from tests.agent import AgentProcess, joblogs, make_job, run_now, sql_step
from tests.faults.conftest import AgentStarter, log_lines
from tests.pg import Database, wait_for

pytestmark = pytest.mark.slow

RETRIES = 2
#: The first retry waits this long: time enough to hand the job over before it falls due.
RETRY_DELAY = "3 seconds"


def _failing_job(db: Database, scheduled: bool = False) -> int:
    """A job whose step always fails, retried; ``scheduled``: with a daily schedule 12 hours
    away (a resync must not replace the pending retry with it)."""
    jobid = make_job(db, "flaky", [sql_step("a", "SELECT 1/0")])
    db.execute(
        "INSERT INTO notifyagent.job_policy (jobid, retries, retry_delay) VALUES (%s, %s, %s)",
        (jobid, RETRIES, RETRY_DELAY),
    )
    if scheduled:
        db.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
            "VALUES (%s, 'daily', array(SELECT m = 0 FROM generate_series(0, 59) m), "
            "array(SELECT h = (extract(hour FROM now())::int + 12) %% 24 "
            "FROM generate_series(0, 23) h))",
            (jobid,),
        )
    return jobid


def _first_failure(db: Database, agent: AgentProcess, jobid: int) -> None:
    """Run the job on ``agent`` and wait until its first run failed and the retry is pending."""
    run_now(db, jobid)
    wait_for(
        lambda: [r["jlgstatus"] for r in joblogs(db, jobid)] == ["f"],
        15,
        what="the first run to fail",
    )
    agent.wait_log(f"retry 1 of {RETRIES}")


def _gave_up(db: Database, agent: AgentProcess, jobid: int) -> None:
    """Wait for the end of the chain; exactly 1 + RETRIES runs, all failed, none pending."""
    agent.wait_log(f"failed after {RETRIES} retries", timeout=30)
    wait_for(
        lambda: db.value(
            "SELECT jobagentid IS NULL FROM pgagent.pga_job WHERE jobid = %s", (jobid,)
        ),
        10,
        what="the last run released",
    )
    assert [r["jlgstatus"] for r in joblogs(db, jobid)] == ["f"] * (1 + RETRIES)
    assert db.value("SELECT count(*) FROM notifyagent.retry WHERE jobid = %s", (jobid,)) == 0


@pytest.mark.parametrize(
    ("station", "scheduled"),
    [("b", False), ("a", False), ("b", True)],
    ids=["another-agent", "restart", "another-agent-scheduled"],
)
def test_the_next_agent_continues_the_retry_chain(
    db: Database, agents: AgentStarter, station: str, scheduled: bool
) -> None:
    """Agent A fails the first run and stops before the retry; the next agent (another one, or
    A started again) takes the retry as the second of two, not as the first of a new chain
    (which made four runs); its start-up load keeps the retry of a job with a schedule."""
    a = agents(db.dsn, station="a")  # installs the notifyagent schema
    jobid = _failing_job(db, scheduled)
    _first_failure(db, a, jobid)
    assert a.stop() == 0
    b = agents(db.dsn, station=station)
    _gave_up(db, b, jobid)
    assert log_lines(b, f"retry 2 of {RETRIES}")
    assert not log_lines(b, f"retry 1 of {RETRIES}")
    assert len(log_lines(a, "failed: retry")) == 1


def test_a_listener_reconnect_keeps_the_retry_count(db: Database, agents: AgentStarter) -> None:
    """The LISTEN connection is terminated between the first failure and the retry: the agent
    comes back under a new id and resyncs, and the chain still ends after two retries."""
    agent = agents(db.dsn, station="a")
    jobid = _failing_job(db)
    old = db.value("SELECT jagpid FROM pgagent.pga_jobagent")
    _first_failure(db, agent, jobid)
    db.execute("SELECT pg_terminate_backend(%s)", (old,))
    wait_for(
        lambda: db.value("SELECT jagpid FROM pgagent.pga_jobagent") not in (None, old),
        10,
        what="the agent to register again",
    )
    _gave_up(db, agent, jobid)
    assert len(log_lines(agent, f"retry 1 of {RETRIES}")) == 1
    assert len(log_lines(agent, f"retry 2 of {RETRIES}")) == 1
