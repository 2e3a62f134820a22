"""What the soak reads back after the agents stopped: runs with their ticks, and what the
agents' logs say (crashes, tracebacks, passwords, warnings)."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from notifyagent.cluster import TCP_PASSWORD
from tests.pg import Conn, fetch_rows
from tests.soak.fleet import Fleet
from tests.soak.model import Run
from tests.soak.sql import q

LEVEL = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL)\b", re.MULTILINE)


def with_ticks(runs: list[Run], ticks: list[tuple[datetime, str]]) -> list[Run]:
    """One job's runs (by start) with the ticks (time, station) their steps wrote: a tick
    belongs to the run that started last before it; a tick before every run (early, by at
    most a second) to the first, so that an early step shows instead of vanishing."""
    starts = [r.start for r in runs]
    mine: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for t in ticks:
        i = bisect_right(starts, t[0]) - 1
        if runs and (i >= 0 or starts[0] - t[0] <= timedelta(seconds=1)):
            mine[max(i, 0)].append(t)
    out = []
    for i, r in enumerate(runs):
        first = min(mine[i], default=None)
        out.append(replace(r, ticked=first and first[0], ticks=len(mine[i]),
                           station=first and first[1]))  # fmt: skip
    return out


def runs(conn: Conn) -> list[Run]:
    ticks: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for t in fetch_rows(conn, q("ticks")):
        ticks[t["jobid"]].append((t["ran_at"], t["app"]))
    by_job: dict[int, list[Run]] = defaultdict(list)
    for r in fetch_rows(conn, q("runs")):
        run = Run(r["jlgjobid"], r["jlgid"], r["jlgstart"], r["jlgend"], r["jlgstatus"])
        by_job[run.jobid].append(run)
    return [run for job, rs in by_job.items() for run in with_ticks(rs, ticks.get(job, []))]


def log_problems(fleet: Fleet) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Crashes (an exit the soak did not cause), tracebacks, a password in a log; and how
    many warnings and errors the agents logged."""
    problems: list[dict[str, Any]] = [{"kind": "crash", **c} for c in fleet.crashes]
    levels: Counter[str] = Counter()
    for s in fleet.slots.values():
        text = s.log_text()
        if TCP_PASSWORD in text:
            problems.append({"kind": "password_in_log", "station": s.station})
        if "Traceback" in text:
            i = text.index("Traceback")
            problems.append({"kind": "traceback", "station": s.station,
                             "text": text[max(0, i - 500) : i + 2500]})  # fmt: skip
        levels.update(LEVEL.findall(text))
    return problems, dict(levels)
