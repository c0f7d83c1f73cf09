"""`dldiy release`: the student bundle holds no reference code; the source notebook agrees with the
reference; nbgrader's own generate_assignment and autograde run on `release --nbgrader`'s output."""

from __future__ import annotations

import ast
import csv
import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, one_fast_rest_slow, run_dldiy
from dldiy.graders.batch.export import nbgrader_environ
from test_notebooks import REFERENCE, SIGN_BUG, fill

SOURCE_NB = REPO / "reference" / "exercise-1" / "source.ipynb"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "bundle"
    result = run_dldiy("release", str(out))
    assert result.returncode == 0, result.stderr
    return out


# -- an independent leak scan (not the one `release` runs on itself) ---------------------------------

def template_lines() -> set[str]:
    """Every line handed out to students, whitespace removed, so public: every exercise's template,
    and every source notebook's code outside its solution regions (scaffolding)."""
    lines = {"".join(t.split()) for f in (REPO / "exercises").glob("*/template/**/*") if f.is_file()
             for t in f.read_text().splitlines()}
    for source in (REPO / "reference").glob("*/source.ipynb"):
        for cell in json.loads(source.read_text())["cells"]:
            inside = False
            for line in "".join(cell["source"]).splitlines():
                if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                    inside = "BEGIN" in line
                elif not inside:
                    lines.add("".join(line.split()))
    return lines


def reference_code_lines() -> dict[str, str]:
    """Every non-trivial code line under reference/, whitespace removed -> where it comes from.

    Trivial: blank, a comment, a docstring line, a def/class/import line (the public API), a marker,
    fewer than 8 characters. In a source notebook, only the solution regions are the reference's."""
    lines: dict[str, str] = {}
    public = template_lines()
    for path in sorted((REPO / "reference").rglob("*")):
        if path.suffix == ".py":
            source = path.read_text()
            doc = {i for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Expr)
                   and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                   for i in range(node.lineno, node.end_lineno + 1)}
            numbered = [(i, line) for i, line in enumerate(source.splitlines(), 1) if i not in doc]
        elif path.suffix == ".ipynb":
            numbered = []
            for cell in json.loads(path.read_text())["cells"]:
                inside = False
                for i, line in enumerate("".join(cell["source"]).splitlines(), 1):
                    if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                        inside = "BEGIN" in line
                    elif inside and cell["cell_type"] == "code":
                        numbered.append((i, line))
        else:
            continue
        for i, line in numbered:
            code = "".join(line.split("  #")[0].split())
            stripped = line.strip()
            if len(code) >= 8 and not any(code in t for t in public) and not stripped.startswith(
                    ("#", "def ", "class ", "import ", "from ", "@")):
                lines.setdefault(code, f"{path.relative_to(REPO)}:{i}")
    return lines


def bundle_text(bundle: Path) -> list[tuple[str, str]]:
    """(file, text) for everything in the bundle; a notebook as its cells' sources and outputs."""
    out = []
    for path in sorted(bundle.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".whl":  # what a student reads in it (the graders' code: tests/test_packaging.py)
            with zipfile.ZipFile(path) as z:
                text = "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist()
                                 if (not n.endswith(".py") or "/template/" in n) and ".dist-info/" not in n)
            out.append((str(path.relative_to(bundle)), "".join(text.split())))
            continue
        text = path.read_text()
        if path.suffix == ".ipynb":
            cells = json.loads(text)["cells"]
            text = "\n".join("".join(c["source"]) + json.dumps(c.get("outputs", [])) for c in cells)
        out.append((str(path.relative_to(bundle)), "".join(text.split())))
    return out


def scan(bundle: Path) -> list[str]:
    """Reference lines found anywhere in the bundle (as a substring, whitespace ignored)."""
    wanted = reference_code_lines()
    return [f"{name}: {where}" for name, text in bundle_text(bundle) for code, where in wanted.items()
            if code in text]


