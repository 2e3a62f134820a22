"""The soak's servers: a primary and a streaming standby that trade places on failover, and
the stalling proxy one agent reaches the primary through.

Agents list both servers in their DSN with ``target_session_attrs=read-write`` (libpq skips the
standby), so the DSN stays right when the standby is promoted and the old primary is rebuilt,
in place (same directory, same port), as the new standby.
"""

from __future__ import annotations

import contextlib
import threading
import time

import psycopg

from notifyagent.cluster import TCP_PASSWORD, Cluster
from tests.pg import Conn, connect
from tests.proxy import StallProxy
from tests.replica import PRIMARY_SETTINGS, basebackup, shutdown_lsn, wait_replayed

DBNAME = "soak"
SETTINGS = {
    **PRIMARY_SETTINGS,
    "max_connections": "300",
    # a crash (restart -m immediate) must not lose commits the soak counts: the WAL is written
    # before a commit returns (fsync stays off: the machine itself does not crash)
    "synchronous_commit": "on",
    "log_min_messages": "warning",
}


class Pair:
    """Two clusters; ``primary`` and ``standby`` swap on :meth:`failover`."""

    def __init__(self) -> None:
        self.primary = Cluster(settings=SETTINGS)
        self.standby = Cluster(bindir=self.primary.bindir)
        self.proxy: StallProxy | None = None
        #: held by whatever stops, restarts or promotes a server
        self.lock = threading.Lock()

    @property
    def nodes(self) -> tuple[Cluster, Cluster]:
        return self.primary, self.standby

    def start(self) -> None:
        self.primary.start()
        basebackup(self.standby, self.primary)
        self.standby.start()
        self.proxy = StallProxy(self.primary.port)

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        for node in self.nodes:
            node.destroy()

    def both_dsn(self, app: str) -> str:
        """An agent's DSN: both servers over their sockets, the writable one wins."""
        a, b = sorted(self.nodes, key=lambda n: n.port)
        return (
            f"host={a.host},{b.host} port={a.port},{b.port} user=postgres dbname={DBNAME} "
            f"target_session_attrs=read-write application_name={app}"
        )

    def proxied_dsn(self, app: str) -> str:
        """Through the proxy (TCP, with a password: it must never show in a log)."""
        assert self.proxy is not None
        return (
            f"host=127.0.0.1 port={self.proxy.port} user=postgres dbname={DBNAME} "
            f"password={TCP_PASSWORD} target_session_attrs=read-write application_name={app}"
        )

    def connect(self, dbname: str = DBNAME, timeout: float = 2.0) -> Conn:
        """An autocommit connection to the primary of the moment."""
        return connect(self.primary.dsn(dbname, connect_timeout=str(max(1, int(timeout)))))

    def ready(self, deadline: float = 60.0) -> Conn:
        """A connection to the primary once it accepts them (after a restart or failover)."""
        end = time.monotonic() + deadline
        while True:
            try:
                conn = self.connect()
                if conn.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"]:  # type: ignore[index]
                    conn.close()
                    raise psycopg.OperationalError("still in recovery")
                return conn
            except psycopg.Error:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)

    def failover(self) -> dict[str, float]:
        """A switchover without loss: stop the primary, wait until the standby replayed all
        of its WAL, promote the standby and point the proxy at it. Returns the times of each
        part (seconds)."""
        assert self.proxy is not None
        t0 = time.monotonic()
        old, new = self.primary, self.standby
        old.stop("fast")
        wait_replayed(new, shutdown_lsn(old))
        stopped = time.monotonic()
        new.pg_ctl("-w", "-t", "60", "promote")
        self.primary, self.standby = new, old
        self.proxy.upstream = ("127.0.0.1", new.port)
        promoted = time.monotonic()
        return {"stop_s": stopped - t0, "promote_s": promoted - stopped, "promoted_at": promoted}

    def rebuild_standby(self) -> float:
        """The old primary, rebuilt in place as the standby of the new one."""
        t0 = time.monotonic()
        node = self.standby
        with contextlib.suppress(RuntimeError):
            if node.is_running():
                node.stop("immediate")
        basebackup(node, self.primary)
        node.pg_ctl("-w", "-t", "60", "start")
        return time.monotonic() - t0
