"""What the benchmark runs: sizes, agents, scenario names, and its progress output."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: The checkout whose notifyagent/ and sql/ are benchmarked (copied before the agents start).
REPO = Path(__file__).resolve().parents[2]

SCENARIOS = (
    "floor", "spaced", "run-now", "every", "herd", "herd-10k", "scale-out", "idle", "scale",
    "curve",
)  # fmt: skip
#: The herds last: pgAgent's herd leaves hundreds of threads and a high load average behind.
RUN_ORDER = (
    "floor", "spaced", "run-now", "every", "idle", "scale", "curve", "herd", "herd-10k",
    "scale-out",
)  # fmt: skip
AGENT_APP = "bench_agent"
BENCH_APP = "bench"
STATION = "bench"


class BenchError(Exception):
    """A scenario could not produce its numbers (agent died, deadline passed, ...)."""


@dataclass(frozen=True)
class Sizes:
    spaced_jobs: int
    spaced_span: float
    spaced_lead: float
    runnow_samples: int
    herd_jobs: int
    herd_lead: float
    herd_timeout: float
    idle_jobs: int
    idle_window: float
    idle_settle: float
    scale_jobs: int
    scale_changed: int
    floor_samples: int
    every_window: float
    herd10k_jobs: int
    herd10k_concurrency: int
    scaleout_jobs: int
    scaleout_agents: tuple[int, ...]
    curve_jobs: tuple[int, ...]


FULL = Sizes(
    spaced_jobs=50,
    spaced_span=15.0,
    spaced_lead=2.0,
    runnow_samples=30,
    herd_jobs=1000,
    herd_lead=3.0,
    herd_timeout=300.0,
    idle_jobs=20,
    idle_window=60.0,
    idle_settle=12.0,
    scale_jobs=100_000,
    scale_changed=10_000,
    floor_samples=100,
    every_window=20.0,
    herd10k_jobs=10_000,
    herd10k_concurrency=500,
    scaleout_jobs=3000,
    scaleout_agents=(1, 2, 3),
    curve_jobs=(10_000, 100_000),
)
#: --scale: the curve goes on to a million jobs (a few minutes)
SCALE_CURVE = (10_000, 100_000, 1_000_000)
QUICK = Sizes(
    spaced_jobs=5,
    spaced_span=1.0,
    spaced_lead=0.7,
    runnow_samples=3,
    herd_jobs=20,
    herd_lead=1.0,
    herd_timeout=30.0,
    idle_jobs=3,
    idle_window=2.0,
    idle_settle=0.5,
    scale_jobs=1000,
    scale_changed=100,
    floor_samples=20,
    every_window=3.0,
    herd10k_jobs=100,
    herd10k_concurrency=500,
    scaleout_jobs=30,
    scaleout_agents=(1, 2),
    curve_jobs=(100, 1000),
)


@dataclass(frozen=True)
class Variant:
    """One agent configuration the scenarios run against."""

    key: str
    label: str
    kind: str  # "notifyagent", "pgagent" or "pg_cron"
    poll: float | None = None  # pgAgent's poll interval
    site: str = "plain"  # which cluster: plain, durable (fsync on) or cron (pg_cron loaded)
    scenarios: tuple[str, ...] = ("spaced", "run-now", "herd", "idle")
    #: every run alerts (--alert-on all) to a loopback destination that never answers
    hanging_alerts: bool = False

    @property
    def is_pgagent(self) -> bool:
        return self.kind == "pgagent"

    @property
    def is_cron(self) -> bool:
        return self.kind == "pg_cron"

    def database(self, scenario: str) -> str:
        """The prefix of the scenario's database name (readable in kept logs)."""
        return f"b_{self.key.replace('-', '_')}_{scenario}"


VARIANTS = {
    "notifyagent": Variant("notifyagent", "notifyagent", "notifyagent", scenarios=SCENARIOS),
    "notifyagent-durable": Variant(
        "notifyagent-durable",
        "notifyagent, durable server",
        "notifyagent",
        site="durable",
        scenarios=("floor", "spaced", "run-now", "herd"),
    ),
    "notifyagent-alerting": Variant(
        "notifyagent-alerting",
        "notifyagent, every run alerting to a destination that never answers",
        "notifyagent",
        scenarios=("spaced", "run-now", "herd"),
        hanging_alerts=True,
    ),
    "pgagent": Variant("pgagent", "pgAgent (default, -t 5)", "pgagent", 5.0),
    "pgagent-t1": Variant("pgagent-t1", "pgAgent -t 1", "pgagent", 1.0),
    "pg_cron": Variant(
        "pg_cron", "pg_cron", "pg_cron", site="cron", scenarios=("every", "herd", "idle")
    ),
}
#: The server settings of each site on top of notifyagent.cluster's (fsync off and so on);
#: the cron site's pg_cron settings are added when it starts (they name its socket dir).
SITE_SETTINGS = {
    "plain": {},
    "durable": {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
    "cron": {},
}

_T0 = time.monotonic()


def say(msg: str) -> None:
    """Progress on stderr, stamped with the seconds since start (stdout has the table)."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)
