"""What of a harness file crosses into a student's process with an `endpoint.Local`: the factory and the
module-level definitions it reaches, by name, transitively (with the file's imports), never the whole file.

Integrity round 7b: the whole harness file crossed with the first Local. Exercise-1's first-loss swaps the
harness's gradient in for train()'s loop; with it came `_spec_loss`, and a loss() that answered with it
once it had arrived (`import _dldiy_local_0`) scored first-loss and stability in full (9.5 of 9.5, an
honest loss that sums instead of averaging: 6.5), though the harness never handed its loss to that check.
What a Local carries is now what it needs; the check that measures a function the harness did hand over
(a stand-in, `RemoteSubmission.replaced` with a Local) never runs in a process that holds it
(graders/sandbox/child.py retires that process after the task).
"""

from __future__ import annotations

import __future__
import ast
import types
from pathlib import Path

# path -> (its size and mtime, one entry per top-level statement: the names it binds, the names it reads,
# whether it is an import, its code compiled alone). Parsed once per process that asks (`warm`: the fork
# server, for every harness, so that the harness processes it forks inherit it): a file's parse costs
# 9-25 ms, and each factory took one per harness process (a check's 0.25 s more in exercise 4).
_FILES: dict[str, tuple[tuple[int, int], list[tuple[set[str], set[str], bool, types.CodeType]]]] = {}


def _defined(node: ast.stmt) -> set[str]:
    """The module-level names a top-level statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, ast.alias):
            names.add((sub.asname or sub.name).split(".")[0])
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            names.add(sub.name)
    return names


def _read(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}


def _statements(path: Path) -> list[tuple[set[str], set[str], bool, types.CodeType]]:
    stat, key = path.stat(), str(path.resolve())
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _FILES.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    tree = ast.parse(path.read_bytes(), str(path))
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                 for n in tree.body)
    flags = __future__.annotations.compiler_flag if future else 0
    entries = [(_defined(node), _read(node), isinstance(node, (ast.Import, ast.ImportFrom)),
                compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec", flags=flags, dont_inherit=True))
               for node in tree.body]
    _FILES[key] = (stamp, entries)
    return entries


def warm(path: Path) -> None:
    """Parse and compile `path` now (the fork server: every process it forks inherits the result)."""
    try:
        _statements(path)
    except (OSError, SyntaxError, ValueError):
        pass


def selected(entries: list[tuple[set[str], set[str], bool, types.CodeType]], factory: str) -> list[int]:
    """The indices of the top-level statements `factory` needs: every import (`from __future__` first, as
    written), and each statement that binds a name read by one already taken, from the factory's own
    definition on. In the file's order (each statement's code keeps the file's line numbers: tracebacks
    name the harness's lines)."""
    taken = [False] * len(entries)
    todo = [i for i, (binds, _reads, imp, _code) in enumerate(entries) if factory in binds and not imp]
    if not todo:
        raise LookupError(f"{factory} is not defined at the top level of its harness file")
    while todo:
        i = todo.pop()
        if taken[i]:
            continue
        taken[i] = True
        wanted = entries[i][1]
        todo += [j for j, (binds, _reads, imp, _code) in enumerate(entries) if not taken[j] and not imp and binds & wanted]
    return [i for i, (_b, _r, imp, _c) in enumerate(entries) if taken[i] or imp]


def factory_code(path: Path, factory: str) -> tuple[types.CodeType, ...]:
    """The compiled statements a Local of `factory` (a module-level function of harness file `path`)
    carries, run in order into one module by the student's side (endpoint.Local.build)."""
    entries = _statements(path)
    return tuple(entries[i][3] for i in selected(entries, factory))
