"""What processes cost, read from /proc: CPU time (utime + stime) and wake-ups (voluntary
context switches, every thread), for the agents, pg_cron's launcher and the whole server."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 first."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of every thread of ``pid`` (and of its waited-for children)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        f = _stat_fields(pid)
        ticks = int(f[11]) + int(f[12])  # fields 14, 15: utime, stime
        if children:
            ticks += int(f[13]) + int(f[14])  # fields 16, 17: cutime, cstime
        return ticks * TICK_S
    return 0.0


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid``: how often it slept and woke."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    return total


def children_of(ppid: int) -> list[int]:
    """The live child processes of ``ppid`` (the postmaster's: backends and workers)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == ppid:  # field 4: ppid
                    found.append(int(entry.name))
    return found


def postmaster_pid(datadir: Path) -> int:
    """The server's postmaster, from the first line of postmaster.pid."""
    return int((datadir / "postmaster.pid").read_text().split()[0])


def server_cpu_seconds(datadir: Path) -> float:
    """CPU of the whole server so far: the postmaster, its live children, and (through the
    postmaster's cutime/cstime) every child that has exited."""
    pm = postmaster_pid(datadir)
    return cpu_seconds(pm, children=True) + sum(cpu_seconds(c) for c in children_of(pm))


@dataclass
class Usage:
    """CPU and wake-ups of a set of processes between :meth:`start` and :meth:`stop`."""

    pids: list[int]
    cpu_s: float = 0.0
    wakeups: int = 0

    def start(self) -> Usage:
        self.cpu_s = -sum(cpu_seconds(p) for p in self.pids)
        self.wakeups = -sum(wakeups(p) for p in self.pids)
        return self

    def stop(self) -> Usage:
        self.cpu_s += sum(cpu_seconds(p) for p in self.pids)
        self.wakeups += sum(wakeups(p) for p in self.pids)
        return self
