"""Notebook submissions: the student notebook filled in and checked, magics, raising cells, bad JSON,
and `check()` inside a real kernel (nbclient)."""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, run_dldiy
from dldiy.graders.course import notebook
from dldiy.incheck import definitions_only

REFERENCE = REPO / "reference" / "exercise-1" / "logreg.py"
SIGN_BUG = ("return -(torch.sigmoid(-u) * t) @ Xt", "return (torch.sigmoid(-u) * t) @ Xt")


def fill(student_nb: dict, reference: str) -> dict:
    """The student notebook with every stubbed cell's functions replaced by `reference`'s."""
    tree = ast.parse(reference)
    functions = {n.name: ast.get_source_segment(reference, n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    nb = json.loads(json.dumps(student_nb))
    filled = 0
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "raise NotImplementedError(" in source:  # nbgrader's stub, or ours
            names = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
            cell["source"] = "\n\n".join(functions[name] for name in names)
            filled += 1
    assert filled == 4  # add_bias, loss, gradient, train
    return nb


UNFILLED = [("exercise-2", "gradcheck"), ("exercise-4", "torch-agreement"), ("exercise-5", "gradcheck-linear"),
            ("exercise-6", "gd"), ("exercise-7", "predict-boundary"), ("exercise-8", "pool-agreement"),
            ("exercise-9", "clipping")]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """One `dldiy release` of the exercises these tests read (one command, not one per exercise)."""
    out = tmp_path_factory.mktemp("bundle") / "b"
    chosen = [arg for exercise_id, _ in [("exercise-1", ""), *UNFILLED] for arg in ("-e", exercise_id)]
    result = run_dldiy("release", str(out), *chosen)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def student_nb(bundle) -> dict:
    """exercise-1's student notebook as `dldiy release` writes it."""
    return json.loads((bundle / "exercise-1" / "exercise-1.ipynb").read_text())


def write_nb(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb))
    return path


def code_notebook(*cells: str) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                       "source": textwrap.dedent(c)} for c in cells]}


def checks_of(result) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_student_notebook_filled_with_the_reference_passes(student_nb, tmp_path):
    path = write_nb(tmp_path / "work.ipynb", fill(student_nb, REFERENCE.read_text()))
    result = run_dldiy("check", "exercise-1", str(path), "--json")
    checks = checks_of(result)
    assert checks.pop("parity")["status"] in ("pass", "skip")
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(checks, "pass")
    assert result.returncode == 0


def test_student_notebook_with_a_sign_error_fails_gradcheck(student_nb, tmp_path, check_json):
    bugged = REFERENCE.read_text().replace(*SIGN_BUG)
    assert bugged != REFERENCE.read_text()
    path = write_nb(tmp_path / "work.ipynb", fill(student_nb, bugged))
    report, exit_code = check_json("exercise-1", path, "gradcheck")
    (gradcheck,) = report["checks"]
    assert gradcheck["status"] == "fail" and "sign" in gradcheck["message"]
    assert exit_code == 1


def test_the_unfilled_student_notebook_loads_and_names_what_to_implement(student_nb, tmp_path, check_json):
    # Stubs raise only when called: the notebook runs top to bottom, each check errors with a message.
    report, exit_code = check_json("exercise-1", write_nb(tmp_path / "work.ipynb", student_nb), "gradcheck")
    assert report["load_error"] is None and report["checks"][0]["status"] == "error"
    assert "NotImplementedError" in report["checks"][0]["message"]
    assert exit_code == 2


@pytest.mark.parametrize("exercise_id, check", UNFILLED)
def test_every_unfilled_student_notebook_runs_its_check_cells_and_names_the_task(exercise_id, check, bundle,
                                                                                 check_json):
    """Each exercise's student notebook, as released, loads in the grading child with its check()
    cells (which must not grade there, nor fail), and the check names what to implement."""
    report, _ = check_json(exercise_id, bundle / exercise_id / f"{exercise_id}.ipynb", check)
    assert report["load_error"] is None, report["load_error"]
    (only,) = report["checks"]
    assert only["status"] == "error" and f"{exercise_id}: implement " in only["message"], only["message"]


