"""Every SQL name the code uses exists in sql/, and every statement in sql/ is used.

Names are ``-- name: <name>`` markers in ``sql/queries.sql`` (read by ``query(name)``) and
files ``sql/<name>.sql`` (read by ``script(name)``). The code passes a name as a literal,
either to ``query``/``script`` or to a helper that hands its parameter on to them (found
here by following the parameters, so ``fetch(conn, "find_job")`` counts as a use).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL = ROOT / "sql"
#: the marker sqlfiles.py splits sql/queries.sql on
NAME_MARKER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)

Def = ast.FunctionDef | ast.AsyncFunctionDef


def _trees() -> list[ast.Module]:
    return [ast.parse(p.read_text()) for p in sorted((ROOT / "notifyagent").rglob("*.py"))]


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


def _argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    if position < len(call.args):
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _parameters(fn: Def) -> tuple[list[str], int]:
    """Parameter names, and 1 for a method (its callers do not pass ``self``)."""
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    return names, 1 if names[:1] in (["self"], ["cls"]) else 0


def _name_takers(trees: list[ast.Module]) -> dict[str, dict[str, set[tuple[int, str]]]]:
    """kind ("query"/"script") -> function name -> (position, parameter) that carries a name
    on to ``query``/``script``: found by following parameters until nothing new turns up."""
    takers = {kind: {kind: {(0, "name")}} for kind in ("query", "script")}
    changed = True
    while changed:
        changed = False
        for fn in (n for tree in trees for n in ast.walk(tree) if isinstance(n, Def)):
            params, offset = _parameters(fn)
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                for by_name in takers.values():
                    for position, name in list(by_name.get(_callee(call) or "", ())):
                        arg = _argument(call, position, name)
                        if isinstance(arg, ast.Name) and arg.id in params:
                            entry = (params.index(arg.id) - offset, arg.id)
                            if entry not in by_name.setdefault(fn.name, set()):
                                by_name[fn.name].add(entry)
                                changed = True
    return takers


def _literals(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _literals(node.body)
        yield from _literals(node.orelse)


def _used(trees: list[ast.Module]) -> tuple[dict[str, set[str]], list[str]]:
    """The names used, by kind, and the direct ``query``/``script`` calls whose name is
    neither a literal nor a parameter handed on (this test could not see those names)."""
    takers = _name_takers(trees)
    used: dict[str, set[str]] = {kind: set() for kind in takers}
    unseen = []
    for fn in (n for tree in trees for n in ast.walk(tree) if isinstance(n, Def)):
        params, _ = _parameters(fn)
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            for kind, by_name in takers.items():
                for position, name in by_name.get(_callee(call) or "", ()):
                    arg = _argument(call, position, name)
                    if arg is None:
                        continue
                    found = set(_literals(arg))
                    used[kind] |= found
                    forwarded = isinstance(arg, ast.Name) and arg.id in params
                    if _callee(call) == kind and not found and not forwarded:
                        unseen.append(f"{fn.name}: {ast.unparse(call)}")
    return used, unseen


def _defined_queries() -> list[str]:
    return NAME_MARKER.findall((SQL / "queries.sql").read_text())


def test_every_used_name_exists() -> None:
    used, unseen = _used(_trees())
    assert unseen == [], "give query()/script() a literal name, or pass one on to them"
    assert used["query"] - set(_defined_queries()) == set()
    assert {name for name in used["script"] if not (SQL / f"{name}.sql").is_file()} == set()


def test_every_statement_is_used() -> None:
    used, _ = _used(_trees())
    assert set(_defined_queries()) - used["query"] == set(), "dead SQL: delete it"
    assert {p.stem for p in SQL.glob("*.sql")} - used["script"] == set(), "dead SQL file"


def test_query_names_are_unique() -> None:
    names = _defined_queries()
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_the_search_follows_helpers() -> None:
    """A name passed through two helpers is found; one built at run time is reported."""
    source = (
        "def fetch(conn, name):\n    return query(name)\n"
        "class Store:\n"
        "    def rows(self, name):\n        return fetch(None, name)\n"
        "    def jobs(self):\n        return self.rows('job_states')\n"
        "def bad(kind):\n    n = kind + '_x'\n    return query(n)\n"
    )
    used, unseen = _used([ast.parse(source)])
    assert used == {"query": {"job_states"}, "script": set()}
    assert unseen == ["bad: query(n)"]
