"""Annotations in pgAdmin's fields: parsing both syntaxes, problems, precedence (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from notifyagent.core.annotations import NONE, Severity, StepSettings, StepText, Texts, parse
from notifyagent.core.effective import Source, effective, parallel_groups, step_timeout
from notifyagent.core.policy import Catchup, Overlap, Policy


def test_notifyagent_syntax_sets_every_policy_key() -> None:
    found = parse(
        Texts(
            "Purge sessions (owner: ops)\n"
            "  @notifyagent job_timeout=5 min step_timeout=1h30m retries=3 retry_delay=30s\n"
            "@notifyagent overlap=queue-one catchup=skip\n"
            "mail @ops if it breaks"
        )
    )
    assert found.problems == ()
    assert found.policy == {
        "job_timeout": timedelta(minutes=5),
        "step_timeout": timedelta(hours=1, minutes=30),
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "overlap": Overlap.QUEUE_ONE,
        "catchup": Catchup.SKIP,
    }


def test_jpgagent_job_annotations() -> None:
    found = parse(
        Texts(
            "@JOB_TIMEOUT=30 s;\n@EMAIL_ON=FAIL;ABORTED;\n@EMAIL_TO=a@x;b@y;\n"
            "@EMAIL_SUBJECT=Job ~job_name~ ~status~\n@EMAIL_BODY=It <b>failed</b>"
        )
    )
    assert found.policy == {"job_timeout": timedelta(seconds=30)}
    assert found.email == {
        "on": "FAIL;ABORTED",
        "to": "a@x;b@y",
        "subject": "Job ~job_name~ ~status~",
        "body": "It <b>failed</b>",
    }
    assert [(p.severity, "alert_email" in p.what) for p in found.problems] == [
        (Severity.NOTE, True)
    ]


def test_jpgagent_step_annotations_and_the_password_warning() -> None:
    desc = (
        "@JOB_STEP_TIMEOUT=500 ms;\n@RUN_IN_PARALLEL=true;\n@DATABASE_HOST=db2;\n"
        "@DATABASE_NAME=sales;\n@DATABASE_LOGIN=etl;\n@DATABASE_PASSWORD=hunter2;"
    )
    found = parse(Texts("", (StepText(7, "load", desc),)))
    assert found.steps == {
        7: StepSettings(
            timedelta(milliseconds=500),
            True,
            (("host", "db2"), ("dbname", "sales"), ("user", "etl"), ("password", "hunter2")),
        )
    }
    (warning,) = found.problems
    assert warning.severity is Severity.WARNING
    assert "readable by every pgAdmin user" in warning.what
    assert ".pgpass" in warning.fix
    assert "hunter2" not in str(warning)


def test_notifyagent_step_syntax() -> None:
    found = parse(Texts("", (StepText(1, "b", "@notifyagent step_timeout=2s parallel=yes"),)))
    assert found.steps == {1: StepSettings(timedelta(seconds=2), True)}


def test_bad_annotations_are_reported_and_the_rest_applies() -> None:
    found = parse(
        Texts(
            "@notifyagent retries=lots overlap=queue-one colour=red\n@JOB_TIMEOUT=soon;\n"
            "@JOB_STEP_TIMEOUT=5 s;\n@WHATEVER=1",
            (StepText(3, "s", "@JOB_TIMEOUT=1s;\n@notifyagent step_timeout=0s"),),
        )
    )
    assert found.policy == {"overlap": Overlap.QUEUE_ONE}
    assert found.steps == {}
    problems = [(p.severity, p.where, p.what.split(":")[0]) for p in found.problems]
    assert problems == [
        (Severity.ERROR, "job comment line 1", "retries"),
        (Severity.ERROR, "job comment line 1", "unknown key 'colour'"),
        (Severity.ERROR, "job comment line 2", "@JOB_TIMEOUT"),
        (Severity.ERROR, "job comment line 3", "@JOB_STEP_TIMEOUT is a step annotation"),
        (Severity.ERROR, "job comment line 4", "unknown annotation @WHATEVER"),
        (Severity.ERROR, "step 's' description line 1", "@JOB_TIMEOUT is a job annotation"),
        (Severity.ERROR, "step 's' description line 2", "step_timeout"),
    ]
    assert found.errors == 7
    assert all(p.fix for p in found.problems), "every error says how to fix it"


def test_the_same_key_twice_warns_and_the_later_line_wins() -> None:
    found = parse(Texts("@JOB_TIMEOUT=30 s;\n@notifyagent job_timeout=1m"))
    assert found.policy == {"job_timeout": timedelta(minutes=1)}
    assert [p.severity for p in found.problems] == [Severity.WARNING]


def test_precedence_row_then_annotation_then_default() -> None:
    found = parse(Texts("@notifyagent retries=3 job_timeout=10m step_timeout=5s"))
    steps = parse(Texts("", (StepText(1, "a", "@JOB_STEP_TIMEOUT=2 s;"),))).steps
    found = type(found)(found.policy, found.email, steps, found.problems)
    row = Policy(retries=1, catchup=Catchup.SKIP)
    plan = effective(row, found)
    assert plan.policy == Policy(
        job_timeout=timedelta(minutes=10),
        step_timeout=timedelta(seconds=5),
        retries=1,
        catchup=Catchup.SKIP,
    )
    assert plan.sources == {
        "job_timeout": Source.ANNOTATION,
        "step_timeout": Source.ANNOTATION,
        "retries": Source.ROW,
        "retry_delay": Source.ROW,  # the row holds the default
        "overlap": Source.ROW,
        "catchup": Source.ROW,
        "every": Source.ROW,
        "max_failures": Source.ROW,
        "alert_to": Source.ROW,
        "alert_on": Source.ROW,
    }
    # a step's own timeout wins over the job's annotation, a row's over both
    assert step_timeout(plan, 1) == (2.0, "step annotation in pgAdmin's fields")
    assert step_timeout(plan, 2) == (5.0, "annotation in pgAdmin's fields")
    ruled = effective(Policy(step_timeout=timedelta(seconds=9)), found)
    assert step_timeout(ruled, 1) == (9.0, "notifyagent.job_policy")
    assert effective(None, NONE).sources["retries"] is Source.DEFAULT


@dataclass
class S:
    id: int


def test_parallel_steps_join_the_step_before() -> None:
    steps = [S(1), S(2), S(3), S(4)]
    on = StepSettings(parallel=True)
    assert parallel_groups(steps, {1: on, 3: on}) == [[S(1)], [S(2), S(3)], [S(4)]]
    assert parallel_groups(steps, {}) == [[s] for s in steps]


def test_every_is_an_annotation_too_within_its_bounds() -> None:
    assert parse(Texts("@notifyagent every=10s")).policy == {"every": timedelta(seconds=10)}
    found = parse(Texts("@notifyagent every=2m retries=1"))
    assert found.policy == {"retries": 1}
    assert [p.severity for p in found.problems] == [Severity.ERROR]
    assert "1 second to under 1 minute" in str(found.problems[0])
