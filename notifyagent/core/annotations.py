"""Annotations in pgAdmin's own fields: settings written as lines of the job's Comment
(``pga_job.jobdesc``) and of each step's Description (``pga_jobstep.jstdesc``).

Two syntaxes, each on a line of its own:

* notifyagent's: ``@notifyagent job_timeout=10m retries=3 retry_delay=30s overlap=queue-one``
  (job comment: every policy key; step description: ``step_timeout`` and ``parallel``);
* jpgAgent's, with its meaning: job ``@JOB_TIMEOUT=30 s;``, ``@EMAIL_ON=FAIL;ABORTED;``,
  ``@EMAIL_TO=a@x;b@y;``, ``@EMAIL_SUBJECT=...``, ``@EMAIL_BODY=...``; step
  ``@JOB_STEP_TIMEOUT=5 s;``, ``@RUN_IN_PARALLEL=true;``,
  ``@DATABASE_HOST/NAME/LOGIN/PASSWORD=...``.

Parsing is pure: it returns the settings and a list of :class:`Problem` (what, where, how to
fix). A setting that does not parse is left out (the others still apply), so a typo in a
comment never stops a job. What a job then runs with: :mod:`notifyagent.core.effective`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from notifyagent.core.alerts import parse_events, parse_urls
from notifyagent.core.durations import duration_seconds, to_timedelta
from notifyagent.core.policy import POLICY_KEYS, Catchup, Overlap


class Severity(StrEnum):
    ERROR = "error"  # the setting is ignored
    WARNING = "warning"  # the setting applies, but take care
    NOTE = "note"  # read and kept, nothing to fix


@dataclass(frozen=True)
class Problem:
    severity: Severity
    where: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" + (f"; {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class StepText:
    id: int
    name: str
    desc: str


@dataclass(frozen=True)
class Texts:
    """The annotated texts of one job: its comment and its steps' descriptions."""

    job: str
    steps: tuple[StepText, ...] = ()


@dataclass(frozen=True)
class StepSettings:
    step_timeout: timedelta | None = None
    #: runs together with the step before it (jpgAgent's @RUN_IN_PARALLEL)
    parallel: bool = False
    #: libpq keywords (host, dbname, user, password) over the step's connection
    connection: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Annotations:
    policy: Mapping[str, object] = field(default_factory=dict)
    #: jpgAgent's e-mail settings (on, to, subject, body), kept for the alerts feature
    email: Mapping[str, str] = field(default_factory=dict)
    steps: Mapping[int, StepSettings] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    @property
    def errors(self) -> int:
        return sum(p.severity is Severity.ERROR for p in self.problems)


NONE = Annotations()
_LINE = re.compile(
    r"^@(?:(?P<ours>notifyagent)(?:\s+(?P<rest>.*))?|(?P<name>[A-Za-z_]+)\s*=(?P<value>.*))$",
    re.IGNORECASE,
)
_PAIR = re.compile(r"(?P<key>[A-Za-z_]+)\s*=\s*(?P<value>.*?)\s*(?=\s[A-Za-z_]+\s*=|$)")
_MS = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*ms\s*$")
_EMAIL_ON = ("FAIL", "SUCCEED", "ABORTED", "IGNORE")
_DATABASE = {"HOST": "host", "NAME": "dbname", "LOGIN": "user", "PASSWORD": "password"}
_STEP_KEYS = ("step_timeout", "parallel")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_DURATION_FIX = 'write a duration longer than 0, like "30s", "5 min", "1h30m", "500 ms"'
_FIXES = {
    "retries": "write a whole number from 0 to 100",
    "overlap": "write skip or queue-one",
    "catchup": "write once or skip",
    "parallel": "write true or false",
    "every": 'write a duration from 1 second to under 1 minute, like "10s"',
    "max_failures": "write a whole number from 1 to 1000",
    "alert_to": "write Apprise URLs separated by commas, like json://host/path",
    "alert_on": "write events separated by commas, like failed,recovered",
}
MAX_FAILURES = 1000


def parse_duration(text: str) -> timedelta:
    """A duration as the jobs file takes it, a bare number of seconds, or jpgAgent's "N ms"."""
    text = text.strip().strip('"').strip()
    if m := _MS.match(text):
        return to_timedelta(Decimal(m.group(1)) / 1000, repr(text))
    try:
        return to_timedelta(Decimal(text), repr(text))
    except InvalidOperation:
        return to_timedelta(duration_seconds(text.lower()), repr(text))


