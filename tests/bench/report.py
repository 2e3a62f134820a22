"""The results as people read them: one progress line per scenario, and the Markdown table
with the agents side by side, the ratios pgAgent / notifyagent and notifyagent's targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.bench.config import VARIANTS


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != 0 and abs(v) < 10 ** (-digits) * 5:
            return f"{v:.{digits + 2}f}"
        return f"{v:,.{digits}f}"
    return str(v)


def summary_line(scenario: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return "error"
    if scenario in ("spaced", "run-now", "herd"):
        n = r.get("jobs", r.get("samples"))
        return (
            f"ran {r['ran']}/{n}, lag p50 {fmt(r['lag_ms_p50'], 2)} ms, "
            f"p99 {fmt(r['lag_ms_p99'], 2)} ms, max {fmt(r['lag_ms_max'], 2)} ms "
            f"({r['elapsed_s']:.1f}s)"
        )
    if scenario == "idle":
        return (
            f"{fmt(r['tx_per_min'])} tx/min ({r['transactions']} in {r['window_s']:.1f}s), "
            f"beyond liveness {fmt(r['tx_per_min_beyond_liveness'])}"
        )
    return (
        f"loaded {r['scheduled']} in {r['load_ms_agent']} ms (process start "
        f"{fmt(r['start_to_loaded_ms'], 0)} ms), RSS {fmt(r['rss_mb'])} MB, "
        f"{r['changed']} changed -> queue in {fmt(r['queue_updated_ms'], 0)} ms "
        f"(at DEBUG {fmt(r['debug']['queue_updated_ms'], 0)} ms)"
    )


@dataclass(frozen=True)
class Row:
    """One line of the table: a result key (``a.b`` looks into nested dicts) and, for
    notifyagent, its target."""

    scenario: str
    label: str
    key: str
    digits: int = 1
    target: str = ""
    check: Callable[[float], bool] | None = None
    ratio: bool = True


ROWS = [
    Row("spaced", "jobs ran", "ran", ratio=False),
    Row("spaced", "first run after start (ms)", "first_run_lag_ms", 2),
    Row("spaced", "lag min (ms)", "lag_ms_min", 2),
    Row("spaced", "lag p50 (ms)", "lag_ms_p50", 2, "≤ 2", lambda v: v <= 2),
    Row("spaced", "lag p99 (ms)", "lag_ms_p99", 2, "≤ 10", lambda v: v <= 10),
    Row("spaced", "lag max (ms)", "lag_ms_max", 2),
    Row("run-now", "samples ran", "ran", ratio=False),
    Row("run-now", "lag min (ms)", "lag_ms_min", 2),
    Row("run-now", "lag p50 (ms)", "lag_ms_p50", 2, "≤ 10", lambda v: v <= 10),
    Row("run-now", "lag p99 (ms)", "lag_ms_p99", 2),
    Row("run-now", "lag max (ms)", "lag_ms_max", 2),
    Row("herd", "runs succeeded", "succeeded", ratio=False),
    Row("herd", "failures", "failed", 0, "0", lambda v: v == 0, ratio=False),
    Row("herd", "phantom 'i' run logs", "phantom_i", 0, ratio=False),
    Row("herd", "extra (duplicate) runs", "extra_runs", 0, ratio=False),
    Row("herd", "… started after the release", "runs_after_release", 0, ratio=False),
    Row("herd", "lag p50 (ms)", "lag_ms_p50", 1),
    Row("herd", "lag p99 (ms)", "lag_ms_p99", 1, "≤ 1000 (250)", lambda v: v <= 1000),
    Row("herd", "lag max (ms)", "lag_ms_max", 1),
    Row("herd", "last run finished (s)", "last_finished_s", 2),
    Row("idle", "agent transactions / min", "tx_per_min", 1, "≤ 2", lambda v: v <= 2),
    Row(
        "idle",
        "… beyond the liveness check",
        "tx_per_min_beyond_liveness",
        1,
        "0",
        lambda v: v == 0,
    ),
    Row("scale", "queue loaded, agent's own measure (ms)", "load_ms_agent", 0),
    Row(
        "scale",
        "process start → queue loaded (ms)",
        "start_to_loaded_ms",
        0,
        "≤ 3000",
        lambda v: v <= 3000,
    ),
    Row("scale", "RSS after load (MB)", "rss_mb", 1, "≤ 200", lambda v: v <= 200),
    Row("scale", "peak RSS (VmHWM, MB)", "hwm_mb", 1),
    Row("scale", "UPDATE of the schedules (ms)", "update_stmt_ms", 0),
    Row(
        "scale",
        "commit → queue updated, probe (ms)",
        "queue_updated_ms",
        0,
        "≤ 1000",
        lambda v: v <= 1000,
    ),
    Row("scale", "… at DEBUG, last `queue: job` line (ms)", "debug.queue_updated_ms", 0),
]


def lookup(r: dict[str, Any], key: str) -> Any:
    """``r[key]``, where ``a.b`` looks into nested dicts."""
    found: Any = r
    for part in key.split("."):
        if not isinstance(found, dict):
            return None
        found = found.get(part)
    return found


def _titles(sizes: dict[str, Any]) -> dict[str, str]:
    """Each scenario's first cell: its number and size."""
    return {
        "spaced": f"1 spaced ({sizes['spaced_jobs']} jobs over {sizes['spaced_span']:g} s)",
        "run-now": f"2 run-now ({sizes['runnow_samples']} samples)",
        "herd": f"3 herd ({sizes['herd_jobs']:,} jobs due at once)",
        "idle": f"4 idle ({sizes['idle_window']:g} s window)",
        "scale": (
            f"5 scale ({sizes['scale_jobs']:,} jobs, {sizes['scale_changed']:,} schedules changed)"
        ),
    }


