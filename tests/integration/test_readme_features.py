"""README promises with no better home: history retention timing and locking, the config file
named by NOTIFYAGENT_CONFIG, and SIGHUP reloads of ``dsn`` and ``station``."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.agent import AgentProcess, joblogs, make_job, run_now, sql_step, tick_job, wait_finished
from tests.pg import Database, Server, new_database, wait_for

Factory = Callable[..., AgentProcess]


@dataclass
class ConfiguredAgent(AgentProcess):
    """``notifyagent serve`` with only ``args`` on its command line: unlike the usual test agent
    it gets no ``--dsn``/``--station``, so the environment and the config file decide them."""

    def start(self, wait_registered: bool = True) -> AgentProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFYAGENT_", "PG"))}
        env.update(self.env)
        with self.logfile.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "notifyagent", "serve", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if wait_registered:
            self.wait_log("queue loaded", timeout=20)
        return self


@pytest.fixture
def configured() -> Iterator[Callable[..., ConfiguredAgent]]:
    started: list[ConfiguredAgent] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ConfiguredAgent:
        a = ConfiguredAgent("", args, env=env or {})
        started.append(a)
        a.start()
        return a

    yield start
    for a in started:
        if a.proc is not None and a.proc.poll() is None:
            a.stop()
        a.close()


def _old_runs(db: Database, jobid: int, count: int) -> None:
    db.execute(
        "INSERT INTO pgagent.pga_joblog (jlgjobid, jlgstatus, jlgstart, jlgduration) "
        "SELECT %s, 's', now() - interval '1 day' - g * interval '1 s', '1 s' "
        "FROM generate_series(1, %s) g",
        (jobid, count),
    )


def _runs(db: Database, jobid: int) -> int:
    return int(db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgjobid = %s", (jobid,)))


def _record_deletes(db: Database) -> None:
    """Log every DELETE statement on pga_joblog (rows, transaction, application_name): how the
    test sees the batches of the retention, each its own statement and transaction."""
    db.execute(
        "CREATE TABLE public.deletes (rows int, xid bigint, app text, "
        "at timestamptz DEFAULT clock_timestamp());"
        "CREATE FUNCTION public.record_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO public.deletes (rows, xid, app) SELECT count(*), txid_current(), "
        "current_setting('application_name') FROM gone; RETURN NULL; END $$;"
        "CREATE TRIGGER record_delete AFTER DELETE ON pgagent.pga_joblog "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION public.record_delete()"
    )


def _deleted_counts(agent: AgentProcess) -> list[int]:
    return [int(n) for n in re.findall(r"history cleanup: deleted (\d+) run", agent.log())]


# -- history retention ------------------------------------------------------------------------


def test_history_interval_repeats_the_cleanup(db: Database, agent_factory: Factory) -> None:
    """--history-interval S: the cleanup runs again every S seconds, so runs that became
    surplus after the first cleanup are gone about S seconds later."""
    job = tick_job(db, "kept")
    _old_runs(db, job, 3)
    agent = agent_factory("--history-keep", "1", "--history-interval", "1")
    agent.wait_log("history cleanup: deleted 2 run(s)")
    assert _runs(db, job) == 1
    _old_runs(db, job, 4)  # the newest (highest jlgid) of these is kept, the rest go
    added = time.monotonic()
    wait_for(lambda: _runs(db, job) == 1, 10, what="the next cleanup")
    took = time.monotonic() - added
    # the runs were added right after a cleanup, so the next one comes one interval (1 s)
    # later (measured 0.97-1.0 s); a second of slack for a loaded machine
    assert took < 2.0, took
    assert 4 in _deleted_counts(agent)


def test_history_is_deleted_in_batches(db: Database, agent_factory: Factory) -> None:
    """A big history goes in several small transactions (1000 runs each), not one long one
    that would hold thousands of row locks on pga_joblog."""
    job = tick_job(db, "big")
    _old_runs(db, job, 5000)
    _record_deletes(db)
    agent = agent_factory("--history-keep", "1", "--history-interval", "600")
    agent.wait_log("history cleanup: deleted 4999 run(s)", timeout=30)
    assert _runs(db, job) == 1
    batches = db.rows("SELECT rows, xid FROM public.deletes WHERE rows > 0 ORDER BY at")
    assert sum(b["rows"] for b in batches) == 4999
    assert len(batches) >= 5, batches
    assert max(b["rows"] for b in batches) <= 1000, batches
    assert len({b["xid"] for b in batches}) == len(batches)  # one transaction per batch


def test_history_cleanup_one_agent_at_a_time(db: Database, agent_factory: Factory) -> None:
    """While agent A is cleaning up (here: held up by a row lock the test takes), agent B
    finds the retention lock taken, says so and deletes nothing; once A is done, all the
    surplus is gone and every deletion was A's."""
    job = tick_job(db, "shared")
    _old_runs(db, job, 3000)
    _record_deletes(db)
    oldest = db.value("SELECT min(jlgid) FROM pgagent.pga_joblog WHERE jlgjobid = %s", (job,))
    args = ("--history-keep", "1", "--history-interval", "1")
    with psycopg.connect(db.dsn) as blocker:
        blocker.execute(
            "SELECT 1 FROM pgagent.pga_joblog WHERE jlgid = %s FOR UPDATE", (oldest,)
        ).fetchall()
        a = agent_factory(*args, station="a", dsn=f"{db.dsn} application_name=agent-a")

        def a_blocked() -> bool:
            return bool(
                db.value(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'agent-a' "
                    "AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM pgagent.pga_joblog%'"
                )
            )

        wait_for(a_blocked, 15, what="agent A's cleanup to wait on the test's row lock")
        b = agent_factory(*args, station="b", dsn=f"{db.dsn} application_name=agent-b")
        # B tries at start and then every second, and gives way each time
        wait_for(
            lambda: b.log().count("history cleanup: another agent is doing it") >= 2,
            10,
            what="agent B to find the cleanup taken, twice",
        )
        holders = db.rows(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert [h["application_name"] for h in holders] == ["agent-a"]
        assert _deleted_counts(b) == []
        assert _runs(db, job) > 1  # nothing from B got past A's blocked batch
        blocker.rollback()
    a.wait_log("history cleanup: deleted", timeout=15)
    wait_for(lambda: _runs(db, job) == 1, 10, what="the surplus to be gone")
    assert sum(_deleted_counts(a)) + sum(_deleted_counts(b)) == 2999
    apps = {r["app"] for r in db.rows("SELECT app FROM public.deletes WHERE rows > 0")}
    assert apps == {"agent-a"}, apps


# -- the config file named by NOTIFYAGENT_CONFIG ------------------------------------------------


def test_config_file_from_environment(
    db: Database, configured: Callable[..., ConfiguredAgent], tmp_path: Path
) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text(f'dsn = "{db.dsn}"\nstation = "from-file"\nmax_concurrency = 3\n')
    agent = configured(env={"NOTIFYAGENT_CONFIG": str(conf)})
    assert "station 'from-file'" in agent.log()
    assert "max concurrency 3" in agent.log()
    assert db.value("SELECT jagstation FROM pgagent.pga_jobagent") == "from-file"
    # SIGHUP reads the same file again
    conf.write_text(f'dsn = "{db.dsn}"\nstation = "from-file"\nmax_concurrency = 5\n')
    agent.signal(signal.SIGHUP)
    agent.wait_log("reload: max_concurrency 3 -> 5")


# -- SIGHUP: dsn and station --------------------------------------------------------------------


def _slow_job_running(db: Database, agent_id: int) -> int:
    slow = make_job(db, "slow", [sql_step("s", "SELECT pg_sleep(3)")])
    run_now(db, slow)
    wait_for(
        lambda: (
            db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (slow,)) == agent_id
            and [r["jlgstatus"] for r in joblogs(db, slow)] == ["r"]
        ),
        10,
        what="the slow job to run",
    )
    return slow


