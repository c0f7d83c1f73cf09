"""The course7 trial's frictions (a new instructor's own course: /tmp/rt8/course7/REPORT.md, F1-F10), each
through the real command on the test course (tests/courses/mlp_numpy) or a copy of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, run_dldiy

COURSE = REPO / "tests" / "courses" / "mlp_numpy"
SOLUTION = COURSE / "notebooks" / "mlp_solution.ipynb"


def _check(path: Path, *args: str, course: Path = COURSE) -> dict:
    exercise = "mlp" if course == COURSE else "attention"
    result = run_dldiy("check", "--course", str(course), exercise, str(path), "--json", *args)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def _edited(folder: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """The solution notebook with cell sources edited: {first line of the cell: (old, new)}."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    for first, (old, new) in edits.items():
        cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(first))
        assert old in cell.source, (first, old)
        cell.source = cell.source.replace(old, new, 1)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / "mlp.ipynb"))
    return folder / "mlp.ipynb"


def _messages(report: dict) -> dict[str, str]:
    return {c["name"]: c["message"] for c in report["checks"]}


# ---- F1: a module-level computed constant in definitions mode ----------------------------------------


def test_a_constant_built_by_pure_calls_runs_at_load_and_the_training_loop_still_does_not(tmp_path):
    """F1: `NEG_INF = float("-inf")` in the imports cell, a helper `partial(...)`: a correct notebook gets full
    marks in definitions mode (they ran in Jupyter); the loop, plot and print cells are still left out, and
    the summary lists them."""
    path = _edited(tmp_path / "ann", {
        "import numpy as np": ("import numpy as np\n", "import numpy as np\nfrom functools import partial\n"
                                                       "ZERO = float(\"0\")\nrelu_of = partial(np.maximum, ZERO)\n"),
        "class ReLU": ("        self.mask = x > 0\n        return x * self.mask",
                       "        self.mask = x > ZERO\n        return relu_of(x)"),
    })
    report = _check(path)
    assert report["score"] == report["max_score"] == 11, _messages(report)
    skipped = report["skipped_lines"]
    assert not any("ZERO" in s or "relu_of" in s for s in skipped), skipped
    # the plot cell and the accuracy print are listed, never run (nothing printed at load)
    assert any("left out (definitions mode runs only imports, def, class and constants at load): 4 statements" in s
               for s in skipped), skipped
    assert "training accuracy" not in report["output"]


def test_a_name_assigned_by_a_statement_definitions_mode_leaves_out_is_said_where_and_how_to_fix(tmp_path):
    """F1: a constant definitions mode does not run (`ZERO = np.zeros(1)[0]`: a call that allocates) is listed
    in the summary by name, and the NameError of every check that needs it names the cell, the line, the
    statement and the fix."""
    path = _edited(tmp_path / "bo", {
        "import numpy as np": ("import numpy as np\n", "import numpy as np\nZERO = np.zeros(1)[0]\n"),
        "class ReLU": ("        self.mask = x > 0\n", "        self.mask = x > ZERO\n"),
    })
    report = _check(path)
    said = _messages(report)
    assert {c["name"] for c in report["checks"] if c["status"] != "pass"} == {"relu-forward", "relu-backward", "training"}
    statement = ("ZERO is assigned in cell 1 line 2 (`ZERO = np.zeros(1)[0]`), a statement the exercise's "
                 "load = \"definitions\" does not run at load")
    for name in ("relu-forward", "relu-backward", "training"):
        assert "NameError: name 'ZERO' is not defined" in said[name] and statement in said[name], said[name]
        assert 'load = "all"' in said[name] and "load_tags" in said[name]
    assert any(s.startswith("cell 1: line 2 left out (definitions mode") and s.endswith("assigns ZERO")
               for s in report["skipped_lines"]), report["skipped_lines"]


