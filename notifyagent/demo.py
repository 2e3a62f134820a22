"""``python -m notifyagent.demo``: a throwaway PostgreSQL with example jobs and an agent.

What the README's first command runs on a fresh machine: it shows jobs running within a
minute and leaves nothing behind on Ctrl-C (the cluster and its temp dir are removed).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import psycopg
from loguru import logger

from notifyagent import log
from notifyagent.agent import Agent
from notifyagent.cluster import Cluster
from notifyagent.config import Settings
from notifyagent.sqlfiles import script


def main() -> int:
    log.setup("INFO")
    logger.info("starting a throwaway PostgreSQL cluster with the pgagent extension")
    with Cluster() as cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgagent")
        settings = Settings(dsn=dsn, station=socket.gethostname())

        async def serve() -> int:
            agent = Agent(settings)
            # the example jobs are created once the agent listens, so their "Run now" is seen
            server = asyncio.create_task(agent.serve())
            ready = asyncio.ensure_future(agent.ready.wait())
            await asyncio.wait([ready, server], return_when=asyncio.FIRST_COMPLETED)
            if server.done():
                return await server
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(script("demo_jobs").encode())
            logger.info(
                "demo ready: 3 example jobs; try psql '{}' -c 'TABLE pgagent.pga_joblog' "
                "(Ctrl-C stops the agent and removes the cluster)",
                dsn,
            )
            return await server

        code = asyncio.run(serve())
    logger.info("throwaway cluster removed")
    return code


if __name__ == "__main__":
    sys.exit(main())