def test_sighup_changes_dsn_and_station(
    db: Database, configured: Callable[..., ConfiguredAgent], tmp_path: Path
) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text(f'dsn = "{db.dsn}"\nstation = "before"\n')
    agent = configured("--config", str(conf), "--log-level", "DEBUG")
    old = int(db.value("SELECT jagpid FROM pgagent.pga_jobagent WHERE jagstation = 'before'"))
    slow = _slow_job_running(db, old)
    new_dsn = f"{db.dsn} application_name=notifyagent-reloaded"
    conf.write_text(f'dsn = "{new_dsn}"\nstation = "after"\n')
    agent.signal(signal.SIGHUP)
    agent.wait_log("reload: station 'before' -> 'after'")

    def reregistered() -> int | None:
        rows = db.rows("SELECT jagpid, jagstation FROM pgagent.pga_jobagent")
        return int(rows[0]["jagpid"]) if [r["jagstation"] for r in rows] == ["after"] else None

    new = wait_for(reregistered, 10, what="the agent under its new station")
    assert new != old  # the old row is gone, not renamed
    # the running job moved to the new identity and was not interrupted
    assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (slow,)) == new
    assert [r["jlgstatus"] for r in joblogs(db, slow)] == ["r"]
    # the new DSN is in use: the listener and the new pool connect with it
    wait_for(
        lambda: db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'notifyagent-reloaded' AND pid = %s",
            (new,),
        ),
        5,
        what="the listener on the new DSN",
    )
    logs = wait_finished(db, slow)
    assert [r["jlgstatus"] for r in logs] == ["s"]
    assert logs[0]["jlgduration"].total_seconds() >= 3
    # jobs pinned to the new station now run here; those pinned to the old one do not
    here = tick_job(db, "here", hostagent="after")
    there = tick_job(db, "there", hostagent="before")
    run_now(db, here, there)
    wait_finished(db, here)
    assert joblogs(db, there) == []


@pytest.fixture
def other_db(pg_server: Server) -> Iterator[Database]:
    yield from new_database(pg_server, prefix="other")


def test_sighup_moves_to_another_database(
    db: Database, other_db: Database, configured: Callable[..., ConfiguredAgent], tmp_path: Path
) -> None:
    """A DSN naming another database: the agent leaves the old one cleanly (the run that was
    going on there finishes and is released there, no agent row is left behind) and serves
    the new one."""
    conf = tmp_path / "agent.toml"
    conf.write_text(f'dsn = "{db.dsn}"\nstation = "mover"\n')
    agent = configured("--config", str(conf), "--log-level", "DEBUG")
    old = int(db.value("SELECT jagpid FROM pgagent.pga_jobagent"))
    slow = _slow_job_running(db, old)
    conf.write_text(f'dsn = "{other_db.dsn}"\nstation = "mover"\n')
    agent.signal(signal.SIGHUP)
    wait_for(
        lambda: other_db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1,
        10,
        what="the agent registered in the other database",
    )
    there = tick_job(other_db, "there")  # the same job id as "slow" in the old database
    run_now(other_db, there)
    started = wait_finished(other_db, there)[0]["jlgstart"]
    # it did not wait for the old database's run of "its" job id (a 3 s sleep)
    assert started < joblogs(db, slow)[0]["jlgstart"] + dt.timedelta(seconds=3)
    # the old database: the run ends normally and the job is released, no agent row stays
    logs = wait_finished(db, slow, timeout=10)
    assert [r["jlgstatus"] for r in logs] == ["s"]
    wait_for(
        lambda: db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 0,
        5,
        what="the old agent row to go",
    )
