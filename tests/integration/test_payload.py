"""What the notifications carry, and what the schedule triggers store.

A recompute or schedule notification names the ``jobnextrun`` its transaction left, so the agent
can tell the value it is about from a later client write (a Run now) that it reads instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifyagent.cluster import free_port
from notifyagent.commands import next as next_command
from notifyagent.core.events import payload_items
from notifyagent.core.timetable import EPOCH, Stored
from notifyagent.db.schema import NOTIFYAGENT_SCHEMA_VERSION
from tests.agent import AgentProcess, joblogs, make_job, sql_step, tick_job, wait_finished
from tests.integration.test_triggers import install, listen
from tests.pg import Database, wait_for

Factory = Callable[..., AgentProcess]

#: pga_schedule arrays as SQL: minute %s of an hour about six hours from now
MINUTE_AT = "(SELECT array_agg(g = %s ORDER BY g) FROM generate_series(0, 59) g)"
HOURS_AHEAD = (
    "(SELECT array_agg(g = extract(hour FROM now() + interval '6 hours')::int ORDER BY g)"
    " FROM generate_series(0, 23) g)"
)


def engine_next(db: Database, jobid: int) -> dt.datetime | None:
    """The engine's next run of a job, computed in this process from its rows."""
    _, runs, _ = asyncio.run(next_command.job_runs(db.dsn, str(jobid), 1, None))
    return runs[0] if runs else None


def later_job(db: Database, name: str) -> int:
    """A one-step job whose only schedule fires hours from now."""
    jobid = tick_job(db, name)
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
        f"VALUES (%s, 'later', {MINUTE_AT}, {HOURS_AHEAD})",
        (jobid, 0),
    )
    return jobid


def change_schedule(conn: psycopg.Connection[tuple[object, ...]], jobid: int, minute: int) -> None:
    conn.execute(
        f"UPDATE pgagent.pga_schedule SET jscminutes = {MINUTE_AT} WHERE jscjobid = %s",
        (minute, jobid),
    )


def run_now(conn: psycopg.Connection[tuple[object, ...]], jobid: int) -> None:
    """pgAdmin's Run now."""
    conn.execute("UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %s", (jobid,))


def finished(db: Database, jobid: int) -> int:
    return sum(r["jlgstatus"] != "r" for r in joblogs(db, jobid))


def test_run_now_right_after_a_schedule_change_always_runs(
    db: Database, agent_factory: Factory
) -> None:
    """30 rounds of a schedule change and a Run now of the same job committed right after it
    (a script, or pgAdmin's dialogs used quickly): every Run now runs, exactly once. On a quiet
    machine timing alone rarely loses one; the next test forces the order that does."""
    agent = agent_factory()
    jobid = later_job(db, "raced")
    agent.wait_log(f"queue: job {jobid} due at")
    lost: list[int] = []
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        for n in range(1, 31):
            change_schedule(conn, jobid, 30 * (n % 2))
            run_now(conn, jobid)
            expected = n - len(lost)
            try:
                wait_finished(db, jobid, runs=expected, timeout=5)
            except AssertionError:
                lost.append(n)
            assert finished(db, jobid) <= expected, f"round {n} ran twice"
    assert lost == [], f"Run now lost in rounds {lost}"
    assert db.value("SELECT count(*) FROM public.tick") == 30


# -- the interleaving that lost a Run now, made deterministic ---------------------------------


def backend_pids(db: Database, listener: bool) -> list[int]:
    """The agent's LISTEN backend, or the backends of its pools."""
    agent_pid = db.value("SELECT jagpid FROM pgagent.pga_jobagent")
    rows = db.rows(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'notifyagent' AND (pid = %s) = %s",
        (agent_pid, listener),
    )
    return [int(r["pid"]) for r in rows]


