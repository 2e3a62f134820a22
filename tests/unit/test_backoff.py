"""Growing delays (notifyagent.core.backoff) and the policy retry delays built on them."""

from __future__ import annotations

import datetime as dt
import math

from notifyagent.core.backoff import delay
from notifyagent.core.policy import Policy


def test_delays_double_up_to_the_cap() -> None:
    assert [delay(0.1, n, cap=1.0) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert delay(60.0, 3) == 480.0
    assert delay(3.0, 2, factor=3.0) == 27.0


def test_a_huge_attempt_number_does_not_overflow() -> None:
    assert delay(1.0, 10_000) == math.inf
    assert delay(1.0, 10_000, cap=5.0) == 5.0
    assert delay(0.0, 10) == 0.0


def test_policy_retries_double_from_the_retry_delay() -> None:
    policy = Policy(retries=100, retry_delay=dt.timedelta(seconds=1.5))
    assert [policy.retry_delay_for(n) for n in (1, 2, 3)] == [1.5, 3.0, 6.0]
    assert policy.retry_delay_for(100) == 1.5 * 2**99
    assert Policy(retry_delay=dt.timedelta(0)).retry_delay_for(5) == 0.0
