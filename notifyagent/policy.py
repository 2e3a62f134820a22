"""Per-job policies (table ``notifyagent.job_policy``): timeouts, retries, overlap, catch-up.

A job without a row gets :data:`DEFAULT`, which is exactly pgAgent's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Policy:
    job_timeout: float | None = None
    step_timeout: float | None = None
    retries: int = 0
    retry_delay: float = 60.0
    #: "skip": a run that falls due while the job runs is dropped (pgAgent);
    #: "queue-one": it runs right after the current run ends.
    overlap: str = "skip"
    #: "once": after downtime a missed run happens once (pgAgent); "skip": not at all.
    catchup: str = "once"

    def retry_delay_for(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): the delay doubles each time."""
        return float(self.retry_delay * 2 ** (attempt - 1))

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Policy:
        def seconds(value: timedelta | None) -> float | None:
            return value.total_seconds() if value is not None else None

        return cls(
            job_timeout=seconds(row["job_timeout"]),
            step_timeout=seconds(row["step_timeout"]),
            retries=int(row["retries"]),
            retry_delay=float(row["retry_delay"].total_seconds()),
            overlap=str(row["overlap"]),
            catchup=str(row["catchup"]),
        )


DEFAULT = Policy()
