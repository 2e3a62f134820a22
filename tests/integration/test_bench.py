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

from notifyagent.cluster import find_bindir
from tests.bench.config import SCENARIOS
from tests.bench.cron import available

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench"
LAG_KEYS = ("lag_ms_min", "lag_ms_p50", "lag_ms_p99", "lag_ms_max")


def _number(r: dict[str, Any], key: str) -> float:
    v = r.get(key)
    assert isinstance(v, int | float), f"{key} is {v!r} in {r}"
    assert math.isfinite(v), f"{key} is {v!r}"
    return float(v)


def _start(out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(BENCH), "--quick", "--seed", "1", "--json", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], out: Path) -> tuple[dict[str, Any], str]:
    stdout, stderr = proc.communicate(timeout=140)
    assert proc.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    report = json.loads(out.read_text())
    assert report["errors"] == []
    return report, stdout


def _cron_installed() -> bool:
    return available(find_bindir())


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_bench_quick_runs_every_scenario(tmp_path: Path) -> None:
    """Every scenario for every agent it fits; pg_cron (if the server has it) in a second run
    at the same time, as its herd waits for a minute boundary."""
    if shutil.which("pgagent") is None:
        pytest.fail("the pgagent binary is missing: scripts/setup installs the Debian package")
    out, cron_out = tmp_path / "bench.json", tmp_path / "cron.json"
    main = _start(
        out, "--agents", "notifyagent,notifyagent-durable,notifyagent-alerting,pgagent-t1"
    )
    cron = _start(cron_out, "--agents", "pg_cron") if _cron_installed() else None
    try:
        _check_main(*_finish(main, out))
        if cron is not None:
            _check_cron(*_finish(cron, cron_out))
    finally:  # a failed check leaves no bench run behind
        for proc in (main, cron):
            if proc is not None:
                if proc.poll() is None:
                    proc.terminate()
                proc.communicate()


def _check_main(report: dict[str, Any], stdout: str) -> None:
    results = report["results"]
    assert set(results) == {
        "notifyagent",
        "notifyagent-durable",
        "notifyagent-alerting",
        "pgagent-t1",
    }
    assert set(results["notifyagent-alerting"]) == {"spaced", "run-now", "herd"}
    assert set(results["notifyagent"]) == set(SCENARIOS)
    assert set(results["notifyagent-durable"]) == {"floor", "spaced", "run-now", "herd"}
    assert set(results["pgagent-t1"]) == {"spaced", "run-now", "herd", "idle"}
    sizes = report["meta"]["sizes"]

    for agent, scenarios in results.items():
        _check_timing(agent, scenarios, sizes)
        for r in scenarios.values():
            assert len(r["loadavg_before"]) == len(r["loadavg_after"]) == 3
    for agent in ("notifyagent", "pgagent-t1"):
        idle = results[agent]["idle"]
        assert _number(idle, "window_s") >= sizes["idle_window"]
        for key in ("tx_per_min", "tx_per_min_beyond_liveness", "cpu_ms_per_min"):
            _number(idle, key)
    # pgAgent -t 1 polls once a second: its wake-ups and its polls must have been seen; an
    # idle notifyagent wakes only for its liveness check (every 30 s), often not in the window
    assert _number(results["pgagent-t1"]["idle"], "wakeups_per_min") > 0
    assert 0 <= _number(results["notifyagent"]["idle"], "wakeups_per_min") <= 60
    assert results["pgagent-t1"]["idle"]["transactions"] >= 1

    na = results["notifyagent"]
    _check_floor(na["floor"])
    _check_floor(results["notifyagent-durable"]["floor"])
    _check_every(na["every"], sizes)
    _check_scale(na["scale"], sizes)
    _check_herds(na, sizes)
    _check_curve(na["curve"], sizes)

    # the printed tables: the agents side by side, the targets
    assert (
        "| notifyagent | notifyagent, durable server "
        "| notifyagent, every run alerting to a destination that never answers | pgAgent -t 1 |"
    ) in stdout
    assert "notifyagent / pgAgent -t 1" in stdout
    assert "| figure | target | measured | met? | floor on this machine |" in stdout
    _check_cleaned_up(report)