def send(pids: Sequence[int], sig: signal.Signals) -> None:
    """SIGSTOP: the server backends stop as if the OS did not schedule them; SIGCONT resumes."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def notifications(port: int, kind: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "notifyagent_notifications_total" and s.labels.get("kind") == kind:
                return float(s.value)
    return 0.0


def test_run_now_read_before_its_notification_arrives_still_runs(
    db: Database, agent_factory: Factory
) -> None:
    """The agent handles a schedule change and reads the job's row after a Run now committed,
    but before the Run now's notification reached it (under load its LISTEN backend is simply
    scheduled later than its pool's). Stopped backends make that order certain: the pool's
    while the schedule change arrives, then the LISTEN backend's while the Run now commits.
    The stored value is not the one the schedule change's notification names, so it is a later
    write: the Run now runs, with the notification still undelivered."""
    if db.server.cluster is None:
        pytest.skip("needs the server's backends on this host (own test cluster)")
    port = free_port()
    agent = agent_factory("--metrics-address", str(port))
    jobid = later_job(db, "interleaved")
    agent.wait_log(f"queue: job {jobid} due at")
    schedule_seen = notifications(port, "schedule")
    job_seen = notifications(port, "job")
    listener, pool = backend_pids(db, True), backend_pids(db, False)
    try:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            send(pool, signal.SIGSTOP)
            change_schedule(conn, jobid, 30)
            wait_for(
                lambda: notifications(port, "schedule") > schedule_seen,
                10,
                what="the schedule change to reach the agent",
            )
            send(listener, signal.SIGSTOP)
            run_now(conn, jobid)
            send(pool, signal.SIGCONT)
        # the agent reads the Run now's value; its notification is held
        assert [r["jlgstatus"] for r in wait_finished(db, jobid, timeout=10)] == ["s"]
        assert notifications(port, "job") == job_seen
    finally:
        send(pool + listener, signal.SIGCONT)
    wait_for(
        lambda: notifications(port, "job") > job_seen, 10, what="the held notification to arrive"
    )
    assert finished(db, jobid) == 1


def test_schedule_change_held_back_until_after_the_release_still_applies(
    db: Database, agent_factory: Factory
) -> None:
    """The other order: the schedule changes while the job runs and its notification reaches
    the agent only after the run's release wrote the next run of the old schedule. The stored
    value is not the one the notification names, but the later write was the agent's own, so
    the engine's value for the new schedule replaces it."""
    if db.server.cluster is None:
        pytest.skip("needs the server's backends on this host (own test cluster)")
    agent = agent_factory()
    jobid = make_job(db, "slow", [sql_step("s", "SELECT pg_sleep(1)")])
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
        f"VALUES (%s, 'later', {MINUTE_AT}, {HOURS_AHEAD})",
        (jobid, 0),
    )
    agent.wait_log(f"queue: job {jobid} due at")
    old_schedule = engine_next(db, jobid)
    listener = backend_pids(db, True)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        run_now(conn, jobid)
        wait_for(
            lambda: db.value("SELECT jobagentid IS NOT NULL FROM pgagent.pga_job"),
            10,
            what="the run to start",
        )
        try:
            send(listener, signal.SIGSTOP)
            change_schedule(conn, jobid, 30)
            wait_finished(db, jobid)
            assert stored(db, jobid) == Stored(old_schedule)  # the release's, unaware
        finally:
            send(listener, signal.SIGCONT)
    new_schedule = engine_next(db, jobid)
    assert new_schedule != old_schedule
    wait_for(
        lambda: stored(db, jobid) == Stored(new_schedule),
        10,
        what="the next run of the new schedule",
    )


# -- the payloads ----------------------------------------------------------------------------