def test_check_returns_a_usable_result_inside_the_grading_child(tmp_path, check_json):
    """A notebook printing check(...).score and calling .require(...) (nbgrader's locked cells) is graded
    by the parent: in the child, check() neither grades again nor breaks the notebook."""
    nb = code_notebook(REFERENCE.read_text(),
                       'from dldiy import check\nresult = check("exercise-1", "gradcheck")\nprint(result.score, result)',
                       'result.require("gradcheck")\nresult.require("first-loss")\nassert result.status("gradcheck")')
    report, exit_code = check_json("exercise-1", write_nb(tmp_path / "work.ipynb", nb), "gradcheck")
    assert report["load_error"] is None and report["checks"][0]["status"] == "pass", report
    assert exit_code == 0


def test_under_nbgrader_autograde_only_the_autograder_cells_check_runs(monkeypatch, capsys, tmp_path):
    """While `nbgrader autograde` runs a notebook (it sets NBGRADER_EXECUTION=autograde), a part's
    check(...) cell returns at once, saying so, with an inert result (a part's checks would run a
    second time, and are not what nbgrader scores); the locked cell's check(..., autograde=True) grades."""
    import time

    import dldiy.incheck
    from dldiy import check

    monkeypatch.setattr(dldiy.incheck, "_warm_server", lambda: None)  # no fork server left in pytest
    # nbgrader's kernel, not dldiy's grading child (which this pytest process looks like once another
    # test has imported graders/sandbox/child.py: check() would then return at once, saying nothing)
    monkeypatch.setattr(dldiy.incheck, "_inside_grading_child", lambda: False)
    monkeypatch.chdir(tmp_path)  # a notebook's folder (the checkout's root would shadow the installed dldiy)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    started = time.monotonic()
    part = check("exercise-1", "stability")  # outside IPython: were it to run, it would raise
    assert time.monotonic() - started < 0.5
    assert (part.score, part.max_score, part.require("stability"), part.graded_here) == (0, 0, None, False)
    said = capsys.readouterr().out
    assert 'check("exercise-1", "stability") not run while nbgrader autogrades' in said, said
    assert "the autograder cell under \"Check everything\" runs every check, once" in said + repr(part)
    graded = check("exercise-1", "stability", path=REFERENCE, plots=False, autograde=True)
    assert graded.graded_here and graded.score == graded.max_score == 1
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")  # `nbgrader validate`: the student's own run, checks run
    with pytest.raises(RuntimeError, match="outside IPython"):
        check("exercise-1", "stability")


