"""Alerts end to end: real agents, a webhook and an SMTP server on 127.0.0.1 receiving them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.agent import (
    AgentProcess,
    dead_agent_with_a_run,
    make_job,
    run_now,
    sql_step,
    wait_finished,
)
from tests.compat.pgadmin import PgAdminSession, files, parse, sql_dir
from tests.pg import Database, wait_for
from tests.receivers import smtp_server, text_of, webhook

Factory = Callable[..., AgentProcess]
FAIL = "DO $$ BEGIN RAISE EXCEPTION 'boom: password=hunter2'; END $$"


def _events(docs: list[dict[str, Any]], job_id: int) -> list[str]:
    return [d["event"] for d in docs if d["job"] and d["job"]["id"] == job_id]


def test_one_alert_per_run_with_three_agents(db: Database, agent_factory: Factory) -> None:
    """A failing job with three agents: one webhook document and one e-mail (jpgAgent's
    @EMAIL_TO, through alert_email) per failed run, then one 'recovered'."""
    with webhook() as hook, smtp_server() as smtp:
        desc = (
            "nightly\n@EMAIL_ON=FAIL;\n@EMAIL_TO=ops@example.com;\n"
            "@EMAIL_SUBJECT=~job_name~: ~status~"
        )
        job = make_job(db, "etl", [sql_step("load", FAIL)])
        db.execute("UPDATE pgagent.pga_job SET jobdesc = %s WHERE jobid = %s", (desc, job))
        args = ("--alert-urls", hook.url(), "--alert-email", smtp.url())
        agents = [agent_factory(*args, station=f"s{i}") for i in range(3)]
        for n in (1, 2):
            run_now(db, job)
            wait_finished(db, job, runs=n)
        docs = hook.wait(lambda d: _events(d, job).count("failed") >= 2)
        db.execute(
            "UPDATE pgagent.pga_jobstep SET jstcode = 'SELECT 1' WHERE jstjobid = %s", (job,)
        )
        run_now(db, job)
        wait_finished(db, job, runs=3)
        docs = hook.wait(lambda d: "recovered" in _events(d, job))
        mails = smtp.wait(2)
    assert _events(docs, job) == ["failed", "failed", "recovered"]
    runs = [r["jlgid"] for r in db.rows("SELECT jlgid FROM pgagent.pga_joblog ORDER BY jlgid")]
    # the two failures ran on any of the agents, whose deliveries may arrive in either order
    first = next(d for d in docs if d["run"]["id"] == runs[0])
    assert first["version"] == 1
    assert first["job"] == {"id": job, "name": "etl"}
    assert first["run"]["id"] == runs[0]
    assert first["run"]["status"] == "f"
    assert first["run"]["started"]
    assert first["run"]["duration_s"] >= 0
    assert first["step"]["name"] == "load"
    assert first["step"]["status"] == "f"
    assert "boom" in first["step"]["output"]
    assert "hunter2" not in str(docs)
    ran = {a.station for a in agents if f"job {job} (etl) finished" in a.log()}
    assert first["station"] in ran
    assert [m["To"] for m in mails] == ["ops@example.com", "ops@example.com"]
    assert mails[0]["Subject"] == "etl: failed"
    body = text_of(mails[0])
    assert "step: load" in body
    assert "boom" in body
    assert "hunter2" not in body
    assert len(smtp.messages) == 2  # no e-mail for the recovery (@EMAIL_ON=FAIL)
    for a in agents:
        assert hook.url() not in a.log()


def test_max_failures_disables_the_job_and_enabling_it_again_resets(
    db: Database, agent_factory: Factory
) -> None:
    """max_failures = 2: two failed runs in a row disable the job (pgAdmin shows it disabled)
    with an alert saying why; pgAdmin's own "Enabled" SQL starts the count afresh."""
    directory = sql_dir()
    if directory is None:
        pytest.fail("pgAdmin's SQL files are missing (tests/compat/pgadmin-sql)")
    enable = [
        c for c in parse({p.name[:2]: p for p in files(directory)}["06"]) if c.kind == "pgadmin"
    ]
    job = make_job(db, "flaky", [sql_step("s", FAIL)])
    assert job == 1, "pgAdmin's recorded SQL names job 1"
    db.execute("UPDATE pgagent.pga_job SET jobdesc = '@notifyagent max_failures=2' WHERE jobid = 1")
    with webhook() as hook:
        agent_factory("--alert-urls", hook.url())
        run_now(db, job)
        wait_finished(db, job, runs=1)
        assert db.value("SELECT jobenabled FROM pgagent.pga_job WHERE jobid = 1") is True
        run_now(db, job)
        docs = hook.wait(lambda d: "disabled" in _events(d, job))
        assert db.value("SELECT jobenabled FROM pgagent.pga_job WHERE jobid = 1") is False
        disabled = next(d for d in docs if d["event"] == "disabled")
        assert "2 failed runs in a row" in disabled["reason"]
        assert "enable" in disabled["reason"]
        session = PgAdminSession(db.dsn)
        try:
            for call in enable:
                session.call(call)
        finally:
            session.close()
        assert db.value("SELECT jobenabled FROM pgagent.pga_job WHERE jobid = 1") is True
        run_now(db, job)
        wait_finished(db, job, runs=3)
        hook.wait(lambda d: _events(d, job).count("failed") == 3)
        assert db.value("SELECT jobenabled FROM pgagent.pga_job WHERE jobid = 1") is True
        run_now(db, job)
        hook.wait(lambda d: _events(d, job).count("disabled") == 2)
    assert db.value("SELECT jobenabled FROM pgagent.pga_job WHERE jobid = 1") is False


