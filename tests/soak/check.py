"""The soak's verdict, computed from what the database holds (runs, ticks) and what the soak
did (edits, Run now requests, faults). Pure: tests/unit/test_soak_check.py feeds it by hand.

A scheduled run belongs to the latest due time at or before its start (``jlgstart``: the due
time itself when the agent claimed ahead, the claim's time for a late run). Then, for each due
time in the checked span:

* more than one run is a double run, unless the extra runs are the retries the job's policy
  allows after a failed run;
* no run is a miss, unless the job was still running then (``overlap = skip``), or an edit
  of its schedule came at that moment (whether the old or the new schedule applies to that
  due time is a race), or a fault
  that concerns the job covers the due time (no agent for it was alive, or no server) *and*
  its next due time is covered too: the catch-up rule (``catchup = once``) runs a job missed
  during an outage once after it, which counts for the latest due time missed;
* a step that ticked before the due time started early.

A Run now request must be followed by exactly one run before the next request of that job,
and no run may start without one. The lag of a run is its first tick less its due time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.bench.stats import percentile
from tests.soak.model import Edit, JobModel, Run, Soak

#: An edit makes due times this close to it ambiguous (which version the agent saw).
EDIT_MARGIN = 2.0
#: A run the agent lost (status 'd', no duration) counts as running until the fault that
#: ended it is over, or at most this long.
LOST_RUN_SPAN = 120.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: a run falls due alone when no other job fell due this long before or after it (seconds)
ALONE_BEFORE, ALONE_AFTER = 1.0, 0.05
#: after a fault, the agents catch up (runs missed meanwhile, a reload of the queue): the lag
#: of runs due within this many seconds after its end is not steady state
SETTLE = 5.0


@dataclass(frozen=True)
class Due:
    at: datetime
    #: an outage covers it: a missing run is acceptable if made up for (see the module doc)
    relaxed: bool
    #: an edit of the job's schedule came at that moment: the old or the new schedule applies
    excused: bool
    #: a fault or an edit is near: the lag is not the agent's steady state
    disturbed: bool


@dataclass
class Verdict:
    #: every due time and Run now request of the soak (sorted when classifying)
    dues: list[datetime] = field(default_factory=list)
    #: (due time, lag) of the runs outside faults, classified at the end (alone, together)
    steady: list[tuple[datetime, float]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    lags: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def violate(self, kind: str, job: JobModel, at: datetime | None, **detail: Any) -> None:
        self.counts[f"violation_{kind}"] += 1
        when = at.isoformat() if at else None
        self.violations.append({"kind": kind, "job": job.jobid, "job_kind": job.kind,
                                "at": when, **detail})  # fmt: skip


def _minutes(lo: datetime, hi: datetime) -> Iterator[datetime]:
    t = lo.replace(second=0, microsecond=0)
    if t < lo:
        t += timedelta(minutes=1)
    while t <= hi:
        yield t
        t += timedelta(minutes=1)


def _ticks(every: int, lo: datetime, hi: datetime) -> Iterator[datetime]:
    k = -(-int((lo - EPOCH).total_seconds()) // every)
    t = EPOCH + timedelta(seconds=k * every)
    while t <= hi:
        yield t
        t += timedelta(seconds=every)


def due_times(
    job: JobModel, edits: list[Edit], lo: datetime, hi: datetime
) -> list[tuple[datetime, bool]]:
    """The job's due times in [lo, hi], each with whether an edit makes it ambiguous (then
    both the old and the new schedule's due times near the edit are listed)."""
    if job.every is not None:
        return [(t, False) for t in _ticks(job.every, lo, hi)]
    if job.minutes is None:
        return []
    versions = [(EPOCH, job.minutes)] + [
        (e.at, e.minutes) for e in sorted(edits, key=lambda e: e.at)
    ]
    found = []
    for t in _minutes(lo, hi):
        i = bisect_right([v[0] for v in versions], t) - 1
        near = [
            n
            for n, (at, _) in enumerate(versions)
            if n and abs((t - at).total_seconds()) <= EDIT_MARGIN
        ]
        sets = (
            {versions[i][1]} | {versions[n][1] for n in near} | {versions[n - 1][1] for n in near}
        )
        if any(t.minute in s for s in sets):
            found.append((t, bool(near)))
    return found