def test_the_bundle_holds_the_student_files_and_no_line_of_any_reference(bundle):
    files = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    assert {"README.md", "exercise-1/logreg.py", "exercise-1/exercise-1.ipynb", "exercise-1/expected.json"} <= set(files)
    assert {f"exercise-{k}/exercise-{k}.ipynb" for k in range(1, 10)} <= set(files)  # a notebook for every exercise
    assert not any(part in ("reference", "buggy") or part == "source.ipynb"
                   for f in files for part in Path(f).parts)
    assert (bundle / "exercise-1" / "expected.json").read_text() == \
        (REPO / "exercises" / "exercise-1" / "expected.json").read_text()
    student = json.loads((bundle / "exercise-1" / "exercise-1.ipynb").read_text())
    stubs = [line.strip() for c in student["cells"] if c["cell_type"] == "code"
             for line in "".join(c["source"]).splitlines() if "NotImplementedError" in line]
    assert stubs == ['raise NotImplementedError("exercise-1: implement add_bias(X)")',
                     'raise NotImplementedError("exercise-1: implement loss(X, y, w)")',
                     'raise NotImplementedError("exercise-1: implement gradient(X, y, w)")',
                     'raise NotImplementedError("exercise-1: implement train(X, y, w0, lr, steps)")']
    assert len(reference_code_lines()) >= 13  # the scan looks at real code, not at nothing
    assert scan(bundle) == []


def test_every_student_notebook_is_for_students(bundle):
    """The maths in Markdown, stubs that name the task, a check() cell after each part, no solution,
    no nbgrader metadata and no outputs; every cell its own cell (never a file pasted into one)."""
    for k in (1, 2, 4, 5, 6, 7, 8, 9):
        nb = json.loads((bundle / f"exercise-{k}" / f"exercise-{k}.ipynb").read_text())
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        markdown = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert "$" in markdown and markdown.count("## ") >= 2, f"exercise-{k}: no maths, or no parts"
        stubs = re.findall(r'raise NotImplementedError\("exercise-(\d): implement (\S+)', "\n".join(code))
        assert stubs and all(n == str(k) for n, _ in stubs), f"exercise-{k}: {stubs}"
        checks = [i for i, c in enumerate(code) if re.search(r'^check\("exercise-%d"' % k, c, re.M)]
        assert len(checks) >= 3 and checks[-1] == len(code) - 1  # after the parts, and all at the end
        assert "### BEGIN SOLUTION" not in json.dumps(nb)
        assert all(not c.get("outputs") and "nbgrader" not in c["metadata"] for c in nb["cells"])
        assert max(source.count("\ndef ") + source.startswith("def ") for source in code) <= 2
    driver = json.loads((bundle / "exercise-3" / "exercise-3.ipynb").read_text())
    sources = "\n".join("".join(c["source"]) for c in driver["cells"])
    assert 'check("exercise-3", path=PROJECT)' in sources and "fresh_project()" in sources
    # The bug hunt's notebook drives the student's project: no stubs, but the maths and the parts with
    # their own check() cells all the same, the last one checking everything.
    code = ["".join(c["source"]) for c in driver["cells"] if c["cell_type"] == "code"]
    markdown = "".join("".join(c["source"]) for c in driver["cells"] if c["cell_type"] == "markdown")
    assert "$$" in markdown and markdown.count("## ") >= 4
    checks = [i for i, c in enumerate(code) if re.search(r'^check\("exercise-3", .*path=PROJECT\)', c, re.M)]
    assert len(checks) >= 3 and checks[-1] == len(code) - 1
    assert code[-1].rstrip().endswith('check("exercise-3", path=PROJECT)')
    assert "### BEGIN SOLUTION" not in json.dumps(driver)
    assert all(not c.get("outputs") and "nbgrader" not in c["metadata"] for c in driver["cells"])


