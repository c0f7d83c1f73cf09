"""Notebooks on the instructor's side: solution regions, the student's copy, nbgrader's source copy.

A source notebook (`reference/<id>/source.ipynb`: it holds the solution, so it lives with the
reference, which is never packaged) marks solutions the way nbgrader does:

    def loss(X, y, w):
        \"\"\"...\"\"\"
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

Stripping replaces each region by nbgrader's stub at the marker's indentation, so the student's
notebook is exactly what `nbgrader generate_assignment` would hand out. Notebooks are read and
written with nbformat here (instructor side only; the child reads them with json, see submission.py).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's default Python stub


class SolutionRegionError(ValueError):
    """A BEGIN without an END, or nested regions: the source notebook is malformed."""


def strip_solutions(source: str, exercise_id: str = "") -> tuple[str, bool]:
    """`source` with each solution region replaced by the stub; and whether there was a region.

    With `exercise_id`, the stub names the task, as the templates do: inside `def loss(X, y, w):` it
    raises NotImplementedError("exercise-1: implement loss(X, y, w)") (a method: "Class.method")."""
    out: list[str] = []
    inside = found = False
    for line in source.split("\n"):
        if BEGIN in line:
            if inside:
                raise SolutionRegionError(f"nested {BEGIN!r} in:\n{source}")
            inside = found = True
            indent = re.match(r"\s*", line).group(0)
            task = _enclosing_task(out) if exercise_id else None
            stub = STUB if task is None else (STUB[0], todo(exercise_id, task))
            out += [indent + s for s in stub]
        elif END in line:
            if not inside:
                raise SolutionRegionError(f"{END!r} without {BEGIN!r} in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionRegionError(f"{BEGIN!r} without {END!r} in:\n{source}")
    return "\n".join(out), found


def todo(exercise_id: str, task: str) -> str:
    """The stub's line that names the task: `raise NotImplementedError("exercise-1: implement loss(X, y, w)")`."""
    return f"raise NotImplementedError({json.dumps(exercise_id + ': implement ' + task)})"


_DEF = re.compile(r"^(\s*)def (\w+)\((.*)\)\s*(->.*)?:\s*$")
_CLASS = re.compile(r"^(\s*)class (\w+)")


def _enclosing_task(lines: list[str]) -> str | None:
    """'name(args)' of the function the next line belongs to, or 'Class.method'; None if unknown."""
    for i in range(len(lines) - 1, -1, -1):
        m = _DEF.match(lines[i])
        if m:
            indent, name, args = m.group(1), m.group(2), m.group(3)
            for j in range(i - 1, -1, -1):
                c = _CLASS.match(lines[j])
                if c and len(c.group(1)) < len(indent):
                    return f"{c.group(2)}.{name}"
                if lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) < len(indent) and not c:
                    break
            return f"{name}({args})" if not indent else name
    return None


def solution_code(source: str) -> str:
    """The source with the markers removed and the solution kept (what the reference runs)."""
    return "\n".join(line for line in source.split("\n") if BEGIN not in line and END not in line)


def _without_id_warnings():
    """nbformat's warning for each cell without an id (a hand-written notebook, course8 trial): the notebook is
    read and written as it is, with no ids made up (a release or a bug's diff stays the same run to run)."""
    import warnings

    import nbformat

    caught = warnings.catch_warnings()
    caught.__enter__()
    warnings.filterwarnings("ignore", category=getattr(nbformat.validator, "MissingIDFieldWarning", UserWarning))
    return caught


def read(path: Path):
    import nbformat

    caught = _without_id_warnings()
    try:
        return nbformat.read(str(path), as_version=4)
    finally:
        caught.__exit__(None, None, None)