def test_a_statement_that_fails_in_definitions_mode_costs_itself_not_the_rest_of_its_cell(tmp_path, monkeypatch):
    """F1: each kept statement runs on its own: a constant built from a name load left undefined is reported,
    and the class after it in the same cell is still defined."""
    from dldiy.graders.sandbox.submission import load

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        "import math\nX = load_data()\nWIDTH = int(X.size)\nclass Net:\n    pass\nEPS = math.sqrt(1e-12)",
        "for epoch in range(10**9):\n    pass\nopt = Net()",
    )])
    nbformat.write(nb, str(tmp_path / "hw.ipynb"))
    monkeypatch.chdir(tmp_path)
    loaded = load(tmp_path / "hw.ipynb", {"mode": "definitions"})  # the loop would never end: not run
    names = vars(loaded.module)
    assert "Net" in names and names["EPS"] == pytest.approx(1e-6) and "WIDTH" not in names and "opt" not in names
    assert loaded.skipped[0] == ("cell 1: line 2 left out (definitions mode runs only imports, def, class and "
                                 "constants at load): assigns X")
    assert loaded.skipped[1].startswith("cell 1: left out from line 3 (name 'X' is not defined: X is assigned in "
                                        "cell 1 line 2 (`X = load_data()`)"), loaded.skipped
    assert loaded.skipped[2] == ("cell 2: lines 1-3 left out (definitions mode runs only imports, def, class and "
                                 "constants at load): assigns epoch (line 1); opt (line 3)")


# ---- F4: a cell that failed at load is the one blamed --------------------------------------------------


def test_a_failed_import_cell_is_blamed_for_what_it_left_undefined_never_definitions_mode(tmp_path):
    """F4: the imports cell raises ModuleNotFoundError before it binds `np`; a class body that reads `np`
    then raises NameError at load. Every message blames cell 1's ModuleNotFoundError, and none says that
    definitions mode left something out."""
    path = _edited(tmp_path / "dave", {
        "import numpy as np": ("import numpy as np\n", "import nump as np\n"),
        "class Linear": ('    """A fully', '    dtype = np.float64\n    """A fully'),
    })
    report = _check(path)
    said = _messages(report)
    blame = "cell 1 raised ModuleNotFoundError at load (see the skipped cells)"
    for name in ("linear-forward", "linear-backward", "linear-step"):
        assert said[name] == f"seed 1: `Linear` is not defined: {blame}", said[name]
    assert blame in said["softmax-ce-forward"], said  # np.exp at call time: the NameError names cell 1 too
    assert report["checks"][[c["name"] for c in report["checks"]].index("relu-forward")]["status"] == "pass"
    text = json.dumps(report)
    assert "definitions mode does not run" not in text and "(definitions mode)" not in text
    assert any(s.startswith("cell 3 raised NameError: name 'np' is not defined") and blame in s
               for s in report["skipped_lines"]), report["skipped_lines"]


# ---- F5: dldiy mutate of a .py exercise ---------------------------------------------------------------

LSE = REPO / "tests" / "courses" / "course7"  # the trial's .py exercise: a stable logsumexp and a smoothed CE


def test_mutate_edits_only_the_solution_regions_of_a_py_exercise():
    """F5: `def logsumexp(z, axis=-1)` -> `axis=1` and `smoothing=0.1` -> 0.2 (template lines, the same in
    the students' file) were mutated and counted against the kill rate (83% < 90%, exit 1)."""
    from dldiy.graders.course.notebook import solution_lines

    result = run_dldiy("mutate", "lse", "--course", str(LSE), "--json", "-j", "1", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)[0]
    regions = solution_lines((LSE / "reference" / "lse" / "logsumexp.py").read_text())
    lines = {int(m["id"].split(":")[1]) for m in report["mutants_detail"]}
    assert lines and lines <= regions, sorted(lines - regions)
    assert report["kill_rate"] >= report["threshold"]


# ---- F8: a correct-but-different solution for validate ------------------------------------------------


def test_an_alternative_given_as_its_own_file_is_validated_at_full_marks_and_a_wrong_one_is_a_false_failure(tmp_path):
    """F8: the instructor's guess, `alternatives/lse/<name>/logsumexp.py` (the solution's file as a student
    hands it in), was ignored: validate said "alternatives at full marks 0/0". It is graded now; one that
    loses a point is a false failure, named, and validate exits 1."""
    good = run_dldiy("validate", "lse", "--course", str(LSE))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "alternative loops" in good.stdout and "alternatives at full marks 1/1, false failures 0" in good.stdout
    course = tmp_path / "course"
    shutil.copytree(LSE, course)
    wrong = course / "alternatives" / "lse" / "wrong"
    wrong.mkdir()
    source = (LSE / "alternatives" / "lse" / "loops" / "logsumexp.py").read_text()
    (wrong / "logsumexp.py").write_text(source.replace("targets = np.full((n, k), smoothing / k)",
                                                       "targets = np.full((n, k), smoothing / (k - 1))"))
    (course / "alternatives" / "lse" / "empty").mkdir()
    said = run_dldiy("validate", "lse", "--course", str(course))
    assert said.returncode == 2 and "alternatives/lse/empty holds neither the solution's files" in said.stderr, said
    (course / "alternatives" / "lse" / "empty").rmdir()
    bad = run_dldiy("validate", "lse", "--course", str(course))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "alternatives at full marks 1/2, false failures 1" in bad.stdout, bad.stdout


