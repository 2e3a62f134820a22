"""``notifyagent check`` against a real server: the report and each failure's exit code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifyagent import conninfo
from notifyagent.cluster import TCP_PASSWORD, free_port
from tests.cli import run_cli
from tests.pg import Database, Server, new_database


def test_report_for_database_with_extension(db: Database) -> None:
    db.execute("INSERT INTO pgagent.pga_job (jobjclid, jobname) VALUES (1, 'a'), (1, 'b')")
    db.execute("INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (424242, 'ghost')")
    r = run_cli("check", "--dsn", db.dsn)
    assert r.code == 0, r.err
    assert "schema version 4 (ok)" in r.out
    assert "PostgreSQL 15" in r.out
    assert "jobs              2 (2 enabled)" in r.out
    assert "station ghost" in r.out
    assert db.name in r.out


def test_dsn_from_environment_and_url_form(db: Database) -> None:
    params = conninfo.parse(db.dsn)
    url = f"postgresql://postgres@/{db.name}?host={params['host']}&port={params['port']}"
    r = run_cli("check", env={"NOTIFYAGENT_DSN": url})
    assert r.code == 0, r.err
    assert "schema version 4" in r.out


def test_libpq_environment_when_no_dsn(db: Database) -> None:
    params = conninfo.parse(db.dsn)
    env = {
        "PGHOST": params["host"],
        "PGPORT": params["port"],
        "PGUSER": "postgres",
        "PGDATABASE": db.name,
    }
    r = run_cli("check", env=env)
    assert r.code == 0, r.err


@pytest.fixture
def plain_db(pg_server: Server) -> Iterator[Database]:
    yield from new_database(pg_server, prefix="plain", template="template0")


def test_database_without_extension(plain_db: Database) -> None:
    r = run_cli("check", "--dsn", plain_db.dsn)
    assert r.code == 4
    assert "CREATE EXTENSION pgagent" in r.err
    assert plain_db.name in r.err


def test_schema_version_mismatch(db: Database) -> None:
    db.execute(
        "CREATE OR REPLACE FUNCTION pgagent.pgagent_schema_version() RETURNS int2 "
        "LANGUAGE sql AS 'SELECT 3::int2'"
    )
    r = run_cli("check", "--dsn", db.dsn)
    assert r.code == 5
    assert "unsupported pgagent schema version 3" in r.err
    assert 'ALTER EXTENSION "pgagent" UPDATE' in r.err


def test_missing_version_function(db: Database) -> None:
    db.execute("ALTER EXTENSION pgagent DROP FUNCTION pgagent.pgagent_schema_version()")
    db.execute("DROP FUNCTION pgagent.pgagent_schema_version()")
    r = run_cli("check", "--dsn", db.dsn)
    assert r.code == 5
    assert "ALTER EXTENSION" in r.err


def test_wrong_password_is_not_printed(pg_server: Server, db: Database) -> None:
    if pg_server.cluster is None:
        pytest.skip("needs the test suite's own cluster (TCP login with a password)")
    secret = "Sup3r-S3cret-wrong"
    dsn = pg_server.cluster.tcp_dsn(db.name, password=secret)
    r = run_cli("check", "--dsn", dsn)
    assert r.code == 3
    assert "password authentication failed" in r.err
    assert secret not in r.err + r.out
    # the same password given as a URL and through PGPASSWORD stays hidden too
    port = pg_server.cluster.port
    r = run_cli("check", "--dsn", f"postgresql://postgres:{secret}@127.0.0.1:{port}/{db.name}")
    assert r.code == 3
    assert secret not in r.err + r.out
    r = run_cli(
        "check",
        "--dsn",
        f"host=127.0.0.1 port={port} dbname={db.name} user=postgres",
        env={"PGPASSWORD": secret},
    )
    assert r.code == 3
    assert secret not in r.err + r.out


def test_right_password_over_tcp(pg_server: Server, db: Database) -> None:
    if pg_server.cluster is None:
        pytest.skip("needs the test suite's own cluster")
    r = run_cli("check", "--dsn", pg_server.cluster.tcp_dsn(db.name))
    assert r.code == 0, r.err
    assert TCP_PASSWORD not in r.out + r.err


def test_unreachable_port() -> None:
    port = free_port()
    r = run_cli(
        "check",
        "--dsn",
        f"host=127.0.0.1 port={port} user=x password=hunter2 dbname=postgres connect_timeout=3",
    )
    assert r.code == 3
    assert "cannot connect" in r.err
    assert f"port={port}" in r.err
    assert "hunter2" not in r.err


def test_malformed_dsn() -> None:
    r = run_cli("check", "--dsn", "host=/tmp port=5432 bogus_keyword=1 password=hunter2")
    assert r.code == 3
    assert "bogus_keyword" in r.err
    assert "hunter2" not in r.err
