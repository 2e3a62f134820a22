"""Running the real ``notifyagent`` command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFYAGENT_", "PG"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "notifyagent", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
