"""pgAdmin 4 in desktop mode on loopback, for ``notifyagent dev --pgadmin`` and the test suite.

pgAdmin pins many packages, so it lives in a virtual environment of its own, made on first
use (:func:`ensure_installed`; ``scripts/setup-pgadmin`` runs it for the tests). It is started
the way pgAdmin's desktop runtime starts it (``pgAdmin4.py``): ``PGADMIN_INT_PORT`` and
``PGADMIN_INT_KEY`` in its environment. Every request must then carry that key, as ``?key=``
once (pgAdmin answers with a ``PGADMIN_INT_KEY`` cookie), and the desktop user is logged in
without a password (``pgadmin/__init__.py``, ``before_request``). Its settings are a generated
``config_local.py`` in a private directory that also holds its data, sessions and log: no
master password, no OS keyring, no upgrade check, no auto-discovered local servers.

:class:`PgAdminClient` talks to it as its web page does: the session cookie, and the CSRF
token the page reads from ``/browser/js/utils.js`` (``pgAdmin['csrf_token']``) sent in the
``X-pgA-CSRFToken`` header (``WTF_CSRF_HEADERS`` in pgAdmin's ``config.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notifyagent import conninfo
from notifyagent.cluster import free_port
from notifyagent.errors import NotifyAgentError

#: The pgAdmin release installed and tested (pgAdmin's HTTP API is internal: pin it).
PGADMIN_VERSION = "9.18"
CSRF_HEADER = "X-pgA-CSRFToken"
_CSRF_IN_JS = re.compile(r"pgAdmin\['csrf_token'\] = '([^']+)'")
#: Written last by :func:`ensure_installed`: a venv without it is a broken install.
_COMPLETE = ".notifyagent-complete"

CONFIG_LOCAL = """\
# Written by notifyagent: pgAdmin 4 in desktop mode with everything in this directory.
SERVER_MODE = False
DATA_DIR = {data!r}
LOG_FILE = {log!r}
SQLITE_PATH = {data!r} + "/pgadmin4.db"
SESSION_DB_PATH = {data!r} + "/sessions"
STORAGE_DIR = {data!r} + "/storage"
MASTER_PASSWORD_REQUIRED = False
USE_OS_SECRET_STORAGE = False
UPGRADE_CHECK_ENABLED = False
AUTO_DISCOVER_SERVERS = False
LLM_ENABLED = False
FILE_LOG_LEVEL = 20
CONSOLE_LOG_LEVEL = 30
"""


class PgAdminError(NotifyAgentError):
    """pgAdmin could not be installed, started or asked."""


def default_venv() -> Path:
    """``$NOTIFYAGENT_PGADMIN_VENV``, else a per-user cache shared by every checkout."""
    if env := os.environ.get("NOTIFYAGENT_PGADMIN_VENV"):
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "notifyagent" / f"pgadmin4-{PGADMIN_VERSION}"


def installed_script(venv: Path | None = None) -> Path | None:
    """pgAdmin's entry point ``pgAdmin4.py`` in a complete install, or None."""
    venv = venv or default_venv()
    if not (venv / _COMPLETE).exists():
        return None
    found = sorted(venv.glob("lib/python3*/site-packages/pgadmin4/pgAdmin4.py"))
    return found[0] if found else None


