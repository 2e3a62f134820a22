"""The benchmark's targets table (tests/bench/targets.py): each target met or not from a
run's numbers, with the machine's floor next to the lag targets."""

from __future__ import annotations

from typing import Any

from tests.bench.targets import render_targets


def _row(table: str, figure: str) -> list[str]:
    line = next(ln for ln in table.splitlines() if ln.startswith(f"| {figure} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def _report(**results: dict[str, Any]) -> dict[str, Any]:
    sizes = {"herd_jobs": 1000, "herd10k_jobs": 10000, "herd10k_concurrency": 500,
             "scale_jobs": 100000, "scale_changed": 10000}  # fmt: skip
    meta = {"sizes": sizes, "server_settings": {"max_connections": "100"}}
    return {"meta": meta, "results": {"notifyagent": results}}


def test_lag_targets_met_or_not_with_the_floor() -> None:
    floor = {"floor_timed_ms_p50": 1.25, "floor_timed_ms_p99": 3.5}
    spaced = {"lag_ms_p50": 1.9, "lag_ms_p99": 5.2, "lag_ms_min": -0.1}
    table = render_targets(_report(spaced=spaced, floor=floor))
    assert _row(table, "spaced jobs, lag p50") == ["spaced jobs, lag p50", "≤ 2 ms", "1.90 ms",
                                                    "yes", "1.25 ms"]  # fmt: skip
    assert _row(table, "spaced jobs, lag p99")[2:] == ["5.20 ms", "**no**", "3.50 ms"]
    assert _row(table, "spaced jobs, never early")[3] == "**no**"  # one run started early
    assert _row(table, "Run now → step start, lag p50")[3] == "not measured"


def test_herd_targets() -> None:
    herd = {"jobs": 1000, "failed": 0, "extra_runs": 0, "phantom_i": 1, "lag_ms_p99": 240.0,
            "agent_cpu_ms_per_run": 0.7}  # fmt: skip
    table = render_targets(_report(herd=herd))
    assert _row(table, "herd of 1,000: failures")[3] == "yes"
    assert _row(table, "herd of 1,000: duplicates")[3] == "**no**"  # a phantom 'i' row
    assert _row(table, "herd of 1,000: lag p99")[3] == "yes (stretch ≤ 250: yes)"
    assert _row(table, "herd of 1,000: agent CPU per run")[3] == "**no**"
    ten = _row(table, "herd of 10,000 (--max-concurrency 500, max_connections 100)")
    assert ten[3] == "not measured"


def test_the_curve_is_linear_when_the_marginal_cost_does_not_grow() -> None:
    def point(jobs: int, us: float, kb: float) -> dict[str, Any]:
        return {"jobs": jobs, "start_to_loaded_ms": jobs / 50, "rss_mb": jobs / 1000,
                "load_us_per_job": us, "rss_kb_per_job": kb,
                "marginal_load_us_per_job": us, "marginal_rss_kb_per_job": kb,
                "probe_run_now_ms": 3.0}  # fmt: skip

    linear = [point(10_000, 30, 2), point(100_000, 20, 1.2), point(1_000_000, 21, 1.1)]
    table = render_targets(_report(curve={"points": linear}))
    assert _row(table, "cost per job (load, RSS) at each size")[3] == "yes"
    assert _row(table, "1,000,000 jobs")[2:4] == [
        "load 20.00 s, RSS 1,000 MB, a Run now then started in 3.0 ms",
        "yes",
    ]
    worse = [*linear[:2], point(1_000_000, 40, 1.1)]
    table = render_targets(_report(curve={"points": worse}))
    assert _row(table, "cost per job (load, RSS) at each size")[3] == "**no**"
