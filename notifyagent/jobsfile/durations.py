"""Durations in a jobs file (policy timeouts and delays): a number of seconds or a text like
"1h30m", kept to the microsecond as PostgreSQL's interval is, and written back in that text."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from notifyagent.core.durations import DURATION_SYNTAX, duration_seconds, to_timedelta
from notifyagent.jobsfile.spec import show

__all__ = ["DURATION_SYNTAX", "parse_duration", "render_duration"]


def parse_duration(value: object) -> dt.timedelta:
    """A duration in a jobs file: a number of seconds (TOML integer or float) or a text like
    "90s", "5 min", "1h30m", "2 hours"; raises ValueError with the reason (microseconds are
    kept, as in PostgreSQL's interval)."""
    if isinstance(value, str):
        seconds = duration_seconds(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        seconds = Decimal(repr(value))
    else:
        raise ValueError(f"{show(value)} is not a duration: give {DURATION_SYNTAX}")
    return to_timedelta(seconds, show(value))


def render_duration(value: dt.timedelta) -> str:
    """A duration in the file's syntax, largest unit first: "1h30m", "1m30s", "0.5s", "0s"."""
    micro = value // dt.timedelta(microseconds=1)
    sign, micro = ("-", -micro) if micro < 0 else ("", micro)
    days, micro = divmod(micro, 86_400_000_000)
    hours, micro = divmod(micro, 3_600_000_000)
    minutes, micro = divmod(micro, 60_000_000)
    seconds, micro = divmod(micro, 1_000_000)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds or micro or not parts:
        parts.append(f"{seconds}{f'.{micro:06d}'.rstrip('0') if micro else ''}s")
    return sign + "".join(parts)
