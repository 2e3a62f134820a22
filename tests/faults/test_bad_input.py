"""Bad input: each gives a clear log line naming the job and step and the cause, the right
statuses, and the agent runs on. (Covered in tests/integration/test_serve.py and not repeated
here: a missing database, a wrong password in jstconnstr, batch command not found, batch
output that is not UTF-8, --max-output, a never-ending step cancelled at shutdown, the release
of an impossible schedule, jobhostagent naming another station.)"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from notifyagent.cluster import TCP_PASSWORD, free_port
from tests.agent import (
    AgentProcess,
    batch_step,
    joblogs,
    make_job,
    run_now,
    sql_step,
    steplogs,
    tick_job,
    wait_finished,
)
from tests.faults.conftest import (
    COLLECTED_LOGS,
    SECRETS,
    AgentStarter,
    Measure,
    leaked_secrets,
    log_lines,
)
from tests.pg import Database, Server, new_database, wait_for

FEB30 = (
    "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscmonthdays, jscmonths) VALUES (%s, "
    "'feb30', (SELECT array_agg(g = 30 ORDER BY g) FROM generate_series(1, 32) g), "
    "(SELECT array_agg(g = 2 ORDER BY g) FROM generate_series(1, 12) g))"
)
MB = 1024 * 1024


def _probe(db: Database, name: str) -> None:
    """A job made due now runs: the agent is alive and listening."""
    jobid = tick_job(db, name)
    run_now(db, jobid)
    assert [r["jlgstatus"] for r in wait_finished(db, jobid)] == ["s"]


def _step_line(log: str, jobid: int, step: dict[str, Any]) -> str:
    """The agent's log line about a failed step: it names the job and the step."""
    found = [
        line
        for line in log.splitlines()
        if f"job {jobid} " in line
        and f"step {step['jsljstid']} ({step['jstname']})" in line
        and "failed" in line
    ]
    assert len(found) == 1, (step["jstname"], [f[:300] for f in found])
    return found[0]


@dataclass
class BadRun:
    jobid: int
    steps: dict[str, dict[str, Any]]
    log: str


#: What each bad step's output, and the agent's log line about it, must say.
CAUSES = {
    "a_syntax": 'syntax error at or near "SELEC"',
    "b_unreachable": "Connection refused",
    "c_url_wrong_password": "password authentication failed",
    "d_right_password_missing_db": 'database "no_such_db" does not exist',
    "e_malformed_connstr": "unterminated quoted string",
    "f_empty_sql": "empty query",
    "i_5mb_sql_error": "ERROR:  zzzz",
}


@pytest.fixture(scope="module")
def bad_run(pg_server: Server) -> Iterator[BadRun]:
    """One agent runs one job whose steps are all bad in a different way (each on-error 'i',
    so every step runs); then a probe job shows the agent still works."""
    if pg_server.cluster is None:
        pytest.skip("needs the test cluster's TCP password login")
    port = pg_server.cluster.port
    closed = free_port()  # nobody listens there
    url_secret, kv_secret, bad_secret = "Url-Pa55-w0rd", "Kv-Pa55-w0rd", "Br0ken-Pa55"
    SECRETS.update({url_secret, kv_secret, bad_secret})
    steps = [
        sql_step("a_syntax", "SELEC 1", onerror="i"),
        sql_step(
            "b_unreachable",
            "SELECT 1",
            connstr=f"host=127.0.0.1 port={closed} user=postgres password={kv_secret} "
            "connect_timeout=5",
            onerror="i",
        ),
        sql_step(
            "c_url_wrong_password",
            "SELECT 1",
            connstr=f"postgresql://postgres:{url_secret}@127.0.0.1:{port}/postgres",
            onerror="i",
        ),
        sql_step(
            "d_right_password_missing_db",
            "SELECT 1",
            connstr=f"host=127.0.0.1 port={port} user=postgres dbname=no_such_db "
            f"password={TCP_PASSWORD}",
            onerror="i",
        ),
        sql_step(
            "e_malformed_connstr",
            "SELECT 1",
            connstr=f"host=127.0.0.1 password={bad_secret} port='unterminated",
            onerror="i",
        ),
        sql_step("f_empty_sql", "", onerror="i"),
        batch_step("g_empty_batch", ""),
        batch_step("h_50mb_stdout", "head -c 52428800 /dev/zero | tr '\\0' y", onerror="i"),
        sql_step(
            "i_5mb_sql_error",
            "DO $$ BEGIN RAISE EXCEPTION '%', repeat('z', 5242880); END $$",
            onerror="i",
        ),
        sql_step("j_still_runs", "INSERT INTO public.tick(label) VALUES ('last step')"),
    ]
    databases = new_database(pg_server, prefix="bad")
    db = next(databases)
    agent = AgentProcess(pg_server.cluster.tcp_dsn(db.name), (), station="bad-input")
    try:
        agent.start()
        jobid = make_job(db, "bad-steps", steps)
        run_now(db, jobid)
        logs = wait_finished(db, jobid, timeout=60)
        assert [r["jlgstatus"] for r in logs] == ["s"]  # every failing step is on-error 'i'
        _probe(db, "after-bad-steps")
        got = {str(s["jstname"]): s for s in steplogs(db, jobid)}
        assert list(got) == [s.name for s in steps]
        assert db.value("SELECT label FROM public.tick ORDER BY id LIMIT 1") == "last step"
        assert agent.stop() == 0, agent.log()[-4000:]
        assert "Traceback" not in agent.log()
        yield BadRun(jobid, got, agent.log())
    finally:
        COLLECTED_LOGS.append(("bad_run", agent.log()))
        agent.close()
        with contextlib.suppress(StopIteration):
            next(databases)


