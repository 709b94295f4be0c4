"""The import graph of the project's own packages (``critics``, ``generators``, ``wdist``), read with ``ast``.

Every ``import`` and ``from ... import`` statement of every module is an edge, whether it runs at
import time (module level, class bodies) or when a function is called (function level); imports
under ``if TYPE_CHECKING:`` never run and are not edges. Only edges to the three packages count.

How an import names its target module:

* ``import a.b.c`` and ``from a.b.c import name``: the module ``a.b.c`` (for a name that is not
  itself a module, see the next two rules);
* ``from a.b import c`` where ``a.b.c`` is a module or package: ``a.b.c``;
* ``from a.b import name`` where ``a.b`` is a *package* whose ``__init__`` re-exports ``name``
  from one of its submodules: that submodule (followed through nested re-exports). A package
  ``__init__`` is a list of re-exports, not a dependency of its own: ``critics.architectures.dcgan``
  doing ``from critics.layers import BCOPConv2d`` depends on ``critics.layers.bcop``, and without
  this rule ``critics -> critics.layers -> ... -> critics`` would look like a cycle that never
  happens at run time;
* Python's implicit import of the parent packages (``import a.b.c`` first runs ``a/__init__`` and
  ``a/b/__init__``) adds no edge, for the same reason.

Rules checked: no cycle among the ``critics`` modules, nor among the ``generators`` modules;
``critics`` and ``generators`` never import ``wdist`` nor each other (``wdist`` may import both);
``wdist.sources`` never imports ``wdist.problems`` (problems are built from sources);
no cycle among the ``wdist`` modules; no function-level import of the project's own modules unless a
comment naming the ``cycle`` or the ``cost`` it avoids sits on that line or just above its group of
imports; and every ``from X import
name`` of a project module names something ``X`` defines (so moving a name cannot leave a stale
import behind, in ``wdist`` either).
"""

from __future__ import annotations

import ast
import functools
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("critics", "generators", "wdist")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    function_level: bool
    name: str | None  # the imported name of a ``from X import name``


@functools.lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def is_package(name: str) -> bool:
    path = modules().get(name)
    return path is not None and path.name == "__init__.py"


@functools.lru_cache(maxsize=None)
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(encoding="utf-8"), filename=str(modules()[name]))


def _absolute(source: str, node: ast.ImportFrom) -> str:
    """The absolute module of a (possibly relative) ``from`` import in module ``source``."""
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package(source) else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _project(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def _longest_module(dotted: str) -> str:
    """``dotted`` itself if it is a module, else its longest prefix that is."""
    parts = dotted.split(".")
    while parts and ".".join(parts) not in modules():
        parts.pop()
    return ".".join(parts)


@functools.lru_cache(maxsize=None)
def reexports(package: str) -> dict[str, str]:
    """Name -> defining submodule, for the names a package ``__init__`` imports from its submodules."""
    out: dict[str, str] = {}
    for node in tree(package).body:
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(package, node)
            if origin.startswith(package + "."):
                for alias in node.names:
                    out[alias.asname or alias.name] = resolve(origin, alias.name)
    return out


def resolve(module: str, name: str | None) -> str:
    """The project module that ``from module import name`` (``import module`` if ``name`` is None)
    depends on (see the module docstring)."""
    if name is not None:
        if f"{module}.{name}" in modules():
            return f"{module}.{name}"
        if is_package(module) and name in reexports(module):
            return reexports(module)[name]
    return _longest_module(module)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


@functools.lru_cache(maxsize=None)
def edges(source: str) -> tuple[Edge, ...]:
    """Every import of a project module in ``source``, resolved."""
    found: list[Edge] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                for other in child.orelse:
                    visit(other, in_function)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if _project(alias.name):
                        found.append(Edge(source, resolve(alias.name, None), child.lineno, in_function, None))
            elif isinstance(child, ast.ImportFrom):
                origin = _absolute(source, child)
                if _project(origin):
                    for alias in child.names:
                        target = resolve(origin, alias.name)
                        found.append(Edge(source, target, child.lineno, in_function, alias.name))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree(source), False)
    return tuple(found)


