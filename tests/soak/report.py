"""The soak's results: one JSON document (what docs/operations.md quotes) and a short table.
Pure functions of what the run collected."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from tests.bench.stats import percentile
from tests.soak.check import Verdict, lag_summary
from tests.soak.fleet import Life
from tests.soak.model import Window

#: what the lag outside fault windows is held to: jobs due together, the herd target of
#: BENCHMARKS.md (a herd of 1,000: p99 ≤ 500 ms); a job due alone, ten times the quiet-machine
#: target (p99 ≤ 5 ms), as two servers, three agents, the workload and the injector share
#: two cores: a timer that lost its precision (a poll, a late wake-up) shows hundreds of ms
LAG_TARGETS_MS = {"together": 500.0, "alone": 50.0}
#: memory may grow by at most this much per hour over a life of at least RSS_MIN_LIFE seconds
RSS_SLOPE_LIMIT_MB_H = 10.0
RSS_MIN_LIFE = 600.0


def rss_trend(samples: list[tuple[float, int]]) -> dict[str, float] | None:
    """Least-squares slope (MB/hour) of a life's RSS after its first quarter (start-up and the
    first herds fill caches), with the first and last samples of that span."""
    if len(samples) < 8:
        return None
    t0, t1 = samples[0][0], samples[-1][0]
    span = [(t, kb / 1024) for t, kb in samples if t >= t0 + (t1 - t0) / 4]
    n = len(span)
    mt = sum(t for t, _ in span) / n
    mm = sum(m for _, m in span) / n
    var = sum((t - mt) ** 2 for t, _ in span)
    slope = sum((t - mt) * (m - mm) for t, m in span) / var if var else 0.0
    return {
        "life_s": round(t1 - t0, 1),
        "first_mb": round(span[0][1], 1),
        "last_mb": round(span[-1][1], 1),
        "max_mb": round(max(m for _, m in span), 1),
        "slope_mb_per_h": round(slope * 3600, 2),
    }


def memory(lives: dict[str, list[Life]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each life's trend, and the lives long enough to judge whose memory grew."""
    rows, grew = [], []
    for station, ls in lives.items():
        for n, life in enumerate(ls, 1):
            trend = rss_trend(life.rss)
            if trend is None:
                continue
            row = {
                "station": station,
                "life": n,
                **trend,
                "series_mb": [
                    [round(t - life.started), round(kb / 1024, 1)]
                    for t, kb in life.rss[:: max(1, len(life.rss) // 60)]
                ],
            }
            rows.append(row)
            if trend["life_s"] >= RSS_MIN_LIFE and trend["slope_mb_per_h"] > RSS_SLOPE_LIMIT_MB_H:
                grew.append(
                    {"kind": "memory_grows", **{k: row[k] for k in row if k != "series_mb"}}
                )
    return rows, grew


def faults(windows: list[Window]) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    details: dict[str, list[dict[str, object]]] = defaultdict(list)
    for w in windows:
        by_kind[w.kind].append(float(w.detail["recovery_s"]))  # type: ignore[arg-type]
        details[w.kind].append({"at": w.start.isoformat(), "station": w.station, **w.detail})
    return {
        kind: {
            "count": len(v),
            "recovery_s_p50": percentile(v, 0.5),
            "recovery_s_max": max(v),
            "bound_s": details[kind][0]["bound_s"],
            "each": details[kind],
        }
        for kind, v in sorted(by_kind.items())
    }


def lag_checks(verdict: Verdict) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lags = {k: lag_summary(v) for k, v in sorted(verdict.lags.items())}
    bad = []
    for kind, limit in LAG_TARGETS_MS.items():
        p99 = lags.get(kind, {}).get("p99_ms")
        if p99 is not None and p99 > limit:
            bad.append({"kind": "lag_over_target", "lags": kind, "p99_ms": p99, "target_ms": limit})
    return lags, bad


def table(report: dict[str, Any]) -> str:
    """The short Markdown table docs/operations.md shows."""
    lines = ["| fault | count | recovery p50 | recovery max | bound |", "|---|--:|--:|--:|--:|"]
    for kind, f in report["faults"].items():
        lines.append(
            f"| {kind} | {f['count']} | {f['recovery_s_p50']:.2f} s | "
            f"{f['recovery_s_max']:.2f} s | {f['bound_s']:g} s |"
        )
    lines += ["", "| start lag | runs | p50 | p99 | max |", "|---|--:|--:|--:|--:|"]
    for kind, s in report["lag"].items():
        if s["n"]:
            lines.append(
                f"| {kind} | {s['n']} | {s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms | "
                f"{s['max_ms']:.1f} ms |"
            )
    lines += ["", "| agent life | length | RSS first → last | slope |", "|---|--:|--:|--:|"]
    for m in report["memory"]:
        if m["life_s"] >= RSS_MIN_LIFE:
            lines.append(
                f"| {m['station']} #{m['life']} | {m['life_s'] / 60:.0f} min | "
                f"{m['first_mb']:.0f} → {m['last_mb']:.0f} MB | "
                f"{m['slope_mb_per_h']:+.1f} MB/h |"
            )
    c = Counter(report["counts"])
    lines += [
        "",
        f"{c['due']} due runs checked ({c['ran']} ran, {c['skipped_while_running']} "
        f"skipped while the job still ran, {c['missed_in_outage']} made up by a catch-up "
        f"run), {c['run_now']} Run now requests; violations: {len(report['violations'])}",
    ]
    return "\n".join(lines)
