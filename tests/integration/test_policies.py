"""Per-job policies (notifyagent.job_policy) and history retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest

from tests.agent import (
    AgentProcess,
    batch_step,
    joblogs,
    make_job,
    processes,
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


#: The timeout every timeout test sets, and how late after it a cancelled step may end on a
#: loaded machine (a SQL step: a cancel request; a batch step: its process group killed).
TIMEOUT_S = 1.0
CANCEL_SLACK_S = 1.0
#: The first step of every timeout job; with a job timeout the second step gets what is left.
FIRST_STEP_S = 0.7


def _seconds(value: timedelta | None) -> float:
    assert value is not None
    return value.total_seconds()


@pytest.mark.parametrize("kind", ["sql", "batch"])
@pytest.mark.parametrize("which", ["step", "job"])
def test_timeouts_fire_near_their_value(
    db: Database, agent: AgentProcess, kind: str, which: str
) -> None:
    """A 1 s timeout cancels the running step 1-2 s after it counts from (the step's start
    for a step timeout, the run's start for a job timeout), fails the run, and later steps
    do not run."""
    long_s = "29.871"  # unique, to find leftover processes or backends
    if kind == "sql":
        steps = [
            sql_step("a", f"SELECT pg_sleep({FIRST_STEP_S})"),
            sql_step("b", f"SELECT pg_sleep({long_s})"),
            sql_step("c", "SELECT 1"),
        ]
    else:
        steps = [
            batch_step("a", f"sleep {FIRST_STEP_S}"),
            batch_step("b", f"sleep {long_s}"),
            batch_step("c", "true"),
        ]
    jobid = make_job(db, f"slow {kind}", steps)
    policy(db, jobid, **{f"{which}_timeout": f"{TIMEOUT_S} seconds"})
    run_now(db, jobid)
    run = wait_finished(db, jobid, timeout=15)[0]
    assert run["jlgstatus"] == "f"
    logs = steplogs(db, jobid)
    assert [(s["jstname"], s["jslstatus"]) for s in logs] == [("a", "s"), ("b", "f")]
    first, cancelled = (_seconds(s["jslduration"]) for s in logs)
    assert (
        f"the {which} timeout of {TIMEOUT_S:g}s (notifyagent.job_policy) was reached"
        in logs[1]["jsloutput"]
    )
    job_s = _seconds(run["jlgduration"])
    if which == "step":
        # the cancelled step ran for the timeout, counted from its own start
        assert TIMEOUT_S <= cancelled < TIMEOUT_S + CANCEL_SLACK_S, logs
        assert first + TIMEOUT_S <= job_s < first + TIMEOUT_S + CANCEL_SLACK_S, run
    else:
        # the run lasted the timeout: the cancelled step got only what the first one left
        assert TIMEOUT_S <= job_s < TIMEOUT_S + CANCEL_SLACK_S, run
        assert cancelled < TIMEOUT_S - first + CANCEL_SLACK_S / 2, logs
    if kind == "sql":
        busy = db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            (f"SELECT pg_sleep({long_s})",),
        )
        assert busy == 0, "the cancelled statement still runs"
    else:
        assert processes("sleep", long_s) == [], "the killed script still runs"


#: retry_delay of the retry test: the first retry waits this long, the second twice as long.
RETRY_DELAY_S = 0.5
#: How late a retry may start on a loaded machine; under the delay, so a delay that grows by
#: more than doubling (or does not grow) is caught.
RETRY_SLACK_S = 0.4


def test_retries_with_doubling_delays(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(db, "flaky", [sql_step("a", "SELECT 1/0")])
    policy(db, jobid, retries=2, retry_delay=f"{RETRY_DELAY_S} seconds")
    run_now(db, jobid)
    logs = wait_finished(db, jobid, runs=3, timeout=20)
    assert [r["jlgstatus"] for r in logs] == ["f", "f", "f"]
    # gap = the next run's start - the previous run's end, as the run logs record them
    gaps = [
        (logs[i + 1]["jlgstart"] - (logs[i]["jlgstart"] + logs[i]["jlgduration"])).total_seconds()
        for i in range(2)
    ]
    for n, gap in enumerate(gaps):
        delay = RETRY_DELAY_S * 2**n
        assert 0.8 * delay <= gap < delay + RETRY_SLACK_S, f"retry {n + 1}: gaps {gaps}"
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


def test_catchup_once_and_skip_after_downtime(db: Database, agent_factory: Factory) -> None:
    """Every minute of the last hour is scheduled and the agent was down for its last five:
    ``once`` (the default, pgAgent's) runs once, ``skip`` not at all, and a Run now made
    meanwhile runs under either. The next scheduled time is about a day away, so no run the
    schedule asks for can come while the test looks."""
    assert run_cli("install", "--dsn", db.dsn).code == 0
    once = tick_job(db, "once")
    skipped = tick_job(db, "skipped")
    explicit = tick_job(db, "explicit")
    for jobid in (once, skipped, explicit):
        db.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscminutes, jschours)"
            " SELECT %s, 'last hour', now() - interval '2 days', array_fill(true, ARRAY[60]),"
            " array_agg(h = extract(hour FROM date_trunc('hour', now()) - interval '5 min')"
            " ORDER BY h) FROM generate_series(0, 23) h",
            (jobid,),
        )
    policy(db, skipped, catchup="skip")
    policy(db, explicit, catchup="skip")
    # the agent was down: scheduled times passed; "explicit" got a Run now meanwhile
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = date_trunc('hour', now()) - interval '5 min' "
        "WHERE jobid = ANY(%s)",
        ([once, skipped],),
    )
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = now() - interval '7.5 s' WHERE jobid = %s",
        (explicit,),
    )
    agent_factory()

    def settled(jobid: int) -> bool:
        """Released with its next run in the future: nothing of it is due any more."""
        return bool(
            db.value(
                "SELECT jobagentid IS NULL AND jobnextrun > now() + interval '1 hour' "
                "FROM pgagent.pga_job WHERE jobid = %s",
                (jobid,),
            )
        )

    for jobid in (once, skipped, explicit):
        wait_for(partial(settled, jobid), 15, what=f"job {jobid} to run its catch-up")
    assert [r["jlgstatus"] for r in joblogs(db, once)] == ["s"]
    assert [r["jlgstatus"] for r in joblogs(db, explicit)] == ["s"]
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
