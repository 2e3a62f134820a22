"""The status letters pgagent's run and step logs hold (``jlgstatus``, ``jslstatus``)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RUNNING = "r"
    SUCCESS = "s"
    FAILED = "f"
    INTERNAL_ERROR = "i"
    ABORTED = "d"

    @property
    def label(self) -> str:
        """``"internal error"`` for ``i``: the word people read in tables and messages."""
        return self.name.lower().replace("_", " ")


def label(code: str | None) -> str | None:
    """The label of a stored status letter; ``None`` and unknown letters (rows made by hand)
    as they are."""
    if code is None:
        return None
    try:
        return Status(code).label
    except ValueError:
        return code
