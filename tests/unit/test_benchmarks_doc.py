"""BENCHMARKS.md quotes committed benchmark runs: every results file it names exists, and the
table on the page is the first-named file's table (the latest run), so every figure can be
traced to a run (its commit, machine and raw lags are in the file)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "BENCHMARKS.md"


def test_the_table_is_the_committed_runs() -> None:
    text = DOC.read_text()
    named = re.findall(r"benchmarks/results/[\w.-]+\.json", text)
    assert named, "BENCHMARKS.md names no results file"
    assert all((ROOT / n).is_file() for n in named), named
    results = json.loads((ROOT / named[0]).read_text())
    assert not results["errors"]
    assert results["markdown"].strip() in text
    commit = results["meta"]["git"]
    assert "uncommitted" not in commit, "the quoted run measured uncommitted code"
    assert f"commit `{commit}`" in text
    assert not results["meta"]["quick"]
