"""``notifyagent serve`` against a real server: rows in the pgagent tables, processes, timing."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import psycopg
import pytest

from notifyagent.db.schema import NOTIFYAGENT_SCHEMA_VERSION
from tests.agent import (
    AgentProcess,
    batch_step,
    dead_agent_with_a_run,
    joblogs,
    make_job,
    run_now,
    sql_step,
    steplogs,
    tick_job,
    wait_finished,
)
from tests.cli import run_cli
from tests.pg import Database, Server, new_database, wait_for

Factory = Callable[..., AgentProcess]
FEB30_SCHEDULE = (
    "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscmonthdays, jscmonths) VALUES (%s, "
    "'feb30', (SELECT array_agg(g = 30 ORDER BY g) FROM generate_series(1, 32) g), "
    "(SELECT array_agg(g = 2 ORDER BY g) FROM generate_series(1, 12) g))"
)


# -- start-up and registration -------------------------------------------------------------


@pytest.fixture
def plain_db(pg_server: Server) -> Iterator[Database]:
    yield from new_database(pg_server, prefix="plain", template="template0")


def test_serve_refuses_a_database_without_pgagent(plain_db: Database) -> None:
    r = run_cli("serve", "--dsn", plain_db.dsn, timeout=30)
    assert r.code == 4
    assert "CREATE EXTENSION pgagent" in r.err


def test_serve_refuses_a_wrong_schema_version(db: Database) -> None:
    db.execute(
        "CREATE OR REPLACE FUNCTION pgagent.pgagent_schema_version() RETURNS int2 "
        "LANGUAGE sql AS 'SELECT 3::int2'"
    )
    r = run_cli("serve", "--dsn", db.dsn, timeout=30)
    assert r.code == 5
    assert "ALTER EXTENSION" in r.err


def test_registers_like_pgagent_and_installs_triggers(db: Database, agent: AgentProcess) -> None:
    rows = db.rows("SELECT jagpid, jagstation FROM pgagent.pga_jobagent")
    assert len(rows) == 1
    assert rows[0]["jagstation"] == "test-station"
    backend = db.rows(
        "SELECT application_name, state, query FROM pg_stat_activity WHERE pid = %s",
        (rows[0]["jagpid"],),
    )
    assert backend[0]["application_name"] == "notifyagent"
    # the identity is the LISTEN connection, whose last statement was the registration
    assert "pga_jobagent" in backend[0]["query"]
    assert backend[0]["state"] == "idle"
    assert db.value("SELECT notifyagent.version()") == NOTIFYAGENT_SCHEMA_VERSION
    assert "installed notifyagent triggers" in agent.log()


def test_default_station_is_the_host_name(db: Database) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYAGENT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "notifyagent", "serve", "--dsn", db.dsn],
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for(lambda: db.rows("SELECT jagstation FROM pgagent.pga_jobagent"), 20)
        assert db.value("SELECT jagstation FROM pgagent.pga_jobagent") == socket.gethostname()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 0


def test_zombies_cleaned_at_startup(db: Database, agent_factory: Factory) -> None:
    j1 = tick_job(db, "z1")
    j2 = tick_job(db, "z2")
    log1 = dead_agent_with_a_run(db, 999_991, j1)
    log2 = dead_agent_with_a_run(db, 999_992, j2)
    agent = agent_factory()
    wait_for(
        lambda: db.value("SELECT count(*) FROM pgagent.pga_jobagent WHERE jagpid > 999000") == 0,
        10,
        what="dead agents removed",
    )
    for jlgid in (log1, log2):
        assert (
            db.value("SELECT jlgstatus FROM pgagent.pga_joblog WHERE jlgid = %s", (jlgid,)) == "d"
        )
        assert (
            db.value("SELECT jlgduration FROM pgagent.pga_joblog WHERE jlgid = %s", (jlgid,))
            is None
        )
        assert (
            db.value("SELECT jslstatus FROM pgagent.pga_jobsteplog WHERE jsljlgid = %s", (jlgid,))
            == "d"
        )
    assert db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL") == 0
    assert "cleaned up dead agent 999991" in agent.log()


def test_zombies_cleaned_periodically_one_per_transaction(
    db: Database, agent_factory: Factory
) -> None:
    agent_factory("--liveness-interval", "0.5")
    j1 = tick_job(db, "p1")
    j2 = tick_job(db, "p2")
    # a zombie whose job has a schedule the extension cannot compute (30 February): with
    # pgAgent one such row blocks the whole cleanup; here each zombie is its own transaction
    db.execute("SET session_replication_role = replica")
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            FEB30_SCHEDULE,
            (j1,),
        )
    dead_agent_with_a_run(db, 999_993, j1)
    dead_agent_with_a_run(db, 999_994, j2)
    wait_for(
        lambda: db.value("SELECT count(*) FROM pgagent.pga_jobagent WHERE jagpid > 999000") == 0,
        10,
        what="both dead agents removed by the periodic check",
    )
    assert db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r'") == 0
    assert db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL") == 0


# -- latency and idleness ------------------------------------------------------------------


def test_run_now_starts_within_100ms(db: Database, agent: AgentProcess) -> None:
    jobid = tick_job(db, "fast")
    lags = []
    for run in range(1, 9):  # more than psycopg's prepare threshold (5)
        due = db.value(
            "UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s "
            "RETURNING clock_timestamp()",
            (jobid,),
        )
        wait_finished(db, jobid, runs=run)
        ran = db.value(
            "SELECT max(ran_at) FROM public.tick WHERE label = 'fast'",
        )
        lags.append((ran - due).total_seconds())
    assert max(lags) < 0.1, lags


def test_future_job_starts_within_100ms_after_due(db: Database, agent: AgentProcess) -> None:
    jobid = tick_job(db, "soon")
    due = db.value(
        "UPDATE pgagent.pga_job SET jobnextrun = clock_timestamp() + interval '1.5 s' "
        "WHERE jobid = %s RETURNING jobnextrun",
        (jobid,),
    )
    wait_finished(db, jobid, timeout=10)
    ran = db.value("SELECT ran_at FROM public.tick WHERE label = 'soon'")
    lag = (ran - due).total_seconds()
    assert 0 <= lag < 0.1, lag


def _statements_by(cluster_log: Path, app: str, start: str, end: str) -> list[str]:
    """What backends with application_name ``app`` logged (log_statement = all) between the
    two marker statements: simple-protocol "statement:" and extended-protocol "execute"
    lines alike (parameterised queries are logged as the latter)."""
    text = cluster_log.read_text(errors="replace")
    window = text[text.index(start) : text.index(end)]
    return [
        line
        for line in window.splitlines()
        if f" {app} " in line and re.search(r"LOG:  (statement|execute [^:]*):", line)
    ]


def test_idle_agent_sends_no_queries(
    pg_server: Server, db: Database, agent_factory: Factory
) -> None:
    """Nothing due: the agent's only statements are its liveness checks, one per interval."""
    if pg_server.cluster is None:
        pytest.skip("reads the test cluster's server log")
    db.execute(f"ALTER DATABASE \"{db.name}\" SET log_statement = 'all'")
    make_job(db, "later", [sql_step("s", "SELECT 1")])
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 hour'")
    interval = 2.0
    agent_factory("--liveness-interval", str(interval))
    start, end = f"idle-start-{time.time()}", f"idle-end-{time.time()}"
    db.execute(f"SELECT '{start}'")
    began = time.monotonic()
    time.sleep(10)  # the measurement window itself: nothing is due in it
    db.execute(f"SELECT '{end}'")
    window = time.monotonic() - began
    statements = _statements_by(pg_server.cluster.logfile, "notifyagent", start, end)
    assert all("SELECT pg_notify('notifyagent', $1)" in s for s in statements), statements
    # one check per interval (plus the check's own round trip, a few ms when idle)
    times = [datetime.fromisoformat(s[:23]) for s in statements]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(interval <= g < interval + 1 for g in gaps), gaps
    assert window / (interval + 1) - 1 <= len(statements) <= window / interval + 1, statements


