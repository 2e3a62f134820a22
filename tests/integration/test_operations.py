"""Metrics, health endpoints and JSON logs of a running agent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifyagent.cluster import Cluster, free_port
from tests.agent import AgentProcess, batch_step, make_job, run_now, sql_step, wait_finished
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
    assert ("notifyagent_runs_started_total", (("job", "measured"),)) not in before
    jobid = make_job(
        db, "measured", [sql_step("a", "SELECT 1"), batch_step("b", "exit 3", onerror="i")]
    )
    run_now(db, jobid)
    wait_finished(db, jobid)

    def after() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = samples(get(f"{base}/metrics")[1])
        key = ("notifyagent_runs_finished_total", (("job", "measured"), ("status", "s")))
        return found if found.get(key) == 1.0 else None

    found = wait_for(after, 5, what="the finished run in /metrics")
    assert found[("notifyagent_runs_started_total", (("job", "measured"),))] == 1.0
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
    started = next(r for r in records if r["message"].startswith(f"job {jobid} (shipped) started"))
    assert started["extra"]["job_id"] == jobid
    assert started["extra"]["job_name"] == "shipped"
    assert isinstance(started["extra"]["lag_ms"], float)
    failed = next(r for r in records if "failed (on error 'i')" in r["message"])
    assert failed["extra"]["step"] == "a"
    assert failed["extra"]["status"] == "i"
    finished = next(r for r in records if "finished: status s" in r["message"])
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
