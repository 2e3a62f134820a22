"""Scenario 4, idle: what an agent with nothing due sends to the database, per minute."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from tests.bench.config import AGENT_APP, Variant
from tests.bench.harness import Harness
from tests.bench.jobs import make_jobs
from tests.bench.logs import LogTail
from tests.bench.procstat import Usage
from tests.pg import Conn, fetch_value

LOG_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+")
SERVER_LOG_RE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+(?: \S+)? \[(?P<pid>\d+)\] (?P<app>\S*) ?"
    r"LOG:  (?:statement|execute [^:]+): ?(?P<text>.*)$"
)


def run(h: Harness, variant: Variant) -> dict[str, Any]:
    """Jobs due hours ahead; after a settle time, a fixed window of the server log is read
    (log_statement = 'all') and the agent's statements counted as transactions."""
    z = h.sizes
    admin = h.admin
    assert admin is not None
    with h.scenario(variant, "idle") as (db, conn):
        ids = make_jobs(conn, z.idle_jobs, "idle")
        conn.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes, jschours) "
            "SELECT j, 'far', (SELECT array_agg(m = j %% 60 ORDER BY m) "
            "FROM generate_series(0, 59) m), (SELECT array_agg(h = (extract(hour FROM now())"
            "::int + 12) %% 24 ORDER BY h) FROM generate_series(0, 23) h) "
            "FROM unnest(%s::int[]) j",
            (ids,),
        )
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(db.name))
        )
        # conn (opened before the ALTER, so not logged) only checks the agent is ready;
        # nothing of ours touches the database during the window.
        with h.running(variant, db.name, conn) as agent:
            time.sleep(z.idle_settle)  # let start-up statements pass: a fixed window
            window = _window(h, admin, db.name, agent.pid)
            agent.check_alive()
            sessions = int(
                fetch_value(
                    admin,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND application_name = %s",
                    (db.name, AGENT_APP),
                )
            )
        counted = count_statements(window["lines"])
    per_min = 60.0 / window["seconds"]
    return {
        "window_s": round(window["seconds"], 3),
        "jobs": len(ids),
        "ran": 0,
        "statements": counted["statements"],
        "transactions": counted["transactions"],
        "tx_per_min": counted["transactions"] * per_min,
        "liveness_tx": counted["liveness"],
        "tx_per_min_beyond_liveness": (counted["transactions"] - counted["liveness"]) * per_min,
        "pg_stat_xacts_per_min": window["xacts"] * per_min,
        "agent_connections": sessions,
        "wakeups_per_min": window["usage"].wakeups * per_min,
        "cpu_ms_per_min": window["usage"].cpu_s * 1000 * per_min,
        "by_statement": counted["by_statement"],
    }


def _window(h: Harness, admin: Conn, dbname: str, pid: int) -> dict[str, Any]:
    """The measurement window: its length, the server log written meanwhile, the
    pg_stat_database transaction delta (the cross-check) and the agent process's wake-ups
    and CPU."""
    tail = LogTail.from_end(h.cluster.logfile)
    x0 = _xacts(admin, dbname)
    usage = Usage([pid]).start()
    t0 = time.monotonic()
    time.sleep(h.sizes.idle_window)  # the measurement window itself
    seconds = time.monotonic() - t0
    usage.stop()
    x1 = _xacts(admin, dbname)
    return {"seconds": seconds, "lines": tail.lines(), "xacts": x1 - x0, "usage": usage}


def _xacts(admin: Conn, dbname: str) -> int:
    return int(
        fetch_value(
            admin,
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (dbname,),
        )
    )


def agent_statements(lines: Sequence[str]) -> list[tuple[str, str]]:
    """(backend pid, statement text) of the agent's sessions; multi-line statements joined."""
    statements: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in lines:
        if not LOG_LINE_RE.match(line):
            if current is not None:  # a continuation line of a multi-line statement
                current.append(line.strip())
            continue
        current = None
        m = SERVER_LOG_RE.match(line)
        if m is not None and m["app"] == AGENT_APP:
            current = [m["text"].strip()]
            statements.append((m["pid"], current))
    return [(pid, " ".join(parts).strip()) for pid, parts in statements]


def count_statements(lines: Sequence[str]) -> dict[str, Any]:
    """Transactions of the agent's sessions from log_statement lines (see --help, idle)."""
    statements = agent_statements(lines)
    in_block: dict[str, bool] = {}
    last_was_check: dict[str, bool] = {}
    transactions = liveness = 0
    kinds: Counter[str] = Counter()
    for pid, text in statements:
        kinds[re.sub(r"\s+", " ", re.sub(r"\d+", "N", text))[:90] or "(empty query)"] += 1
        word = text.split(None, 1)[0].upper().rstrip(";") if text else ""
        if word in ("BEGIN", "START"):
            in_block[pid] = True
            continue
        if word in ("COMMIT", "END", "ROLLBACK", "ABORT"):
            in_block[pid] = False
            transactions += 1
            continue
        if in_block.get(pid):
            continue
        transactions += 1
        if "pg_notify('notifyagent'" in text and "zombies" in text:
            # the liveness check, and the connection pool's health check right before it
            liveness += 1 + int(last_was_check.get(pid, False))
        last_was_check[pid] = text == ""
    return {
        "statements": len(statements),
        "transactions": transactions,
        "liveness": liveness,
        "by_statement": dict(kinds.most_common()),
    }
