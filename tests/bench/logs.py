"""Reading the logs the measurements come from: the agents' and the server's."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

AGENT_LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\w+)\s+(.*)$")
LOADED_RE = re.compile(r"queue loaded: (\d+) scheduled job\(s\) of (\d+) in (\d+) ms")
QUEUE_RE = re.compile(r"^queue: job (\d+) due at (.+) \(in (-?[\d.]+)s\)$")


def agent_log_time(stamp: str) -> float:
    """loguru's local-time stamp -> epoch seconds (same host, same TZ as this script)."""
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


class LogTail:
    """Reads a growing log file line by line from an offset, so that a measurement sees only
    what was written during its window."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._partial = b""

    @classmethod
    def from_end(cls, path: Path) -> LogTail:
        """Only what is written from now on."""
        return cls(path, path.stat().st_size)

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        parts = data.split(b"\n")
        self._partial = parts.pop()
        return [p.decode("utf-8", errors="replace") for p in parts]
