"""Operator commands against a real agent: status, run --wait, history."""

from __future__ import annotations

import json

from tests.agent import AgentProcess, batch_step, make_job, sql_step
from tests.cli import run_cli
from tests.pg import Database


def test_run_wait_prints_each_step(db: Database, agent: AgentProcess) -> None:
    make_job(
        db,
        "report",
        [
            sql_step("a_count", "SELECT g FROM generate_series(1, 4) g"),
            batch_step("b_echo", "echo hello from batch"),
            sql_step("c_fail", "SELECT 1/0", onerror="i"),
        ],
    )
    r = run_cli("run", "report", "--wait", "--dsn", db.dsn)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "job 1 (report)"
    assert lines[1].startswith("run 1: success (s), started ")
    assert "  step a_count: success (s), result 4, " in r.out
    assert "  step b_echo: success (s), result 0, " in r.out
    assert "    | hello from batch" in r.out
    assert "  step c_fail: ignore" not in r.out  # the status word comes from the code table
    assert "  step c_fail: internal error (i), result -1" in r.out
    assert "    | ERROR:  division by zero" in r.out
    assert "is running (run 1)" in r.err or r.err == ""


def test_run_wait_failure_exit_code_and_json(db: Database, agent: AgentProcess) -> None:
    make_job(db, "broken", [sql_step("a", "SELECT * FROM missing_table")])
    r = run_cli("run", "broken", "--wait", "--json", "--dsn", db.dsn)
    assert r.code == 1
    data = json.loads(r.out)
    assert data["run"]["jlgstatus"] == "f"
    assert data["run"]["steps"][0]["jslresult"] == -1
    assert "ended failed" in r.err


def test_run_refuses_a_disabled_job(db: Database) -> None:
    make_job(db, "off", [sql_step("a", "SELECT 1")], enabled=False)
    r = run_cli("run", "off", "--dsn", db.dsn)
    assert r.code == 2
    assert "is disabled" in r.err


def test_status_and_history(db: Database, agent: AgentProcess) -> None:
    make_job(db, "hist", [sql_step("a", "SELECT 1")])
    for _ in range(3):
        assert run_cli("run", "1", "--wait", "--dsn", db.dsn).code == 0
    r = run_cli("status", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "test-station" in r.out
    job_line = next(line for line in r.out.splitlines() if line.startswith("1 "))
    assert "hist" in job_line
    assert "success" in job_line
    status = json.loads(run_cli("status", "--json", "--dsn", db.dsn).out)
    assert status["agents"][0]["alive"] is True
    assert status["jobs"][0]["last_status"] == "s"
    r = run_cli("history", "hist", "--limit", "2", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == "job 1 (hist): last 2 run(s)"
    assert r.out.count("run ") == 2
    history = json.loads(run_cli("history", "hist", "--json", "--dsn", db.dsn).out)
    assert [run["jlgid"] for run in history["runs"]] == [3, 2, 1]
