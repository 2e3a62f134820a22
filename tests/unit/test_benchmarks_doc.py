"""BENCHMARKS.md quotes committed benchmark runs: every results file it names exists, and its
"Latest results" part is what ``scripts/bench --update-doc`` generates from the file it names
(the latest run): the targets, met or not, and every table, so every figure can be traced
to a run (its commit, machine and raw lags are in the file)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.bench.doc import BEGIN, END, render_doc

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "BENCHMARKS.md"


def test_the_tables_are_generated_from_the_committed_run() -> None:
    text = DOC.read_text()
    named = re.findall(r"benchmarks/results/[\w.-]+\.json", text)
    assert named, "BENCHMARKS.md names no results file"
    assert all((ROOT / n).is_file() for n in named), named
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0]
    latest = re.findall(r"benchmarks/results/[\w.-]+\.json", generated)[0]
    results = json.loads((ROOT / latest).read_text())
    assert not results["errors"]
    assert generated.strip() == render_doc(results, latest).strip(), (
        f"run scripts/bench --update-doc {latest}"
    )
    commit = results["meta"]["git"]
    assert "uncommitted" not in commit, "the quoted run measured uncommitted code"
    assert f"commit `{commit}`" in generated
    assert "| figure | target | measured | met? |" in generated
    assert not results["meta"]["quick"]
