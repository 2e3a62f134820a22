"""The schedule field grammar shared by jobs files and ``notifyagent next``: the text a user
writes (``"0,30"``, ``"8-17"``, ``"mon-fri"``, ``"1,15,last"``) and pgAgent's bool arrays,
in both directions. An empty text selects nothing, which pgAgent reads as "any"."""

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


def parse_field(field: str, text: str | None) -> list[bool]:
    """``"8-17"`` / ``"mon-fri"`` / ``"1,15,last"`` -> pgAgent's bool array for ``field``."""
    length, first, _ = FIELDS[field]
    selected = [False] * length
    for part in (text or "").split(","):
        if not part.strip():
            continue
        lo, sep, hi = part.partition("-")
        low = _value(field, lo)
        high = _value(field, hi) if sep else low
        if high < low:
            raise ConfigError(f"{field}: range {part.strip()!r} runs backwards")
        for v in range(low, high + 1):
            selected[v - first] = True
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
