"""Control of runs: cancel (CLI, notifyagent.cancel_job(), jpgAgent's channel), NOTICE output
of SQL steps, and one step run by hand (`run JOB --step NAME`), against real pgagent rows."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
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
    wait_finished,
)
from tests.cli import run_cli
from tests.pg import Database, wait_for

Factory = Callable[..., AgentProcess]

#: How long after the cancel was sent the step may still run (the issue: within 1 s).
CANCEL_WITHIN_S = 1.0
#: Unique durations, to find leftover statements and processes.
SQL_SLEEP = "59.871"
BATCH_SLEEPS = ("58.917", "57.913")


def every_minute(db: Database, jobid: int) -> None:
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscminutes) "
        "VALUES (%s, 'every minute', now() - interval '1 day', array_fill(true, ARRAY[60]))",
        (jobid,),
    )


def long_job(db: Database, name: str, kind: str, **kw: object) -> int:
    """A job whose first step runs about a minute (a batch step: a child in the background
    and one in the foreground) and whose second step would record that it ran."""
    if kind == "sql":
        first = sql_step("a", f"SELECT pg_sleep({SQL_SLEEP})")
    else:
        first = batch_step("a", f"sleep {BATCH_SLEEPS[0]} &\nsleep {BATCH_SLEEPS[1]}\nwait")
    after = sql_step("b", f"INSERT INTO public.tick(label) VALUES ('{name}')")
    return make_job(db, name, [first, after], **kw)  # type: ignore[arg-type]


def wait_running(db: Database, kind: str = "sql", *, count: int = 1, like: str = "") -> None:
    """Wait until ``count`` long first steps are under way: their statements active on the
    server (SQL), or both sleeps of the script running (batch)."""

    def started() -> bool:
        if kind == "batch":
            return all(len(processes("sleep", s)) == count for s in BATCH_SLEEPS)
        busy = db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s",
            (like or f"SELECT pg_sleep({SQL_SLEEP})",),
        )
        return bool(busy == count)

    wait_for(started, 10, what=f"{count} long {kind} step(s) running")


def send_cancel(db: Database, jobid: int, way: str) -> tuple[float, str]:
    """Cancel through ``way``: when it was sent (for the CLI: when it exited, just after its
    commit sent it; its start-up is not the agent's latency), and the text the step's output
    must name as the canceller."""
    if way == "cli":
        result = run_cli("cancel", str(jobid), "--dsn", db.dsn)
        assert result.code == 0, result.err
        return time.time(), "(notifyagent cancel)"
    with psycopg.connect(db.dsn, autocommit=True, application_name="pgAdmin 4 - CONN:42") as c:
        sent = time.time()
        if way == "function":
            row = c.execute("SELECT notifyagent.cancel_job(%s)", (jobid,)).fetchone()
            assert row == (True,)
            return sent, "(pgAdmin 4 - CONN:42)"
        c.execute(f"NOTIFY jpgagent_kill_job, '{jobid}'")
        return sent, "jpgagent_kill_job from backend pid"


@pytest.mark.parametrize("way", ["cli", "function", "jpgagent"])
@pytest.mark.parametrize("kind", ["sql", "batch"])
def test_cancel_stops_a_running_step(
    db: Database, agent: AgentProcess, kind: str, way: str
) -> None:
    """The step stops within 1 s of the cancel, the run ends 'd' with an output naming who
    cancelled, the later step does not run, nothing is left running, and the job's next run
    is the schedule's."""
    jobid = long_job(db, f"long {kind}", kind)
    every_minute(db, jobid)
    run_now(db, jobid)
    wait_running(db, kind)
    sent, who = send_cancel(db, jobid, way)
    run = wait_finished(db, jobid, timeout=10)[0]
    assert run["jlgstatus"] == "d"
    logs = steplogs(db, jobid)
    assert [(s["jstname"], s["jslstatus"]) for s in logs] == [("a", "d")]
    step = logs[0]
    stopped = (step["jslstart"] + step["jslduration"]).timestamp()
    assert stopped - sent < CANCEL_WITHIN_S, f"stopped {stopped - sent:.2f}s after the cancel"
    assert "notifyagent: step cancelled after" in step["jsloutput"]
    assert who in step["jsloutput"], step["jsloutput"]
    assert step["jslresult"] == -1
    if kind == "sql":
        busy = db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            (f"SELECT pg_sleep({SQL_SLEEP})",),
        )
        assert busy == 0, "the cancelled statement still runs"
    else:
        for seconds in BATCH_SLEEPS:
            assert processes("sleep", seconds) == [], f"sleep {seconds} still runs"
    assert db.value("SELECT count(*) FROM public.tick") == 0
    nextrun = db.value(
        "SELECT jobnextrun - date_trunc('minute', now()) FROM pgagent.pga_job WHERE jobid = %s",
        (jobid,),
    )
    assert nextrun.total_seconds() == 60, "the next run is not the schedule's next minute"
    agent.wait_log("cancel requested by")


