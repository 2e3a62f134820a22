"""notifyagent's own database objects: install/uninstall, notifications, safety triggers."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from notifyagent.db.schema import NOTIFYAGENT_SCHEMA_VERSION
from notifyagent.db.sql import script
from tests.agent import make_job, sql_step, tick_job
from tests.cli import run_cli
from tests.pg import Database


def install(db: Database) -> None:
    r = run_cli("install", "--dsn", db.dsn)
    assert r.code == 0, r.err


def listen(db: Database) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(db.dsn, autocommit=True)
    conn.execute("LISTEN notifyagent")
    return conn


def payloads(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """The notifications of the last half second, without the next-run values some kinds carry
    after each job id (``schedule:7=<microseconds>``; tests/integration/test_payload.py)."""
    return [re.sub(r"=[^,]*", "", n.payload) for n in conn.notifies(timeout=0.5)]


def test_install_is_idempotent_and_versioned(db: Database) -> None:
    install(db)
    assert db.value("SELECT notifyagent.version()") == NOTIFYAGENT_SCHEMA_VERSION
    triggers = db.value(
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%notifyagent%' AND NOT tgisinternal"
    )
    r = run_cli("install", "--dsn", db.dsn)
    assert r.code == 0
    assert "up to date" in r.err
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%notifyagent%'") == triggers
    assert triggers == script("install").count("CREATE OR REPLACE TRIGGER")
    r = run_cli("uninstall", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%notifyagent%'") == 0
    assert db.value("SELECT to_regnamespace('notifyagent')") is None
    # the pgagent extension is untouched
    assert db.value("SELECT pgagent.pgagent_schema_version()") == 4


def test_no_trigger_on_log_tables(db: Database) -> None:
    install(db)
    tables = db.rows(
        "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname LIKE '%notifyagent%'"
    )
    assert {r["relname"] for r in tables} == {
        "pga_job",
        "pga_schedule",
        "pga_exception",
        "pga_jobstep",  # annotations in step descriptions
        "job_policy",
    }


def test_job_changes_notify_with_job_ids(db: Database) -> None:
    install(db)
    with listen(db) as conn:
        jobid = tick_job(db, "n1")
        assert payloads(conn) == [f"job:{jobid}"]
        db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 h'")
        assert payloads(conn) == [f"job:{jobid}"]
        # the claim (jobagentid, joblastrun) and cosmetic edits do not notify
        db.execute("UPDATE pgagent.pga_job SET jobdesc = 'x', joblastrun = now()")
        assert payloads(conn) == []
        # a comment with annotations is a policy change (and so is its removal)
        db.execute("UPDATE pgagent.pga_job SET jobdesc = '@notifyagent retries=1'")
        assert payloads(conn) == [f"policy:{jobid}"]
        db.execute("UPDATE pgagent.pga_job SET jobdesc = ''")
        assert payloads(conn) == [f"policy:{jobid}"]
        db.execute("UPDATE pgagent.pga_jobstep SET jstdesc = '@RUN_IN_PARALLEL=true;'")
        assert payloads(conn) == [f"policy:{jobid}"]
        db.execute("UPDATE pgagent.pga_jobstep SET jstcode = 'SELECT 2'")
        assert payloads(conn) == []
        db.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
            "VALUES (%s, 's', array_fill(true, ARRAY[60]))",
            (jobid,),
        )
        # the extension's trigger recomputed jobnextrun: one notification, with the final value
        assert payloads(conn) == [f"schedule:{jobid}"]
        # enabling a job recomputes too; an explicit value (Run now) is a plain "job" change
        db.execute("UPDATE pgagent.pga_job SET jobenabled = false")
        assert payloads(conn) == [f"job:{jobid}"]
        db.execute("UPDATE pgagent.pga_job SET jobenabled = true")
        assert payloads(conn) == [f"recompute:{jobid}"]
        db.execute("UPDATE pgagent.pga_job SET jobnextrun = now()")
        assert payloads(conn) == [f"job:{jobid}"]
        db.execute(
            "INSERT INTO pgagent.pga_exception (jexscid, jexdate) "
            "SELECT jscid, '2031-01-01' FROM pgagent.pga_schedule"
        )
        assert f"exception:{jobid}" in payloads(conn)
        db.execute("DELETE FROM pgagent.pga_job")
        assert f"job:{jobid}" in payloads(conn)


def test_bulk_change_sends_few_small_notifications(db: Database) -> None:
    install(db)
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
        "SELECT 1, 'bulk' || g FROM generate_series(1, 10000) g"
    )
    with listen(db) as conn:
        db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 day'")
        got = payloads(conn)
        assert 1 <= len(got) <= 20
        assert all(len(p.encode()) < 8000 for p in got)
        ids = {int(x) for p in got for x in p.removeprefix("job:").split(",")}
        assert len(ids) == 10000
        db.execute("TRUNCATE pgagent.pga_job CASCADE")
        assert "resync" in payloads(conn)


def test_a_bulk_schedule_change_is_reported_once_with_the_final_values(db: Database) -> None:
    """The extension recomputes jobnextrun row by row inside a schedule statement; only the
    statement's own notifications go out, so the agent never recomputes a job before it has
    read the job's new schedules (it would write a next run from the old ones)."""
    install(db)
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
        "SELECT 1, 'bulk' || g FROM generate_series(1, 600) g"
    )
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "SELECT jobid, 's', array_fill(true, ARRAY[60]) FROM pgagent.pga_job"
    )
    with listen(db) as conn:
        db.execute("UPDATE pgagent.pga_schedule SET jschours[4] = true")
        got = payloads(conn)
        assert {p.partition(":")[0] for p in got} == {"schedule"}
        assert len({x for p in got for x in p.partition(":")[2].split(",")}) == 600
        # a job change after the schedule statement, in the same transaction, still notifies
        with psycopg.connect(db.dsn) as tx:
            tx.execute("UPDATE pgagent.pga_schedule SET jschours[5] = true WHERE jscid = 1")
            tx.execute("UPDATE pgagent.pga_job SET jobenabled = false WHERE jobid = 2")
        assert sorted(p.partition(":")[0] for p in payloads(conn)) == ["job", "schedule"]


