"""docs/operations.md stays true: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_named_in_operations_md_exists() -> None:
    text = DOC.read_text()
    named = set(re.findall(r"(?:(test_\w+)\.py)?::(test_\w+)", text))
    bare = set(re.findall(r"`(test_\w+)`", text)) - {f for f, _ in named}
    assert named, "docs/operations.md names no tests"
    files = {
        p.stem: p for p in [*ROOT.glob("tests/faults/test_*.py"), *ROOT.glob("tests/*/test_*.py")]
    }
    every = set().union(*(_tests_in(p) for p in files.values()))
    missing = []
    for module, name in named:
        if module and module not in files:
            missing.append(f"{module}.py")
        elif name not in (_tests_in(files[module]) if module else every):
            missing.append(f"{module}::{name}")
    missing += [name for name in bare if name not in every]
    assert not missing, f"docs/operations.md names tests that do not exist: {sorted(missing)}"
