"""docs/compatibility.md stays true: every test it names exists, every "fixed" row names one,
schedule rows point at docs/schedule-semantics.md, and its list of accepted differences is
exactly the differential test's KNOWN_DIFFERENCES."""

from __future__ import annotations

import re
from pathlib import Path

from tests.compat.test_differential import KNOWN_DIFFERENCES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _rows() -> list[list[str]]:
    """The cells of every behaviour-table row (pgAgent | notifyagent | verdict | test)."""
    rows = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| ") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[2] != "verdict":
            rows.append(cells)
    return rows


def test_every_named_test_exists() -> None:
    refs = TEST_REF.findall(DOC.read_text())
    assert refs
    missing = []
    for path, name in set(refs):
        source = ROOT / path
        if not source.exists() or not re.search(rf"^def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/compatibility.md names tests that do not exist: {sorted(missing)}"


def test_every_fixed_row_names_a_test() -> None:
    rows = _rows()
    assert len(rows) > 50
    unproven = [r[0] for r in rows if r[2].startswith("fixed") and not TEST_REF.search(r[3])]
    assert not unproven, f"'fixed' rows without a test: {unproven}"
    verdicts = {r[2].split(" ")[0] for r in rows}
    assert verdicts <= {"same", "fixed", "extended", "schedule", "—"}, verdicts


def test_schedule_rows_point_at_the_schedule_doc() -> None:
    rows = [r for r in _rows() if "schedule" in r[2]]
    assert rows
    assert all("docs/schedule-semantics.md" in r[2] for r in rows), rows


def test_accepted_differences_match_the_differential_test() -> None:
    text = DOC.read_text().split("## Differences the differential test accepts", 1)[1]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, re.M))
    assert listed == {k.key for k in KNOWN_DIFFERENCES}
