"""The layout rules of docs/architecture.md, checked on the source with ``ast``.

* no import cycle between the modules of ``src/mefr`` (function-local imports and
  imports under ``if TYPE_CHECKING:`` count: they tie two modules together all the same);
* no file in ``src/`` over :data:`MAX_LINES` lines;
* the run-directory files (``folds/``, ``config.yaml``, ``metrics.json``,
  ``predictions.csv``...) are named only in ``mefr/evaluate/rundir.py``;
* a ``SCHEME:PATH`` data source is split only in ``mefr/preprocess/sources.py`` (and a
  database spec only in the data package's spec parser).
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from pathlib import Path

from mefr.data.table import DATASETS
from mefr.preprocess.sources import EXTRA_SCHEMES

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "mefr"
MAX_LINES = 450

#: The run-directory file and folder names that only rundir.py may use to build paths.
RUN_DIR_NAMES = ("folds", "config.yaml", "metrics.json", "predictions.csv", "table.md",
                 "megc_log")
RUN_DIR_OWNER = "mefr/evaluate/rundir.py"
#: Where ``SCHEME:PATH`` text may be split.
SCHEME_OWNERS = ("mefr/preprocess/sources.py", "mefr/data/specs.py")
#: ``kind:argument`` names that are not data sources (protocol names such as ``loso:casme2``).
NOT_SOURCES = {"mefr/evaluate/protocols.py": "protocol names (loso:<dataset>, cdmer:<n>)"}
SCHEMES = (*DATASETS, *EXTRA_SCHEMES, "smic")


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str], root: Path = SRC) -> set[str]:
    """The mefr modules ``path`` imports, at any depth (in functions, under
    ``TYPE_CHECKING``: a type-only import still ties the two modules together)."""
    me = _module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "mefr" and all(a.name == "__version__" for a in node.names):
                continue  # the root package's version: set before anything else is imported
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in modules and n != me}
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over src/mefr."""
    files = {_module_name(p): p for p in _sources()}
    return {m: _imports(p, set(files)) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


#: Calls whose string arguments are file names.
PATH_CALLS = {"Path", "PurePath", "joinpath", "glob", "rglob", "join", "open", "with_name"}


def _path_strings(path: Path) -> Iterator[tuple[int, str, bool]]:
    """``(line, text, in a path context)`` of every string that is not a docstring; a
    path context is an operand of ``/``, an argument of :data:`PATH_CALLS` or a piece of
    an f-string."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    in_path: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            in_path |= {id(node.left), id(node.right)}
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in PATH_CALLS:
                in_path |= {id(a) for a in node.args}
        elif isinstance(node, ast.JoinedStr):
            in_path |= {id(v) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value, id(node) in in_path


def names_run_dir_path(text: str, in_path: bool = True) -> bool:
    """A string that builds a run-directory path: a bare name (``"metrics.json"``) in a
    path context, or a path fragment anywhere (``"folds/seed0"``, ``"/metrics.json"`` of
    ``f"{run}/metrics.json"``)."""
    t = text.strip()
    return (in_path and t in RUN_DIR_NAMES) or any(
        t.startswith((f"{n}/", f"/{n}")) or t.endswith(f"/{n}") for n in RUN_DIR_NAMES)


def run_dir_violations() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in _sources():
        rel = _rel(path)
        if rel == RUN_DIR_OWNER:
            continue
        found = [f"{rel}:{line}: {text!r}" for line, text, ctx in _path_strings(path)
                 if names_run_dir_path(text, ctx)]
        if found:
            out[rel] = found
    return out


def _splits_on_colon(node: ast.Call) -> bool:
    f = node.func
    if not isinstance(f, ast.Attribute) or f.attr not in ("partition", "rpartition", "split",
                                                           "rsplit", "index", "find"):
        return False
    return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == ":"


def _tests_a_scheme(node: ast.Call) -> bool:
    f = node.func
    if not isinstance(f, ast.Attribute) or f.attr not in ("startswith", "removeprefix"):
        return False
    args = node.args[0].elts if node.args and isinstance(node.args[0], ast.Tuple) else node.args
    return any(isinstance(a, ast.Constant) and isinstance(a.value, str)
               and a.value.endswith(":") and a.value[:-1] in SCHEMES for a in args)


def scheme_violations() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in _sources():
        rel = _rel(path)
        if rel in SCHEME_OWNERS or rel in NOT_SOURCES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = [f"{rel}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and (_splits_on_colon(n) or _tests_a_scheme(n))]
        if found:
            out[rel] = found
    return out


def oversized() -> dict[str, int]:
    sizes = {_rel(p): len(p.read_text(encoding="utf-8").splitlines())
             for p in sorted(SRC.rglob("*.py"))}
    return {p: n for p, n in sizes.items() if n > MAX_LINES}


def _module_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """The statements run when a module is imported: its body, with the bodies of its
    top-level ``if`` / ``try`` blocks (``if TYPE_CHECKING:``, optional imports)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        yield node
        if isinstance(node, ast.If | ast.Try):
            todo[:0] = [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                todo[:0] = handler.body


def _imported_names(tree: ast.Module) -> dict[str, int]:
    """``{name: line}`` of the names a module binds by importing them at module level
    (``from m import a``, ``import m as a``; a plain ``import a.b`` imports for its
    side effects and binds nothing new to re-export)."""
    out: dict[str, int] = {}
    for node in _module_level(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            out.update({a.asname or a.name: node.lineno for a in node.names})
        elif isinstance(node, ast.Import):
            out.update({a.asname: node.lineno for a in node.names if a.asname})
    return out


def _defined_names(tree: ast.Module) -> set[str]:
    """The names a module defines itself at module level (def, class, assignment)."""
    out: set[str] = set()
    for node in _module_level(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return out


def _dunder_all(tree: ast.Module) -> set[str]:
    for node in _module_level(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return {e.value for e in ast.walk(node.value)
                        if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()


def _used_names(tree: ast.Module) -> set[str]:
    """Every name the module's code reads, quoted annotations included."""
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for node in ast.walk(tree):
        notes = []
        if isinstance(node, ast.arg | ast.AnnAssign):
            notes = [node.annotation]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            notes = [node.returns]
        for note in notes:
            for c in ast.walk(note) if note is not None else ():
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    with contextlib.suppress(SyntaxError):
                        used |= {n.id for n in ast.walk(ast.parse(c.value, mode="eval"))
                                 if isinstance(n, ast.Name)}
    return used


def reexports(source: str, rel: str) -> list[str]:
    """How a module (not a package ``__init__``) hands on names it imports: an imported
    name it never uses, one listed in ``__all__``, or a module-level ``__getattr__``."""
    tree = ast.parse(source)
    used, listed, own = _used_names(tree), _dunder_all(tree), _defined_names(tree)
    found = [f"{rel}:{line}: {name!r} imported but not used (a re-export)"
             for name, line in _imported_names(tree).items() if name not in used]
    found += [f"{rel}: {name!r} in __all__ is imported, not defined here"
              for name in sorted(listed - own) if name in _imported_names(tree)]
    found += [f"{rel}:{node.lineno}: a module-level __getattr__ forwards names"
              for node in _module_level(tree)
              if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"]
    return found


def reexport_violations() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in _sources():
        if path.name != "__init__.py":
            found = reexports(path.read_text(encoding="utf-8"), _rel(path))
            if found:
                out[_rel(path)] = found
    return out


def foreign_imports(files: list[Path]) -> list[str]:
    """``from M import name`` in ``files`` where ``M`` is a module of src/mefr (not a
    package) that imports ``name`` from elsewhere instead of defining it."""
    borrowed: dict[str, set[str]] = {}
    for path in _sources():
        if path.name != "__init__.py":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            borrowed[_module_name(path)] = set(_imported_names(tree)) - _defined_names(tree)
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in borrowed:
                found += [f"{path.relative_to(SRC.parent)}:{node.lineno}: {a.name} from "
                          f"{node.module}" for a in node.names
                          if a.name in borrowed[node.module]]
    return found


# ----------------------------------------------------------------------------- the checks
def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    for text in ("metrics.json", "folds", "folds/seed0", "/predictions.csv: ", "x/config.yaml"):
        assert names_run_dir_path(text), text
    for text in ("the metrics.json of a run", "seeds", "fold", "table.md is written"):
        assert not names_run_dir_path(text), text
    assert not names_run_dir_path("folds", in_path=False)  # e.g. a progress bar's label
    module = tmp_path / "m.py"
    module.write_text('"""metrics.json"""\nd = {"folds": 3}\np = run / "folds"\n'
                      'q = Path(run, "config.yaml")\nr = f"{run}/metrics.json"\n')
    assert [(n, t) for n, t, ctx in _path_strings(module) if names_run_dir_path(t, ctx)] == [
        (3, "folds"), (4, "config.yaml"), (5, "/metrics.json")]
    code = ('import x\nif x:\n    a = "f:1".partition(":")\n'
            'b = s.startswith("flowset:")\nc = s.startswith(("loso:", "cde"))\n')
    calls = sorted((n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset))
    assert [_splits_on_colon(c) or _tests_a_scheme(c) for c in calls] == [True, True, False]


def test_function_local_and_type_checking_imports_are_edges(tmp_path: Path) -> None:
    pkg = tmp_path / "mefr" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "mefr" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from mefr.sub import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from mefr.sub.a import f\nfrom . import c\n")
    (pkg / "c.py").write_text("from mefr import __version__\n")
    mods = {"mefr", "mefr.sub", "mefr.sub.a", "mefr.sub.b", "mefr.sub.c"}
    assert _imports(pkg / "a.py", mods, tmp_path) == {"mefr.sub", "mefr.sub.b"}
    assert _imports(pkg / "b.py", mods, tmp_path) == {"mefr.sub", "mefr.sub.a", "mefr.sub.c"}
    assert _imports(pkg / "c.py", mods, tmp_path) == set()


def test_no_import_cycle() -> None:
    """(The review found train.engine <-> train.handcrafted, hidden by a function-local
    import, and predict.predictor <-> predict.explain, by a TYPE_CHECKING one.)"""
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_run_directory_paths_are_built_only_in_rundir() -> None:
    bad = run_dir_violations()
    assert not bad, "build run-directory paths through mefr.evaluate.rundir:\n" + "\n".join(
        line for v in bad.values() for line in v)


def test_scheme_path_sources_are_split_only_in_sources() -> None:
    bad = scheme_violations()
    assert not bad, "split SCHEME:PATH with mefr.preprocess.sources:\n" + "\n".join(
        line for v in bad.values() for line in v)


def test_no_source_file_is_over_the_limit() -> None:
    big = oversized()
    assert not big, f"files over {MAX_LINES} lines: " + ", ".join(
        f"{p} ({n})" for p, n in sorted(big.items()))


def test_the_reexport_checks_see_what_they_look_for() -> None:
    code = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
            "import os.path\nimport numpy as np\nfrom a import b, c, d  # noqa: F401\n"
            "from e import f as g\nif TYPE_CHECKING:\n    from h import Job\n"
            "__all__ = ['c', 'run']\ndef run(job: 'Job') -> None:\n    return b(np)\n"
            "def __getattr__(name):\n    return name\n")
    assert reexports(code, "m.py") == [
        "m.py:5: 'c' imported but not used (a re-export)",
        "m.py:5: 'd' imported but not used (a re-export)",
        "m.py:6: 'g' imported but not used (a re-export)",
        "m.py: 'c' in __all__ is imported, not defined here",
        "m.py:12: a module-level __getattr__ forwards names"]
    assert reexports("from a import b\nx = b\n__all__ = ['x']\n", "m.py") == []


def test_no_module_reexports_names_it_imports() -> None:
    """A name lives in one module and is imported from there; a module that imports a
    name only to hand it on (a former home kept for old imports) is refused."""
    bad = reexport_violations()
    assert not bad, "import names from the module that defines them:\n" + "\n".join(
        line for v in bad.values() for line in v)


def test_names_are_imported_from_the_module_that_defines_them() -> None:
    root = SRC.parent
    files = [p for d in ("src", "tests", "benchmarks", "scripts") for p in
             sorted((root / d).rglob("*.py"))]
    bad = foreign_imports(files)
    assert not bad, "import these names from their own modules:\n" + "\n".join(bad)
