"""The core (notifyagent.core) is pure: importing every one of its modules pulls in no database
driver, event loop, logging, metrics, file watching, network or processes, so that it can be
used and tested alone and the layers above it stay the only ones doing I/O."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import notifyagent.core

FORBIDDEN = {
    "psycopg",
    "psycopg_pool",
    "asyncio",
    "loguru",
    "prometheus_client",
    "watchfiles",
    "http.server",
    "socket",
    "subprocess",
}


def core_modules() -> list[str]:
    found = pkgutil.walk_packages(notifyagent.core.__path__, prefix="notifyagent.core.")
    return ["notifyagent.core", *sorted(m.name for m in found)]


def test_every_core_module_is_found() -> None:
    modules = core_modules()
    for expected in ("notifyagent.core.schedule.runs", "notifyagent.core.config"):
        assert expected in modules


def test_the_core_imports_no_io() -> None:
    modules = core_modules()
    code = f"import sys, {', '.join(modules)}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert set(modules) <= loaded
    assert FORBIDDEN & loaded == set()
