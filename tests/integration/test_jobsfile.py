"""Jobs files against a real database: apply (idempotent, dry run, prune), export round trip,
per-job policies (notifyagent.job_policy, present only once notifyagent is installed)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifyagent import jobsfile
from notifyagent.commands.dev import EXAMPLE_JOBS as EXAMPLE
from notifyagent.db import connect, schema
from notifyagent.errors import ConfigError
from tests.cli import run_cli
from tests.pg import Database, Server, new_database

#: What pgAdmin 4 sends for "Create job" (tests/compat/pgadmin-sql/02_create_job.sql), plus a
#: second job made by hand: connection-string step, two steps of the same name, a disabled
#: schedule with an end, one from -infinity to infinity, exceptions of every shape, another
#: class, a host agent.
PGADMIN_JOBS = r"""
DO $$
DECLARE
    jid integer;
    scid integer;
BEGIN
INSERT INTO pgagent.pga_job(jobjclid, jobname, jobdesc, jobhostagent, jobenabled)
VALUES (1::integer, 'nightly_cleanup'::text,
        'Purge expired sessions in appdb and delete old CSV exports'::text, ''::text, true)
RETURNING jobid INTO jid;
INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstenabled, jstkind, jstconnstr, jstdbname,
                                 jstonerror, jstcode, jstdesc)
VALUES (jid, '01_purge_sessions'::text, true, 's'::character(1), ''::text, 'appdb'::name,
        'f'::character(1), 'DELETE FROM public.user_sessions
WHERE last_seen < now() - interval ''30 days'';'::text,
        'Delete sessions idle for more than 30 days'::text);
INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstenabled, jstkind, jstconnstr, jstdbname,
                                 jstonerror, jstcode, jstdesc)
VALUES (jid, '02_rotate_exports'::text, true, 'b'::character(1), ''::text, ''::name,
        'i'::character(1), E'#!/bin/sh
find /var/lib/appdb/exports -name ''*.csv'' -mtime +7 -exec rm -f {} \\;'::text,
        'Remove CSV exports older than 7 days'::text);
INSERT INTO pgagent.pga_schedule(jscjobid, jscname, jscdesc, jscenabled, jscstart, jscminutes,
                                 jschours, jscweekdays, jscmonthdays, jscmonths)
VALUES (jid, 'weekday_business_hours'::text, 'Every 5 minutes, Mon-Fri, 08:00-17:55'::text, true,
    '2026-12-01 08:00:00 +01:00'::timestamp with time zone,
    '{t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f,t,f,f,f,f}'::bool[]::boolean[],
    '{f,f,f,f,f,f,f,f,t,t,t,t,t,t,t,t,t,t,f,f,f,f,f,f}'::bool[]::boolean[],
    '{f,t,t,t,t,t,f}'::bool[]::boolean[],
    '{f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f,f}'::bool[]::boolean[],
    '{f,f,f,f,f,f,f,f,f,f,f,f}'::bool[]::boolean[]
) RETURNING jscid INTO scid;
INSERT INTO pgagent.pga_exception (jexscid, jexdate, jextime)
VALUES (scid, to_date('2026-12-25', 'YYYY-MM-DD')::date, NULL::time without time zone);

INSERT INTO pgagent.pga_job (jobjclid, jobname, jobdesc, jobhostagent, jobenabled)
VALUES (5, 'hand made', E'two lines\nof description', 'station-7', false)
RETURNING jobid INTO jid;
INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstconnstr, jstonerror)
VALUES (jid, 'same name', 's', 'SELECT 1', 'host=localhost dbname=postgres', 's'),
       (jid, 'same name', 'b', '', '', 'f');
INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscenabled, jscend, jscminutes,
                                  jscmonthdays, jscmonths)
VALUES (jid, 'quarter end', false, '2030-01-01 00:00+00',
        (SELECT array_agg(g IN (0, 30) ORDER BY g) FROM generate_series(0, 59) g),
        (SELECT array_agg(g = 32 ORDER BY g) FROM generate_series(1, 32) g),
        '{f,f,t,f,f,t,f,f,t,f,f,t}')
