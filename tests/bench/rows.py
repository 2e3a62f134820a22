"""The rows of the side-by-side table: which result key each shows, per scenario."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the table: a result key (``a.b`` looks into nested dicts); ``ratio``:
    whether notifyagent / other makes sense for it."""

    scenario: str
    label: str
    key: str
    digits: int = 1
    ratio: bool = True


def _lags(scenario: str, digits: int = 2) -> list[Row]:
    return [
        Row(scenario, f"lag {q} (ms)", f"lag_ms_{q}", digits) for q in ("min", "p50", "p99", "max")
    ]


ROWS = [
    Row("floor", "timer lateness p50 (ms)", "timer_late_ms_p50", 3, ratio=False),
    Row("floor", "… p99", "timer_late_ms_p99", 3, ratio=False),
    Row("floor", "idle round trip, SELECT 1, p50 (ms)", "read_ms_p50", 3, ratio=False),
    Row("floor", "idle round trip, INSERT + commit, p50 (ms)", "write_ms_p50", 3, ratio=False),
    Row("floor", "LISTEN/NOTIFY round trip p50 (ms)", "notify_ms_p50", 3, ratio=False),
    Row("floor", "floor of a timed run p50 (ms)", "floor_timed_ms_p50", 3, ratio=False),
    Row("floor", "… p99", "floor_timed_ms_p99", 3, ratio=False),
    Row("floor", "floor of a run-now p50 (ms)", "floor_run_now_ms_p50", 3, ratio=False),
    Row("floor", "… p99", "floor_run_now_ms_p99", 3, ratio=False),
    Row("spaced", "jobs ran", "ran", ratio=False),
    Row("spaced", "first run after start (ms)", "first_run_lag_ms", 2),
    *_lags("spaced"),
    Row("run-now", "samples ran", "ran", ratio=False),
    *_lags("run-now"),
    Row("every", "ticks ran", "ran", ratio=False),
    Row("every", "ticks missed", "missed", 0, ratio=False),
    *_lags("every"),
    Row("every", "agent CPU per tick (ms)", "cpu_ms_per_tick", 3),
    Row("herd", "runs succeeded", "succeeded", ratio=False),
    Row("herd", "failures", "failed", 0, ratio=False),
    Row("herd", "phantom 'i' run logs", "phantom_i", 0, ratio=False),
    Row("herd", "extra (duplicate) runs", "extra_runs", 0, ratio=False),
    Row("herd", "… started after the release", "runs_after_release", 0, ratio=False),
    *_lags("herd", 1)[1:],
    Row("herd", "last run finished (s)", "last_finished_s", 2),
    Row("herd", "agent CPU per run (ms)", "agent_cpu_ms_per_run", 3),
    Row("herd", "server CPU (s)", "server_cpu_s", 2),
    Row("herd-10k", "runs succeeded", "succeeded", ratio=False),
    Row("herd-10k", "failures", "failed", 0, ratio=False),
    Row("herd-10k", "extra (duplicate) runs", "extra_runs", 0, ratio=False),
    Row("herd-10k", "lag p99 (ms)", "lag_ms_p99", 1),
    Row("herd-10k", "last run finished (s)", "last_finished_s", 2),
    Row("herd-10k", "agent CPU per run (ms)", "agent_cpu_ms_per_run", 3),
    Row("idle", "agent transactions / min", "tx_per_min", 1),
    Row("idle", "… beyond the liveness check", "tx_per_min_beyond_liveness", 1),
    Row("idle", "agent wake-ups / min", "wakeups_per_min", 1),
    Row("idle", "agent CPU (ms / min)", "cpu_ms_per_min", 1),
    Row("scale", "queue loaded, agent's own measure (ms)", "load_ms_agent", 0),
    Row("scale", "process start → queue loaded (ms)", "start_to_loaded_ms", 0),
    Row("scale", "RSS after load (MB)", "rss_mb", 1),
    Row("scale", "peak RSS (VmHWM, MB)", "hwm_mb", 1),
    Row("scale", "UPDATE of the schedules (ms)", "update_stmt_ms", 0),
    Row("scale", "commit → queue updated, probe (ms)", "queue_updated_ms", 0),
    Row("scale", "… at DEBUG, last `queue: job` line (ms)", "debug.queue_updated_ms", 0),
]


def lookup(r: dict[str, Any] | None, key: str) -> Any:
    """``r[key]``, where ``a.b`` looks into nested dicts (None if anything is missing)."""
    found: Any = r
    for part in key.split("."):
        if not isinstance(found, dict):
            return None
        found = found.get(part)
    return found
