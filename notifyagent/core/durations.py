"""The duration grammar people type (jobs files, annotations in pgAdmin's fields): "90s",
"5 min", "1h30m", "2 hours"; kept to the microsecond, as PostgreSQL's interval is."""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_EVEN, Decimal

#: duration units (singular, plural, short) -> seconds; written back as d, h, m, s
UNITS: dict[str, int] = {
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


def duration_seconds(text: str) -> Decimal:
    """ "1h30m" -> 5400; raises ValueError with the reason (a bare number is refused: the
    caller decides what a number without unit means)."""
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
        unit = UNITS.get(name)
        if unit is None:
            raise bad
        if last is not None and unit >= last:
            raise ValueError(f'{text!r}: give each unit once, largest first (like "1h30m")')
        total += Decimal(number) * unit
        pos, last = m.end(), unit
    return total


def to_timedelta(seconds: Decimal, shown: str) -> dt.timedelta:
    """``seconds`` as a timedelta rounded to the microsecond; ValueError naming ``shown``."""
    if seconds < 0:
        raise ValueError(f"{shown} is negative")
    micro = (seconds * 1_000_000).to_integral_value(ROUND_HALF_EVEN)
    try:
        return dt.timedelta(microseconds=int(micro))
    except OverflowError:
        raise ValueError(f"{shown} is too long") from None