def test_pgadmin_xmin_lookup_still_finds_the_new_job(db: Database) -> None:
    """pgAdmin creates a job in a DO block and finds it by xmin = txid_current()."""
    install(db)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute(
            """DO $$ DECLARE jid integer; BEGIN
            INSERT INTO pgagent.pga_job(jobjclid, jobname) VALUES (1, 'pgadmin')
              RETURNING jobid INTO jid;
            INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname)
              VALUES (jid, 's1', 's', 'SELECT 1', 'postgres');
            INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes)
              VALUES (jid, 'sch', array_fill(true, ARRAY[60]));
            END $$;"""
        )
        rows = conn.execute(
            "SELECT jobid, jobname FROM pgagent.pga_job "
            "WHERE xmin::text = (txid_current() % (2^32)::bigint)::text"
        ).fetchall()
        conn.execute("END")
    assert [r[1] for r in rows] == ["pgadmin"]
    assert db.value("SELECT jobnextrun IS NOT NULL FROM pgagent.pga_job") is True


def test_claim_guard_blocks_a_stale_claim(db: Database) -> None:
    """A claim of a job that is not due (pgAgent's late thread) changes nothing."""
    install(db)
    jobid = make_job(db, "guarded", [sql_step("s", "SELECT 1")])
    db.execute(
        "INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (pg_backend_pid(), 'x')"
    )
    agent = db.value("SELECT jagpid FROM pgagent.pga_jobagent")
    stale = "UPDATE pgagent.pga_job SET jobagentid = %s WHERE jobagentid IS NULL AND jobid = %s"
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 h'")
    db.execute(stale, (agent, jobid))
    assert db.value("SELECT jobagentid FROM pgagent.pga_job") is None
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() - interval '1 s'")
    db.execute(stale, (agent, jobid))
    assert db.value("SELECT jobagentid FROM pgagent.pga_job") == agent


def test_impossible_schedule_can_be_saved(db: Database) -> None:
    """pgAdmin's INSERT of a 31st-of-the-month schedule fails in April with the extension alone."""
    install(db)
    jobid = make_job(db, "feb30", [sql_step("s", "SELECT 1")])
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscmonthdays, jscmonths,"
        " jscminutes, jschours) VALUES (%s, 'feb30', '2030-01-15 00:00+00',"
        " (SELECT array_agg(g = 30 ORDER BY g) FROM generate_series(1, 32) g),"
        " (SELECT array_agg(g = 2 ORDER BY g) FROM generate_series(1, 12) g),"
        " (SELECT array_agg(g = 0 ORDER BY g) FROM generate_series(0, 59) g),"
        " (SELECT array_agg(g = 0 ORDER BY g) FROM generate_series(0, 23) g))",
        (jobid,),
    )
    assert db.value("SELECT jobnextrun::text FROM pgagent.pga_job") == "infinity"


