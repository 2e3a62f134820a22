"""Runs the chosen scenarios for the chosen agents, scenario by scenario, and collects the
report; one scenario's failure is recorded and the others still run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import psycopg

from tests.bench import cron, curve, every, floor, herd, idle, run_now, scale, spaced
from tests.bench.config import RUN_ORDER, VARIANTS, BenchError, Variant, say
from tests.bench.harness import Harness
from tests.bench.meta import machine_info
from tests.bench.report import summary_line

Scenario = Callable[[Harness, Variant], dict[str, Any]]
SCENARIO_FNS: dict[str, Scenario] = {
    "floor": floor.run,
    "spaced": spaced.run,
    "run-now": run_now.run,
    "every": every.run,
    "herd": herd.run,
    "herd-10k": herd.run_10k,
    "scale-out": herd.run_scale_out,
    "idle": idle.run,
    "scale": scale.run,
    "curve": curve.run,
}
#: pg_cron's own versions of the scenarios that fit its model (Variant.scenarios)
CRON_FNS: dict[str, Scenario] = {"herd": cron.herd, "idle": cron.idle, "every": cron.every}


def run_all(h: Harness) -> dict[str, Any]:
    """Every (scenario, agent) pair in run order; the JSON is rewritten after each one so
    that an interrupted run keeps what it measured."""
    started = time.time()
    meta = _meta(h)
    errors: list[str] = []
    results: dict[str, dict[str, Any]] = {key: {} for key in h.args.agents}
    for scenario in [s for s in RUN_ORDER if s in h.args.scenarios]:
        for key in h.args.agents:
            variant = VARIANTS[key]
            if scenario not in variant.scenarios:
                continue  # e.g. pgAgent keeps no queue: nothing to measure in scale
            results[key][scenario] = _run_one(h, scenario, variant, errors)
            partial = {"meta": meta, "results": results, "errors": errors, "partial": True}
            h.args.json.write_text(json.dumps(partial, indent=2, default=str) + "\n")
    meta["loadavg_end"] = os.getloadavg()
    meta["duration_s"] = round(time.time() - started, 1)
    return {"meta": meta, "results": results, "errors": errors}


def _meta(h: Harness) -> dict[str, Any]:
    meta = machine_info(h)
    meta["command"] = " ".join(["scripts/bench", *sys.argv[1:]])
    meta["quick"] = h.args.quick
    meta["cluster_dir"] = str(h.cluster.base)
    meta["cluster_dirs"] = [str(site.cluster.base) for site in h.sites.values()]
    meta["sizes"] = asdict(h.sizes)
    meta["loadavg_start"] = os.getloadavg()
    meta["notes"] = list(getattr(h.args, "notes", []))
    meta["scale_curve"] = list(curve.sizes(h))
    return meta


def _run_one(h: Harness, scenario: str, variant: Variant, errors: list[str]) -> dict[str, Any]:
    """One scenario against one agent; a failure becomes ``{"error": ...}`` and a line in
    ``errors``."""
    say(f"{variant.label}: {scenario}")
    t = time.monotonic()
    loadavg_before = os.getloadavg()
    fns = CRON_FNS if variant.is_cron else SCENARIO_FNS
    try:
        res = fns[scenario](h, variant)
    except (BenchError, psycopg.Error, subprocess.CalledProcessError) as err:
        say(f"  FAILED: {err}")
        errors.append(f"{variant.key}/{scenario}: {err}")
        res = {"error": str(err)}
    except Exception as err:  # a bug here must not cost the other scenarios
        detail = "".join(traceback.format_exception(err)[-3:])
        say(f"  FAILED (bug in scripts/bench): {detail}")
        errors.append(f"{variant.key}/{scenario}: {type(err).__name__}: {err}")
        res = {"error": f"{type(err).__name__}: {err}"}
    res["elapsed_s"] = round(time.monotonic() - t, 3)
    res["loadavg_before"] = loadavg_before
    res["loadavg_after"] = os.getloadavg()
    say(f"  {summary_line(scenario, res)}")
    return res
