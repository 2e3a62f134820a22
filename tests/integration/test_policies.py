"""Per-job policies (notifyagent.job_policy) and history retention."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agent import (
    AgentProcess,
    batch_step,
    joblogs,
    make_job,
    run_now,
    sql_step,
    steplogs,
    tick_job,
    wait_finished,
)
from tests.cli import run_cli
from tests.pg import Database, wait_for

Factory = Callable[..., AgentProcess]


def policy(db: Database, jobid: int, **values: object) -> None:
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    db.execute(
        f"INSERT INTO notifyagent.job_policy (jobid, {cols}) VALUES (%s, {marks})",
        (jobid, *values.values()),
    )


def every_minute(db: Database, jobid: int) -> None:
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscminutes) "
        "VALUES (%s, 'every minute', now() - interval '1 day', array_fill(true, ARRAY[60]))",
        (jobid,),
    )


def test_step_and_job_timeouts(db: Database, agent: AgentProcess) -> None:
    sql_job = make_job(
        db, "slow sql", [sql_step("a", "SELECT pg_sleep(30)"), sql_step("b", "SELECT 1")]
    )
    policy(db, sql_job, step_timeout="1 second")
    batch_job = make_job(db, "slow batch", [batch_step("a", "sleep 29.871")])
    policy(db, batch_job, job_timeout="1 second")
    run_now(db, sql_job, batch_job)
    for jobid, which in ((sql_job, "step"), (batch_job, "job")):
        logs = wait_finished(db, jobid, timeout=15)
        assert logs[0]["jlgstatus"] == "f"
        steps = steplogs(db, jobid)
        assert len(steps) == 1  # the job stopped at the cancelled step
        assert steps[0]["jslstatus"] == "f"
        assert (
            f"the {which} timeout of 1s (notifyagent.job_policy) was reached"
            in (steps[0]["jsloutput"])
        )
    assert (
        db.value("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'") == 0
    )


def test_retries_with_growing_delays(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(db, "flaky", [sql_step("a", "SELECT 1/0")])
    policy(db, jobid, retries=2, retry_delay="0.4 seconds")
    run_now(db, jobid)
    logs = wait_finished(db, jobid, runs=3, timeout=20)
    assert [r["jlgstatus"] for r in logs] == ["f", "f", "f"]
    gaps = [
        (logs[i + 1]["jlgstart"] - (logs[i]["jlgstart"] + logs[i]["jlgduration"])).total_seconds()
        for i in range(2)
    ]
    assert 0.3 < gaps[0] < gaps[1]  # 0.4 s, then 0.8 s
    agent.wait_log("retry 2 of 2")
    agent.wait_log("failed after 2 retries")
    probe = tick_job(db, "probe")
    run_now(db, probe)
    wait_finished(db, probe)
    assert len(joblogs(db, jobid)) == 3  # no fourth run


@pytest.mark.slow
def test_overlap_queue_one_versus_skip(db: Database, agent: AgentProcess) -> None:
    """Runs that start 2 s before a scheduled minute and take 4 s: pgAgent (skip) drops the
    minute that passed meanwhile; queue-one runs it right after."""
    code = "INSERT INTO public.tick(label) VALUES ('{}'); SELECT pg_sleep(4)"
    skip = make_job(db, "skip", [sql_step("s", code.format("skip"))])
    queued = make_job(db, "queued", [sql_step("s", code.format("queued"))])
    for jobid in (skip, queued):
        every_minute(db, jobid)
    policy(db, queued, overlap="queue-one")
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = date_trunc('minute', now()) + interval '58 s' "
        "WHERE jobid = ANY(%s)",
        ([skip, queued],),
    )
    wait_finished(db, queued, runs=2, timeout=90)
    wait_finished(db, skip, runs=1, timeout=10)
    assert db.value("SELECT count(*) FROM public.tick WHERE label = 'queued'") == 2
    assert db.value("SELECT count(*) FROM public.tick WHERE label = 'skip'") == 1
    nextrun = db.value("SELECT jobnextrun > now() FROM pgagent.pga_job WHERE jobid = %s", (skip,))
    assert nextrun is True
    agent.wait_log("while it ran: running it again now")


def test_catchup_skip_after_downtime(db: Database, agent_factory: Factory) -> None:
    assert run_cli("install", "--dsn", db.dsn).code == 0
    once = tick_job(db, "once")
    skipped = tick_job(db, "skipped")
    explicit = tick_job(db, "explicit")
    for jobid in (once, skipped, explicit):
        every_minute(db, jobid)
    policy(db, skipped, catchup="skip")
    policy(db, explicit, catchup="skip")
    # the agent was down: scheduled times passed; "explicit" got a Run now meanwhile
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = date_trunc('minute', now()) - interval '5 min' "
        "WHERE jobid = ANY(%s)",
        ([once, skipped],),
    )
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = now() - interval '7.5 s' WHERE jobid = %s",
        (explicit,),
    )
    agent_factory()
    wait_finished(db, once)
    wait_finished(db, explicit)
    wait_for(
        lambda: db.value(
            "SELECT jobnextrun > now() FROM pgagent.pga_job WHERE jobid = %s", (skipped,)
        ),
        5,
        what="the skipped job to be moved to its next scheduled time",
    )
    assert joblogs(db, skipped) == []


def _old_runs(db: Database, jobid: int, days: int, count: int) -> None:
    db.execute(
        "INSERT INTO pgagent.pga_joblog (jlgjobid, jlgstatus, jlgstart, jlgduration) "
        "SELECT %s, 's', now() - make_interval(days => %s) - g * interval '1 min', '1 s' "
        "FROM generate_series(1, %s) g",
        (jobid, days, count),
    )
    db.execute(
        "INSERT INTO pgagent.pga_jobsteplog (jsljlgid, jsljstid, jslstatus) "
        "SELECT l.jlgid, s.jstid, 's' FROM pgagent.pga_joblog l "
        "JOIN pgagent.pga_jobstep s ON s.jstjobid = l.jlgjobid WHERE l.jlgjobid = %s",
        (jobid,),
    )


def test_history_retention_by_age(db: Database, agent_factory: Factory) -> None:
    a = tick_job(db, "a")
    _old_runs(db, a, days=10, count=5)
    _old_runs(db, a, days=1, count=3)
    db.execute(
        "INSERT INTO pgagent.pga_joblog (jlgjobid, jlgstatus, jlgstart) "
        "VALUES (%s, 'r', now() - interval '30 days')",
        (a,),
    )
    agent = agent_factory("--history-days", "7")
    agent.wait_log("history cleanup: deleted 5 run(s)")
    rows = db.rows("SELECT jlgstatus FROM pgagent.pga_joblog ORDER BY jlgid")
    assert len(rows) == 4  # the 3 recent ones and the running one
    assert db.value("SELECT count(*) FROM pgagent.pga_jobsteplog") == 3  # cascaded


def test_history_retention_by_count(db: Database, agent_factory: Factory) -> None:
    a, b = tick_job(db, "a"), tick_job(db, "b")
    _old_runs(db, a, days=1, count=5)
    _old_runs(db, b, days=1, count=1)
    agent = agent_factory("--history-keep", "2")
    agent.wait_log("history cleanup: deleted 3 run(s)")
    assert len(joblogs(db, a)) == 2
    assert len(joblogs(db, b)) == 1
    newest = db.value("SELECT max(jlgid) FROM pgagent.pga_joblog WHERE jlgjobid = %s", (a,))
    assert newest in [r["jlgid"] for r in joblogs(db, a)]


def test_no_retention_by_default(db: Database, agent: AgentProcess) -> None:
    a = tick_job(db, "a")
    _old_runs(db, a, days=400, count=3)
    run_now(db, a)
    wait_finished(db, a, runs=4)
    assert len(joblogs(db, a)) == 4
    assert "history cleanup" not in agent.log()
