"""Per-job policies (table ``notifyagent.job_policy``): timeouts, retries, overlap, catch-up,
sub-minute intervals.

One type for the agent (which runs by it) and the jobs file (which writes it). A job without
a row gets :data:`DEFAULT`, which is exactly pgAgent's behaviour; the defaults are the
table's column defaults.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from notifyagent.core import backoff


class Overlap(enum.StrEnum):
    """What happens to a run that falls due while the job is running."""

    SKIP = "skip"  # dropped (pgAgent)
    QUEUE_ONE = "queue-one"  # runs right after the current run ends


class Catchup(enum.StrEnum):
    """What happens to a scheduled run missed while no agent ran."""

    ONCE = "once"  # runs once (pgAgent)
    SKIP = "skip"  # does not run; the next scheduled time does


@dataclass(frozen=True)
class Policy:
    """A row of ``notifyagent.job_policy``, durations as PostgreSQL's intervals read them."""

    job_timeout: timedelta | None = None
    step_timeout: timedelta | None = None
    retries: int = 0
    retry_delay: timedelta = timedelta(minutes=1)
    overlap: Overlap = Overlap.SKIP
    catchup: Catchup = Catchup.ONCE
    #: run the job every this long (1 s to under 1 min), besides its schedules
    every: timedelta | None = None
    #: disable the job after this many failed runs in a row (None: never)
    max_failures: int | None = None
    #: the job's own alert destinations (Apprise URLs, space separated)
    alert_to: str | None = None
    #: the events alerted for this job (comma separated; None: the agent's alert_on)
    alert_on: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Policy:
        """A ``job_policy`` row as psycopg returns it (intervals as timedelta, text as str)."""
        return cls(
            job_timeout=row["job_timeout"],
            step_timeout=row["step_timeout"],
            retries=int(row["retries"]),
            retry_delay=row["retry_delay"],
            overlap=Overlap(row["overlap"]),
            catchup=Catchup(row["catchup"]),
            every=row.get("every"),
            max_failures=row.get("max_failures"),
            alert_to=row.get("alert_to"),
            alert_on=row.get("alert_on"),
        )

    @property
    def job_timeout_s(self) -> float | None:
        return None if self.job_timeout is None else self.job_timeout.total_seconds()

    @property
    def step_timeout_s(self) -> float | None:
        return None if self.step_timeout is None else self.step_timeout.total_seconds()

    def retry_delay_for(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based): the delay doubles each time."""
        return backoff.delay(self.retry_delay.total_seconds(), attempt - 1)

    def non_defaults(self) -> list[tuple[str, object]]:
        """``(column, value)`` where the value is not the column's default (what export writes)."""
        return [
            (f.name, getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]


#: The columns of a policy, in the table's (and the jobs file's) order.
POLICY_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Policy))
DEFAULT = Policy()
