"""Command line: ``notifyagent <command> [options]`` (thin: parse, configure, hand over)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loguru import logger

from notifyagent import __version__, conninfo, log
from notifyagent.errors import ConfigError, NotifyAgentError

DSN_HELP = (
    "libpq connection string or postgresql:// URL of the database holding the pgagent schema "
    "(env NOTIFYAGENT_DSN; when neither is given libpq's PG* variables apply)"
)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"NOTIFYAGENT_{name}", default)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dsn", default=None, help=DSN_HELP)
    p.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        type=str.upper,
        choices=log.LEVELS,
        help="log level (env NOTIFYAGENT_LOG_LEVEL; default %(default)s)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)"
        ) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifyagent",
        description="Event-driven, drop-in replacement for pgAgent: runs the jobs of the "
        "pgagent schema (as made in pgAdmin) milliseconds after they are due.",
    )
    parser.add_argument("--version", action="version", version=f"notifyagent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="verify the connection and the pgagent schema; print a report")
    _add_common(p)

    p = sub.add_parser("install", help="install or upgrade notifyagent's triggers (idempotent)")
    _add_common(p)
    p.add_argument("--force", action="store_true", help="re-apply even if up to date")

    p = sub.add_parser("uninstall", help="remove notifyagent's schema and triggers")
    _add_common(p)

    p = sub.add_parser(
        "next",
        help="print the next run times of a job, or of a schedule given with --minutes etc.",
        description="The next run times of JOB (id or name) from the database, or, without "
        "JOB, of the schedule given inline (fields like pgAdmin's Repeat tab: comma-separated "
        "values and ranges; an omitted field means any).",
    )
    _add_common(p)
    p.add_argument("job", nargs="?", help="job id or name")
    p.add_argument("--count", type=_positive_int, default=5, help="how many runs (default 5)")
    p.add_argument(
        "--timezone",
        type=_zone,
        default=_env("TIMEZONE", "") or None,
        help="zone the schedule is read in (default: the database's TimeZone; inline: UTC)",
    )
    for field, example in (
        ("minutes", "0,30"),
        ("hours", "8-17"),
        ("weekdays", "mon-fri"),
        ("monthdays", "1,15,last"),
        ("months", "jan-mar"),
    ):
        p.add_argument(f"--{field}", metavar="LIST", help=f"inline schedule, e.g. {example}")
    p.add_argument(
        "--start",
        type=dt.datetime.fromisoformat,
        help="inline schedule start (ISO 8601, default now)",
    )
    p.add_argument("--end", type=dt.datetime.fromisoformat, help="inline schedule end")

    p = sub.add_parser("serve", help="run the agent (production)")
    _add_common(p)
    p.add_argument(
        "--station",
        default=_env("STATION", socket.gethostname()),
        help="name of this agent, matched against a job's host agent (jobhostagent) and "
        "stored as pga_jobagent.jagstation (env NOTIFYAGENT_STATION; default: host name)",
    )
    p.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=int(_env("MAX_CONCURRENCY", "32")),
        help="jobs running at once; further due jobs wait their turn "
        "(env NOTIFYAGENT_MAX_CONCURRENCY; default %(default)s)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=_non_negative_float,
        default=float(_env("SHUTDOWN_TIMEOUT", "30")),
        help="seconds running jobs may take to finish after SIGTERM before they are cancelled "
        "(env NOTIFYAGENT_SHUTDOWN_TIMEOUT; default %(default)s)",
    )
    p.add_argument(
        "--liveness-interval",
        type=_non_negative_float,
        default=float(_env("LIVENESS_INTERVAL", "30")),
        help="seconds between checks for dead agents and of the notification round trip "
        "(env NOTIFYAGENT_LIVENESS_INTERVAL; default %(default)s)",
    )
    p.add_argument(
        "--max-output",
        type=_positive_int,
        default=int(_env("MAX_OUTPUT", str(1024 * 1024))),
        help="bytes of step output stored in pga_jobsteplog.jsloutput; more is cut with a "
        "marker (env NOTIFYAGENT_MAX_OUTPUT; default %(default)s)",
    )
    p.add_argument(
        "--timezone",
        type=_zone,
        default=_env("TIMEZONE", "") or None,
        help="IANA time zone in which schedules (hours, minutes, days, exceptions) are read "
        "(env NOTIFYAGENT_TIMEZONE; default: the database's TimeZone setting, which is what "
        "pgAdmin uses when it saves a schedule)",
    )
    p.add_argument(
        "--no-batch-steps",
        action="store_true",
        default=_env("NO_BATCH_STEPS", "") not in ("", "0", "false"),
        help="refuse to run batch (shell) steps: they fail with a clear output "
        "(env NOTIFYAGENT_NO_BATCH_STEPS)",
    )
    return parser


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(coro)
    except NotifyAgentError as err:
        logger.error("{}", err)
        return err.exit_code


async def _check(args: argparse.Namespace) -> int:
    from notifyagent.check import run_check

    report = await run_check(conninfo.resolve_dsn(args.dsn))
    print(report.render())
    return 0


async def _install(args: argparse.Namespace) -> int:
    from notifyagent import db, schema

    async with await db.connect(conninfo.resolve_dsn(args.dsn)) as conn:
        if not await schema.install(conn, force=args.force):
            logger.info(
                "notifyagent triggers are up to date (version {})",
                schema.NOTIFYAGENT_SCHEMA_VERSION,
            )
    return 0


async def _uninstall(args: argparse.Namespace) -> int:
    from notifyagent import db, schema

    async with await db.connect(conninfo.resolve_dsn(args.dsn)) as conn:
        await schema.uninstall(conn)
    logger.info("removed notifyagent's schema and triggers")
    return 0


async def _next(args: argparse.Namespace) -> int:
    from notifyagent import preview

    fields = {f: getattr(args, f) for f in preview.FIELDS}
    if args.job is None:
        tz = ZoneInfo(args.timezone or "UTC")
        start = args.start.replace(tzinfo=args.start.tzinfo or tz) if args.start else None
        end = args.end.replace(tzinfo=args.end.tzinfo or tz) if args.end else None
        schedule = preview.inline_schedule(fields, start, end)
        runs = preview.merge_runs([schedule], dt.datetime.now(dt.UTC), tz, args.count)
        print(preview.render(runs, tz))
        return 0
    if any(fields.values()) or args.start or args.end:
        raise ConfigError("give either JOB or an inline schedule (--minutes ...), not both")
    label, runs, tz = await preview.job_runs(
        conninfo.resolve_dsn(args.dsn), args.job, args.count, args.timezone
    )
    print(label)
    print(preview.render(runs, tz))
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from notifyagent.agent import Agent
    from notifyagent.config import Settings

    settings = Settings(
        dsn=conninfo.resolve_dsn(args.dsn),
        station=args.station,
        max_concurrency=args.max_concurrency,
        shutdown_timeout=args.shutdown_timeout,
        liveness_interval=args.liveness_interval,
        max_output=args.max_output,
        batch_steps=not args.no_batch_steps,
        timezone=args.timezone,
    )
    return await Agent(settings).serve()


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "check": _check,
    "install": _install,
    "uninstall": _uninstall,
    "serve": _serve,
    "next": _next,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.setup(args.log_level)
    return _run(COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