RETURNING jscid INTO scid;
INSERT INTO pgagent.pga_exception (jexscid, jexdate, jextime)
VALUES (scid, '2026-03-31', '23:30'), (scid, NULL, '00:30:15'), (scid, '2026-06-30', NULL);
INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscend, jschours)
VALUES (jid, 'forever', '-infinity', 'infinity',
        (SELECT array_agg(g = 4 ORDER BY g) FROM generate_series(0, 23) g));
END
$$;
"""

#: Every row a jobs file describes, with its xmin: equal before and after = nothing written.
ROWS = """
SELECT 'job ' || jobid || ' ' || xmin FROM pgagent.pga_job
UNION ALL SELECT 'step ' || jstid || ' ' || xmin FROM pgagent.pga_jobstep
UNION ALL SELECT 'schedule ' || jscid || ' ' || xmin FROM pgagent.pga_schedule
UNION ALL SELECT 'exception ' || jexid || ' ' || xmin FROM pgagent.pga_exception
"""
POLICY_ROWS = "SELECT 'policy ' || jobid || ' ' || xmin FROM notifyagent.job_policy"
HAS_POLICY_TABLE = "SELECT to_regclass('notifyagent.job_policy') IS NOT NULL"


def rows(db: Database) -> set[str]:
    found = {next(iter(r.values())) for r in db.rows(ROWS)}
    if db.value(HAS_POLICY_TABLE):
        found |= {next(iter(r.values())) for r in db.rows(POLICY_ROWS)}
    return found


def policies(db: Database) -> list[dict[str, object]]:
    return db.rows(
        "SELECT j.jobname, p.job_timeout::text, p.step_timeout::text, p.retries, "
        "p.retry_delay::text, p.overlap, p.catchup "
        "FROM notifyagent.job_policy p JOIN pgagent.pga_job j USING (jobid) ORDER BY j.jobname"
    )


def install(db: Database) -> None:
    async def run() -> None:
        conn = await connect(db.dsn)
        async with conn:
            await schema.install(conn)

    asyncio.run(run())
    assert db.value(HAS_POLICY_TABLE)


@pytest.fixture
def notifyagent_schema(db: Database) -> None:
    """notifyagent's own objects in ``db`` (the example's [jobs.policy] needs job_policy)."""
    install(db)


def apply(db: Database, path: Path, *, prune: bool = False, dry_run: bool = False) -> str:
    return asyncio.run(jobsfile.apply_file(db.dsn, path, prune=prune, dry_run=dry_run))


def export(db: Database) -> str:
    return asyncio.run(jobsfile.export_jobs(db.dsn))


def write(tmp_path: Path, text: str, name: str = "jobs.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.usefixtures("notifyagent_schema")
def test_example_applies_cleanly_and_twice_is_a_no_op(db: Database) -> None:
    out = apply(db, EXAMPLE)
    assert out.endswith(f"{EXAMPLE}: 4 jobs added, 0 changed, 0 removed, 0 unchanged\n")
    assert (
        '+ job "purge heartbeats": class Routine Maintenance\n'
        "    + policy: job_timeout 10m; retries 2; retry_delay 2m\n"
    ) in out
    assert policies(db) == [
        {
            "jobname": "purge heartbeats",
            "job_timeout": "00:10:00",
            "step_timeout": None,
            "retries": 2,
            "retry_delay": "00:02:00",
            "overlap": "skip",
            "catchup": "once",
        }
    ]
    jobs = db.rows(
        "SELECT j.jobname, c.jclname, j.jobenabled, j.jobnextrun IS NOT NULL AS scheduled "
        "FROM pgagent.pga_job j JOIN pgagent.pga_jobclass c ON c.jclid = j.jobjclid "
        "ORDER BY j.jobname"
    )
    assert [(j["jobname"], j["jclname"], j["scheduled"]) for j in jobs] == [
        ("disk report", "Miscellaneous", True),
        ("heartbeat", "Miscellaneous", True),
        ("month-end summary", "Data Summarisation", True),
        ("purge heartbeats", "Routine Maintenance", True),
    ]
    step = db.rows(
        "SELECT jstkind, jstdbname, jstconnstr, jstonerror, jstdesc FROM pgagent.pga_jobstep "
        "WHERE jstname = '2 vacuum'"
    )
    assert step == [
        {
            "jstkind": "s",
            "jstdbname": "postgres",
            "jstconnstr": "",
            "jstonerror": "i",
            "jstdesc": "VACUUM may be refused while another one runs: not a reason to fail the job",
        }
    ]
    assert db.value("SELECT jstkind FROM pgagent.pga_jobstep WHERE jstname = 'df'") == "b"
    office = db.rows(
        "SELECT jscminutes, jschours, jscweekdays, jscmonthdays, jscmonths, "
        "date_trunc('minute', now()) = jscstart AS starts_now, jscend "
        "FROM pgagent.pga_schedule WHERE jscname = 'office hours'"
    )[0]
    assert office["jscminutes"] == [m in (0, 30) for m in range(60)]
    assert office["jschours"] == [8 <= h <= 17 for h in range(24)]
    assert office["jscweekdays"] == [False, True, True, True, True, True, False]
    assert office["jscmonthdays"] == [False] * 32
    assert office["jscmonths"] == [False] * 12
    assert office["jscend"] is None
    last = db.value("SELECT jscmonthdays FROM pgagent.pga_schedule WHERE jscname LIKE '1st%'")
    assert [d + 1 for d, v in enumerate(last) if v] == [1, 15, 32]
    assert db.rows(
        "SELECT jexdate::text, jextime::text FROM pgagent.pga_exception ORDER BY jexdate"
    ) == [
        {"jexdate": "2026-12-25", "jextime": None},
        {"jexdate": "2026-12-31", "jextime": "17:30:00"},
    ]

    before = rows(db)
    again = apply(db, EXAMPLE)
    assert again == f"{EXAMPLE}: no changes (4 jobs up to date)\n"
    assert rows(db) == before


@pytest.mark.usefixtures("notifyagent_schema")
def test_dry_run_writes_nothing_and_prints_the_same_diff(db: Database, tmp_path: Path) -> None:
    dry = apply(db, EXAMPLE, dry_run=True)
    assert db.value("SELECT count(*) FROM pgagent.pga_job") == 0
    assert db.value("SELECT count(*) FROM notifyagent.job_policy") == 0
    real = apply(db, EXAMPLE)
    assert dry == real + "dry run: nothing was written\n"

    before = rows(db)
    changed = EXAMPLE.read_text().replace('hours = "8-17"', 'hours = "9-17"')
    out = apply(db, write(tmp_path, changed), dry_run=True)
    assert '~ schedule "office hours"\n        hours: 8-17 -> 9-17\n' in out
    assert out.endswith("1 changed, 0 removed, 3 unchanged\ndry run: nothing was written\n")
    assert rows(db) == before
    out = apply(db, write(tmp_path, changed), prune=True, dry_run=True)
    assert rows(db) == before


@pytest.mark.usefixtures("notifyagent_schema")
def test_pgadmin_jobs_are_left_alone_unless_prune(db: Database) -> None:
    db.execute(PGADMIN_JOBS)
    out = apply(db, EXAMPLE)
    assert "4 jobs added" in out
    assert out.endswith("; 2 jobs not in the file left alone (--prune deletes them)\n")
    assert db.value("SELECT count(*) FROM pgagent.pga_job") == 6

    out = apply(db, EXAMPLE, dry_run=True, prune=True)
    assert '- job "nightly_cleanup" (2 steps, 1 schedule): not in the file\n' in out
    assert db.value("SELECT count(*) FROM pgagent.pga_job") == 6

    out = apply(db, EXAMPLE, prune=True)
    assert '- job "hand made" (2 steps, 2 schedules): not in the file\n' in out
    assert out.endswith("0 jobs added, 0 changed, 2 removed, 4 unchanged\n")
    names = db.rows("SELECT jobname FROM pgagent.pga_job ORDER BY jobname")
    assert [r["jobname"] for r in names] == [
        "disk report",
        "heartbeat",
        "month-end summary",
        "purge heartbeats",
    ]
    assert db.value("SELECT count(*) FROM pgagent.pga_exception") == 2


@pytest.fixture
def other_db(pg_server: Server) -> Iterator[Database]:
    yield from new_database(pg_server, prefix="other")


def test_export_then_apply_is_a_no_op(db: Database, other_db: Database, tmp_path: Path) -> None:
    db.execute(PGADMIN_JOBS)
    text = export(db)
    assert text.startswith(
        f'# notifyagent jobs file: pgAgent jobs as code, exported from database "{db.name}".'
    )
    assert 'hours = "8-17"' in text
    assert 'weekdays = "mon-fri"' in text
    assert 'monthdays = "last"' in text
    assert 'months = "mar,jun,sep,dec"' in text
    assert 'start = "2026-12-01T07:00:00+00:00"' in text
    assert 'start = "0001-01-01T00:00:00+00:00"\nend = "9999-12-31T23:59:59.999999+00:00"' in text
    assert "find /var/lib/appdb/exports -name '*.csv' -mtime +7 -exec rm -f {} \\;'''" in text
    path = write(tmp_path, text)

    before = rows(db)
    assert apply(db, path) == f"{path}: no changes (2 jobs up to date)\n"
    assert apply(db, path, prune=True) == f"{path}: no changes (2 jobs up to date)\n"
    assert rows(db) == before
    assert export(db) == text

    # the export is a faithful copy: applied elsewhere, it exports the same again
    out = apply(other_db, path)
    assert "2 jobs added" in out
    assert export(other_db).replace(other_db.name, db.name) == text


@pytest.mark.usefixtures("notifyagent_schema")
def test_changes_update_rows_in_place(db: Database, tmp_path: Path) -> None:
    apply(db, EXAMPLE)
    ids = {
        r["jstname"]: r["jstid"] for r in db.rows("SELECT jstname, jstid FROM pgagent.pga_jobstep")
    }
    text = (
        EXAMPLE.read_text()
        .replace('description = "Two SQL steps', 'enabled = false\ndescription = "2 SQL steps')
        .replace('on_error = "ignore"\n', "")
        .replace('name = "df"', 'name = "df -h"')
        .replace("minutes = [0, 15, 30, 45]", 'minutes = "0-59"')
        .replace('{ date = "2026-12-25" }, ', "")
        .replace('class = "Data Summarisation"', 'class = "Data Export"')
    )
    path = write(tmp_path, text)
    assert apply(db, path) == (
        '~ job "purge heartbeats"\n'
        "    enabled: true -> false\n"
        '    description: "Two SQL steps, every half hour during office hours on weekdays" -> '
        '"2 SQL steps, every half hour during office hours on weekdays"\n'
        '    ~ step "2 vacuum"\n'
        "        on_error: ignore -> fail\n"
        '    ~ schedule "office hours"\n'
        "        - exception 2026-12-25 (all day)\n"
        '~ job "disk report"\n'
        '    + step "df -h": batch\n'
        '    - step "df"\n'
        '    ~ schedule "every quarter hour"\n'
        "        minutes: 0,15,30,45 -> 0-59\n"
        '~ job "month-end summary"\n'
        '    class: "Data Summarisation" -> "Data Export"\n'
        f"{path}: 0 jobs added, 3 changed, 0 removed, 1 unchanged\n"
    )

    after = {
        r["jstname"]: r["jstid"] for r in db.rows("SELECT jstname, jstid FROM pgagent.pga_jobstep")
    }
    assert after["2 vacuum"] == ids["2 vacuum"]  # updated, not re-created
    assert "df" not in after
    assert db.value("SELECT jstonerror FROM pgagent.pga_jobstep WHERE jstname = '2 vacuum'") == "f"
    assert db.rows(
        "SELECT jobenabled, jobnextrun FROM pgagent.pga_job WHERE jobname = 'purge heartbeats'"
    ) == [{"jobenabled": False, "jobnextrun": None}]
    assert db.value("SELECT count(*) FROM pgagent.pga_exception") == 1
    assert (
        db.value(
            "SELECT jclname FROM pgagent.pga_job JOIN pgagent.pga_jobclass ON jclid = jobjclid "
            "WHERE jobname = 'month-end summary'"
        )
        == "Data Export"
    )
    before = rows(db)
    assert apply(db, write(tmp_path, text)).endswith("no changes (4 jobs up to date)\n")
    assert rows(db) == before


def test_schedule_without_start_keeps_the_stored_start(db: Database, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[jobs]]\nname = "j"\n[[jobs.schedules]]\nname = "s"\nhours = "3"\n',
    )
    apply(db, path)
    assert db.value("SELECT jscstart = date_trunc('minute', now()) FROM pgagent.pga_schedule")
    db.execute("UPDATE pgagent.pga_schedule SET jscstart = '2020-01-01 00:00+00'")
    assert apply(db, path).endswith("no changes (1 job up to date)\n")
    path.write_text(path.read_text() + 'start = "2021-01-01T00:00:00Z"\n')
    out = apply(db, path)
    assert "start: 2020-01-01T00:00:00+00:00 -> 2021-01-01T00:00:00+00:00\n" in out
    assert db.value("SELECT jscstart::text FROM pgagent.pga_schedule") == "2021-01-01 00:00:00+00"


def test_errors_name_file_job_and_field_and_write_nothing(db: Database, tmp_path: Path) -> None:
    db.execute(PGADMIN_JOBS)
    before = rows(db)

    path = write(tmp_path, '[[jobs]]\nname = "j"\nclass = "Backups"\n')
    with pytest.raises(ConfigError) as info:
        apply(db, path)
    assert str(info.value) == (
        f"{path}: job \"j\": class: 'Backups' is not a job class in the database (known: "
        "Routine Maintenance, Data Import, Data Export, Data Summarisation, Miscellaneous)"
    )

    # the same date and time as an exception of a job not in the file (global UNIQUE index)
    path = write(
        tmp_path,
        '[[jobs]]\nname = "j"\n[[jobs.schedules]]\nname = "s"\n'
        'exceptions = [{date = "2026-03-31", time = "23:30"}]\n',
    )
    with pytest.raises(
        ConfigError,
        match=re.escape(
            'job "j": schedules[1].exceptions: 2026-03-31 23:30 '
            'is already an exception of job "hand made" schedule "quarter end"'
        ),
    ):
        apply(db, path)

    # what only the database can refuse: pgagent's own next-run function fails on 31 April
    path = write(
        tmp_path,
        '[[jobs]]\nname = "j"\n[[jobs.steps]]\nname = "a"\nkind = "batch"\ncode = "true"\n'
        '[[jobs.schedules]]\nname = "never"\nmonthdays = "31"\nmonths = "apr"\n',
    )
    with pytest.raises(ConfigError) as info:
        apply(db, path)
    assert str(info.value).startswith(
        f'{path}: job "j": schedule "never": the database refused the change: '
        "date/time field value out of range"
    )
    assert rows(db) == before  # one transaction: the job and its step are gone too

    with pytest.raises(
        ConfigError, match=re.escape("steps[1].kind: 'bash' is not one of sql, batch")
    ):
        apply(
            db,
            write(tmp_path, '[[jobs]]\nname = "j"\n[[jobs.steps]]\nname = "a"\nkind = "bash"\n'),
        )
    assert rows(db) == before


@pytest.mark.usefixtures("notifyagent_schema")
def test_cli_apply_and_export(db: Database, tmp_path: Path) -> None:
    r = run_cli("apply", str(EXAMPLE), "--dry-run", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "dry run: nothing was written" in r.out
    r = run_cli("apply", str(EXAMPLE), "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "4 jobs added" in r.out
    exported = tmp_path / "exported.toml"
    r = run_cli("export", "--dsn", db.dsn, "-o", str(exported))
    assert r.code == 0, r.err
    r = run_cli("apply", str(exported), "--prune", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "no changes (4 jobs up to date)" in r.out
    r = run_cli("export", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert r.out.rstrip("\n") == exported.read_text().rstrip("\n")
    bad = write(tmp_path, '[[jobs]]\nname = "j"\nclass = "Backups"\n', "bad.toml")
    r = run_cli("apply", str(bad), "--dsn", db.dsn)
    assert r.code == 2
    assert "class: 'Backups' is not a job class" in r.err


POLICY_JOB = """
[[jobs]]
name = "j"

