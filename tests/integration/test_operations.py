"""Metrics, health endpoints and JSON logs of a running agent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifyagent.cluster import Cluster, free_port
from notifyagent.obs.metrics import HealthServer, Metrics
from tests.agent import AgentProcess, batch_step, make_job, run_now, sql_step, wait_finished
from tests.cli import run_cli
from tests.pg import Database, wait_for

Factory = Callable[..., AgentProcess]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback test URL)
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_series_do_not_grow_with_the_number_of_jobs(db: Database, agent_factory: Factory) -> None:
    """No label names a job: after 10 jobs ran and after 300 more ran (of the same kinds and
    outcomes), /metrics exports the same series."""
    port = free_port()
    agent_factory("--metrics-address", str(port))
    base = f"http://127.0.0.1:{port}"

    def run_jobs(first: int, n: int) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        db.execute(
            "INSERT INTO pgagent.pga_job (jobjclid, jobname) "
            "SELECT 1, 'series' || g FROM generate_series(%s::int, %s::int) g",
            (first, first + n - 1),
        )
        db.execute(
            "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) "
            "SELECT jobid, 's', 's', 'SELECT 1', current_database() FROM pgagent.pga_job j "
            "WHERE NOT EXISTS (SELECT FROM pgagent.pga_jobstep s WHERE s.jstjobid = j.jobid)"
        )
        total = first + n - 1  # every job runs once
        db.execute(
            "UPDATE pgagent.pga_job SET jobnextrun = now() WHERE NOT EXISTS "
            "(SELECT FROM pgagent.pga_joblog WHERE jlgjobid = jobid)"
        )
        wait_for(
            lambda: (
                samples(get(f"{base}/metrics")[1]).get(
                    ("notifyagent_runs_finished_total", (("status", "s"),))
                )
                == total
            ),
            60,
            what=f"{total} runs in /metrics",
        )
        return set(samples(get(f"{base}/metrics")[1]))

    few = run_jobs(1, 10)
    many = run_jobs(11, 300)
    assert len(many) == len(few), sorted(many ^ few)
    assert many == few
    assert not [key for key in many if any(name == "job" for name, _ in key[1])]


def test_metrics_move_during_runs(db: Database, agent_factory: Factory) -> None:
    port = free_port()
    agent_factory("--metrics-address", str(port))
    base = f"http://127.0.0.1:{port}"
    assert get(f"{base}/healthz")[0] == 200
    code, body = get(f"{base}/readyz")
    assert code == 200
    assert body.startswith("ready")
    before = samples(get(f"{base}/metrics")[1])
    assert before[("notifyagent_connected", ())] == 1.0
    assert before[("notifyagent_runs_started_total", ())] == 0
    jobid = make_job(
        db, "measured", [sql_step("a", "SELECT 1"), batch_step("b", "exit 3", onerror="i")]
    )
    run_now(db, jobid)
    wait_finished(db, jobid)

    def after() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = samples(get(f"{base}/metrics")[1])
        key = ("notifyagent_runs_finished_total", (("status", "s"),))
        return found if found.get(key) == 1.0 else None

    found = wait_for(after, 5, what="the finished run in /metrics")
    assert found[("notifyagent_runs_started_total", ())] == 1.0
    assert found[("notifyagent_run_duration_seconds_count", (("status", "s"),))] == 1.0
    assert found[("notifyagent_start_lag_seconds_count", ())] == 1.0
    assert (
        found[("notifyagent_step_duration_seconds_count", (("kind", "sql"), ("status", "s")))] == 1
    )
    assert (
        found[("notifyagent_step_duration_seconds_count", (("kind", "batch"), ("status", "i")))]
        == 1
    )
    assert found[("notifyagent_notifications_total", (("kind", "job"),))] >= 1
    assert found[("notifyagent_running_jobs", ())] == 0
    assert get(f"{base}/nope")[0] == 404


def test_json_logs_carry_stable_fields(db: Database, agent_factory: Factory) -> None:
    agent = agent_factory("--log-format", "json")
    jobid = make_job(db, "shipped", [sql_step("a", "SELECT 1/0", onerror="i")])
    run_now(db, jobid)
    wait_finished(db, jobid)
    agent.wait_log('"status": "s"')
    records = [json.loads(line)["record"] for line in agent.log().splitlines() if line.strip()]
    failed = next(r for r in records if "failed (on error 'i')" in r["message"])
    assert failed["extra"]["step"] == "a"
    assert failed["extra"]["status"] == "i"
    finished = next(r for r in records if "finished: status s" in r["message"])
    assert finished["extra"]["job_id"] == jobid
    assert finished["extra"]["job_name"] == "shipped"
    assert isinstance(finished["extra"]["lag_ms"], float)
    assert finished["extra"]["status"] == "s"
    assert finished["extra"]["duration_s"] >= 0
    assert finished["level"]["name"] == "INFO"


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    with Cluster() as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgagent")
        yield cluster


@pytest.mark.slow
def test_readyz_follows_the_database(own_cluster: Cluster, agent_factory: Factory) -> None:
    port = free_port()
    agent_factory("--metrics-address", f"127.0.0.1:{port}", dsn=own_cluster.dsn())
    url = f"http://127.0.0.1:{port}/readyz"
    assert get(url)[0] == 200
    own_cluster.stop()

    def unready() -> str | None:
        code, body = get(url)
        return body if code == 503 else None

    assert "not connected" in wait_for(unready, 15, what="/readyz to say unready")
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200  # alive, just not ready
    own_cluster.start()
    wait_for(lambda: get(url)[0] == 200, 30, what="ready again")


def _waiting_on_lock(db: Database, text: str) -> bool:
    return bool(
        db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            (f"%{text}%",),
        )
    )


def _answer(url: str) -> tuple[int, str] | None:
    """``get``, or None while nothing listens on the port yet."""
    try:
        return get(url)
    except urllib.error.URLError:
        return None


def test_readyz_while_listening_is_lost(db: Database, agent_factory: Factory) -> None:
    """The LISTEN connection is killed and its replacement is held up (a lock on pga_jobagent
    keeps it from registering): /readyz says not ready for as long as nobody listens, /healthz
    stays ok, and /readyz is ready again under the new agent id once the listener is back."""
    port = free_port()
    agent_factory("--metrics-address", str(port))
    base = f"http://127.0.0.1:{port}"
    assert get(f"{base}/readyz")[0] == 200
    old = int(db.value("SELECT jagpid FROM pgagent.pga_jobagent"))
    with psycopg.connect(db.dsn) as blocker:
        blocker.execute("LOCK TABLE pgagent.pga_jobagent IN ACCESS EXCLUSIVE MODE")
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        wait_for(
            lambda: _waiting_on_lock(db, "INSERT INTO pgagent.pga_jobagent"),
            10,
            what="the new listener to wait in its registration",
        )
        code, body = get(f"{base}/readyz")
        assert (code, body) == (503, "not connected to the database\n")
        assert get(f"{base}/healthz") == (200, "ok\n")
        blocker.rollback()

    def ready() -> str | None:
        code, body = get(f"{base}/readyz")
        return body if code == 200 else None

    body = wait_for(ready, 10, what="ready again")
    new = int(db.value("SELECT jagpid FROM pgagent.pga_jobagent"))
    assert new != old
    assert body.startswith(f"ready: agent {new},")


def test_readyz_until_the_queue_is_loaded(db: Database, agent_factory: Factory) -> None:
    """Connected and registered, but the first load of the schedules is held up (a lock on
    pga_schedule): /readyz says the queue is not loaded yet, until it is."""
    assert run_cli("install", "--dsn", db.dsn).code == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}/readyz"
    with psycopg.connect(db.dsn) as blocker:
        blocker.execute("LOCK TABLE pgagent.pga_schedule IN ACCESS EXCLUSIVE MODE")
        agent = agent_factory("--metrics-address", str(port), wait=False)
        agent.wait_log("registered as agent")
        wait_for(
            lambda: _waiting_on_lock(db, "pgagent.pga_schedule"),
            10,
            what="the queue load to wait on pga_schedule",
        )
        assert _answer(url) == (503, "queue not loaded yet\n")
        assert "queue loaded" not in agent.log()
        blocker.rollback()
    agent.wait_log("queue loaded")
    code, body = get(url)
    assert code == 200
    assert body.startswith("ready: agent ")


def test_healthz_says_when_the_event_loop_is_stuck() -> None:
    """/healthz asks the agent's event loop to answer within 2 s. A stall cannot be caused
    honestly from outside a running agent (job steps run in other processes or on the
    database, and SIGSTOP would stop the HTTP thread too), so this runs the real HTTP server
    next to a real event loop in this process and blocks that loop with a synchronous sleep,
    as a blocking call in the agent would."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = HealthServer(("127.0.0.1", 0), Metrics(), loop, lambda: (True, "ready"))
    server.start()
    try:
        host, port = server.address
        base = f"http://{host}:{port}"
        assert get(f"{base}/healthz") == (200, "ok\n")
        loop.call_soon_threadsafe(time.sleep, 4)  # the loop runs nothing else for 4 s
        began = time.monotonic()
        assert get(f"{base}/healthz") == (503, "event loop stuck\n")
        assert time.monotonic() - began < 3.5  # answered after the 2 s wait, not the 4 s stall
        assert get(f"{base}/readyz")[0] == 200  # the HTTP thread itself is not stuck
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, 10, what="the loop to answer again")
    finally:
        server.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
