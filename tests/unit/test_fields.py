"""The jobs file package shares the schedule field grammar of the pure core (see
test_core_is_pure.py) and pulls in none of the agent (its store, ``next``, the operations)."""

from __future__ import annotations

import subprocess
import sys


def _loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``module``."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_jobs_files_do_not_need_the_agent() -> None:
    """``next`` reads the store; the jobs file only shares the field grammar."""
    loaded = _loaded_by("notifyagent.jobsfile")
    assert "notifyagent.core.fields" in loaded
    assert not {m for m in loaded if m.startswith("notifyagent.commands")}
    assert "notifyagent.db.store" not in loaded
