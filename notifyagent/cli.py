"""Command line: ``notifyagent <command> [options]``. Thin: parse the arguments, configure
logging and settings, hand over to the command in :mod:`notifyagent.commands`."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from notifyagent import __version__, conninfo
from notifyagent.core import config
from notifyagent.core.observability import LEVELS
from notifyagent.errors import NotifyAgentError
from notifyagent.obs import log

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

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
        choices=LEVELS,
        help="log level (env NOTIFYAGENT_LOG_LEVEL; default %(default)s)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _zone(text: str) -> str:
    try:
        return str(config.BY_NAME["timezone"].parse(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {err}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifyagent",
        description="Event-driven, drop-in replacement for pgAgent: runs the jobs of the "
        "pgagent schema (as made in pgAdmin) milliseconds after they are due.",
    )
    parser.add_argument("--version", action="version", version=f"notifyagent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_database_commands(sub)
    _add_next(sub)
    _add_jobs_file_commands(sub)
    _add_operator_commands(sub)
    p = sub.add_parser(
        "serve",
        help="run the agent (production)",
        description="Run the agent until SIGTERM/SIGINT; SIGHUP reloads the config file. Every "
        "option can also be set in the environment (NOTIFYAGENT_<OPTION>) or in the TOML "
        "config file; the command line wins over the environment, which wins over the file.",
    )
    add_agent_options(p)
    p = sub.add_parser("alert", help="alert test: send a sample alert to check destinations")
    p.add_argument("action", choices=["test"])
    p.add_argument("--to", action="append", metavar="URL", help="this Apprise URL (repeatable)")
    add_agent_options(p)  # without --to: alert_urls of --config, the environment or the flags
    return parser


def _add_database_commands(sub: Subparsers) -> None:
    p = sub.add_parser("check", help="verify the connection and the pgagent schema; print a report")
    _add_common(p)

    p = sub.add_parser("install", help="install or upgrade notifyagent's triggers (idempotent)")
    _add_common(p)
    p.add_argument("--force", action="store_true", help="re-apply even if up to date")

    p = sub.add_parser("uninstall", help="remove notifyagent's schema and triggers")
    _add_common(p)


#: the inline schedule options of ``next`` (the fields of core.fields), with an example each
FIELD_EXAMPLES = {
    "minutes": "0,30",
    "hours": "8-17",
    "weekdays": "mon-fri",
    "monthdays": "1,15,last",
    "months": "jan-mar",
}


def _add_next(sub: Subparsers) -> None:
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
    for field, example in FIELD_EXAMPLES.items():
        p.add_argument(f"--{field}", metavar="LIST", help=f"inline schedule, e.g. {example}")
    p.add_argument(
        "--cron",
        metavar="LINE",
        help="inline schedule as a crontab line, e.g. '*/15 8-17 * * mon-fri' (instead of "
        "--minutes etc.)",
    )
    p.add_argument(
        "--start",
        type=dt.datetime.fromisoformat,
        help="inline schedule start (ISO 8601, default now)",
    )
    p.add_argument("--end", type=dt.datetime.fromisoformat, help="inline schedule end")


def _add_jobs_file_commands(sub: Subparsers) -> None:
    p = sub.add_parser(
        "dev",
        help="develop jobs: throwaway database (unless --dsn), jobs file applied on every save",
        description="Without --dsn: start a throwaway PostgreSQL with the pgagent extension. "
        "Apply JOBS_FILE (default: the example shipped with notifyagent), serve, and apply it "
        "again on every save; the config file is reloaded on every save too. Ctrl-C stops "
        "everything and removes the throwaway cluster.",
    )
    p.add_argument("jobs_file", nargs="?", type=Path, help="TOML jobs file")
    p.add_argument(
        "--pgadmin",
        action="store_true",
        help="also start pgAdmin 4 on loopback, connected to the database (installed on first "
        "use); jobs made there are kept",
    )
    add_agent_options(p)

    p = sub.add_parser(
        "apply",
        help="make the database's jobs match a TOML jobs file (prints the diff)",
        description="Sync JOBS_FILE into the pgagent tables in one transaction, matching jobs "
        "by name; applying the same file twice changes nothing. Jobs not in the file (made "
        "in pgAdmin, say) are left alone unless --prune is given.",
    )
    _add_common(p)
    p.add_argument("jobs_file", type=Path, help="TOML jobs file")
    p.add_argument("--prune", action="store_true", help="delete jobs that are not in the file")
    p.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")

    p = sub.add_parser("export", help="write the database's jobs as a TOML jobs file")
    _add_common(p)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")


def _add_operator_commands(sub: Subparsers) -> None:
    p = sub.add_parser(
        "status",
        help="agents, and jobs with next/last run and result; with JOB: its effective policy",
    )
    _add_common(p)
    p.add_argument(
        "job",
        nargs="?",
        help="job id or name: the policy it runs with, where each value came from "
        "(job_policy row, annotation, default) and its annotation problems",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--missed-grace", type=float, default=None, metavar="S", help="overdue after S s (60)"
    )

    p = sub.add_parser("run", help="run a job now (as pgAdmin's Run now); --wait follows it")
    _add_common(p)
    p.add_argument("job", help="job id or name")
    p.add_argument("--wait", action="store_true", help="wait for the run and print each step")
    p.add_argument("--timeout", type=float, default=None, help="with --wait: give up after S s")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--step", metavar="NAME", help="run only this step (name or id), as a run of the job"
    )

    p = sub.add_parser("cancel", help="stop a running job (or with --step its running step)")
    _add_common(p)
    p.add_argument("job", help="job id or name")
    p.add_argument(
        "--step",
        action="store_true",
        help="cancel only the running step; its on-error rule decides whether the job goes on",
    )

    p = sub.add_parser("history", help="the last runs of a job with their steps and output")
    _add_common(p)
    p.add_argument("job", help="job id or name")
    p.add_argument("--limit", type=_positive_int, default=10, help="runs to show (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_agent_options(p: argparse.ArgumentParser) -> None:
    """``--config`` and one flag per option of :data:`config.OPTIONS` (values parsed later,
    so that precedence and validation live in one place)."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with any of the options below, e.g. max_concurrency = 16 "
        "(env NOTIFYAGENT_CONFIG); reloaded on SIGHUP",
    )
    for opt in config.OPTIONS:
        if opt.name == "batch_steps":
            p.add_argument(
                "--no-batch-steps",
                dest="batch_steps",
                action="store_const",
                const=False,
                default=None,
                help=f"refuse batch (shell) steps: they fail with a clear output "
                f"(env {opt.env}=false)",
            )
            continue
        p.add_argument(
            opt.flag, dest=opt.name, default=None, metavar=opt.name.split("_")[-1].upper(),
            help=f"{opt.help} (env {opt.env})",
        )  # fmt: skip


