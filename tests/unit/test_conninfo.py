"""Connection-string handling: resolution, keepalives and password scrubbing."""

from __future__ import annotations

import pytest

from notifyagent import conninfo


def test_display_hides_password() -> None:
    shown = conninfo.display("host=db port=5432 user=u password=s3cr3t dbname=postgres")
    assert "s3cr3t" not in shown
    assert "host=db" in shown


def test_scrub_known_and_pattern_passwords() -> None:
    conninfo.register_secrets("postgresql://u:Zebra-Pass@db/postgres")
    assert "Zebra-Pass" not in conninfo.scrub("failed for postgresql://u:Zebra-Pass@db/x")
    assert "Zebra-Pass" not in conninfo.scrub("the password is Zebra-Pass")
    assert "other" not in conninfo.scrub("host=x password=other")
    assert "quoted pw" not in conninfo.scrub("host=x password='quoted pw'")


def test_keepalives_added_unless_given() -> None:
    params = conninfo.parse(conninfo.with_keepalives("host=db keepalives_idle=5"))
    assert params["keepalives_idle"] == "5"
    assert params["keepalives_count"] == "3"
    assert params["tcp_user_timeout"] == "20000"
    off = conninfo.parse(conninfo.with_keepalives("host=db keepalives=0"))
    assert "tcp_user_timeout" not in off


def test_resolve_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYAGENT_DSN", "dbname=fromenv")
    assert conninfo.resolve_dsn("dbname=cli") == "dbname=cli"
    assert conninfo.resolve_dsn(None) == "dbname=fromenv"
    monkeypatch.delenv("NOTIFYAGENT_DSN")
    assert conninfo.resolve_dsn(None) == ""
