"""One soak: set up the servers, the jobs and the agents, let the faults and the workload run,
settle, stop the agents, then collect and judge."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.bench.harness import copy_code, snapshot_env
from tests.bench.meta import git_state
from tests.pg import fetch_rows, fetch_value, wait_for
from tests.soak import check, collect, jobs, report
from tests.soak.faults import Injector, Record, now
from tests.soak.fleet import AgentSlot, Fleet
from tests.soak.model import JobModel, Soak
from tests.soak.sql import q
from tests.soak.topology import DBNAME, Pair
from tests.soak.workload import Workload

STATIONS = ["soak-a", "soak-b", "soak-c"]


@dataclass
class Options:
    minutes: float
    seed: int
    jobs: int = 1000
    keep: bool = False


def say(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class SoakRun:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="notifyagent-soak-"))
        self.pair = Pair()
        self.record = Record()
        self.fleet: Fleet | None = None
        self.jobs: dict[int, JobModel] = {}
        #: the commit the agents run (taken when the code is copied for them)
        self.git = ""

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        self.pair.close()
        if self.o.keep:
            say(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def setup(self) -> None:
        code = self.workdir / "code"
        self.git = git_state()
        copy_code(code)
        env = snapshot_env(code)
        say(f"servers (primary + standby) in {self.pair.primary.base}, {self.pair.standby.base}")
        self.pair.start()
        self.pair.primary.settings.clear()  # written into postgresql.conf already
        with self.pair.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DBNAME}")
        with self.pair.connect() as conn:
            conn.execute("CREATE EXTENSION pgagent")
            conn.execute(jobs.TICK_TABLE)
        subprocess.run([sys.executable, "-m", "notifyagent", "install", "--dsn",
                        self.pair.primary.dsn(DBNAME)], env=env, cwd=code, check=True,
                       capture_output=True)  # fmt: skip
        far = (now().hour + 12) % 24
        specs = jobs.mix(self.o.jobs, STATIONS, self.rng, far)
        with self.pair.connect() as conn:
            self.jobs = jobs.create(conn, DBNAME, specs)
        say(f"{len(self.jobs)} jobs: {dict(Counter(j.kind for j in self.jobs.values()))}")
        dsns = [self.pair.both_dsn(STATIONS[0]), self.pair.both_dsn(STATIONS[1]),
                self.pair.proxied_dsn(STATIONS[2])]  # fmt: skip
        slots = [
            AgentSlot(st, dsn, self.workdir, env, code)
            for st, dsn in zip(STATIONS, dsns, strict=True)
        ]
        self.fleet = Fleet(slots)
        self.fleet.start()
        for s in slots:
            wait_for(lambda s=s: "queue loaded" in s.log_text(), 60, 0.1, f"{s.station} ready")  # type: ignore[misc]

    def soak(self) -> tuple[list[Any], datetime, datetime]:
        """Faults and workload for the soak's minutes; the edits made, the start and end."""
        assert self.fleet is not None
        pgadmin = jobs.PgAdmin()
        probes = {j.station: j.jobid for j in self.jobs.values() if j.kind == "probe"}
        with self.pair.connect() as conn:
            ids = [j.jobid for j in self.jobs.values() if j.kind == "edited"]
            rows = fetch_rows(conn, q("edited_schedules"), (ids,))
        edited = {int(r["jscjobid"]): int(r["jscid"]) for r in rows}
        on_demand = [j.jobid for j in self.jobs.values() if j.kind == "on-demand"]
        injector = Injector(self.pair, self.fleet, pgadmin, probes, self.record, self.rng)
        workload = Workload(self.pair, pgadmin, self.record, random.Random(self.o.seed + 1),
                            on_demand, edited)  # fmt: skip
        start = now()
        until = time.monotonic() + self.o.minutes * 60
        threads = [threading.Thread(target=t.run, args=(until,), name=n)
                   for n, t in (("faults", injector), ("workload", workload))]  # fmt: skip
        say(f"soak for {self.o.minutes:g} min, seed {self.o.seed}")
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = now()
        say(f"{len(self.record.windows)} faults injected; settling")
        injector.probe()
        return workload.edits, start, end

    def settle(self) -> list[dict[str, Any]]:
        """Due jobs taken, nothing left on a dead agent (after two liveness intervals), then
        the agents stopped: afterwards no run is 'r', no job claimed, no agent row left."""
        assert self.fleet is not None
        problems: list[dict[str, Any]] = []
        with self.pair.ready() as conn:
            try:
                wait_for(lambda: not fetch_value(conn, q("due_untaken")), 60, 0.2, "due jobs taken")
            except AssertionError:
                problems.append({"kind": "due_jobs_not_taken"})
            time.sleep(4.0)  # two liveness intervals: a dead agent's claims are gone by then
            if orphans := fetch_value(conn, q("orphan_claims")):
                problems.append({"kind": "claim_on_dead_agent", "jobs": orphans})
            self.exits = self.fleet.stop()
            for s in self.fleet.slots.values():
                if s.life.code != 0:
                    problems.append({"kind": "bad_exit", "station": s.station, "code": s.life.code})
            left = fetch_rows(conn, q("left_behind"))[0]
            if any(left.values()):
                problems.append({"kind": "left_behind", **left})
        return problems


def run(options: Options) -> dict[str, Any]:
    """The whole soak; its results (``passed``: every check held)."""
    s = SoakRun(options)
    try:
        s.setup()
        edits, start, end = s.soak()
        problems = s.record.problems + s.settle()
        with s.pair.ready() as conn:
            runs = collect.runs(conn)
        assert s.fleet is not None
        soak = Soak(s.jobs, start, end, edits, s.record.requests, s.record.windows, runs)
        verdict = check.check(soak)
        logged, levels = collect.log_problems(s.fleet)
        lags, slow = report.lag_checks(verdict)
        memory, grew = report.memory({st: sl.lives for st, sl in s.fleet.slots.items()})
        problems += logged + slow + grew
        meta = {
            "minutes": options.minutes, "seed": options.seed, "git": s.git,
            "jobs": dict(Counter(j.kind for j in s.jobs.values())),
            "started": start.isoformat(), "ended": end.isoformat(), "edits": len(edits),
            "agent_lives": {st: len(sl.lives) for st, sl in s.fleet.slots.items()},
            "log_levels": levels, "stop_s": s.exits,
        }  # fmt: skip
        return {
            "meta": meta,
            "passed": not problems and not verdict.violations,
            "counts": dict(verdict.counts),
            "faults": report.faults(s.record.windows),
            "lag": lags,
            "memory": memory,
            "violations": _some(verdict.violations),
            "problems": _some(problems),
        }
    finally:
        s.close()


def _some(found: list[dict[str, Any]], per_kind: int = 10) -> list[dict[str, Any]]:
    """The first few of each kind (counts has them all)."""
    seen: Counter[str] = Counter()
    kept = []
    for f in found:
        seen[str(f["kind"])] += 1
        if seen[str(f["kind"])] <= per_kind:
            kept.append(f)
    return kept