@pytest.mark.slow
def test_after_a_cancel_the_next_scheduled_run_happens(db: Database, agent: AgentProcess) -> None:
    """The scheduled run after a cancelled one starts on its minute and runs normally (its
    first step, cancelled the first time, finishes the second time)."""
    jobid = make_job(
        db,
        "sometimes long",
        [sql_step("a", "SELECT 1"), sql_step("b", "INSERT INTO tick(label) VALUES ('after')")],
    )
    first_run_sleeps = (
        "SELECT pg_sleep(CASE WHEN (SELECT count(*) FROM pgagent.pga_joblog "
        f"WHERE jlgjobid = {jobid}) > 1 THEN 0 ELSE {SQL_SLEEP} END)"
    )
    db.execute(
        "UPDATE pgagent.pga_jobstep SET jstcode = %s WHERE jstjobid = %s AND jstname = 'a'",
        (first_run_sleeps, jobid),
    )
    every_minute(db, jobid)
    run_now(db, jobid)
    wait_running(db, like="SELECT pg_sleep(CASE%")
    send_cancel(db, jobid, "function")
    wait_finished(db, jobid, timeout=10)
    due = db.value("SELECT jobnextrun FROM pgagent.pga_job WHERE jobid = %s", (jobid,))
    runs = wait_finished(db, jobid, runs=2, timeout=75)
    assert [r["jlgstatus"] for r in runs] == ["d", "s"]
    assert 0 <= (runs[1]["jlgstart"] - due).total_seconds() < 1
    assert db.value("SELECT count(*) FROM public.tick WHERE label = 'after'") == 1


