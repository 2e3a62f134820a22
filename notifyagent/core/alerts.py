"""Alerts: which event a finished run, an overdue job or a dead agent makes, and who is told
(the message itself: :mod:`notifyagent.core.alert_text`).

Pure: the facts come from the database (:mod:`notifyagent.agent.alerts` reads them off the
scheduling path), the delivery is Apprise's. Every text passes through
:func:`notifyagent.core.secrets.scrub`, so passwords never reach a destination.

Consecutive failures (``max_failures``) are counted from ``pga_joblog``: the failed runs
(``f``, ``i``) after the job's last successful run and after its last enable (the time a
trigger records when ``jobenabled`` goes from false to true), so enabling a job again in
pgAdmin starts the count afresh. Aborted runs (``d``: cancels, shutdowns) neither count nor
reset it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notifyagent.core import secrets
from notifyagent.core.alert_text import DEFAULT_EVENTS, Alert, Event, StepFacts, for_email
from notifyagent.core.model import RunStatus

_EMAIL_ON = {"FAIL": Event.FAILED, "ABORTED": Event.ABORTED, "SUCCEED": Event.SUCCEEDED}
_EMAIL_DEFAULT = frozenset({Event.FAILED, Event.ABORTED})
_FAILED = (RunStatus.FAILED, RunStatus.INTERNAL)
_SPLIT = re.compile(r"[\s,]+")


def parse_events(value: str | Iterable[str]) -> frozenset[Event]:
    """Event names (comma or space separated, or a list); ``all``: every event but ``test``.
    ValueError naming what is allowed."""
    words = _SPLIT.split(value.strip()) if isinstance(value, str) else [str(v) for v in value]
    found: set[Event] = set()
    for word in (w.strip().lower() for w in words if w.strip()):
        if word == "all":
            found |= frozenset(Event) - {Event.TEST}
            continue
        try:
            found.add(Event(word.replace("-", "_")))
        except ValueError:
            allowed = ", ".join(e.value for e in Event if e is not Event.TEST)
            raise ValueError(f"{word!r} is not an event; allowed: all, {allowed}") from None
    if not found:
        raise ValueError("no event given")
    return frozenset(found)


def parse_urls(value: str | Iterable[str]) -> tuple[str, ...]:
    """Apprise URLs (whitespace or comma separated, or a list); ValueError for one that is
    not ``scheme://...``. Every URL is registered as a secret: logs show it masked."""
    urls = _SPLIT.split(value.strip()) if isinstance(value, str) else [str(v) for v in value]
    found = tuple(u for u in (u.strip() for u in urls) if u)
    for url in found:
        if not re.match(r"^[a-z][a-z0-9+.-]*://\S", url, re.IGNORECASE):
            # shown up to a path or query (a token may follow), after any user:password@
            shown = re.split(r"[/?#]", url.rsplit("@", 1)[-1])[0][:60]
            raise ValueError(
                f"{shown!r} is not a destination URL: write scheme://..., like json://host/path"
            )
        hide(url)
    return found


def hide(url: str) -> None:
    """Keep a destination URL and its password out of every log line."""
    secrets.add_secret(url)
    if m := re.match(r"^[^:]+://[^/@]*:([^@/]+)@", url):
        secrets.add_secret(m.group(1))


def redact(url: str) -> str:
    """What may be shown of a destination: its scheme and host (tokens live in the user,
    password, path and query)."""
    m = re.match(r"^([a-z][a-z0-9+.-]*)://(?:[^/@]*@)?([^/?#]*)", url, re.IGNORECASE)
    if m is None:
        return "(not a URL)"
    host = m.group(2) if re.fullmatch(r"[\w.\-\[\]:]*", m.group(2)) else "..."
    return f"{m.group(1).lower()}://{host}"


# -- routing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routes:
    """The global settings: destinations, events, and the e-mail URL @EMAIL_TO goes through."""

    urls: tuple[str, ...] = ()
    events: frozenset[Event] = DEFAULT_EVENTS
    #: an Apprise mailto:// URL without recipients (SMTP server, sender)
    email: str | None = None


@dataclass(frozen=True)
class JobRoutes:
    """One job's own settings: policy ``alert_to`` / ``alert_on`` and jpgAgent's @EMAIL_*."""

    urls: tuple[str, ...] = ()
    events: frozenset[Event] | None = None
    email: Mapping[str, str] = field(default_factory=dict)


def destinations(event: Event, routes: Routes, job: JobRoutes | None = None) -> tuple[str, ...]:
    """Where ``event`` goes: the global and the job's destinations when the job's events (else
    the global ones) include it."""
    job = job or JobRoutes()
    events = job.events if job.events is not None else routes.events
    if event in events or event is Event.TEST:
        return tuple(dict.fromkeys([*routes.urls, *job.urls]))
    return ()