# ---- F9: dldiy bug new --from a student's notebook whose cells do not line up with the regions ------------


def test_bug_new_from_a_notebook_with_merged_cells_says_which_solution_regions_its_diff_deletes(tmp_path):
    """F9: a student's notebook with the layer cells merged into one made a diff deleting the solution
    markers of both cells, and `bug new` said nothing (the docs promise it says so)."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    nb = nbformat.read(str(SOLUTION), as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.source.startswith("class Linear"))
    second = next(i for i, c in enumerate(nb.cells) if c.source.startswith("class ReLU"))
    nb.cells[first].source += "\n\n\n" + nb.cells[second].source.replace("x > 0", "x >= 0")
    del nb.cells[second]
    nbformat.write(nb, str(tmp_path / "merged.ipynb"))
    made = run_dldiy("bug", "new", "mlp", "merged", "--from", str(tmp_path / "merged.ipynb"), "--course", str(course))
    assert made.returncode == 0, made.stderr
    diff = (course / "buggy" / "mlp" / "merged" / "bug.diff").read_text()
    begins = {sign: sum(line.startswith(sign) and "BEGIN SOLUTION" in line for line in diff.splitlines())
              for sign in "-+"}
    assert begins["-"] > begins["+"], diff  # a region's markers deleted...
    assert "note: source.ipynb: the edit does not keep the solution region(s) of the reference's code cell 4 " \
           "(`class ReLU:`)" in made.stdout, made.stdout  # ...and said
    assert "diff deletes their ### BEGIN/END SOLUTION markers" in made.stdout


# ---- F3: everything in one cell ------------------------------------------------------------------------


def test_a_notebook_written_in_one_cell_is_told_the_real_problem(tmp_path):
    """F3: a student who put the classes, the settings, the data and the loop in one cell got "the submission
    does not define `Linear`" (it does, in the cell the `data` selector picks, which load does not run) and
    "no cell contains 'np.loadtxt'" (one does: the same cell). The messages say so now."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.source.startswith("class Linear"))
    loop = next(i for i, c in enumerate(nb.cells) if "for epoch in range(n_epochs):" in c.source)
    data = next(c for c in nb.cells if "np.loadtxt" in c.source)
    code = [c.source for c in nb.cells[first:loop + 1] if c.cell_type == "code" and c is not data]
    data_lines = "\n".join(line for line in data.source.split("\n") if not line.startswith("!"))
    nb.cells[first:loop + 1] = [nbformat.v4.new_code_cell("\n\n".join(code[:-2] + [data_lines] + code[-2:]))]
    nb.cells.remove(data)
    first -= 1  # the data cell was above the layers
    (tmp_path / "one").mkdir()
    nbformat.write(nb, str(tmp_path / "one" / "mlp.ipynb"))
    report = _check(tmp_path / "one" / "mlp.ipynb")
    said = _messages(report)
    number = 1 + sum(c.cell_type == "code" for c in nb.cells[:first])
    where = (f"is not defined: it is defined in cell {number}, the cell this exercise runs itself as its 'data' cell "
             "(when a check asks for it, never at load): keep the classes and functions in cells of their own")
    assert f"`Linear` {where}" in said["linear-forward"], said
    assert f"`ReLU` {where}" in said["relu-forward"] and f"`SoftmaxCrossEntropy` {where}" in said["softmax-ce-forward"]
    assert (f"this check runs the cell of your notebook that contains 'for epoch in range(n_epochs):', and that is "
            f"cell {number}, which is also the cell that contains 'np.loadtxt': the two must be cells of their own"
            ) in said["training"], said["training"]
    assert "does not define" not in json.dumps(said) and "no cell is" not in json.dumps(said)


