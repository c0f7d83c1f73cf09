"""The static half of `forbid`: find forbidden functions in the source of the API names that forbid them.

Runs in the trusted harness process, on the working copy, before the student's process starts (the
run-time half is the guard in graders/sandbox/student.py). A use counts when, inside `def NAME` (or a method
of `class NAME`), an attribute chain or an imported name resolves to a forbidden dotted name by its
last two parts: `torch.autograd.grad`, `autograd.grad` and `grad` imported from `torch.autograd` all
match `torch.autograd.grad`; `H.inverse()` matches `torch.Tensor.inverse`.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

MAX_SOURCE_BYTES = 2 << 20


def _sources(entry: Path) -> list[tuple[str, str]]:
    """(name for messages, source) of the entry and its sibling .py files (a multi-file project)."""
    out = []
    if entry.suffix == ".ipynb":
        try:
            if entry.stat().st_size > MAX_SOURCE_BYTES * 8:
                return []
            nb = json.loads(entry.read_bytes())
            number = 0
            for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
                if isinstance(cell, dict) and cell.get("cell_type") == "code":
                    number += 1
                    src = cell.get("source", "")
                    src = "".join(src) if isinstance(src, list) else str(src)
                    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()]
                    out.append((f"{entry.name}[cell {number}]", "\n".join(lines)))
        except (OSError, ValueError, RecursionError):
            return []
        return out
    for path in sorted(entry.parent.rglob("*.py")):
        try:
            if path.is_symlink() or path.stat().st_size > MAX_SOURCE_BYTES:
                continue
            out.append((str(path.relative_to(entry.parent)), path.read_text("utf-8", "replace")))
        except OSError:
            continue
    return out


def _chain(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    if parts:  # e.g. H.inverse() on a call's result: the method name is what counts
        return ["?", *parts[::-1]]
    return None


def _matches(chain: list[str], aliases: dict[str, str], forbidden: str) -> bool:
    if chain[0] in aliases:
        chain = aliases[chain[0]].split(".") + chain[1:]
    want = forbidden.split(".")
    tail = want[-2:] if len(want) >= 2 else want
    if want[-2:-1] == ["Tensor"]:  # a method: any receiver
        return len(chain) >= 2 and chain[-1] == want[-1]
    return chain[-len(tail):] == tail


def scan(entry: Path, forbid: dict[str, list[str]]) -> dict[str, str]:
    """{API name: one line naming the forbidden use} for each API name whose body uses one."""
    if not forbid:
        return {}
    findings: dict[str, str] = {}
    for label, source in _sources(entry):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        # one walk for the imports and the definitions of API names that forbid something (a source is
        # scanned for every submission: issue 17); the bodies of those alone are walked again below
        aliases: dict[str, str] = {}
        defined = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and forbid.get(node.name):
                defined.append(node)
        for node in defined:
            names = forbid[node.name]
            if node.name in findings:
                continue
            for inner in ast.walk(node):
                if not isinstance(inner, (ast.Attribute, ast.Name)):
                    continue
                chain = _chain(inner)
                if not chain:
                    continue
                hit = next((f for f in names if _matches(chain, aliases, f)), None)
                if hit:
                    findings[node.name] = (f"{node.name}() uses {hit} ({label} line {inner.lineno}); this exercise "
                                           f"asks for {node.name} without it")
                    break
    return findings
