"""The alert decisions and message (pure core) and the delivery's queue (real loopback HTTP)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from notifyagent.core import secrets
from notifyagent.core.alert_text import DEFAULT_EVENTS, OUTPUT_CAP, Alert, Event, StepFacts
from notifyagent.core.alerts import (
    JobRoutes,
    Overdue,
    Routes,
    RunFacts,
    deliveries,
    destinations,
    missed_alert,
    missed_reason,
    parse_events,
    parse_urls,
    redact,
    run_alert,
    run_events,
    should_disable,
)
from notifyagent.core.annotations import Texts, parse
from notifyagent.core.model import RunStatus
from notifyagent.obs.alerts import Outbox
from notifyagent.obs.metrics import Metrics
from tests.receivers import Hook, webhook

AT = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def facts(status: RunStatus, previous: str | None = None, failures: int = 0) -> RunFacts:
    step = StepFacts("load", "f", -1, "ERROR: boom password=hunter2\n" + "x" * 5000)
    return RunFacts(7, "etl", 99, status, AT, 1.5, previous, failures, True, step)


def test_which_events_a_finished_run_makes() -> None:
    assert run_events(facts(RunStatus.FAILED)) == [Event.FAILED]
    assert run_events(facts(RunStatus.INTERNAL)) == [Event.FAILED]
    assert run_events(facts(RunStatus.ABORTED)) == [Event.ABORTED]
    assert run_events(facts(RunStatus.SUCCEEDED, "s")) == [Event.SUCCEEDED]
    assert run_events(facts(RunStatus.SUCCEEDED, None)) == [Event.SUCCEEDED]
    for before in ("f", "d", "i"):
        assert run_events(facts(RunStatus.SUCCEEDED, before)) == [
            Event.RECOVERED,
            Event.SUCCEEDED,
        ]


def test_auto_disable_after_max_failures_in_a_row() -> None:
    assert not should_disable(facts(RunStatus.FAILED, failures=2), None)
    assert not should_disable(facts(RunStatus.FAILED, failures=2), 3)
    assert should_disable(facts(RunStatus.FAILED, failures=3), 3)
    assert not should_disable(facts(RunStatus.ABORTED, failures=3), 3)


def test_routing_global_job_and_jpgagent_email() -> None:
    routes = Routes(("json://h/a",), DEFAULT_EVENTS, "mailto://smtp?from=a@x")
    assert destinations(Event.FAILED, routes) == ("json://h/a",)
    assert destinations(Event.SUCCEEDED, routes) == ()  # not by default
    job = JobRoutes(("ntfy://topic",), frozenset({Event.SUCCEEDED}), {"to": "o@x;p@x"})
    assert destinations(Event.SUCCEEDED, routes, job) == ("json://h/a", "ntfy://topic")
    assert destinations(Event.FAILED, routes, job) == ()  # the job's alert_on replaces
    alert = Alert(Event.FAILED, "s1", AT, job_id=7, job_name="etl", status="f")
    sent = deliveries(alert, routes, job)
    assert [urls for _, urls in sent] == [("mailto://smtp?from=a@x&to=o@x,p@x",)]
    subject = {"to": "o@x", "subject": "~job_name~ ~status~", "on": "ABORTED"}
    assert deliveries(alert, routes, JobRoutes(email=subject))[-1][1] == ("json://h/a",)
    aborted = Alert(Event.ABORTED, "s1", AT, job_id=7, job_name="etl", status="d")
    mailed = deliveries(aborted, routes, JobRoutes(email=subject))[-1][0]
    assert mailed.title == "etl aborted"


def test_the_message_and_the_json_document() -> None:
    secrets.add_secret("hunter2")
    alert = run_alert(Event.FAILED, facts(RunStatus.FAILED), "s1", AT, "")
    doc = json.loads(alert.json())
    assert doc["version"] == 1
    assert doc["event"] == "failed"
    assert doc["job"] == {"id": 7, "name": "etl"}
    assert doc["run"] == {
        "id": 99,
        "status": "f",
        "status_text": "failed",
        "started": AT.isoformat(),
        "duration_s": 1.5,
    }
    assert doc["step"]["name"] == "load"
    assert doc["step"]["result"] == -1
    assert doc["station"] == "s1"
    output = doc["step"]["output"]
    assert output.startswith("ERROR: boom password=********")
    assert len(output) < OUTPUT_CAP + 100
    assert "more characters in pga_jobsteplog" in output
    body = alert.body()
    assert "job: etl (id 7)" in body
    assert "hunter2" not in body + alert.json()
    assert alert.title == "notifyagent: job etl failed"


def test_missed_runs_say_why() -> None:
    assert missed_reason("", False, 0) == "no agent is running"
    assert missed_reason("db7", False, 2) == "its host agent 'db7' is not running"
    assert "no free slot" in missed_reason("db7", True, 2)
    alert = missed_alert(Overdue(3, "pinned", AT, "its host agent 'db7' is not running"), "a", AT)
    assert alert.event is Event.MISSED
    assert "due since 2026-12-07T03:00:00+00:00" in alert.document()["reason"]


def test_settings_are_checked_and_urls_never_shown() -> None:
    assert parse_events("failed, recovered") == {Event.FAILED, Event.RECOVERED}
    assert Event.TEST not in parse_events("all")
    with pytest.raises(ValueError, match="'failure' is not an event; allowed: all, failed"):
        parse_events("failure")
    assert parse_urls("json://h/a, slack://T/B/C") == ("json://h/a", "slack://T/B/C")
    with pytest.raises(ValueError, match="not a destination URL"):
        parse_urls("hooks.example.com/x")
    assert redact("mailtos://u:pw@smtp.example.com:587?to=a@x") == "mailtos://smtp.example.com:587"
    assert redact("slack://TOKENA/TOKENB/TOKENC") == "slack://TOKENA"
    assert "pw" not in secrets.scrub("sent to mailtos://u:pw@smtp.example.com")
    found = parse(Texts("@notifyagent max_failures=3 alert_on=failed,disabled alert_to=json://h/x"))
    assert found.policy == {
        "max_failures": 3,
        "alert_on": "disabled,failed",
        "alert_to": "json://h/x",
    }
    bad = parse(Texts("@notifyagent max_failures=0 alert_on=nope"))
    assert [p.what.split(":")[0] for p in bad.problems] == ["max_failures", "alert_on"]


def test_a_hanging_destination_never_blocks_the_caller() -> None:
    """put() returns at once; a destination that does not answer is given up after the
    timeout and the attempts, counted as failed; the next alert still goes out."""

    async def scenario(hanging: str, fine: Hook) -> tuple[float, Metrics]:
        metrics = Metrics()
        box = Outbox(lambda: 0.3, metrics)
        loop = asyncio.get_running_loop()
        started = loop.time()
        box.put(Alert(Event.TEST, "s", AT), [hanging])
        box.put(Alert(Event.TEST, "s", AT), [fine.url()])
        queued = loop.time() - started
        task = asyncio.ensure_future(box.run_forever())
        # the second alert does not wait for the first
        await asyncio.to_thread(fine.wait, lambda docs: len(docs) == 1, 10)
        failed = {"event": "test", "outcome": "failed"}
        assert metrics.registry.get_sample_value("notifyagent_alerts_total", failed) is None
        await box.flush(20)
        task.cancel()
        box.close()
        return queued, metrics

    with webhook(delay=5) as slow, webhook() as ok:
        queued, metrics = asyncio.run(scenario(slow.url(), ok))
        assert queued < 0.5
        assert len(ok.documents()) == 1
    value = metrics.registry.get_sample_value
    assert value("notifyagent_alerts_total", {"event": "test", "outcome": "failed"}) == 1
    assert value("notifyagent_alerts_total", {"event": "test", "outcome": "sent"}) == 1


def test_the_oldest_alert_is_dropped_when_the_queue_overflows() -> None:
    async def scenario() -> Metrics:
        metrics = Metrics()
        box = Outbox(lambda: 1.0, metrics, size=2)
        for event in (Event.FAILED, Event.MISSED, Event.DISABLED):
            box.put(Alert(event, "s", AT), ["json://127.0.0.1:9/x"])
        box.close()
        return metrics

    value = asyncio.run(scenario()).registry.get_sample_value
    assert value("notifyagent_alerts_total", {"event": "failed", "outcome": "dropped"}) == 1
    assert value("notifyagent_alerts_total", {"event": "missed", "outcome": "dropped"}) is None