def test_the_bundle_carries_an_installable_wheel_and_says_how_to_install_it_offline(bundle, tmp_path):
    (wheel,) = (bundle / "wheels").glob("dldiy-*.whl")
    readme = (bundle / "README.md").read_text()
    assert f"pip install --no-deps wheels/{wheel.name}" in readme
    assert "pip install --no-index --find-links wheels/ dldiy" in readme
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    assert not (target / "reference").exists() and not list(target.rglob("source.ipynb"))
    code = ("import dldiy, sys; from dldiy.graders.course.release import leaks; print(dldiy.__file__)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**_env(), "PYTHONPATH": str(target)})
    assert run.stdout.strip().startswith(str(target)), run.stderr
    nb = json.loads((bundle / "exercise-1" / "exercise-1.ipynb").read_text())
    work = tmp_path / "work.ipynb"
    work.write_text(json.dumps(fill(nb, REFERENCE.read_text())))
    run = subprocess.run([sys.executable, "-m", "dldiy.cli", "check", "exercise-1", str(work), "--only", "gradcheck"],
                         cwd=tmp_path, capture_output=True, text=True, env={**_env(), "PYTHONPATH": str(target)},
                         timeout=300)
    assert run.returncode == 0 and "Total: 3/3" in run.stdout, run.stdout + run.stderr


def test_the_scan_finds_a_planted_reference_line(bundle, tmp_path):
    planted = tmp_path / "planted"
    shutil.copytree(bundle, planted)
    target = planted / "exercise-1" / "logreg.py"
    target.write_text(target.read_text() + "\n    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]\n")
    assert [hit.split(": ")[0] for hit in scan(planted)] == ["exercise-1/logreg.py"]
    from dldiy.graders.course.release import leaks

    assert len(leaks(planted)) == 1 and leaks(bundle) == []
    # In a notebook: found in a code cell as the reader sees it, even where the JSON escapes it.
    nb_path = planted / "exercise-5" / "exercise-5.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][3]["source"] = "def helper(x):\n    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))\n"
    nb_path.write_text(json.dumps(nb, indent=1))
    raw = [line.strip() for line in nb_path.read_text().splitlines()]
    assert "return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))" not in raw  # a raw-JSON scan misses it
    hits = leaks(planted)
    assert len(hits) == 2 and hits[0].startswith("exercise-1/logreg.py") and hits[1].startswith(
        "exercise-5/exercise-5.ipynb: 'return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))' (from reference/exercise-5/")


def test_scaffolding_another_exercises_reference_also_holds_does_not_block_the_release(tmp_path):
    """Exercise B's notebook hands out a training loop (scaffolding) that exercise A's reference also
    holds: public by the instructor's choice. The solution lines of both stay secret."""
    import nbformat.v4 as v4

    from dldiy.graders.course.release import leaks
    from dldiy.graders.course import notebook

    root = tmp_path / "course"
    loop = "    for step in range(steps):"
    (root / "reference" / "a").mkdir(parents=True)
    (root / "reference" / "a" / "a.py").write_text(f"def fit(w, steps):\n{loop}\n        w = w - 0.1 * w\n    return w\n")
    (root / "reference" / "b").mkdir(parents=True)
    nb = v4.new_notebook(cells=[v4.new_code_cell(
        f"def run(model, steps):\n{loop}\n        ### BEGIN SOLUTION\n        model.secret_update_rule()\n"
        "        ### END SOLUTION\n")])
    notebook.write(nb, root / "reference" / "b" / "source.ipynb")
    bundle = tmp_path / "bundle"
    notebook.write(notebook.student_notebook(nb, "b"), bundle / "b" / "b.ipynb")
    assert leaks(bundle, root) == []
    (bundle / "b" / "notes.py").write_text("        model.secret_update_rule()\n        w = w - 0.1 * w\n")
    assert [h.split(" (from ")[1] for h in leaks(bundle, root)] == ["reference/b/source.ipynb:4)",
                                                                     "reference/a/a.py:3)"]


def test_a_template_only_exercise_gets_one_cell_per_definition(tmp_path):
    """Without a source notebook, the template becomes cells, never one cell of pasted code."""
    from dldiy.graders.course import notebook
    from dldiy.graders.course.exercise import load_exercise

    nb = notebook.template_notebook(load_exercise("exercise-6"))
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0].startswith('"""') or code[0].startswith("import")
    assert sum(c.lstrip().startswith("class ") for c in code) == 6 and code[-1].endswith('check("exercise-6")')


def test_release_refuses_to_write_a_bundle_with_reference_code(tmp_path):
    """A course whose reference shares a line with the shipped template: release stops, writes nothing."""
    course = tmp_path / "course"
    (course / "reference" / "exercise-1").mkdir(parents=True)
    (course / "reference" / "exercise-1" / "logreg.py").write_text(
        'def loss(X, y, w):\n    raise NotImplementedError("exercise-1: implement loss(X, y, w)")\n')
    env_run = subprocess.run([sys.executable, "-m", "dldiy.cli", "release", str(tmp_path / "out")], cwd=REPO,
                             capture_output=True, text=True, env={**_env(), "DLDIY_COURSE": str(course)})
    assert env_run.returncode == 1
    assert "release stopped: reference code found" in env_run.stderr and "logreg.py" in env_run.stderr
    assert not (tmp_path / "out").exists()


