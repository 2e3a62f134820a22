"""docs/testing.md maps every README feature to the tests that prove it: every command,
option and policy key of the README's tables has a row there, and every row names tests
that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAP = ROOT / "docs" / "testing.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
#: The first cell of a README table row that names commands, options or policy keys.
README_ROW = re.compile(r"^\| (`[^|]+`) \|", re.M)


def _readme_features() -> set[str]:
    """What the README's command, option and policy tables name, e.g. ``--dsn``, ``status``."""
    features = set()
    for cell in README_ROW.findall(README.read_text()):
        for name in re.findall(r"`([^`]+)`", cell):
            words = name.split()
            features.add(words[1] if words[0] == "notifyagent" else words[0])
    return features


def _map_rows() -> dict[str, str]:
    """feature cell -> tests cell of the map's table."""
    rows = {}
    for line in MAP.read_text().splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if len(cells) == 2 and cells[0] != "feature":
                rows[cells[0]] = cells[1]
    return rows


def test_readme_tables_are_read() -> None:
    features = _readme_features()
    assert {"serve", "uninstall", "--dsn", "--history-keep", "retries", "catchup"} <= features
    assert len(features) > 30


def test_every_readme_feature_has_a_row_with_tests() -> None:
    rows = _map_rows()
    missing = []
    for feature in sorted(_readme_features()):
        cells = [t for f, t in rows.items() if f"`{feature}" in f]
        if not any(TEST_REF.search(t) for t in cells):
            missing.append(feature)
    assert not missing, f"README features without a test in docs/testing.md: {missing}"


def test_every_test_the_map_names_exists() -> None:
    refs = set(TEST_REF.findall(MAP.read_text()))
    assert len(refs) > 40
    missing = []
    for path, name in refs:
        source = ROOT / path
        if not source.exists() or not re.search(
            rf"^(async )?def {name}\(", source.read_text(), re.M
        ):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/testing.md names tests that do not exist: {sorted(missing)}"