# -- claim ---------------------------------------------------------------------------------


def test_skips_jobs_claimed_by_another_agent_without_phantom_rows(
    db: Database, agent: AgentProcess
) -> None:
    with psycopg.connect(db.dsn, autocommit=True) as other:
        pid = other.info.backend_pid
        other.execute(
            "INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (%s, 'other')", (pid,)
        )
        jobid = tick_job(db, "taken")
        with other.transaction():
            other.execute(
                "UPDATE pgagent.pga_job SET jobnextrun = now() - interval '1 s' WHERE jobid = %s",
                (jobid,),
            )
            other.execute(
                "UPDATE pgagent.pga_job SET jobagentid = %s WHERE jobid = %s", (pid, jobid)
            )
        assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) == pid
        # a second job proves the agent is alive and processed the notifications
        probe = tick_job(db, "probe")
        run_now(db, probe)
        wait_finished(db, probe)
        assert joblogs(db, jobid) == []
        other.execute("UPDATE pgagent.pga_job SET jobagentid = NULL WHERE jobid = %s", (jobid,))
    # released while still due: now it runs
    wait_finished(db, jobid)


def test_host_pinned_jobs(db: Database, agent: AgentProcess) -> None:
    mine = tick_job(db, "mine", hostagent="test-station")
    theirs = tick_job(db, "theirs", hostagent="elsewhere")
    probe = tick_job(db, "probe2")
    run_now(db, mine, theirs)
    wait_finished(db, mine)
    run_now(db, probe)
    wait_finished(db, probe)
    assert joblogs(db, theirs) == []
    assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (theirs,)) is None