def _env() -> dict:
    import os

    return dict(os.environ)


def test_a_bug_hunting_exercise_ships_its_bugged_code_but_not_the_fix(tmp_path, monkeypatch):
    """A bug hunt whose template is the same bugged code for everyone: it shares most lines with the
    reference; only the fix is secret."""
    from dldiy.graders.course.release import leaks, stage_exercise
    from dldiy.graders.course.exercise import load_exercise_dir

    root = tmp_path / "course"
    folder = root / "exercises" / "hunt"
    (folder / "template").mkdir(parents=True)
    (folder / "spec.toml").write_text(textwrap.dedent("""\
        id = "hunt"
        title = "Debug me"
        entry = "main.py"
        [[checks]]
        name = "convergence"
        kind = "convergence"
        points = 1
        """))
    shared = "def step(w, grad, lr):\n    w_next = w.clone()\n"
    (folder / "template" / "main.py").write_text(shared + "    return w_next + lr * grad\n")
    (root / "reference" / "hunt").mkdir(parents=True)
    (root / "reference" / "hunt" / "main.py").write_text(shared + "    return w_next - lr * grad\n")
    monkeypatch.setenv("DLDIY_COURSE", str(root))
    exercise = load_exercise_dir(folder)
    stage_exercise(exercise, tmp_path / "out" / "hunt")
    assert (tmp_path / "out" / "hunt" / "main.py").read_text().endswith("w_next + lr * grad\n")
    assert leaks(tmp_path / "out", root) == []
    (tmp_path / "out" / "hunt" / "notes.txt").write_text("the fix: return w_next - lr * grad\n")
    assert leaks(tmp_path / "out", root) == []  # `leaks` compares whole lines ...
    (tmp_path / "out" / "hunt" / "notes.txt").write_text("    return w_next - lr * grad\n")
    assert len(leaks(tmp_path / "out", root)) == 1  # ... and finds the fix line


def _without_docstrings(node: ast.AST) -> ast.AST:
    for n in ast.walk(node):
        body = getattr(n, "body", None)
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n) is not None:
            n.body = body[1:] or [ast.Pass()]
    return node


def definitions(source: str) -> dict[str, str]:
    """Top-level functions, classes (with every method) and assignments, docstrings aside."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = ast.dump(_without_docstrings(node))
        elif isinstance(node, ast.Assign):
            out[ast.unparse(node.targets[0])] = ast.dump(node)
    return out


@pytest.mark.parametrize("exercise_id", ["exercise-1", "exercise-2", "exercise-4", "exercise-5", "exercise-6",
                                         "exercise-7", "exercise-8", "exercise-9"])
def test_the_source_notebook_is_the_reference(exercise_id):
    """No drift: every function, class and constant of the source notebook (solution regions
    included) has the reference file's code (docstrings aside), and every reference definition is in it."""
    from dldiy.graders.course import notebook
    from dldiy.graders.course.exercise import load_exercise

    entry = load_exercise(exercise_id).entry
    nb = notebook.read(REPO / "reference" / exercise_id / "source.ipynb")
    code = "\n".join(notebook.solution_code(c.source) for c in nb.cells
                     if c.cell_type == "code" and not notebook.is_check_cell(c))
    assert definitions(code) == definitions((REPO / "reference" / exercise_id / entry).read_text())
    # And the stripped cells keep every signature the spec lists.
    student = notebook.student_notebook(nb, exercise_id)
    stripped = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for name in load_exercise(exercise_id).api:
        assert re.search(rf"(def|class) {name}\b", stripped), name