[jobs.policy]
job_timeout = "10 min"
retries = 2
retry_delay = "2 min"
"""


@pytest.mark.usefixtures("notifyagent_schema")
def test_policies_are_added_changed_in_place_and_removed(db: Database, tmp_path: Path) -> None:
    db.execute(PGADMIN_JOBS)
    hand_made = db.value("SELECT jobid FROM pgagent.pga_job WHERE jobname = 'hand made'")
    db.execute("INSERT INTO notifyagent.job_policy (jobid, retries) VALUES (%s, 7)", (hand_made,))
    path = write(tmp_path, POLICY_JOB)
    assert apply(db, path) == (
        '+ job "j": class Routine Maintenance\n'
        "    + policy: job_timeout 10m; retries 2; retry_delay 2m\n"
        f"{path}: 1 job added, 0 changed, 0 removed, 0 unchanged; 2 jobs not in the file left "
        "alone (--prune deletes them)\n"
    )
    hand_made_policy = {
        "jobname": "hand made",
        "job_timeout": None,
        "step_timeout": None,
        "retries": 7,
        "retry_delay": "00:01:00",
        "overlap": "skip",
        "catchup": "once",
    }
    j_policy = {
        **hand_made_policy,
        "jobname": "j",
        "job_timeout": "00:10:00",
        "retries": 2,
        "retry_delay": "00:02:00",
    }
    assert policies(db) == [hand_made_policy, j_policy]

    # the second apply writes nothing
    before = rows(db)
    assert apply(db, path).startswith(f"{path}: no changes (1 job up to date)")
    assert rows(db) == before

    # a change: the policy row is updated, the job's own row is not touched
    path.write_text(POLICY_JOB.replace("retries = 2", 'retries = 3\novercap = "x"'))
    with pytest.raises(ConfigError, match=re.escape("policy.overcap: unknown key (did you mean")):
        apply(db, path)
    path.write_text(POLICY_JOB.replace("retries = 2", 'retries = 3\noverlap = "queue-one"'))
    out = apply(db, path)
    assert out.startswith(
        '~ job "j"\n'
        "    ~ policy: retries: 2 -> 3\n"
        "    ~ policy: overlap: skip -> queue-one\n"
        f"{path}: 0 jobs added, 1 changed, 0 removed, 0 unchanged;"
    )
    assert policies(db) == [hand_made_policy, {**j_policy, "retries": 3, "overlap": "queue-one"}]
    j = db.value("SELECT jobid FROM pgagent.pga_job WHERE jobname = 'j'")
    assert {r.rsplit(" ", 1)[0] for r in before ^ rows(db)} == {f"policy {j}"}

    # [jobs.policy] dropped from the file: no row any more (pgAgent's behaviour)
    path.write_text('[[jobs]]\nname = "j"\n')
    out = apply(db, path)
    assert out.startswith(
        '~ job "j"\n'
        "    - policy: none in the file, back to pgAgent's behaviour\n"
        f"{path}: 0 jobs added, 1 changed, 0 removed, 0 unchanged;"
    )
    assert policies(db) == [hand_made_policy]
    before = rows(db)
    assert apply(db, path).startswith(f"{path}: no changes (1 job up to date)")
    assert rows(db) == before

    # an empty table: a row with the columns' defaults
    path.write_text('[[jobs]]\nname = "j"\n[jobs.policy]\n')
    assert "    + policy: all defaults\n" in apply(db, path)
    assert policies(db) == [
        hand_made_policy,
        {**hand_made_policy, "jobname": "j", "retries": 0},
    ]

    # pruned jobs take their policies with them
    apply(db, path, prune=True)
    assert [p["jobname"] for p in policies(db)] == ["j"]


def test_export_then_apply_is_a_no_op_with_policies(
    db: Database, other_db: Database, tmp_path: Path
) -> None:
    install(db)
    install(other_db)
    db.execute(PGADMIN_JOBS)
    db.execute(
        "INSERT INTO notifyagent.job_policy "
        "(jobid, job_timeout, step_timeout, retries, retry_delay, overlap, catchup, "
        " max_failures, alert_to, alert_on) "
        "SELECT jobid, '1 mon 2 hours 0.5 seconds', '90 seconds', 100, '0', 'queue-one', 'skip', "
        "3, 'json://hooks.example.com/x', 'failed,recovered' "
        "FROM pgagent.pga_job WHERE jobname = 'nightly_cleanup'"
    )
    db.execute(
        "INSERT INTO notifyagent.job_policy (jobid) "
        "SELECT jobid FROM pgagent.pga_job WHERE jobname = 'hand made'"
    )
    text = export(db)
    assert (
        'name = "nightly_cleanup"\n'
        'class = "Routine Maintenance"\n'
        'description = "Purge expired sessions in appdb and delete old CSV exports"\n'
        "\n"
        "[jobs.policy]\n"
        'job_timeout = "30d2h0.5s"\n'
        'step_timeout = "1m30s"\n'
        "retries = 100\n"
        'retry_delay = "0s"\n'
        'overlap = "queue-one"\n'
        'catchup = "skip"\n'
        "max_failures = 3\n"
        'alert_to = "json://hooks.example.com/x"\n'
        'alert_on = "failed,recovered"\n'
        "\n"
        "[[jobs.steps]]\n"
    ) in text
    # all defaults: an empty table, which is a row (not the same as none)
    assert 'host_agent = "station-7"\n\n[jobs.policy]\n\n[[jobs.steps]]\n' in text
    path = write(tmp_path, text)

    before = rows(db)
    assert apply(db, path) == f"{path}: no changes (2 jobs up to date)\n"
    assert rows(db) == before
    assert export(db) == text

    assert "2 jobs added" in apply(other_db, path)
    assert export(other_db).replace(other_db.name, db.name) == text
    seconds = (
        "SELECT j.jobname, extract(epoch FROM p.job_timeout) AS job_timeout, "
        "extract(epoch FROM p.step_timeout) AS step_timeout, p.retries, "
        "extract(epoch FROM p.retry_delay) AS retry_delay, p.overlap, p.catchup, "
        "p.max_failures, p.alert_to, p.alert_on "
        "FROM notifyagent.job_policy p JOIN pgagent.pga_job j USING (jobid) ORDER BY j.jobname"
    )
    assert other_db.rows(seconds) == db.rows(seconds)


def test_without_notifyagents_schema(db: Database, tmp_path: Path) -> None:
    """export writes no policies; apply of a file with policies is refused, naming the fix."""
    db.execute(PGADMIN_JOBS)
    assert not db.value(HAS_POLICY_TABLE)
    text = export(db)
    assert "\n[jobs.policy]\n" not in text
    path = write(tmp_path, text)
    assert apply(db, path) == f"{path}: no changes (2 jobs up to date)\n"

    before = rows(db)
    message = (
        f'{EXAMPLE}: job "purge heartbeats": policy: database "{db.name}" has no table '
        "notifyagent.job_policy (notifyagent's own schema is not installed): run notifyagent "
        "install first, or remove the [jobs.policy] tables"
    )
    for dry_run in (True, False):
        with pytest.raises(ConfigError) as info:
            apply(db, EXAMPLE, dry_run=dry_run)
        assert str(info.value) == message
    assert rows(db) == before
    r = run_cli("apply", str(EXAMPLE), "--dsn", db.dsn)
    assert r.code == 2
    assert "run notifyagent install first" in r.err
    assert rows(db) == before

    r = run_cli("install", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "4 jobs added" in apply(db, EXAMPLE)
    assert [p["jobname"] for p in policies(db)] == ["purge heartbeats"]