def _running_at(runs: list[Run], t: datetime) -> bool:
    """Whether a run of the job was in progress at ``t``. A run its agent lost ('d', no
    duration) counts as running until the job's next run started (at most LOST_RUN_SPAN): when
    it really ended is not recorded."""
    ordered = sorted(runs, key=lambda r: (r.start, r.jlgid))
    for n, r in enumerate(ordered):
        end = r.end
        if end is None:
            cap = r.start + timedelta(seconds=LOST_RUN_SPAN)
            end = min(cap, ordered[n + 1].start) if n + 1 < len(ordered) else cap
        if r.start < t < end:
            return True
    return False


def _classify(job: JobModel, soak: Soak, times: list[tuple[datetime, bool]]) -> list[Due]:
    dues = []
    for at, near_edit in times:
        relax = any(w.relaxes and w.concerns(job) and w.covers(at) for w in soak.windows)
        disturbed = near_edit or any(w.covers(at, 1.0, 2.0) for w in soak.windows)
        dues.append(Due(at, relax, near_edit, disturbed))
    return dues


def _group(dues: list[Due], runs: list[Run]) -> tuple[dict[int, list[Run]], list[Run]]:
    """Runs by the index of their due time; runs before the first due time."""
    starts = [d.at for d in dues]
    groups: dict[int, list[Run]] = defaultdict(list)
    orphans = []
    for r in sorted(runs, key=lambda r: (r.start, r.jlgid)):
        i = bisect_right(starts, r.start) - 1
        if i < 0:
            orphans.append(r)
        else:
            groups[i].append(r)
    return groups, orphans


def _extra_runs(job: JobModel, group: list[Run]) -> list[Run]:
    """The runs of one due time beyond the first that no retry policy explains."""
    extra = []
    for k in range(1, len(group)):
        retry = k <= job.retries and group[k - 1].status == "f"
        if not retry:
            extra.append(group[k])
    return extra


def check_scheduled(job: JobModel, soak: Soak, runs: list[Run], v: Verdict) -> None:
    lo = soak.start - timedelta(minutes=10)
    hi = max([soak.end, *(r.start for r in runs)]) + timedelta(minutes=1)
    times = due_times(job, [e for e in soak.edits if e.jobid == job.jobid], lo, hi)
    dues = _classify(job, soak, times)
    v.dues += [d.at for d in dues]
    groups, orphans = _group(dues, runs)
    for r in orphans:
        if r.start >= soak.start:
            v.violate("unexpected", job, r.start, jlgid=r.jlgid)
    for i, due in enumerate(dues):
        if not soak.start <= due.at <= soak.end:
            continue
        v.counts["due"] += 1
        group = groups.get(i, [])
        for r in _extra_runs(job, group):
            v.violate("twice", job, due.at, jlgid=r.jlgid, start=r.start.isoformat())
        if not group:
            if _running_at(runs, due.at):
                v.counts["skipped_while_running"] += 1
                continue
            if due.excused:
                v.counts["ambiguous_by_edit"] += 1
                continue
            made_up = i + 1 < len(dues) and dues[i + 1].relaxed
            if due.relaxed and made_up:
                v.counts["missed_in_outage"] += 1
                continue
            v.violate("missed", job, due.at, relaxed=due.relaxed)
            continue
        first = group[0]
        v.counts["ran"] += 1
        v.counts["retries"] += len(group) - 1 - len(_extra_runs(job, group))
        _check_run(job, soak, due, first, v)