EXERCISES = [f"exercise-{n}" for n in range(1, 10)]


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_the_nbgrader_notebook_keeps_a_check_cell_after_each_part_and_says_what_it_has(exercise_id):
    """nbgrader's source notebook is the student notebook's layout: each part's check(...) cell kept
    (an ordinary cell, which says that it runs nothing while nbgrader autogrades), the "Check
    everything" heading followed by the one locked cell that runs every check (autograde=True), then
    the grade cells. What the Markdown says the notebook has, it has."""
    from dldiy.graders.course import notebook
    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.course.release import source_notebook

    exercise = load_exercise(exercise_id)
    source = source_notebook(exercise)
    nb = notebook.nbgrader_notebook(source, exercise)
    parts = [c.source for c in source.cells if notebook.is_check_cell(c) and "check(" in c.source
             and not re.search(r'check\("[\w-]+"(, path=\w+)?\)', c.source)]
    kept = [c for c in nb.cells if notebook.is_check_cell(c) and "nbgrader" not in c.metadata]
    assert parts and [c.source for c in kept] == [notebook.AUTOGRADE_NOTE + p for p in parts]
    assert all("While nbgrader autogrades the notebook, this cell runs none" in c.source for c in kept)
    where = ', path="."' if exercise.start == "bugged" else ""
    (run,) = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "dldiy-run-checks"]
    assert nb.cells[run].metadata["nbgrader"]["locked"]
    assert nb.cells[run].source.endswith(f'_dldiy_result = check("{exercise_id}"{where}, autograde=True)')
    headings = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Check everything")]
    assert headings == [run - 1]  # the heading keeps its cell
    grades = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells[run + 1:] if c.metadata.get("nbgrader", {}).get("grade")]
    assert grades == [c.name for c in exercise.checks]
    intro = nb.cells[0].source
    if re.search(r"check\(\.\.\.\)` cell (after|follows) each part", intro):
        assert len(kept) >= 2
    if "*Check everything*" in intro:
        assert headings
    assert "last cell" not in intro  # the grade cells come last in nbgrader's copy


def nbgrader_handout(nb):
    """What `nbgrader generate_assignment` hands out from nbgrader's source notebook `nb`, as far as
    the code goes: nbgrader's own ClearSolutions, configured by the nbgrader_config.py release writes."""
    import copy

    import nbformat
    from nbgrader.preprocessors import ClearSolutions
    from traitlets.config import Config

    from dldiy.cli.release import NBGRADER_CONFIG

    config = Config()
    exec(NBGRADER_CONFIG, {"get_config": lambda: config})  # noqa: S102 - our own config file's text
    handout, _ = ClearSolutions(config=config).preprocess(nbformat.from_dict(copy.deepcopy(nb)), {})
    return handout


@pytest.mark.parametrize("exercise_id", [e for e in EXERCISES if e != "exercise-3"])  # 3 has no solution
def test_nbgraders_stubs_name_the_task_as_the_student_notebooks_do(exercise_id):
    """nbgrader has one stub for every region; release --nbgrader arranges each region so that the
    line after it, which the solution never reaches, raises NotImplementedError naming the task, and
    the stub is only the comment: the handout's stubs are the student notebook's, to the character."""
    from dldiy.graders.course import notebook
    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.course.release import source_notebook

    exercise = load_exercise(exercise_id)
    source = source_notebook(exercise)

    def stubs(nb) -> list[str]:
        return [c.source for c in nb.cells if c.cell_type == "code" and "NotImplementedError" in c.source]

    handed_out = stubs(nbgrader_handout(notebook.nbgrader_notebook(source, exercise)))
    assert handed_out == stubs(notebook.student_notebook(source, exercise_id)) and handed_out
    for cell in handed_out:
        assert "NotImplementedError()" not in cell and "### BEGIN" not in cell
        assert all(line.strip() == f"raise NotImplementedError(\"{exercise_id}: implement " + line.split(": implement ")[1].strip()
                   for line in cell.splitlines() if "NotImplementedError" in line), cell


@pytest.mark.parametrize("exercise_id", one_fast_rest_slow(["exercise-6", "exercise-1", "exercise-2", "exercise-4",
                                                             "exercise-5", "exercise-7", "exercise-8", "exercise-9"]))
def test_nbgraders_source_notebook_is_still_the_solution(exercise_id, tmp_path, check_json):
    """The lines release --nbgrader adds (a `return` ending a region, the raise after it) change nothing
    the solution does: nbgrader's source notebook passes every check (exercise 6 first: its optimizers'
    regions end without a return)."""
    from dldiy.graders.course import notebook
    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.course.release import source_notebook

    exercise = load_exercise(exercise_id)
    nb = notebook.nbgrader_notebook(source_notebook(exercise), exercise)
    assert any("### END SOLUTION\n" in c.source and "raise NotImplementedError(" in c.source for c in nb.cells)
    path = tmp_path / f"{exercise_id}.ipynb"
    notebook.write(nb, path)
    report, _ = check_json(exercise_id, path)
    assert report["load_error"] is None, report["load_error"]
    assert {c["name"]: c["status"] for c in report["checks"] if c["status"] not in ("pass", "skip")} == {}
    assert all(c["name"] == "parity" for c in report["checks"] if c["status"] == "skip")  # no GPU here


