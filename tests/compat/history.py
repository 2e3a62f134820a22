"""What a run of the scenario leaves in the pgagent tables, normalised, and how two such
histories are compared (pgAgent's is the reference, notifyagent's the candidate).

Only what must differ between two runs is normalised away: timestamps and durations are not
captured at all (only whether a duration was written), and batch temp paths lose their random
part. Everything else — job and step status, ``jslresult``, ``jsloutput``, the order in which
steps ran, whether the job was released and kept a next run — must be equal, unless a
:class:`KnownDifference` explains it. Known differences are the intentional bug fixes; they are
listed in ``test_differential.py`` with their reasons, and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from tests.pg import Database

#: A batch step's private temp dir: pgAgent 4.2.2 ``pga_<job>_<step>_<6 letters>``, 4.2.3 a
#: UUID-like suffix, notifyagent ``tempfile.mkdtemp``'s suffix; anywhere under $TMPDIR.
TEMP_DIR = re.compile(r"(?:/[^\s/]+)*/pga_(\d+)_(\d+)_[^\s/]+/")


def normalise_output(text: str | None) -> str | None:
    """``jsloutput`` with the random part of batch temp paths replaced."""
    if text is None:
        return None
    return TEMP_DIR.sub(r"$TMPDIR/pga_\1_\2_*/", text)


@dataclass(frozen=True)
class StepRun:
    """One ``pga_jobsteplog`` row."""

    step: str  # jstname
    status: str
    result: int | None
    output: str | None
    has_duration: bool = True

    def brief(self) -> str:
        return f"{self.step}({self.status}, {self.result})"


@dataclass(frozen=True)
class JobRun:
    """One ``pga_joblog`` row with its step log rows in the order they were written."""

    status: str
    has_duration: bool
    steps: tuple[StepRun, ...] = ()

    def brief(self) -> str:
        inner = ", ".join(s.brief() for s in self.steps) or "no steps"
        return f"{self.status} [{inner}]"


@dataclass(frozen=True)
class JobHistory:
    """A job's runs, oldest first, and its ``pga_job`` row afterwards."""

    runs: tuple[JobRun, ...] = ()
    released: bool = True  # jobagentid IS NULL
    has_next_run: bool = False  # jobnextrun IS NOT NULL


History = Mapping[str, JobHistory]  # by job name (names are unique in the scenario)


def capture(db: Database) -> dict[str, JobHistory]:
    """Read every job's history from ``db`` (after the agent stopped or went idle)."""
    jobs = db.rows(
        "SELECT jobid, jobname, jobagentid IS NULL AS released, "
        "jobnextrun IS NOT NULL AS has_next_run FROM pgagent.pga_job ORDER BY jobid"
    )
    runs = db.rows(
        "SELECT jlgid, jlgjobid, jlgstatus, jlgduration IS NOT NULL AS has_duration "
        "FROM pgagent.pga_joblog ORDER BY jlgid"
    )
    steps = db.rows(
        "SELECT sl.jsljlgid, s.jstname, sl.jslstatus, sl.jslresult, sl.jsloutput, "
        "sl.jslduration IS NOT NULL AS has_duration "
        "FROM pgagent.pga_jobsteplog sl JOIN pgagent.pga_jobstep s ON s.jstid = sl.jsljstid "
        "ORDER BY sl.jslid"
    )
    steps_of: dict[int, list[StepRun]] = {}
    for r in steps:
        steps_of.setdefault(r["jsljlgid"], []).append(
            StepRun(
                step=r["jstname"],
                status=r["jslstatus"],
                result=r["jslresult"],
                output=normalise_output(r["jsloutput"]),
                has_duration=r["has_duration"],
            )
        )
    runs_of: dict[int, list[JobRun]] = {}
    for r in runs:
        runs_of.setdefault(r["jlgjobid"], []).append(
            JobRun(
                status=r["jlgstatus"],
                has_duration=r["has_duration"],
                steps=tuple(steps_of.get(r["jlgid"], ())),
            )
        )
    return {
        j["jobname"]: JobHistory(
            runs=tuple(runs_of.get(j["jobid"], ())),
            released=j["released"],
            has_next_run=j["has_next_run"],
        )
        for j in jobs
    }


# -- known differences --------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a known difference may look at besides the two rows it is asked about."""

    reference: History


#: Given (pgAgent's step, notifyagent's step), return the pair with the explained field made
#: equal, or None when the difference does not have this shape.
StepRule = Callable[[StepRun, StepRun, Context], tuple[StepRun, StepRun] | None]
#: Given pgAgent's runs of one job, return them without the rows this difference explains.
RunsRule = Callable[[tuple[JobRun, ...]], tuple[JobRun, ...]]
#: Given (pgAgent's run, notifyagent's run) of one job, return the pair with the explained
#: part made equal, or None.
RunRule = Callable[[JobRun, JobRun, Context], tuple[JobRun, JobRun] | None]


@dataclass(frozen=True)
class KnownDifference:
    """An intentional difference from pgAgent (a bug fix), with the reason."""

    key: str
    reason: str
    step_rule: StepRule | None = None
    run_rule: RunRule | None = None
    runs_rule: RunsRule | None = None
    #: The scenario always shows it (so the entry cannot silently go stale).
    always: bool = False