def _check_run(job: JobModel, soak: Soak, due: Due, run: Run, v: Verdict) -> None:
    if run.ticked is not None and run.ticked < due.at:
        v.violate("early", job, due.at, ticked=run.ticked.isoformat())
    if job.expect and run.status != job.expect and not _excused(run, soak):
        v.violate("status", job, due.at, status=run.status, expected=job.expect)
    if run.ticked is None or job.overlap != "skip":
        return
    lag = (run.ticked - due.at).total_seconds() * 1000
    settle = timedelta(seconds=SETTLE)
    if due.disturbed or any(
        w.start <= run.ticked and due.at - settle <= w.end for w in soak.windows
    ):
        v.lags["in_fault"].append(lag)
        return
    v.steady.append((due.at, lag))


def _excused(run: Run, soak: Soak) -> bool:
    """A fault touched the run, or it was still running when the soak stopped the agents
    (then it ends 'd')."""
    end = run.end or run.start + timedelta(seconds=LOST_RUN_SPAN)
    if run.end is None and run.status == "d" and end > soak.end:
        return True
    return any(w.start <= end and run.start <= w.end + timedelta(seconds=1) for w in soak.windows)


def check_on_demand(job: JobModel, soak: Soak, runs: list[Run], v: Verdict) -> None:
    """Each run serves the Run now requests made before it that no earlier run served
    (requests made before the job started coalesce into one run, as under pgAgent; one made
    while it ran is served by a run right after it); a run with none is unexpected, a request
    never served is lost."""
    asked = sorted(r.at for r in soak.requests if r.jobid == job.jobid)
    v.counts["run_now"] += len(asked)
    served = 0
    for r in sorted((r for r in runs if r.start >= soak.start), key=lambda r: (r.start, r.jlgid)):
        pending = bisect_right(asked, r.start) - served
        if pending <= 0:
            v.violate("unexpected", job, r.start, jlgid=r.jlgid)
            continue
        if r.ticked is not None:
            v.lags["run_now"].append((r.ticked - asked[served]).total_seconds() * 1000)
        served += pending
    for at in asked[served:]:
        v.violate("run_now_lost", job, at)


def tick_counts(job: JobModel, runs: list[Run], v: Verdict) -> None:
    """Each run's steps tick once (a step that ran twice within one run log, or a tick
    without a run, would show here)."""
    for r in runs:
        if r.ticks > 1:
            v.violate("step_twice", job, r.start, jlgid=r.jlgid, ticks=r.ticks)


def lag_summary(lags: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(lags),
        "p50_ms": percentile(lags, 0.5),
        "p90_ms": percentile(lags, 0.9),
        "p99_ms": percentile(lags, 0.99),
        "max_ms": max(lags) if lags else None,
        "min_ms": min(lags) if lags else None,
    }


def check(soak: Soak) -> Verdict:
    v = Verdict(dues=[r.at for r in soak.requests])
    by_job: dict[int, list[Run]] = defaultdict(list)
    for r in soak.runs:
        by_job[r.jobid].append(r)
    for job in soak.jobs.values():
        runs = by_job.get(job.jobid, [])
        v.counts["runs"] += len([r for r in runs if r.start >= soak.start])
        if job.on_demand:
            check_on_demand(job, soak, runs, v)
        else:
            check_scheduled(job, soak, runs, v)
        tick_counts(job, runs, v)
    _alone_or_together(v)
    return v


def _alone_or_together(v: Verdict) -> None:
    """A run fell due alone when no other job fell due (or was asked to run) in the second
    before its due time: the targets differ for a job due alone and for a herd."""
    dues = sorted(v.dues)
    for at, lag in v.steady:
        near = bisect_right(dues, at + timedelta(seconds=ALONE_AFTER)) - bisect_left(
            dues, at - timedelta(seconds=ALONE_BEFORE)
        )
        v.lags["alone" if near <= 1 else "together"].append(lag)
