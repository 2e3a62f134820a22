"""What was measured on what: the commit, the machine and the versions, for the JSON and the
lines above the table (numbers from different machines are not comparable)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import notifyagent
from tests.bench.config import REPO
from tests.pg import fetch_value

if TYPE_CHECKING:
    from tests.bench.harness import Harness


def git_state() -> str:
    """The commit of the code under test, and whether notifyagent/ or sql/ differ from it."""
    git = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "notifyagent", "sql"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        git = head + (" + uncommitted changes to notifyagent/ or sql/" if dirty else "")
    return git


def _file_field(path: str, prefix: str, sep: str, default: str) -> str:
    """The value of the first line of ``path`` starting with ``prefix`` (after ``sep``)."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(sep, 1)[1].strip()
    return default


def _pgagent_version(binary: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
        return next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Version" in ln), "?"
        )
    return "?"


def machine_info(h: Harness) -> dict[str, Any]:
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    os_name = _file_field("/etc/os-release", "PRETTY_NAME=", "=", platform.platform()).strip('"')
    server = "?"
    if h.admin is not None:
        server = str(fetch_value(h.admin, "SHOW server_version"))
    return {
        "git": h.git,
        "agent_code": h.agent_code,
        "cpu": _file_field("/proc/cpuinfo", "model name", ":", "?"),
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": server,
        "pgagent": _pgagent_version(h.launch.pgagent),
        "notifyagent": notifyagent.__version__,
        "server_settings": h.cluster.settings,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
