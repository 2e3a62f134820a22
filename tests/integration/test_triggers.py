"""notifyagent's own database objects: install/uninstall, notifications, safety triggers."""

from __future__ import annotations

import psycopg

from notifyagent.schema import NOTIFYAGENT_SCHEMA_VERSION
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
    return [n.payload for n in conn.notifies(timeout=0.5)]


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
    assert triggers == 19
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
        "job_policy",
    }


def test_job_changes_notify_with_job_ids(db: Database) -> None:
    install(db)
    conn = listen(db)
    jobid = tick_job(db, "n1")
    assert payloads(conn) == [f"job:{jobid}"]
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 h'")
    assert payloads(conn) == [f"job:{jobid}"]
    # the claim (jobagentid, joblastrun) and cosmetic edits do not notify
    db.execute("UPDATE pgagent.pga_job SET jobdesc = 'x', joblastrun = now()")
    assert payloads(conn) == []
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 's', array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    got = payloads(conn)
    assert f"schedule:{jobid}" in got
    assert f"recompute:{jobid}" in got  # the extension's trigger recomputed jobnextrun
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
    conn.close()


def test_bulk_change_sends_few_small_notifications(db: Database) -> None:
    install(db)
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
        "SELECT 1, 'bulk' || g FROM generate_series(1, 10000) g"
    )
    conn = listen(db)
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 day'")
    got = payloads(conn)
    assert 1 <= len(got) <= 20
    assert all(len(p.encode()) < 8000 for p in got)
    ids = {int(x) for p in got for x in p.removeprefix("job:").split(",")}
    assert len(ids) == 10000
    db.execute("TRUNCATE pgagent.pga_job CASCADE")
    assert "resync" in payloads(conn)
    conn.close()


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
