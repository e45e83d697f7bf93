"""The architecture, checked from the source: agent/ and controller/ meet only in fleetbench/ (the shared package),
and neither has an import cycle at module level.

Imports are read with ast from the files (nothing is imported), so a lazy import inside a function counts for
the layering too: the controller must not need the agent's code at all, nor the agent the controller's.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[2]
# import package -> folder, as pyproject's package-dir maps them
FOLDERS = {"fleetbench.agent": ROOT / "agent", "fleetbench.controller": ROOT / "controller"}
FORBIDDEN = {"fleetbench.controller": "fleetbench.agent", "fleetbench.agent": "fleetbench.controller"}

# Import cycles closed by an import inside a function (a lazy import), left to the job-spec work of issue 14
# (these are its files): each entry is the files of one cycle. A module-level cycle is never allowed (it breaks
# at import time, depending on which module comes first). Remove an entry once fixed (a stale entry does not
# fail, so the fix and this list need not land together); any other cycle fails.
LAZY_CYCLES_ALLOWED: list[set[str]] = [
    # orchestrator.py runs preflight first; preflight.py builds its one-request specs with orchestrator.py's
    # perf_spec/eval_spec (imported inside the function). Fix: the spec builders in their own module.
    {"controller/orchestrator.py", "controller/preflight.py"},
]


def module_name(package: str, folder: Path, path: Path) -> str:
    rel = path.relative_to(folder).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the agent and the controller: dotted name -> file."""
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            found[module_name(package, folder, path)] = path
    return found


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(node: ast.AST, functions: bool, type_checking: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under `node`; those in function bodies only with `functions`, those under
    `if TYPE_CHECKING:` only with `type_checking` (a class body runs at import time: always)."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and not functions:
        return
    if isinstance(node, ast.If) and is_type_checking(node.test):
        children = [*node.body, *node.orelse] if type_checking else node.orelse
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from import_nodes(child, functions, type_checking)


def imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    """The modules an import statement in module `name` loads (a `from pkg import sub` loads pkg.sub)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    loaded: set[str] = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in known:
            loaded.add(sub)
        if sub not in known or node.module:  # `from . import sub` loads sub only; `from .m import x` loads m
            loaded.add(base)
    return loaded


def import_graph(functions: bool, type_checking: bool = False) -> dict[str, set[str]]:
    """module -> the modules it imports (see import_nodes)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set()
        for node in import_nodes(tree, functions, type_checking):
            graph[name] |= imported(name, path, node, known)
    return graph


def rel(name: str) -> str:
    """fleetbench.controller.plan -> controller/plan.py (the file, as the allow-lists name it)."""
    return str(modules()[name].relative_to(ROOT))


def test_controller_and_agent_import_each_other_only_through_fleetbench() -> None:
    offenders: dict[str, set[str]] = {}
    for name, targets in import_graph(functions=True, type_checking=True).items():
        for own, forbidden in FORBIDDEN.items():
            if name == own or name.startswith(own + "."):
                bad = {t for t in targets if t == forbidden or t.startswith(forbidden + ".")}
                if bad:
                    offenders[rel(name)] = bad
    assert not offenders, ("the controller and the agent share code only through fleetbench/ (move the shared "
                           f"type there): {offenders}")


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_level_import_cycle_in_the_agent_or_the_controller() -> None:
    found = [sorted(rel(m) for m in c) for c in cycles(import_graph(functions=False))]
    assert not found, f"module-level import cycles: {found}"


def test_no_import_cycle_through_lazy_imports_either() -> None:
    """An import inside a function that closes a cycle hides a layering problem (the old cli.py <-> cli_*.py)."""
    found = [{rel(m) for m in c} for c in cycles(import_graph(functions=True))]
    unexpected = [sorted(c) for c in found if not any(c <= allowed for allowed in LAZY_CYCLES_ALLOWED)]
    assert not unexpected, f"import cycles (lazy imports included): {unexpected}"


def test_the_graph_sees_relative_imports() -> None:
    """Guards the parser: the CLI package's modules import the library through `..`."""
    graph = import_graph(functions=False)
    assert "fleetbench.controller.runner" in graph["fleetbench.controller.cli.run"]
    assert "fleetbench.controller.cli.run" in graph["fleetbench.controller.cli"]
    assert "fleetbench.controller.fleetview" in graph["fleetbench.controller.cli.inventory"]
    assert "fleetbench.agent.inventory.cpu" in graph["fleetbench.agent.inventory"]
