"""What users do meanwhile, through pgAdmin's own statements: Run now bursts on the on-demand
jobs and schedule edits (the Repeat tab's minutes) on the edited jobs.

Each statement runs under the servers' lock, so none is cut off by a restart or a failover
(its outcome would be unknown); agent faults and stalls go on meanwhile."""

from __future__ import annotations

import random
import threading
import time

import psycopg

from tests.compat.pgadmin import PgAdminSession
from tests.pg import fetch_rows
from tests.soak.faults import Record
from tests.soak.jobs import PgAdmin, server_now
from tests.soak.model import Edit, Request
from tests.soak.sql import q
from tests.soak.topology import Pair


class Workload:
    def __init__(self, pair: Pair, pgadmin: PgAdmin, record: Record, rng: random.Random,
                 on_demand: list[int], edited: dict[int, int]) -> None:  # fmt: skip
        self.pair = pair
        self.pgadmin = pgadmin
        self.record = record
        self.rng = rng
        self.on_demand = on_demand
        #: jobid -> jscid of the edited jobs
        self.edited = edited
        self.edits: list[Edit] = []
        self.stop = threading.Event()

    def run(self, until: float) -> None:
        next_edit = time.monotonic() + self.rng.uniform(2, 10)
        while not self.stop.wait(self.rng.uniform(2.0, 6.0)) and time.monotonic() < until - 5:
            if not self.pair.lock.acquire(timeout=30):
                continue
            try:
                session = PgAdminSession(self.pair.primary.dsn("soak", connect_timeout="2"))
            except psycopg.Error:
                self.pair.lock.release()
                continue
            try:
                self.run_now_burst(session)
                if time.monotonic() >= next_edit:
                    self.edit(session)
                    next_edit = time.monotonic() + self.rng.uniform(5, 15)
            except psycopg.Error as err:
                self.record.problems.append({"kind": "workload_error", "error": str(err)[:300]})
            finally:
                session.close()
                self.pair.lock.release()

    def run_now_burst(self, session: PgAdminSession) -> None:
        """Run now on up to 40 idle on-demand jobs (none with a request not yet served: a Run
        now on a running job is lost under pgAgent, so users and this soak avoid it)."""
        idle = self._idle(session)
        for job in self.rng.sample(idle, min(len(idle), self.rng.randint(5, 40))):
            at = server_now(session)
            self.pgadmin.request_run(session, job)
            self.record.requests.append(Request(job, at))

    def _idle(self, session: PgAdminSession) -> list[int]:
        last: dict[int, float] = {}
        for r in self.record.requests:
            if r.jobid in self.on_demand:
                last[r.jobid] = max(last.get(r.jobid, 0.0), r.at.timestamp())
        rows = fetch_rows(session.conn, q("on_demand_state"), (self.on_demand,))
        idle = []
        for row in rows:
            job, started = int(row["jobid"]), row["started"]
            served = started is not None and started.timestamp() >= last.get(job, 0)
            if (job not in last or served) and not row["running"]:
                idle.append(job)
        return idle

    def edit(self, session: PgAdminSession) -> None:
        for job in self.rng.sample(sorted(self.edited), self.rng.randint(1, 3)):
            minutes = frozenset(self.rng.sample(range(60), self.rng.randint(5, 30)))
            at = server_now(session)
            self.pgadmin.change_minutes(session, job, self.edited[job], minutes)
            self.edits.append(Edit(job, at, minutes))
