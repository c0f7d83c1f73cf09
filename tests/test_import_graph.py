"""The package's import graph has no circle: dldiy.* modules, read from the AST of cli/, graders/ and dldiy/.

Counted: the imports a module runs when it is imported (its top level, including `if` and `try` blocks
and class bodies). Not counted: imports inside functions (run on call, the usual way to break a circle)
and `if TYPE_CHECKING:` blocks (never run)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# Where each dldiy package lives in the tree (pyproject.toml's [tool.setuptools.package-dir]).
PACKAGES = {"dldiy": REPO / "dldiy", "dldiy.cli": REPO / "cli", "dldiy.graders": REPO / "graders"}


def modules() -> dict[str, Path]:
    """{module name: file} for every .py file of the packages and their subpackages (graders/kinds/...;
    a package's own name for its __init__)."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runs_at_import(tree: ast.Module):
    """The import statements executed when the module is imported."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The dldiy modules that importing `name` imports directly."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = set()
    for node in _runs_at_import(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import sub` imports the submodule pkg.sub; `from pkg.mod import name` imports pkg.mod
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        out |= {t for t in targets if t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (circle := visit(node)):
            return circle
    return None


def test_the_reader_sees_the_packages_and_their_imports():
    edges = graph()
    assert {"dldiy", "dldiy.cli", "dldiy.graders.assess", "dldiy.graders.sandbox.runner", "dldiy.cli.check"} <= set(edges)
    assert "dldiy.graders.sandbox.runner" in edges["dldiy.graders.assess"]  # from .sandbox.runner import Task, run_child
    assert "dldiy.graders.kinds" in edges["dldiy.graders.course.exercise"]  # from ..kinds import check_kind
    assert "dldiy.graders.assess" in edges["dldiy.cli.check"]  # from dldiy.graders.assess import assess
    assert "dldiy.graders.sandbox.forkserver" not in edges["dldiy.graders.assess"]  # only under TYPE_CHECKING


def test_find_circle_finds_one_and_only_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_has_no_circle():
    circle = find_circle(graph())
    assert circle is None, "an import circle: " + " -> ".join(circle or [])


def test_the_runner_and_the_fork_server_know_only_the_spawner():
    """Issue 12: runner.py and forkserver.py imported each other; both now import only sandbox/spawn.py
    (the `Spawner` interface), anywhere in their code, TYPE_CHECKING blocks and functions included."""
    found = modules()
    for one, other in (("runner", "forkserver"), ("forkserver", "runner")):
        name = f"dldiy.graders.sandbox.{one}"
        tree = ast.parse(found[name].read_text())
        named = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
        assert not [s for s in named if other in s], f"{name} imports {other}: {named}"
        assert any("spawn" in s for s in named), f"{name} does not import the spawner module"