def test_cancel_of_a_job_not_running_changes_nothing(db: Database, agent: AgentProcess) -> None:
    jobid = long_job(db, "idle", "sql")
    before = db.rows("SELECT * FROM pgagent.pga_job WHERE jobid = %s", (jobid,))
    result = run_cli("cancel", str(jobid), "--dsn", db.dsn)
    assert result.code == 1
    assert "is not running: nothing was cancelled" in result.err
    assert db.value("SELECT notifyagent.cancel_job(%s)", (jobid,)) is False
    assert db.value("SELECT notifyagent.cancel_job(-5)") is False
    assert db.rows("SELECT * FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) == before
    assert joblogs(db, jobid) == []


@pytest.mark.parametrize(("onerror", "run_status"), [("s", "s"), ("f", "f")])
def test_cancel_of_the_running_step_only(
    db: Database, agent: AgentProcess, onerror: str, run_status: str
) -> None:
    """`cancel --step` stops the running step; its on-error rule decides whether the job
    goes on ('s': the next step runs) or fails ('f')."""
    jobid = make_job(
        db,
        "step cancel",
        [
            sql_step("a", f"SELECT pg_sleep({SQL_SLEEP})", onerror=onerror),
            sql_step("b", "INSERT INTO public.tick(label) VALUES ('b')"),
        ],
    )
    run_now(db, jobid)
    wait_running(db)
    result = run_cli("cancel", str(jobid), "--step", "--dsn", db.dsn)
    assert result.code == 0, result.err
    assert wait_finished(db, jobid, timeout=10)[0]["jlgstatus"] == run_status
    logs = steplogs(db, jobid)
    assert logs[0]["jslstatus"] == onerror
    assert "this step only" in logs[0]["jsloutput"]
    went_on = [s["jstname"] for s in logs] == ["a", "b"]
    assert went_on is (onerror == "s")
    assert db.value("SELECT count(*) FROM public.tick") == (1 if went_on else 0)


def test_only_the_agent_holding_the_job_cancels(db: Database, agent_factory: Factory) -> None:
    """Three agents, each running one long job (pinned by host agent): a cancel of the job on
    the second agent stops that one only; the other runs go on."""
    stations = ["one", "two", "three"]
    agents = [agent_factory(station=s) for s in stations]
    jobs = [long_job(db, f"on {s}", "sql", hostagent=s) for s in stations]
    run_now(db, *jobs)
    wait_running(db, count=3)
    assert db.value("SELECT notifyagent.cancel_job(%s)", (jobs[1],)) is True
    assert wait_finished(db, jobs[1], timeout=10)[0]["jlgstatus"] == "d"
    agents[1].wait_log("cancel requested by")
    for n in (0, 2):
        assert [r["jlgstatus"] for r in joblogs(db, jobs[n])] == ["r"]
        assert "cancel requested" not in agents[n].log()
        assert db.value("SELECT notifyagent.cancel_job(%s)", (jobs[n],)) is True
        assert wait_finished(db, jobs[n], timeout=10)[0]["jlgstatus"] == "d"
        agents[n].wait_log("cancel requested by")


def test_notices_go_into_the_step_output(db: Database, agent_factory: Factory) -> None:
    """NOTICE, WARNING and INFO messages in the order raised, with DETAIL/HINT, before the
    error of a failing step; a later step on the same pooled connection starts clean; too
    many are cut at --max-output."""
    agent_factory("--max-output", "300")
    raise_ = "DO $$BEGIN {} END$$"
    jobid = make_job(
        db,
        "chatty",
        [
            sql_step(
                "a",
                raise_.format(
                    "RAISE NOTICE 'one'; RAISE WARNING 'two' USING DETAIL = 'd', HINT = 'h'; "
                    "RAISE INFO 'three'; RAISE DEBUG 'not shown';"
                ),
            ),
            sql_step("b", raise_.format("RAISE NOTICE 'before'; PERFORM 1/0;"), onerror="s"),
            sql_step("c", "SELECT 1"),
            sql_step("d", raise_.format("FOR i IN 1..100 LOOP RAISE NOTICE 'n%', i; END LOOP;")),
        ],
    )
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"
    out = {s["jstname"]: s["jsloutput"] for s in steplogs(db, jobid)}
    assert out["a"] == "NOTICE:  one\nWARNING:  two\nDETAIL:  d\nHINT:  h\nINFO:  three"
    assert out["b"].startswith("NOTICE:  before\nERROR:  division by zero"), out["b"]
    assert out["c"] == ""
    assert out["d"].startswith("NOTICE:  n1\nNOTICE:  n2\n")
    assert "output truncated" in out["d"]
    assert len(out["d"]) < 400


def test_run_one_step_by_hand(db: Database, agent: AgentProcess) -> None:
    """`run JOB --step NAME` is one run of the job with that step alone (also a disabled
    one): one pga_joblog row, one pga_jobsteplog row; the next run runs every enabled step."""
    tick = "INSERT INTO public.tick(label) VALUES ('{}')"
    jobid = make_job(
        db,
        "three steps",
        [
            sql_step("a", tick.format("a")),
            sql_step("b", tick.format("b"), enabled=False),
            sql_step("c", tick.format("c")),
        ],
    )
    result = run_cli("run", str(jobid), "--step", "b", "--wait", "--dsn", db.dsn)
    assert result.code == 0, result.err
    runs = joblogs(db, jobid)
    assert [r["jlgstatus"] for r in runs] == ["s"]
    logs = steplogs(db, jobid)
    assert [(s["jstname"], s["jslstatus"], s["jsljlgid"]) for s in logs] == [
        ("b", "s", runs[0]["jlgid"])
    ]
    assert db.rows("SELECT label FROM public.tick") == [{"label": "b"}]
    assert db.value("SELECT count(*) FROM notifyagent.step_request") == 0
    run_now(db, jobid)
    wait_finished(db, jobid, runs=2)
    assert [s["jstname"] for s in steplogs(db, jobid)] == ["b", "a", "c"]

    unknown = run_cli("run", str(jobid), "--step", "zz", "--dsn", db.dsn)
    assert unknown.code == 2
    assert "no step with name or id 'zz'" in unknown.err
