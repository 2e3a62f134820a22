"""A throwaway PostgreSQL cluster made with the local server binaries.

Used by the test suite, the benchmark and ``notifyagent dev``: ``initdb`` + ``pg_ctl`` on a
free port with the socket in a private temp dir. When running as root the server runs as the
``postgres`` OS user (``initdb`` refuses root), which is why every command goes through
:meth:`_as_owner`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PG_BINDIRS = ("/usr/lib/postgresql/15/bin",)
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "'127.0.0.1'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %a '",
}
#: Password of the ``postgres`` role for TCP logins (the socket uses trust).
TCP_PASSWORD = "notifyagent-test-pw"  # noqa: S105 (throwaway cluster only)


def find_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: ``$PG_BINDIR``, Debian's path, or ``pg_config``."""
    candidates = [os.environ.get("PG_BINDIR", ""), *PG_BINDIRS]
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        candidates.append(out)
    for c in candidates:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    raise FileNotFoundError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql-15 "
        "(apt-get install -y postgresql-15) or set PG_BINDIR"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL server in a temp dir; ``with Cluster() as c:`` starts and removes it."""

    def __init__(self, bindir: Path | None = None, settings: dict[str, str] | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.base = Path(tempfile.mkdtemp(prefix="notifyagent-pg-"))
        self.datadir = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.port = free_port()
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")
            os.chown(self.base, self._owner.pw_uid, self._owner.pw_gid)
        self.base.chmod(0o755)

    @property
    def host(self) -> str:
        """The unix socket directory (libpq ``host``)."""
        return str(self.base)

    def dsn(self, dbname: str = "postgres", **extra: str) -> str:
        params = {"host": self.host, "port": str(self.port), "user": "postgres", "dbname": dbname}
        params.update(extra)
        return " ".join(f"{k}={v}" for k, v in params.items())

    def tcp_dsn(self, dbname: str = "postgres", password: str = TCP_PASSWORD) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} password={password}"

    def _as_owner(self, args: list[str]) -> list[str]:
        if self._owner is None:
            return args
        return ["runuser", "-u", self._owner.pw_name, "--", *args]

    def _run(self, args: list[str]) -> None:
        proc = subprocess.run(self._as_owner(args), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n{log}"
            )

    def init(self) -> None:
        pwfile = self.base / "pw"
        pwfile.write_text(TCP_PASSWORD + "\n")
        if self._owner is not None:
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.datadir),
                "-U", "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E", "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )  # fmt: skip
        pwfile.unlink()
        conf = [f"{k} = {v}" for k, v in self.settings.items()]
        conf += [f"port = {self.port}", f"unix_socket_directories = '{self.base}'"]
        with (self.datadir / "postgresql.conf").open("a") as f:
            f.write("\n".join(conf) + "\n")

    def pg_ctl(self, *args: str) -> None:
        self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), *args]
        )

    def start(self) -> None:
        if not self.datadir.exists():
            self.init()
        self.pg_ctl("-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-t", "60", "-m", mode, "restart")

    def is_running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if proc.returncode == 0:
                return
            time.sleep(0.05)
        raise TimeoutError("PostgreSQL did not become ready")

    def destroy(self) -> None:
        """Stop the server (if running) and delete every file of the cluster."""
        if self.is_running():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
