"""The soak's agents: ``notifyagent serve`` processes on three stations, each restarted after
it was killed (as systemd would), with its memory sampled and every life of it kept."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: options of every agent: dead agents found within 2 s, a stop takes at most 5 s
AGENT_ARGS = ("--liveness-interval", "2", "--shutdown-timeout", "5", "--log-level", "INFO")
#: what SIGHUP switches between (the config file is rewritten first)
CONFIGS = ("max_concurrency = 32\nmissed_grace = 60\n", "max_concurrency = 24\nmissed_grace = 90\n")


@dataclass
class Life:
    """One process of an agent, from start to exit."""

    pid: int
    started: float
    log: Path
    ended: float | None = None
    code: int | None = None
    #: the soak stopped or killed it (any other exit is a crash)
    stopped: bool = False
    rss: list[tuple[float, int]] = field(default_factory=list)


class AgentSlot:
    """One station's agent across its lives."""

    def __init__(
        self, station: str, dsn: str, workdir: Path, env: dict[str, str], cwd: Path
    ) -> None:
        self.station = station
        self.dsn = dsn
        self.workdir = workdir
        self.env = env
        self.cwd = cwd
        self.config = workdir / f"{station}.toml"
        self.config.write_text(CONFIGS[0])
        self.lives: list[Life] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()  # one fault at a time per agent
        self.reloads = 0

    def start(self) -> Life:
        log = self.workdir / f"{self.station}-{len(self.lives) + 1}.log"
        args = [
            sys.executable,
            "-m",
            "notifyagent",
            "serve",
            "--config",
            str(self.config),
            "--dsn",
            self.dsn,
            "--station",
            self.station,
            *AGENT_ARGS,
        ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        life = Life(self.proc.pid, time.time(), log)
        self.lives.append(life)
        return life

    @property
    def life(self) -> Life:
        return self.lives[-1]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _ended(self, stopped: bool) -> None:
        assert self.proc is not None
        self.life.ended = time.time()
        self.life.code = self.proc.returncode
        self.life.stopped = stopped

    def poll(self) -> Life | None:
        """The life that ended by itself (a crash), if it just did."""
        if self.proc is not None and self.life.ended is None and self.proc.poll() is not None:
            self._ended(stopped=False)
            return self.life
        return None

    def kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._ended(stopped=True)

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM; returns how long the agent took to exit (SIGKILL after ``timeout``)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return timeout
        self._ended(stopped=True)
        return time.monotonic() - t0

    def reload(self) -> str:
        """Rewrite the config file with the other settings and SIGHUP the agent."""
        self.reloads += 1
        text = CONFIGS[self.reloads % 2]
        self.config.write_text(text)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        return text.replace("\n", "; ").strip("; ")

    def log_text(self) -> str:
        return "".join(life.log.read_text(errors="replace") for life in self.lives)

    def sample_rss(self) -> None:
        if not self.alive():
            return
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.life.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.life.rss.append((time.time(), int(line.split()[1])))


class Fleet:
    """The agents; a thread samples their memory and notices crashes (restarting them)."""

    def __init__(self, slots: list[AgentSlot], interval: float = 5.0) -> None:
        self.slots = {s.station: s for s in slots}
        self.interval = interval
        self.crashes: list[dict[str, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fleet", daemon=True)

    def start(self) -> None:
        for s in self.slots.values():
            s.start()
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            for s in self.slots.values():
                s.sample_rss()
                if not s.lock.acquire(blocking=False):
                    continue  # a fault has it: an exit now is the fault's doing
                try:
                    crashed = s.poll()
                    if crashed is not None:
                        self.crashes.append(
                            {"station": s.station, "code": crashed.code, "log": str(crashed.log)}
                        )
                        s.start()
                finally:
                    s.lock.release()

    def stop(self) -> dict[str, float]:
        """SIGTERM every agent; how long each took to exit."""
        self._stop.set()
        self._thread.join()
        took = {}
        for s in self.slots.values():
            with s.lock:
                if s.alive():
                    took[s.station] = s.terminate()
        return took
