"""Live reload of the config file on SIGHUP."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from tests.agent import AgentProcess, joblogs, make_job, run_now, sql_step, tick_job, wait_finished
from tests.pg import Database, wait_for

Factory = Callable[..., AgentProcess]


def running(db: Database) -> int:
    return int(db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r'"))


def test_sighup_raises_concurrency_while_a_job_runs(
    db: Database, agent_factory: Factory, tmp_path: Path
) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text("max_concurrency = 1\n")
    agent = agent_factory("--config", str(conf))
    slow = make_job(db, "slow", [sql_step("s", "SELECT pg_sleep(3)")])
    others = [tick_job(db, f"other{i}") for i in range(3)]
    run_now(db, slow)
    wait_for(lambda: running(db) == 1, 10, what="the slow job to start")
    run_now(db, *others)
    # all three are queued (one notification, logged in one pass) before we look
    wait_for(
        lambda: all(f"queue: job {j} due at" in agent.log() for j in others),
        5,
        what="the other jobs queued",
    )
    assert running(db) == 1  # the others wait for the single slot
    assert db.value("SELECT count(*) FROM public.tick") == 0
    conf.write_text("max_concurrency = 4\n")
    reloaded_at = db.value("SELECT clock_timestamp()")
    agent.signal(signal.SIGHUP)
    agent.wait_log("reload: max_concurrency 1 -> 4")
    wait_for(lambda: db.value("SELECT count(*) FROM public.tick") == 3, 5, what="others ran")
    # they waited for the reload: none was claimed while the single slot was taken
    starts = [joblogs(db, j)[0]["jlgstart"] for j in others]
    assert min(starts) > reloaded_at, (starts, reloaded_at)
    # ...while the slow job is still running, untouched by the reload
    assert db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgjobid = %s", (slow,)) == "r"
    assert wait_finished(db, slow)[0]["jlgstatus"] == "s"


def test_bad_reload_is_refused_and_nothing_changes(
    db: Database, agent_factory: Factory, tmp_path: Path
) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text('max_concurrency = 1\nlog_level = "DEBUG"\n')
    agent = agent_factory("--config", str(conf))
    conf.write_text("max_concurrency = 0\n")
    agent.signal(signal.SIGHUP)
    agent.wait_log("reload refused, keeping the current settings")
    assert "'max_concurrency': 0 is not allowed; expected an integer >= 1" in agent.log()
    conf.write_text("max_concurrency = [1, 2\n")
    agent.signal(signal.SIGHUP)
    agent.wait_log("not valid TOML")
    # still serving, still with one slot
    a = make_job(db, "a", [sql_step("s", "SELECT pg_sleep(1)")])
    b = tick_job(db, "b")
    run_now(db, a, b)
    wait_finished(db, a)
    wait_finished(db, b)
    # never both at once: due at the same instant, a (the lower id) is claimed first and b
    # only once a has released the single slot
    a_log, b_log = joblogs(db, a)[0], joblogs(db, b)[0]
    assert b_log["jlgstart"] >= a_log["jlgstart"] + a_log["jlgduration"], (a_log, b_log)
    assert "reload:" not in agent.log().replace("reload: nothing changed", "")