def test_missed_run_of_a_pinned_job_is_reported_once_per_miss(
    db: Database, agent_factory: Factory
) -> None:
    """A job pinned to a host agent that is not running: reported as missed (with why) once,
    shown by status; after it ran on its host and is missed again, reported again."""
    job = make_job(db, "pinned", [sql_step("s", "SELECT 1")], hostagent="ghost")
    with webhook() as hook:
        args = ("--alert-urls", hook.url(), "--missed-grace", "1", "--liveness-interval", "0.3")
        agent_factory(*args, station="a")
        agent_factory(*args, station="b")
        run_now(db, job)
        docs = hook.wait(lambda d: "missed" in _events(d, job))
        missed = next(d for d in docs if d["event"] == "missed")
        assert "host agent 'ghost' is not running" in missed["reason"]
        status = subprocess.run(
            [sys.executable, "-m", "notifyagent", "status", "--dsn", db.dsn, "--missed-grace", "1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert "missed" in status.stdout
        assert "'ghost' is not running" in status.stdout
        ghost = agent_factory(station="ghost")
        wait_finished(db, job, runs=1)
        ghost.stop()
        assert _events(hook.documents(), job) == ["missed"]  # once, though 2 agents check
        run_now(db, job)
        hook.wait(lambda d: _events(d, job) == ["missed", "missed"])


def test_a_dead_agent_is_reported_once(db: Database, agent_factory: Factory) -> None:
    """Two agents check liveness; the one that cleans up after the dead agent alerts."""
    job = make_job(db, "long", [sql_step("s", "SELECT 1")])
    with webhook() as hook:
        args = ("--alert-urls", hook.url(), "--liveness-interval", "0.3")
        agents = [agent_factory(*args, station=f"s{i}") for i in range(2)]
        run = dead_agent_with_a_run(db, 999_999, job)
        docs = hook.wait(lambda d: any(x["event"] == "dead_agent" for x in d))
        assert db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgid = %s", (run,)) == "d"
        # a window of several liveness rounds of both agents: no second alert
        wait_for(lambda: sum(a.log().count("cleaned up dead agent") for a in agents) >= 1)
        time.sleep(1.5)
        docs = hook.documents()
    assert [d["event"] for d in docs] == ["dead_agent"]
    assert "agent 999999 (station dead-host) is gone: 1 run(s) marked aborted" in docs[0]["reason"]


def test_alert_test_command(db: Database) -> None:
    """`notifyagent alert test --to URL`: a sample alert; a destination that refuses is
    reported (exit 1), shown without its path or token."""

    def alert_test(*urls: str) -> subprocess.CompletedProcess[str]:
        to = [x for u in urls for x in ("--to", u)]
        cmd = [sys.executable, "-m", "notifyagent", "alert", "test", "--alert-timeout", "2", *to]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    with webhook() as hook:
        ok = alert_test(hook.url("secret-token"))
        assert ok.returncode == 0, ok.stderr
        assert [d["event"] for d in hook.documents()] == ["test"]
        assert hook.requests[0][0] == "/secret-token"
        bad = alert_test(hook.url("secret-token"), "json://127.0.0.1:1/other-token")
    assert bad.returncode == 1
    assert f"json://127.0.0.1:{hook.port}: sent" in bad.stdout
    assert "json://127.0.0.1:1: FAILED" in bad.stdout
    assert "token" not in bad.stdout + bad.stderr
    none = alert_test()
    assert none.returncode != 0
    assert "no destination: give --to URL" in none.stderr
