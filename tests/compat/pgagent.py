"""The real C++ pgAgent (``pgagent -f -t 1``) in a subprocess: the reference implementation.

pgAgent is only a libpq client, so running it as root is fine. It has no signal handling:
SIGTERM kills it at once and its ``pga_jobagent`` row stays behind (the next agent's start-up
cleanup would remove it); the test databases are dropped anyway.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from notifyagent import conninfo
from tests.pg import Database, wait_for

PGAGENT = os.environ.get("NOTIFYAGENT_TEST_PGAGENT", "/usr/bin/pgagent")


def pgagent_binary() -> str:
    """The reference binary (Debian package ``pgagent``, installed by scripts/setup)."""
    found = shutil.which(PGAGENT) or (PGAGENT if os.access(PGAGENT, os.X_OK) else None)
    if found is None:
        raise FileNotFoundError(
            f"the reference pgAgent binary {PGAGENT} is missing: apt-get install -y pgagent "
            "(scripts/setup does it) or set NOTIFYAGENT_TEST_PGAGENT"
        )
    return found


def pgagent_dsn(db: Database) -> str:
    """``host=<socket dir> port=<port> dbname=<db> user=postgres``: what pgAgent accepts
    (no password: 4.2.2 masks ``password=`` in connection strings)."""
    params = conninfo.parse(db.dsn)
    return f"host={params['host']} port={params['port']} dbname={db.name} user=postgres"


@dataclass
class PgAgentProcess:
    """``pgagent -f -t <poll> -l 2 -s <log> <dsn>``."""

    db: Database
    poll: int = 1
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgagent-ref-")))

    @property
    def logfile(self) -> Path:
        return self.workdir / "pgagent.log"

    def start(self, station: str) -> PgAgentProcess:
        """Start the agent and wait until it registered under ``station`` (its host name)."""
        with (self.workdir / "stdio.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    pgagent_binary(), "-f", "-t", str(self.poll), "-l", "2",
                    "-s", str(self.logfile), pgagent_dsn(self.db),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )  # fmt: skip

        def registered() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"pgagent exited ({self.proc.returncode}):\n{self.log()}")
            return bool(
                self.db.value(
                    "SELECT count(*) FROM pgagent.pga_jobagent WHERE jagstation = %s", (station,)
                )
            )

        wait_for(registered, 20, what="pgagent registered in pga_jobagent")
        return self

    def log(self, tail: int = 4000) -> str:
        text = ""
        for name in ("stdio.log", "pgagent.log"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text[-tail:]

    def stop(self) -> None:
        """SIGTERM (pgAgent dies at once: it has no handler), then wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
