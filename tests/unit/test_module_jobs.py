"""`controls` and the delivery loop are split by job (issue 11): each module is small, says
its types (no `Any` in a public signature), and the pure decisions do no I/O."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

SPLIT = [
    "tasks/engine/controls.py", "tasks/engine/commands.py", "tasks/engine/decisions.py",
    "tasks/engine/schedules.py", "bot/application/delivery.py", "bot/application/sending.py",
    "bot/application/pacing.py", "bot/application/leadership.py",
]  # fmt: skip
PURE = ["bot/application/pacing.py"]
IO = ("asyncio", "logging", "time", "socket", "adapters", "tasks.store", "sqlalchemy", "aiohttp")


def _mentions_any(node: ast.expr | None) -> bool:
    if node is None:
        return False
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id == "Any" or isinstance(n, ast.Attribute) and n.attr == "Any":
            return True
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "Any" in n.value:
            return True
    return False


def _public_annotations(tree: ast.Module) -> list[tuple[str, ast.expr | None]]:
    """(name, annotation) of the public functions, methods and class attributes."""
    out: list[tuple[str, ast.expr | None]] = []
    scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
    scopes += [(f"{c.name}.", c.body) for c in tree.body if isinstance(c, ast.ClassDef) and c.name[0] != "_"]
    for prefix, body in scopes:
        for node in body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                out.append((prefix + node.target.id, node.annotation))
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("_") and node.name != "__init__":
                continue
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    out.append((f"{prefix}{node.name}({arg.arg})", arg.annotation))
            out.append((f"{prefix}{node.name} ->", node.returns))
    return out


@pytest.mark.parametrize("path", SPLIT)
def test_a_split_module_is_small_and_says_its_types(path: str) -> None:
    source = (ROOT / path).read_text()
    assert len(source.splitlines()) <= 250, path
    tree = ast.parse(source)
    assert ast.get_docstring(tree), f"{path} says what it is responsible for"
    assert [name for name, ann in _public_annotations(tree) if _mentions_any(ann)] == []


@pytest.mark.parametrize("path", PURE)
def test_the_delivery_decisions_do_no_io(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert [m for m in imported if m.startswith(IO)] == []
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.Await)]


def test_the_scan_sees_any_in_a_public_signature() -> None:
    tree = ast.parse(
        "class C:\n    def f(self, x: dict[str, Any]) -> None: ...\n    def _g(self, y: Any) -> None: ...\n"
    )
    assert [name for name, ann in _public_annotations(tree) if _mentions_any(ann)] == ["C.f(x)"]