# ---- F2 (a): an in-place write through a mirror read inline -------------------------------------------


def test_an_in_place_write_to_a_parameter_read_inline_reaches_the_students_layer(tmp_path):
    """F2 (a): `with torch.no_grad(): getattr(layer.q, "weight").copy_(W)` was lost (the mirror, used once
    and dropped, was forgotten before a message carried the change): the reference kept its random init,
    `dldiy record` recorded that, and `dldiy check` of the same reference gave 4/7 against itself. The
    write now reaches the layer: the record equals the one made with load_state_dict, and the reference
    gets full marks."""
    course = tmp_path / "course"
    shutil.copytree(LSE, course)
    harness = course / "exercises" / "attention" / "harness.py"
    old = "    layer.load_state_dict(_weights(seed))\n"
    assert old in harness.read_text()
    harness.write_text(harness.read_text().replace(old, (
        "    with torch.no_grad():\n"
        "        for name, value in _weights(seed).items():\n"
        "            part, attr = name.split('.')\n"
        "            getattr(getattr(layer, part), attr).copy_(value)\n")))
    recorded = run_dldiy("record", "attention", "--course", str(course))
    assert recorded.returncode == 0, recorded.stderr
    new = json.loads((course / "exercises" / "attention" / "expected.json").read_text())["checks"]
    old_record = json.loads((LSE / "exercises" / "attention" / "expected.json").read_text())["checks"]
    assert new["attention-forward"] == old_record["attention-forward"]
    assert new["attention-backward"] == old_record["attention-backward"]
    report = _check(course / "reference" / "attention" / "source.ipynb", course=course)
    assert report["score"] == report["max_score"] == 7, _messages(report)


def test_the_trials_correct_notebooks_are_alternatives_at_full_marks():
    """F1 and F8 together: the trial's correct-but-different attention notebooks, among them the module-level
    constant and the functools.partial helper that got 2/7, are alternatives/attention/<name>/attention.ipynb;
    validate proves each gets full marks, and the four bugs are caught as their manifests say."""
    result = run_dldiy("validate", "attention", "--course", str(LSE), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bugs caught 4/4, alternatives at full marks 6/6, false failures 0" in result.stdout, result.stdout
    assert "alternative const" in result.stdout and "alternative partial" in result.stdout


# ---- F10: small messages --------------------------------------------------------------------------------


def test_an_empty_file_is_said_to_be_empty(tmp_path):
    """F10: a 0-byte notebook read "invalid JSON (Expecting value: line 1 column 1 (char 0))"; an empty .py
    file "the submission does not define `logsumexp`"."""
    (tmp_path / "erin.ipynb").write_text("")
    (tmp_path / "logsumexp.py").write_text("\n")
    notebook = run_dldiy("check", "--course", str(LSE), "attention", str(tmp_path / "erin.ipynb"))
    assert notebook.returncode != 0 and "erin.ipynb is an empty file (0 bytes), not a notebook" in notebook.stderr, \
        notebook.stderr
    report = json.loads(run_dldiy("check", "--course", str(LSE), "lse", str(tmp_path / "logsumexp.py"), "--json").stdout)
    assert report["score"] == 0
    assert all(m.endswith("is not defined: the file handed in is empty: was it saved before it was handed in?")
               for m in _messages(report).values()), report


def test_with_load_all_a_cell_reading_what_the_training_cell_assigns_is_said_as_such(tmp_path, monkeypatch):
    """F10: with load = "all", the plot and print cells after the named training cell were listed as
    "raised NameError: losses" in every student's feedback, as if the student had made a mistake."""
    from dldiy.graders.sandbox.submission import load

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        "n_epochs = 3", "losses = []\nfor epoch in range(n_epochs):\n    losses.append(epoch)", "print(losses[-1])")])
    nbformat.write(nb, str(tmp_path / "hw.ipynb"))
    monkeypatch.chdir(tmp_path)
    loaded = load(tmp_path / "hw.ipynb", {"mode": "all", "cells": {"train": {"contains": "for epoch in"}}})
    assert loaded.skipped == ["cell 3: not run at load from line 1: it reads `losses`, which cell 2 assigns, the "
                              "exercise's 'train' cell (run by the checks that need it, never at load)"]


# ---- F6: the scaffold's training-cell selector ----------------------------------------------------------


