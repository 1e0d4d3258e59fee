"""The layout is a contract: no import cycles, no imports hidden in functions, small units.

The layer order itself is checked by import-linter (``lint-imports``, pyproject.toml), which
``bash scripts/test.sh`` runs; these tests check what a layers contract cannot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "attacks", "defenses")
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60  # the body, after the signature and docstring


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(graph.modules):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycles() -> None:
    graph = grimp.build_graph(*PACKAGES)
    assert _cycles(graph) == []


def test_a_cycle_is_detected() -> None:
    """The checker itself can fail: two modules importing each other form a component."""

    edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}

    class Fake:
        modules = frozenset(edges)

        def find_modules_directly_imported_by(self, m: str) -> set[str]:
            return edges[m]

    assert _cycles(Fake()) == [["a", "b"]]  # type: ignore[arg-type]


def _function_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Imports of the project's own packages inside a function body."""
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [(node.lineno, n) for n in names if n.split(".")[0] in PACKAGES]
    return found


# ``import bench`` stays cheap: the package root exposes load_model on first use (PEP 562).
LAZY_ROOT = {("bench/__init__.py", "bench.store.loading")}


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_project_import_inside_a_function(path: Path) -> None:
    rel = str(path.relative_to(REPO))
    hidden = [
        (line, name)
        for line, name in _function_imports(ast.parse(path.read_text()))
        if (rel, name) not in LAZY_ROOT
    ]
    assert hidden == []


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES
    long = []
    for fn in ast.walk(ast.parse(text)):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            body = fn.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:] or body
            n = fn.end_lineno - body[0].lineno + 1  # type: ignore[operator]
            if n > MAX_FUNCTION_LINES:
                long.append((fn.name, n))
    assert long == []
