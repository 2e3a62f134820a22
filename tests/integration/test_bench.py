"""``scripts/bench --quick``: the benchmark runs end to end, so it cannot rot.

Only that every scenario produced numbers and every job ran is asserted: timings on a shared
test machine say nothing (BENCHMARKS.md has the real run).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench"
LAG_KEYS = ("lag_ms_min", "lag_ms_p50", "lag_ms_p99", "lag_ms_max")


def _number(r: dict[str, Any], key: str) -> float:
    v = r.get(key)
    assert isinstance(v, int | float), f"{key} is {v!r} in {r}"
    assert math.isfinite(v), f"{key} is {v!r}"
    return float(v)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_bench_quick_runs_every_scenario(tmp_path: Path) -> None:
    if shutil.which("pgagent") is None:
        pytest.fail("the pgagent binary is missing: scripts/setup installs the Debian package")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--seed", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    report = json.loads(out.read_text())
    results = report["results"]
    assert report["errors"] == []
    assert set(results) == {"notifyagent", "pgagent-t1"}
    assert set(results["notifyagent"]) == {"spaced", "run-now", "herd", "idle", "scale"}
    assert set(results["pgagent-t1"]) == {"spaced", "run-now", "herd", "idle"}
    sizes = report["meta"]["sizes"]

    for agent, scenarios in results.items():
        spaced = scenarios["spaced"]
        assert spaced["ran"] == spaced["jobs"] == sizes["spaced_jobs"], agent
        run_now = scenarios["run-now"]
        assert run_now["ran"] == run_now["samples"] == sizes["runnow_samples"], agent
        herd = scenarios["herd"]
        assert herd["ran"] == herd["jobs"] == sizes["herd_jobs"], agent
        assert herd["succeeded"] == herd["jobs"], agent
        _number(herd, "last_finished_s")
        for r in (spaced, run_now, herd):
            for key in LAG_KEYS:
                _number(r, key)
        for r in (spaced, run_now):
            _number(r, "first_run_lag_ms")
        idle = scenarios["idle"]
        assert _number(idle, "window_s") >= sizes["idle_window"]
        _number(idle, "tx_per_min")
        _number(idle, "tx_per_min_beyond_liveness")

    # pgAgent -t 1 polls once a second: the idle count must have seen its polls
    assert results["pgagent-t1"]["idle"]["transactions"] >= 1

    scale = results["notifyagent"]["scale"]
    assert scale["jobs"] == scale["scheduled"] == sizes["scale_jobs"]
    assert scale["loaded_of"] == sizes["scale_jobs"] + 1  # and the probe job
    assert scale["changed"] == scale["debug"]["queue_lines"] == sizes["scale_changed"]
    assert scale["mismatched_due"] == 0
    assert scale["ran"] == 0  # none of the scheduled jobs was due
    for key in (
        "load_ms_agent",
        "start_to_loaded_ms",
        "rss_mb",
        "update_stmt_ms",
        "queue_updated_ms",
    ):
        assert _number(scale, key) > 0, key
    for key in ("queue_updated_ms", "probe_ms"):
        assert _number(scale["debug"], key) > 0, key

    # the printed table has both agents side by side
    assert "| notifyagent | pgAgent -t 1 |" in proc.stdout
    assert "pgAgent -t 1 / notifyagent" in proc.stdout
    # nothing left behind: no cluster directory, no process using it (agents, postgres)
    cluster_dir = report["meta"]["cluster_dir"]
    assert not Path(cluster_dir).exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert cluster_dir not in ps.stdout
