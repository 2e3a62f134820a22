"""Growing delays between attempts: start at ``first``, double after each failure, stay at
``cap``. One rule for reconnects, releases, locked jobs and policy retries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def delay(first: float, attempt: int, cap: float = math.inf, factor: float = 2.0) -> float:
    """The delay before attempt number ``attempt`` (0-based): ``first * factor**attempt``, at
    most ``cap``. Never overflows: a float product that is too large becomes inf."""
    value = first
    for _ in range(attempt):
        if value >= cap:
            break
        value *= factor
    return min(value, cap)


@dataclass
class Backoff:
    """The delays of one retry loop: iterate for the next one, :meth:`reset` after a success.

    ``cap`` may be changed between attempts (a reloaded setting); it applies to the next delay.
    """

    first: float
    cap: float = math.inf
    factor: float = 2.0
    #: the delay the next attempt waits (before the cap, which applies when it is taken)
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.first

    def __iter__(self) -> Backoff:
        return self

    def __next__(self) -> float:
        value = min(self.current, self.cap)
        self.current = delay(value, 1, self.cap, self.factor)
        return value

    @property
    def at_cap(self) -> bool:
        """Whether the delays stopped growing (a loop may give up there)."""
        return self.current >= self.cap

    def reset(self) -> None:
        self.current = self.first
