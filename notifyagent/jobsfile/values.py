"""Reading one typed value out of a TOML table, with what a wrong one would need and where it
sits in the file (:class:`Where`), for the parser's messages."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from notifyagent.core.fields import parse_field
from notifyagent.errors import ConfigError
from notifyagent.jobsfile.durations import parse_duration
from notifyagent.jobsfile.spec import Bools, show

D = TypeVar("D", dt.date, dt.time)


class Where:
    """Where a value sits, for messages: ``file: job "x": steps[2].kind: ...``."""

    def __init__(self, source: str, job: str | None = None, item: str | None = None) -> None:
        self.source, self.job, self.item = source, job, item

    def at(self, *, job: str | None = None, item: str | None = None) -> Where:
        return Where(self.source, job or self.job, item)

    def error(self, key: str | None, message: str) -> ConfigError:
        loc = self.source
        if self.job:
            loc += f": {self.job}"
        path = ".".join(p for p in (self.item, key) if p)
        if path:
            loc += f": {path}"
        return ConfigError(f"{loc}: {message}")


def check_keys(table: Mapping[str, Any], known: Sequence[str], where: Where) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            raise where.error(key, f"unknown key ({hint})")


def get_str(table: Mapping[str, Any], key: str, where: Where, default: str | None = None) -> str:
    if key not in table:
        if default is None:
            raise where.error(key, "missing (a string is required)")
        return default
    value = table[key]
    if not isinstance(value, str):
        raise where.error(key, f"{show(value)} is not a string")
    if "\x00" in value:
        raise where.error(key, "contains a NUL character, which PostgreSQL cannot store")
    return value


def get_bool(table: Mapping[str, Any], key: str, where: Where, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise where.error(key, f"{show(value)} is not true or false")
    return value


def get_choice(
    table: Mapping[str, Any], key: str, where: Where, choices: Iterable[str], default: str | None
) -> str:
    value = get_str(table, key, where, default)
    options = list(choices)
    if value not in options:
        raise where.error(key, f"{value!r} is not one of {', '.join(options)}")
    return value


def get_tables(table: Mapping[str, Any], key: str, where: Where, how: str) -> list[dict[str, Any]]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise where.error(key, f"{show(value)} is not an array of tables (write {how})")
    return value


def get_datetime(table: Mapping[str, Any], key: str, where: Where) -> dt.datetime | None:
    value = table.get(key)
    if value is None:
        return None
    example = "e.g. 2026-01-01T00:00:00+01:00 or 2026-01-01T00:00:00Z"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise where.error(
                key, f"{value!r} is not an ISO 8601 date and time ({example})"
            ) from None
    if not isinstance(value, dt.datetime):
        raise where.error(key, f"{show(value)} is not a date and time ({example})")
    if value.utcoffset() is None:
        raise where.error(
            key, f"{value.isoformat()} has no UTC offset: add one ({example}) to say which instant"
        )
    return value


def get_array(table: Mapping[str, Any], key: str, where: Where) -> Bools:
    value = table.get(key)
    if value is None:
        text = ""
    elif isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, list) and all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        text = ",".join(str(v) for v in value)
    else:
        raise where.error(
            key, f'{show(value)} is not a value list like "0,30", "8-17" or ["mon-fri", "sun"]'
        )
    try:
        return tuple(parse_field(key, text))
    except ConfigError as err:
        message = str(err).removeprefix(f"{key}: ")
        raise where.error(key, message) from None


def get_date_or_time(
    table: Mapping[str, Any], key: str, where: Where, kind: type[D], what: str
) -> D | None:
    """A TOML date (or time), or ISO 8601 text for one; ``what`` names what is expected."""
    value = table.get(key)
    if isinstance(value, str):
        try:
            value = kind.fromisoformat(value.strip())
        except ValueError:
            raise where.error(key, f"{value!r} is not {what}") from None
    # a datetime is a date too, but not a day
    if value is not None and (not isinstance(value, kind) or isinstance(value, dt.datetime)):
        raise where.error(key, f"{show(value)} is not {what}")
    return value


def get_duration(
    table: Mapping[str, Any], key: str, where: Where, *, positive: bool
) -> dt.timedelta | None:
    if key not in table:
        return None
    try:
        value = parse_duration(table[key])
    except ValueError as err:
        raise where.error(key, str(err)) from None
    if positive and not value:
        raise where.error(key, f"must be more than 0 (leave {key} out for no timeout)")
    return value
