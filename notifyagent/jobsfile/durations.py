"""Durations in a jobs file (policy timeouts and delays): a number of seconds or a text like
"1h30m", kept to the microsecond as PostgreSQL's interval is, and written back in that text."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import ROUND_HALF_EVEN, Decimal

from notifyagent.jobsfile.spec import show

#: duration units (singular, plural, short) -> seconds; written back as d, h, m, s
_UNITS: dict[str, int] = {
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
}
_DURATION_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*")
DURATION_SYNTAX = (
    'a number of seconds, or a text like "90s", "5 min", "1h30m", "2 hours" '
    "(units d, h, m, s or their names, largest first)"
)


def _duration_seconds(text: str) -> Decimal:
    """ "1h30m" -> 5400; raises ValueError with the reason."""
    bad = ValueError(f"{text!r} is not a duration: give {DURATION_SYNTAX}")
    if not text.strip():
        raise bad
    total, pos, last = Decimal(0), 0, None
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise bad
        number, name = m.groups()
        if not name:
            if pos == 0 and m.end() == len(text):
                raise ValueError(f'{text!r} has no unit: write {number} (seconds) or "{number}s"')
            raise bad
        unit = _UNITS.get(name)
        if unit is None:
            raise bad
        if last is not None and unit >= last:
            raise ValueError(f'{text!r}: give each unit once, largest first (like "1h30m")')
        total += Decimal(number) * unit
        pos, last = m.end(), unit
    return total


def parse_duration(value: object) -> dt.timedelta:
    """A duration in a jobs file: a number of seconds (TOML integer or float) or a text like
    "90s", "5 min", "1h30m", "2 hours"; raises ValueError with the reason (microseconds are
    kept, as in PostgreSQL's interval)."""
    if isinstance(value, str):
        seconds = _duration_seconds(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        seconds = Decimal(repr(value))
    else:
        raise ValueError(f"{show(value)} is not a duration: give {DURATION_SYNTAX}")
    if seconds < 0:
        raise ValueError(f"{show(value)} is negative")
    micro = (seconds * 1_000_000).to_integral_value(ROUND_HALF_EVEN)
    try:
        return dt.timedelta(microseconds=int(micro))
    except OverflowError:
        raise ValueError(f"{show(value)} is too long") from None


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