def test_bad_steps_statuses_and_outputs(bad_run: BadRun) -> None:
    status = {name: (s["jslstatus"], s["jslresult"]) for name, s in bad_run.steps.items()}
    assert status == {
        "a_syntax": ("i", -1),
        "b_unreachable": ("i", -1),
        "c_url_wrong_password": ("i", -1),
        "d_right_password_missing_db": ("i", -1),
        "e_malformed_connstr": ("i", -1),
        "f_empty_sql": ("i", -1),  # pgAgent: EMPTY_QUERY counts as a failure
        "g_empty_batch": ("s", 0),  # an empty script exits 0 under /bin/sh
        "h_50mb_stdout": ("s", 0),
        "i_5mb_sql_error": ("i", -1),
        "j_still_runs": ("s", 1),
    }, status
    out = {name: str(s["jsloutput"]) for name, s in bad_run.steps.items()}
    for name, cause in CAUSES.items():
        assert cause in out[name], (name, out[name][:300])
    for name in ("b_unreachable", "c_url_wrong_password", "d_right_password_missing_db"):
        assert out[name].startswith("Couldn't get a connection to the database!"), out[name]
    assert out["g_empty_batch"] == ""


def test_bad_steps_leak_no_password(bad_run: BadRun) -> None:
    for name, s in bad_run.steps.items():
        assert not leaked_secrets(str(s["jsloutput"])), name
    assert not leaked_secrets(bad_run.log)
    assert "password=********" in bad_run.log


def test_bad_steps_log_lines_name_job_step_and_cause(bad_run: BadRun) -> None:
    for name, cause in CAUSES.items():
        line = _step_line(bad_run.log, bad_run.jobid, bad_run.steps[name])
        assert cause in line, (name, line[:300])


def test_50mb_batch_output_is_capped_at_1mb(bad_run: BadRun) -> None:
    big = str(bad_run.steps["h_50mb_stdout"]["jsloutput"])
    assert big.startswith("y" * 1000)
    assert len(big.encode()) < MB + 200
    assert big.endswith(
        f"\n[notifyagent: output truncated, {50 * MB - MB} more bytes not stored (--max-output)]"
    )


def test_5mb_sql_error_is_capped_at_1mb(bad_run: BadRun) -> None:
    out = str(bad_run.steps["i_5mb_sql_error"]["jsloutput"])
    assert len(out.encode()) < MB + 200, len(out.encode())
    assert "output truncated" in out
    # no log line carries a whole huge output either
    assert max(len(line) for line in bad_run.log.splitlines()) < 10_000


# -- the configuration changes under a running job ---------------------------------------------


def test_job_deleted_disabled_or_unscheduled_while_it_runs(
    db: Database, agents: AgentStarter
) -> None:
    """Deleting the job, disabling it or deleting its schedule while it runs: the run goes on
    (pgAgent does not stop a running job), its rows are right afterwards, nothing runs again,
    and the agent runs on."""
    agent = agents(db.dsn)
    sleep = "SELECT pg_sleep(1)"
    deleted = make_job(db, "deleted", [sql_step("s", sleep)])
    disabled = make_job(db, "disabled", [sql_step("s", sleep)])
    unscheduled = make_job(db, "unscheduled", [sql_step("s", sleep)])
    db.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes) "
        "VALUES (%s, 'every minute', array_fill(true, ARRAY[60]))",
        (unscheduled,),
    )
    agent.wait_log(f"queue: job {unscheduled} due at")  # Run now only after that (BUG-9)
    run_now(db, deleted, disabled, unscheduled)
    wait_for(
        lambda: db.value("SELECT count(*) FROM pgagent.pga_jobsteplog WHERE jslstatus = 'r'") == 3,
        10,
        what="three running steps",
    )
    db.execute("DELETE FROM pgagent.pga_job WHERE jobid = %s", (deleted,))
    db.execute("UPDATE pgagent.pga_job SET jobenabled = false WHERE jobid = %s", (disabled,))
    db.execute("DELETE FROM pgagent.pga_schedule WHERE jscjobid = %s", (unscheduled,))
    for j in (disabled, unscheduled):
        assert [r["jlgstatus"] for r in wait_finished(db, j)] == ["s"]
    agent.wait_log(f"job {deleted} (deleted) finished")
    # the deleted job's logs went with it (ON DELETE CASCADE); nothing is left claimed
    assert joblogs(db, deleted) == []
    assert db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL") == 0
    rows = {
        r["jobid"]: r for r in db.rows("SELECT jobid, jobenabled, jobnextrun FROM pgagent.pga_job")
    }
    assert rows[disabled]["jobenabled"] is False
    assert rows[unscheduled]["jobnextrun"] is None  # no schedule left: no next run
    assert "Traceback" not in agent.log()
    assert "internal error" not in agent.log()
    _probe(db, "after-changes")
    assert len(joblogs(db, disabled)) == 1
    assert len(joblogs(db, unscheduled)) == 1