def test_disabled_job_never_runs(db: Database, agent: AgentProcess) -> None:
    """A disabled job whose stored next run is due is neither queued nor claimed. The
    extension's trigger clears jobnextrun of a disabled job, so the due time is written with
    triggers off (as a restore or replication could leave it) and the agent resyncs."""
    off = tick_job(db, "off", enabled=False)
    control = tick_job(db, "control")
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = ANY(%s)", ([off, control],)
        )
    assert db.value(
        "SELECT NOT jobenabled AND jobnextrun <= now() FROM pgagent.pga_job WHERE jobid = %s",
        (off,),
    )
    db.execute("NOTIFY notifyagent, 'resync'")
    # the enabled job, due at the same instant, ran: the agent has seen both rows
    wait_finished(db, control)
    assert joblogs(db, off) == []
    # not even tried: the claim's own jobenabled filter would refuse it, and the agent would
    # then retry it as if its row were locked
    assert f"job {off} is locked" not in agent.log()


def test_locked_job_is_retried_not_lost(db: Database, agent: AgentProcess) -> None:
    """A job row held locked by an editor is skipped, not waited on, and runs once released."""
    jobid = tick_job(db, "locked")
    other = tick_job(db, "free")
    with psycopg.connect(db.dsn) as editor:
        editor.execute("SELECT 1 FROM pgagent.pga_job WHERE jobid = %s FOR UPDATE", (jobid,))
        run_now(db, other)  # not blocked by the lock
        wait_finished(db, other)
        # run-now of the locked job must wait for the editor, so set it from the editor
        editor.execute("UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s", (jobid,))
        editor.commit()
    wait_finished(db, jobid)
    assert [r["jlgstatus"] for r in joblogs(db, jobid)] == ["s"]


# -- run semantics -------------------------------------------------------------------------