def test_nbgrader_regions_end_their_function_and_name_it():
    """A region inside a loop, one before the function's last lines, a method's without a return, and
    two in one function: the solution runs as before, and nbgrader's handout raises naming each task."""
    from dldiy.graders.course import notebook

    source = textwrap.dedent("""\
        def total(xs):
            s = 0
            for x in xs:
                ### BEGIN SOLUTION
                s += x
                ### END SOLUTION
            return s

        class Counter:
            @staticmethod
            def make(n):
                ### BEGIN SOLUTION
                return Counter(n)
                ### END SOLUTION

            def __init__(self, n):
                ### BEGIN SOLUTION
                self.n = n
                ### END SOLUTION

            def add(self, k):
                \"\"\"Add k, return the count.\"\"\"
                ### BEGIN SOLUTION
                k = abs(k)
                ### END SOLUTION
                self.n += k
                ### BEGIN SOLUTION
                self.n *= 1
                ### END SOLUTION
                return self.n""")
    arranged = notebook.nbgrader_regions(source, "own")
    solution = {}
    exec(notebook.solution_code(arranged), solution)  # noqa: S102
    assert solution["total"]([1, 2, 3]) == 6 and solution["Counter"].make(1).add(-2) == 3
    handout = nbgrader_handout({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {"nbgrader": {"solution": True, "grade": False, "locked": False,
                                                        "grade_id": "s", "schema_version": 3}},
         "source": arranged, "outputs": [], "execution_count": None}]}).cells[0].source
    assert "### " not in handout and "s = 0" in handout and "return self.n" not in handout
    student = {}
    exec(handout, student)  # noqa: S102
    for call, task in ((lambda: student["total"]([1]), "total(xs)"), (lambda: student["Counter"].make(1), "Counter.make"),
                       (lambda: student["Counter"](1), "Counter.__init__"),
                       (lambda: student["Counter"].add(object(), 1), "Counter.add")):
        with pytest.raises(NotImplementedError, match=re.escape(f"own: implement {task}")):
            call()
    with pytest.raises(notebook.SolutionRegionError, match="outside any function"):
        notebook.nbgrader_regions("### BEGIN SOLUTION\nEPS = 1e-12\n### END SOLUTION", "own")


