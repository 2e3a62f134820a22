"""The agents under test (notifyagent or pgAgent) as processes this benchmark owns."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.bench.config import STATION, BenchError, Variant
from tests.pg import Conn, fetch_value, wait_for

T = TypeVar("T")


class Processes:
    """Every agent process this script started; all of them are stopped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: list[str], logfile: Path, env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        with logfile.open("ab") as log:
            # own session: a Ctrl-C in the terminal reaches only this script, which then
            # stops the agents itself (SIGTERM, then SIGKILL).
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 40.0) -> int:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc, timeout=10.0)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything the agent left in its group
        self.procs.clear()


@dataclass(frozen=True)
class Launch:
    """What every agent of one run shares: binaries, options, and the code snapshot it runs
    (as its cwd, since `python -m` puts the current directory first on sys.path)."""

    pgagent: str
    notifyagent_args: list[str]
    #: an Apprise URL of a loopback port that accepts and never answers (Hanging)
    hanging_url: str
    code: Path
    env: dict[str, str]
    processes: Processes


class Agent:
    """One running agent (either kind) against one database."""

    def __init__(
        self,
        launch: Launch,
        variant: Variant,
        dsn: str,
        logfile: Path,
        log_level: str = "INFO",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.launch = launch
        self.extra_args = extra_args
        self.variant = variant
        self.dsn = dsn
        self.logfile = logfile
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def command(self) -> list[str]:
        if self.variant.is_pgagent:
            args = [self.launch.pgagent, "-f", "-l", "1"]
            if self.variant.poll is not None and self.variant.poll != 5.0:
                args += ["-t", str(int(self.variant.poll))]
            return [*args, self.dsn]
        alerts = ["--alert-urls", self.launch.hanging_url, "--alert-on", "all"]
        return [
            sys.executable, "-m", "notifyagent", "serve", "--dsn", self.dsn, "--station", STATION,
            "--log-level", self.log_level, *self.launch.notifyagent_args, *self.extra_args,
            *(alerts if self.variant.hanging_alerts else []),
        ]  # fmt: skip

    def start(self) -> Agent:
        self.started_at = time.time()
        launch = self.launch
        self.proc = launch.processes.start(self.command(), self.logfile, launch.env, launch.code)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-30:])
            raise BenchError(
                f"{self.variant.label} exited with code {self.proc.returncode}:\n{tail}"
            )

    def wait_ready(self, observer: Conn, timeout: float = 60.0) -> None:
        """notifyagent: its `queue loaded` line; pgAgent: its pga_jobagent row."""
        if self.variant.is_pgagent:
            wait_until(
                lambda: fetch_value(observer, "SELECT count(*) FROM pgagent.pga_jobagent") > 0,
                timeout,
                f"{self.variant.label} to register",
                self,
            )
        else:
            wait_until(
                lambda: "queue loaded" in self.log_text(),
                timeout,
                f"{self.variant.label} to load its queue",
                self,
            )

    def stop(self) -> int:
        if self.proc is None:
            return 0
        return Processes.stop(self.proc)


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    agent: Agent | None = None,
    interval: float = 0.05,
) -> T:
    """The test suite's ``wait_for``, but failing as soon as ``agent`` dies, and with a
    :class:`BenchError` that the scenario reports instead of an assertion."""

    def alive_and_check() -> T | None:
        if agent is not None:
            agent.check_alive()
        return check()

    try:
        return wait_for(alive_and_check, timeout, interval, what)
    except AssertionError:
        raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}") from None


class Hanging:
    """A loopback port that accepts connections and never answers: an alert destination
    that hangs (its deliveries time out)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, name="hanging", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.held.append(self.sock.accept()[0])

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
