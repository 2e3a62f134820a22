"""Sub-minute intervals (policy ``every``): anchored ticks.

The k-th tick of an interval is ``ANCHOR + k * every``, with the anchor fixed (the Unix
epoch), so a late run never pushes later ones (no drift), every agent computes the same ticks,
and an interval that divides a minute ticks on the whole minute. Pure: plain values in and out.
"""

from __future__ import annotations

import datetime as dt

#: where every interval's ticks are counted from
ANCHOR = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the range of ``every`` (what ``notifyagent.job_policy`` accepts)
SHORTEST = dt.timedelta(seconds=1)
LONGEST_EXCLUDED = dt.timedelta(minutes=1)


def _micros(d: dt.timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def next_tick(every: dt.timedelta, after: dt.datetime) -> dt.datetime:
    """The first tick strictly after ``after``: ANCHOR + k * every, k the smallest such."""
    step = _micros(every)
    if step <= 0:
        raise ValueError("every must be positive")
    elapsed = _micros(after - ANCHOR)
    k = elapsed // step + 1
    return ANCHOR + dt.timedelta(microseconds=k * step)


def is_tick(every: dt.timedelta, when: dt.datetime) -> bool:
    """Whether ``when`` is one of the interval's ticks."""
    return _micros(when - ANCHOR) % _micros(every) == 0


def check_every(every: dt.timedelta) -> str | None:
    """Why ``every`` is not a valid interval (None: it is)."""
    if not SHORTEST <= every < LONGEST_EXCLUDED:
        return "must be at least 1 second and less than 1 minute (use a schedule for longer)"
    return None