def _policy_value(key: str, text: str) -> object:
    """The value of policy ``key`` written as ``text``; ValueError with the reason."""
    text = text.strip().strip('"').strip()
    if key in ("job_timeout", "step_timeout", "retry_delay", "every"):
        value = parse_duration(text)
        if key == "every" and not timedelta(seconds=1) <= value < timedelta(minutes=1):
            raise ValueError("every must be from 1 second to under 1 minute")
        if key in ("job_timeout", "step_timeout") and value <= timedelta(0):
            raise ValueError(f"{key} must be longer than 0")
        return value
    if key in ("max_failures", "alert_to", "alert_on"):
        return alert_value(key, text)
    if key == "retries":
        if not text.isdigit() or not 0 <= int(text) <= 100:
            raise ValueError(f"retries must be a whole number from 0 to 100, not {text!r}")
        return int(text)
    kind: type[Overlap] | type[Catchup] = Overlap if key == "overlap" else Catchup
    try:
        return kind(text.lower())
    except ValueError:
        allowed = ", ".join(v.value for v in kind)
        raise ValueError(f"{key} must be one of {allowed}, not {text!r}") from None


def alert_value(key: str, value: object) -> int | str:
    """The normalised value of an alert policy key (``max_failures``, ``alert_to``,
    ``alert_on``) given as text, a number or a list; ValueError with the reason."""
    if key == "max_failures":
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_FAILURES:
            raise ValueError(f"max_failures must be a whole number from 1 to {MAX_FAILURES}")
        return int(text)
    if not isinstance(value, str | list):
        raise ValueError(f"{key} must be a text or a list of texts")
    if key == "alert_to":
        return " ".join(parse_urls(value))
    return ",".join(sorted(parse_events(value)))


def _bool(text: str) -> bool:
    word = text.strip().strip('"').lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"{text.strip()!r} is not true or false")


