"""What `dldiy record` and `dldiy validate` warn an instructor about before a class is graded: a harness
whose inputs the notebook's own cells overwrite.

A probe runs the notebook's named cells with inputs bound (`run_cells(sub, ["train"], inputs={"n_epochs":
100})`, graders/layers.py). The inputs are bound before the cells run, so a cell that assigns the same name
(`n_epochs = 200` above `for epoch in range(n_epochs):`) wins: the reference trains 200 epochs while the
feedback says 100, and a correct student whose cell says `n_epochs = 3` fails for it (an instructor's
trial). Found statically: the harness's run_cells calls with literal cell names and input keys, against the
reference notebook's cells that the spec's selectors pick.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from ..sandbox.cellselect import selects
from .exercise import Exercise


def input_warnings(exercise: Exercise, reference: Path) -> list[str]:
    """One line per input a named cell of the reference assigns itself (empty when none, or when the
    harness or the reference cannot be read: the checks themselves say what is wrong then)."""
    if not exercise.cells:
        return []
    try:
        harness = ast.parse(exercise.harness_path.read_text())
    except (OSError, SyntaxError, ValueError):
        return []
    cells = _reference_cells(exercise, reference)
    if not cells:
        return []
    out: list[str] = []
    for line, names, inputs in _run_cells_calls(harness):
        for name in names:
            found = _selected(exercise.cells.get(name), cells)
            if found is None:
                continue
            number, source = found
            for key, (at, code) in _assigned(source).items():
                if key in inputs:
                    out.append(
                        f"{exercise.id}: harness.py line {line} runs cell {name!r} with the input {key!r}, but that "
                        f"cell assigns {key} itself (the reference's code cell {number}, line {at}: `{code}`): the "
                        f"cell's value wins over the input, in the reference as in every submission (a student's "
                        f"`{key} = ...` there is run as written). Move that assignment to a cell of its own before it "
                        f"(a constant runs at load, and the input then replaces it), or leave {key} out of the inputs")
    return out


def _run_cells_calls(tree: ast.AST) -> list[tuple[int, list[str], set[str]]]:
    """(line, cell names, input keys) of every `run_cells(sub, [...], inputs={...})` with literal names."""
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if func != "run_cells":
            continue
        given = {k.arg: k.value for k in node.keywords if k.arg}
        cells = node.args[1] if len(node.args) > 1 else given.get("cells")
        inputs = node.args[2] if len(node.args) > 2 else given.get("inputs")
        if not isinstance(cells, (ast.List, ast.Tuple)) or not isinstance(inputs, ast.Dict):
            continue
        names = [e.value for e in cells.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        keys = {k.value for k in inputs.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if names and keys:
            calls.append((node.lineno, names, keys))
    return calls


def _reference_cells(exercise: Exercise, reference: Path) -> list[tuple[str, list[str]]]:
    """The reference notebook's code cells as (source, tags): reference/<id>/source.ipynb, else its entry."""
    for path in (reference / "source.ipynb", reference / exercise.entry):
        if path.suffix == ".ipynb" and path.is_file():
            try:
                nb = json.loads(path.read_text())
            except (OSError, ValueError):
                return []
            out = []
            for cell in nb.get("cells", []):
                if isinstance(cell, dict) and cell.get("cell_type") == "code":
                    source = cell.get("source", "")
                    tags = (cell.get("metadata") or {}).get("tags") or []
                    out.append(("".join(source) if isinstance(source, list) else str(source), [str(t) for t in tags]))
            return out
    return []


def _selected(selector: dict | None, cells: list[tuple[str, list[str]]]) -> tuple[int, str] | None:
    """(1-based number among code cells, source) of the first cell `selector` picks, as the loader does."""
    if not selector:
        return None
    for number, (source, tags) in enumerate(cells, 1):
        if selects(selector, source, tags):
            return number, source
    return None


def _assigned(source: str) -> dict[str, tuple[int, str]]:
    """Names the cell binds outside its functions and classes: name -> (line, the line's code)."""
    lines = source.split("\n")
    try:
        tree = ast.parse("\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in lines))
    except SyntaxError:
        return {}
    out: dict[str, tuple[int, str]] = {}

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return
        targets: list[ast.expr] = []
        line = 0
        if isinstance(node, ast.Assign):
            targets, line = node.targets, node.lineno
        elif isinstance(node, ast.AnnAssign) and node.value is not None:  # (`n += 1` uses the input)
            targets, line = [node.target], node.lineno
        for target in targets:
            for name in (n for n in ast.walk(target) if isinstance(n, ast.Name)):
                out.setdefault(name.id, (line, lines[line - 1].strip()))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out
