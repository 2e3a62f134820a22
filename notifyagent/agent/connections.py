"""The connections of one DSN: the bookkeeping pool and the step runner's connections."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from notifyagent.agent.steps import StepRunner
from notifyagent.core.config import Settings
from notifyagent.core.ports import Steps, Store
from notifyagent.db.store import PgStore


@dataclass(eq=False)
class Connections:
    """A run keeps the connections it was claimed with: a DSN change does not move it."""

    store: Store
    steps: Steps
    #: set when a DSN change left for another database: the agent id our runs there hold
    departed_as: int | None = None

    @classmethod
    def open_for(cls, s: Settings) -> Connections:
        """Connections for ``s``; the pool stays closed until ``store.open()``."""
        store = PgStore(s.dsn, max_size=min(s.max_concurrency, 8) + 2)
        steps = StepRunner(
            s.dsn, max_output=s.max_output, batch_steps=s.batch_steps, max_idle=s.max_concurrency
        )
        return cls(store, steps)

    async def close(self) -> None:
        await self.store.close()
        await self.steps.close()


def schema_gone(err: BaseException) -> bool:
    """Whether ``err`` says the pgagent (or notifyagent) objects are missing."""
    return isinstance(
        err,
        psycopg.errors.UndefinedTable
        | psycopg.errors.UndefinedFunction
        | psycopg.errors.InvalidSchemaName,
    )