def ensure_installed(venv: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """pgAdmin's ``pgAdmin4.py``, installing pgAdmin into ``venv`` first when it is missing.

    A lock keeps two processes from installing at once; a failed install is removed, so the
    next call tries again, and raises with pip's last lines (say, no access to PyPI)."""
    venv = venv or default_venv()
    if script := installed_script(venv):
        return script
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if script := installed_script(venv):
            return script
        say(f"installing pgAdmin 4 {PGADMIN_VERSION} from PyPI into {venv} (once, ~1 minute)")
        shutil.rmtree(venv, ignore_errors=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        steps = {
            "python -m venv": [sys.executable, "-m", "venv", str(venv)],
            f"pip install pgadmin4=={PGADMIN_VERSION}": [
                *pip,
                "--disable-pip-version-check",
                f"pgadmin4=={PGADMIN_VERSION}",
            ],
        }
        for what, cmd in steps.items():
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise PgAdminError(
                    f"could not install pgAdmin 4 {PGADMIN_VERSION} into {venv}: {what} "
                    f"exited {proc.returncode} (is PyPI reachable?)\n{tail}"
                )
        (venv / _COMPLETE).write_text(PGADMIN_VERSION + "\n")
    script = installed_script(venv)
    if script is None:
        raise PgAdminError(f"pgAdmin installed into {venv}, but pgAdmin4.py is not there")
    return script


class PgAdminClient:
    """An HTTP session with pgAdmin, logged in like its desktop runtime's browser window."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key
        self.csrf_token = ""
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def login(self, timeout: float = 60) -> None:
        """``/?key=`` logs the desktop user in and sets the key cookie; the page's script
        ``/browser/js/utils.js`` carries the CSRF token every later call needs."""
        with self._opener.open(f"{self.base_url}/?key={self.key}", timeout=timeout):
            pass
        with self._opener.open(f"{self.base_url}/browser/js/utils.js", timeout=timeout) as r:
            found = _CSRF_IN_JS.search(r.read().decode())
        if found is None:
            raise PgAdminError("pgAdmin's /browser/js/utils.js carries no CSRF token")
        self.csrf_token = found.group(1)

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, Any]:
        """One call as the page makes it (JSON body, CSRF header): the status and the JSON
        answer (the raw text when it is not JSON)."""
        req = urllib.request.Request(  # noqa: S310 (http://127.0.0.1:<port>, built here)
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", CSRF_HEADER: self.csrf_token},
        )
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """:meth:`request` that must succeed: the JSON answer, or PgAdminError with pgAdmin's
        own error message."""
        status, answer = self.request(method, path, body, timeout)
        if status != 200:
            message = answer.get("errormsg") if isinstance(answer, dict) else answer
            raise PgAdminError(f"pgAdmin: {method} {path} answered {status}: {message}")
        return answer

    def register_server(self, name: str, dsn: str, group: int = 1) -> int:
        """Add ``dsn``'s server as the Server dialog does (connect now, save the password),
        its database as the maintenance database, where pgAdmin looks for pgAgent's
        schema; returns the server id."""
        params = conninfo.parse(dsn)
        body = {
            "name": name,
            "host": params.get("host", "127.0.0.1"),
            "port": int(params.get("port", "5432")),
            "db": params.get("dbname", "postgres"),
            "username": params.get("user", "postgres"),
            "password": params.get("password", ""),
            "save_password": bool(params.get("password")),
            "connect_now": True,
            "comment": "registered by notifyagent",
            "connection_params": [{"name": "sslmode", "value": "prefer", "keyword": "sslmode"}],
        }
        answer = self.call("POST", f"/browser/server/obj/{group}/", body)
        return int(answer["node"]["_id"])

    def connect_server(self, sid: int, group: int = 1) -> dict[str, Any]:
        """Connect this session to a registered server with its saved password, as the tree
        does when a server is expanded (pgAdmin keeps connections per browser session)."""
        answer = self.call("POST", f"/browser/server/connect/{group}/{sid}", {})
        data: dict[str, Any] = answer["data"]
        return data


class PgAdmin:
    """pgAdmin's web server in desktop mode on a free loopback port, its files in ``workdir``
    (a temp dir removed by :meth:`stop` unless given)."""

    def __init__(self, script: Path, workdir: Path | None = None) -> None:
        self.script = script
        self.own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="notifyagent-pgadmin-"))
        self.port = free_port()
        self.key = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What to open in a browser: the key logs the desktop user in."""
        return f"{self.base_url}/?key={self.key}"

    def client(self) -> PgAdminClient:
        """A new logged-in HTTP session."""
        c = PgAdminClient(self.base_url, self.key)
        c.login()
        return c

    def start(self, timeout: float = 120) -> PgAdmin:
        """Write ``config_local.py``, start pgAdmin and wait until it answers (its first
        start creates its configuration database: a few seconds, more on a loaded machine).
        If it does not, it is stopped and the error carries its log."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> PgAdmin:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.workdir / "config_local.py").write_text(
            CONFIG_LOCAL.format(data=str(data), log=str(self.workdir / "pgadmin4.log"))
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "NOTIFYAGENT_"))}
        env.update(
            PGADMIN_INT_PORT=str(self.port),
            PGADMIN_INT_KEY=self.key,
            PGADMIN_SERVER_MODE="OFF",
            PYTHONPATH=str(self.workdir),  # after pgAdmin's own directory: config_local
        )
        python = self.script.parents[4] / "bin" / "python"
        with (self.workdir / "stdout.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [str(python), str(self.script)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop pgAdmin ourselves
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise PgAdminError(f"pgAdmin exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise PgAdminError(f"pgAdmin did not answer within {timeout}s:\n{self.log()}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        try:
            ping = f"{self.base_url}/misc/ping?key={self.key}"
            with urllib.request.urlopen(ping, timeout=5):  # noqa: S310 (loopback http)
                return True
        except OSError:
            return False

    def log(self, tail: int = 6000) -> str:
        """The end of pgAdmin's output and of its log file."""
        parts = []
        for name in ("stdout.log", "pgadmin4.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(f"--- pgAdmin {name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM pgAdmin's process group (SIGKILL if it lingers); remove a temp workdir."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def serve_database(script: Path, dsn: str, name: str) -> PgAdmin:
    """``notifyagent dev --pgadmin``: pgAdmin started, with ``dsn``'s server registered
    (its database as maintenance database, so pgAdmin shows its pgAgent jobs) and
    connected. The caller stops it."""
    running = PgAdmin(script).start()
    try:
        running.client().register_server(name, dsn)
    except BaseException:
        running.stop()
        raise
    return running


def main(argv: list[str] | None = None) -> int:
    """``python -m notifyagent.pgadmin install``: install when missing, print the venv."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["install"]:
        print("usage: python -m notifyagent.pgadmin install", file=sys.stderr)
        return 2
    try:
        script = ensure_installed(say=lambda text: print(text, file=sys.stderr))
    except PgAdminError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(script.parents[4])
    return 0


if __name__ == "__main__":
    sys.exit(main())
