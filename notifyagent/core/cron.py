"""Crontab lines (``"*/15 8-17 * * mon-fri"``) mapped exactly onto pgAgent's schedule arrays,
and back where the arrays say exactly what a crontab line says.

Why a refusal rather than an approximation: a schedule that runs at other times than the line
the user pasted is worse than an error. pgAgent cannot express:

* cron's day rule when both day fields are restricted: cron runs on days matching *either*
  (day of month OR day of week), pgAgent only on days matching both;
* ``L``, ``W``, ``#`` and ``?`` (Quartz and some crons), ``@reboot``, a seconds or a year field.

Pure: text in, arrays out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from notifyagent.core.fields import FIELDS, parse_field, render_field
from notifyagent.errors import ConfigError

#: a crontab line's fields, in its order, by the name of the pgAgent array each fills
ORDER = ("minutes", "hours", "monthdays", "months", "weekdays")
LABELS = {
    "minutes": "minute",
    "hours": "hour",
    "monthdays": "day of month",
    "months": "month",
    "weekdays": "day of week",
}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_UNSUPPORTED = re.compile(r"(^|[^a-z])(l|lw|\d+w|\w+#\d+|\d*l)($|[^a-z])|\?", re.IGNORECASE)

Arrays = dict[str, list[bool]]


def _expand(line: str) -> list[str]:
    text = " ".join(line.split())
    if text.startswith("@"):
        text = text.lower()
        if text == "@reboot":
            raise ConfigError("cron: @reboot is not a time: pgAgent schedules have no start-up run")
        if text not in MACROS:
            raise ConfigError(f"cron: unknown {text!r} (known: {', '.join(MACROS)})")
        text = MACROS[text]
    parts = text.split(" ") if text else []
    if len(parts) in (6, 7):
        raise ConfigError(
            f"cron: {len(parts)} fields: a seconds (or year) field cannot be expressed; pgAgent "
            "schedules have 5 (minute hour day-of-month month day-of-week); for runs more "
            "often than once a minute use the policy every"
        )
    if len(parts) != 5:
        raise ConfigError(
            f"cron: {line.strip()!r} has {len(parts)} fields; a cron line has 5: minute hour "
            "day-of-month month day-of-week"
        )
    return parts


def parse_cron(line: str) -> Arrays:
    """A crontab line -> pgAgent's arrays by field name; ConfigError where pgAgent cannot
    express the line exactly."""
    parts = _expand(line)
    arrays: Arrays = {}
    for name, text in zip(ORDER, parts, strict=True):
        if _UNSUPPORTED.search(text):
            raise ConfigError(
                f"cron: {LABELS[name]} {text!r}: L, W, # and ? (last, nearest weekday, nth "
                "weekday) cannot be expressed in a pgAgent schedule"
            )
        try:
            arrays[name] = parse_field(name, text)
        except ConfigError as err:
            raise ConfigError(f"cron: {LABELS[name]}: {str(err).split(': ', 1)[1]}") from None
    if arrays["monthdays"][31]:
        raise ConfigError(f"cron: day of month {parts[2]!r}: days are 1-31 in a cron line")
    return every_minute_if_empty(_days(arrays, parts[2], parts[4]))


def every_minute_if_empty(arrays: Mapping[str, Sequence[bool]]) -> Arrays:
    """``* * * * *``: pgAgent runs a schedule with nothing selected in all five arrays only
    once (docs/schedule-semantics.md), so "every minute" selects every minute."""
    found = {name: list(v) for name, v in arrays.items()}
    if any(any(v) for v in found.values()):
        return found
    return found | {"minutes": [True] * 60}


def _days(arrays: Arrays, dom: str, dow: str) -> Arrays:
    """Cron's day rule: when neither day field starts with ``*``, a day matching either runs
    (pgAgent: both)."""
    if dom.startswith("*") or dow.startswith("*"):
        return arrays  # cron ANDs them too
    if all(arrays["monthdays"][:31]) or all(arrays["weekdays"]):
        return arrays | {"monthdays": [False] * 32, "weekdays": [False] * 7}  # every day
    raise ConfigError(
        f"cron: day of month {dom!r} and day of week {dow!r} are both restricted: cron runs on "
        "days matching either, pgAgent only on days matching both; write two schedules, one "
        "with each (the other '*')"
    )


def _cron_field(name: str, values: list[bool]) -> str:
    if not any(values):
        return "*"
    _, first, _ = FIELDS[name]
    chosen = [i + first for i, v in enumerate(values) if v]
    top = first + len(values) - (2 if name == "monthdays" else 1)
    for step in range(2, top - first + 1):
        if chosen == list(range(first, top + 1, step)):
            return f"*/{step}"
    return render_field(name, values)


def render_cron(arrays: Arrays) -> str | None:
    """The crontab line saying exactly what ``arrays`` say, or None when there is none (the
    day of month "last", or both day fields restricted)."""
    if arrays["monthdays"][31]:
        return None
    line = " ".join(_cron_field(name, arrays[name]) for name in ORDER)
    if line == "0-59 * * * *":
        line = "* * * * *"
    try:
        exact = parse_cron(line) == {name: list(arrays[name]) for name in ORDER}
    except ConfigError:
        return None
    return line if exact else None