def payloads(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    return sorted(n.payload for n in conn.notifies(timeout=0.5))


def stored(db: Database, jobid: int) -> Stored:
    row = db.rows(
        "SELECT CASE WHEN isfinite(jobnextrun) THEN jobnextrun END AS at, "
        "coalesce(jobnextrun = 'infinity', false) AS never FROM pgagent.pga_job WHERE jobid = %s",
        (jobid,),
    )[0]
    return Stored(row["at"], row["never"])


def named(payload: str) -> list[tuple[int, Stored | None]]:
    """What the agent reads in a payload."""
    return payload_items(payload.partition(":")[2])


def test_recompute_and_schedule_notifications_name_the_next_run(db: Database) -> None:
    install(db)
    conn = listen(db)
    jobid = tick_job(db, "named")
    assert payloads(conn) == [f"job:{jobid}"]
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))",
        (jobid,),
    )
    value = stored(db, jobid)
    assert value.at is not None
    micros = (value.at - EPOCH) // dt.timedelta(microseconds=1)
    got = payloads(conn)
    # the recompute inside the schedule statement is reported by the statement, once
    assert got == [f"schedule:{jobid}={micros}"]
    assert [named(p) for p in got] == [[(jobid, value)]]
    # an exception that does not move the next run: the value it leaves all the same
    db.execute(
        "INSERT INTO pgagent.pga_exception (jexscid, jexdate) "
        "SELECT jscid, '2031-01-01' FROM pgagent.pga_schedule"
    )
    assert payloads(conn) == [f"exception:{jobid}={micros}"]
    # an explicit value (Run now): named too, so the agent can claim before reading the row
    db.execute("UPDATE pgagent.pga_job SET jobnextrun = now() + interval '1 h'")
    explicit = stored(db, jobid)
    assert explicit.at is not None
    got = payloads(conn)
    assert got == [f"job:{jobid}={(explicit.at - EPOCH) // dt.timedelta(microseconds=1)}"]
    assert [named(p) for p in got] == [[(jobid, explicit)]]
    # a date that does not exist: 'infinity'; no schedule left: NULL
    db.execute(
        "UPDATE pgagent.pga_schedule SET jscstart = '2030-01-15 00:00+00', "
        " jscmonthdays = (SELECT array_agg(g = 30 ORDER BY g) FROM generate_series(1, 32) g),"
        " jscmonths = (SELECT array_agg(g = 2 ORDER BY g) FROM generate_series(1, 12) g)"
    )
    assert payloads(conn) == [f"schedule:{jobid}=i"]
    assert named(f"schedule:{jobid}=i") == [(jobid, stored(db, jobid))]
    db.execute("DELETE FROM pgagent.pga_schedule")
    assert payloads(conn) == [f"schedule:{jobid}="]
    assert named(f"schedule:{jobid}=") == [(jobid, stored(db, jobid))]
    conn.close()


def test_bulk_recompute_sends_small_notifications_naming_every_value(db: Database) -> None:
    install(db)
    db.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname, jobenabled) "
        "SELECT 1, 'bulk' || g, false FROM generate_series(1, 2000) g"
    )
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "SELECT jobid, 's', array_fill(true, ARRAY[60]) FROM pgagent.pga_job"
    )
    conn = listen(db)
    db.execute("UPDATE pgagent.pga_job SET jobenabled = true")  # 2000 recomputes
    got = payloads(conn)
    assert all(p.startswith("recompute:") and len(p.encode()) < 8000 for p in got)
    assert len(got) <= 10
    sent = {job_id: value for p in got for job_id, value in named(p)}
    rows = db.rows("SELECT jobid, jobnextrun FROM pgagent.pga_job")
    assert sent == {r["jobid"]: Stored(r["jobnextrun"]) for r in rows}
    conn.close()


#: The last commit whose sql/install.sql is version 2.
V2_COMMIT = "5e0cde580b8e0d63d00902900b78e33b09bf9653"


