"""Differential test: the same scenario under the real pgAgent 4.2 and under notifyagent.

Each agent gets a fresh database cloned from the same template, the same jobs (so the same
ids) and the same Run nows (tests/compat/scenario.py). The job and step logs they leave must be
equal, except for the intentional differences in KNOWN_DIFFERENCES below — each a bug fix, with
its reason — and nowhere else. The assertion message is a per-job/step diff.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest

from tests.compat import scenario
from tests.compat.history import (
    Comparison,
    Context,
    History,
    JobHistory,
    JobRun,
    KnownDifference,
    StepRun,
    compare,
    with_reversed_steps,
)
from tests.compat.runner import run_under_notifyagent, run_under_pgagent
from tests.pg import Database, Server, new_database

#: pgAgent's whole jsloutput when it cannot connect for a SQL step (job.cpp).
NO_CONNECTION = "Couldn't get a connection to the database!"
#: notifyagent's jsloutput for a SQL step whose code is empty (steps.py).
EMPTY_QUERY = "empty query: the step has no code"

# -- the intentional differences ----------------------------------------------------------


def sql_errors(history: History) -> set[str]:
    """Every server error text a SQL step of ``history`` failed with."""
    return {
        s.output
        for h in history.values()
        for r in h.runs
        for s in r.steps
        if s.result == -1 and s.output and s.output.startswith("ERROR:")
    }


def stale_error(ref: StepRun, cand: StepRun, ctx: Context) -> tuple[StepRun, StepRun] | None:
    if (
        cand.output == ""
        and ref.status == "s"
        and ref.result is not None
        and ref.result >= 0
        and ref.output in sql_errors(ctx.reference)
    ):
        return replace(ref, output=""), cand
    return None


def connect_failure_detail(
    ref: StepRun, cand: StepRun, ctx: Context
) -> tuple[StepRun, StepRun] | None:
    if ref.output == NO_CONNECTION and (cand.output or "").startswith(NO_CONNECTION + "\n"):
        return ref, replace(cand, output=ref.output)
    return None


def connect_failure_result(
    ref: StepRun, cand: StepRun, ctx: Context
) -> tuple[StepRun, StepRun] | None:
    if (
        ref.output == NO_CONNECTION
        and ref.result == 1
        and (cand.output or "").startswith(NO_CONNECTION)
        and cand.result == -1
    ):
        return replace(ref, result=-1), cand
    return None


def empty_query_message(
    ref: StepRun, cand: StepRun, ctx: Context
) -> tuple[StepRun, StepRun] | None:
    if ref.result == -1 and ref.output == "" and cand.result == -1 and cand.output == EMPTY_QUERY:
        return ref, replace(cand, output="")
    return None


#: The severities a SQL step's messages are written with (steps.py Notices), and their
#: DETAIL / HINT lines.
NOTICE_LINE = ("DEBUG", "LOG", "INFO", "NOTICE", "WARNING", "DETAIL", "HINT")


def notice_output(ref: StepRun, cand: StepRun, ctx: Context) -> tuple[StepRun, StepRun] | None:
    """A SQL step whose notifyagent output is only its NOTICE/WARNING messages, where pgAgent
    (which drops them) wrote '' (or, on a pooled connection that once failed, its stale
    error: see stale_error)."""
    lines = (cand.output or "").splitlines()
    if not lines or not all(_is_notice(x) for x in lines):
        return None
    plain = replace(cand, output="")
    return (ref, plain) if ref.output == "" else stale_error(ref, plain, ctx)


def _is_notice(line: str) -> bool:
    severity, sep, _ = line.partition(":  ")
    return bool(sep) and severity in NOTICE_LINE


def unstorable_output(ref: JobRun, cand: JobRun, ctx: Context) -> tuple[JobRun, JobRun] | None:
    """pgAgent's run stuck at the step whose output it could not store, completed with what
    the scenario says a log that can store it holds (scenario.NOT_UTF8_OUTPUTS): that step and
    the later ones succeed with exactly those outputs. notifyagent's run is then compared
    with that, field by field; the candidate is not consulted."""
    if ref.status != "f" or not ref.steps:
        return None
    i = len(ref.steps) - 1
    last = ref.steps[i]
    if (last.status, last.result, last.output, last.has_duration) != ("r", None, None, False):
        return None
    names = list(scenario.NOT_UTF8_OUTPUTS)
    if last.step not in names:
        return None
    stored = tuple(
        StepRun(name, "s", 0, scenario.NOT_UTF8_OUTPUTS[name])
        for name in names[names.index(last.step) :]
    )
    return replace(ref, status="s", steps=ref.steps[:i] + stored), cand


def without_claim_race_rows(runs: tuple[JobRun, ...]) -> tuple[JobRun, ...]:
    real = tuple(r for r in runs if r.status != "i" or r.has_duration or r.steps)
    return real if real else runs


KNOWN_DIFFERENCES: list[KnownDifference] = [
    KnownDifference(
        "stale-error-text",
        "pgAgent 4.2.2 never clears the last error of a pooled connection (m_lastError.empty() "
        "instead of .clear(), fixed in 4.2.3 by commit 20e5de2), so a SQL step that succeeds on "
        "a connection that once failed gets that old error as its jsloutput. notifyagent writes "
        "'' for every successful SQL step.",
        step_rule=stale_error,
    ),
    KnownDifference(
        "connect-failure-detail",
        "After pgAgent's fixed text \"Couldn't get a connection to the database!\" notifyagent "
        "adds a line with the target (password removed) and libpq's reason, which pgAgent only "
        "writes to its own log: users see in pgAdmin why the step failed (pgadmin4 #7117, "
        "pgagent #38/#42 connection-string problems).",
        step_rule=connect_failure_detail,
        always=True,
    ),
    KnownDifference(
        "connect-failure-result",
        "When it cannot connect for a SQL step pgAgent writes jslresult = 1: job.cpp leaves rc "
        "at the row count of the step-log INSERT because DBconn::Get() failed before the step "
        "ran. notifyagent writes -1, like for every other failed SQL step (§0.6), instead of a "
        "value that reads as '1 row'.",
        step_rule=connect_failure_result,
        always=True,
    ),
    KnownDifference(
        "empty-query-message",
        "A SQL step with empty code gets PGRES_EMPTY_QUERY, which both count as a failure (same "
        "status, result -1); pgAgent's jsloutput is then '' (libpq has no error text), "
        "notifyagent says 'empty query: the step has no code'.",
        step_rule=empty_query_message,
        always=True,
    ),
    KnownDifference(
        "unstorable-output",
        "pgAgent splices a step's output into its log UPDATE as a string literal: batch output "
        "that is not valid UTF-8 makes that UPDATE fail, so the step log row stays 'r' forever "
        "(no result, no output, no duration), the job ends 'f' and its later steps do not run. "
        "notifyagent stores the output with each invalid byte replaced by U+FFFD and goes on; "
        "its run is compared with the exact outputs the scenario expects.",
        run_rule=unstorable_output,
        always=True,
    ),
    KnownDifference(
        "notice-output",
        "pgAgent drops the NOTICE / WARNING / INFO messages of SQL steps; notifyagent writes "
        "them into the step's output, in order, as psql shows them ('NOTICE:  text'), before "
        "any error and within --max-output. Only outputs made of such lines where pgAgent "
        "wrote '' are accepted.",
        step_rule=notice_output,
        always=True,
    ),
    KnownDifference(
        "claim-race-rows",
        "pgAgent's claim does not lock: a claim slower than the poll interval spawns another "
        "thread, whose lost claim inserts an extra joblog row 'i' without duration or steps "
        "(pgagent #25, behaviour §0.7). notifyagent claims with FOR UPDATE SKIP LOCKED and "
        "writes no such rows. Only pgAgent's rows of that exact shape are dropped.",
        runs_rule=without_claim_race_rows,
    ),
]


def check_expectations(
    history: History, jobs: Sequence[scenario.ScenarioJob], *, pgagent: bool = False
) -> list[str]:
    """What the scenario says each job must do (docs/compatibility.md §0, §3.5, §3.6)."""
    problems = []
    for j in jobs:
        if pgagent and j.pgagent_expect is not None:
            j = replace(j, expect=j.pgagent_expect[0], expect_steps=j.pgagent_expect[1])
        runs = without_claim_race_rows(history[j.name].runs)
        if j.expect is None:
            if runs:
                problems.append(f"job {j.name!r} must not run, ran: {runs}")
            continue
        if len(runs) != 1 or runs[0].status != j.expect:
            problems.append(f"job {j.name!r}: expected one run {j.expect!r}, got {runs}")
            continue
        statuses = [s.status for s in runs[0].steps]
        if j.expect_steps is not None and statuses != list(j.expect_steps):
            problems.append(f"job {j.name!r}: step statuses {statuses} != {j.expect_steps}")
        outputs = [s.output for s in runs[0].steps]
        if j.expect_outputs is not None and not pgagent and outputs != list(j.expect_outputs):
            problems.append(f"job {j.name!r}: step outputs {outputs} != {j.expect_outputs}")
    return problems


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def other_db(pg_server: Server) -> Iterator[Database]:
    """The database that the 'other database' and 'own connstr' steps of both runs read."""
    for d in new_database(pg_server, prefix="compat_other"):
        scenario.prepare_other(d)
        yield d


@pytest.fixture
def reference_db(pg_server: Server) -> Iterator[Database]:
    yield from new_database(pg_server, prefix="compat_pgagent")


@pytest.fixture
def candidate_db(pg_server: Server) -> Iterator[Database]:
    yield from new_database(pg_server, prefix="compat_notifyagent")


# -- the differential test ----------------------------------------------------------------


@pytest.mark.slow
def test_same_history_as_pgagent(
    reference_db: Database, candidate_db: Database, other_db: Database
) -> None:
    jobs = scenario.jobs(reference_db, other_db)
    assert len([j for j in jobs if j.expect is not None]) >= 15

    started = time.monotonic()
    reference = run_under_pgagent(reference_db, jobs)
    middle = time.monotonic()
    candidate = run_under_notifyagent(candidate_db, scenario.jobs(candidate_db, other_db))
    print(f"pgagent run {middle - started:.1f}s, notifyagent run {time.monotonic() - middle:.1f}s")

    # the reference itself behaves as documented, or the comparison proves nothing
    problems = check_expectations(reference, jobs, pgagent=True)
    assert not problems, problems

    result = compare(reference, candidate, KNOWN_DIFFERENCES)
    if not result.equal:
        pytest.fail(result.report(), pytrace=False)
    for key, where in sorted(result.explained.items()):
        print(f"known difference {key}: {', '.join(where)}")
    unseen = [k.key for k in KNOWN_DIFFERENCES if k.always and k.key not in result.explained]
    assert not unseen, (
        f"known difference(s) {unseen} no longer show up: remove them from KNOWN_DIFFERENCES "
        "or restore the scenario jobs that show them"
    )
    problems = check_expectations(candidate, jobs)
    assert not problems, problems
    # SIGTERM: pgAgent dies and leaves its agent row; notifyagent removes its own (§0.9)
    assert reference_db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1
    assert candidate_db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 0

    # the comparison would have caught an agent that ran the steps backwards
    backwards = with_reversed_steps(candidate, "multi_sql_ordered_by_name")
    regression = compare(reference, backwards, KNOWN_DIFFERENCES)
    assert not regression.equal
    assert "multi_sql_ordered_by_name" in regression.report()


# -- the comparison itself (no database) --------------------------------------------------


def _history() -> dict[str, JobHistory]:
    ok = JobRun(
        "s",
        True,
        (
            StepRun("a_first", "s", 1, ""),
            StepRun("b_second", "i", -1, "ERROR:  division by zero"),
            StepRun("c_third", "s", 7, ""),
        ),
    )
    return {
        "ordered": JobHistory(runs=(ok,)),
        "never": JobHistory(runs=(), has_next_run=True),
    }


def test_identical_histories_compare_equal() -> None:
    result = compare(_history(), _history(), KNOWN_DIFFERENCES)
    assert result.equal, result.report()
    assert not result.explained


def test_reversed_step_order_gives_a_readable_diff() -> None:
    result = compare(_history(), with_reversed_steps(_history(), "ordered"), KNOWN_DIFFERENCES)
    assert not result.equal
    report = result.report()
    assert report.splitlines() == [
        "pgAgent (reference) and notifyagent histories differ:",
        "job 'ordered' run 1: steps ran in a different order or set",
        "    pgAgent:     a_first(s, 1), b_second(i, -1), c_third(s, 7)",
        "    notifyagent: c_third(s, 7), b_second(i, -1), a_first(s, 1)",
    ]


def test_field_differences_are_listed_per_step() -> None:
    changed = _history()
    run = changed["ordered"].runs[0]
    steps = (run.steps[0], replace(run.steps[1], result=0, output="x"), run.steps[2])
    changed["ordered"] = JobHistory(runs=(replace(run, status="f", steps=steps),))
    changed["never"] = replace(changed["never"], has_next_run=False)
    report = compare(_history(), changed, KNOWN_DIFFERENCES).report()
    assert "job 'ordered' run 1: job status pgAgent 's' (duration set), notifyagent 'f'" in report
    assert "job 'ordered' run 1 step #2 'b_second':" in report
    assert "    result:       pgAgent     -1\n                  notifyagent 0\n" in report
    assert "    output:       pgAgent     'ERROR:  division by zero'\n" in report
    assert "                  notifyagent 'x'" in report
    assert "job 'never': has a next run: pgAgent True, notifyagent False" in report


def test_missing_and_extra_runs_are_reported() -> None:
    ran = _history()
    ran["never"] = JobHistory(runs=(JobRun("s", True),))
    report = compare(_history(), ran, KNOWN_DIFFERENCES).report()
    assert "job 'never': 0 run(s) under pgAgent, 1 under notifyagent" in report
    assert "pgAgent:     never ran" in report


def test_known_differences_stay_narrow() -> None:
    """Each rule explains its own shape only; anything else still shows as a difference."""
    ref = _history()
    ctx = Context(ref)
    stale = StepRun("c_third", "s", 7, "ERROR:  division by zero")
    clean = replace(stale, output="")
    assert stale_error(stale, clean, ctx) == (clean, clean)
    assert stale_error(stale, replace(clean, output="other"), ctx) is None
    # only an error that some SQL step of the reference really failed with
    assert stale_error(replace(stale, output="ERROR:  never seen"), clean, ctx) is None
    # the rule fixes the output only: a result difference is still reported
    with_stale = {**ref, "j": JobHistory(runs=(JobRun("s", True, (stale,)),))}
    assert compare(
        with_stale, {**ref, "j": JobHistory(runs=(JobRun("s", True, (clean,)),))}, KNOWN_DIFFERENCES
    ).equal
    assert not compare(
        with_stale,
        {**ref, "j": JobHistory(runs=(JobRun("s", True, (replace(clean, result=6),)),))},
        KNOWN_DIFFERENCES,
    ).equal

    pg = StepRun("a", "i", 1, NO_CONNECTION)
    na = StepRun("a", "i", -1, NO_CONNECTION + "\ncannot connect to dbname=x: no such database")
    assert connect_failure_detail(pg, na, ctx) == (pg, replace(na, output=NO_CONNECTION))
    assert connect_failure_result(pg, na, ctx) == (replace(pg, result=-1), na)
    assert connect_failure_detail(pg, replace(na, output="something else"), ctx) is None
    assert connect_failure_result(replace(pg, output="ERROR:  x"), na, ctx) is None

    # applied together they explain the pair; a status difference still shows
    def history_with(step: StepRun) -> dict[str, JobHistory]:
        return {"j": JobHistory(runs=(JobRun("s", True, (step,)),))}

    assert compare(history_with(pg), history_with(na), KNOWN_DIFFERENCES).equal
    assert not compare(
        history_with(pg), history_with(replace(na, status="f")), KNOWN_DIFFERENCES
    ).equal

    # pgAgent could not store a step's output: its run is completed with the scenario's exact
    # outputs, and notifyagent's run must equal that
    stuck = StepRun("a_bad_bytes", "r", None, None, has_duration=False)
    stored = StepRun("a_bad_bytes", "s", 0, "ok \ufffd\ufffd end\n")
    after = StepRun("b_after", "s", 0, "after\n")
    pg_run, na_run = JobRun("f", True, (stuck,)), JobRun("s", True, (stored, after))
    assert unstorable_output(pg_run, na_run, ctx) == (na_run, na_run)

    def pair(pg: JobRun, na: JobRun) -> Comparison:
        return compare(
            {"j": JobHistory(runs=(pg,))}, {"j": JobHistory(runs=(na,))}, KNOWN_DIFFERENCES
        )

    assert pair(pg_run, na_run).equal
    for wrong in (
        (replace(stored, output="ok \ufffd end\n"), after),  # not the exact text
        (replace(stored, result=1), after),
        (stored, replace(after, output="")),  # the next step's output
        (stored,),  # the next step did not run
    ):
        assert not pair(pg_run, replace(na_run, steps=wrong)).equal, wrong
    assert not pair(pg_run, replace(na_run, status="f")).equal
    # only pgAgent's stuck row of a step of that job
    assert unstorable_output(JobRun("f", True, (replace(stuck, step="x"),)), na_run, ctx) is None
    assert unstorable_output(JobRun("f", True, (replace(stuck, status="f"),)), na_run, ctx) is None

    phantom = JobRun("i", False)
    real = JobRun("s", True)
    assert without_claim_race_rows((real, phantom)) == (real,)
    assert without_claim_race_rows((phantom,)) == (phantom,)
    assert without_claim_race_rows((JobRun("i", True),)) == (JobRun("i", True),)