def _check_timing(agent: str, scenarios: dict[str, Any], sizes: dict[str, Any]) -> None:
    spaced = scenarios["spaced"]
    assert spaced["ran"] == spaced["jobs"] == sizes["spaced_jobs"], agent
    run_now = scenarios["run-now"]
    assert run_now["ran"] == run_now["samples"] == sizes["runnow_samples"], agent
    herd = scenarios["herd"]
    assert herd["ran"] == herd["jobs"] == sizes["herd_jobs"], agent
    assert herd["succeeded"] == herd["jobs"], agent
    _number(herd, "last_finished_s")
    _number(herd, "agent_cpu_ms_per_run")
    # the server's CPU is read from /proc in 10 ms ticks: a quick herd of 20 jobs may use none
    assert _number(herd, "server_cpu_s") >= 0, agent
    for r in (spaced, run_now, herd):
        for key in LAG_KEYS:
            _number(r, key)
    for r in (spaced, run_now):
        _number(r, "first_run_lag_ms")


def _check_floor(floor: dict[str, Any]) -> None:
    for part in ("timer_late_ms", "read_ms", "write_ms", "notify_ms"):
        assert 0 < _number(floor, f"{part}_p50") <= _number(floor, f"{part}_max"), part
    assert _number(floor, "floor_timed_ms_p50") > _number(floor, "timer_late_ms_p50")
    assert _number(floor, "floor_run_now_ms_p99") > _number(floor, "notify_ms_p99")


def _check_every(every: dict[str, Any], sizes: dict[str, Any]) -> None:
    assert every["expected"] == sizes["every_window"]
    assert every["ran"] >= every["expected"] - 1  # a loaded test machine may miss one
    assert _number(every, "lag_ms_min") >= 0  # never before its tick
    _number(every, "cpu_ms_per_tick")


def _check_scale(scale: dict[str, Any], sizes: dict[str, Any]) -> None:
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


def _check_herds(na: dict[str, Any], sizes: dict[str, Any]) -> None:
    big = na["herd-10k"]
    # every job ran or failed; 0 failures is the target (BENCHMARKS.md), not asserted here
    assert big["jobs"] == sizes["herd10k_jobs"]
    assert big["succeeded"] + big["failed"] == big["jobs"]
    assert big["agent_args"] == ["--max-concurrency", str(sizes["herd10k_concurrency"])]
    by_agents = na["scale-out"]["by_agents"]
    assert list(by_agents) == [str(k) for k in sizes["scaleout_agents"]]
    for k, r in by_agents.items():
        assert r["succeeded"] == r["jobs"] == sizes["scaleout_jobs"], k
        assert sum(r["shares"].values()) == r["jobs"], k
        assert len(r["shares"]) <= int(k), k
        assert _number(r, "server_cpu_s") >= 0  # 10 ms ticks, as in _check_timing


def _check_curve(curve: dict[str, Any], sizes: dict[str, Any]) -> None:
    points = curve["points"]
    assert [p["jobs"] for p in points] == list(sizes["curve_jobs"])
    for p in points:
        assert p["scheduled"] == p["jobs"]
        assert p["loaded_of"] == p["jobs"] + 1  # and the probe job
        assert _number(p, "rss_mb") > 0
        _number(p, "load_us_per_job")
        assert _number(p, "probe_run_now_ms") > 0  # it runs jobs with all of them loaded
    assert "marginal_rss_kb_per_job" in points[-1]


def _check_cron(report: dict[str, Any], stdout: str) -> None:
    cron = report["results"]["pg_cron"]
    assert set(cron) == {"every", "herd", "idle"}
    herd = cron["herd"]
    assert herd["ran"] == herd["succeeded"] == herd["jobs"] == report["meta"]["sizes"]["herd_jobs"]
    assert _number(herd, "lag_ms_min") >= 0  # not before the minute boundary
    every = cron["every"]
    assert "unsupported" in every or every["ran"] >= every["expected"] - 1
    assert _number(cron["idle"], "wakeups_per_min") > 0
    assert "| pg_cron |" in stdout
    _check_cleaned_up(report)


def _check_cleaned_up(report: dict[str, Any]) -> None:
    """Nothing left behind: no cluster directory, no process using one (agents, postgres)."""
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    for cluster_dir in report["meta"]["cluster_dirs"]:
        assert not Path(cluster_dir).exists()
        assert cluster_dir not in ps.stdout
