"""Operator commands against a real agent: status, run --wait, history."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

from tests.agent import (
    AgentProcess,
    batch_step,
    joblogs,
    make_job,
    run_now,
    sql_step,
    wait_finished,
)
from tests.cli import run_cli
from tests.pg import Database, wait_for


def test_run_wait_prints_each_step(db: Database, agent: AgentProcess) -> None:
    make_job(
        db,
        "report",
        [
            # the sleep keeps the run going for several of run --wait's 0.1 s polls
            sql_step("a_count", "SELECT g FROM generate_series(1, 4) g, pg_sleep(0.5) s"),
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
    assert "job 1 (report) is running (run 1)" in r.err.splitlines()
    assert "no live agent" not in r.err


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


def _table(out: str, title: str) -> list[dict[str, str]]:
    """The rows of one table of ``status``'s text output, cut where the dashes under the
    header say each column starts and ends."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header, dashes = lines[start + 1], lines[start + 2]
    spans = [m.span() for m in re.finditer(r"-+", dashes)]
    names = [header[a:b].strip() for a, b in spans]
    rows = []
    for line in lines[start + 3 :]:
        if not line.strip():
            break
        rows.append({n: line[a:b].strip() for n, (a, b) in zip(names, spans, strict=True)})
    return rows


def _when(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S%z")


def test_status_shows_next_run_and_where_a_job_runs(
    db: Database, agent_factory: Callable[..., AgentProcess]
) -> None:
    """status: each agent with its station and since when it runs; each job with its next run,
    and a running job with the station of the agent that runs it (text and --json)."""
    agent_factory(station="alpha")
    agent_factory(station="beta")
    slow = make_job(db, "slow", [sql_step("s", "SELECT pg_sleep(3)")])
    nightly = make_job(db, "nightly", [sql_step("s", "SELECT 1")])
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) VALUES "
        "(%s, 'n', (SELECT array_agg(g = 30 ORDER BY g) FROM generate_series(0, 59) g), "
        "(SELECT array_agg(g = 3 ORDER BY g) FROM generate_series(0, 23) g))",
        (nightly,),
    )
    run_now(db, slow)
    wait_for(lambda: [r["jlgstatus"] for r in joblogs(db, slow)] == ["r"], 10, what="slow to run")
    agents = {
        r["jagstation"]: r
        for r in db.rows("SELECT jagpid, jagstation, jaglogintime FROM pgagent.pga_jobagent")
    }
    runner = db.value(
        "SELECT jagstation FROM pgagent.pga_jobagent JOIN pgagent.pga_job ON jobagentid = jagpid"
    )
    assert runner in agents
    next_run = db.value("SELECT jobnextrun FROM pgagent.pga_job WHERE jobid = %s", (nightly,))
    assert (next_run.hour, next_run.minute) == (3, 30)

    r = run_cli("status", "--dsn", db.dsn)
    assert r.code == 0, r.err
    shown = {a["station"]: a for a in _table(r.out, "agents (2)")}
    assert shown.keys() == {"alpha", "beta"}
    for station, a in shown.items():
        assert a["pid"] == str(agents[station]["jagpid"])
        assert _when(a["since"]) == agents[station]["jaglogintime"].replace(microsecond=0)
        assert a["alive"] == "yes"
    jobs = {j["name"]: j for j in _table(r.out, "jobs (2)")}
    assert jobs["slow"]["running on"] == runner
    assert jobs["slow"]["last result"] == "running"
    assert _when(jobs["nightly"]["next run"]) == next_run.replace(microsecond=0)
    assert jobs["nightly"]["running on"] == "-"
    assert jobs["nightly"]["last run"] == "-"

    r = run_cli("status", "--json", "--dsn", db.dsn)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    by_station = {a["jagstation"]: a for a in data["agents"]}
    for station, row in agents.items():
        assert by_station[station]["jagpid"] == row["jagpid"]
        assert dt.datetime.fromisoformat(by_station[station]["jaglogintime"]) == row["jaglogintime"]
        assert by_station[station]["alive"] is True
    by_name = {j["jobname"]: j for j in data["jobs"]}
    assert by_name["slow"]["running_on"] == runner
    assert by_name["slow"]["last_status"] == "r"
    assert dt.datetime.fromisoformat(by_name["nightly"]["jobnextrun"]) == next_run
    assert by_name["nightly"]["running_on"] is None
    assert wait_finished(db, slow)[0]["jlgstatus"] == "s"