def test_release_says_when_the_instructors_own_nbgrader_config_keeps_nbgraders_stub(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    result = run_dldiy("release", "--nbgrader", str(tmp_path), "-e", "exercise-7")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nbgrader_config.py").read_text() == "c = get_config()\n"
    assert "does not set c.ClearSolutions.code_stub" in result.stdout, result.stdout
    result = run_dldiy("release", "--nbgrader", str(tmp_path), "-e", "exercise-7", "--force")
    assert 'c.ClearSolutions.code_stub = {"python": \'# YOUR CODE HERE\'}' in (tmp_path / "nbgrader_config.py").read_text()


def _venv_path() -> dict:
    """The environment with this interpreter's bin/ on PATH: nbgrader runs `alembic` from PATH when it
    creates a gradebook, as it finds it in an activated virtual environment."""
    import os

    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=" + str(course)],
                         cwd=course, capture_output=True, text=True, timeout=400,
                         env=nbgrader_environ())  # its alembic found without an activated venv
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@pytest.mark.slow  # nbgrader's own generate_assignment and autograde, end to end
def test_nbgrader_end_to_end_on_notebooks(tmp_path):
    """release --nbgrader -> nbgrader generate_assignment -> two submitted notebooks (the solution and a
    sign bug) -> nbgrader autograde AND dldiy grade --nbgrader: the same scores in the same cells of
    ONE notebook per assignment (maximum 10), which nbgrader export shows."""
    course = tmp_path / "course"
    result = run_dldiy("release", "--nbgrader", str(course), "-e", "exercise-1", "-e", "exercise-3")
    assert result.returncode == 0, result.stderr
    assert [line.split()[-1] for line in result.stdout.splitlines() if line.strip().startswith("wrote")] == [
        str(course / "source" / "exercise-1"), str(course / "source" / "exercise-3"), str(course / "nbgrader_config.py")]
    assert sorted(p.name for p in (course / "source").iterdir()) == ["exercise-1", "exercise-3"]
    assert "get_config()" in (course / "nbgrader_config.py").read_text()
    source = json.loads((course / "source" / "exercise-1" / "exercise-1.ipynb").read_text())
    grade_cells = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]["points"]
                   for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("grade")}
    assert grade_cells == {"gradcheck": 3, "first-loss": 3, "convergence": 2, "stability": 1, "placement": 0.5,
                           "parity": 0.5}
    # Cell by cell: solution cells marked, the handout's cells kept apart, each part's check() cell kept
    # (unlocked), and the one locked cell that runs every check.
    solutions = [c for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert len(solutions) == 4 and all("### BEGIN SOLUTION" in "".join(c["source"]) for c in solutions)
    calls = [(c["metadata"].get("nbgrader", {}).get("locked", False), line) for c in source["cells"]
             for line in "".join(c["source"]).splitlines() if 'check("exercise-1"' in line]
    assert calls == [(False, 'check("exercise-1", "stability")'), (False, 'check("exercise-1", "gradcheck", "placement")'),
                     (False, 'check("exercise-1", "first-loss", "convergence")'),
                     (True, '_dldiy_result = check("exercise-1", autograde=True)')]
    driver = json.loads((course / "source" / "exercise-3" / "exercise-3.ipynb").read_text())
    assert any('check("exercise-3", path=".", autograde=True)' in "".join(c["source"]) for c in driver["cells"])

    generated = _nbgrader(course, "generate_assignment", "exercise-1")
    assert "nbgrader_config.py" not in generated.stderr  # no "no config file found" warning
    released = json.loads((course / "release" / "exercise-1" / "exercise-1.ipynb").read_text())
    assert "### BEGIN SOLUTION" not in json.dumps(released)
    # Each stub names its task (nbgrader's own stub, set by the config, is only the comment above it).
    raises = [line.strip() for c in released["cells"] if c["cell_type"] == "code"
              for line in "".join(c["source"]).splitlines() if "NotImplementedError" in line]
    assert raises == [f'raise NotImplementedError("exercise-1: implement {task}")' for task in
                      ("add_bias(X)", "loss(X, y, w)", "gradient(X, y, w)", "train(X, y, w0, lr, steps)")]
    for student, code in (("alice", REFERENCE.read_text()), ("bob", REFERENCE.read_text().replace(*SIGN_BUG))):
        target = course / "submitted" / student / "exercise-1" / "exercise-1.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(fill(released, code)))
    _nbgrader(course, "autograde", "exercise-1")
    # Under autograde the parts' check() cells ran nothing (they say so); the locked cell ran every check.
    autograded = json.loads((course / "autograded" / "alice" / "exercise-1" / "exercise-1.ipynb").read_text())
    outputs = [("".join(c["source"]), re.sub(r"\x1b\[[0-9;]*m", "", "".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) for o in c.get("outputs", []))))
        for c in autograded["cells"] if 'check("exercise-1"' in "".join(c["source"])]
    assert len(outputs) == 4
    assert all("not run while nbgrader autogrades" in out for _, out in outputs[:3]), outputs
    assert "autograde=True" in outputs[3][0] and "not run" not in outputs[3][1], outputs[3]
    assert re.search(r"Total: (9\.5|10)/10", outputs[3][1]), outputs[3][1]

    from nbgrader.api import Gradebook

    def gradebook() -> tuple[dict, dict]:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            notebooks = {nb.name: nb.max_score for nb in gb.find_assignment("exercise-1").notebooks}
            scores = {(student, grade.name): grade.auto_score for student in ("alice", "bob")
                      for grade in gb.find_submission_notebook("exercise-1", "exercise-1", student).grades}
        return notebooks, scores

    notebooks, scores = gradebook()
    assert notebooks == {"exercise-1": 10.0}
    gpu = scores[("alice", "parity")] == 0.5
    want = {**{("alice", c): p for c, p in grade_cells.items()}, ("alice", "parity"): 0.5 if gpu else 0.0,
            ("bob", "gradcheck"): 0.0, ("bob", "first-loss"): 3.0, ("bob", "convergence"): 2.0,
            ("bob", "stability"): 1.0, ("bob", "placement"): 0.5, ("bob", "parity"): 0.5 if gpu else 0.0}
    assert scores == want

    # dldiy grade on the same submitted notebooks: the locked cells call check(...).require(...) inside
    # the grading child, which must run through; its scores land in the very same cells.
    (course / "gradebook.db").rename(tmp_path / "autograded.db")
    graded = run_dldiy("grade", "exercise-1", str(course), "--out", str(tmp_path / "grades"), "--nbgrader",
                       str(course), "--hidden", "0", "--jobs", "2", env=_venv_path())
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "error" not in (tmp_path / "grades" / "gradebook.csv").read_text().split("\n", 1)[1]
    assert gradebook() == ({"exercise-1": 10.0}, want)
    (tmp_path / "autograded.db").replace(course / "gradebook.db")  # both writers, one gradebook
    graded = run_dldiy("grade", "exercise-1", str(course), "--out", str(tmp_path / "grades"), "--nbgrader",
                       str(course), "--hidden", "0", "--regrade", env=_venv_path())
    assert graded.returncode == 0 and gradebook() == ({"exercise-1": 10.0}, want)

    _nbgrader(course, "export")
    rows = {r["student_id"]: r for r in csv.DictReader((course / "grades.csv").open())
            if r["assignment"] == "exercise-1"}
    assert {s: (float(r["score"]), float(r["max_score"])) for s, r in rows.items()} == {
        "alice": (9.5 + (0.5 if gpu else 0.0), 10.0), "bob": (6.5 + (0.5 if gpu else 0.0), 10.0)}  # one bug, one deduction