def test_impossible_schedule_date_saved_while_the_agent_runs(
    db: Database, agents: AgentStarter
) -> None:
    """A schedule on 30 February is saved (pgAdmin's INSERT succeeds), the job never runs, the
    agent says why (naming the job and its schedule) and runs on."""
    agent = agents(db.dsn)
    jobid = tick_job(db, "feb30")
    db.execute(FEB30, (jobid,))  # through the triggers, as pgAdmin saves it
    _probe(db, "after-feb30")
    assert joblogs(db, jobid) == []
    assert db.value("SELECT jobnextrun FROM pgagent.pga_job WHERE jobid = %s", (jobid,)) is None
    assert "Traceback" not in agent.log()
    agent.wait_log(f"job {jobid} (feb30)", timeout=2)
    assert any("schedule" in line for line in log_lines(agent, f"job {jobid} (feb30)"))


# -- notifications -------------------------------------------------------------------------


def test_foreign_and_malformed_notifications(db: Database, agents: AgentStarter) -> None:
    """Anything another client sends on the agent's channel is ignored with one warning each
    (payload shown, cut to 200 characters); well-formed ids of unknown jobs are harmless."""
    agent = agents(db.dsn)
    malformed = [
        "hello",
        "job:abc",
        "job:",
        "schedule:1,x",
        "recompute:-",
        '{"json": true}',
        "x" * 7000,
    ]
    harmless = ["job:999999", "ping:1:1", "resync"]
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        for payload in [*malformed, *harmless]:
            conn.execute("SELECT pg_notify('notifyagent', %s)", (payload,))
    wait_for(
        lambda: len(log_lines(agent, "ignored a malformed notification")) >= len(malformed),
        10,
        what="a warning per malformed payload",
    )
    warnings = log_lines(agent, "ignored a malformed notification")
    assert len(warnings) == len(malformed), warnings
    assert any("'x" + "x" * 199 + "'" in w for w in warnings)
    assert all(len(w) < 500 for w in warnings)
    _probe(db, "after-notifications")
    assert agent.proc is not None
    assert agent.proc.poll() is None


# -- the extension goes away ---------------------------------------------------------------


def test_pgagent_extension_dropped_and_recreated(
    db: Database, agents: AgentStarter, measure: Measure
) -> None:
    """DROP EXTENSION pgagent under a busy agent: a clear error, retries with backoff (a few
    lines, not a flood), no crash; CREATE EXTENSION again: the agent reinstalls its triggers,
    registers again and runs jobs."""
    agent = agents(db.dsn, "--liveness-interval", "1")
    _probe(db, "before-drop")
    busy = make_job(db, "busy", [sql_step("s", "SELECT pg_sleep(1)")])
    run_now(db, busy)
    wait_for(
        lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sl%'"),
        10,
        what="a running step",
    )
    db.execute("DROP EXTENSION pgagent CASCADE")
    dropped = time.monotonic()
    time.sleep(5)  # the agent keeps trying meanwhile
    assert agent.proc is not None
    assert agent.proc.poll() is None
    lines = agent.log().splitlines()
    since_drop = lines[[i for i, line in enumerate(lines) if "(busy) starts" in line][-1] + 1 :]
    noisy = [line for line in since_drop if " WARNING " in line or " ERROR " in line]
    assert any("CREATE EXTENSION pgagent" in line for line in noisy), noisy
    assert len(noisy) <= 8, noisy  # backoff, and once per state change
    assert "Traceback" not in agent.log()
    db.execute("CREATE EXTENSION pgagent")
    recreated = time.monotonic()
    jobid = tick_job(db, "after-recreate")
    run_now(db, jobid)
    wait_finished(db, jobid, timeout=30)
    measure("extension re-created: job ran after", time.monotonic() - recreated)
    assert db.value("SELECT count(*) FROM pgagent.pga_jobagent") == 1
    assert (
        db.value(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'pgagent.pga_job'::regclass "
            "AND tgname LIKE 'notifyagent%%'"
        )
        > 0
    )
    assert time.monotonic() - dropped < 60
    assert agent.stop() == 0
    assert "waiting up to 30.0s for 0 running job(s)" in agent.log()  # no job left behind
    assert "Traceback" not in agent.log()
