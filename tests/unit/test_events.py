"""Notifications as events, and the changes they leave for the scheduler (no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from notifyagent.agent.listener import received
from notifyagent.core.events import (
    KILL_CHANNEL,
    CancelJob,
    Changes,
    JobsChanged,
    Malformed,
    Ping,
    PoliciesChanged,
    Resync,
    label,
    parse,
    parse_kill,
)
from notifyagent.core.timetable import EPOCH, Origin, Stored

AT = dt.datetime(2030, 1, 1, 10, 30, tzinfo=dt.UTC)
NEVER = Stored(None, never=True)
MICROS = (AT - EPOCH) // dt.timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        ("job:7,8", JobsChanged(Origin.EXPLICIT, ((7, None), (8, None)))),
        (f"recompute:7={MICROS}", JobsChanged(Origin.RECOMPUTED, ((7, Stored(AT)),))),
        ("schedule:7=,8=i", JobsChanged(Origin.SCHEDULES, ((7, Stored(None)), (8, NEVER)))),
        ("exception:9", JobsChanged(Origin.SCHEDULES, ((9, None),))),
        ("policy:3,4", PoliciesChanged((3, 4))),
        ("resync", Resync()),
        ("ping:12:3", Ping("ping:12:3")),
        ("job:", Malformed("job:")),
        ("job:x", Malformed("job:x")),
        ("policy:x", Malformed("policy:x")),
        ("resync:1", Malformed("resync:1")),
        ("hello", Malformed("hello")),
    ],
)  # fmt: skip
def test_payloads_become_typed_events(payload: str, event: object) -> None:
    assert parse(payload) == event


def test_metrics_count_known_kinds_and_other() -> None:
    assert [label(p) for p in ("job:1", "exception:1", "ping:1:1", "resync", "policy:1", "x")] == [
        "job",
        "exception",
        "ping",
        "resync",
        "other",
        "other",
    ]


def test_the_last_notification_of_a_job_decides_its_origin_and_value() -> None:
    changes = Changes(resync=False)
    changes.record(JobsChanged(Origin.SCHEDULES, ((1, Stored(AT)), (2, None))))
    changes.record(JobsChanged(Origin.EXPLICIT, ((1, None),)))
    changes.record(PoliciesChanged((5,)))
    assert changes.explicit() == {1}
    jobs, notified, schedules = changes.take_jobs()
    assert jobs == {1: Origin.EXPLICIT, 2: Origin.SCHEDULES}
    assert notified == {}  # the explicit write names no value: the recompute's is stale
    assert schedules == [1, 2]
    assert changes.take_policies() == [5]
    assert not changes.jobs
    assert not changes.policies


def test_a_finished_run_is_looked_at_again_unless_a_notification_says_more() -> None:
    changes = Changes(resync=False)
    changes.record(JobsChanged(Origin.RECOMPUTED, ((1, Stored(AT)),)))
    changes.touch(1)
    changes.touch(2)
    assert changes.jobs == {1: Origin.RECOMPUTED, 2: Origin.EXPLICIT}


def test_a_resync_covers_what_was_pending() -> None:
    changes = Changes()
    changes.record(JobsChanged(Origin.SCHEDULES, ((1, Stored(AT)),)))
    changes.record(PoliciesChanged((5,)))
    assert changes.take_resync()
    assert not changes.take_resync()
    assert (changes.jobs, changes.notified, changes.schedules, changes.policies) == (
        {},
        {},
        set(),
        set(),
    )
    changes.record(Resync())
    assert changes.take_resync()


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        ("cancel:42:alice (psql: x)", CancelJob(42, False, "alice (psql: x)")),
        ("cancel-step:42:bob", CancelJob(42, True, "bob")),
        ("cancel:42", CancelJob(42, False, "unknown")),
        ("cancel:x:bob", Malformed("cancel:x:bob")),
    ],
)
def test_cancel_requests(payload: str, event: object) -> None:
    assert parse(payload) == event
    assert label(payload) == payload.partition(":")[0] or isinstance(event, Malformed)


def test_jpgagent_kill_channel_carries_a_bare_job_id() -> None:
    who = "NOTIFY jpgagent_kill_job from backend pid 999"
    assert parse_kill(" 17 ", 999) == CancelJob(17, False, who)
    assert parse_kill("all", 999) == Malformed("all")
    assert received("17", 999, set(), KILL_CHANNEL) == parse_kill("17", 999)
    # the same payload on our own channel is not a cancel
    assert received("17", 999, set()) is None
