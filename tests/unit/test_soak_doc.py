"""docs/operations.md's soak results are the committed results file's, rendered (passed or
not: the page says which)."""

from __future__ import annotations

import json

from tests.soak import doc


def test_operations_shows_a_committed_hour_long_soak() -> None:
    path = doc.named()
    assert path.exists(), f"{path} is not committed"
    result = json.loads(path.read_text())
    assert doc.shown() == doc.render(path, result)
    assert result["meta"]["minutes"] >= 60