def test_steps_order_onerror_and_results(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(
        db,
        "semantics",
        [
            sql_step("b_first_inserted", "INSERT INTO public.tick(label) VALUES ('b')"),
            sql_step("a_second_inserted", "INSERT INTO public.tick(label) VALUES ('a')"),
            sql_step("c_fail_i", "SELECT 1/0", onerror="i"),
            sql_step("d_ok", "SELECT 1"),
            sql_step("e_fail_s", "SELECT * FROM no_such_table", onerror="s"),
            sql_step(
                "h_multi",
                "INSERT INTO public.tick(label) VALUES ('h1'); "
                "INSERT INTO public.tick(label) SELECT 'h2' FROM generate_series(1, 3)",
            ),
            sql_step("i_rows", "SELECT g FROM generate_series(1, 7) g"),
            sql_step("k_disabled", "INSERT INTO public.tick(label) VALUES ('k')", enabled=False),
        ],
    )
    run_now(db, jobid)
    logs = wait_finished(db, jobid)
    assert logs[0]["jlgstatus"] == "s"
    assert logs[0]["jlgduration"] is not None
    steps = {s["jstname"]: s for s in steplogs(db, jobid)}
    assert list(steps) == [
        "a_second_inserted",
        "b_first_inserted",
        "c_fail_i",
        "d_ok",
        "e_fail_s",
        "h_multi",
        "i_rows",
    ]
    assert (steps["c_fail_i"]["jslstatus"], steps["c_fail_i"]["jslresult"]) == ("i", -1)
    assert "division by zero" in steps["c_fail_i"]["jsloutput"]
    assert steps["d_ok"]["jsloutput"] == ""  # no stale error from the previous step
    assert (steps["e_fail_s"]["jslstatus"], steps["e_fail_s"]["jslresult"]) == ("s", -1)
    assert 'relation "no_such_table" does not exist' in steps["e_fail_s"]["jsloutput"]
    assert steps["h_multi"]["jslresult"] == 3
    assert steps["i_rows"]["jslresult"] == 7
    assert all(s["jslduration"] is not None for s in steps.values())
    ticks = [r["label"] for r in db.rows("SELECT label FROM public.tick ORDER BY id")]
    assert ticks[:2] == ["a", "b"]
    assert "k" not in ticks


def test_failing_step_with_onerror_f_stops_the_job(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(
        db,
        "failstop",
        [
            sql_step("a_fail", "SELECT 1/0"),
            sql_step("b_never", "INSERT INTO tick(label) VALUES ('x')"),
        ],
    )
    run_now(db, jobid)
    logs = wait_finished(db, jobid)
    assert logs[0]["jlgstatus"] == "f"
    assert [(s["jstname"], s["jslstatus"]) for s in steplogs(db, jobid)] == [("a_fail", "f")]


def test_job_without_steps_succeeds(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(db, "nosteps")
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"


def test_sql_step_targets(pg_server: Server, db: Database, agent: AgentProcess) -> None:
    other = f"{db.name}_other"
    pg_server.admin(f'CREATE DATABASE "{other}"')
    try:
        params = psycopg.conninfo.conninfo_to_dict(db.dsn)
        connstr = (
            f"host={params['host']} port={params['port']} user=postgres dbname={db.name} "
            "application_name=connstr_step"
        )
        jobid = make_job(
            db,
            "targets",
            [
                sql_step("a_other_db", "SELECT current_database()", dbname=other),
                sql_step(
                    "b_connstr",
                    "INSERT INTO public.tick(label) SELECT current_setting('application_name')",
                    connstr=connstr,
                ),
                sql_step("c_missing_db", "SELECT 1", dbname="no_such_database", onerror="i"),
            ],
        )
        run_now(db, jobid)
        assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"
        steps = {s["jstname"]: s for s in steplogs(db, jobid)}
        assert steps["a_other_db"]["jslstatus"] == "s"
        assert steps["b_connstr"]["jslstatus"] == "s"
        assert db.value("SELECT label FROM public.tick") == "connstr_step"
        missing = steps["c_missing_db"]
        assert (missing["jslstatus"], missing["jslresult"]) == ("i", -1)
        assert missing["jsloutput"].startswith("Couldn't get a connection to the database!")
        assert 'database "no_such_database" does not exist' in missing["jsloutput"]
    finally:
        pg_server.admin(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_steps_do_not_leak_session_state(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(
        db,
        "state",
        [
            sql_step(
                "a_set",
                "SET search_path = pg_catalog; SET application_name = 'leaked'; "
                "CREATE TEMP TABLE leftover (x int); SELECT pg_advisory_lock(42); BEGIN",
            ),
            sql_step(
                "b_check",
                "INSERT INTO public.tick(label) SELECT current_setting('search_path') || '|' || "
                "current_setting('application_name') || '|' || "
                "(to_regclass('pg_temp.leftover') IS NULL)::text || '|' || "
                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid())::text",
            ),
        ],
    )
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"
    assert db.value("SELECT label FROM public.tick") == '"$user", public||true|0'


def test_batch_steps(db: Database, agent: AgentProcess) -> None:
    jobid = make_job(
        db,
        "batch",
        [
            batch_step("a_stdout", "echo hello\necho world\r\nexit 0"),
            batch_step("b_stderr_exit3", "echo out\necho oops >&2\nexit 3", onerror="i"),
            batch_step(
                "c_shebang", "#!/usr/bin/env python3\nimport sys\nprint('py', sys.version_info[0])"
            ),
            batch_step("d_killed", "kill -9 $PPID", onerror="s"),
            batch_step("d_shell_killed", "kill -9 $$", onerror="s"),
            batch_step("e_where", "pwd; echo $0"),
            batch_step("f_not_found", "/no/such/command", onerror="i"),
            batch_step("g_bad_utf8", "printf 'ok\\377\\376 \\000 end'"),
        ],
    )
    run_now(db, jobid)
    assert wait_finished(db, jobid)[0]["jlgstatus"] == "s"
    steps = {s["jstname"]: s for s in steplogs(db, jobid)}
    assert (steps["a_stdout"]["jslstatus"], steps["a_stdout"]["jslresult"]) == ("s", 0)
    assert steps["a_stdout"]["jsloutput"] == "hello\nworld\n"
    b = steps["b_stderr_exit3"]
    assert (b["jslstatus"], b["jslresult"]) == ("i", 3)
    assert b["jsloutput"] == "out\n\nScript Error: \noops\n\n"
    assert steps["c_shebang"]["jsloutput"] == "py 3\n"
    assert (steps["d_killed"]["jslstatus"], steps["d_killed"]["jslresult"]) == ("s", -1)
    # like pgAgent's popen(): the script's own shell killed -> /bin/sh -c reports 128 + 9
    assert steps["d_shell_killed"]["jslresult"] == 137
    script = steps["e_where"]["jsloutput"].splitlines()[1]
    assert re.fullmatch(rf".*/pga_{jobid}_\d+_[^/]+/{jobid}_\d+\.scr", script), script
    assert not Path(script).parent.exists()  # the private temp dir is removed
    assert steps["f_not_found"]["jslresult"] == 127
    assert "not found" in steps["f_not_found"]["jsloutput"]
    assert steps["g_bad_utf8"]["jsloutput"].startswith("ok\ufffd\ufffd ")


def test_batch_steps_refused_with_no_batch_steps(
    db: Database, agent_factory: Factory, tmp_path: Path
) -> None:
    agent_factory("--no-batch-steps")
    marker = tmp_path / "should-not-exist"
    jobid = make_job(db, "nobatch", [batch_step("a", f"touch '{marker}'")])
    run_now(db, jobid)
    status = wait_finished(db, jobid)[0]["jlgstatus"]
    assert not marker.exists()  # the script never ran
    assert status == "f"
    step = steplogs(db, jobid)[0]
    assert "--no-batch-steps" in step["jsloutput"]
    assert step["jslresult"] == -1


def test_large_output_is_capped(db: Database, agent_factory: Factory) -> None:
    agent_factory("--max-output", "1000")
    jobid = make_job(db, "big", [batch_step("a", "head -c 5000000 /dev/zero | tr '\\0' x")])
    run_now(db, jobid)
    wait_finished(db, jobid)
    out = steplogs(db, jobid)[0]["jsloutput"]
    assert out.startswith("x" * 1000)
    assert "output truncated, 4999000 more bytes not stored" in out


def _max_overlap(db: Database) -> int:
    """The most runs whose [jlgstart, jlgstart + jlgduration] overlap at one instant (an end
    and a start at the same instant do not overlap: the slot was handed on)."""
    return int(
        db.value(
            "SELECT max(running) FROM (SELECT sum(d) OVER (ORDER BY t, d ROWS UNBOUNDED "
            "PRECEDING) AS running FROM (SELECT jlgstart AS t, 1 AS d FROM pgagent.pga_joblog "
            "UNION ALL SELECT jlgstart + jlgduration, -1 FROM pgagent.pga_joblog) e) x"
        )
    )


def test_herd_of_200_with_concurrency_16(db: Database, agent_factory: Factory) -> None:
    """200 jobs due at once all run, and never more than --max-concurrency at one instant."""
    agent_factory("--max-concurrency", "16")
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
        "SELECT 1, 'herd' || g FROM generate_series(1, 200) g"
    )
    # each run holds its slot for 0.2 s: runs must overlap, so the cap is what limits them
    db.execute(
        "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
        "SELECT jobid, 's', 's', 'SELECT pg_sleep(0.2); "
        "INSERT INTO public.tick(label) VALUES (''' || jobname || ''')', current_database() "
        "FROM pgagent.pga_job"
    )
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now()")
    wait_for(
        lambda: (
            db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus <> 'r'") == 200
            and db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL") == 0
        ),
        60,
        what="200 runs",
    )
    assert db.value("SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 's'") == 200
    assert db.value("SELECT count(DISTINCT label) FROM public.tick") == 200
    assert db.value("SELECT count(*) FROM public.tick") == 200
    overlap = _max_overlap(db)
    assert 1 < overlap <= 16, overlap


# -- release -------------------------------------------------------------------------------


def test_release_recomputes_the_next_run(db: Database, agent: AgentProcess) -> None:
    jobid = tick_job(db, "sched")
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    run_now(db, jobid)
    wait_finished(db, jobid)
    row = db.rows("SELECT jobnextrun, now() AS now FROM pgagent.pga_job WHERE jobid = %s", (jobid,))
    assert row[0]["jobnextrun"] > row[0]["now"]
    assert row[0]["jobnextrun"].second == 0


def test_release_of_an_impossible_schedule(db: Database, agent: AgentProcess) -> None:
    """pgAgent's release raises on 30 February and leaves the job claimed forever; here the
    engine knows such a schedule never runs: logs written, job released, no next run."""
    jobid = tick_job(db, "feb30")
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(FEB30_SCHEDULE, (jobid,))
    run_now(db, jobid)
    logs = wait_finished(db, jobid)
    assert logs[0]["jlgstatus"] == "s"
    assert logs[0]["jlgduration"] is not None
    assert db.value("SELECT jobnextrun FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) is None


def test_release_falls_back_when_the_triggers_fail(db: Database, agent: AgentProcess) -> None:
    """If writing the next run fails inside a trigger, the run's logs are still written and
    the job is still released (without a next run, and the agent says why)."""
    jobid = tick_job(db, "failing-release")
    db.execute(
        """CREATE FUNCTION public.refuse_next_run() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.jobagentid IS NOT NULL AND NEW.jobagentid IS NULL
             AND NEW.jobnextrun IS DISTINCT FROM 'infinity' THEN
            RAISE EXCEPTION 'date/time field value out of range: "2030-2-30 0:0"'
              USING ERRCODE = 'datetime_field_overflow';
          END IF;
          RETURN NEW;
        END $$"""
    )
    db.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON pgagent.pga_job "
        "FOR EACH ROW EXECUTE FUNCTION public.refuse_next_run()"
    )
    run_now(db, jobid)
    logs = wait_finished(db, jobid)
    assert logs[0]["jlgstatus"] == "s"
    assert logs[0]["jlgduration"] is not None
    assert db.value("SELECT jobnextrun::text FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) == (
        "infinity"
    )
    agent.wait_log("its next run cannot be computed")


# -- time zone -----------------------------------------------------------------------------

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30 all year: hours and half hours both shift


def _daily_at(db: Database, jobid: int, hour: int, minute: int) -> None:
    """A schedule firing every day at hour:minute, inserted by a UTC session: the extension's
    trigger computes the next run in UTC, so any other value is the agent's correction."""
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET timezone = 'UTC'")
        conn.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) VALUES "
            "(%s, 'daily', (SELECT array_agg(g = %s ORDER BY g) FROM generate_series(0, 59) g), "
            "(SELECT array_agg(g = %s ORDER BY g) FROM generate_series(0, 23) g))",
            (jobid, minute, hour),
        )


def _next_run(db: Database, jobid: int) -> datetime | None:
    value = db.value("SELECT jobnextrun FROM pgagent.pga_job WHERE jobid = %s", (jobid,))
    return value if value is None else cast(datetime, value)


def test_schedules_are_read_in_the_database_time_zone_by_default(
    db: Database, agent_factory: Factory
) -> None:
    db.execute(f"ALTER DATABASE \"{db.name}\" SET timezone = 'Asia/Kolkata'")
    agent = agent_factory()  # no --timezone
    assert "schedules are read in time zone Asia/Kolkata (database default (database))" in (
        agent.log()
    )
    # 09:00 in Kolkata is 03:30 UTC, on the next day that has a 09:00 still ahead
    nine = tick_job(db, "nine")
    _daily_at(db, nine, 9, 0)
    local = datetime.now(KOLKATA)
    expected = local.replace(hour=9, minute=0, second=0, microsecond=0)
    if expected <= local:
        expected += timedelta(days=1)
    assert expected.astimezone(UTC).time() == dt_time(3, 30)
    wait_for(lambda: _next_run(db, nine) == expected, 5, what=f"next run {expected}")
    # and it runs then: a schedule for the next whole minute of Kolkata's clock (minute
    # boundaries are the same in every zone; the hour and the half hour are not)
    soon = tick_job(db, "soon")
    due = (datetime.now(KOLKATA) + timedelta(seconds=65)).replace(second=0, microsecond=0)
    _daily_at(db, soon, due.hour, due.minute)
    wait_for(lambda: _next_run(db, soon) == due, 5, what=f"next run {due}")
    timeout = (due - datetime.now(KOLKATA)).total_seconds() + 15
    start = wait_finished(db, soon, timeout=timeout)[0]["jlgstart"]
    assert timedelta(0) <= start - due < timedelta(seconds=1), (start, due)
    assert _next_run(db, soon) == due + timedelta(days=1)  # Kolkata has no DST


# -- stop ----------------------------------------------------------------------------------


def _pgroup_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is left in process group ``pgid``."""
    ps = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True, check=True)
    return any(
        int(fields[0]) == pgid and not fields[1].startswith("Z")
        for fields in (line.split() for line in ps.stdout.splitlines())
    )


def test_sigterm_cancels_a_long_batch_step(db: Database, agent_factory: Factory) -> None:
    agent = agent_factory("--shutdown-timeout", "1")
    jobid = make_job(db, "long", [batch_step("sleep", "sleep 29.917")])
    run_now(db, jobid)
    wait_for(lambda: steplogs(db, jobid), 10, what="the step to start")
    pgid = int(
        wait_for(
            lambda: next(
                (
                    line.split()[1]
                    for line in subprocess.run(
                        ["ps", "-eo", "pid,pgid,args"], capture_output=True, text=True, check=True
                    ).stdout.splitlines()
                    if "sleep 29.917" in line and "/bin/sh" not in line
                ),
                None,
            ),
            5,
            what="the step's process",
        )
    )
    started = time.monotonic()
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0
    assert time.monotonic() - started < 10
    assert not _pgroup_alive(pgid)
    assert joblogs(db, jobid)[0]["jlgstatus"] == "d"
    assert steplogs(db, jobid)[0]["jslstatus"] == "d"
    assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) is None
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 0


@pytest.mark.parametrize(
    ("shutdown_timeout", "seconds", "second_signal", "status"),
    [
        pytest.param("0.5", 60, False, "d", id="long-step-cancelled-after-the-timeout"),
        pytest.param("20", 2, False, "s", id="short-job-finishes"),
        pytest.param("60", 60, True, "d", id="second-signal-cancels-at-once"),
    ],
)
def test_sigterm_with_a_running_sql_step(
    db: Database,
    agent_factory: Factory,
    shutdown_timeout: str,
    seconds: int,
    second_signal: bool,
    status: str,
) -> None:
    agent = agent_factory("--shutdown-timeout", shutdown_timeout)
    code = f"SELECT pg_sleep({seconds})"
    jobid = make_job(db, "sleeper", [sql_step("sleep", code)])
    active = "SELECT count(*) FROM pg_stat_activity WHERE query = %s"
    run_now(db, jobid)
    wait_for(lambda: db.value(active, (code,)), 10, what="the step to run")
    started = time.monotonic()
    agent.signal(signal.SIGTERM)
    if second_signal:
        agent.wait_log("stop requested")
        agent.signal(signal.SIGINT)
    assert agent.wait(30) == 0
    if status == "d":  # cancelled long before the step (or the shutdown timeout) would end
        assert time.monotonic() - started < 10
    assert joblogs(db, jobid)[0]["jlgstatus"] == status
    assert steplogs(db, jobid)[0]["jslstatus"] == status
    assert db.value(active, (code,)) == 0
    assert db.value("SELECT jobagentid FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) is None
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 0


# -- logs ----------------------------------------------------------------------------------


def test_log_lines_and_password_redaction(
    pg_server: Server, db: Database, agent_factory: Factory
) -> None:
    if pg_server.cluster is None:
        pytest.skip("needs the test cluster's TCP password login")
    from notifyagent.cluster import TCP_PASSWORD

    agent = agent_factory(dsn=pg_server.cluster.tcp_dsn(db.name))
    secret = "Wr0ng-Step-Pa55"
    jobid = make_job(
        db,
        "logged",
        [
            sql_step("a", "SELECT 1"),
            sql_step(
                "b",
                "SELECT 1",
                connstr=f"host=127.0.0.1 port={pg_server.cluster.port} user=postgres "
                f"dbname={db.name} password={secret}",
                onerror="i",
            ),
        ],
    )
    run_now(db, jobid)
    wait_finished(db, jobid)
    agent.wait_log("finished: status s")
    log = agent.log()
    # one line per run at INFO, with its start lag
    assert re.search(
        rf"job {jobid} \(logged\) finished: status s in [\d.]+s, started -?[\d.]+ ms after due",
        log,
    )
    assert f"job {jobid} (logged) started" not in log
    outputs = " ".join(s["jsloutput"] for s in steplogs(db, jobid))
    assert "password authentication failed" in outputs
    for text in (log, outputs):
        assert TCP_PASSWORD not in text
        assert secret not in text


# -- reconnect -----------------------------------------------------------------------------


def test_listener_killed_reconnects_and_resyncs(db: Database, agent: AgentProcess) -> None:
    old = db.value("SELECT jagpid FROM pgagent.pga_jobagent")
    jobid = tick_job(db, "after-kill")
    db.execute("SELECT pg_terminate_backend(%s)", (old,))
    # made due while the listener may be down: it must still run once the agent is back
    run_now(db, jobid)
    wait_finished(db, jobid)
    new = wait_for(
        lambda: db.value("SELECT jagpid FROM pgagent.pga_jobagent WHERE jagpid <> %s", (old,)), 10
    )
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1
    assert new != old
    agent.wait_log("lost the LISTEN connection")
    agent.wait_log("reconnected to the database")