def test_serve_upgrades_an_installed_version_2(db: Database, agent_factory: Factory) -> None:
    repo = Path(__file__).resolve().parents[2]
    try:
        v2 = subprocess.run(
            ["git", "show", f"{V2_COMMIT}:sql/install.sql"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the version 2 install script is not in this checkout's history")
    with psycopg.connect(db.dsn) as conn:
        conn.execute(v2.encode())
    assert db.value("SELECT notifyagent.version()") == 2
    jobid = later_job(db, "upgraded")
    agent = agent_factory()
    upgraded = f"upgraded notifyagent triggers from version 2 to {NOTIFYAGENT_SCHEMA_VERSION}"
    assert upgraded in agent.log()
    assert db.value("SELECT notifyagent.version()") == NOTIFYAGENT_SCHEMA_VERSION == 6
    assert db.value("SELECT to_regclass('notifyagent.retry') IS NOT NULL")  # new in version 6
    script = (repo / "sql" / "install.sql").read_text()
    functions = db.rows(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'notifyagent'::regnamespace"
    )
    assert {r["proname"] for r in functions} == set(
        re.findall(r"CREATE OR REPLACE FUNCTION notifyagent\.(\w+)", script)
    )
    triggers = db.rows("SELECT tgname FROM pg_trigger WHERE tgname LIKE '%notifyagent%'")
    assert sorted(r["tgname"] for r in triggers) == sorted(
        re.findall(r"CREATE OR REPLACE TRIGGER (\w+)", script)
    )
    # the upgraded triggers name the next run, and the agent acts on them
    conn = listen(db)
    with psycopg.connect(db.dsn, autocommit=True) as writer:
        change_schedule(writer, jobid, 30)
        run_now(writer, jobid)
    assert [r["jlgstatus"] for r in wait_finished(db, jobid)] == ["s"]
    assert f"schedule:{jobid}=" in " ".join(payloads(conn))
    conn.close()


# -- schedules with NULL elements -------------------------------------------------------------

#: jschours: 09:00-09:59 only (a NULL in an array with nothing selected is what never returns)
NINE = "(SELECT array_agg(g = 9 ORDER BY g) FROM generate_series(0, 23) g)"


def test_schedule_with_null_elements_is_stored_with_false(db: Database) -> None:
    """pgagent.pga_next_schedule() searches forever for a NULL in an array with nothing
    selected, so saving such a schedule would hang; it is stored with false (what the engine
    reads) and the client is told."""
    install(db)
    jobid = tick_job(db, "nulls")
    warnings: list[tuple[str | None, str, str]] = []  # severity, message, hint
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.add_notice_handler(
            lambda d: warnings.append((d.severity, d.message_primary or "", d.message_hint or ""))
        )
        conn.execute("SET statement_timeout = '5s'")
        jscid = conn.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
            f"VALUES (%s, 'nulls', array_fill(NULL::bool, ARRAY[60]), {NINE}) RETURNING jscid",
            (jobid,),
        ).fetchone()
        assert jscid is not None
        conn.execute("UPDATE pgagent.pga_schedule SET jscweekdays[3] = NULL")
    row = db.rows("SELECT * FROM pgagent.pga_schedule WHERE jscid = %s", (jscid[0],))[0]
    assert row["jscminutes"] == [False] * 60
    assert row["jscweekdays"] == [False] * 7
    assert row["jschours"] == [h == 9 for h in range(24)]
    # every minute of 09:00-09:59, as the engine reads it
    assert stored(db, jobid).at == engine_next(db, jobid)
    assert [w[0] for w in warnings] == ["WARNING", "WARNING"]
    (_, first, hint), (_, second, _) = warnings
    assert f"schedule 'nulls' (jscid {jscid[0]}) of job {jobid}" in first
    assert "NULL elements in jscminutes stored as false" in first
    assert "NULL elements in jscweekdays stored as false" in second
    assert "true or false" in hint


def test_enabling_a_job_with_an_older_null_schedule_does_not_hang(db: Database) -> None:
    """A row stored before the trigger existed (the job disabled, so nothing computed it):
    enabling the job computes its next run with NULL read as false."""
    jobid = tick_job(db, "older", enabled=False)
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
        f"VALUES (%s, 'older', array_fill(NULL::bool, ARRAY[60]), {NINE})",
        (jobid,),
    )
    install(db)
    assert db.value("SELECT array_position(jscminutes, NULL) FROM pgagent.pga_schedule") == 1
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")
        conn.execute("UPDATE pgagent.pga_job SET jobenabled = true WHERE jobid = %s", (jobid,))
    assert stored(db, jobid).at == engine_next(db, jobid)