@dataclass
class Comparison:
    diffs: list[str] = field(default_factory=list)
    #: key of each known difference -> where it was applied
    explained: dict[str, list[str]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not self.diffs

    def report(self) -> str:
        """The readable per-job/step diff used as the assertion message."""
        lines = ["pgAgent (reference) and notifyagent histories differ:", *self.diffs]
        if self.explained:
            lines.append("(known differences applied: " + ", ".join(sorted(self.explained)) + ")")
        return "\n".join(lines)


def _fmt(value: object) -> str:
    return repr(value)


def _field_diffs(ref: StepRun, cand: StepRun) -> list[str]:
    out = []
    for name in ("status", "result", "output", "has_duration"):
        a, b = getattr(ref, name), getattr(cand, name)
        if a != b:
            label = name + ":"
            out.append(f"    {label:<14}pgAgent     {_fmt(a)}")
            out.append(f"    {'':<14}notifyagent {_fmt(b)}")
    return out


def _explain_step(
    ref: StepRun,
    cand: StepRun,
    known: Sequence[KnownDifference],
    ctx: Context,
    where: str,
    result: Comparison,
) -> bool:
    """Apply the step rules one after the other; True when the pair is then equal."""
    applied = []
    for k in known:
        if k.step_rule is None or ref == cand:
            continue
        pair = k.step_rule(ref, cand, ctx)
        if pair is not None and pair != (ref, cand):
            ref, cand = pair
            applied.append(k.key)
    if ref != cand:
        return False
    for key in applied:
        result.explained.setdefault(key, []).append(where)
    return True


def compare(
    reference: History, candidate: History, known: Sequence[KnownDifference] = ()
) -> Comparison:
    """Compare per job, per run, per step; differences that a known difference explains are
    recorded in ``explained``, all others become lines of ``diffs``."""
    result = Comparison()
    ctx = Context(reference)
    for job in sorted(set(reference) | set(candidate)):
        if job not in candidate:
            result.diffs.append(f"job {job!r}: only in pgAgent's history")
            continue
        if job not in reference:
            result.diffs.append(f"job {job!r}: only in notifyagent's history")
            continue
        ref, cand = reference[job], candidate[job]
        ref_runs = ref.runs
        for k in known:
            if k.runs_rule is not None:
                kept = k.runs_rule(ref_runs)
                if kept != ref_runs:
                    result.explained.setdefault(k.key, []).append(f"job {job!r}")
                    ref_runs = kept
        if len(ref_runs) != len(cand.runs):
            result.diffs.append(
                f"job {job!r}: {len(ref_runs)} run(s) under pgAgent, {len(cand.runs)} under "
                "notifyagent\n"
                f"    pgAgent:     {'; '.join(r.brief() for r in ref_runs) or 'never ran'}\n"
                f"    notifyagent: {'; '.join(r.brief() for r in cand.runs) or 'never ran'}"
            )
        for n, (rr, cr) in enumerate(zip(ref_runs, cand.runs, strict=False), start=1):
            where = f"job {job!r} run {n}"
            for k in known:
                if k.run_rule is None or rr == cr:
                    continue
                runs = k.run_rule(rr, cr, ctx)
                if runs is not None and runs != (rr, cr):
                    rr, cr = runs
                    result.explained.setdefault(k.key, []).append(where)
            if (rr.status, rr.has_duration) != (cr.status, cr.has_duration):
                result.diffs.append(
                    f"{where}: job status pgAgent {rr.status!r} (duration "
                    f"{'set' if rr.has_duration else 'NULL'}), notifyagent {cr.status!r} "
                    f"(duration {'set' if cr.has_duration else 'NULL'})"
                )
            if [s.step for s in rr.steps] != [s.step for s in cr.steps]:
                result.diffs.append(
                    f"{where}: steps ran in a different order or set\n"
                    f"    pgAgent:     {', '.join(s.brief() for s in rr.steps) or 'none'}\n"
                    f"    notifyagent: {', '.join(s.brief() for s in cr.steps) or 'none'}"
                )
                continue
            for i, (rs, cs) in enumerate(zip(rr.steps, cr.steps, strict=True), start=1):
                if rs == cs:
                    continue
                step_where = f"{where} step #{i} {rs.step!r}"
                if _explain_step(rs, cs, known, ctx, step_where, result):
                    continue
                result.diffs.append(f"{step_where}:\n" + "\n".join(_field_diffs(rs, cs)))
        for name, label in (("released", "released"), ("has_next_run", "has a next run")):
            a, b = getattr(ref, name), getattr(cand, name)
            if a != b:
                result.diffs.append(f"job {job!r}: {label}: pgAgent {a}, notifyagent {b}")
    return result


def with_reversed_steps(history: History, job: str) -> dict[str, JobHistory]:
    """``history`` with the step log rows of ``job``'s runs in reverse order (what an agent
    that ran the steps backwards would have written)."""
    out = dict(history)
    h = out[job]
    out[job] = replace(h, runs=tuple(replace(r, steps=r.steps[::-1]) for r in h.runs))
    return out
