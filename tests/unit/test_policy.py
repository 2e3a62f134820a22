"""The one policy type (notifyagent.core.policy): rows in, seconds and defaults out."""

from __future__ import annotations

import datetime as dt

from notifyagent.core.policy import DEFAULT, POLICY_KEYS, Catchup, Overlap, Policy

ROW = {
    "jobid": 7,
    "job_timeout": dt.timedelta(minutes=10),
    "step_timeout": None,
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "overlap": "queue-one",
    "catchup": "skip",
}


def test_a_row_becomes_typed_values() -> None:
    policy = Policy.from_row(ROW)
    assert policy.overlap is Overlap.QUEUE_ONE
    assert policy.catchup is Catchup.SKIP
    assert policy.job_timeout_s == 600.0
    assert policy.step_timeout_s is None
    assert policy.retries == 2


def test_defaults_are_pgagents_behaviour() -> None:
    assert Policy(None, None, 0, dt.timedelta(minutes=1), Overlap.SKIP, Catchup.ONCE) == DEFAULT
    assert DEFAULT.non_defaults() == []
    assert DEFAULT.job_timeout_s is None


def test_non_defaults_in_column_order() -> None:
    assert POLICY_KEYS == (
        "job_timeout",
        "step_timeout",
        "retries",
        "retry_delay",
        "overlap",
        "catchup",
        "every",
        "max_failures",
        "alert_to",
        "alert_on",
    )
    assert Policy.from_row(ROW).non_defaults() == [
        ("job_timeout", dt.timedelta(minutes=10)),
        ("retries", 2),
        ("retry_delay", dt.timedelta(seconds=30)),
        ("overlap", "queue-one"),
        ("catchup", "skip"),
    ]