def _header(agents: list[str], others: list[str], base: str | None) -> list[str]:
    head = ["scenario", "metric", *(VARIANTS[a].label for a in agents)]
    if base:
        head += [f"{VARIANTS[a].label} / notifyagent" for a in others]
        head += ["notifyagent target", "met?"]
    align = ["---", "---"] + ["--:"] * (len(head) - 2)
    if base:
        align[-2:] = ["---", "---"]
    return ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]


def _values(
    row: Row, results: dict[str, dict[str, Any]]
) -> tuple[list[str], dict[str, float | None]]:
    """The row's cell and number for every agent (n/a: the agent does not run the scenario)."""
    cells: list[str] = []
    values: dict[str, float | None] = {}
    for a, scenarios in results.items():
        r = scenarios.get(row.scenario)
        v = None if r is None or "error" in r else lookup(r, row.key)
        values[a] = v
        if r is None:
            cells.append("n/a")
        elif "error" in r:
            cells.append("error")
        elif row.key == "ran":
            cells.append(f"{fmt(v)} / {fmt(r.get('jobs', r.get('samples')))}")
        else:
            cells.append(fmt(v, row.digits))
    return cells, values


def _comparison(
    row: Row, values: dict[str, float | None], base: str, others: list[str]
) -> list[str]:
    """Ratios to notifyagent, then notifyagent's target and whether it was met."""
    b = values[base]
    cells: list[str] = []
    for a in others:
        o = values[a]
        if not row.ratio or o is None or b is None:
            cells.append("")
        elif b == 0:
            cells.append("∞" if o else "1")
        else:
            cells.append(f"{o / b:,.1f}x")
    met = ""
    if row.check is not None and b is not None:
        met = "yes" if row.check(float(b)) else "**no**"
    return [*cells, row.target, met]


def render(report: dict[str, Any]) -> str:
    results: dict[str, dict[str, Any]] = report["results"]
    agents = list(results)
    base = "notifyagent" if "notifyagent" in results else None
    others = [a for a in agents if a != base]
    lines = _header(agents, others, base)
    titles = _titles(report["meta"]["sizes"])
    shown: set[str] = set()
    for row in ROWS:
        if not any(row.scenario in results[a] for a in agents):
            continue
        cells, values = _values(row, results)
        if base:
            cells += _comparison(row, values, base, others)
        title = titles[row.scenario] if row.scenario not in shown else ""
        shown.add(row.scenario)
        lines.append("| " + " | ".join([title, row.label, *cells]) + " |")
    return "\n".join(lines)


def render_meta(meta: dict[str, Any]) -> str:
    la0 = "/".join(f"{x:.2f}" for x in meta["loadavg_start"])
    la1 = "/".join(f"{x:.2f}" for x in meta["loadavg_end"])
    return (
        f"{meta['date']} · {meta['cpus']} x {meta['cpu']}, {meta['memory_gb']} GB, "
        f"{meta['os']} ({meta['kernel']}) · PostgreSQL {meta['postgresql']} · "
        f"Python {meta['python']} · notifyagent {meta['notifyagent']} ({meta['git']}) · "
        f"pgAgent {meta['pgagent']}"
        f"\nload average (1/5/15 min) at start {la0}, at end {la1} · run took "
        f"{meta['duration_s']:.0f} s · `{meta['command']}`"
        + ("\n(--quick: tiny sizes, targets are not meaningful)" if meta["quick"] else "")
    )
