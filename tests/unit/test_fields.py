"""The schedule field grammar lives in the pure core: importing it, or the jobs file package,
pulls in none of the runtime (database driver, event loop, logging, the agent's store)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``module``."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "notifyagent.core",
        "notifyagent.core.fields",
        "notifyagent.core.model",
        "notifyagent.core.events",
        "notifyagent.core.decisions",
    ],
)
def test_the_core_does_no_io(module: str) -> None:
    loaded = _loaded_by(module)
    assert module in loaded
    assert {"psycopg", "asyncio", "loguru"} & loaded == set()


def test_jobs_files_do_not_need_the_agent() -> None:
    """``next`` (preview) reads the store; the jobs file only shares the field grammar."""
    loaded = _loaded_by("notifyagent.jobsfile")
    assert "notifyagent.core.fields" in loaded
    assert {"notifyagent.preview", "notifyagent.ops", "notifyagent.db.store"} & loaded == set()
