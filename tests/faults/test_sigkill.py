"""An agent is killed with SIGKILL in the middle of a run while a second agent runs."""

from __future__ import annotations

import signal
import time

import pytest

from tests.agent import AgentProcess, joblogs, make_job, sql_step, steplogs, wait_finished
from tests.faults.conftest import AgentStarter, Measure, log_lines
from tests.pg import Database, wait_for

pytestmark = pytest.mark.slow

#: The first run sleeps 60 s; once public.tick holds 'short' the step returns at once.
STEP = (
    "SELECT pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM public.tick WHERE label = 'short') "
    "THEN 0 ELSE 60 END)"
)
#: --liveness-interval of both agents (seconds).
LIVENESS = 1.0
#: docs/operations.md: a dead agent is cleaned up within one liveness interval plus a
#: statement; the rest is headroom for a loaded machine.
TAKEOVER_BOUND = LIVENESS + 1.5


def _registered_id(agent: AgentProcess) -> int:
    line = log_lines(agent, "registered as agent")[0]
    return int(line.split("registered as agent ")[1].split()[0])


def test_sigkill_mid_job_second_agent_takes_over(
    db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """The survivor's liveness check marks the dead agent's run and step 'd', releases its job
    (next run from the schedule) and deletes its agent row within one liveness interval (plus
    a statement); the job then runs again at its next due time, once, on the survivor. With
    client_connection_check_interval set, the server also ends the dead agent's step query."""
    db.execute(f"ALTER DATABASE \"{db.name}\" SET client_connection_check_interval = '1s'")
    a = agents(db.dsn, "--liveness-interval", f"{LIVENESS:g}", station="agent-a")
    b = agents(db.dsn, "--liveness-interval", f"{LIVENESS:g}", station="agent-b")
    jobid = make_job(db, "victim", [sql_step("sleep", STEP)])
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    for agent in (a, b):  # the schedule is in both queues before the Run now (BUG-9)
        agent.wait_log(f"queue: job {jobid} due at")
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s", (jobid,))
    holder = wait_for(
        lambda: db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (jobid,)),
        10,
        what="a claim",
    )
    victim, survivor = (a, b) if _registered_id(a) == holder else (b, a)
    assert _registered_id(victim) == holder
    wait_for(
        lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sl%'"),
        10,
        what="the step to run",
    )
    victim.signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.wait(10)

    def cleaned() -> bool:
        return bool(
            db.value(
                "SELECT NOT EXISTS (SELECT 1 FROM pgagent.pga_jobagent WHERE jagpid = %s) "
                "AND (SELECT jobagentid IS NULL FROM pgagent.pga_job WHERE jobid = %s) "
                "AND (SELECT jlgstatus = 'd' FROM pgagent.pga_joblog WHERE jlgjobid = %s)",
                (holder, jobid, jobid),
            )
        )

    wait_for(cleaned, 30, interval=0.05, what="the survivor to clean up the dead agent")
    takeover = time.monotonic() - killed
    measure("SIGKILLed agent cleaned up by the survivor (liveness 1 s)", takeover)
    assert takeover < TAKEOVER_BOUND, takeover
    assert [s["jslstatus"] for s in steplogs(db, jobid)] == ["d"]
    assert joblogs(db, jobid)[0]["jlgduration"] is None
    survivor.wait_log(f"cleaned up dead agent {holder} (station {victim.station}): 1 run(s)")
    # its step query ends too (the server checks for the vanished client every second)
    wait_for(
        lambda: db.value(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sl%'"
        ),
        10,
        what="the orphaned step query to end",
    )

    # the next run comes from the schedule (the next minute boundary) and is not run early
    nxt = db.rows(
        "SELECT jobnextrun, date_trunc('minute', now()) + interval '1 min' AS boundary "
        "FROM pgagent.pga_job WHERE jobid = %s",
        (jobid,),
    )[0]
    assert nxt["jobnextrun"] is not None
    assert nxt["jobnextrun"].second == 0
    survivor.wait_log(f"queue: job {jobid} due at {nxt['jobnextrun']:%Y-%m-%d %H:%M:%S}")
    assert len(joblogs(db, jobid)) == 1
    # rather than wait for the minute boundary, bring the due time forward: the survivor runs
    # the job once, then the schedule resumes
    db.execute("INSERT INTO public.tick(label) VALUES ('short')")
    due = db.value(
        "UPDATE pgagent.pga_job SET jobnextrun = clock_timestamp() + interval '0.5 s' "
        "WHERE jobid = %s RETURNING jobnextrun",
        (jobid,),
    )
    logs = wait_finished(db, jobid, runs=2, timeout=15)
    assert [r["jlgstatus"] for r in logs] == ["d", "s"]
    assert 0 <= (logs[1]["jlgstart"] - due).total_seconds() < 1.0
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1
    assert db.value("SELECT jobnextrun FROM pgagent.pga_job WHERE jobid = %s", (jobid,)).second == 0
