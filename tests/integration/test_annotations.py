"""Annotations in pgAdmin's fields (job Comment, step Description), saved with pgAdmin's own
update SQL (tests/compat/pgadmin-sql/04_update_job.sql, 08_change_step.sql) while an agent
runs: each takes effect without a restart, a bad one is reported and the job still runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.agent import AgentProcess, make_job, run_now, sql_step, steplogs, wait_finished
from tests.cli import run_cli
from tests.pg import Database, wait_for

Factory = Callable[..., AgentProcess]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def save_comment(db: Database, jobid: int, comment: str) -> None:
    """pgAdmin's job dialog saving a changed Comment (04_update_job.sql: changed fields only)."""
    db.execute(
        f"UPDATE pgagent.pga_job\nSET jobdesc={_literal(comment)}::text\nWHERE jobid = {jobid};"
    )


def save_step_description(db: Database, jobid: int, step: str, desc: str) -> None:
    """pgAdmin's step dialog saving a changed Description (08_change_step.sql)."""
    stepid = db.value(
        "SELECT jstid FROM pgagent.pga_jobstep WHERE jstjobid = %s AND jstname = %s",
        (jobid, step),
    )
    db.execute(
        f"UPDATE pgagent.pga_jobstep\nSET\n    \n    jstdesc={_literal(desc)}\n"
        f"WHERE jstid={stepid}::integer AND jstjobid={jobid}::integer;"
    )


def saved(agent: AgentProcess, jobid: int, save: Callable[[], None]) -> None:
    """Do ``save`` and wait until the running agent has read the job's annotations again."""
    mark = f"job {jobid}: annotation"
    before = agent.log().count(mark)
    save()
    wait_for(lambda: agent.log().count(mark) > before, 10, what=f"{mark!r} in the agent log")


def _seconds(value: timedelta | None) -> float:
    assert value is not None
    return value.total_seconds()


@pytest.mark.parametrize(
    ("field", "text", "which", "source"),
    [
        ("job", "Nightly purge (owner: ops)\n@notifyagent job_timeout=1s", "job", "annotation"),
        ("job", "Nightly purge\n@JOB_TIMEOUT=1 s;", "job", "annotation"),
        ("step", "Long step\n@notifyagent step_timeout=1s", "step", "step annotation"),
        ("step", "@JOB_STEP_TIMEOUT=1000 ms;", "step", "step annotation"),
    ],
)
def test_annotated_timeouts_fire(
    db: Database, agent: AgentProcess, field: str, text: str, which: str, source: str
) -> None:
    jobid = make_job(
        db, "slow", [sql_step("a", "SELECT pg_sleep(0.3)"), sql_step("b", "SELECT pg_sleep(29.5)")]
    )
    if field == "job":
        saved(agent, jobid, lambda: save_comment(db, jobid, text))
    else:
        saved(agent, jobid, lambda: save_step_description(db, jobid, "b", text))
    run_now(db, jobid)
    run = wait_finished(db, jobid, timeout=15)[0]
    assert run["jlgstatus"] == "f"
    logs = steplogs(db, jobid)
    assert [(s["jstname"], s["jslstatus"]) for s in logs] == [("a", "s"), ("b", "f")]
    assert f"the {which} timeout of 1s ({source} in pgAdmin's fields)" in logs[1]["jsloutput"]
    assert _seconds(logs[1]["jslduration"]) < 2.5


