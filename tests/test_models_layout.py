"""The layout of the networks, training and prediction code: small files, imports that run
one way (no cycle, function-local imports included), networks registered beside their
classes."""

from __future__ import annotations

import ast
from pathlib import Path

import mefr

SRC = Path(mefr.__file__).parent
#: The folders and modules of this area.
AREA = ("models", "train", "predict", "modelfile.py")
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ["mefr", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(tree: ast.Module, type_checking: bool = True) -> list[ast.stmt]:
    """Every import statement at any depth (function-local ones too); those under ``if
    TYPE_CHECKING:`` only when ``type_checking``."""
    found: list[ast.stmt] = []

    def visit(node: ast.AST) -> None:
        if (not type_checking and isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test)):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)  # type: ignore[arg-type]
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the mefr modules its code imports (with their parent packages, whose
    ``__init__`` runs first), leaving out its own parent packages. Imports for type
    checkers count too, except in ``mefr/__init__.py``, whose ``TYPE_CHECKING`` block only
    names the public face's lazily imported names."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text())
        for node in _imports(tree, type_checking=name != "mefr"):
            if isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                wanted = [base, *(f"{base}.{a.name}" for a in node.names)]
            for w in wanted:
                while w:
                    if w in modules:
                        targets.add(w)
                    w = w.rpartition(".")[0]
        own = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
        graph[name] = targets - own
    return graph


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """An import path from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _in_area(name: str) -> bool:
    rest = name.removeprefix("mefr.")
    return any(rest == a.removesuffix(".py") or rest.startswith(a + ".") for a in AREA)


def test_no_import_cycle_runs_through_this_area() -> None:
    modules = _modules()
    graph = _graph(modules)
    for name in sorted(n for n in modules if _in_area(n)):
        assert _cycle_through(graph, name) is None, " -> ".join(_cycle_through(graph, name))


def test_files_stay_small() -> None:
    for name, path in _modules().items():
        if _in_area(name):
            lines = len(path.read_text().splitlines())
            assert lines <= MAX_LINES, f"{path}: {lines} lines"


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_through(graph, "a") == ["a", "b", "c", "a"]
    assert _cycle_through(graph, "d") is None
    local = ast.parse("def f():\n    from mefr.train import engine\n")
    assert len(_imports(local)) == 1  # function-local imports count
    guarded = ast.parse("if TYPE_CHECKING:\n    import mefr.train.engine\n")
    assert len(_imports(guarded)) == 1 and _imports(guarded, type_checking=False) == []


def test_every_network_module_registers_beside_its_classes() -> None:
    from mefr.models.catalog import MODELS

    for name, entry in MODELS.items():
        source = Path(__import__(entry.cls.__module__, fromlist=["x"]).__file__).read_text()
        assert f'register("{name}"' in source, name
        assert entry.display, name
