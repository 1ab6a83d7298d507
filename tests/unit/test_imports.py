"""Imports point down (issue 11): no import cycle among the project's modules, `adapters` and
`tasks` never import `bot` or each other, and inside `tasks` each room imports only the rooms
below it (rules < skill contract < store < skills < planning < engine). Every import counts,
those inside functions and under TYPE_CHECKING too."""

from __future__ import annotations

import ast
from functools import cache

import pytest

from tests.conftest import ROOT

PACKAGES = ("tasks", "bot", "adapters", "benchmarks")
# room -> the rooms it may import (its own included); the longest matching prefix decides.
ALLOWED = {
    "tasks.rules": {"tasks.rules"},
    "tasks.skills.base": {"tasks.rules"},
    "tasks.store": {"tasks.rules", "tasks.skills.base", "tasks.store"},
    "tasks.skills": {"tasks.rules", "tasks.store", "tasks.skills"},
    "tasks.planning": {"tasks.rules", "tasks.store", "tasks.skills", "tasks.planning"},
    "tasks.engine": {"tasks"},
    "adapters": {"adapters"},
    "bot.application": {"adapters", "tasks", "bot.application"},
    "bot.assembly": {"adapters", "tasks", "bot.application", "bot.assembly"},
    "bot.wiring": {"adapters", "tasks", "bot.application", "bot.assembly", "bot.wiring"},
    "bot.web": {"adapters", "tasks", "bot.application", "bot.assembly", "bot.wiring", "bot.web"},
    "bot.ops": {"adapters", "tasks", "bot"},
    "bot": {"bot"},
    "benchmarks": {"adapters", "tasks", "bot", "benchmarks"},
}
# Upward imports the layering allows by name, each with its reason.
EXCEPTIONS = {
    ("bot.ops.cli", "benchmarks.engine"),  # `cowork bench`: a thin entry, run when the folder is there
    ("bot.assembly.runtime", "bot.ops.prune"),  # the runtime runs the background prune round of `db prune`
}


def _name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@cache
def modules() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in rel:
                found[_name(rel)] = rel
    return found


@cache
def graph() -> dict[str, frozenset[str]]:
    known = modules()
    edges = {}
    for name, rel in known.items():
        targets = set()
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in known else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        edges[name] = frozenset(t for t in targets if t in known and t != name)
    return edges


def _room(module: str, rooms: object) -> str | None:
    matches = [r for r in rooms if module == r or module.startswith(r + ".")]  # type: ignore[attr-defined]
    return max(matches, key=len) if matches else None


def cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_loop() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_the_project_has_no_import_cycle() -> None:
    assert len(graph()) > 100
    assert cycles(graph()) == []


@pytest.mark.parametrize("importer, imported, allowed", [
    ("tasks.rules.policy", "tasks.planning.plan_gate", False),
    ("tasks.store.outbox", "tasks.skills.base", True),
    ("tasks.store.outbox", "tasks.skills.catalog", False),
    ("tasks.engine.steps", "tasks.store.db", True),
    ("tasks.skills.catalog", "tasks.planning.playbooks", False),
    ("adapters.slack.client", "tasks.store.db", False),
    ("bot.application.delivery", "bot.assembly.runtime", False),
    ("bot.web.server", "bot.assembly.runtime", True),
    ("bot.assembly.runtime", "bot.web.server", False),
    ("bot.wiring.slack", "bot.ops.cli", False),
])  # fmt: skip
def test_the_layering_rule_reads_as_meant(importer: str, imported: str, allowed: bool) -> None:
    assert _allowed(importer, imported) is allowed


def _allowed(importer: str, imported: str) -> bool:
    room = _room(importer, ALLOWED)
    assert room is not None, f"{importer} is in no room"
    return (importer, imported) in EXCEPTIONS or _room(imported, ALLOWED[room]) is not None


def test_imports_point_down() -> None:
    wrong = [f"{a} -> {b}" for a, targets in sorted(graph().items()) for b in sorted(targets) if not _allowed(a, b)]
    assert wrong == []