def agent_settings(
    args: argparse.Namespace,
) -> tuple[config.Settings, Callable[[], config.Settings]]:
    """The settings for ``serve``/``dev``, and how to read them again on a reload."""
    cli_values = {o.name: getattr(args, o.name, None) for o in config.OPTIONS}
    path = config.config_path(getattr(args, "config", None))

    def load() -> config.Settings:
        settings = config.resolve(cli_values, os.environ, path)
        conninfo.register_secrets(settings.dsn)
        return settings

    return load(), load


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(coro)
    except NotifyAgentError as err:
        logger.error("{}", err)
        return err.exit_code


# One function per command: the command's module is imported only when it runs (``check``
# need not load the agent), and each call says which arguments the command takes.


def _dsn(args: argparse.Namespace) -> str:
    return conninfo.resolve_dsn(args.dsn)


async def _check(args: argparse.Namespace) -> int:
    from notifyagent.commands.check import check

    return await check(_dsn(args))


async def _install(args: argparse.Namespace) -> int:
    from notifyagent.commands.install import install

    return await install(_dsn(args), args.force)


async def _uninstall(args: argparse.Namespace) -> int:
    from notifyagent.commands.install import uninstall

    return await uninstall(_dsn(args))


async def _next(args: argparse.Namespace) -> int:
    from notifyagent.commands.next import next_times

    fields = {f: getattr(args, f) for f in (*FIELD_EXAMPLES, "cron")}
    return await next_times(
        _dsn(args), args.job, args.count, args.timezone, fields, args.start, args.end
    )


async def _apply(args: argparse.Namespace) -> int:
    from notifyagent.commands.apply import apply

    return await apply(_dsn(args), args.jobs_file, args.prune, args.dry_run)


async def _export(args: argparse.Namespace) -> int:
    from notifyagent.commands.apply import export

    return await export(_dsn(args), args.output)


async def _status(args: argparse.Namespace) -> int:
    if args.job is not None:
        from notifyagent.commands.policy import job_status

        return await job_status(_dsn(args), args.job, args.json)
    from notifyagent.commands.status import status

    return await status(_dsn(args), args.json, args.missed_grace)


async def _run_job(args: argparse.Namespace) -> int:
    from notifyagent.commands.run import run

    return await run(_dsn(args), args.job, args.wait, args.timeout, args.json, args.step)


async def _cancel(args: argparse.Namespace) -> int:
    from notifyagent.commands.cancel import cancel

    return await cancel(_dsn(args), args.job, args.step)


async def _history(args: argparse.Namespace) -> int:
    from notifyagent.commands.history import history

    return await history(_dsn(args), args.job, args.limit, args.json)


async def _dev(args: argparse.Namespace) -> int:
    from notifyagent.commands.dev import dev

    settings, reload = agent_settings(args)
    log.setup(settings.log_level, settings.log_format)
    return await dev(
        settings, reload, args.jobs_file, config.config_path(args.config), args.pgadmin
    )


async def _alert(args: argparse.Namespace) -> int:
    from notifyagent.commands.alert import alert_test

    return await alert_test(agent_settings(args)[0], args.to)


async def _serve(args: argparse.Namespace) -> int:
    from notifyagent.commands.serve import serve

    settings, reload = agent_settings(args)
    log.setup(settings.log_level, settings.log_format)
    return await serve(settings, reload)


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "check": _check,
    "install": _install,
    "uninstall": _uninstall,
    "serve": _serve,
    "dev": _dev,
    "next": _next,
    "status": _status,
    "apply": _apply,
    "export": _export,
    "run": _run_job,
    "cancel": _cancel,
    "history": _history,
    "alert": _alert,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.setup(args.log_level or os.environ.get("NOTIFYAGENT_LOG_LEVEL", "INFO"))
    return _run(COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
