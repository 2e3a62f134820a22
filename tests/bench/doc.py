"""BENCHMARKS.md's generated part, from a results file (``scripts/bench --update-doc``): the
run (commit, machine, load average), the targets, the agents side by side, the floors, the
scale curve, the scale-out herd and each scenario's load average. The options that choose
which agents and sizes a run has live here too."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from notifyagent.cluster import find_bindir
from tests.bench import cron
from tests.bench.config import REPO, VARIANTS
from tests.bench.report import fmt, render, render_targets
from tests.bench.targets import curve_points, result

DOC = REPO / "BENCHMARKS.md"
BEGIN = "<!-- scripts/bench --update-doc: generated from the results file below, do not edit -->"
END = "<!-- end of the generated part -->"


def add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--durable",
        action="store_true",
        help="add notifyagent on a durable server (fsync, synchronous_commit on) to --agents "
        "(the full default run includes it)",
    )
    p.add_argument(
        "--scale",
        action="store_true",
        help="the curve scenario goes on to 1,000,000 jobs (a few minutes)",
    )
    p.add_argument(
        "--update-doc",
        type=Path,
        metavar="RESULTS.json",
        help="write the tables of a results file into BENCHMARKS.md and exit",
    )


def choose_agents(args: argparse.Namespace) -> None:
    """The default agents (--quick: all but pgAgent at its 5 s poll), --durable, and pg_cron
    only where the server has it (else dropped, with a note in the results)."""
    if args.agents is None:
        args.agents = [a for a in VARIANTS if not (args.quick and a == "pgagent")]
    if args.durable and "notifyagent-durable" not in args.agents:
        args.agents.append("notifyagent-durable")
    args.notes = []
    if "pg_cron" in args.agents and not cron.available(find_bindir()):
        args.agents.remove("pg_cron")
        note = "pg_cron skipped: the server has no pg_cron (apt-get install postgresql-15-cron)"
        args.notes.append(note)
        print(f"scripts/bench: {note}", file=sys.stderr)


def update_doc(results: Path) -> int:
    report = json.loads(results.read_text())
    try:
        name = results.resolve().relative_to(REPO).as_posix()
    except ValueError:
        name = results.as_posix()
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        print(f"scripts/bench: {DOC} lacks the markers {BEGIN!r} ... {END!r}", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + BEGIN + "\n" + render_doc(report, name) + "\n" + END + tail)
    print(f"{DOC} updated from {name}", file=sys.stderr)
    return 0


def render_doc(report: dict[str, Any], name: str) -> str:
    """The generated part of BENCHMARKS.md for the results file ``name``."""
    parts = [
        _run(report, name),
        "### Targets\n\n" + render_targets(report),
        "### All agents side by side\n\n"
        "Ratios are notifyagent / the other agent (below 1: notifyagent's figure is lower). "
        "n/a: the agent does not fit the scenario.\n\n" + render(report),
        _curve(report),
        _scale_out(report),
        _loadavg(report),
    ]
    return "\n\n".join(p for p in parts if p)


def _run(report: dict[str, Any], name: str) -> str:
    m = report["meta"]

    def la(xs: list[float]) -> str:
        return "/".join(f"{x:.2f}" for x in xs)

    notes = "".join(f"\n* {n}" for n in m.get("notes", []))
    quick = "\n* **--quick run: tiny sizes, the targets are not meaningful**" if m["quick"] else ""
    return (
        f"Run on **{m['date']}**, results file [`{name}`]({name}):\n\n"
        f"* {m['cpus']} x {m['cpu']}, {m['memory_gb']} GB, {m['os']} (kernel {m['kernel']});\n"
        f"* PostgreSQL {m['postgresql']}, Python {m['python']}, pgAgent {m['pgagent']};\n"
        f"* notifyagent at commit `{m['git']}`;\n"
        f"* command `{m['command']}`, {m['duration_s']:.0f} s; load average (1/5/15 min) "
        f"{la(m['loadavg_start'])} at the start, {la(m['loadavg_end'])} at the end." + quick + notes
    )


def _curve(report: dict[str, Any]) -> str:
    points = curve_points(report)
    if not points:
        return ""
    lines = [
        "### Scale curve (notifyagent)\n",
        "| jobs | process start → queue loaded (ms) | agent's own measure (ms) | RSS (MB) | "
        "peak (MB) | start-up CPU (s) | load µs / job | RSS kB / job | marginal µs / job | "
        "marginal kB / job | then a Run now (ms) |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in points:
        cells = [
            fmt(p["jobs"]),
            fmt(p["start_to_loaded_ms"], 0),
            fmt(p["load_ms_agent"]),
            fmt(p["rss_mb"]),
            fmt(p["hwm_mb"]),
            fmt(p["startup_cpu_s"], 2),
            fmt(p["load_us_per_job"], 2),
            fmt(p["rss_kb_per_job"], 2),
            fmt(p.get("marginal_load_us_per_job"), 2),
            fmt(p.get("marginal_rss_kb_per_job"), 2),
            fmt(p.get("probe_run_now_ms"), 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _scale_out(report: dict[str, Any]) -> str:
    r = result(report, "scale-out")
    if r is None:
        return ""
    lines = [
        f"### Scale-out: a herd of {r['jobs']:,} with several agents (notifyagent)\n",
        "| agents | last run finished (s) | lag p50 (ms) | lag p99 (ms) | runs per agent | "
        "failures | agents' CPU (s) | server CPU (s) |",
        "|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for k, v in r["by_agents"].items():
        shares = ", ".join(f"{s}: {n}" for s, n in v["shares"].items())
        cells = [
            k,
            fmt(v["last_finished_s"], 2),
            fmt(v["lag_ms_p50"]),
            fmt(v["lag_ms_p99"]),
            shares,
            fmt(v["failed"]),
            fmt(v["agent_cpu_s"], 2),
            fmt(v["server_cpu_s"], 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    cpus = report["meta"]["cpus"]
    lines.append(
        f"\nThe server CPU is that of the whole cluster (postmaster and every backend) over the "
        f"herd; on {cpus} cores, a server near {cpus} x the herd's duration is the limit."
    )
    return "\n".join(lines)


def _loadavg(report: dict[str, Any]) -> str:
    lines = [
        "### Load average around each scenario\n",
        "| scenario | agent | took (s) | load before (1/5/15 min) | load after |",
        "|---|---|--:|---|---|",
    ]
    for agent, scenarios in report["results"].items():
        for scenario, r in scenarios.items():
            before = "/".join(f"{x:.2f}" for x in r.get("loadavg_before", [])) or "—"
            after = "/".join(f"{x:.2f}" for x in r.get("loadavg_after", [])) or "—"
            label = VARIANTS[agent].label if agent in VARIANTS else agent
            lines.append(
                f"| {scenario} | {label} | {fmt(r.get('elapsed_s'))} | {before} | {after} |"
            )
    return "\n".join(lines)