def _in(package: str, module: str) -> bool:
    return module == package or module.startswith(package + ".")


def _cycles(package: str) -> list[list[str]]:
    """Elementary cycles found by depth-first search among the modules of ``package`` (one per
    back edge, enough to report)."""
    graph = {
        m: sorted({e.target for e in edges(m) if _in(package, e.target) and e.target != m})
        for m in modules()
        if _in(package, m)
    }
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph.get(m, []):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                dfs(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)
    return cycles


def test_the_resolution_rule() -> None:
    assert resolve("critics.layers", "BCOPConv2d") == "critics.layers.bcop"
    assert resolve("critics", "layers") == "critics.layers"
    assert resolve("critics", "certify") == "critics.certificates"
    assert resolve("critics.layers.conv_base", "LipschitzConv2d") == "critics.layers.conv_base"
    assert resolve("critics.layers.conv_base", None) == "critics.layers.conv_base"
    assert {m.split(".")[0] for m in modules()} == set(PACKAGES) and len(modules()) > 40


@pytest.mark.parametrize("package", ["critics", "generators", "wdist"])
def test_no_import_cycle(package: str) -> None:
    cycles = _cycles(package)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "package,forbidden",
    [
        ("critics", ("wdist", "generators")),
        ("generators", ("wdist", "critics")),
        ("wdist.sources", ("wdist.problems",)),  # problems are built from sources, never the other way
    ],
)
def test_imports_run_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [
        f"{e.source}:{e.line} imports {e.target}"
        for m in modules()
        if _in(package, m)
        for e in edges(m)
        if any(_in(f, e.target) for f in forbidden)
    ]
    assert not bad, f"{package} must not import {' or '.join(forbidden)}: " + "; ".join(bad)


def _comments(path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def _explained(path: Path, line: int, comments: dict[int, str]) -> bool:
    """Whether a comment naming the ``cycle`` or the ``cost`` sits on ``line``, or above it with only
    comments and other import lines in between (one comment may explain a group of imports)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    k = line
    while k >= 1:
        said = comments.get(k, "").lower()
        if "cycle" in said or "cost" in said:
            return True
        text = lines[k - 1].strip()
        if k != line and not (text.startswith(("#", "from ", "import ")) or not text):
            return False
        k -= 1
    return False


@pytest.mark.parametrize("package", PACKAGES)
def test_no_unexplained_function_level_project_imports(package: str) -> None:
    bad = []
    for m in modules():
        if not _in(package, m):
            continue
        path = modules()[m]
        comments = _comments(path)
        for e in edges(m):
            if e.function_level and not _explained(path, e.line, comments):
                bad.append(f"{m}:{e.line} imports {e.target} inside a function")
    assert not bad, "function-level imports without a comment naming the cycle or cost they avoid: " + "; ".join(bad)


def _defined_names(module: str) -> set[str]:
    """Names bound at module level (definitions, assignments, imports) and submodules."""
    depth = module.count(".") + 1
    names = {m.rsplit(".", 1)[1] for m in modules() if m.startswith(module + ".") and m.count(".") == depth}

    def bind(target: ast.AST) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                names.add(node.id)

    def collect(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    bind(t)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                bind(node.target)
            elif isinstance(node, (ast.If, ast.Try)):
                collect(node.body)
                collect(node.orelse)
                for h in getattr(node, "handlers", []):
                    collect(h.body)
                collect(getattr(node, "finalbody", []))

    collect(tree(module).body)
    return names


def test_every_imported_name_exists() -> None:
    bad = []
    for m in modules():
        for e in edges(m):
            if e.name is None or e.name == "*":
                continue
            node = next(n for n in ast.walk(tree(m)) if isinstance(n, ast.ImportFrom) and n.lineno == e.line)
            origin = _absolute(m, node)
            if origin not in modules():
                bad.append(f"{m}:{e.line}: no module {origin}")
            elif e.name not in _defined_names(origin):
                bad.append(f"{m}:{e.line}: {origin} has no {e.name}")
    assert not bad, "; ".join(bad)