class _Reader:
    """Collects settings and problems while the lines of one text are read."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.values: dict[str, object] = {}
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []

    def problem(self, n: int, what: str, fix: str, severity: Severity = Severity.ERROR) -> None:
        self.problems.append(Problem(severity, f"{self.where} line {n}", what, fix))

    def set(self, n: int, key: str, value: object) -> None:
        if key in self.values:
            self.problem(
                n,
                f"{key} is set twice (line {self.lines[key]} and line {n})",
                f"line {n} wins; remove one",
                Severity.WARNING,
            )
        self.values[key], self.lines[key] = value, n

    def lines_of(self, text: str) -> list[tuple[int, str, str]]:
        """(line number, name, value) of each annotation line; '@word' text is no annotation."""
        found = []
        for n, line in enumerate(text.splitlines(), 1):
            m = _LINE.match(line.strip())
            if m is not None and m["ours"]:
                found.append((n, "notifyagent", (m["rest"] or "").strip()))
            elif m is not None:
                found.append((n, m["name"], m["value"].strip()))
        return found


def _notifyagent_line(r: _Reader, n: int, rest: str, keys: Sequence[str]) -> None:
    """``@notifyagent key=value ...``: each key on its own (a bad one leaves the others)."""
    pairs = list(_PAIR.finditer(rest))
    if not pairs or "".join(p.group(0) for p in pairs).replace(" ", "") != rest.replace(" ", ""):
        r.problem(
            n, f"cannot read {rest!r}", "write key=value pairs, e.g. retries=3 retry_delay=30s"
        )
    for p in pairs:
        key, value = p["key"].lower(), p["value"]
        if key not in keys:
            r.problem(n, f"unknown key {key!r}", f"use one of {', '.join(keys)}")
            continue
        try:
            parsed = _bool(value) if key == "parallel" else _policy_value(key, value)
        except ValueError as err:
            r.problem(n, f"{key}: {err}", _FIXES.get(key, _DURATION_FIX))
            continue
        r.set(n, key, parsed)


def _email(r: _Reader, n: int, name: str, value: str) -> None:
    if name == "EMAIL_ON":
        states = [s.strip().upper() for s in value.split(";") if s.strip()]
        bad = [s for s in states if s not in _EMAIL_ON]
        if bad or not states:
            r.problem(
                n,
                f"@EMAIL_ON: {', '.join(bad) or 'nothing'} is not a status",
                "use FAIL;SUCCEED;ABORTED;IGNORE",
            )
            return
        value = ";".join(states)
    elif name == "EMAIL_TO":
        to = [a.strip() for a in value.split(";") if a.strip()]
        if not to or any("@" not in a for a in to):
            r.problem(n, f"@EMAIL_TO: {value!r} is not a list of addresses", "write a@x;b@y;")
            return
        value = ";".join(to)
    r.set(n, name.lower(), value)


def _jpgagent_value(value: str) -> str:
    """jpgAgent's value: up to the line's final ';'."""
    return value[:-1].strip() if value.endswith(";") else value


def _job_line(r: _Reader, n: int, name: str, value: str) -> None:
    upper = name.upper()
    if name.lower() == "notifyagent":
        _notifyagent_line(r, n, value, POLICY_KEYS)
    elif upper == "JOB_TIMEOUT":
        try:
            r.set(n, "job_timeout", _policy_value("job_timeout", _jpgagent_value(value)))
        except ValueError as err:
            r.problem(n, f"@JOB_TIMEOUT: {err}", _DURATION_FIX)
    elif upper.startswith("EMAIL_") and upper in (
        "EMAIL_ON",
        "EMAIL_TO",
        "EMAIL_SUBJECT",
        "EMAIL_BODY",
    ):
        _email(
            r,
            n,
            upper,
            _jpgagent_value(value) if upper in ("EMAIL_ON", "EMAIL_TO") else value.rstrip(";"),
        )
    elif upper in ("JOB_STEP_TIMEOUT", "RUN_IN_PARALLEL") or upper.startswith("DATABASE_"):
        r.problem(n, f"@{upper} is a step annotation", "move it to the step's Description")
    else:
        r.problem(n, f"unknown annotation @{name}", "see notifyagent's README (annotations)")


def _step_line(r: _Reader, n: int, name: str, value: str) -> None:
    upper = name.upper()
    if name.lower() == "notifyagent":
        _notifyagent_line(r, n, value, _STEP_KEYS)
        return
    value = _jpgagent_value(value)
    try:
        if upper == "JOB_STEP_TIMEOUT":
            r.set(n, "step_timeout", _policy_value("step_timeout", value))
        elif upper == "RUN_IN_PARALLEL":
            r.set(n, "parallel", _bool(value))
        elif upper.startswith("DATABASE_") and upper[9:] in _DATABASE:
            _database(r, n, upper[9:], value)
        elif upper == "JOB_TIMEOUT" or upper.startswith("EMAIL_"):
            r.problem(n, f"@{upper} is a job annotation", "move it to the job's Comment")
        else:
            r.problem(n, f"unknown annotation @{name}", "see notifyagent's README (annotations)")
    except ValueError as err:
        fix = _DURATION_FIX if upper == "JOB_STEP_TIMEOUT" else _FIXES["parallel"]
        r.problem(n, f"@{upper}: {err}", fix)


def _database(r: _Reader, n: int, which: str, value: str) -> None:
    if not value:
        r.problem(n, f"@DATABASE_{which} is empty", "give a value or remove the line")
        return
    if which == "PASSWORD":
        r.problem(
            n,
            "@DATABASE_PASSWORD is used, but a password stored in a job is readable by every "
            "pgAdmin user of that database",
            "put it in the agent's ~/.pgpass or a service file (pg_service.conf) and remove "
            "the line",
            Severity.WARNING,
        )
    r.set(n, "db:" + _DATABASE[which], value)


def parse(texts: Texts) -> Annotations:
    """The settings the annotations of one job's texts make, with the problems found."""
    job = _Reader("job comment")
    for n, name, value in job.lines_of(texts.job):
        _job_line(job, n, name, value)
    policy = {k: v for k, v in job.values.items() if k in POLICY_KEYS}
    email = {
        k.removeprefix("email_"): str(v) for k, v in job.values.items() if k.startswith("email_")
    }
    problems = list(job.problems)
    if email:
        problems.append(
            Problem(
                Severity.NOTE,
                "job comment",
                "e-mails go out through the agent's alert_email setting (a mailto:// URL)",
                "without it, none is sent",
            )
        )
    steps: dict[int, StepSettings] = {}
    for s in texts.steps:
        r = _Reader(f"step {s.name!r} description")
        for n, name, value in r.lines_of(s.desc):
            _step_line(r, n, name, value)
        problems += r.problems
        if settings := _step_settings(r.values):
            steps[s.id] = settings
    return Annotations(policy, email, steps, tuple(problems))


def _step_settings(values: Mapping[str, object]) -> StepSettings | None:
    if not values:
        return None
    timeout = values.get("step_timeout")
    connection = tuple((k[3:], str(v)) for k, v in values.items() if k.startswith("db:"))
    return StepSettings(
        step_timeout=timeout if isinstance(timeout, timedelta) else None,
        parallel=values.get("parallel") is True,
        connection=connection,
    )
