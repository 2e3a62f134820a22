"""The agent's settings (one frozen object, built by the CLI)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    dsn: str
    station: str
    max_concurrency: int = 32
    shutdown_timeout: float = 30.0
    #: Seconds between liveness checks (dead agents, notification round trip); 0 disables.
    liveness_interval: float = 30.0
    #: Bytes of step output kept in jsloutput.
    max_output: int = 1024 * 1024
    batch_steps: bool = True
    #: IANA zone the schedules are read in; None = the database's default TimeZone.
    timezone: str | None = None
    #: Longest single sleep of the scheduler, so a paused VM or a clock step cannot make it
    #: oversleep by more than this.
    max_sleep: float = 60.0
    #: Longest wait between reconnect attempts.
    max_backoff: float = 10.0
