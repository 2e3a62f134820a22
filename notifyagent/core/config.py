"""The agent's settings: one table of options, resolved from the command line, the environment
(``NOTIFYAGENT_<OPTION>``), a TOML file (``--config`` / ``NOTIFYAGENT_CONFIG``) and defaults,
in that order of precedence, validated with messages that name the key, the value and what is
allowed. The same table drives ``--help``, live reload and the reload diff.

Pure: reading the file is the only I/O; the values the logging and metrics modules need
(log levels, the metrics address syntax) are defined here, which they import.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifyagent.core.alert_text import DEFAULT_EVENTS, Event
from notifyagent.core.alerts import parse_events, parse_urls
from notifyagent.core.observability import LEVELS, parse_address
from notifyagent.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    dsn: str = ""
    station: str = dataclasses.field(default_factory=platform.node)
    max_concurrency: int = 32
    shutdown_timeout: float = 30.0
    #: Seconds between liveness checks (dead agents, notification round trip); 0 disables.
    liveness_interval: float = 30.0
    #: Bytes of step output kept in jsloutput.
    max_output: int = 1024 * 1024
    batch_steps: bool = True
    #: IANA zone the schedules are read in; None = the database's default TimeZone.
    timezone: str | None = None
    log_level: str = "INFO"
    #: "human" (colored when on a terminal) or "json" (one object per line, for shippers).
    log_format: str = "human"
    #: HOST:PORT (or PORT on loopback) for /metrics, /healthz and /readyz; None = off.
    metrics_address: str | None = None
    #: Delete finished runs older than this many days (None = keep them, pgAgent's way).
    history_days: float | None = None
    #: Keep only the newest N runs of each job (None = all).
    history_keep: int | None = None
    #: Seconds between history cleanups (only when history_days or history_keep is set).
    history_interval: float = 3600.0
    #: Longest single sleep of the scheduler, so a paused VM or a clock step cannot make it
    #: oversleep by more than this.
    max_sleep: float = 60.0
    #: Longest wait between reconnect attempts.
    max_backoff: float = 10.0
    #: Apprise URLs every alert goes to (notifyagent.core.alerts).
    alert_urls: tuple[str, ...] = ()
    #: The events sent (per job: policy alert_on).
    alert_on: frozenset[Event] = DEFAULT_EVENTS
    #: An Apprise mailto:// URL (SMTP server, sender) for the addresses of @EMAIL_TO.
    alert_email: str | None = None
    #: Seconds one delivery attempt may take.
    alert_timeout: float = 10.0
    #: Seconds a job may stay due, unclaimed, before it is reported as missed (0: never).
    missed_grace: float = 60.0


def _int(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"an integer >= {minimum}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"an integer >= {minimum}") from None
        if number < minimum:
            raise ValueError(f"an integer >= {minimum}")
        return number

    return parse


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a number of seconds >= 0")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("a number of seconds >= 0") from None
    if number < 0:
        raise ValueError("a number of seconds >= 0")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _zone(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone name such as UTC or Europe/Berlin") from None
    return str(value)


def _level(value: Any) -> str:
    text = str(value).upper()
    if text not in LEVELS:
        raise ValueError("one of " + ", ".join(LEVELS))
    return text


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(value: Any) -> Any:
        return None if value in (None, "", "off") else parse(value)

    return optional


def _log_format(value: Any) -> str:
    if value not in ("human", "json"):
        raise ValueError("human or json")
    return str(value)


def _urls(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str | list):
        raise ValueError("Apprise URLs, separated by spaces or commas (a list in the file)")
    return parse_urls(value)


def _email_url(value: Any) -> str | None:
    if value in (None, ""):
        return None
    urls = parse_urls(str(value))
    url = urls[0] if len(urls) == 1 else ""
    if not url.lower().startswith(("mailto://", "mailtos://")):
        raise ValueError("a mailto:// or mailtos:// URL (server and sender, no recipient)")
    return url


def _events(value: Any) -> frozenset[Event]:
    if not isinstance(value, str | list):
        raise ValueError("event names separated by commas")
    return parse_events(value)


def _address(value: Any) -> str | None:
    if value in (None, ""):
        return None
    parse_address(str(value))
    return str(value)


@dataclass(frozen=True)
class Option:
    """One setting: its parser (raises ValueError naming what is allowed) and its help text."""

    name: str
    parse: Callable[[Any], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "NOTIFYAGENT_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "dsn",
        _text,
        "libpq connection string or postgresql:// URL of the database holding the pgagent "
        "schema (when empty, libpq's PG* variables apply)",
    ),
    Option(
        "station",
        _text,
        "name of this agent, matched against a job's host agent (jobhostagent) and stored as "
        "pga_jobagent.jagstation (default: the host name)",
    ),
    Option(
        "max_concurrency",
        _int(1),
        "jobs running at once; further due jobs wait their turn (default 32)",
    ),
    Option(
        "shutdown_timeout",
        _seconds,
        "seconds running jobs may take to finish after SIGTERM before they are cancelled "
        "(default 30)",
    ),
    Option(
        "liveness_interval",
        _seconds,
        "seconds between checks for dead agents and of the notification round trip "
        "(default 30; 0 disables)",
    ),
    Option(
        "max_output",
        _int(1),
        "bytes of step output stored in pga_jobsteplog.jsloutput; more is cut with a marker "
        "(default 1048576)",
    ),
    Option(
        "batch_steps",
        _bool,
        "run batch (shell) steps; false refuses them with a failed step (default true)",
    ),
    Option(
        "timezone",
        _zone,
        "IANA time zone in which schedules are read (default: the database's TimeZone, "
        "which is what pgAdmin uses when it saves a schedule)",
    ),
    Option("log_level", _level, "log level: " + ", ".join(LEVELS) + " (default INFO)"),
    Option(
        "log_format",
        _log_format,
        "human (default) or json: one JSON object per line with stable fields (job_id, "
        "job_name, step, status, lag_ms, duration_s) for log shippers",
    ),
    Option(
        "history_days",
        _optional(_seconds),
        "delete runs (pga_joblog, and their step logs) older than this many days; off by "
        "default, as pgAgent keeps history forever",
    ),
    Option(
        "history_keep",
        _optional(_int(1)),
        "keep only the newest N runs of each job; off by default",
    ),
    Option(
        "history_interval",
        _seconds,
        "seconds between history cleanups, done in small batches by one agent at a time "
        "(default 3600)",
    ),
    Option(
        "metrics_address",
        _address,
        "serve Prometheus /metrics, /healthz and /readyz on PORT (loopback) or HOST:PORT "
        "(default: off; a change needs a restart)",
    ),
)
OPTIONS += (
    Option(
        "alert_urls",
        _urls,
        "Apprise URLs alerts go to, separated by spaces or commas (mailto://, json://, "
        "slack://, msteams://, matrix://, ntfy://, ...; default: none)",
    ),
    Option(
        "alert_on",
        _events,
        "events alerted: failed, aborted, recovered, succeeded, missed, disabled, dead_agent, "
        "or all (default: all but succeeded)",
    ),
    Option(
        "alert_email",
        _email_url,
        "mailto:// URL (SMTP server and sender) for the addresses of jobs' @EMAIL_TO",
    ),
    Option("alert_timeout", _seconds, "seconds one alert delivery may take (default 10)"),
    Option(
        "missed_grace",
        _seconds,
        "seconds a job may stay due with no agent running it before it is reported as missed "
        "(default 60; 0 disables)",
    ),
)
BY_NAME = {o.name: o for o in OPTIONS}


def read_file(path: Path) -> dict[str, Any]:
    """The options of a TOML config file (keys as in :data:`OPTIONS`, dashes allowed)."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    found: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in BY_NAME:
            raise ConfigError(
                f"{path}: unknown key {key!r}; allowed: {', '.join(o.name for o in OPTIONS)}"
            )
        found[name] = value
    return found


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Settings from the command line > environment > config file > defaults."""
    env = os.environ if env is None else env
    file_values = read_file(config_path) if config_path is not None else {}
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        source: str | None = None
        raw: Any = None
        if cli.get(opt.name) is not None:
            raw, source = cli[opt.name], f"command line {opt.flag}"
        elif opt.env in env:
            raw, source = env[opt.env], f"environment {opt.env}"
        elif opt.name in file_values:
            raw, source = file_values[opt.name], f"{config_path}: key {opt.name!r}"
        if source is None:
            continue
        try:
            values[opt.name] = opt.parse(raw)
        except ValueError as err:
            raise ConfigError(f"{source}: {raw!r} is not allowed; expected {err}") from None
    return Settings(**values)


def config_path(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    value = cli_value or env.get("NOTIFYAGENT_CONFIG")
    return Path(value) if value else None


def diff(old: Settings, new: Settings) -> dict[str, tuple[Any, Any]]:
    """``{option: (old, new)}`` for every option that changed."""
    return {
        o.name: (getattr(old, o.name), getattr(new, o.name))
        for o in OPTIONS
        if getattr(old, o.name) != getattr(new, o.name)
    }
