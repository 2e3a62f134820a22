"""Several agents on one database: every due run happens exactly once, work is shared."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.faults.conftest import AgentStarter, Measure
from tests.pg import Database, wait_for

pytestmark = pytest.mark.slow

JOBS = 1000
ROUNDS = 3
PINNED_B = 50  # jobhostagent = 'agent-b'
PINNED_NOWHERE = 50  # jobhostagent names a station no agent has
STATIONS = ("agent-a", "agent-b", "agent-c")


def test_three_agents_thousand_jobs_several_rounds(
    db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """3 agents x 1,000 jobs made due at once, 3 rounds: 0 double runs, 0 missed runs, 0
    phantom log rows, each agent does a share, pinned jobs run only on their station."""
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname, jobhostagent) "
        "SELECT 1, 'many' || g, CASE WHEN g <= %s THEN 'agent-b' "
        "WHEN g <= %s THEN 'nowhere' ELSE '' END FROM generate_series(1, %s) g",
        (PINNED_B, PINNED_B + PINNED_NOWHERE, JOBS),
    )
    # each run records its job and the agent that ran it (the step connection inherits the
    # agent's application_name from its DSN)
    db.execute(
        "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
        "SELECT jobid, 's', 's', 'INSERT INTO public.tick(label) SELECT ''' || jobid || "
        "':'' || current_setting(''application_name'')', current_database() FROM pgagent.pga_job"
    )
    for station in STATIONS:
        # 8 jobs at once: 3 agents x (1 listener + 10 pooled + 8 step connections) stay well
        # under the test server's max_connections (100)
        agents(f"{db.dsn} application_name={station}", "--max-concurrency", "8", station=station)
    runnable = JOBS - PINNED_NOWHERE
    for n in range(1, ROUNDS + 1):
        started = time.monotonic()
        db.execute("UPDATE pgagent.pga_job SET jobnextrun = now()")
        wait_for(
            lambda n=n: db.value(  # type: ignore[misc]
                "SELECT (SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus <> 'r') = %s "
                "AND NOT EXISTS (SELECT 1 FROM pgagent.pga_job WHERE jobagentid IS NOT NULL)",
                (n * runnable,),
            ),
            90,
            interval=0.1,
            what=f"round {n}: {runnable} runs",
        )
        measure(f"3 agents: round {n} of {runnable} due jobs done", time.monotonic() - started)

    assert db.value("SELECT count(*) FROM pgagent.pga_joblog") == ROUNDS * runnable
    assert db.rows("SELECT jlgstatus, count(*) FROM pgagent.pga_joblog GROUP BY 1") == [
        {"jlgstatus": "s", "count": ROUNDS * runnable}
    ]
    # one step log per run, no phantom or unfinished rows
    assert (
        db.value("SELECT count(*) FROM pgagent.pga_jobsteplog WHERE jslstatus = 's'")
        == ROUNDS * runnable
    )
    per_job = db.rows(
        "SELECT j.jobhostagent, count(l.jlgid) AS runs FROM pgagent.pga_job j "
        "LEFT JOIN pgagent.pga_joblog l ON l.jlgjobid = j.jobid GROUP BY j.jobid"
    )
    assert Counter((r["jobhostagent"], r["runs"]) for r in per_job) == {
        ("agent-b", ROUNDS): PINNED_B,
        ("nowhere", 0): PINNED_NOWHERE,
        ("", ROUNDS): JOBS - PINNED_B - PINNED_NOWHERE,
    }
    # no double runs: every run left exactly one tick row, ROUNDS per job
    ticks = [str(r["label"]) for r in db.rows("SELECT label FROM public.tick")]
    assert len(ticks) == ROUNDS * runnable
    runs_of_job = Counter(t.split(":")[0] for t in ticks)
    assert set(runs_of_job.values()) == {ROUNDS}
    pinned_ids = {
        str(r["jobid"])
        for r in db.rows("SELECT jobid FROM pgagent.pga_job WHERE jobhostagent = 'agent-b'")
    }
    by_agent = Counter(t.split(":")[1] for t in ticks)
    assert {t.split(":")[1] for t in ticks if t.split(":")[0] in pinned_ids} == {"agent-b"}
    for station in STATIONS:
        share = by_agent[station] / len(ticks)
        measure(f"3 agents: share of runs on {station}", share * 100, "%")
    # claims spread across agents, not one agent taking everything
    assert all(by_agent[s] >= 0.1 * len(ticks) for s in STATIONS), by_agent
