"""Streaming replication for throwaway clusters: a standby made with ``pg_basebackup -R``, and
the same in place for a stopped former primary (rebuilt as the standby of the promoted one)."""

from __future__ import annotations

import shutil
import subprocess
import time

import psycopg

from notifyagent.cluster import Cluster

#: Settings a primary needs for a standby (the standby copies them with the data).
PRIMARY_SETTINGS = {"wal_level": "replica", "max_wal_senders": "5", "wal_keep_size": "'256MB'"}


def basebackup(node: Cluster, primary: Cluster) -> None:
    """Fill ``node``'s (absent or stale) data directory with a copy of ``primary`` that streams
    from it; the copied postgresql.conf names the primary's port and socket, so ``node``'s own
    come last (later lines win)."""
    shutil.rmtree(node.datadir, ignore_errors=True)
    node._run(
        [
            str(node.bindir / "pg_basebackup"),
            "-D", str(node.datadir),
            "-h", primary.host,
            "-p", str(primary.port),
            "-U", "postgres",
            "-R", "-X", "stream", "-c", "fast", "--no-sync",
        ]
    )  # fmt: skip
    with (node.datadir / "postgresql.conf").open("a") as f:
        f.write(f"port = {node.port}\nunix_socket_directories = '{node.base}'\n")


class Standby(Cluster):
    """A streaming replica of ``primary``: ``pg_basebackup -R`` instead of ``initdb``."""

    def __init__(self, primary: Cluster) -> None:
        super().__init__(bindir=primary.bindir)
        self.primary = primary

    def init(self) -> None:
        basebackup(self, self.primary)

    def promote(self) -> None:
        self.pg_ctl("-w", "-t", "60", "promote")


def shutdown_lsn(node: Cluster) -> str:
    """Where a cleanly stopped server's WAL ends: its shutdown checkpoint (pg_controldata)."""
    out = subprocess.run(
        node._as_owner([str(node.bindir / "pg_controldata"), "-D", str(node.datadir)]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        if line.startswith("Latest checkpoint location:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no checkpoint location in pg_controldata's output:\n{out}")


def wait_replayed(standby: Cluster, lsn: str, timeout: float = 30.0) -> None:
    """Until ``standby`` replayed the WAL up to ``lsn``: a switchover then loses nothing (a
    fast stop sends the WAL, but the standby may not have written it when promoted)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(standby.dsn(), autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not replay the WAL up to {lsn}")
            time.sleep(0.01)
