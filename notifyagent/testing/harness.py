"""An agent without PostgreSQL: the real scheduler and runner on a ``MemoryStore``, steps that
only take (fake) time, and a fake clock. What the listener does on a connection (register,
route notifications) is done here directly."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from zoneinfo import ZoneInfo

from notifyagent.agent.connections import Connections
from notifyagent.agent.listener import received
from notifyagent.agent.runner import JobRunner, finish_or_cancel
from notifyagent.agent.scheduler import Scheduler
from notifyagent.core import events
from notifyagent.core.config import Settings
from notifyagent.core.model import Outcome, RunStatus, Step, StepKind
from notifyagent.obs.metrics import Metrics
from notifyagent.testing.clock import FakeClock
from notifyagent.testing.memory import MemoryStore

AGENT_ID = 1000


def step(code: str, name: str = "step", onerror: RunStatus = RunStatus.FAILED) -> Step:
    """A step for :class:`MemorySteps`: ``sleep N``, ``fail`` or ``ok``, joined by ``;``."""
    return Step(0, name, StepKind.SQL, code, "", "memory", onerror)


def steps(*codes: str) -> tuple[Step, ...]:
    return tuple(replace(step(code, f"step{n}"), id=n) for n, code in enumerate(codes, 1))


class MemorySteps:
    """Runs :func:`step` code: ``sleep N`` waits N seconds, ``fail`` fails the step."""

    max_output = 1024
    batch_steps = True

    def __init__(self) -> None:
        #: (job id, step name) in the order they started
        self.started: list[tuple[int, str]] = []

    async def run(self, job_id: int, step: Step) -> Outcome:
        self.started.append((job_id, step.name))
        for command in step.code.split(";"):
            verb, _, arg = command.strip().partition(" ")
            if verb == "sleep":
                await asyncio.sleep(float(arg))
            elif verb == "fail":
                return Outcome(False, -1, "failed on purpose")
        return Outcome(True, 1, "")

    def limit_connections(self, room: int) -> None:
        pass

    async def warm(self, step: Step | None = None) -> None:
        pass

    async def close(self) -> None:
        pass


class MemoryLink:
    """The listener's part for the scheduler: identity and connection state."""

    def __init__(self, agent_id: int) -> None:
        self.agent_id: int | None = agent_id
        self.connected = asyncio.Event()

    async def schema_lost(self, err: BaseException) -> None:
        self.connected.clear()

    async def settled(self) -> None:
        """The id changes only when a test sets it."""


class MemoryAgent:
    """``async with MemoryAgent(store, clock) as agent:`` runs the scheduler until the block
    ends; :meth:`drain` is the shutdown's wait for the running jobs."""

    def __init__(
        self, store: MemoryStore, clock: FakeClock, settings: Settings | None = None
    ) -> None:
        self.settings = settings or Settings(dsn="memory", station="memory")
        self.store = store
        self.steps = MemorySteps()
        self.link = MemoryLink(AGENT_ID)
        self.stop = asyncio.Event()
        self.abort = asyncio.Event()
        metrics = Metrics()
        conns = Connections(store, self.steps)
        runner = JobRunner(self._settings, self.link, self.abort, metrics)
        self.scheduler = Scheduler(
            self._settings, lambda: conns, self.link, runner, metrics, self.stop, wall=clock.wall
        )
        self._task: asyncio.Task[None] | None = None
        store.listen(self._notified)

    def _settings(self) -> Settings:
        return self.settings

    def _notified(self, payload: str, sender: int) -> None:
        event = received(payload, sender, self.store.pids)
        if isinstance(event, events.JobsChanged | events.PoliciesChanged | events.Resync):
            # delivered after the writing "transaction", as NOTIFY is
            asyncio.get_running_loop().call_soon(self.scheduler.notify, event)
        elif isinstance(event, events.CancelJob):
            asyncio.get_running_loop().call_soon(self.scheduler.cancel, event)

    async def __aenter__(self) -> MemoryAgent:
        self.store.register(AGENT_ID, self.settings.station)
        self.link.connected.set()
        self.scheduler.connected(ZoneInfo("UTC"))
        self._task = asyncio.create_task(self.scheduler.run())
        await self.scheduler.ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain(0)

    async def drain(self, seconds: float) -> None:
        """Stop: no new claims; running jobs may finish for ``seconds``, then are cancelled."""
        self.stop.set()
        self.scheduler.wake()
        await finish_or_cancel(self.scheduler.running, seconds, self.abort)
        if self._task is not None:
            await self._task
