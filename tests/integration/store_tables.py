"""The pgagent tables as a store scenario sets them up and reads them: on the test server
(``PgTables``) or in memory (``MemoryTables``), for tests/integration/test_store_conformance.py."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any, Protocol

import psycopg

from notifyagent.core import events
from notifyagent.core.ports import Store
from notifyagent.core.schedule import schedule_from_arrays
from notifyagent.db import connect, schema
from notifyagent.db.store import PgStore
from notifyagent.testing import MemoryStore, steps
from tests.pg import Database

UTC = dt.UTC
#: the MemoryStore's own session
PIDS = MemoryStore(dt.datetime.now).pids
HOUR = dt.timedelta(hours=1)


class Tables(Protocol):
    """How a scenario sets up and reads the pgagent tables, whichever the store."""

    @property
    def store(self) -> Store: ...

    def add_job(self, name: str, n_steps: int = 1, **columns: Any) -> int: ...

    def every_hour(self, job_id: int) -> None: ...

    def set_next_run(self, job_id: int, value: dt.datetime | None) -> None: ...

    def register(self, agent: int) -> None: ...

    def agents(self) -> set[int]: ...

    def lock(self, job_id: int) -> contextlib.AbstractContextManager[None]: ...

    def job(self, job_id: int) -> tuple[int | None, dt.datetime | None]:
        """(jobagentid, jobnextrun) with 'infinity' as ``dt.datetime.max``."""
        ...

    def runs(self, job_id: int) -> list[tuple[str, list[str]]]:
        """(run status, its step statuses) per run, oldest first."""
        ...

    def notifications(self) -> list[tuple[events.Event, bool]]:
        """The notifications since the last call, and whether the store's session sent each."""
        ...


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


async def install(dsn: str) -> None:
    """notifyagent's triggers, as ``serve`` installs them: they are part of what is stored."""
    async with await connect(dsn) as conn:
        await schema.install(conn)


class PgTables:
    def __init__(self, db: Database) -> None:
        self.db = db
        asyncio.run(install(db.dsn))
        self.store = PgStore(db.dsn, max_size=2)
        self._listener = psycopg.connect(db.dsn, autocommit=True)
        self._listener.execute("LISTEN notifyagent")

    def close(self) -> None:
        self._listener.close()

    def notifications(self) -> list[tuple[events.Event, bool]]:
        found = self._listener.notifies(timeout=0.3)
        return [(events.parse(n.payload), n.pid in self.store.pids) for n in found]

    def add_job(self, name: str, n_steps: int = 1, **columns: Any) -> int:
        job_id = int(
            self.db.value(
                "INSERT INTO pgagent.pga_job (jobjclid, jobname, jobenabled, jobhostagent) "
                "VALUES (1, %s, %s, %s) RETURNING jobid",
                (name, columns.get("enabled", True), columns.get("host_agent", "")),
            )
        )
        for n in range(1, n_steps + 1):
            self.db.execute(
                "INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, "
                "jstdbname) VALUES (%s, %s, 's', 'SELECT 1', %s)",
                (job_id, f"step{n}", self.db.name),
            )
        if "next_run" in columns:
            self.set_next_run(job_id, columns["next_run"])
        return job_id

    def every_hour(self, job_id: int) -> None:
        self.db.execute(
            "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscstart, jscminutes) VALUES "
            "(%s, 'hourly', now() - interval '1 day', (SELECT array_agg(g = 7 ORDER BY g) "
            "FROM generate_series(0, 59) g))",
            (job_id,),
        )

    def set_next_run(self, job_id: int, value: dt.datetime | None) -> None:
        self.db.execute(
            "UPDATE pgagent.pga_job SET jobnextrun = coalesce(%s::timestamptz, '-infinity') "
            "WHERE jobid = %s",
            (value, job_id),
        )

    def register(self, agent: int) -> None:
        self.db.execute(
            "INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (%s, 'here')", (agent,)
        )

    def agents(self) -> set[int]:
        return {r["jagpid"] for r in self.db.rows("SELECT jagpid FROM pgagent.pga_jobagent")}

    @contextlib.contextmanager
    def lock(self, job_id: int) -> Iterator[None]:
        with psycopg.connect(self.db.dsn) as conn:
            conn.execute("SELECT 1 FROM pgagent.pga_job WHERE jobid = %s FOR UPDATE", (job_id,))
            yield

    def job(self, job_id: int) -> tuple[int | None, dt.datetime | None]:
        row = self.db.rows(
            "SELECT jobagentid, CASE WHEN jobnextrun = 'infinity' THEN NULL ELSE jobnextrun END "
            "AS next, jobnextrun = 'infinity' AS never FROM pgagent.pga_job WHERE jobid = %s",
            (job_id,),
        )[0]
        return row["jobagentid"], dt.datetime.max if row["never"] else row["next"]

    def runs(self, job_id: int) -> list[tuple[str, list[str]]]:
        rows = self.db.rows(
            "SELECT l.jlgstatus, array(SELECT jslstatus FROM pgagent.pga_jobsteplog "
            "WHERE jsljlgid = l.jlgid ORDER BY jslid) AS steps "
            "FROM pgagent.pga_joblog l WHERE jlgjobid = %s ORDER BY jlgid",
            (job_id,),
        )
        return [(r["jlgstatus"], list(r["steps"])) for r in rows]


class MemoryTables:
    def __init__(self) -> None:
        self.store = self.memory = MemoryStore(now)
        self._sent: list[tuple[events.Event, bool]] = []
        self.memory.listen(lambda p, pid: self._sent.append((events.parse(p), pid in PIDS)))

    def notifications(self) -> list[tuple[events.Event, bool]]:
        sent, self._sent = self._sent, []
        return sent

    def add_job(self, name: str, n_steps: int = 1, **columns: Any) -> int:
        next_run = columns.pop("next_run", "unset")
        job_id = self.memory.add_job(name, steps(*["SELECT 1"] * n_steps), **columns)
        if next_run != "unset":
            self.memory.set_next_run(job_id, next_run)
        return job_id

    def every_hour(self, job_id: int) -> None:
        start = now() - dt.timedelta(days=1)
        minutes = [m == 7 for m in range(60)]
        empty = ([False] * 24, [False] * 7, [False] * 32, [False] * 12)
        hourly = schedule_from_arrays(job_id, job_id, start, None, minutes, *empty)
        self.memory.set_schedules(job_id, [hourly])

    def set_next_run(self, job_id: int, value: dt.datetime | None) -> None:
        self.memory.set_next_run(job_id, value)

    def register(self, agent: int) -> None:
        self.memory.register(agent, "here")

    def agents(self) -> set[int]:
        return set(self.memory.t.agents)

    @contextlib.contextmanager
    def lock(self, job_id: int) -> Iterator[None]:
        self.memory.t.locked.add(job_id)
        try:
            yield
        finally:
            self.memory.t.locked.discard(job_id)

    def job(self, job_id: int) -> tuple[int | None, dt.datetime | None]:
        row = self.memory.t.jobs[job_id]
        return row.agent_id, dt.datetime.max if row.never else row.next_run

    def runs(self, job_id: int) -> list[tuple[str, list[str]]]:
        logs = self.memory.t.step_logs.values()
        return [
            (r.status.value, [s.status.value for s in logs if s.jlgid == r.jlgid])
            for r in sorted(self.memory.runs(job_id), key=lambda r: r.jlgid)
        ]