def test_a_template_notebook_is_read_as_a_notebook_never_pasted_as_json(tmp_path, monkeypatch):
    """An exercise whose template is itself a notebook (and no source notebook): release --nbgrader
    keeps its cells, one by one."""
    import nbformat.v4 as v4

    from dldiy.graders.course.release import source_notebook
    from dldiy.graders.course import notebook
    from dldiy.graders.course.exercise import load_exercise_dir

    root = tmp_path / "course"
    folder = root / "exercises" / "nb"
    (folder / "template").mkdir(parents=True)
    (folder / "spec.toml").write_text('id = "nb"\ntitle = "T"\nentry = "work.ipynb"\n[[checks]]\n'
                                      'name = "convergence"\nkind = "convergence"\npoints = 1\n')
    notebook.write(v4.new_notebook(cells=[v4.new_markdown_cell("# Maths"), v4.new_code_cell("def f(x):\n    return x")]),
                   folder / "template" / "work.ipynb")
    (root / "reference" / "nb").mkdir(parents=True)
    monkeypatch.setenv("DLDIY_COURSE", str(root))
    nb = source_notebook(load_exercise_dir(folder))
    assert [c.source for c in nb.cells] == ["# Maths", "def f(x):\n    return x"]


def test_the_leak_scan_passes_plumbing_and_the_lines_a_course_declares_public(tmp_path):
    """An instructor's harness shared `n = len(y)`, `return W, b, losses` and an rng line with a reference,
    and release refused it, with no way to say they leak nothing (instructor trial). Plumbing (returns and
    assignments of names, attributes, constants, len() of them) is never a solution line; the course
    declares its own boilerplate public in dldiy.toml; a line that computes is still a leak."""
    from dldiy.graders.course.release import _non_trivial, public_lines, reference_lines

    for line in ("n = len(y)", "return W, b, losses", "losses = []", "x = X.shape[0]", "self.mean = mean"):
        assert not _non_trivial(line), line
    for line in ("w = w - lr * g", "return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]", "x = X[:, 0]", "dx = dxhat / std",
                 "rng = np.random.default_rng(seed)"):
        assert _non_trivial(line), line
    (tmp_path / "reference" / "ex").mkdir(parents=True)
    (tmp_path / "reference" / "ex" / "sol.py").write_text(
        "def f(X, y, seed):\n    rng = np.random.default_rng(seed)\n    n = len(y)\n    return (X @ X.T).sum() / n\n")
    assert set(reference_lines(tmp_path)) == {"rng=np.random.default_rng(seed)", "return(X@X.T).sum()/n"}
    (tmp_path / "dldiy.toml").write_text('[course]\nname = "mine"\n\n[release]\npublic_lines = ["rng = np.random.default_rng(seed)"]\n')
    assert "rng=np.random.default_rng(seed)" in public_lines(tmp_path)
    assert set(reference_lines(tmp_path)) == {"return(X@X.T).sum()/n"}
