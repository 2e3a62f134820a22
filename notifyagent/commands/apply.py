"""``notifyagent apply`` / ``export``: a TOML jobs file into the database, and back out."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from loguru import logger

from notifyagent.jobsfile import apply_file, export_jobs


async def apply(dsn: str, jobs_file: Path, prune: bool, dry_run: bool) -> int:
    sys.stdout.write(await apply_file(dsn, jobs_file, prune=prune, dry_run=dry_run))
    return 0


async def export(dsn: str, output: Path | None) -> int:
    """Write the jobs file to ``output``, or to standard output."""
    text = await export_jobs(dsn)
    if output is None:
        sys.stdout.write(text)
    else:
        await asyncio.to_thread(output.write_text, text)
        logger.info("wrote {}", output)
    return 0
