"""Growing delays between attempts: start at ``first``, double after each failure, stay at
``cap``. One rule for reconnects, releases, locked jobs and policy retries (the waiting itself
is the agent's: notifyagent.agent.aio.Backoff)."""

from __future__ import annotations

import math


def delay(first: float, attempt: int, cap: float = math.inf, factor: float = 2.0) -> float:
    """The delay before attempt number ``attempt`` (0-based): ``first * factor**attempt``, at
    most ``cap``. Never overflows: a float product that is too large becomes inf."""
    value = first
    for _ in range(attempt):
        if value >= cap:
            break
        value *= factor
    return min(value, cap)