def write(nb, path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    caught = _without_id_warnings()
    try:
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
    finally:
        caught.__exit__(None, None, None)


def without_outputs(nb):
    """A copy without outputs and execution counts (a release carries no results of ours)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def student_notebook(source_nb, exercise_id: str = ""):
    """The student's copy: solution regions stubbed (naming the task when `exercise_id` is given),
    no outputs, no nbgrader metadata."""
    nb = without_outputs(source_nb)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type == "code":
            cell.source, _ = strip_solutions(cell.source, exercise_id)
    return nb


def template_notebook(exercise):
    """A notebook for an exercise that has no source notebook: its starting entry file, one cell per
    top-level statement group (imports, each function or class), and a cell that checks it."""
    import nbformat.v4 as v4

    entry = exercise.template_dir / exercise.entry
    code = entry.read_text() if entry.is_file() else f"# write {exercise.entry} here\n"
    cells = [v4.new_markdown_cell(f"# {exercise.id}: {exercise.title}\n\n{exercise.summary}")]
    cells += [v4.new_code_cell(chunk) for chunk in _chunks(code)]
    cells.append(v4.new_code_cell(check_call(exercise.id)))
    return v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})


def _chunks(code: str) -> list[str]:
    """`code` cut before each top-level def/class (with its decorators and comments): one cell each."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [code.rstrip("\n")]
    lines = code.split("\n")
    starts = sorted({min([n.lineno] + [d.lineno for d in getattr(n, "decorator_list", [])]) - 1
                     for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))})
    cuts = [0] + [s for s in starts if s > 0] + [len(lines)]
    return [c for c in ("\n".join(lines[a:b]).strip("\n") for a, b in zip(cuts, cuts[1:])) if c]


def check_call(exercise_id: str) -> str:
    return f'from dldiy import check\ncheck("{exercise_id}")'


def is_check_cell(cell) -> bool:
    """The source notebook's own `check(...)` cells (one after each part), replaced by nbgrader's
    grade cells: a cell that imports dldiy's check or calls it."""
    return cell.cell_type == "code" and ("from dldiy import check" in cell.source
                                         or re.search(r"^\s*(\w+\s*=\s*)?check\(", cell.source, re.M) is not None)


# nbgrader's stub, set by the nbgrader_config.py that `dldiy release --nbgrader` writes. nbgrader has one
# stub for every region, so it cannot name the task; the line that does follows each region instead
# (nbgrader_regions), and the stub is only the comment. What a student gets from `nbgrader
# generate_assignment` is then what `dldiy release` hands out: the comment, and the raise naming the task.
NBGRADER_CODE_STUB = STUB[0]

AUTOGRADE_NOTE = ("# This part's checks. While nbgrader autogrades the notebook, this cell runs none: the\n"
                  "# autograder cell under \"Check everything\" runs every check, once.\n")


def nbgrader_notebook(source_nb, exercise):
    """nbgrader's source copy: solution cells marked as such, the parts' check cells kept, and one
    autograder cell per check.

    Each solution region runs to the end of its function and is followed by a raise that names the
    task (nbgrader_regions), which nbgrader's stub (NBGRADER_CODE_STUB) leaves in place. A part's
    check cell stays an ordinary cell: while `nbgrader autograde` runs, its `check(...)` returns at
    once (dldiy/incheck.py), so it costs nothing and scores nothing. The "Check everything" cell
    becomes one locked cell that runs every check once (a single child process) and keeps the result;
    then each check gets a grade cell (grade_id = the check's name, points = its points) that fails
    with the check's own message unless the check passed, so nbgrader's per-cell scores are dldiy's
    (and with the reason, where the locked cell could not run the checks)."""
    import nbformat.v4 as v4

    nb = without_outputs(source_nb)
    # A bug hunt's work is the project in the assignment folder, not this notebook's definitions.
    where = ', path="."' if exercise.start == "bugged" else ""
    run = v4.new_code_cell("# The autograder: every check, once. While nbgrader autogrades the notebook, this is the\n"
                           "# only check(...) that runs; the cells below give each check's points.\n"
                           f'from dldiy import check\n_dldiy_result = check("{exercise.id}"{where}, autograde=True)')
    run.metadata["nbgrader"] = _meta("dldiy-run-checks", locked=True)
    everything = max((i for i, c in enumerate(nb.cells) if is_check_cell(c) and _checks_everything(c.source)),
                     default=None)
    cells = []
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("nbgrader", None)
        if i == everything:
            cells.append(run)
            continue
        if is_check_cell(cell):
            cell.source = AUTOGRADE_NOTE + cell.source
        elif cell.cell_type == "code" and BEGIN in cell.source:
            cell.source = nbgrader_regions(cell.source, exercise.id)
            cell.metadata["nbgrader"] = _meta(f"{exercise.id}-solution-{i}", solution=True)
        cells.append(cell)
    if everything is None:
        cells += [v4.new_markdown_cell(f"## Check everything\n\nAll the checks at once, the same as "
                                       f"`dldiy check {exercise.id}` on the command line."), run]
    cells.append(v4.new_markdown_cell("## Autograder (do not edit)\n\nOne locked cell per check: it passes, and "
                                      "gives the check's points, when that check passed in the cell under "
                                      "*Check everything*."))
    for c in exercise.checks:
        # The result the locked cell kept, read through dldiy (dldiy/incheck.py's autograded): where that
        # cell raised, or never ran, each grade cell fails saying so, not with a NameError.
        cell = v4.new_code_cell(f'# {c.name}: {c.title or c.kind}\nfrom dldiy.incheck import autograded\n'
                                f'autograded("{exercise.id}").require("{c.name}")')
        cell.metadata["nbgrader"] = _meta(c.name, grade=True, locked=True, points=c.points)
        cells.append(cell)
    nb.cells = cells
    return nb


