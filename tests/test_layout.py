"""The package map of docs/architecture.md, checked against the source itself.

The import graph is built from the source with :mod:`ast` (every ``import``,
also inside functions; imports under ``if TYPE_CHECKING:`` are left out
because they never run). Three rules, and one about docstrings:

- no import cycle between modules;
- each part imports only the parts below it on the map (``ALLOWED``);
- no runtime module imports :mod:`actorpool.testing`: only the CLI's
  ``--sandbox`` module does, when the user asks for a sandbox;
- every module's docstring opens with its role, one line of its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "actorpool"

# The part each module belongs to: a subpackage, or a public top-level module.
# Each part may import itself and the parts named here, nothing else.
_BASE = {"errors", "_version"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "observe": _BASE,
    "config": _BASE | {"observe"},
    "engine": _BASE,
    "transport": _BASE | {"config"},
    "messages": _BASE | {"transport"},
    "pool": _BASE | {"config", "observe", "engine", "transport", "messages"},
    "logs": _BASE | {"config", "observe", "engine", "transport", "messages"},
    "events": _BASE | {"config", "observe", "engine", "transport", "messages", "logs"},
    "streams": _BASE
    | {"config", "observe", "engine", "transport", "messages", "pool", "logs", "events"},
    "runtime": _BASE
    | {"config", "observe", "engine", "transport", "messages", "pool", "logs", "events"}
    | {"streams"},
    "__init__": _BASE | {"config", "messages", "runtime"},
    "__main__": {"cli"},
    "cli": _BASE
    | {"config", "observe", "engine", "transport", "messages", "pool", "logs", "events"}
    | {"streams", "runtime", "__init__"},
    "testing": _BASE | {"config", "transport", "messages", "__init__", "runtime"},
}
# The one module outside actorpool.testing allowed to import it (lazily, on request).
TESTING_GATE = "actorpool.cli.sandbox"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _part(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: set[str]) -> Iterator[str]:
    """The actorpool modules a module imports at run time."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "actorpool":
                    yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "actorpool":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield sub if sub in modules else node.module
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """Module -> the actorpool modules it imports, from the source."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        name = _module_name(path)
        graph[name] = {m for m in _imports(tree, modules) if m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_the_modules_and_their_imports() -> None:
    graph = import_graph()
    assert "actorpool.pool.router" in graph
    assert "actorpool.messages" in graph["actorpool.pool.router"]
    # TYPE_CHECKING-only imports do not count (logread names ContainerLogs only for types).
    assert "actorpool.messages" not in graph["actorpool.transport.logread"]


def test_find_cycle_reports_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_every_module_is_on_the_map() -> None:
    unknown = {m for m in import_graph() if _part(m) not in ALLOWED}
    assert not unknown, f"add these to the package map in docs/architecture.md: {unknown}"


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_imports_run_one_way(part: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if _part(module) == part
        for target in targets
        if _part(target) not in ALLOWED[part] | {part}
        and not (module == TESTING_GATE and _part(target) == "testing")
    )
    assert not wrong, "\n".join(wrong)


def test_no_runtime_module_imports_testing() -> None:
    wrong = sorted(
        module
        for module, targets in import_graph().items()
        if _part(module) != "testing"
        and module != TESTING_GATE
        and any(_part(t) == "testing" for t in targets)
    )
    assert not wrong, f"runtime modules importing actorpool.testing: {wrong}"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_every_module_says_its_role_in_its_first_line(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{path}: no module docstring"
    lines = doc.splitlines()
    assert lines[0].endswith("."), f"{path}: the first line is not a whole sentence"
    assert len(lines) == 1 or not lines[1].strip(), f"{path}: the role runs past one line"
