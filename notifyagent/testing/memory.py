"""``MemoryStore``: the pgagent tables in memory, behind the same port as ``PgStore``.

It honours what the agent relies on: a claim takes only due, enabled, unclaimed jobs allowed
on the station and not locked by another session, and starts their run and first step logs;
a release finishes the log and hands the job back only to the agent holding it, keeping a
pending retry's count for the claim at its due time (notifyagent.retry); writing NULL makes
the "extension" recompute the next run (from the schedules, with this package's engine),
'-infinity' stores NULL as is. Every change that notifies in PostgreSQL notifies here, with
the same payloads, after the "transaction".
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from notifyagent.core.annotations import Texts
from notifyagent.core.model import ClaimedJob, JobState, Outcome, RunStatus, Step
from notifyagent.core.policy import Policy
from notifyagent.core.ports import Liveness, NextRunCorrection, Reaped
from notifyagent.core.schedule import Schedule, job_next_run
from notifyagent.core.timetable import EPOCH, Stored
from notifyagent.testing.tables import JobRow, RunLog, StepLog, Tables

#: (payload, sending session)
Notify = Callable[[str, int], None]
#: a client's session, and the agent's own (``MemoryStore.pids``)
CLIENT, OWN = 1, 2


def _payload_time(value: Stored) -> str:
    if value.never:
        return "i"
    if value.at is None:
        return ""
    return str((value.at - EPOCH) // timedelta(microseconds=1))


class MemoryStore:
    """The Store port in memory; ``now`` is the database's clock."""

    def __init__(self, now: Callable[[], datetime], tz: ZoneInfo | None = None) -> None:
        self.now = now
        self.tz = tz or ZoneInfo("UTC")
        self.t = Tables()
        self.pids: set[int] = {OWN}
        #: how late (seconds) the server's clock reading in the rows reaches the agent, as a
        #: slow answer makes it: the agent's estimate of the server's clock lags by that much
        self.read_lag = 0.0
        self._listeners: list[Notify] = []
        self._ids = itertools.count(100)

    # -- what clients do (tests) -------------------------------------------------------------

    def listen(self, notify: Notify) -> None:
        self._listeners.append(notify)

    def add_job(
        self,
        name: str,
        steps: Iterable[Step] = (),
        schedules: Iterable[Schedule] = (),
        *,
        enabled: bool = True,
        host_agent: str = "",
    ) -> int:
        job_id = next(self._ids)
        self.t.jobs[job_id] = JobRow(job_id, name, enabled, host_agent)
        self.t.steps[job_id] = tuple(steps)
        self._notify(f"job:{job_id}", CLIENT)
        schedules = tuple(schedules)
        if schedules:
            self.set_schedules(job_id, schedules)
        return job_id

    def set_schedules(self, job_id: int, schedules: Iterable[Schedule]) -> None:
        """Replace a job's schedules; the extension recomputes its next run (if enabled)."""
        self.t.schedules[job_id] = tuple(schedules)
        row = self.t.jobs[job_id]
        if row.enabled and self._recompute(row):
            self._notify(f"recompute:{job_id}={_payload_time(self._stored(row))}", CLIENT)
        self._notify(f"schedule:{job_id}={_payload_time(self._stored(row))}", CLIENT)

    def set_policy(self, job_id: int, policy: Policy | None) -> None:
        if policy is None:
            self.t.policies.pop(job_id, None)
        else:
            self.t.policies[job_id] = policy
        self._notify(f"policy:{job_id}", CLIENT)

    def set_descriptions(self, job_id: int, texts: Texts) -> None:
        """pgAdmin saved the job's comment or a step's description (its annotations)."""
        self.t.descriptions[job_id] = texts
        self._notify(f"policy:{job_id}", CLIENT)

    def run_now(self, job_id: int) -> None:
        """pgAdmin's Run now."""
        self.t.jobs[job_id].next_run = self.now()
        self.t.jobs[job_id].never = False
        self._notify(self._written(self.t.jobs[job_id]), CLIENT)

    def _written(self, *rows: JobRow) -> str:
        """The notification of an UPDATE that wrote these rows' next runs (with the values)."""
        return "job:" + ",".join(f"{r.job_id}={_payload_time(self._stored(r))}" for r in rows)

    def cancel_job(self, job_id: int, who: str, step_only: bool = False) -> bool:
        """``notifyagent.cancel_job()``: whether the job runs; if so, ask its agent to stop it."""
        row = self.t.jobs.get(job_id)
        if row is None or row.agent_id is None:
            return False
        kind = "cancel-step" if step_only else "cancel"
        self._notify(f"{kind}:{job_id}:{who}", CLIENT)
        return True

    def set_next_run(self, job_id: int, value: datetime | None, recomputed: bool = False) -> None:
        """A client writes the next run (``recomputed``: as the extension's recompute would,
        e.g. a value its function got wrong)."""
        row = self.t.jobs[job_id]
        # the extension stores no next run for a disabled job
        row.next_run, row.never = (value if row.enabled else None), False
        if recomputed:
            self._notify(f"recompute:{job_id}={_payload_time(self._stored(row))}", CLIENT)
        else:
            self._notify(self._written(row), CLIENT)

    def register(self, agent: int, station: str) -> None:
        self.t.agents[agent] = station

    def runs(self, job_id: int) -> list[RunLog]:
        return [r for r in self.t.runs.values() if r.job_id == job_id]

    def statuses(self, job_id: int) -> list[RunStatus]:
        return [r.status for r in self.runs(job_id)]

    # -- the port ------------------------------------------------------------------------------

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def check(self) -> None:
        pass

    async def job_states(self, ids: Sequence[int] | None) -> list[JobState]:
        now = self.now() - timedelta(seconds=self.read_lag)
        wanted = (
            self.t.jobs if ids is None else {i: self.t.jobs[i] for i in ids if i in self.t.jobs}
        )
        return [
            JobState(
                r.job_id,
                r.name,
                r.enabled,
                r.host_agent,
                r.agent_id,
                r.next_run,
                r.never,
                now,
                retry=self._retry(r) > 0,
                ran=r.last_run is not None and r.next_run is not None and r.last_run >= r.next_run,
            )
            for r in wanted.values()
        ]

    async def schedules(self, ids: Sequence[int] | None) -> list[Schedule]:
        jobs = self.t.schedules.keys() if ids is None else ids
        return [s for j in jobs for s in self.t.schedules.get(j, ())]

    async def policies(self, ids: Sequence[int] | None) -> dict[int, Policy]:
        return {j: p for j, p in self.t.policies.items() if ids is None or j in ids}

    async def descriptions(self, ids: Sequence[int] | None) -> dict[int, Texts]:
        return {j: t for j, t in self.t.descriptions.items() if ids is None or j in ids}

    async def correct_next_runs(self, corrections: Sequence[NextRunCorrection]) -> set[int]:
        done = set()
        for job_id, seen, value in corrections:
            row = self.t.jobs.get(job_id)
            if row is None or row.agent_id is not None or not row.enabled:
                continue
            if (not row.never and row.next_run == seen) or (row.never and seen is None):
                row.next_run, row.never = value, False
                done.add(job_id)
        if done:
            self._notify(self._written(*(self.t.jobs[j] for j in sorted(done))), OWN)
        return done

    async def claim(
        self, ids: Sequence[int], *, limit: int, station: str, agent: int, ahead: float = 0.0
    ) -> list[ClaimedJob]:
        now = self.now()
        rows = (self.t.jobs[i] for i in ids if i in self.t.jobs)
        horizon = now + timedelta(seconds=ahead)
        due = sorted(
            (r for r in rows if self._claimable(r, horizon, station)),
            key=lambda r: (r.next_run, r.job_id),
        )
        return [self._start_run(r, agent, now) for r in due[:limit]]

    def _claimable(self, r: JobRow, now: datetime, station: str) -> bool:
        return (
            r.enabled
            and r.agent_id is None
            and r.next_run is not None
            and r.next_run <= now
            and r.host_agent in ("", station)
            and r.job_id not in self.t.locked
        )

    def _start_run(self, row: JobRow, agent: int, now: datetime) -> ClaimedJob:
        assert row.next_run is not None
        start = max(now, row.next_run)
        row.agent_id, row.last_run = agent, start
        jlgid = next(self._ids)
        self.t.runs[jlgid] = RunLog(jlgid, row.job_id, RunStatus.RUNNING, start)
        steps = self.t.steps.get(row.job_id, ())
        first = self._log_step(jlgid, steps[0].id) if steps else None
        lag = (now - row.next_run).total_seconds()
        return ClaimedJob(
            row.job_id, row.name, jlgid, lag, steps, first, row.next_run, start, self._retry(row)
        )

    def _retry(self, row: JobRow) -> int:
        """The attempts of notifyagent.retry when the job's next run is that retry (else 0)."""
        attempts, due = self.t.retries.get(row.job_id, (0, None))
        return attempts if due is not None and due == row.next_run else 0

    def _log_step(self, jlgid: int, step_id: int) -> int:
        jslid = next(self._ids)
        self.t.step_logs[jslid] = StepLog(jslid, jlgid, step_id, RunStatus.RUNNING)
        return jslid

    async def step_start(self, jlgid: int, step_id: int) -> int | None:
        run = self.t.runs[jlgid]
        if not any(s.id == step_id for s in self.t.steps.get(run.job_id, ())):
            return None
        return self._log_step(jlgid, step_id)

    async def step_finish(self, jslid: int, status: RunStatus, outcome: Outcome) -> bool:
        log = self.t.step_logs.get(jslid)
        if log is None or log.status is not RunStatus.RUNNING:
            return False
        log.status, log.result, log.output = status, outcome.result, outcome.output
        return True

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
        self._finish_log(job.jlgid, status)
        row = self.t.jobs.get(job.job_id)
        if row is None or row.agent_id != agent:
            return False
        row.agent_id = None
        if recompute:
            self._recompute(row)
            payload = f"recompute:{row.job_id}={_payload_time(self._stored(row))}"
        else:
            # the extension stores no next run for a disabled job
            row.next_run, row.never = (next_run if row.enabled else None), False
            payload = self._written(row)
        if attempts > 0 and row.next_run is not None:
            self.t.retries[row.job_id] = (attempts, row.next_run)
        else:
            self.t.retries.pop(row.job_id, None)
        self._notify(payload, OWN)
        return True

    def _finish_log(self, jlgid: int, status: RunStatus) -> None:
        run = self.t.runs.get(jlgid)
        if run is None or run.status is not RunStatus.RUNNING:
            return
        run.status = status
        run.duration = None if status is RunStatus.ABORTED else self.now() - run.start
        if status is RunStatus.ABORTED:
            for log in self.t.step_logs.values():
                if log.jlgid == jlgid and log.status is RunStatus.RUNNING:
                    log.status = RunStatus.ABORTED

    async def release_without_recompute(
        self, job: ClaimedJob, status: RunStatus, agent: int
    ) -> bool:
        self._finish_log(job.jlgid, status)
        row = self.t.jobs.get(job.job_id)
        if row is None or row.agent_id != agent:
            return False
        row.agent_id, row.next_run, row.never = None, None, True
        self._notify(self._written(row), OWN)
        return True

    async def connection_room(self) -> int:
        return 1_000

    async def liveness(self, ping: str, grace: float | None = None) -> Liveness:
        self._notify(ping, OWN)
        return Liveness(())

    async def reap_zombie(self, pid: int) -> Reaped:
        held = [r for r in self.t.jobs.values() if r.agent_id == pid]
        ids, running = {r.job_id for r in held}, RunStatus.RUNNING
        runs = [r for r in self.t.runs.values() if r.job_id in ids and r.status is running]
        jlgids = {r.jlgid for r in runs}
        steps = [s for s in self.t.step_logs.values() if s.jlgid in jlgids and s.status is running]
        for run in runs:
            self._finish_log(run.jlgid, RunStatus.ABORTED)
        for row in held:
            row.agent_id = None
            row.next_run = None
            self._recompute(row)
        if held:
            items = ",".join(f"{r.job_id}={_payload_time(self._stored(r))}" for r in held)
            self._notify(f"recompute:{items}", OWN)
        return Reaped(self.t.agents.pop(pid, None), len(runs), len(steps), len(held))

    async def prune_history(self, days: float | None, keep: int | None) -> int | None:
        now, doomed = self.now(), set()
        for job_id in {r.job_id for r in self.t.runs.values()}:
            finished = sorted(self.runs(job_id), key=lambda r: -r.jlgid)
            for n, run in enumerate(finished, 1):
                if run.status is RunStatus.RUNNING:
                    continue
                old = days is not None and run.start < now - timedelta(days=days)
                if old or (keep is not None and n > keep):
                    doomed.add(run.jlgid)
        for jlgid in doomed:
            del self.t.runs[jlgid]
        self.t.step_logs = {k: v for k, v in self.t.step_logs.items() if v.jlgid not in doomed}
        return len(doomed)

    async def unregister(self, agent: int) -> None:
        self.t.agents.pop(agent, None)

    # -- the extension's triggers ------------------------------------------------------------

    def _recompute(self, row: JobRow) -> bool:
        """What writing NULL does: the earliest next run of the enabled schedules; 'infinity'
        when they name no date that exists; NULL without any (or for a disabled job).
        Whether the stored value changed."""
        before = self._stored(row)
        now = self.now()
        schedules = self.t.schedules.get(row.job_id, ()) if row.enabled else ()
        row.next_run = job_next_run(schedules, now, self.tz) if schedules else None
        live = [s for s in schedules if s.enabled and (s.end is None or s.end > now)]
        row.never = row.next_run is None and bool(live)
        return self._stored(row) != before

    @staticmethod
    def _stored(row: JobRow) -> Stored:
        return Stored(None if row.never else row.next_run, row.never)

    def _notify(self, payload: str, sender: int) -> None:
        for listener in self._listeners:
            listener(payload, sender)

    def snapshot(self, job_id: int) -> JobRow:
        return replace(self.t.jobs[job_id])