def _checks_everything(source: str) -> bool:
    """Whether the cell calls `check("exercise-N")` with no check named (its path aside): every check."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "check"
               and len(n.args) == 1 for n in ast.walk(tree))


def _regions(lines: list[str]) -> list[tuple[int, int]]:
    """(BEGIN, END) line indices of each solution region; SolutionRegionError if malformed."""
    regions, begin = [], None
    for i, line in enumerate(lines):
        if BEGIN in line:
            if begin is not None:
                raise SolutionRegionError(f"nested {BEGIN!r} in:\n" + "\n".join(lines))
            begin = i
        elif END in line:
            if begin is None:
                raise SolutionRegionError(f"{END!r} without {BEGIN!r} in:\n" + "\n".join(lines))
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise SolutionRegionError(f"{BEGIN!r} without {END!r} in:\n" + "\n".join(lines))
    return regions


def nbgrader_regions(source: str, exercise_id: str) -> str:
    """A solution cell as nbgrader's source wants it, so that the stub left by `nbgrader
    generate_assignment` names the task, as `strip_solutions(source, exercise_id)` does:

        def loss(X, y, w):                   def loss(X, y, w):
            ### BEGIN SOLUTION                   # YOUR CODE HERE
            ...                      ->          raise NotImplementedError("exercise-1: implement loss(X, y, w)")
            return value
            ### END SOLUTION
            raise NotImplementedError("exercise-1: implement loss(X, y, w)")

    The raise after the region is never reached by the solution: each region is made to run to the
    end of its function (a region that starts inside a loop or an `if` starts at that statement; one
    that ends before the function does ends with it, so the student's stub replaces the rest too),
    and ends with `return` unless the function's last statement returns or raises already. The
    solution runs as before. A region outside any function cannot be arranged so: SolutionRegionError."""
    import ast

    lines = source.split("\n")
    regions = _regions(lines)
    if not regions:
        return source
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise SolutionRegionError(f"a cell with a solution region does not parse ({error.msg}, line "
                                  f"{error.lineno}):\n{source}") from error
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    def first_line(node: ast.stmt) -> int:  # 0-based, decorators included
        return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1

    spans: list[list] = []  # [start, end, indent, returns, task]: the new region is lines start..end
    for b, e in regions:
        owners = [f for f in functions if f.lineno - 1 < b <= f.end_lineno and indent(lines[b]) > f.col_offset]
        if not owners:
            raise SolutionRegionError(f"{exercise_id}: a solution region outside any function: nbgrader's "
                                      f"stub could not name the task; put the region in a function:\n{source}")
        f = max(owners, key=lambda n: n.lineno)  # the innermost
        body = f.body[0].col_offset
        start = b
        if indent(lines[b]) > body:  # inside a compound statement of the body: the region starts with it
            code = next((i for i in range(b + 1, e) if lines[i].strip() and not lines[i].lstrip().startswith("#")), b)
            holder = next((st for st in f.body if first_line(st) <= code <= st.end_lineno - 1), None)
            start = first_line(holder) if holder is not None and first_line(holder) < b else b
        # Named as strip_solutions names it ("loss(X, y, w)", "Linear.forward"), from the def line.
        named = _enclosing_task(lines[:f.lineno])
        if not named or re.match(r"(?:\w+\.)?(\w+)", named).group(1) != f.name:  # a def over several lines
            owner = next((c.name for c in classes if f in c.body), None)
            named = f"{owner}.{f.name}" if owner else f.name
        spans.append([start, max(e, f.end_lineno - 1), body, isinstance(f.body[-1], (ast.Return, ast.Raise)), named])
    merged: list[list] = []
    for span in sorted(spans):
        if merged and span[0] <= merged[-1][1]:  # regions of one function, or of a function nested in it
            if span[1] > merged[-1][1]:
                merged[-1][1:] = span[1:]
            continue
        merged.append(span)
    markers = {i for b, e in regions for i in (b, e)}
    out: list[str] = []
    for i, line in enumerate(lines):
        span = next((m for m in merged if m[0] <= i <= m[1]), None)
        pad = " " * span[2] if span else ""
        if span and i == span[0]:
            out.append(pad + BEGIN)
        if i not in markers:
            out.append(line)
        if span and i == span[1]:
            if not span[3]:
                out.append(pad + "return  # the end of the solution: the line after the region is the student's")
            out += [pad + END, pad + todo(exercise_id, span[4])]
    return "\n".join(out)


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False,
          points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return meta


# -- a course's own notebook pair: the solution regions are what the solution adds ---------------------

def mark_solutions(empty_nb, solution_nb):
    """The solution notebook (a copy, outputs cleared) with `### BEGIN/END SOLUTION` around every run of
    lines of its code cells that the empty notebook does not have: code cells are aligned by content
    (difflib), then lines within each pair; a code cell the empty notebook lacks is a region whole.
    Markers are comments, so the marked notebook runs as the solution does and is the reference."""
    import difflib

    nb = without_outputs(solution_nb)
    empty = [c.source for c in empty_nb.cells if c.cell_type == "code"]
    solution = [c for c in nb.cells if c.cell_type == "code"]
    matcher = difflib.SequenceMatcher(None, empty, [c.source for c in solution], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        for k, cell in enumerate(solution[j1:j2]):
            before = empty[i1 + k] if i1 + k < i2 else ""
            cell.source = _mark_lines(before, cell.source)
    return nb


def mark_source(before: str, after: str) -> str:
    """`after` (a solved .py file) with `### BEGIN/END SOLUTION` around every run of lines that `before`
    (the same file, empty) does not have: a .py pair's reference, as mark_solutions marks a notebook's cells."""
    return _mark_lines(before, after)


def _mark_lines(before: str, after: str) -> str:
    old, new = before.split("\n"), after.split("\n")
    out = []
    matcher = difflib_matcher(old, new)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        block = new[j1:j2]
        if tag in ("replace", "insert") and any(line.strip() for line in block):
            indent = min((len(line) - len(line.lstrip()) for line in block if line.strip()))
            out += [" " * indent + BEGIN, *block, " " * indent + END]
        elif tag != "delete":
            out += block
    return "\n".join(out)


def difflib_matcher(a: list[str], b: list[str]):
    import difflib

    return difflib.SequenceMatcher(None, a, b, autojunk=False)


def solution_lines(source: str) -> set[int]:
    """Line numbers (1-based) of `source` inside solution regions (the markers' own lines excluded)."""
    inside, lines = False, set()
    for number, line in enumerate(source.split("\n"), 1):
        if BEGIN in line:
            inside = True
        elif END in line:
            inside = False
        elif inside:
            lines.add(number)
    return lines


# ---- a student's notebook as an edit of the source notebook (`dldiy bug new --from`) ------------------

def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _with_regions(reference: str, edited: str) -> str | None:
    """`edited` (a cell as the student saved it: their code where the stub was, no markers) with the
    reference cell's solution markers put back around what stands in their place; None when the edit
    does not line up with the reference's regions (the student's cell is then taken as it is)."""
    import difflib

    lines = reference.split("\n")
    markers: list[tuple[int, str]] = []  # (index in the marker-free lines, the marker line)
    bare: list[str] = []
    for line in lines:
        if BEGIN in line or END in line:
            markers.append((len(bare), line))
        else:
            bare.append(line)
    theirs = edited.split("\n")
    opcodes = difflib.SequenceMatcher(None, bare, theirs, autojunk=False).get_opcodes()

    def place(k: int, end: bool) -> int | None:
        # a BEGIN before bare line k goes before anything the student put in its place (the first opcode
        # starting at k); an END after line k - 1 goes after it (the last opcode ending at k)
        for tag, i1, i2, j1, j2 in (reversed(opcodes) if end else opcodes):
            if tag == "equal" and i1 < k < i2:
                return j1 + k - i1
            if not end and i1 == k:
                return j1
            if end and i2 == k:
                return j2
        return len(theirs) if k >= len(bare) else None

    placed = [(place(k, END in line), line) for k, line in markers]
    positions = [p for p, _ in placed]
    if any(p is None for p in positions) or positions != sorted(positions):  # type: ignore[type-var]
        return None
    out = list(theirs)
    for position, line in reversed(placed):
        out.insert(position, line)  # type: ignore[arg-type]
    return "\n".join(out)


def as_edit_of(reference_text: str, edited_text: str) -> tuple[str, list[str]]:
    """The source notebook (`reference_text`, its JSON) with the code of the edited notebook in it: the
    reference's cells, ids, metadata, outputs and solution markers kept; a code cell's source is the
    edited one's (the markers put back around the student's code where it lines up); cells added or
    removed in the edit are added or removed. So a student's executed notebook, handed in as the source
    of a bug, is a diff of the code it changed and nothing else. Returns the notebook's JSON (written as
    Jupyter writes it) and notes for the instructor (a cell whose markers could not be put back)."""
    import difflib

    reference, edited = json.loads(reference_text), json.loads(edited_text)
    if _written(reference) != reference_text:  # not as Jupyter writes it: rewriting it would change every line
        return edited_text, ["the source notebook is not in Jupyter's own format, so the edit is taken as it "
                             "is (outputs and metadata included): open and save it in Jupyter once to fix that"]
    ref_cells, their_cells = reference.get("cells", []), edited.get("cells", [])

    def key(cell: dict) -> str:
        return cell.get("cell_type", "") + "\0" + _cell_text(cell)

    def stripped(cell: dict) -> str:
        text = _cell_text(cell)
        return "\n".join(line for line in text.split("\n") if BEGIN not in line and END not in line)

    cells: list[dict] = []
    notes: list[str] = []
    lost: list[int] = []  # reference cells whose solution region the edit does not keep

    def edit(ref: dict, theirs: dict) -> dict:
        if ref.get("cell_type") != "code" or theirs.get("cell_type") != "code":
            return ref  # the bug lives in the code: prose, and a code cell made prose, stay the reference's
        text = _cell_text(theirs)
        if text in (stripped(ref), _cell_text(ref)):
            return ref
        if BEGIN in _cell_text(ref) and BEGIN not in text and END not in text:  # (an edit of the source keeps its own)
            merged = _with_regions(_cell_text(ref), text)
            text = merged if merged is not None else text  # else taken as it is, without its markers: said below
        out = copy.deepcopy(ref)
        out["source"] = text.splitlines(keepends=True) if isinstance(ref.get("source"), list) else text
        return out

    def added(theirs: dict) -> dict:
        out = {k: copy.deepcopy(v) for k, v in theirs.items() if k in ("cell_type", "id", "source")}
        out["metadata"] = {}
        if out.get("cell_type") == "code":
            out.update(outputs=[], execution_count=None)
        return out

    # align on the text with the markers dropped: the student's cell holds no markers
    matcher = difflib.SequenceMatcher(None, [k.replace(BEGIN, "").replace(END, "") for k in map(key, ref_cells)],
                                      list(map(key, their_cells)), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        pairs = list(zip(range(i1, i2), range(j1, j2))) if tag in ("equal", "replace") else []
        for i, j in pairs:
            cells.append(edit(ref_cells[i], their_cells[j]))
            if BEGIN in _cell_text(ref_cells[i]) and BEGIN not in _cell_text(cells[-1]):
                lost.append(i)
        if tag in ("replace", "delete"):
            lost += [i for i in range(i1 + len(pairs), i2) if BEGIN in _cell_text(ref_cells[i])]
        if tag in ("replace", "insert"):
            cells += [added(their_cells[j]) for j in range(j1 + len(pairs), j2)]
    if lost:  # course7 trial: a student's cells merged into one made a diff deleting both regions, unsaid
        code_number = {i: sum(c.get("cell_type") == "code" for c in ref_cells[:i + 1]) for i in lost}
        said = "; ".join(f"code cell {code_number[i]} (`{_cell_text(ref_cells[i]).split(chr(10), 1)[0][:60]}`)"
                         for i in sorted(set(lost)))
        notes.append(f"the edit does not keep the solution region(s) of the reference's {said}: the edited code "
                     "does not line up with them (a cell deleted, merged into another, or rewritten around its "
                     "markers), so it is taken as it is and the diff deletes their "
                     "### BEGIN/END SOLUTION markers (the bugged copy is judged as it is; to keep the markers, "
                     "make the edit in a copy of reference/<exercise>/source.ipynb instead)")
    reference["cells"] = cells
    return _written(reference), notes


def _written(notebook: dict) -> str:
    """A notebook's JSON as Jupyter and nbformat write it."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
