"""Leaving the connections of a DSN that was changed on reload.

Jobs running at the change finish on the old connections. Whether the new DSN names the same
database is known only once the listener registered under it and looked for the old identity
there: if found, the runs' claims moved to the new identity and they are released as usual;
if not, the new DSN names another database, where the runs are released and the old agent
row is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import psycopg
from loguru import logger

from notifyagent.agent.connections import Connections


class Departure:
    def __init__(
        self, conns: Connections, agent: int | None, runs: Sequence[asyncio.Task[None]]
    ) -> None:
        self._conns = conns
        self._agent = agent
        self._runs = list(runs)
        self._other_database: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def settle(self, other_database: bool) -> bool:
        """The listener registered under the new DSN; whether the runs are to be released in
        the old database (so they no longer belong to the new one)."""
        leaving = other_database and self._agent is not None
        if leaving:
            self._conns.departed_as = self._agent
        self._other_database.set_result(other_database)
        return leaving

    async def retire(self, opening: Awaitable[None]) -> None:
        """Open the new pool; once the runs ended, leave the old database if it is another
        one, and close the old connections."""
        await opening
        await asyncio.gather(*self._runs, return_exceptions=True)
        if await self._other_database and self._agent is not None:
            try:
                await self._conns.store.unregister(self._agent)
                logger.info("left the old database: agent {} unregistered there", self._agent)
            except (psycopg.Error, OSError) as err:
                logger.warning("could not delete agent row {} there: {}", self._agent, err)
        await self._conns.close()
