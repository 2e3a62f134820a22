"""docs/architecture.md stays true: every module it names exists, and every ``Class.method``
or function it places in a module is defined there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "notifyagent"
MODULE = re.compile(r"`((?:[a-z_]+/)+[a-z_]+\.py)`")
#: "`agent/scheduler.py` `Scheduler._dispatch`" or "`agent/job.py` `run_steps`"
PLACED = re.compile(r"`((?:[a-z_]+/)+[a-z_]+\.py)` `(\w+(?:\.\w+)?)`")


def _defined(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return names


def test_named_modules_exist() -> None:
    named = set(MODULE.findall(DOC.read_text()))
    assert len(named) > 5
    missing = sorted(m for m in named if not (PACKAGE / m).exists() and not (ROOT / m).exists())
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_placed_names_are_defined_there() -> None:
    placed = PLACED.findall(DOC.read_text())
    assert len(placed) >= 5
    wrong = [f"{m}::{n}" for m, n in placed if n not in _defined(PACKAGE / m)]
    assert wrong == [], f"docs/architecture.md places names where they are not: {wrong}"
