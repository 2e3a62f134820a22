"""Jobs files without a database: parsing, validation messages, the diff, export rendering."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifyagent import jobsfile
from notifyagent.commands.dev import EXAMPLE_JOBS as EXAMPLE
from notifyagent.core.fields import FIELDS, parse_field
from notifyagent.core.policy import DEFAULT, Catchup, Overlap, Policy
from notifyagent.errors import ConfigError
from notifyagent.jobsfile import ExceptionSpec, JobSpec, ScheduleSpec, StepSpec

UTC = dt.UTC
BERLIN = dt.timezone(dt.timedelta(hours=1))

NIGHTLY = """
[[jobs]]
name = "nightly"
description = "cleanup"

[[jobs.steps]]
name = "purge"
kind = "sql"
database = "appdb"
code = "DELETE FROM t"

[[jobs.steps]]
name = "rotate"
kind = "batch"
on_error = "ignore"
code = "#!/bin/sh\\nrm -f /tmp/x"

[[jobs.schedules]]
name = "weekdays"
start = "2026-12-01T08:00:00+01:00"
minutes = "0,30"
hours = "8-17"
weekdays = ["mon-fri"]
exceptions = [{date = "2026-12-25"}, {time = "03:00"}, {date = 2026-12-31, time = 17:55:00}]
"""


def bools(field: str, text: str) -> tuple[bool, ...]:
    return tuple(parse_field(field, text))


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        jobsfile.loads(text, "jobs.toml")
    assert info.value.exit_code == 2
    return str(info.value)


def job_toml(step: str = "", schedule: str | None = None, job: str = "") -> str:
    text = f'[[jobs]]\nname = "nightly"\n{job}\n'
    if step:
        text += f"[[jobs.steps]]\n{step}\n"
    if schedule is not None:
        text += f'[[jobs.schedules]]\nname = "s"\n{schedule}\n'
    return text


SQL_STEP = 'name = "a"\nkind = "sql"\ndatabase = "postgres"\ncode = "SELECT 1"\n'


# ----------------------------------------------------------------------------- parsing


def test_parse_full_job() -> None:
    [job] = jobsfile.loads(NIGHTLY, "jobs.toml")
    assert job.name == "nightly"
    assert job.job_class == "Routine Maintenance"
    assert job.enabled is True
    assert job.host_agent == ""
    assert job.description == "cleanup"
    purge, rotate = job.steps
    assert purge == StepSpec("purge", "sql", "DELETE FROM t", database="appdb")
    assert rotate.kind == "batch"
    assert rotate.on_error == "ignore"
    assert rotate.code == "#!/bin/sh\nrm -f /tmp/x"
    [sched] = job.schedules
    assert sched.start == dt.datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert sched.end is None
    assert sched.minutes == bools("minutes", "0,30")
    assert sched.hours == tuple(8 <= h <= 17 for h in range(24))
    assert sched.weekdays == (False, True, True, True, True, True, False)
    assert sched.monthdays == (False,) * 32
    assert sched.months == (False,) * 12
    assert sched.exceptions == {
        ExceptionSpec(dt.date(2026, 12, 25), None),
        ExceptionSpec(None, dt.time(3, 0)),
        ExceptionSpec(dt.date(2026, 12, 31), dt.time(17, 55)),
    }


@pytest.mark.parametrize(
    ("value", "field", "expected"),
    [
        ('"0,30"', "minutes", "0,30"),
        ("[0, 30]", "minutes", "0,30"),
        ("5", "minutes", "5"),
        ('["0-4", 30]', "minutes", "0-4,30"),
        ('"mon-fri"', "weekdays", "mon-fri"),
        ('["sat", "sun"]', "weekdays", "sun,sat"),
        ('"1,15,last"', "monthdays", "1,15,last"),
        ('"jan-mar"', "months", "1-3"),
        ('""', "hours", ""),
        ("[]", "hours", ""),
    ],
)
def test_schedule_field_syntax(value: str, field: str, expected: str) -> None:
    [job] = jobsfile.loads(job_toml(schedule=f"{field} = {value}"))
    assert job.schedules[0].array(field) == bools(field, expected)


def test_example_file_is_valid_and_covers_the_format() -> None:
    jobs = jobsfile.load(EXAMPLE)
    assert len(jobs) >= 3
    steps = [s for j in jobs for s in j.steps]
    schedules = [s for j in jobs for s in j.schedules]
    assert {s.kind for s in steps} == {"sql", "batch"}
    assert all(s.database == "postgres" for s in steps if s.kind == "sql")
    assert any(s.monthdays[31] for s in schedules)  # "last"
    assert any(s.exceptions for s in schedules)
    assert any(any(s.weekdays) for s in schedules)
    assert any(s.end for s in schedules)
    # the agent's host name is never required
    assert all(j.host_agent == "" for j in jobs)
    assert any(j.policy is not None for j in jobs)
    assert any(j.policy is None for j in jobs)


def test_defaults_and_empty_file() -> None:
    assert jobsfile.loads("") == []
    [job] = jobsfile.loads(job_toml(step=SQL_STEP))
    assert job == JobSpec("nightly", steps=(StepSpec("a", "sql", "SELECT 1", "postgres"),))
    [job] = jobsfile.loads(job_toml(schedule=""))
    assert job.schedules == (ScheduleSpec("s"),)


def test_toml_native_datetimes_and_connstr() -> None:
    [job] = jobsfile.loads(
        job_toml(
            step='name = "a"\nkind = "sql"\nconnstr = "host=db dbname=x"\ncode = ""',
            schedule="start = 2026-01-01T00:00:00Z\nend = 2026-02-01T00:00:00+01:00",
        )
    )
    assert job.steps[0].connstr == "host=db dbname=x"
    assert job.schedules[0].start == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert job.schedules[0].end == dt.datetime(2026, 2, 1, tzinfo=BERLIN)


MINUTE = dt.timedelta(minutes=1)


def test_policy_table() -> None:
    [job] = jobsfile.loads(
        job_toml(
            job="[jobs.policy]\n"
            'job_timeout = "10 min"\nstep_timeout = 90\nretries = 3\nretry_delay = "1h30m"\n'
            'overlap = "queue-one"\ncatchup = "skip"\n'
        )
    )
    assert job.policy == Policy(
        job_timeout=10 * MINUTE,
        step_timeout=dt.timedelta(seconds=90),
        retries=3,
        retry_delay=90 * MINUTE,
        overlap=Overlap.QUEUE_ONE,
        catchup=Catchup.SKIP,
    )
    # no table: no policy row; an empty table: a row with the columns' defaults
    assert jobsfile.loads(job_toml())[0].policy is None
    [job] = jobsfile.loads(job_toml(job="[jobs.policy]"))
    assert job.policy == Policy(None, None, 0, MINUTE, Overlap.SKIP, Catchup.ONCE)
    # the table may follow the steps and schedules too (it belongs to the last [[jobs]])
    [job] = jobsfile.loads(job_toml(step=SQL_STEP, schedule="") + "[jobs.policy]\nretries = 1\n")
    assert job.policy == Policy(retries=1)
    assert len(job.steps) == len(job.schedules) == 1


def test_policy_defaults_are_the_agents_defaults() -> None:
    """No [jobs.policy] and an empty one behave the same: an empty table is the DEFAULT the
    agent uses for a job without a row, and so is the row written for it."""
    [job] = jobsfile.loads(job_toml(job="[jobs.policy]"))
    assert job.policy == DEFAULT
    row: dict[str, object] = {"jobid": 1, "job_timeout": None, "step_timeout": None}
    row |= {"retries": 0, "retry_delay": MINUTE, "overlap": "skip", "catchup": "once"}
    assert Policy.from_row(row) == DEFAULT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90", dt.timedelta(seconds=90)),
        ("0", dt.timedelta(0)),
        ("2.5", dt.timedelta(seconds=2.5)),
        ('"90s"', dt.timedelta(seconds=90)),
        ('"5 min"', 5 * MINUTE),
        ('"1h30m"', 90 * MINUTE),
        ('"1h 30m"', 90 * MINUTE),
        ('"2 hours"', dt.timedelta(hours=2)),
        ('"1.5h"', 90 * MINUTE),
        ('"1 day 2 hours 3 minutes 4 seconds"', dt.timedelta(days=1, seconds=7384)),
        ('"1d2h3m4.25s"', dt.timedelta(days=1, seconds=7384.25)),
        ('" 3 secs "', dt.timedelta(seconds=3)),
        ('"0.0000015s"', dt.timedelta(microseconds=2)),
    ],
)
def test_duration_syntax(value: str, expected: dt.timedelta) -> None:
    [job] = jobsfile.loads(job_toml(job=f"[jobs.policy]\nretry_delay = {value}"))
    assert job.policy is not None
    assert job.policy.retry_delay == expected


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(0), "0s"),
        (dt.timedelta(seconds=90), "1m30s"),
        (MINUTE, "1m"),
        (90 * MINUTE, "1h30m"),
        (dt.timedelta(days=2), "2d"),
        (dt.timedelta(days=1, seconds=1, microseconds=500_000), "1d1.5s"),
        (dt.timedelta(microseconds=1), "0.000001s"),
    ],
)
def test_render_duration(delta: dt.timedelta, text: str) -> None:
    assert jobsfile.render_duration(delta) == text
    assert jobsfile.parse_duration(text) == delta


@given(st.timedeltas(min_value=dt.timedelta(0)))
@settings(max_examples=200, deadline=None)
def test_render_duration_round_trips(delta: dt.timedelta) -> None:
    assert jobsfile.parse_duration(jobsfile.render_duration(delta)) == delta


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            job_toml(step='name = "a"\nkind = "bash"\ncode = "x"'),
            "jobs.toml: job \"nightly\": steps[1].kind: 'bash' is not one of sql, batch",
        ),
        (
            job_toml(step='name = "a"\nkind = "sql"\ncode = "x"'),
            'jobs.toml: job "nightly": steps[1]: an sql step needs database',
        ),
        (
            job_toml(step=SQL_STEP + 'connstr = "host=x"'),
            'jobs.toml: job "nightly": steps[1]: give database or connstr, not both',
        ),
        (
            job_toml(step='name = "a"\nkind = "batch"\ndatabase = "postgres"\ncode = "ls"'),
            'jobs.toml: job "nightly": steps[1].database: a batch step runs a script',
        ),
        (
            job_toml(step=SQL_STEP + 'on_error = "continue"'),
            "steps[1].on_error: 'continue' is not one of fail, success, ignore",
        ),
        (
            job_toml(step='name = "a"\nkind = "sql"\ndatabase = "postgres"'),
            'job "nightly": steps[1].code: missing',
        ),
        (
            job_toml(step=SQL_STEP) + '[[jobs.steps]]\nname = "b"\nkind = 1\n',
            "steps[2].kind: 1 is not a string",
        ),
        (
            job_toml(step=SQL_STEP.replace('"postgres"', '"' + "d" * 64 + '"')),
            "steps[1].database: longer than 63 bytes",
        ),
        (
            job_toml(step=SQL_STEP.replace('database = "postgres"', 'connstr = "host"')),
            "steps[1].connstr: not a valid connection string",
        ),
        (job_toml(schedule="hours = 24"), 'job "nightly": schedules[1].hours: 24 is out of range'),
        (
            job_toml(schedule='weekdays = "fri-mon"'),
            "schedules[1].weekdays: range 'fri-mon' runs backwards",
        ),
        (
            job_toml(schedule='minutes = ["0", true]'),
            "schedules[1].minutes: a list is not a value list",
        ),
        (
            job_toml(schedule='start = "2026-01-01T00:00"'),
            "schedules[1].start: 2026-01-01T00:00:00 has no UTC offset",
        ),
        (job_toml(schedule='start = "tomorrow"'), "schedules[1].start: 'tomorrow' is not an ISO"),
        (job_toml(schedule="start = 2026-01-01"), "schedules[1].start: datetime.date(2026, 1, 1)"),
        (
            job_toml(schedule='start = "2026-02-01T00:00Z"\nend = "2026-01-01T00:00Z"'),
            "schedules[1].end: 2026-01-01T00:00:00+00:00 is before start",
        ),
        (
            job_toml(schedule='exceptions = [{date = "2026-02-30"}]'),
            "schedules[1].exceptions[1].date: '2026-02-30' is not a date",
        ),
        (
            job_toml(schedule='exceptions = [{dates = "2026-02-03"}]'),
            "schedules[1].exceptions[1].dates: unknown key (did you mean 'date'?)",
        ),
        (
            job_toml(schedule='exceptions = [{time = "3am"}]'),
            "schedules[1].exceptions[1].time: '3am' is not a time",
        ),
        (
            job_toml(schedule='exceptions = [{time = "03:00"}, {time = "03:00:00"}]'),
            "schedules[1].exceptions[2]: 03:00 every day is listed twice",
        ),
        (job_toml(schedule='shedule = "x"'), "schedules[1].shedule: unknown key"),
        (job_toml(job='clas = "x"'), 'jobs.toml: job "nightly": clas: unknown key (did you mean'),
        (job_toml(job="enabled = 1"), 'job "nightly": enabled: 1 is not true or false'),
        (
            job_toml(job='steps = "x"'),
            "steps: 'x' is not an array of tables (write [[jobs.steps]])",
        ),
        ("[[jobs]]\ndescription = 'x'\n", "jobs.toml: jobs[1].name: missing"),
        ("[jobs]\nname = 'x'\n", "jobs.toml: jobs: a table is not an array of tables"),
        ("[[job]]\nname = 'x'\n", "jobs.toml: job: unknown key (did you mean 'jobs'?)"),
        ('[[jobs]]\nname = "a\\u0000b"\n', "jobs[1].name: contains a NUL character"),
        ("[[jobs]]\nname = \n", "jobs.toml: not valid TOML: Invalid value (at line 2, column 8)"),
        (
            job_toml(job='policy = "retries 3"'),
            "jobs.toml: job \"nightly\": policy: 'retries 3' is not a table (write [jobs.policy])",
        ),
        (
            job_toml(job="[[jobs.policy]]\nretries = 3"),
            'jobs.toml: job "nightly": policy: a list is not a table',
        ),
        (
            job_toml(job="[jobs.policy]\nretry = 3"),
            "jobs.toml: job \"nightly\": policy.retry: unknown key (did you mean 'retries'?)",
        ),
        (
            job_toml(job="[jobs.policy]\nretries = 101"),
            'jobs.toml: job "nightly": policy.retries: 101 is out of range (0 to 100)',
        ),
        (job_toml(job="[jobs.policy]\nretries = -1"), "policy.retries: -1 is out of range"),
        (
            job_toml(job="[jobs.policy]\nretries = 2.0"),
            "policy.retries: 2.0 is not a whole number (0 to 100)",
        ),
        (job_toml(job="[jobs.policy]\nretries = true"), "policy.retries: true is not a whole"),
        (
            job_toml(job='[jobs.policy]\noverlap = "queue"'),
            "policy.overlap: 'queue' is not one of skip, queue-one",
        ),
        (
            job_toml(job='[jobs.policy]\ncatchup = "all"'),
            "policy.catchup: 'all' is not one of once, skip",
        ),
        (
            job_toml(job="[jobs.policy]\nmax_failures = 0"),
            "policy.max_failures: max_failures must be a whole number from 1 to 1000",
        ),
        (
            job_toml(job='[jobs.policy]\nalert_on = ["failed", "sometimes"]'),
            "policy.alert_on: 'sometimes' is not an event; allowed: all, failed",
        ),
        (
            job_toml(job='[jobs.policy]\nalert_to = "hooks.example.com"'),
            "policy.alert_to: 'hooks.example.com' is not a destination URL",
        ),
        (
            job_toml(job='[jobs.policy]\njob_timeout = "soon"'),
            "jobs.toml: job \"nightly\": policy.job_timeout: 'soon' is not a duration: give a "
            'number of seconds, or a text like "90s", "5 min", "1h30m", "2 hours"',
        ),
        (
            job_toml(job='[jobs.policy]\nstep_timeout = "90"'),
            "policy.step_timeout: '90' has no unit: write 90 (seconds) or \"90s\"",
        ),
        (
            job_toml(job='[jobs.policy]\nretry_delay = "30m 1h"'),
            "policy.retry_delay: '30m 1h': give each unit once, largest first",
        ),
        (job_toml(job='[jobs.policy]\nretry_delay = "1h30"'), "'1h30' is not a duration"),
        (job_toml(job='[jobs.policy]\nretry_delay = "5 M"'), "'5 M' is not a duration"),
        (job_toml(job='[jobs.policy]\nretry_delay = "-5s"'), "'-5s' is not a duration"),
        (job_toml(job='[jobs.policy]\nretry_delay = ""'), "retry_delay: '' is not a duration"),
        (job_toml(job="[jobs.policy]\nretry_delay = -1"), "policy.retry_delay: -1 is negative"),
        (job_toml(job="[jobs.policy]\nretry_delay = nan"), "retry_delay: nan is not a duration"),
        (job_toml(job="[jobs.policy]\nretry_delay = true"), "retry_delay: true is not a duration"),
        (
            job_toml(job="[jobs.policy]\nretry_delay = 1e300"),
            "policy.retry_delay: 1e+300 is too long",
        ),
        (
            job_toml(job="[jobs.policy]\njob_timeout = 0"),
            "policy.job_timeout: must be more than 0 (leave job_timeout out for no timeout)",
        ),
        (job_toml(job='[jobs.policy]\nstep_timeout = "0s"'), "step_timeout: must be more than 0"),
    ],
)
def test_error_messages_name_file_job_and_field(text: str, message: str) -> None:
    assert message in error_of(text)


def test_exception_used_twice_across_schedules_is_refused() -> None:
    exc = 'exceptions = [{date = "2026-12-25", time = "03:00"}]'
    text = job_toml(schedule=exc) + f'[[jobs.schedules]]\nname = "t"\n{exc}\n'
    message = error_of(text)
    assert message.startswith('jobs.toml: job "nightly": schedules[2].exceptions: 2026-12-25 03:00')
    assert 'already an exception of job "nightly" schedule "s"' in message
    # a whole day (time NULL) does not collide in the UNIQUE index: allowed twice
    day = 'exceptions = [{date = "2026-12-25"}]'
    jobsfile.loads(job_toml(schedule=day) + f'[[jobs.schedules]]\nname = "t"\n{day}\n')


def test_load_reports_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        jobsfile.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"bad\.toml: not UTF-8"):
        jobsfile.load(bad)


def test_policies_need_notifyagents_table() -> None:
    jobs = jobsfile.loads(job_toml() + '[[jobs]]\nname = "b"\n[jobs.policy]\nretries = 1\n')
    with pytest.raises(ConfigError) as info:
        jobsfile.check_policy_table(jobs, False, "jobs.toml", "appdb")
    assert str(info.value) == (
        'jobs.toml: job "b": policy: database "appdb" has no table notifyagent.job_policy '
        "(notifyagent's own schema is not installed): run notifyagent install first, or remove "
        "the [jobs.policy] tables"
    )
    jobsfile.check_policy_table(jobs, True, "jobs.toml", "appdb")
    jobsfile.check_policy_table(jobsfile.loads(job_toml()), False, "jobs.toml", "appdb")


def test_unknown_class_lists_known_ones() -> None:
    jobs = jobsfile.loads(job_toml(job='class = "Backups"'))
    with pytest.raises(ConfigError) as info:
        jobsfile.check_classes(jobs, ["Routine Maintenance", "Data Import"], "jobs.toml")
    assert str(info.value) == (
        "jobs.toml: job \"nightly\": class: 'Backups' is not a job class in the database "
        "(known: Routine Maintenance, Data Import)"
    )
    jobsfile.check_classes(jobsfile.loads(job_toml()), ["Routine Maintenance"], "jobs.toml")


# ----------------------------------------------------------------------------- diff


def stored(jobs: list[JobSpec], start: dt.datetime | None = None) -> list[JobSpec]:
    """``jobs`` as the database would hold them: ids, and a start for every schedule."""
    ids = iter(range(1, 10_000))
    out = []
    for j in jobs:
        steps = tuple(replace(s, id=next(ids)) for s in j.steps)
        schedules = tuple(
            replace(
                s,
                id=next(ids),
                start=s.start or start or dt.datetime(2026, 1, 1, tzinfo=UTC),
            )
            for s in j.schedules
        )
        out.append(replace(j, id=next(ids), steps=steps, schedules=schedules))
    return out


def test_diff_of_identical_state_is_empty_and_start_is_kept() -> None:
    wanted = jobsfile.loads(job_toml(step=SQL_STEP, schedule='hours = "3"'))
    assert wanted[0].schedules[0].start is None
    current = stored(wanted)
    plan = jobsfile.diff(current, wanted, prune=False)
    assert not plan.changed
    assert [j.action for j in plan.jobs] == ["same"]
    assert plan.render("jobs.toml") == "jobs.toml: no changes (1 job up to date)\n"
    # the schedule plan carries the stored start (what an update would write)
    assert plan.jobs[0].schedules[0].wanted is not None
    assert plan.jobs[0].schedules[0].wanted.start == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_diff_field_by_field() -> None:
    current = stored(jobsfile.loads(NIGHTLY))
    text = (
        NIGHTLY.replace('description = "cleanup"', 'description = "cleanup"\nenabled = false')
        .replace('on_error = "ignore"', 'on_error = "fail"')
        .replace('"DELETE FROM t"', '"""\nDELETE FROM t\nWHERE old\n"""')
        .replace('hours = "8-17"', 'hours = "9-17"')
        .replace('start = "2026-12-01T08:00:00+01:00"', 'start = "2026-12-01T07:00:00Z"')
        .replace('{time = "03:00"}', '{time = "04:00"}')
    )
    wanted = jobsfile.loads(text)
    plan = jobsfile.diff(current, wanted, prune=False)
    assert plan.count("change") == 1
    [job] = plan.jobs
    assert [(c.field, c.old, c.new) for c in job.changes] == [("enabled", True, False)]
    purge, rotate = job.steps
    assert [c.field for c in purge.changes] == ["code"]
    assert [(c.field, c.old, c.new) for c in rotate.changes] == [("on_error", "ignore", "fail")]
    [sched] = job.schedules
    # the same instant written with another offset is no change
    assert [c.field for c in sched.changes] == ["hours"]
    assert sched.exceptions_added == [ExceptionSpec(None, dt.time(4, 0))]
    assert sched.exceptions_removed == [ExceptionSpec(None, dt.time(3, 0))]
    assert plan.render("jobs.toml") == (
        '~ job "nightly"\n'
        "    enabled: true -> false\n"
        '    ~ step "purge"\n'
        "        code:\n"
        "          @@ -1 +1,2 @@\n"
        "           DELETE FROM t\n"
        "          +WHERE old\n"
        '    ~ step "rotate"\n'
        "        on_error: ignore -> fail\n"
        '    ~ schedule "weekdays"\n'
        "        hours: 8-17 -> 9-17\n"
        "        + exception 04:00 every day\n"
        "        - exception 03:00 every day\n"
        "jobs.toml: 0 jobs added, 1 changed, 0 removed, 0 unchanged\n"
    )


def test_diff_adds_and_removes_steps_and_schedules_by_name() -> None:
    current = stored(jobsfile.loads(NIGHTLY))
    text = NIGHTLY.replace('name = "rotate"', 'name = "rotate logs"').replace(
        'name = "weekdays"', 'name = "workdays"'
    )
    plan = jobsfile.diff(current, jobsfile.loads(text), prune=False)
    [job] = plan.jobs
    assert [(s.action, s.label) for s in job.steps] == [
        ("same", 'step "purge"'),
        ("add", 'step "rotate logs"'),
        ("remove", 'step "rotate"'),
    ]
    assert [(s.action, s.label) for s in job.schedules] == [
        ("add", 'schedule "workdays"'),
        ("remove", 'schedule "weekdays"'),
    ]
    rendered = plan.render("jobs.toml")
    assert '    + step "rotate logs": batch, on error ignore\n' in rendered
    assert '    - step "rotate"\n' in rendered
    assert (
        '    + schedule "workdays": minutes 0,30; hours 8-17; weekdays mon-fri; 3 exceptions\n'
        in rendered
    )


def test_unmanaged_jobs_are_left_alone_unless_prune() -> None:
    pgadmin_job = JobSpec("made in pgAdmin", steps=(StepSpec("x", "batch", "ls"),))
    current = stored([*jobsfile.loads(NIGHTLY), pgadmin_job])
    wanted = jobsfile.loads(NIGHTLY)
    plan = jobsfile.diff(current, wanted, prune=False)
    assert not plan.changed
    assert [j.name for j in plan.unmanaged] == ["made in pgAdmin"]
    assert plan.render("jobs.toml", dry_run=True) == (
        "jobs.toml: no changes (1 job up to date); 1 job not in the file left alone "
        "(--prune deletes them)\n"
        "dry run: nothing was written\n"
    )
    plan = jobsfile.diff(current, wanted, prune=True)
    assert plan.unmanaged == []
    assert [(j.action, j.label) for j in plan.jobs] == [
        ("same", 'job "nightly"'),
        ("remove", 'job "made in pgAdmin"'),
    ]
    assert plan.render("jobs.toml") == (
        '- job "made in pgAdmin" (1 step, 0 schedules): not in the file\n'
        "jobs.toml: 0 jobs added, 0 changed, 1 removed, 1 unchanged\n"
    )


def test_jobs_sharing_a_name_match_in_order() -> None:
    a1 = JobSpec("a", description="first")
    a2 = JobSpec("a", description="second")
    current = stored([a1, a2])
    # the same two: no change
    assert not jobsfile.diff(current, [a1, a2]).changed
    # one of them: the second is removed even without prune (the name is managed)
    plan = jobsfile.diff(current, [a1], prune=False)
    assert [(j.action, j.label) for j in plan.jobs] == [
        ("same", 'job "a"'),
        ("remove", 'job "a" #2'),
    ]
    assert "the file has 1 of that name" in plan.render()
    # three: one added
    plan = jobsfile.diff(current, [a1, a2, JobSpec("a")])
    assert [j.action for j in plan.jobs] == ["same", "same", "add"]
    assert plan.jobs[2].label == 'job "a" #3'


def test_new_job_lists_its_steps_and_schedules() -> None:
    plan = jobsfile.diff([], jobsfile.loads(NIGHTLY, "jobs.toml"))
    assert plan.render("jobs.toml") == (
        '+ job "nightly": class Routine Maintenance\n'
        '    + step "purge": sql on database appdb\n'
        '    + step "rotate": batch, on error ignore\n'
        '    + schedule "weekdays": minutes 0,30; hours 8-17; weekdays mon-fri; 3 exceptions\n'
        "jobs.toml: 1 job added, 0 changed, 0 removed, 0 unchanged\n"
    )


def test_exception_of_a_job_left_alone_is_refused_before_the_database() -> None:
    when = ExceptionSpec(dt.date(2026, 12, 31), dt.time(17, 55))
    other = JobSpec("pgadmin job", schedules=(ScheduleSpec("x", exceptions=frozenset([when])),))
    current = stored([other])
    with pytest.raises(ConfigError) as info:
        jobsfile.diff(current, jobsfile.loads(NIGHTLY), prune=False, source="jobs.toml")
    assert str(info.value).startswith(
        'jobs.toml: job "nightly": schedules[1].exceptions: 2026-12-31 17:55 is already an '
        'exception of job "pgadmin job" schedule "x", a job not in the file'
    )
    # pruned, the other job's exception goes away first: fine
    plan = jobsfile.diff(current, jobsfile.loads(NIGHTLY), prune=True)
    assert [j.action for j in plan.jobs] == ["add", "remove"]


def test_diff_of_policies() -> None:
    base = jobsfile.loads(job_toml(step=SQL_STEP))
    with_policy = jobsfile.loads(
        job_toml(step=SQL_STEP, job='[jobs.policy]\njob_timeout = "10 min"\nretries = 2\n')
    )
    # none -> a table: a row is added, showing the keys that are not the defaults
    plan = jobsfile.diff(stored(base), with_policy)
    [job] = plan.jobs
    assert (job.action, job.policy_action) == ("change", "add")
    assert plan.render("jobs.toml") == (
        '~ job "nightly"\n'
        "    + policy: job_timeout 10m; retries 2\n"
        "jobs.toml: 0 jobs added, 1 changed, 0 removed, 0 unchanged\n"
    )
    # the same: nothing
    plan = jobsfile.diff(stored(with_policy), with_policy)
    assert not plan.changed
    assert plan.jobs[0].policy_action == "same"
    # field by field
    changed = jobsfile.loads(
        job_toml(
            step=SQL_STEP,
            job='[jobs.policy]\nretries = 3\nretry_delay = "90s"\noverlap = "queue-one"\n',
        )
    )
    plan = jobsfile.diff(stored(with_policy), changed)
    assert plan.jobs[0].policy_action == "change"
    assert plan.render("jobs.toml") == (
        '~ job "nightly"\n'
        "    ~ policy: job_timeout: 10m -> none\n"
        "    ~ policy: retries: 2 -> 3\n"
        "    ~ policy: retry_delay: 1m -> 1m30s\n"
        "    ~ policy: overlap: skip -> queue-one\n"
        "jobs.toml: 0 jobs added, 1 changed, 0 removed, 0 unchanged\n"
    )
    # the table dropped from the file: the row goes (back to pgAgent's behaviour)
    plan = jobsfile.diff(stored(with_policy), base)
    assert plan.jobs[0].policy_action == "remove"
    assert plan.render("jobs.toml") == (
        '~ job "nightly"\n'
        "    - policy: none in the file, back to pgAgent's behaviour\n"
        "jobs.toml: 0 jobs added, 1 changed, 0 removed, 0 unchanged\n"
    )
    # an empty table is a row with the defaults, not the same as no table
    empty = jobsfile.loads(job_toml(step=SQL_STEP, job="[jobs.policy]"))
    assert "    + policy: all defaults\n" in jobsfile.diff(stored(base), empty).render()
    assert jobsfile.diff(stored(empty), base).jobs[0].policy_action == "remove"
    # a new job lists its policy; a job left alone keeps its own
    other = replace(JobSpec("made in pgAdmin"), policy=Policy(retries=5))
    plan = jobsfile.diff(stored([other]), with_policy)
    assert plan.render("jobs.toml").startswith(
        '+ job "nightly": class Routine Maintenance\n'
        "    + policy: job_timeout 10m; retries 2\n"
        '    + step "a": sql on database postgres\n'
    )
    assert [j.name for j in plan.unmanaged] == ["made in pgAdmin"]


def test_connstr_changes_are_shown_without_password() -> None:
    step = StepSpec("s", "sql", "SELECT 1", connstr="host=a password=Sekr1t")
    current = stored([JobSpec("j", steps=(step,))])
    wanted = [JobSpec("j", steps=(replace(step, connstr="host=b password=Sekr1t"),))]
    text = jobsfile.diff(current, wanted).render()
    assert "connstr:" in text
    assert "Sekr1t" not in text


# ----------------------------------------------------------------------------- export rendering


@pytest.mark.parametrize(
    ("field", "text", "rendered"),
    [
        ("minutes", "0,30", "0,30"),
        ("minutes", "0-59", "0-59"),
        ("minutes", "1,2", "1,2"),
        ("minutes", "1,2,3,10", "1-3,10"),
        ("hours", "8-17", "8-17"),
        ("weekdays", "mon-fri", "mon-fri"),
        ("weekdays", "sat,sun", "sun,sat"),
        ("monthdays", "1,15,last", "1,15,last"),
        ("monthdays", "29-31,last", "29-31,last"),
        ("months", "1-3,12", "jan-mar,dec"),
        ("months", "", ""),
    ],
)
def test_render_field(field: str, text: str, rendered: str) -> None:
    assert jobsfile.render_field(field, parse_field(field, text)) == rendered


@given(st.sampled_from(list(FIELDS)), st.data())
@settings(max_examples=150, deadline=None)
def test_render_field_round_trips(field: str, data: st.DataObject) -> None:
    values = data.draw(
        st.lists(st.booleans(), min_size=FIELDS[field][0], max_size=FIELDS[field][0])
    )
    assert parse_field(field, jobsfile.render_field(field, values)) == values


@given(st.text(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_toml_string_round_trips(text: str, multiline: bool) -> None:
    rendered = jobsfile.toml_string(text, multiline=multiline)
    assert tomllib.loads(f"x = {rendered}")["x"] == text


def test_code_is_written_as_readable_literal_block() -> None:
    code = "#!/bin/sh\nfind /x -name '*.csv' -exec rm -f {} \\;\n"
    assert jobsfile.toml_string(code, multiline=True) == "'''\n" + code + "'''"
    assert jobsfile.toml_string("a'''b\n", multiline=True).startswith('"')


def test_export_rendering_round_trips_example() -> None:
    jobs = stored(jobsfile.load(EXAMPLE))
    text = jobsfile.render_jobs(jobs, origin='database "postgres"')
    assert text.startswith("# notifyagent jobs file: pgAgent jobs as code, exported from database")
    assert 'hours = "8-17"' in text
    assert 'weekdays = "mon-fri"' in text
    assert 'monthdays = "1,15,last"' in text
    assert '[jobs.policy]\njob_timeout = "10m"\nretries = 2\nretry_delay = "2m"\n' in text
    again = jobsfile.loads(text, "export.toml")
    assert again == jobs
    assert not jobsfile.diff(jobs, again).changed
    # deterministic
    assert jobsfile.render_jobs(jobs, origin='database "postgres"') == text


def test_export_rendering_of_unusual_values() -> None:
    job = JobSpec(
        'odd "name"\twith tab',
        enabled=False,
        job_class="Data Export",
        description="line 1\nline 2 ends with quote'",
        host_agent="host-1",
        steps=(
            StepSpec("s", "sql", "SELECT 1\r\n", connstr="host=x dbname=y", on_error="success"),
            StepSpec("s", "batch", "", enabled=False, description="dup name"),
        ),
        schedules=(
            ScheduleSpec(
                "never",
                enabled=False,
                start=dt.datetime(2026, 1, 1, 10, 30, 15, 123456, tzinfo=BERLIN),
                end=dt.datetime(2027, 1, 1, tzinfo=UTC),
                exceptions=frozenset(
                    [
                        ExceptionSpec(),
                        ExceptionSpec(None, dt.time(3, 0, 30)),
                        ExceptionSpec(dt.date(2026, 5, 1)),
                    ]
                ),
            ),
        ),
    )
    text = jobsfile.render_jobs([job])
    assert jobsfile.loads(text) == [job]
    assert 'exceptions = [\n  {},\n  { time = "03:00:30" },\n  { date = "2026-05-01" },\n]' in text


def test_export_writes_the_policy_keys_that_are_not_defaults() -> None:
    jobs = [
        JobSpec("none"),
        JobSpec("defaults", policy=Policy()),
        JobSpec(
            "all",
            policy=Policy(
                job_timeout=dt.timedelta(days=1, hours=2),
                step_timeout=dt.timedelta(seconds=0.25),
                retries=100,
                retry_delay=dt.timedelta(0),
                overlap=Overlap.QUEUE_ONE,
                catchup=Catchup.SKIP,
            ),
        ),
    ]
    text = jobsfile.render_jobs(jobs)
    assert text.count("\n[jobs.policy]\n") == 2
    assert 'name = "defaults"\nclass = "Routine Maintenance"\n\n[jobs.policy]\n\n[[jobs]]' in text
    assert (
        "[jobs.policy]\n"
        'job_timeout = "1d2h"\n'
        'step_timeout = "0.25s"\n'
        "retries = 100\n"
        'retry_delay = "0s"\n'
        'overlap = "queue-one"\n'
        'catchup = "skip"\n'
    ) in text
    assert jobsfile.loads(text) == jobs


# ----------------------------------------------------------------------------- property: round trip

TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=30)


def arrays(field: str) -> st.SearchStrategy[tuple[bool, ...]]:
    n = FIELDS[field][0]
    return st.lists(st.booleans(), min_size=n, max_size=n).map(tuple)


OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
INSTANTS = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2100, 1, 1)),
    OFFSETS,
)
STEPS = st.one_of(
    st.builds(
        StepSpec,
        name=TEXT,
        kind=st.just("sql"),
        code=TEXT,
        database=st.text("abcxyz_-1", min_size=1, max_size=63),
        on_error=st.sampled_from(list(jobsfile.ON_ERROR)),
        enabled=st.booleans(),
        description=TEXT,
    ),
    st.builds(
        StepSpec,
        name=TEXT,
        kind=st.just("sql"),
        code=TEXT,
        connstr=st.sampled_from(["host=db dbname=x", "postgresql://u@h/d", "dbname='a b'"]),
    ),
    st.builds(StepSpec, name=TEXT, kind=st.just("batch"), code=TEXT),
)
EXCEPTIONS = st.builds(
    ExceptionSpec,
    st.none() | st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1)),
    st.none() | st.times(),
)
SCHEDULES = st.builds(
    ScheduleSpec,
    name=TEXT,
    enabled=st.booleans(),
    start=st.none() | INSTANTS,
    end=st.none(),
    minutes=arrays("minutes"),
    hours=arrays("hours"),
    weekdays=arrays("weekdays"),
    monthdays=arrays("monthdays"),
    months=arrays("months"),
    exceptions=st.frozensets(EXCEPTIONS, max_size=3),
    description=TEXT,
)
POSITIVE = st.timedeltas(min_value=dt.timedelta(microseconds=1))
POLICIES = st.builds(
    Policy,
    job_timeout=st.none() | POSITIVE,
    step_timeout=st.none() | POSITIVE,
    retries=st.integers(0, 100),
    retry_delay=st.timedeltas(min_value=dt.timedelta(0)),
    overlap=st.sampled_from(Overlap),
    catchup=st.sampled_from(Catchup),
)
JOBS = st.builds(
    JobSpec,
    name=TEXT,
    enabled=st.booleans(),
    job_class=st.sampled_from(["Routine Maintenance", "Data Export", "x'''y"]),
    description=TEXT,
    host_agent=TEXT,
    steps=st.lists(STEPS, max_size=3).map(tuple),
    schedules=st.lists(SCHEDULES, max_size=2).map(tuple),
    policy=st.none() | POLICIES,
)


def _unique_exceptions(jobs: list[JobSpec]) -> bool:
    both = [
        e
        for j in jobs
        for s in j.schedules
        for e in s.exceptions
        if e.date is not None and e.time is not None
    ]
    return len(both) == len(set(both))


@given(st.lists(JOBS, max_size=3).filter(_unique_exceptions))
@settings(max_examples=60, deadline=None)
def test_render_then_parse_gives_the_same_jobs(jobs: list[JobSpec]) -> None:
    text = jobsfile.render_jobs(jobs)
    assert jobsfile.loads(text, "export.toml") == jobs
    assert not jobsfile.diff(stored(jobs), jobsfile.loads(text)).changed
