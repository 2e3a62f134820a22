"""docs/operations.md's soak results are the committed results file's, rendered."""

from __future__ import annotations

import json

import pytest

from tests.soak import doc


def test_operations_shows_the_last_committed_soak() -> None:
    path = doc.latest()
    if path is None:
        pytest.fail("no benchmarks/results/soak-*.json: run scripts/soak --minutes 60 --json …")
    result = json.loads(path.read_text())
    assert doc.shown() == doc.render(path, result)
    assert result["passed"], result["problems"] + result["violations"]
    assert result["meta"]["minutes"] >= 60
