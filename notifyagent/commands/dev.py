"""``notifyagent dev [JOBS_FILE]``: develop jobs with live reload.

Without a DSN it starts a throwaway PostgreSQL cluster (local server binaries, pgagent
extension), applies the jobs file, and serves; every save of the jobs file is applied again
(an edited schedule is live within a second) and every save of the config file reloads the
settings. Ctrl-C stops the agent and removes the throwaway cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import watchfiles
from loguru import logger

from notifyagent import conninfo
from notifyagent import pgadmin as pga
from notifyagent.agent import Agent
from notifyagent.cluster import Cluster
from notifyagent.core.config import Settings
from notifyagent.errors import NotifyAgentError
from notifyagent.jobsfile import apply_file

EXAMPLE_JOBS = Path(__file__).parents[1] / "examples" / "jobs.toml"


async def _apply(dsn: str, jobs: Path, prune: bool) -> None:
    try:
        report = await apply_file(dsn, jobs, prune=prune, dry_run=False)
    except NotifyAgentError as err:
        logger.error("jobs file not applied, the jobs stay as they were: {}", err)
        return
    for line in report.splitlines():
        logger.info("apply: {}", line)


def _absolute(path: Path | None) -> str | None:
    return os.path.abspath(path) if path is not None else None


async def _watch(
    jobs: Path,
    config_file: Path | None,
    on_jobs: Callable[[], Awaitable[None]],
    on_config: Callable[[], None],
    stop: asyncio.Event,
) -> None:
    """Watch the directories (editors save by replacing the file) and filter on the names."""
    jobs_path, config_path = _absolute(jobs), _absolute(config_file)
    dirs = sorted({os.path.dirname(p) for p in (jobs_path, config_path) if p is not None})
    async for changes in watchfiles.awatch(*dirs, stop_event=stop, debounce=150, step=50):
        touched = {_absolute(Path(path)) for _, path in changes}
        if jobs_path in touched:
            await on_jobs()
        if config_path is not None and config_path in touched:
            on_config()


async def dev(
    settings: Settings,
    reload: Callable[[], Settings],
    jobs: Path | None,
    config_file: Path | None,
    pgadmin: bool = False,
) -> int:
    jobs = jobs or EXAMPLE_JOBS
    if not jobs.exists():
        raise NotifyAgentError(f"{jobs}: jobs file not found")
    # installed on first use, before anything starts
    script = await asyncio.to_thread(pga.ensure_installed, None, logger.info) if pgadmin else None
    with contextlib.ExitStack() as stack:
        throwaway = not settings.dsn
        ui_dsn = settings.dsn
        if throwaway:
            settings, reload, ui_dsn = _throwaway_database(stack, settings, reload)

        async def start_pgadmin() -> None:
            assert script is not None
            ui = await asyncio.to_thread(pga.serve_database, script, ui_dsn, "notifyagent dev")
            stack.callback(ui.stop)
            logger.info("pgAdmin 4 (desktop mode): open {}", ui.url)

        # the throwaway database holds exactly the file's jobs (jobs taken out of it go),
        # unless pgAdmin may make others
        return await _serve_and_watch(
            settings,
            reload,
            jobs,
            config_file,
            prune=throwaway and not pgadmin,
            throwaway=throwaway,
            after_apply=start_pgadmin if pgadmin else None,
        )


def _throwaway_database(
    stack: contextlib.ExitStack, settings: Settings, reload: Callable[[], Settings]
) -> tuple[Settings, Callable[[], Settings], str]:
    """Settings and reload for a fresh cluster that ``stack`` removes (reloads keep its DSN),
    and the TCP DSN pgAdmin connects with (it saves its password: no prompt)."""
    logger.info("starting a throwaway PostgreSQL cluster with the pgagent extension")
    cluster = stack.enter_context(Cluster())
    dsn = cluster.dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgagent")
    logger.info("embedded PostgreSQL ready: dsn {}", dsn)

    def reload_keep_dsn() -> Settings:
        return dataclasses.replace(reload(), dsn=dsn)

    return dataclasses.replace(settings, dsn=dsn), reload_keep_dsn, cluster.tcp_dsn()


async def _serve_and_watch(
    settings: Settings,
    reload: Callable[[], Settings],
    jobs: Path,
    config_file: Path | None,
    *,
    prune: bool,
    throwaway: bool,
    after_apply: Callable[[], Awaitable[None]] | None,
) -> int:
    dsn = settings.dsn
    agent = Agent(settings, reload=reload)
    server = asyncio.create_task(agent.serve())
    ready = asyncio.ensure_future(agent.ready.wait())
    await asyncio.wait([ready, server], return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        ready.cancel()
        return await server
    await _apply(dsn, jobs, prune)
    if after_apply is not None:
        await after_apply()
    logger.info(
        "dev mode: serving the jobs of {}; edit and save it to apply, Ctrl-C to stop (database {})",
        jobs,
        conninfo.display(dsn),
    )
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        _watch(
            jobs,
            config_file,
            lambda: _apply(dsn, jobs, prune),
            lambda: agent.request_reload("config file changed"),
            stop,
        )
    )
    try:
        return await server
    finally:
        stop.set()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if throwaway:
            logger.info("removing the throwaway cluster")