def email_destination(event: Event, routes: Routes, job: JobRoutes) -> str | None:
    """jpgAgent's e-mail: @EMAIL_TO's addresses through ``alert_email``, when @EMAIL_ON (by
    default FAIL;ABORTED) includes the event."""
    to = job.email.get("to")
    if not to or not routes.email or event not in _email_events(job.email.get("on")):
        return None
    sep = "&" if "?" in routes.email else "?"
    return f"{routes.email}{sep}to={to.replace(';', ',')}"


def deliveries(
    alert: Alert, routes: Routes, job: JobRoutes | None = None
) -> list[tuple[Alert, tuple[str, ...]]]:
    """``alert`` with its destinations; jpgAgent's e-mail as its subject and body say."""
    job = job or JobRoutes()
    found = [(alert, urls)] if (urls := destinations(alert.event, routes, job)) else []
    if (email := email_destination(alert.event, routes, job)) is not None:
        found.append((for_email(alert, job.email), (email,)))
    return found


def wanted(events: Iterable[Event], routes: Routes, job: JobRoutes) -> bool:
    """Whether any of ``events`` would go anywhere."""
    return any(destinations(e, routes, job) or email_destination(e, routes, job) for e in events)


def _email_events(on: str | None) -> frozenset[Event]:
    if not on:
        return _EMAIL_DEFAULT
    return frozenset(_EMAIL_ON[s] for s in on.split(";") if s in _EMAIL_ON)


# -- what happened -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """A finished run as the database has it (query ``alert_facts``)."""

    job_id: int
    job_name: str
    jlgid: int
    status: RunStatus
    started: datetime | None
    duration: float | None
    #: the status of the job's previous finished run
    previous: str | None
    #: failed runs in a row, this one included, since the last success and the last enable
    failures: int
    enabled: bool
    step: StepFacts | None = None


def run_facts(row: Mapping[str, Any]) -> RunFacts:
    """A row of query ``alert_facts``."""
    step = None
    if row["step_name"] is not None:
        step = StepFacts(
            row["step_name"], row["step_status"], row["step_result"], row["step_output"] or ""
        )
    return RunFacts(
        job_id=row["jobid"],
        job_name=row["jobname"],
        jlgid=row["jlgid"],
        status=RunStatus(row["status"]),
        started=row["started"],
        duration=row["duration"],
        previous=row["previous"],
        failures=int(row["failures"]),
        enabled=bool(row["enabled"]),
        step=step,
    )


def run_events(facts: RunFacts) -> list[Event]:
    """The events a finished run makes (successes too: only sent where asked)."""
    if facts.status in _FAILED:
        return [Event.FAILED]
    if facts.status is RunStatus.ABORTED:
        return [Event.ABORTED]
    if facts.status is RunStatus.SUCCEEDED:
        recovered = facts.previous in (RunStatus.FAILED, RunStatus.INTERNAL, RunStatus.ABORTED)
        return [Event.RECOVERED, Event.SUCCEEDED] if recovered else [Event.SUCCEEDED]
    return []


def should_disable(facts: RunFacts, max_failures: int | None) -> bool:
    """After ``max_failures`` failed runs in a row the job is disabled."""
    return (
        max_failures is not None
        and facts.enabled
        and facts.status in _FAILED
        and facts.failures >= max_failures
    )


@dataclass(frozen=True)
class Overdue:
    """A job due for longer than the grace period that nobody runs."""

    job_id: int
    name: str
    due: datetime
    reason: str
    #: not reported for this due time before (this agent reports it)
    new: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Overdue:
        """A row of the SQL function ``notifyagent.overdue``."""
        reason = missed_reason(row["host_agent"], row["host_alive"], int(row["agents"]))
        return cls(row["jobid"], row["jobname"], row["due"], reason, bool(row.get("new")))


def missed_alert(job: Overdue, station: str, at: datetime) -> Alert:
    reason = f"due since {job.due.isoformat()}, not started: {job.reason}"
    return Alert(Event.MISSED, station, at, job_id=job.job_id, job_name=job.name, reason=reason)


def missed_reason(host_agent: str, host_alive: bool, agents: int) -> str:
    """Why a job nobody runs stayed due, as far as the agents' table tells."""
    if agents == 0:
        return "no agent is running"
    if host_agent and not host_alive:
        return f"its host agent {host_agent!r} is not running"
    return "no free slot or the agent is not answering"


def run_alert(event: Event, facts: RunFacts, station: str, at: datetime, reason: str) -> Alert:
    return Alert(
        event,
        station,
        at,
        job_id=facts.job_id,
        job_name=facts.job_name,
        status=facts.status.value,
        started=facts.started,
        duration=facts.duration,
        step=facts.step,
        reason=reason,
        jlgid=facts.jlgid,
    )


def disabled_reason(failures: int) -> str:
    return (
        f"disabled after {failures} failed runs in a row (policy max_failures); fix the cause, "
        "then enable it again (pgAdmin: job properties, Enabled; or UPDATE pgagent.pga_job SET "
        "jobenabled = true WHERE jobid = ...): the count starts afresh"
    )