def test_minus_infinity_stores_null_without_a_recompute(db: Database) -> None:
    """The agent's way to say "no next run" although the job has schedules."""
    install(db)
    jobid = make_job(db, "ended", [sql_step("s", "SELECT 1")])
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    assert db.value("SELECT jobnextrun FROM pgagent.pga_job") is not None
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = '-infinity'")
    assert db.value("SELECT jobnextrun FROM pgagent.pga_job") is None


def test_uninstall_twice_then_install_again(db: Database) -> None:
    triggers = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%notifyagent%'"
    install(db)
    installed = db.value(triggers)
    assert installed > 0
    r = run_cli("uninstall", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "removed notifyagent's schema and triggers" in r.err
    assert "nothing to remove" not in r.err
    assert db.value("SELECT to_regnamespace('notifyagent')") is None
    r = run_cli("uninstall", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "nothing to remove: notifyagent is not installed" in r.err
    assert db.value("SELECT to_regnamespace('notifyagent')") is None
    # and back: the same objects, and they work
    assert db.value(triggers) == 0
    install(db)
    assert db.value("SELECT notifyagent.version()") == NOTIFYAGENT_SCHEMA_VERSION
    assert db.value(triggers) == installed
    with listen(db) as conn:
        jobid = tick_job(db, "again")
        assert payloads(conn) == [f"job:{jobid}"]


#: Every object of the pgagent extension (pg_depend deptype 'e'), the extension itself, its
#: schema and its seeded job classes, each as text that changes when anything about it does:
#: function source, owner, privileges, comments; columns with types, defaults and NOT NULL,
#: constraints, indexes, rules, policies, sequence parameters; and the extension's own
#: triggers (those calling its functions, and the foreign keys of its tables). Triggers that
#: notifyagent adds (and the foreign key of notifyagent.job_policy) are not the extension's.
EXTENSION_OBJECTS = """
WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'pgagent'),
members AS (
  SELECT d.classid, d.objid FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
functions AS (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass),
relations AS (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
SELECT pg_describe_object(m.classid, m.objid, 0) AS object,
       concat_ws(E'\n',
         'owner ' || p.proowner::regrole, 'acl ' || p.proacl::text,
         'comment ' || obj_description(p.oid, 'pg_proc'), pg_get_functiondef(p.oid)) AS definition
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
UNION ALL
SELECT pg_describe_object(m.classid, m.objid, 0),
       concat_ws(E'\n',
         'kind ' || c.relkind::text, 'owner ' || c.relowner::regrole, 'acl ' || c.relacl::text,
         'options ' || c.reloptions::text, 'persistence ' || c.relpersistence::text,
         'rls ' || c.relrowsecurity || ' ' || c.relforcerowsecurity,
         'replica identity ' || c.relreplident::text,
         'comment ' || obj_description(c.oid, 'pg_class'),
         (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                   || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                   || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                   || coalesce(' comment ' || col_description(c.oid, a.attnum), '')
                   || coalesce(' acl ' || a.attacl::text, '')
                   || ' statistics ' || a.attstattarget || ' storage ' || a.attstorage::text,
                   E'\n' ORDER BY a.attnum)
            FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
         (SELECT string_agg('constraint ' || conname || ' ' || pg_get_constraintdef(oid),
                            E'\n' ORDER BY conname)
            FROM pg_constraint WHERE conrelid = c.oid),
         (SELECT string_agg(pg_get_indexdef(indexrelid), E'\n' ORDER BY 1)
            FROM pg_index WHERE indrelid = c.oid),
         (SELECT string_agg(pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
                            || coalesce(' comment ' || obj_description(t.oid, 'pg_trigger'), ''),
                            E'\n' ORDER BY t.tgname)
            FROM pg_trigger t LEFT JOIN pg_constraint k ON k.oid = t.tgconstraint
           WHERE t.tgrelid = c.oid
             AND (t.tgfoid IN (SELECT objid FROM functions)
                  OR k.conrelid IN (SELECT objid FROM relations))),
         (SELECT string_agg('rule ' || pg_get_ruledef(r.oid), E'\n' ORDER BY r.rulename)
            FROM pg_rewrite r WHERE r.ev_class = c.oid),
         (SELECT string_agg('policy ' || pol.polname || ' ' || pol.polcmd::text || ' '
                            || coalesce(pg_get_expr(pol.polqual, pol.polrelid), ''),
                            E'\n' ORDER BY pol.polname)
            FROM pg_policy pol WHERE pol.polrelid = c.oid),
         (SELECT format('sequence %s start %s increment %s max %s min %s cache %s cycle %s',
                        seqtypid::regtype, seqstart, seqincrement, seqmax, seqmin, seqcache,
                        seqcycle)
            FROM pg_sequence WHERE seqrelid = c.oid))
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT pg_describe_object(m.classid, m.objid, 0),
       (pg_identify_object_as_address(m.classid, m.objid, 0))::text
  FROM members m WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass)
UNION ALL
SELECT 'extension pgagent',
       concat_ws(' ', extversion, extowner::regrole, extnamespace::regnamespace, extrelocatable,
                 extconfig::regclass[]::text, extcondition::text)
  FROM ext
UNION ALL
SELECT 'schema pgagent',
       concat_ws(' ', nspowner::regrole, nspacl::text, obj_description(oid, 'pg_namespace'))
  FROM pg_namespace WHERE nspname = 'pgagent'
UNION ALL
SELECT 'rows of pgagent.pga_jobclass',
       (SELECT string_agg(jclid || ' ' || jclname, E'\n' ORDER BY jclid)
          FROM pgagent.pga_jobclass)
"""


def extension_objects(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(EXTENSION_OBJECTS.encode()).fetchall()
    found = {str(r[0]): str(r[1]) for r in rows}
    assert len(found) == len(rows)
    return found


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def test_the_extension_objects_never_change(db: Database) -> None:
    """README: "The pgagent extension's objects are never changed" by install, a forced
    re-install, a running agent's start, or uninstall."""
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        before = extension_objects(conn)
        # the snapshot covers what it claims to
        assert len(before) == 24
        assert "pga_job_trigger" in before["table pgagent.pga_job"]
        assert "RI_ConstraintTrigger" in before["table pgagent.pga_job"]
        assert "jobnextrun timestamp with time zone" in before["table pgagent.pga_job"]
        assert "sequence integer start 1" in before["sequence pgagent.pga_job_jobid_seq"]
        assert (
            "CREATE OR REPLACE FUNCTION pgagent.pga_next_schedule"
            in before[
                "function pgagent.pga_next_schedule(integer,timestamp with time zone,"
                "timestamp with time zone,boolean[],boolean[],boolean[],boolean[],boolean[])"
            ]
        )
        install(db)
        assert db.value("SELECT notifyagent.version()") == NOTIFYAGENT_SCHEMA_VERSION
        assert changed(before, extension_objects(conn)) == []
        assert run_cli("install", "--force", "--dsn", db.dsn).code == 0
        assert changed(before, extension_objects(conn)) == []
        r = run_cli("uninstall", "--dsn", db.dsn)
        assert r.code == 0, r.err
        assert changed(before, extension_objects(conn)) == []


@pytest.mark.parametrize(
    "statement",
    [
        "COMMENT ON FUNCTION pgagent.pga_is_leap_year(smallint) IS 'changed'",
        "CREATE OR REPLACE FUNCTION pgagent.pgagent_schema_version() RETURNS int2 "
        "LANGUAGE sql AS 'SELECT 4::int2 -- changed'",
        "ALTER TABLE pgagent.pga_job ALTER COLUMN jobdesc SET DEFAULT 'changed'",
        "ALTER TABLE pgagent.pga_job ALTER COLUMN jobhostagent DROP NOT NULL",
        "ALTER TABLE pgagent.pga_job ADD CONSTRAINT changed CHECK (jobid > 0)",
        "ALTER TABLE pgagent.pga_job DISABLE TRIGGER pga_job_trigger",
        "CREATE OR REPLACE TRIGGER pga_job_trigger BEFORE INSERT OR UPDATE ON pgagent.pga_job "
        "FOR EACH ROW EXECUTE FUNCTION pgagent.pga_job_trigger()",
        "COMMENT ON TRIGGER pga_job_trigger ON pgagent.pga_job IS 'changed'",
        "CREATE INDEX changed ON pgagent.pga_joblog (jlgstatus)",
        "ALTER SEQUENCE pgagent.pga_joblog_jlgid_seq INCREMENT 2",
        "GRANT SELECT ON pgagent.pga_job TO PUBLIC",
        "UPDATE pgagent.pga_jobclass SET jclname = jclname || ' (changed)'",
    ],
)
def test_the_snapshot_sees_changes(db: Database, statement: str) -> None:
    """The comparison above is only as good as the snapshot: each kind of change to an
    extension object shows up in it."""
    with psycopg.connect(db.dsn) as conn:
        before = extension_objects(conn)
        conn.execute(statement.encode())
        assert changed(before, extension_objects(conn)) != []
        conn.rollback()
