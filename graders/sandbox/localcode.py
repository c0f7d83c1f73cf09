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

import ast
import types
from pathlib import Path

_CACHE: dict[tuple[str, str], tuple[tuple[int, int], types.CodeType]] = {}


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


def selected(tree: ast.Module, factory: str) -> list[ast.stmt]:
    """The top-level statements of `tree` that `factory` needs: every import (`from __future__` first, as
    written), and each statement that binds a name read by one already taken, from the factory's own
    definition on. In the file's order, with the file's line numbers (tracebacks name the harness's lines)."""
    body = tree.body
    binds = [_defined(node) for node in body]
    imports = [isinstance(node, (ast.Import, ast.ImportFrom)) for node in body]
    taken = [False] * len(body)
    todo = [i for i, names in enumerate(binds) if factory in names and not imports[i]]
    if not todo:
        raise LookupError(f"{factory} is not defined at the top level of its harness file")
    while todo:
        i = todo.pop()
        if taken[i]:
            continue
        taken[i] = True
        wanted = _read(body[i])
        todo += [j for j, names in enumerate(binds) if not taken[j] and not imports[j] and names & wanted]
    return [node for node, take, imp in zip(body, taken, imports) if take or imp]


def factory_code(path: Path, factory: str) -> types.CodeType:
    """The compiled code a Local of `factory` (a module-level function of harness file `path`) carries."""
    stat = path.stat()
    key, stamp = (str(path), factory), (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    tree = ast.parse(path.read_bytes(), str(path))
    module = ast.Module(body=selected(tree, factory), type_ignores=[])
    code = compile(module, str(path), "exec", dont_inherit=True)
    _CACHE[key] = (stamp, code)
    return code
