"""notifyagent's targets (issue "Performance at the floor"), each against a run's results:
the measured figure, met or not, and where a floor applies, what this machine can do at best
(scenario floor, same run). BENCHMARKS.md shows this table; tests/unit/test_benchmarks_doc.py
checks that it is this function's output for the committed results file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Results = dict[str, Any]
Line = tuple[str, str, str, str, str]  # figure, target, measured, met?, floor


def _fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("yes" if ok else "**no**")


def result(report: Results, scenario: str, agent: str = "notifyagent") -> Results | None:
    r = report["results"].get(agent, {}).get(scenario)
    return None if r is None or "error" in r else r


def _floor(report: Results, key: str, agent: str = "notifyagent") -> str:
    f = result(report, "floor", agent)
    return "" if f is None or f.get(key) is None else f"{_fmt(f[key])} ms"


def _lag_lines(report: Results, scenario: str, name: str, floor: str) -> list[Line]:
    r = result(report, scenario)
    lines: list[Line] = []
    for q, limit in (("p50", 2.0), ("p99", 5.0)):
        v = None if r is None else r.get(f"lag_ms_{q}")
        fl = _floor(report, f"floor_{floor}_ms_{q}")
        met = None if v is None else v <= limit
        lines.append((f"{name}, lag {q}", f"≤ {limit:g} ms", f"{_fmt(v)} ms", _met(met), fl))
    return lines


def _spaced(report: Results) -> list[Line]:
    r = result(report, "spaced")
    low = None if r is None else r.get("lag_ms_min")
    never_early = ("spaced jobs, never early", "lag min ≥ 0", f"min {_fmt(low)} ms",
                   _met(None if low is None else low >= 0), "")  # fmt: skip
    return [*_lag_lines(report, "spaced", "spaced jobs", "timed"), never_early]


def _run_now(report: Results) -> list[Line]:
    return _lag_lines(report, "run-now", "Run now → step start", "run_now")


def _size(report: Results, key: str) -> str:
    """A scenario's size from the run's sizes (also when the scenario did not run)."""
    return _fmt(report["meta"]["sizes"].get(key), 0)


def _herd(report: Results) -> list[Line]:
    r = result(report, "herd") or {}
    n = _size(report, "herd_jobs")
    failed, dup = r.get("failed"), r.get("extra_runs")
    p99, cpu = r.get("lag_ms_p99"), r.get("agent_cpu_ms_per_run")
    dups = None if dup is None else dup + r.get("phantom_i", 0)
    stretch = "" if p99 is None else f" (stretch ≤ 250: {'yes' if p99 <= 250 else 'no'})"
    return [
        (f"herd of {n}: failures", "0", _fmt(failed, 0),
         _met(None if failed is None else failed == 0), ""),
        (f"herd of {n}: duplicates", "0", f"{_fmt(dups, 0)} (extra runs + phantom 'i')",
         _met(None if dups is None else dups == 0), ""),
        (f"herd of {n}: lag p99", "≤ 500 ms (stretch 250)", f"{_fmt(p99, 1)} ms",
         _met(None if p99 is None else p99 <= 500) + stretch, _cpu_floor(report, r)),
        (f"herd of {n}: agent CPU per run", "≤ 0.5 ms", f"{_fmt(cpu, 3)} ms",
         _met(None if cpu is None else cpu <= 0.5), ""),
    ]  # fmt: skip


def _cpu_floor(report: Results, r: Results) -> str:
    """The herd cannot end before the CPU it took (the agent's and the server's, measured in
    the same run) is spent on every core of the machine."""
    agent, server, cpus = r.get("agent_cpu_s"), r.get("server_cpu_s"), report["meta"].get("cpus")
    if agent is None or server is None or not cpus:
        return ""
    return f"CPU: ({_fmt(agent)} s agent + {_fmt(server)} s server) / {cpus} cores = " + (
        f"{_fmt((agent + server) / cpus * 1000, 0)} ms"
    )


def _herd_10k(report: Results) -> list[Line]:
    r = result(report, "herd-10k") or {}
    ok, n, last = r.get("succeeded"), r.get("jobs"), r.get("last_finished_s")
    measured = f"{_fmt(ok, 0)} / {_fmt(n, 0)} succeeded, last finished after {_fmt(last)} s"
    conc = _size(report, "herd10k_concurrency")
    conns = report["meta"].get("server_settings", {}).get("max_connections", "?")
    met = None if ok is None else ok == n and r.get("failed") == 0
    figure = f"herd of {_size(report, 'herd10k_jobs')} (--max-concurrency {conc}, "
    return [(f"{figure}max_connections {conns})", "all run, 0 failures", measured, _met(met),
             "")]  # fmt: skip


def _scale(report: Results) -> list[Line]:
    r = result(report, "scale") or {}
    n, changed = _size(report, "scale_jobs"), _size(report, "scale_changed")
    load, rss, upd = r.get("start_to_loaded_ms"), r.get("rss_mb"), r.get("queue_updated_ms")
    return [
        (f"{n} jobs: queue loaded from process start", "≤ 2 s",
         f"{_fmt(None if load is None else load / 1000)} s", _met(None if load is None else
         load <= 2000), ""),
        (f"{n} jobs: RSS after the load", "≤ 150 MB", f"{_fmt(rss, 1)} MB",
         _met(None if rss is None else rss <= 150), ""),
        (f"{changed} schedules changed in one UPDATE", "queue reflects all ≤ 0.5 s",
         f"{_fmt(None if upd is None else upd / 1000)} s", _met(None if upd is None else
         upd <= 500), ""),
    ]  # fmt: skip


def curve_points(report: Results) -> list[Results]:
    r = result(report, "curve")
    return [] if r is None else list(r["points"])


def _curve(report: Results) -> list[Line]:
    points = curve_points(report)
    big = next((p for p in points if p["jobs"] >= 1_000_000), None)
    loads = (
        "not measured (scripts/bench --scale)"
        if big is None
        else f"load {_fmt(big['start_to_loaded_ms'] / 1000)} s, RSS {_fmt(big['rss_mb'], 0)} MB, "
        f"a Run now then started in {_fmt(big.get('probe_run_now_ms'), 1)} ms"
    )
    curve = "; ".join(
        f"{p['jobs']:,}: {_fmt(p['load_us_per_job'], 1)} µs, {_fmt(p['rss_kb_per_job'])} kB"
        for p in points
    )
    marg = [p for p in points if "marginal_load_us_per_job" in p]
    linear = None
    if len(marg) >= 2:  # the last step costs no more per job than the one before (+50 %)
        a, b = marg[-2], marg[-1]
        linear = (
            b["marginal_load_us_per_job"] <= 1.5 * a["marginal_load_us_per_job"]
            and b["marginal_rss_kb_per_job"] <= 1.5 * a["marginal_rss_kb_per_job"]
        )
    return [
        ("1,000,000 jobs", "loads and runs; load time and RSS reported", loads,
         _met(None if big is None else big.get("probe_run_now_ms") is not None), ""),
        ("cost per job (load, RSS) at each size", "grows linearly", curve or "—",
         _met(linear), ""),
    ]  # fmt: skip


def _scale_out(report: Results) -> list[Line]:
    r = result(report, "scale-out")
    if r is None:
        return [("herd with 1, 2, 3 agents", "scale-out reported", "—", _met(None), "")]
    parts = []
    for k, v in r["by_agents"].items():
        shares = "/".join(str(x) for x in v["shares"].values())
        parts.append(
            f"{k}: {_fmt(v['last_finished_s'])} s ({shares}; server CPU "
            f"{_fmt(v['server_cpu_s'], 1)} s)"
        )
    ok = all(v["failed"] == 0 for v in r["by_agents"].values())
    return [(f"herd of {r['jobs']:,} with 1, 2, 3 agents", "total time and each agent's share",
             "; ".join(parts), "reported" if ok else "**failures**", "")]  # fmt: skip


def _idle(report: Results) -> list[Line]:
    r = result(report, "idle") or {}
    tx, beyond = r.get("tx_per_min"), r.get("tx_per_min_beyond_liveness")
    return [
        ("idle: statements", "≤ 2 / min in all", f"{_fmt(tx, 1)} / min",
         _met(None if tx is None else tx <= 2), ""),
        ("idle: beyond the liveness check", "0", f"{_fmt(beyond, 1)} / min",
         _met(None if beyond is None else beyond == 0), ""),
    ]  # fmt: skip


def _durable(report: Results) -> list[Line]:
    """Durable lag ≤ plain lag + one WAL flush (the INSERT round trip's extra on the durable
    server, from the two floors) + 0.5 ms of noise."""
    lines: list[Line] = []
    fd, fp = result(report, "floor", "notifyagent-durable"), result(report, "floor")
    flush = None if fd is None or fp is None else fd["write_ms_p50"] - fp["write_ms_p50"]
    for scenario, name in (("spaced", "spaced"), ("run-now", "Run now"), ("herd", "herd")):
        d, p = result(report, scenario, "notifyagent-durable"), result(report, scenario)
        if d is None or p is None or flush is None:
            lines.append((f"durable server: {name}", "lag ≤ plain + one WAL flush", "—",
                          _met(None), ""))  # fmt: skip
            continue
        extra = d["lag_ms_p50"] - p["lag_ms_p50"]
        measured = (
            f"p50 {_fmt(d['lag_ms_p50'])} ms (+{_fmt(extra)}), p99 {_fmt(d['lag_ms_p99'])} ms"
        )
        ok = extra <= max(flush, 0) + 0.5 if scenario != "herd" else None
        met = "reported" if ok is None else _met(ok)
        target = "lag p50 ≤ plain + one WAL flush"
        lines.append(
            (f"durable server: {name}", target, measured, met, f"WAL flush {_fmt(flush)} ms")
        )
    return lines


def _alerting(report: Results) -> list[Line]:
    """Every run alerting to a destination that never answers moves the start lag by noise
    at most (≤ 1 ms at p50 and p99 against the plain agent in the same run)."""
    lines: list[Line] = []
    for scenario, name in (("spaced", "spaced"), ("herd", "herd")):
        a, p = result(report, scenario, "notifyagent-alerting"), result(report, scenario)
        figure = f"hanging alert destination: {name}"
        if a is None or p is None:
            lines.append((figure, "lag unchanged", "—", _met(None), ""))
            continue
        d50, d99 = (a[f"lag_ms_{q}"] - p[f"lag_ms_{q}"] for q in ("p50", "p99"))
        measured = (
            f"p50 {_fmt(a['lag_ms_p50'])} ms ({d50:+.2f}), p99 {_fmt(a['lag_ms_p99'])} ms "
            f"({d99:+.2f})"
        )
        ok = d50 <= 1.0 and d99 <= 1.0 if scenario == "spaced" else None
        lines.append(
            (
                figure,
                "lag p50, p99 ≤ plain + 1 ms",
                measured,
                "reported" if ok is None else _met(ok),
                "",
            )
        )
    return lines


SECTIONS: list[Callable[[Results], list[Line]]] = [
    _spaced, _run_now, _herd, _herd_10k, _scale, _curve, _scale_out, _idle, _durable, _alerting,
]  # fmt: skip


def render_targets(report: Results) -> str:
    """The targets table of a run (rows of scenarios the run lacks say "not measured")."""
    lines = [
        "| figure | target | measured | met? | floor on this machine |",
        "|---|---|---|---|---|",
    ]
    for section in SECTIONS:
        lines += ["| " + " | ".join(cells) + " |" for cells in section(report)]
    return "\n".join(lines)
