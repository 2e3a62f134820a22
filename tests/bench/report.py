"""The results as people read them: one progress line per scenario, the Markdown table with
the agents side by side (ratios notifyagent / each other agent), and notifyagent's targets
(:mod:`targets`), met or not."""

from __future__ import annotations

from typing import Any

from tests.bench.config import VARIANTS
from tests.bench.rows import ROWS, Row, lookup
from tests.bench.targets import render_targets

__all__ = ["fmt", "render", "render_meta", "render_targets", "summary_line"]


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
    if "error" in r or "unsupported" in r:
        return str(r.get("error") or r["unsupported"])
    if scenario in ("spaced", "run-now", "herd", "herd-10k", "every"):
        n = r.get("jobs", r.get("samples", r.get("expected")))
        return (
            f"ran {r['ran']}/{n}, lag p50 {fmt(r['lag_ms_p50'], 2)} ms, "
            f"p99 {fmt(r['lag_ms_p99'], 2)} ms, max {fmt(r['lag_ms_max'], 2)} ms "
            f"({r['elapsed_s']:.1f}s)"
        )
    if scenario == "idle":
        return (
            f"{fmt(r['tx_per_min'])} tx/min, beyond liveness "
            f"{fmt(r['tx_per_min_beyond_liveness'])}, {fmt(r.get('wakeups_per_min'))} wake-ups/min"
        )
    if scenario == "floor":
        return (
            f"timer late p50 {fmt(r['timer_late_ms_p50'], 3)} ms, SELECT 1 "
            f"{fmt(r['read_ms_p50'], 3)} ms, INSERT {fmt(r['write_ms_p50'], 3)} ms, NOTIFY "
            f"{fmt(r['notify_ms_p50'], 3)} ms"
        )
    if scenario == "scale-out":
        return ", ".join(
            f"{k} agent(s): {fmt(v['last_finished_s'], 2)} s" for k, v in r["by_agents"].items()
        )
    if scenario == "curve":
        return ", ".join(
            f"{p['jobs']:,}: {p['load_ms_agent']} ms, {fmt(p['rss_mb'])} MB" for p in r["points"]
        )
    return (
        f"loaded {r['scheduled']} in {r['load_ms_agent']} ms (process start "
        f"{fmt(r['start_to_loaded_ms'], 0)} ms), RSS {fmt(r['rss_mb'])} MB, "
        f"{r['changed']} changed -> queue in {fmt(r['queue_updated_ms'], 0)} ms "
        f"(at DEBUG {fmt(r['debug']['queue_updated_ms'], 0)} ms)"
    )


def _titles(sizes: dict[str, Any]) -> dict[str, str]:
    """Each scenario's first cell: its name and size (older results lack some sizes)."""
    z = {k: v for k, v in sizes.items() if v is not None}

    def size(key: str) -> str:
        return f"{z[key]:,}" if key in z else "?"

    return {
        "floor": f"floor ({size('floor_samples')} samples each, no agent)",
        "spaced": f"spaced ({size('spaced_jobs')} jobs over {z.get('spaced_span', 0):g} s)",
        "run-now": f"run-now ({size('runnow_samples')} samples)",
        "every": f"every second ({z.get('every_window', 0):g} s window)",
        "herd": f"herd ({size('herd_jobs')} jobs due at once)",
        "herd-10k": f"herd of {size('herd10k_jobs')}, --max-concurrency "
        f"{size('herd10k_concurrency')}",
        "idle": f"idle ({z.get('idle_window', 0):g} s window)",
        "scale": f"scale ({size('scale_jobs')} jobs, {size('scale_changed')} schedules changed)",
    }


def _header(agents: list[str], others: list[str], base: str | None) -> list[str]:
    head = ["scenario", "metric", *(VARIANTS[a].label for a in agents)]
    if base:
        head += [f"notifyagent / {VARIANTS[a].label}" for a in others]
    align = ["---", "---"] + ["--:"] * (len(head) - 2)
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
        elif "unsupported" in r:
            cells.append("unsupported")
        elif row.key == "ran":
            n = r.get("jobs", r.get("samples", r.get("expected")))
            cells.append(f"{fmt(v)} / {fmt(n)}")
        else:
            cells.append(fmt(v, row.digits))
    return cells, values


def ratio(b: float | None, o: float | None) -> str:
    """notifyagent's value / the other's, two significant digits."""
    if o is None or b is None:
        return ""
    if o == 0:
        return "1" if b == 0 else "∞"
    return f"{b / o:.2g}x"


def _comparison(
    row: Row, values: dict[str, float | None], base: str, others: list[str]
) -> list[str]:
    """Ratios notifyagent / each other agent."""
    return [ratio(values[base], values[a]) if row.ratio else "" for a in others]


def render(report: dict[str, Any]) -> str:
    results: dict[str, dict[str, Any]] = report["results"]
    agents = list(results)
    base = "notifyagent" if "notifyagent" in results else None
    others = [a for a in agents if a != base]
    lines = _header(agents, others, base)
    titles = _titles(report["meta"]["sizes"])
    shown: set[str] = set()
    for row in ROWS:
        if row.scenario not in titles or not any(row.scenario in results[a] for a in agents):
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
