"""The schedule field grammar shared by jobs files and ``notifyagent next``: the text a user
writes (``"0,30"``, ``"8-17"``, ``"mon-fri"``, ``"1,15,last"``, cron's ``"*"``, ``"*/15"``,
``"8-17/2"``) and pgAgent's bool arrays, in both directions. An empty text or ``"*"`` selects
nothing, which pgAgent reads as "any". Weekday 7 is Sunday, as in crontab."""

from __future__ import annotations

from collections.abc import Sequence

from notifyagent.errors import ConfigError

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
#: field -> (array length, first value, names for values)
FIELDS: dict[str, tuple[int, int, Sequence[str]]] = {
    "minutes": (60, 0, ()),
    "hours": (24, 0, ()),
    "weekdays": (7, 0, WEEKDAYS),
    "monthdays": (32, 1, ()),
    "months": (12, 1, MONTHS),
}


def _value(field: str, token: str) -> int:
    length, first, names = FIELDS[field]
    word = token.strip().lower()
    if field == "weekdays" and word == "7":
        return 7  # Sunday, as crontab allows; folded onto 0 by the caller
    if field == "monthdays" and word == "last":
        return 32
    if word[:3] in names and word.isalpha():
        return names.index(word[:3]) + first
    try:
        value = int(word)
    except ValueError:
        raise ConfigError(
            f"{field}: {token!r} is not a number{' or a name' if names else ''} "
            f"(allowed: {first}-{first + length - 1}{', ' + '/'.join(names) if names else ''}"
            f"{', last' if field == 'monthdays' else ''})"
        ) from None
    if not first <= value < first + length:
        raise ConfigError(f"{field}: {value} is out of range {first}-{first + length - 1}")
    return value


def _step(field: str, part: str, text: str) -> int:
    try:
        step = int(text)
    except ValueError:
        step = 0
    if step < 1:
        raise ConfigError(f"{field}: the step in {part!r} is not a whole number of at least 1")
    return step


def _values(field: str, part: str) -> range:
    """The values one comma-separated part selects: ``a``, ``a-b``, ``*/n``, ``a-b/n``, ``a/n``
    (from a to the field's last value, as cron reads it)."""
    length, first, _ = FIELDS[field]
    top = first + length - (2 if field == "monthdays" else 1)  # "last" is no day of */n
    base, slash, step_text = part.partition("/")
    step = _step(field, part, step_text) if slash else 1
    if base.strip() == "*":
        return range(first, top + 1, step)
    lo, sep, hi = base.partition("-")
    low = _value(field, lo)
    high = _value(field, hi) if sep else (top if slash else low)
    if high < low:
        raise ConfigError(f"{field}: range {part!r} runs backwards")
    return range(low, high + 1, step)


def parse_field(field: str, text: str | None) -> list[bool]:
    """``"8-17"`` / ``"mon-fri"`` / ``"1,15,last"`` / ``"*/15"`` -> pgAgent's bool array for
    ``field``; ``"*"`` (any) is the all-false array."""
    length, first, _ = FIELDS[field]
    selected = [False] * length
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if "*" in parts:
        return selected
    for part in parts:
        for v in _values(field, part):
            selected[(v % 7 if field == "weekdays" else v) - first] = True
    return selected


def render_field(field_name: str, values: Sequence[bool]) -> str:
    """A pgagent bool array in the file's compact syntax: "0,30", "8-17", "mon-fri", "1,15,last";
    "" when nothing is selected (= any)."""
    _, first, names = FIELDS[field_name]
    selected = [i + first for i, v in enumerate(values) if v]
    last = field_name == "monthdays" and 32 in selected
    if last:
        selected.remove(32)

    def word(v: int) -> str:
        return names[v - first] if names else str(v)

    parts: list[str] = []
    i = 0
    while i < len(selected):
        j = i
        while j + 1 < len(selected) and selected[j + 1] == selected[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{word(selected[i])}-{word(selected[j])}")
        else:
            parts.extend(word(v) for v in selected[i : j + 1])
        i = j + 1
    if last:
        parts.append("last")
    return ",".join(parts)
