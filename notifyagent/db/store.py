"""``PgStore``: the agent's Store port (notifyagent.core.ports) on PostgreSQL.

This is the one place for the claim, the run and step log writes, the release, and the
dead-agent cleanup; the statements themselves are in ``sql/queries.sql``. The scheduler's
statements (reading job rows and schedules, corrections, the claim) go over a connection of
their own, so the claim follows the read on the same, still warm server process (psycopg_pool
hands out its idle connections in turn, and one idle for a while answers ~1 ms slower); the
runs' log writes and the maintenance share a pool.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, time
from typing import Any, NamedTuple, TypeVar

import psycopg
from loguru import logger
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from notifyagent import conninfo
from notifyagent.core.alerts import Overdue, RunFacts, run_facts
from notifyagent.core.annotations import StepText, Texts
from notifyagent.core.model import ClaimedJob, JobState, Outcome, RunStatus, Step
from notifyagent.core.policy import Policy
from notifyagent.core.ports import Liveness, NextRunCorrection, Reaped
from notifyagent.core.schedule import Schedule, ScheduleError, ScheduleFactory
from notifyagent.core.schedule.model import Shape
from notifyagent.db import identity
from notifyagent.db.batch import Batcher
from notifyagent.db.sql import query

_FLAGS = {"t": True, "f": False, "n": None}
Flags = tuple[bool | None, ...]


@functools.lru_cache(maxsize=4096)
def _pattern(text: str) -> tuple[Flags, Flags, Flags, Flags, Flags]:
    """The five bool arrays of a schedule from the compact text of the ``schedules`` query."""
    minutes, hours, weekdays, monthdays, months = (
        tuple(_FLAGS[c] for c in part) for part in text.split("|")
    )
    return minutes, hours, weekdays, monthdays, months


def _shape(pattern: str, exceptions: list[list[str | None]] | None) -> Shape:
    """A schedule's arrays and exceptions from the ``schedules`` query's columns. Raises
    ScheduleError for an exception Python cannot represent ('infinity', 24:00)."""
    found = []
    for d, t in exceptions or ():
        try:
            found.append(
                (
                    date.fromisoformat(d) if d is not None else None,
                    time.fromisoformat(t) if t is not None else None,
                )
            )
        except ValueError as err:
            raise ScheduleError(
                f"exception (date {d}, time {t}) cannot be used ({err}): change or delete it"
            ) from err
    return (*_pattern(pattern), found)


T = TypeVar("T")

#: Statements of the scheduler: over its own connection (see the module's docstring).
SCHEDULER = frozenset(
    {"job_states", "schedules", "policies", "descriptions", "correct_next_runs", "claim"}
)
#: Statements that must not be sent twice: they insert rows or take a claim.
ONCE = frozenset({"claim", "step_start"})


def sql_time(value: datetime | None) -> str:
    """A next run as SQL text; None becomes '-infinity', which the triggers store as NULL
    without asking the extension to compute a next run."""
    return value.isoformat() if value is not None else "-infinity"


class _Release(NamedTuple):
    jlgid: int
    jobid: int
    status: str
    agent: int
    #: the next run as SQL text; None: NULL, for the extension's trigger to compute
    nextrun: str | None
    #: failed attempts retried so far when the next run is a retry (else 0)
    attempts: int


class PgStore:
    def __init__(self, dsn: str, *, max_size: int) -> None:
        self._backends: weakref.WeakKeyDictionary[psycopg.AsyncConnection[DictRow], int] = (
            weakref.WeakKeyDictionary()
        )
        target = conninfo.with_keepalives(dsn)
        if "application_name" not in conninfo.parse(dsn):
            target = conninfo.with_params(target, application_name="notifyagent")
        self.pool = self._pool(target, "notifyagent", max_size)
        self._releases: Batcher[_Release, bool] = Batcher(self._release_all)
        self._step_ends: Batcher[tuple[int, str, int, str], bool] = Batcher(self._finish_steps)
        self.scheduler = self._pool(target, "notifyagent-scheduler", 1)

    def _pool(
        self, target: str, name: str, max_size: int
    ) -> AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]:
        return AsyncConnectionPool(
            target,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=1,
            max_size=max_size,
            configure=self._remember,
            open=False,
            name=name,
            # psycopg_pool doubles its reconnect delay without limit (1, 2, 4, ... s) until
            # reconnect_timeout: a short timeout ends that chain, and the next request starts
            # a fresh attempt at once, so the pool is back within ~1 s of the server
            reconnect_timeout=2.0,
        )

    async def _remember(self, conn: psycopg.AsyncConnection[DictRow]) -> None:
        self._backends[conn] = conn.info.backend_pid
        await conn.execute(query("session_settings"))

    @property
    def pids(self) -> set[int]:
        """Backend pids of the pools' open connections: notifications they cause are our own.
        Only open ones: the server gives a closed connection's pid to later sessions, whose
        writes (a Run now) must not pass for ours."""
        return {pid for conn, pid in list(self._backends.items()) if not conn.closed}

    async def open(self) -> None:
        await self.pool.open(wait=False)
        await self.scheduler.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()
        await self.scheduler.close()

    async def check(self) -> None:
        """Replace pooled connections that died (after the listener saw the server go away).

        Connections are not checked on every checkout: that round trip would be the only
        traffic of an idle agent besides its liveness check.
        """
        await self.pool.check()
        await self.scheduler.check()

    async def _cursor(
        self, name: str, params: dict[str, Any] | None = None, *, tuples: bool = False
    ) -> tuple[list[Any], int]:
        """Rows and row count of one statement (see :meth:`_on_connection` for a dead pooled
        connection; :data:`ONCE` statements are not sent again). ``tuples``: plain tuples in the
        statement's column order (the bulk reads: no dict per row)."""

        statement = query(name)

        async def execute(conn: psycopg.AsyncConnection[DictRow]) -> tuple[list[Any], int]:
            cur: Any = conn.cursor(row_factory=tuple_row) if tuples else conn.cursor()
            await cur.execute(statement, params)
            rows = await cur.fetchall() if cur.description else []
            return rows, cur.rowcount

        pool = self.scheduler if name in SCHEDULER else self.pool
        return await self._on_connection(pool, execute, again=name not in ONCE)

    async def _on_connection(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]],
        work: Callable[[psycopg.AsyncConnection[DictRow]], Awaitable[T]],
        *,
        again: bool = True,
    ) -> T:
        """``work`` on a pooled connection. Work that only reads, or whose WHERE makes a repeat
        harmless, is done again once on a fresh connection when a pooled one turns out to be
        dead (the pool waits for the server if it is down); ``again=False`` for work that might
        have been done before the connection broke."""
        for attempt in (1, 2):
            try:
                async with pool.connection() as conn:
                    return await work(conn)
            except psycopg.OperationalError:
                if attempt == 2 or not again:
                    raise
                await pool.check()  # drop every dead connection, not just this one
        raise AssertionError("unreachable")

    async def _rows(self, name: str, params: dict[str, Any] | None = None) -> list[DictRow]:
        return (await self._cursor(name, params))[0]

    async def job_states(self, ids: Sequence[int] | None) -> list[JobState]:
        """The job rows; the statement's columns are JobState's fields, in order."""
        params = {"ids": list(ids) if ids is not None else None}
        return [JobState(*r) for r in (await self._cursor("job_states", params, tuples=True))[0]]

    async def schedules(self, ids: Sequence[int] | None) -> list[Schedule]:
        """The schedules (with exceptions) of some jobs, or of all when ``ids`` is None."""
        params = {"ids": list(ids) if ids is not None else None}
        rows = (await self._cursor("schedules", params, tuples=True))[0]
        factory = ScheduleFactory()
        found = []
        for jscid, jobid, enabled, start, end, pattern, exceptions in rows:
            key = (pattern, None if exceptions is None else tuple(map(tuple, exceptions)))
            try:
                found.append(
                    factory.build(
                        key,
                        functools.partial(_shape, pattern, exceptions),
                        jscid,
                        jobid,
                        start,
                        end,
                        enabled,
                    )
                )
            except ScheduleError as err:
                logger.error("schedule {} of job {} is invalid and ignored: {}", jscid, jobid, err)
        return found

    async def policies(self, ids: Sequence[int] | None) -> dict[int, Policy]:
        rows = await self._rows("policies", {"ids": list(ids) if ids is not None else None})
        return {int(r["jobid"]): Policy.from_row(dict(r)) for r in rows}

    async def descriptions(self, ids: Sequence[int] | None) -> dict[int, Texts]:
        rows = await self._rows("descriptions", {"ids": list(ids) if ids is not None else None})
        return {
            int(r["jobid"]): Texts(
                r["jobdesc"],
                tuple(StepText(int(s["id"]), str(s["name"]), str(s["desc"])) for s in r["steps"]),
            )
            for r in rows
        }

    async def correct_next_runs(self, corrections: Sequence[NextRunCorrection]) -> set[int]:
        """Write (job id, seen, new) next runs; returns the jobs whose row was updated."""
        rows = await self._rows(
            "correct_next_runs",
            {
                "ids": [c[0] for c in corrections],
                "seen": [c[1] for c in corrections],
                "next": [sql_time(c[2]) for c in corrections],
            },
        )
        return {int(r["jobid"]) for r in rows}

    async def claim(
        self, ids: Sequence[int], *, limit: int, station: str, agent: int, ahead: float = 0.0
    ) -> list[ClaimedJob]:
        params = {"ids": list(ids), "limit": limit, "station": station, "agent": agent}
        rows = await self._rows("claim", {**params, "ahead": ahead})
        return [
            ClaimedJob(
                job_id=r["jobid"],
                name=r["jobname"],
                jlgid=r["jlgid"],
                lag=r["lag"],
                steps=tuple(Step.from_json(s) for s in r["steps"]),
                first_jslid=r["first_jslid"],
                due=r["due"],
                claimed_at=r["claimed_at"],
                attempts=r["attempts"],
            )
            for r in rows
        ]

    async def step_start(self, jlgid: int, step_id: int) -> int | None:
        """The new step log id, or None when the step no longer exists."""
        rows = await self._rows("step_start", {"jlgid": jlgid, "jstid": step_id})
        return int(rows[0]["jslid"]) if rows else None

    async def step_finish(self, jslid: int, status: RunStatus, outcome: Outcome) -> bool:
        """Shared with the steps that end at the same moment (notifyagent.db.batch)."""
        return await self._step_ends.submit((jslid, status.value, outcome.result, outcome.output))

    async def _finish_steps(self, items: Sequence[tuple[int, str, int, str]]) -> list[bool]:
        names = ("jslids", "statuses", "results", "outputs")
        params = {n: list(c) for n, c in zip(names, zip(*items, strict=True), strict=True)}
        done = {int(row["jslid"]) for row in await self._rows("step_finish", params)}
        return [item[0] in done for item in items]

    async def release(
        self,
        job: ClaimedJob,
        status: RunStatus,
        agent: int,
        next_run: datetime | None,
        *,
        recompute: bool = False,
        attempts: int = 0,
    ) -> bool:
        """Finish the run log and hand the job back, in one statement shared with the runs
        released at the same moment (notifyagent.db.batch); False when ``agent`` no longer
        holds the job (another agent took us for dead, or our id changed). ``recompute``
        writes NULL, so the extension's trigger computes the next run. ``attempts`` > 0: the
        next run is that retry (notifyagent.retry), 0 ends the job's retry chain."""
        nextrun = None if recompute else sql_time(next_run)
        return await self._releases.submit(
            _Release(job.jlgid, job.job_id, status.value, agent, nextrun, attempts)
        )

    async def _release_all(self, items: Sequence[_Release]) -> list[bool]:
        params = {
            "jlgids": [r.jlgid for r in items],
            "jobids": [r.jobid for r in items],
            "statuses": [r.status for r in items],
            "agents": [r.agent for r in items],
            "nextruns": [r.nextrun for r in items],
            "attempts": [r.attempts for r in items],
        }
        held = {int(row["jobid"]) for row in await self._rows("release", params)}
        return [r.jobid in held for r in items]

    async def release_without_recompute(
        self, job: ClaimedJob, status: RunStatus, agent: int
    ) -> bool:
        """The fallback when :meth:`release` fails inside the schedule triggers."""
        await self._rows("finish_log", {"jlgid": job.jlgid, "status": status.value})
        return bool(await self._rows("release_only", {"jobid": job.job_id, "agent": agent}))

    async def connection_room(self) -> int:
        """Connections the server would still accept from us (max_connections less the
        reserved slots and every session open now)."""
        return int((await self._rows("connection_room"))[0]["room"])

    async def liveness(self, ping: str, grace: float | None = None) -> Liveness:
        """Send ``ping`` through the notification channel; the dead agents' pids and the
        number of overdue jobs."""
        r = (await self._rows("liveness", {"ping": ping, "grace": grace}))[0]
        return Liveness(list(r["zombies"]), int(r["overdue"]))

    # -- alerts (notifyagent.agent.alerts): off the scheduling path ------------------------------

    async def run_facts(self, job_id: int, jlgid: int) -> RunFacts | None:
        """A finished run as its alert tells it; None when its log row is gone."""
        rows = await self._rows("alert_facts", {"job": job_id, "jlgid": jlgid, "output": 4000})
        return run_facts(rows[0]) if rows else None

    async def disable_job(self, job_id: int) -> bool:
        """Disable the job (max_failures); False when it was disabled already."""
        return bool(await self._rows("alert_disable", {"job": job_id}))

    async def missed_round(self, grace: float) -> list[Overdue]:
        """The overdue jobs, those to report now marked ``new`` (one agent at a time)."""
        return [Overdue.from_row(r) for r in await self._rows("missed_round", {"grace": grace})]

    async def reap_zombie(self, pid: int) -> Reaped:
        return await self._on_connection(self.pool, lambda conn: identity.reap(conn, pid))

    async def prune_history(
        self, days: float | None, keep: int | None, batch: int = 1000
    ) -> int | None:
        """Delete old runs in batches; None when another agent holds the retention lock."""
        deleted = 0
        async with self.pool.connection() as conn:
            cur = await conn.execute(query("retention_lock"))
            row = await cur.fetchone()
            if row is None or not row["locked"]:
                return None
            try:
                while True:
                    cur = await conn.execute(
                        query("retention_delete"), {"days": days, "keep": keep, "batch": batch}
                    )
                    deleted += cur.rowcount
                    if cur.rowcount < batch:
                        return deleted
            finally:
                await conn.execute(query("retention_unlock"))

    async def unregister(self, agent: int) -> None:
        await self._rows("unregister", {"agent": agent})