def test_under_nbgrader_autograde_the_notebook_cannot_make_the_autograder_cell_inert(monkeypatch, tmp_path):
    """nbgrader runs the locked cells in the student's own kernel: a notebook that sets the grading child's
    marker variable (or imports its module) must not turn the autograder cell into an inert result whose
    require() passes every grade cell."""
    import dldiy.incheck
    from dldiy import check

    monkeypatch.setattr(dldiy.incheck, "_warm_server", lambda: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("DLDIY_SANDBOX", "1")  # what the notebook sets: os.environ["DLDIY_SANDBOX"] = "1"
    wrong = tmp_path / "logreg.py"
    wrong.write_text(REFERENCE.read_text().replace("return -(torch.sigmoid(-u) * t) @ Xt", "return (torch.sigmoid(-u) * t) @ Xt"))
    graded = check("exercise-1", "gradcheck", path=wrong, plots=False, autograde=True)
    assert graded.graded_here
    with pytest.raises(AssertionError, match="gradcheck: fail"):
        graded.require("gradcheck")


def test_magics_and_shell_lines_are_skipped_and_reported(tmp_path):
    nb = code_notebook("%matplotlib inline\nimport torch\n!pip install nothing",
                       "%%timeit\nthis is not python",
                       REFERENCE.read_text())
    path = write_nb(tmp_path / "work.ipynb", nb)
    result = run_dldiy("check", "exercise-1", str(path), "--only", "gradcheck")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = " ".join(result.stdout.split())  # the table wraps long lines
    assert "Not executed at load: cell 1, line 1: %matplotlib inline; " \
           "cell 1, line 3: !pip install nothing; cell 2: %%timeit (cell magic, whole cell)" in shown


def test_a_cell_that_raises_is_reported_with_its_number_and_the_students_traceback(tmp_path):
    nb = code_notebook(REFERENCE.read_text(), "x = 1", "def scale(v):\n    return v / 0\n\nscale(3)")
    result = run_dldiy("check", "exercise-1", str(write_nb(tmp_path / "work.ipynb", nb)), "--only", "gradcheck")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("dldiy: cell 3 of work.ipynb raised ZeroDivisionError: division by zero")
    assert '  File "work.ipynb[cell 3]", line 4, in <module>' in lines
    assert '  File "work.ipynb[cell 3]", line 2, in scale' in lines
    assert "    return v / 0" in lines
    assert "graders" not in result.stderr  # our frames are not the student's


@pytest.mark.parametrize("content, says", [
    ('{"cells": [', "invalid JSON"),
    ("[1, 2]", "expected a version-4 notebook"),
    ('{"nbformat": 3, "worksheets": []}', "expected a version-4 notebook"),
])
def test_malformed_notebook_json_is_one_line_and_exit_2(tmp_path, content, says):
    path = tmp_path / "work.ipynb"
    path.write_text(content)
    result = run_dldiy("check", "exercise-1", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "work.ipynb is not a readable notebook" in result.stderr and says in result.stderr
    assert "Traceback" not in result.stderr


# -- in the notebook ---------------------------------------------------------------------------------

def test_check_inside_a_real_kernel_grades_the_notebooks_own_definitions(tmp_path):
    """A kernel session the way students have them: a bugged gradient, a cell that raised, then the
    fix. check() re-runs only the definitions (the last one wins), shows a table, and its messages
    are the command line's."""
    import nbformat
    from nbclient import NotebookClient

    bugged = REFERENCE.read_text().replace(*SIGN_BUG)
    fixed_gradient = [ast.get_source_segment(REFERENCE.read_text(), n) for n in ast.parse(REFERENCE.read_text()).body
                      if isinstance(n, ast.FunctionDef) and n.name == "gradient"][0]
    nb = nbformat.from_dict(code_notebook(
        bugged,
        "undefined_name + 1",  # raised in the kernel: must not stop check()
        'from dldiy import check\nfirst = check("exercise-1", "gradcheck")',
        fixed_gradient,
        'second = check("exercise-1", "gradcheck")',
        "import json\nprint(json.dumps([[c.name, c.status, c.message] for r in (first, second) "
        "for c in r.report.checks]))"))
    shown_lines: list[tuple[int, str]] = []  # every dldiy line displayed, updates included (the cell keeps the last)

    class Recording(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg["msg_type"] in ("display_data", "update_display_data"):
                text = msg["content"].get("data", {}).get("text/plain", "")
                if text.startswith("dldiy: "):
                    shown_lines.append((cell_index, text))
            return super().process_message(msg, cell, cell_index)

    Recording(nb, timeout=120, kernel_name="python3", allow_errors=True,
              resources={"metadata": {"path": str(tmp_path)}}).execute()
    def shown(cell) -> tuple[str, str]:
        """What the cell displayed, as HTML (what Jupyter renders) and as plain text."""
        data = [o["data"] for o in cell.outputs if o["output_type"] == "display_data"]
        text = "".join(d.get("text/plain", "") for d in data)
        return "".join(d.get("text/html", "") for d in data), re.sub(r"\x1b\[[0-9;]*m", "", text)

    html, text = shown(nb.cells[2])
    assert "<pre" in html and "gradcheck" in html
    assert "fail" in text and "Hint:" in text and "Total: 0/3" in text
    html, text = shown(nb.cells[4])
    assert "<pre" in html and "pass" in text and "Total: 3/3" in text
    # The picture of what gradcheck measured, inline; and the progress line, updated in place, ends done.
    # The first check() starts the kernel's fork server (seconds): its line shows. A later one may finish
    # under the line's half-second delay (children fork warm), and then shows none.
    for number, cell in enumerate((nb.cells[2], nb.cells[4])):
        assert sum("image/svg+xml" in o.get("data", {}) for o in cell.outputs) == 1
        assert not any("image/png" in o.get("data", {}) for o in cell.outputs)
        (picture,) = [o["data"]["image/svg+xml"] for o in cell.outputs if "image/svg+xml" in o.get("data", {})]
        assert "gradient of w" in picture and picture.startswith("<svg ")
        progress = [o["data"]["text/plain"] for o in cell.outputs
                    if o.get("data", {}).get("text/plain", "").startswith("dldiy: ")]
        assert len(progress) == (1 if number == 0 else len(progress[:1])), progress
        assert all(line.startswith("dldiy: done in ") for line in progress), progress
    # While it ran, the first check()'s line named the check running (its results come after the fork
    # server's start, past the half-second delay), as `dldiy check` does on a terminal.
    first_lines = [text for index, text in shown_lines if index == 2]
    assert any(re.match(r"dldiy: running gradcheck \(seed \d+\), \d+/\d+ done \[", t) for t in first_lines), first_lines
    (first, second) = json.loads(nb.cells[5].outputs[0]["text"])
    assert first[1] == "fail" and second[1] == "pass"
    # Same messages as the command line on the same (bugged) code.
    cli = run_dldiy("check", "exercise-1", str(write_nb(tmp_path / "bugged.ipynb", code_notebook(bugged))),
                    "--only", "gradcheck", "--json")
    assert [first] == [[c["name"], c["status"], c["message"]] for c in json.loads(cli.stdout)["checks"]]


def test_importing_dldiy_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, dldiy; from dldiy import check; assert 'torch' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


# -- units: the pieces the flows above rely on -------------------------------------------------------

def test_definitions_only_keeps_definitions_and_line_numbers():
    source = textwrap.dedent("""\
        import torch
        EPS = 1e-12
        dtype = torch.float64
        X = torch.randn(3, 2)
        @staticmethod
        def f(x):
            # a comment inside
            return x + EPS
        get_ipython().run_line_magic('matplotlib', 'inline')
        class A:
            pass
        f(X)""")
    kept, dropped = definitions_only(source)
    assert kept.split("\n") == ["import torch", "EPS = 1e-12", "dtype = torch.float64", "", "@staticmethod",
                                "def f(x):", "    # a comment inside", "    return x + EPS", "", "class A:",
                                "    pass", ""]
    assert dropped == 3
    assert definitions_only("def broken(:\n") == ("", 1)


line = st.sampled_from(["x = 1", "    y = f(x)", "return y", "# comment", "", "z = [1, 2]"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(line, max_size=4), st.lists(line, min_size=1, max_size=4)), max_size=4),
       st.lists(line, max_size=3), st.sampled_from(["", "    ", "        "]))
def test_strip_solutions_removes_every_region_and_keeps_the_rest(chunks, tail, indent):
    """Each (given, solution) chunk: the given lines survive in order, each region becomes the stub at
    the marker's indentation, and `solution_code` gives back the given and solution lines unmarked."""
    source_lines, expected, solution = [], [], []
    for given_lines, region in chunks:
        source_lines += given_lines + [indent + notebook.BEGIN] + [f"SOLUTION {s}" for s in region] \
            + [indent + notebook.END]
        expected += given_lines + [indent + s for s in notebook.STUB]
        solution += given_lines + [f"SOLUTION {s}" for s in region]
    source = "\n".join(source_lines + tail)
    stripped, found = notebook.strip_solutions(source)
    assert stripped.split("\n") == expected + tail if (expected + tail) else stripped == ""
    assert found == bool(chunks)
    assert "SOLUTION " not in stripped
    assert notebook.solution_code(source).split("\n") == (solution + tail or [""])


@pytest.mark.parametrize("bad", [f"{notebook.BEGIN}\nx", f"{notebook.END}", f"{notebook.BEGIN}\n{notebook.BEGIN}\n"])
def test_malformed_solution_regions_are_refused(bad):
    with pytest.raises(notebook.SolutionRegionError):
        notebook.strip_solutions(bad)


def test_history_notebook_hands_over_the_cells_the_spec_names_as_the_saved_notebook_has_them(tmp_path, monkeypatch):
    """check() in Jupyter judges the kernel's history: the cells a spec's [cells] names (run by the harness,
    not at load) are kept whole, as typed, once each: the saved notebook's cell where the kernel ran it,
    else the kernel's last run; the saved notebook's tags ride on the inputs that hold its tagged cells."""
    from dldiy.graders.sandbox.submission import load
    from dldiy.incheck import history_notebook

    raw = ["", "import numpy as np", "!mkdir -p data\ndata = np.loadtxt('old.csv')",
           "!mkdir -p data\ndata = np.loadtxt('data/a.csv')", "for epoch in range(3):\n    losses = [epoch]",
           "total = undefined_name()", "!mkdir -p data\ndata = np.loadtxt('newer-unsaved.csv')"]
    parsed = [r.replace("!mkdir -p data", "get_ipython().system('mkdir -p data')") for r in raw]
    named = {"data": {"contains": "np.loadtxt"}, "train": {"tag": "train"}}
    saved = [("import numpy as np", []), (raw[3], []), (raw[4], ["train"]), (raw[5], ["slow"])]
    nb, dropped = history_notebook(parsed, raw, named, saved)
    assert [c["source"].strip() for c in nb["cells"]] == ["import numpy as np", "", raw[3], raw[4], "", ""]
    assert [c["metadata"].get("tags", []) for c in nb["cells"]] == [[], [], [], ["train"], ["slow"], []]
    assert dropped == 1  # `total = ...`: not a definition
    # The loader (the child's) finds each named cell where check() put it, as in the saved notebook.
    path = tmp_path / "history.ipynb"
    path.write_text(json.dumps(nb))
    monkeypatch.chdir(tmp_path)
    loaded = load(path, {"mode": "definitions", "cells": named, "skip_tags": ["slow"]})
    assert {name: number for name, (number, _) in loaded.cells.items()} == {"data": 3, "train": 4}
    # No saved notebook found (or the kernel never ran its cell as saved): the kernel's last run of the cell.
    nb, _ = history_notebook(parsed, raw, {"data": named["data"]})
    assert [c["source"].strip() for c in nb["cells"]][1:] == ["", "", "", "", raw[6]]
    # Without the raw history, as before: IPython's `In`, definitions only.
    nb, _ = history_notebook(parsed)
    assert nb["cells"][1]["source"].strip() == ""


def test_check_of_a_path_judges_that_file_alone_not_the_folder_it_is_called_from(monkeypatch, tmp_path):
    """check(EX, path=FILE) is judged as `dldiy check EX FILE` judges it: the file (or folder) given, never the
    folder the call is made from. From a checkout's root the whole checkout, its venv included, was copied into
    the working copy, and the student's process exited (code 70) after a minute, saying nothing of why. Here the
    calling folder holds more than the working copy's tmpfs takes (a sparse file, nothing written)."""
    import shutil

    import dldiy.incheck
    from dldiy import check

    monkeypatch.setattr(dldiy.incheck, "_warm_server", lambda: None)  # no fork server left in pytest
    monkeypatch.setattr(dldiy.incheck, "_inside_grading_child", lambda: False)
    (tmp_path / "work").mkdir()
    shutil.copy(REFERENCE, tmp_path / "work" / "logreg.py")
    with open(tmp_path / "too-big.bin", "wb") as big:
        big.truncate(1 << 30)  # 1 GiB: beyond any working copy's tmpfs
    monkeypatch.chdir(tmp_path)
    graded = check("exercise-1", "stability", path="work/logreg.py", plots=False)
    assert graded.error is None and graded.score == graded.max_score == 1, graded
