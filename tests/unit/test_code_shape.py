"""The size rules: no module under notifyagent/ over 400 lines, no function over 60 lines,
and ruff's complexity, branch and statement limits (thresholds in pyproject.toml).

Today's offenders are exempted by name with their size today. The lists only shrink: the
tests fail when an offender grows, when an exempted module or function is within the limits
again or no longer exists (delete its entry), and when a ruff exemption is no longer needed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "notifyagent"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SIZE_RULES = {"C901", "PLR0912", "PLR0915"}

#: module -> its lines today (a ceiling until it is split)
BIG_MODULES: dict[str, int] = {}

#: "module::qualified name" -> its lines today (a ceiling until it is split)
LONG_FUNCTIONS: dict[str, int] = {}


def _modules() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text()


def _functions(source: str) -> Iterator[tuple[str, int]]:
    """(qualified name, lines from ``def`` to its end) of every function, nested ones too."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                yield name, (child.end_lineno or child.lineno) - child.lineno + 1
                yield from walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)

    return walk(ast.parse(source), "")


def _module_lines() -> dict[str, int]:
    return {name: len(source.splitlines()) for name, source in _modules()}


def _function_lines() -> dict[str, int]:
    return {
        f"{module}::{name}": lines
        for module, source in _modules()
        for name, lines in _functions(source)
    }


def _check(found: dict[str, int], limit: int, exempt: dict[str, int], what: str) -> list[str]:
    problems = [
        f"{name}: {lines} lines (limit {limit}): split it"
        for name, lines in found.items()
        if lines > limit and name not in exempt
    ]
    for name, ceiling in exempt.items():
        lines = found.get(name)
        if lines is None:
            problems.append(f"{name}: exempted {what} not found: delete its entry")
        elif lines <= limit:
            problems.append(f"{name}: {lines} lines, within the limit now: delete its entry")
        elif lines > ceiling:
            problems.append(f"{name}: grew from {ceiling} to {lines} lines: split it instead")
    return problems


def test_no_module_over_the_limit() -> None:
    assert _check(_module_lines(), MAX_MODULE_LINES, BIG_MODULES, "module") == []


def test_no_function_over_the_limit() -> None:
    assert _check(_function_lines(), MAX_FUNCTION_LINES, LONG_FUNCTIONS, "function") == []


def test_the_function_walk_sees_methods_and_nested_functions() -> None:
    source = "class A:\n    def f(self):\n        def g():\n            pass\n\n        return g\n"
    assert dict(_functions(source)) == {"A.f": 5, "A.f.g": 2}


def _size_exemptions() -> dict[str, set[str]]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        ignores = tomllib.load(f)["tool"]["ruff"]["lint"]["per-file-ignores"]
    found = {path: set(codes) & SIZE_RULES for path, codes in ignores.items()}
    return {path: codes for path, codes in found.items() if codes}


def test_ruff_size_exemptions_are_still_needed() -> None:
    """Each per-file exemption from a size rule names an existing file that breaks that rule
    today (checked by ruff with the per-file exemptions switched off)."""
    exempt = _size_exemptions()
    assert exempt, "no size exemption found in pyproject.toml: is this test still reading it?"
    missing = sorted(path for path in exempt if not (ROOT / path).is_file())
    assert missing == [], "exempted files that do not exist: delete their entries"
    done = subprocess.run(
        [
            sys.executable, "-m", "ruff", "check", "--select", ",".join(sorted(SIZE_RULES)),
            "--config", "lint.per-file-ignores = {}", "--output-format", "json", *sorted(exempt),
        ],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    broken: dict[str, set[str]] = {path: set() for path in exempt}
    for finding in json.loads(done.stdout):
        broken[Path(finding["filename"]).relative_to(ROOT).as_posix()].add(finding["code"])
    unneeded = {path: sorted(codes - broken[path]) for path, codes in exempt.items()}
    assert {path: codes for path, codes in unneeded.items() if codes} == {}
