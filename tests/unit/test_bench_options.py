"""Which agents a benchmark run has (tests/bench/doc.py): pg_cron only where the server has
it, skipped with a note otherwise; --durable adds notifyagent on the durable server."""

from __future__ import annotations

import pytest

from tests.bench import cron
from tests.bench.cli import build_parser
from tests.bench.doc import choose_agents


def test_pg_cron_is_skipped_with_a_note_where_the_server_lacks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cron, "available", lambda bindir: False)
    args = build_parser().parse_args(["--quick"])
    choose_agents(args)
    assert args.agents == [
        "notifyagent",
        "notifyagent-durable",
        "notifyagent-alerting",
        "pgagent-t1",
    ]
    assert args.notes == [
        "pg_cron skipped: the server has no pg_cron (apt-get install postgresql-15-cron)"
    ]


def test_pg_cron_runs_where_the_server_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cron, "available", lambda bindir: True)
    args = build_parser().parse_args([])
    choose_agents(args)
    assert args.agents == [
        "notifyagent",
        "notifyagent-durable",
        "notifyagent-alerting",
        "pgagent",
        "pgagent-t1",
        "pg_cron",
    ]
    assert args.notes == []


def test_durable_adds_the_durable_server() -> None:
    args = build_parser().parse_args(["--agents", "notifyagent", "--durable"])
    choose_agents(args)
    assert args.agents == ["notifyagent", "notifyagent-durable"]
