"""docs/operations.md shows the committed results of an hour-long soak
(benchmarks/results/soak-*.json, the one it names), rendered here; tests/unit/test_soak_doc.py
checks the page against the file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.soak.report import table

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations.md"
RESULTS = REPO / "benchmarks" / "results"
START, END = "<!-- soak-table -->", "<!-- /soak-table -->"


def named() -> Path:
    """The results file the page's table names."""
    m = re.search(r"`(benchmarks/results/soak-[\w.-]+\.json)`", shown())
    if m is None:
        raise AssertionError(f"{DOC} names no soak results file between {START} and {END}")
    return REPO / m.group(1)


def render(path: Path, result: dict[str, Any]) -> str:
    meta = result["meta"]
    verdict = "passed" if result["passed"] else "FAILED"
    lives = ", ".join(f"{st} {n}" for st, n in meta["agent_lives"].items())
    head = (
        f"`scripts/soak --minutes {meta['minutes']:g} --seed {meta['seed']}` at {meta['git']}, "
        f"{meta['started'][:16].replace('T', ' ')} UTC: **{verdict}**. "
        f"Results: `{path.relative_to(REPO)}`. Agent processes per station: {lives}; "
        f"{meta['edits']} schedule edits through pgAdmin's SQL."
    )
    return f"{head}\n\n{table(result)}"


def shown() -> str:
    text = DOC.read_text()
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def update(path: Path) -> None:
    """Put the table of ``path`` into docs/operations.md."""
    text = DOC.read_text()
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    block = render(path, json.loads(path.read_text()))
    DOC.write_text(f"{before}{START}\n{block}\n{END}{after}")
