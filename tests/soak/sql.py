"""The soak's statements (tests/soak/soak.sql), by name."""

from __future__ import annotations

import functools
from pathlib import Path

from notifyagent.db.sql import named


@functools.cache
def _all() -> dict[str, str]:
    return named((Path(__file__).parent / "soak.sql").read_text())


def q(name: str) -> bytes:
    """The statement ``name``, for psycopg's ``execute`` (bytes: no composition needed)."""
    return _all()[name].encode()