def test_the_scaffolds_training_selector_keeps_a_renamed_loop_variable(tmp_path, monkeypatch):
    """F6: the spec `dldiy new` wrote selected the loop by `for epoch in range(n_epochs):`, and a correct
    student who wrote `for ep in range(n_epochs):` lost the training check. It selects by the loop's
    `in range(n_epochs):` now."""
    empty, solution = COURSE / "notebooks" / "mlp.ipynb", SOLUTION
    made = run_dldiy("new", "hw", "--from", str(empty), "--solution", str(solution), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert 'train = { contains = "in range(n_epochs):" }' in (tmp_path / "exercises" / "hw" / "spec.toml").read_text()
    from dldiy.graders.course.exercise import load_exercise_dir
    from dldiy.graders.sandbox.submission import load

    nb = nbformat.read(str(SOLUTION), as_version=4)
    cell = next(c for c in nb.cells if "for epoch in range(n_epochs):" in c.source)
    cell.source = cell.source.replace("for epoch in range(n_epochs):", "for ep in range(n_epochs):")
    (tmp_path / "kate").mkdir()
    nbformat.write(nb, str(tmp_path / "kate" / "mlp.ipynb"))
    settings = load_exercise_dir(tmp_path / "exercises" / "hw").load_settings()
    monkeypatch.chdir(tmp_path / "kate")
    loaded = load(tmp_path / "kate" / "mlp.ipynb", settings)
    assert "for ep in range(n_epochs):" in loaded.cells["train"][1] and not loaded.ambiguous


def test_new_names_the_torch_module_and_optimizer_it_wrote_no_check_for(tmp_path):
    """F2: `dldiy new` said "no layer class, autograd.Function or function with a solution region" for an
    nn.Module and an Optimizer that both have one. It names them and where the docs say how to check them."""
    notebooks = LSE / "notebooks"
    made = run_dldiy("new", "att", "--from", str(notebooks / "attention.ipynb"), "--solution",
                     str(notebooks / "attention_solution.ipynb"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert ("note: no check scaffolded for SelfAttention (nn.Module), NesterovSGD (torch.optim.Optimizer): write an "
            "agreement probe for each") in made.stdout, made.stdout
    assert "'A torch.nn.Module or an Optimizer'" in made.stdout and "no layer class" not in made.stdout


@pytest.mark.parametrize("line, kept", [
    ('NEG_INF = float("-inf")', True), ("softmax_last = partial(torch.softmax, dim=-1)", True),
    ("SCALE = 1 / math.sqrt(64)", True), ('DEVICE = torch.device("cpu")', True), ("TINY = np.finfo(float).tiny", True),
    ("N = X.shape[1]", False), ("W = torch.randn(3, 3)", False), ("model = Net()", False), ("Z = np.zeros(10**9)", False),
    ("T = tuple(range(10**9))", False), ("B = bytes(10**10)", False), ("M = max(range(10**12))", False),
    ("L = 10**9 * [0]", False), ('S = "x" * 10**9', False), ("a, b = 1, 2", False),
])
def test_definitions_mode_runs_only_assignments_built_by_pure_constructors(line, kept):
    """F1's rule: the value cheap and free of side effects whatever the names hold (the training loop, a
    model, a draw of random numbers, an allocation by size stay left out)."""
    from dldiy.incheck import definitions_only

    source, dropped = definitions_only(line)
    assert (source == line, dropped) == (kept, 0 if kept else 1)


def test_grade_into_nbgraders_gradebook_prints_no_sqlalchemy_warnings(tmp_path):
    """F10: `dldiy grade --nbgrader` passed nbgrader's three SAWarnings ("... not in session, add operation
    along 'Student.submissions' will not proceed") through, which read as dldiy's."""
    pytest.importorskip("nbgrader")
    (tmp_path / "class").mkdir()
    (tmp_path / "nbg").mkdir()
    shutil.copy(LSE / "reference" / "lse" / "logsumexp.py", tmp_path / "class" / "alice.py")
    result = run_dldiy("grade", "lse", str(tmp_path / "class"), "--course", str(LSE), "--out", str(tmp_path / "book"),
                       "--nbgrader", str(tmp_path / "nbg"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nbg" / "gradebook.db").is_file()
    assert "SAWarning" not in result.stderr and "not in session" not in result.stderr, result.stderr
