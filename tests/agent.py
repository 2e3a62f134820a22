"""Helpers for integration tests: a real ``notifyagent serve`` process and jobs to run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.pg import Database, wait_for


@dataclass
class StepSpec:
    """One pga_jobstep row; ``kind`` 's' (SQL) or 'b' (batch)."""

    name: str
    code: str
    kind: str = "s"
    dbname: str = ""
    connstr: str = ""
    onerror: str = "f"
    enabled: bool = True


def sql_step(name: str, code: str, **kw: Any) -> StepSpec:
    return StepSpec(name, code, "s", **kw)


def batch_step(name: str, code: str, **kw: Any) -> StepSpec:
    return StepSpec(name, code, "b", **kw)


def make_job(
    db: Database,
    name: str,
    steps: Sequence[StepSpec] = (),
    *,
    enabled: bool = True,
    hostagent: str = "",
) -> int:
    """Insert a job and its steps (SQL steps default to the test database); return its id."""
    jobid = int(
        db.value(
            "INSERT INTO pgagent.pga_job (jobjclid, jobname, jobenabled, jobhostagent) "
            "VALUES (1, %s, %s, %s) RETURNING jobid",
            (name, enabled, hostagent),
        )
    )
    for s in steps:
        dbname = s.dbname or (db.name if s.kind == "s" and not s.connstr else "")
        db.execute(
            "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname, "
            "jstconnstr, jstonerror, jstenabled) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (jobid, s.name, s.kind, s.code, dbname, s.connstr, s.onerror, s.enabled),
        )
    return jobid


def tick_job(db: Database, name: str, **kw: Any) -> int:
    """A one-step SQL job that records its run in public.tick with label = name."""
    code = f"INSERT INTO public.tick(label) VALUES ('{name}')"
    return make_job(db, name, [sql_step("step", code)], **kw)


def run_now(db: Database, *jobids: int) -> None:
    db.execute(
        "UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = ANY(%s)", (list(jobids),)
    )


def joblogs(db: Database, jobid: int) -> list[dict[str, Any]]:
    return db.rows("SELECT * FROM pgagent.pga_joblog WHERE jlgjobid = %s ORDER BY jlgid", (jobid,))


def steplogs(db: Database, jobid: int) -> list[dict[str, Any]]:
    return db.rows(
        "SELECT sl.*, s.jstname FROM pgagent.pga_jobsteplog sl "
        "JOIN pgagent.pga_joblog l ON l.jlgid = sl.jsljlgid "
        "JOIN pgagent.pga_jobstep s ON s.jstid = sl.jsljstid "
        "WHERE l.jlgjobid = %s ORDER BY sl.jslid",
        (jobid,),
    )


def wait_finished(
    db: Database, jobid: int, runs: int = 1, timeout: float = 15
) -> list[dict[str, Any]]:
    """Wait until ``jobid`` has ``runs`` finished runs and is released; return its run logs."""

    def done() -> list[dict[str, Any]] | None:
        logs = joblogs(db, jobid)
        finished = [r for r in logs if r["jlgstatus"] != "r"]
        released = db.value(
            "SELECT jobagentid IS NULL FROM pgagent.pga_job WHERE jobid = %s", (jobid,)
        )
        return logs if len(finished) >= runs and released else None

    return wait_for(done, timeout, what=f"{runs} finished run(s) of job {jobid}")


def dead_agent_with_a_run(db: Database, pid: int, jobid: int) -> int:
    """A dead agent ``pid`` that claimed ``jobid`` mid-run (run and step 'r'), made in one
    transaction; returns the run's id. The job is made due first: notifyagent's claim guard
    ignores a claim of a job that is not due."""
    with psycopg.connect(db.dsn) as conn:
        conn.execute(
            "INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (%s, 'dead-host')",
            (pid,),
        )
        conn.execute(
            "UPDATE pgagent.pga_job SET jobnextrun = now() - interval '1 min' WHERE jobid = %s",
            (jobid,),
        )
        conn.execute("UPDATE pgagent.pga_job SET jobagentid = %s WHERE jobid = %s", (pid, jobid))
        row = conn.execute(
            "INSERT INTO pgagent.pga_joblog (jlgjobid, jlgstatus) VALUES (%s, 'r') RETURNING jlgid",
            (jobid,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO pgagent.pga_jobsteplog (jsljlgid, jsljstid, jslstatus) "
            "SELECT %s, jstid, 'r' FROM pgagent.pga_jobstep WHERE jstjobid = %s",
            (row[0], jobid),
        )
        claimed = conn.execute("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (jobid,))
        assert claimed.fetchone() == (pid,)
    return int(row[0])


def agent_environ() -> dict[str, str]:
    """This process's environment without ``NOTIFYAGENT_*``: only the command line given
    configures an agent under test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYAGENT_")}


def processes(*argv: str) -> list[int]:
    """Pids whose command line is ``argv`` (e.g. a step's ``sleep 29.871`` left behind)."""
    wanted = [a.encode() for a in argv]
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and cmdline.split(b"\0")[:-1] == wanted:
            found.append(int(proc.name))
    return found


@dataclass
class AgentProcess:
    """``notifyagent serve`` in a subprocess, its log in a file."""

    dsn: str
    args: Sequence[str] = ()
    station: str = "test-station"
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    logfile: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    def start(self, wait_registered: bool = True) -> AgentProcess:
        env = agent_environ()
        env.update(self.env)
        with self.logfile.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "notifyagent", "serve", "--dsn", self.dsn,
                    "--station", self.station, "--log-level", "DEBUG", *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        if wait_registered:
            self.wait_log("queue loaded", timeout=20)
        return self

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10) -> None:
        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None and text not in self.log():
                raise AssertionError(f"agent exited ({self.proc.returncode}):\n{self.log()}")
            return text in self.log()

        wait_for(seen, timeout, what=f"{text!r} in the agent log")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"agent did not stop within {timeout}s:\n{self.log()}") from None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logfile.unlink(missing_ok=True)


def wait_until(deadline_s: float) -> None:
    """Sleep until a fixed point in time (used to align with a due time, not to wait on state)."""
    time.sleep(max(0.0, deadline_s - time.time()))