def test_annotated_retries_happen(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(db, "flaky", [sql_step("a", "SELECT 1/0")])
    saved(agent, jobid, lambda: save_comment(db, jobid, "@notifyagent retries=1 retry_delay=0.3s"))
    run_now(db, jobid)
    logs = wait_finished(db, jobid, runs=2, timeout=15)
    assert [r["jlgstatus"] for r in logs] == ["f", "f"]
    agent.wait_log(f"job {jobid} (flaky) failed: retry 1 of 1")


@pytest.mark.parametrize("text", ["@RUN_IN_PARALLEL=true;", "@notifyagent parallel=true"])
def test_parallel_steps_overlap(db: Database, agent: AgentProcess, text: str) -> None:
    jobid = make_job(
        db,
        "fan out",
        [
            sql_step("a", "SELECT pg_sleep(1)"),
            sql_step("b", "SELECT pg_sleep(1)"),
            sql_step("c", "SELECT 1"),
        ],
    )
    saved(agent, jobid, lambda: save_step_description(db, jobid, "b", text))
    run_now(db, jobid)
    run = wait_finished(db, jobid)[0]
    assert run["jlgstatus"] == "s"
    a, b, c = steplogs(db, jobid)
    assert [s["jstname"] for s in (a, b, c)] == ["a", "b", "c"]
    a_end = a["jslstart"] + a["jslduration"]
    b_end = b["jslstart"] + b["jslduration"]
    assert b["jslstart"] < a_end, "b started only after a ended"
    assert c["jslstart"] >= max(a_end, b_end) - timedelta(milliseconds=5), "c did not wait"
    assert _seconds(run["jlgduration"]) < 1.8


def test_step_connects_to_the_annotated_database(db: Database, agent: AgentProcess) -> None:
    login = db.value("SELECT current_user")
    code = f"SELECT 1/(current_database() = 'postgres' AND current_user = '{login}')::int"
    jobid = make_job(db, "elsewhere", [sql_step("a", code)])
    password = "s3cret-in-a-comment"
    desc = f"@DATABASE_NAME=postgres;\n@DATABASE_LOGIN={login};\n@DATABASE_PASSWORD={password};"
    saved(agent, jobid, lambda: save_step_description(db, jobid, "a", desc))
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"
    agent.wait_log("readable by every pgAdmin user of that database")
    # the login is used too: one that does not exist fails the step, naming it
    saved(
        agent, jobid, lambda: save_step_description(db, jobid, "a", desc.replace(login, "nobody_x"))
    )
    run_now(db, jobid)
    runs = wait_finished(db, jobid, runs=2)
    assert runs[1]["jlgstatus"] == "f"
    output = steplogs(db, jobid)[1]["jsloutput"]
    assert "nobody_x" in output
    status = run_cli("status", str(jobid), "--dsn", db.dsn)
    assert status.code == 0, status.err
    assert "password=********" in status.out
    for text in (agent.log(), output, status.out, status.err):
        assert password not in text


def test_bad_annotation_is_reported_and_the_job_runs(db: Database, agent_factory: Factory) -> None:
    from notifyagent.cluster import free_port
    from tests.integration.test_operations import get, samples

    port = free_port()
    agent = agent_factory("--metrics-address", str(port))
    jobid = make_job(db, "typo", [sql_step("a", "SELECT 1")])
    comment = "@notifyagent retries=lots overlap=queue-one\n@JOB_TIMEOUT=soon;"
    saved(agent, jobid, lambda: save_comment(db, jobid, comment))
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"
    log = agent.log()
    assert "WARNING" in log
    assert f"job {jobid}: annotation error: job comment line 1: retries: " in log
    assert f"job {jobid}: annotation error: job comment line 2: @JOB_TIMEOUT: " in log
    errors = ("notifyagent_annotation_errors", ())
    metrics = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: samples(get(metrics)[1])[errors] == 2.0, 5, what="2 annotation errors")
    # reported once per change: another reload of the job's policy logs nothing new
    reloads = log.count("policies reloaded")
    db.execute("INSERT INTO notifyagent.job_policy (jobid) VALUES (%s)", (jobid,))
    wait_for(lambda: agent.log().count("policies reloaded") > reloads, 10, what="a reload")
    assert agent.log().count("annotation error: job comment line 1") == 1
    result = run_cli("status", "typo", "--json", "--dsn", db.dsn)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["policy"]["overlap"] == {"value": "queue-one", "source": "annotation"}
    assert report["policy"]["retries"] == {"value": 0, "source": "row"}
    assert [p["where"] for p in report["problems"]] == ["job comment line 1", "job comment line 2"]
    assert all(p["fix"] for p in report["problems"])
    # fixed in pgAdmin: the report and the metric clear
    saved(agent, jobid, lambda: save_comment(db, jobid, "@notifyagent overlap=queue-one"))
    wait_for(lambda: samples(get(metrics)[1])[errors] == 0.0, 5, what="no annotation errors")


def test_status_job_shows_where_each_value_came_from(db: Database) -> None:
    assert run_cli("install", "--dsn", db.dsn).code == 0
    jobid = make_job(db, "purge", [sql_step("a", "SELECT 1")])
    save_comment(db, jobid, "@notifyagent retries=3 job_timeout=10m\n@EMAIL_ON=FAIL;")
    db.execute("INSERT INTO notifyagent.job_policy (jobid, retries) VALUES (%s, 2)", (jobid,))
    result = run_cli("status", "purge", "--dsn", db.dsn)
    assert result.code == 0, result.err
    lines = {line.split()[0]: line.split()[1:] for line in result.out.splitlines() if line}
    assert lines["retries"] == ["2", "row"]
    assert lines["job_timeout"] == ["600s", "annotation"]
    assert lines["overlap"] == ["skip", "row"]
    assert "sent through the agent's alert_email setting" in result.out
    assert "on: FAIL" in result.out
