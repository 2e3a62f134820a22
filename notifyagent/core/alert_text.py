"""The words of an alert: its event, a title and a text for people, and a stable JSON
document for programs (version :data:`DOCUMENT_VERSION`). Every text passes through
:func:`notifyagent.core.secrets.scrub`; what makes an alert: :mod:`notifyagent.core.alerts`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from notifyagent.core import secrets
from notifyagent.core.model import status_label

#: Characters of the failing step's output an alert carries.
OUTPUT_CAP = 1000
#: The version of the JSON document; a change that breaks receivers bumps it.
DOCUMENT_VERSION = 1


class Event(StrEnum):
    FAILED = "failed"
    ABORTED = "aborted"
    RECOVERED = "recovered"
    SUCCEEDED = "succeeded"
    MISSED = "missed"
    DISABLED = "disabled"
    DEAD_AGENT = "dead_agent"
    TEST = "test"


#: What is sent when nobody said: everything but the successes.
DEFAULT_EVENTS = frozenset(Event) - {Event.SUCCEEDED, Event.TEST}


@dataclass(frozen=True)
class StepFacts:
    name: str
    status: str
    result: int | None
    output: str


_TITLES = {
    Event.FAILED: "job {name} failed",
    Event.ABORTED: "job {name} was aborted",
    Event.RECOVERED: "job {name} recovered",
    Event.SUCCEEDED: "job {name} succeeded",
    Event.MISSED: "job {name} missed its run",
    Event.DISABLED: "job {name} was disabled",
    Event.DEAD_AGENT: "an agent died",
    Event.TEST: "notifyagent test alert",
}


@dataclass(frozen=True)
class Alert:
    event: Event
    #: the agent that sends it (the one that ran the job, or found what it reports)
    station: str
    at: datetime
    job_id: int | None = None
    job_name: str | None = None
    status: str | None = None
    started: datetime | None = None
    duration: float | None = None
    step: StepFacts | None = None
    reason: str = ""
    jlgid: int | None = None
    #: jpgAgent's @EMAIL_SUBJECT and @EMAIL_BODY (tokens filled), for its e-mails
    subject: str | None = None
    intro: str | None = None

    @property
    def title(self) -> str:
        if self.subject:
            return secrets.scrub(self.subject)
        name = self.job_name if self.job_name is not None else self.job_id
        return secrets.scrub("notifyagent: " + _TITLES[self.event].format(name=name))

    def document(self) -> dict[str, Any]:
        """The stable JSON body (version :data:`DOCUMENT_VERSION`) for programs."""
        step = self.step
        doc: dict[str, Any] = {
            "version": DOCUMENT_VERSION,
            "event": self.event.value,
            "title": self.title,
            "job": None if self.job_id is None else {"id": self.job_id, "name": self.job_name},
            "run": None,
            "step": None,
            "reason": secrets.scrub(self.reason),
            "station": self.station,
            "at": self.at.isoformat(),
        }
        if self.jlgid is not None or self.status is not None:
            doc["run"] = {
                "id": self.jlgid,
                "status": self.status,
                "status_text": status_label(self.status),
                "started": None if self.started is None else self.started.isoformat(),
                "duration_s": None if self.duration is None else round(self.duration, 3),
            }
        if step is not None:
            doc["step"] = {
                "name": step.name,
                "status": step.status,
                "result": step.result,
                "output": cap(step.output),
            }
        return doc

    def body(self) -> str:
        """The text for people: one ``key: value`` line each, the output last."""
        d = self.document()
        lines = [d["title"], ""] if not self.intro else [secrets.scrub(self.intro), ""]
        if self.job_id is not None:
            lines.append(f"job: {self.job_name} (id {self.job_id})")
        lines.append(f"event: {self.event.value}")
        if (run := d["run"]) is not None:
            lines.append(f"status: {run['status_text'] or '-'} ({run['status'] or '-'})")
            lines.append(f"started: {run['started'] or '-'}")
            lines.append(f"duration: {'-' if run['duration_s'] is None else run['duration_s']} s")
        if self.reason:
            lines.append(f"reason: {d['reason']}")
        lines.append(f"agent: {self.station}")
        if (step := d["step"]) is not None:
            lines.append(f"step: {step['name']} (status {step['status']}, result {step['result']})")
            lines += ["output:", step["output"]]
        return "\n".join(lines)

    def json(self) -> str:
        return json.dumps(self.document(), sort_keys=True)


def for_email(alert: Alert, email: Mapping[str, str]) -> Alert:
    """The alert as jpgAgent's @EMAIL_SUBJECT / @EMAIL_BODY word it (tokens ``~status~``,
    ``~job_name~``, ``~job_id~``, ``~event~``)."""

    def fill(text: str | None) -> str | None:
        if not text:
            return None
        for token, value in (
            ("~status~", status_label(alert.status) or alert.event.value),
            ("~job_name~", alert.job_name or ""),
            ("~job_id~", str(alert.job_id or "")),
            ("~event~", alert.event.value),
        ):
            text = text.replace(token, value)
        return text

    return replace(alert, subject=fill(email.get("subject")), intro=fill(email.get("body")))


def cap(output: str, limit: int = OUTPUT_CAP) -> str:
    """The first ``limit`` characters of a step's output, scrubbed, with a marker when cut."""
    text = secrets.scrub(output)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters in pga_jobsteplog]"
