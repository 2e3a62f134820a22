"""``notifyagent dev``: throwaway cluster, jobs file applied on every save, clean Ctrl-C."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from notifyagent import conninfo
from tests.agent import joblogs, run_now, tick_job, wait_finished
from tests.pg import Database, wait_for

JOBS = """
[[jobs]]
name = "tick"

[[jobs.steps]]
name = "insert"
kind = "sql"
database = "postgres"
code = "SELECT 1"

[[jobs.schedules]]
name = "nightly"
minutes = "0"
hours = "{hour}"
"""


def _query(dsn: str, sql: str) -> object:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql.encode()).fetchone()
        return row[0] if row else None


def test_dev_mode_applies_every_save_and_cleans_up(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(JOBS.format(hour=3))
    config = tmp_path / "notifyagent.toml"
    config.write_text('log_level = "DEBUG"\n')
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFYAGENT_", "PG"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "notifyagent", "dev", str(jobs), "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: "dev mode: serving" in log.read_text(), 60, what="dev mode ready")
        text = log.read_text()
        dsn = re.search(r"embedded PostgreSQL ready: dsn (.+)$", text, re.MULTILINE)
        assert dsn is not None, text
        dsn_text = dsn.group(1).strip()
        assert "apply: " in text
        assert _query(dsn_text, "SELECT jschours[4] FROM pgagent.pga_schedule") is True

        # edit the schedule: 04:00 instead of 03:00
        saved = time.time()
        replacement = tmp_path / "jobs.toml.new"
        replacement.write_text(JOBS.format(hour=4))
        replacement.replace(jobs)  # how editors save: a new file renamed over the old one
        wait_for(
            lambda: _query(dsn_text, "SELECT jschours[5] FROM pgagent.pga_schedule") is True,
            5,
            what="the new schedule in pga_schedule",
        )
        queued = wait_for(
            lambda: re.search(
                r"^(\S+ \S+) DEBUG +queue: job 1 due at \S+ 04:00:00", log.read_text(), re.M
            ),
            5,
            what="the agent's queue to hold the 04:00 run",
        )
        # README: "an edited schedule is live within a second". Measured from the save to the
        # agent's own log line (after the apply committed and its notification was handled),
        # so the test's polling does not count; typically ~0.15 s (file-watch debounce, one
        # transaction, one notification), so 1 s holds on a loaded machine too
        live = dt.datetime.strptime(queued.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        assert live - saved < 1.0, live - saved

        # the config file is watched too
        config.write_text('log_level = "DEBUG"\nmax_concurrency = 3\n')
        wait_for(lambda: "reload: max_concurrency 32 -> 3" in log.read_text(), 5)

        # a broken save is reported and changes nothing
        jobs.write_text("[[jobs]]\nname = 1\n")
        wait_for(lambda: "jobs file not applied" in log.read_text(), 5)
        assert _query(dsn_text, "SELECT count(*) FROM pgagent.pga_job") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    host = conninfo.parse(dsn_text)["host"]
    assert not Path(host).exists()  # the throwaway cluster's files are gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert host not in ps  # and so are its processes
    log.unlink()


DEV_JOBS = """
[[jobs]]
name = "from the file"

[[jobs.steps]]
name = "insert"
kind = "sql"
database = "{db}"
code = "INSERT INTO public.tick(label) VALUES ('dev')"

[[jobs.schedules]]
name = "nightly"
minutes = "0"
hours = "3"
"""


def test_dev_mode_against_an_existing_database(db: Database, tmp_path: Path) -> None:
    """``dev --dsn``: no throwaway cluster; the file's jobs are applied to that database (its
    other jobs are left alone), they run there, and Ctrl-C stops the agent and leaves the
    database, its jobs and their history in place."""
    theirs = tick_job(db, "not in the file")
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(DEV_JOBS.format(db=db.name))
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFYAGENT_", "PG"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "notifyagent", "dev", str(jobs), "--dsn", db.dsn,
             "--station", "dev-station", "--log-level", "DEBUG"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    try:
        wait_for(lambda: "dev mode: serving" in log.read_text(), 30, what="dev mode ready")
        assert "throwaway" not in log.read_text()
        assert db.value("SELECT jagstation FROM pgagent.pga_jobagent") == "dev-station"
        mine = db.value("SELECT jobid FROM pgagent.pga_job WHERE jobname = 'from the file'")
        assert mine is not None, log.read_text()
        run_now(db, mine)
        assert [r["jlgstatus"] for r in wait_finished(db, mine)] == ["s"]
        assert db.value("SELECT label FROM public.tick") == "dev"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert code == 0, log.read_text()
    # the database is still there, with both jobs and the run's history; the agent row is gone
    names = [r["jobname"] for r in db.rows("SELECT jobname FROM pgagent.pga_job ORDER BY jobid")]
    assert names == ["not in the file", "from the file"]
    assert [r["jlgstatus"] for r in joblogs(db, mine)] == ["s"]
    assert joblogs(db, theirs) == []
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 0
    assert db.server.cluster is None or db.server.cluster.is_running()
