"""`dldiy release`: the student bundle holds no reference code; the source notebook agrees with the
reference; nbgrader's own generate_assignment and autograde run on `release --nbgrader`'s output."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_dldiy
from dldiy.graders.export import nbgrader_environ
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
    """Every line of every exercise's template, whitespace removed: handed out to students, so public."""
    return {"".join(t.split()) for f in (REPO / "exercises").glob("*/template/**/*") if f.is_file()
            for t in f.read_text().splitlines()}


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
    assert not any(part in ("reference", "buggy") or part == "source.ipynb"
                   for f in files for part in Path(f).parts)
    assert (bundle / "exercise-1" / "expected.json").read_text() == \
        (REPO / "exercises" / "exercise-1" / "expected.json").read_text()
    student = json.loads((bundle / "exercise-1" / "exercise-1.ipynb").read_text())
    stubs = sum("raise NotImplementedError()" in "".join(c["source"]) for c in student["cells"]
                if c["cell_type"] == "code")
    assert stubs == 4
    assert len(reference_code_lines()) >= 13  # the scan looks at real code, not at nothing
    assert scan(bundle) == []


def test_the_scan_finds_a_planted_reference_line(bundle, tmp_path):
    planted = tmp_path / "planted"
    shutil.copytree(bundle, planted)
    target = planted / "exercise-1" / "logreg.py"
    target.write_text(target.read_text() + "\n    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]\n")
    assert [hit.split(": ")[0] for hit in scan(planted)] == ["exercise-1/logreg.py"]
    from dldiy.cli.release import leaks

    assert len(leaks(planted)) == 1 and leaks(bundle) == []


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
    from dldiy.cli.release import leaks, stage_exercise
    from dldiy.graders.exercise import load_exercise_dir

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


def test_the_source_notebook_is_the_reference(tmp_path):
    """No drift: every function of the source notebook (solution regions included) has the same code
    as reference/exercise-1/logreg.py's (docstrings aside), and every reference function is in it."""
    from dldiy.graders import notebook

    def functions(source: str) -> dict[str, str]:
        out = {}
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                if ast.get_docstring(node) is not None:
                    node.body = node.body[1:]
                out[node.name] = ast.dump(node)
        return out

    nb = notebook.read(SOURCE_NB)
    code = "\n".join(notebook.solution_code(c.source) for c in nb.cells
                     if c.cell_type == "code" and not notebook.is_check_cell(c))
    assert functions(code) == functions(REFERENCE.read_text())
    # And the stripped cells keep every signature the spec lists.
    student = notebook.student_notebook(nb)
    stripped = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for name in ("loss", "gradient", "train"):
        assert f"def {name}(" in stripped


def test_nbgrader_generate_assignment_and_autograde_round_trip(tmp_path):
    """release --nbgrader -> nbgrader generate_assignment -> two submissions -> nbgrader autograde ->
    scores per check read back from nbgrader's gradebook."""
    course = tmp_path / "course"
    result = run_dldiy("release", "--nbgrader", str(course), "-e", "exercise-1")
    assert result.returncode == 0, result.stderr
    source = json.loads((course / "source" / "exercise-1" / "exercise-1.ipynb").read_text())
    grade_cells = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]["points"]
                   for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("grade")}
    assert grade_cells == {"gradcheck": 3, "first-loss": 3, "convergence": 2, "stability": 1, "placement": 0.5,
                           "parity": 0.5}

    def nbgrader(*args: str) -> None:
        run = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=" + str(course)],
                             cwd=course, capture_output=True, text=True, timeout=300,
                             env=nbgrader_environ())  # its alembic found without an activated venv
        assert run.returncode == 0, run.stdout + run.stderr

    nbgrader("generate_assignment", "exercise-1")
    released = json.loads((course / "release" / "exercise-1" / "exercise-1.ipynb").read_text())
    assert "### BEGIN SOLUTION" not in json.dumps(released)
    for student, code in (("alice", REFERENCE.read_text()), ("bob", REFERENCE.read_text().replace(*SIGN_BUG))):
        target = course / "submitted" / student / "exercise-1" / "exercise-1.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(fill(released, code)))
    nbgrader("autograde", "exercise-1")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {(student, grade.name): grade.auto_score for student in ("alice", "bob")
                  for grade in gb.find_submission_notebook("exercise-1", "exercise-1", student).grades}
    gpu = scores[("alice", "parity")] == 0.5
    assert {cell: scores[("alice", cell)] for cell in grade_cells} == dict(grade_cells, parity=0.5 if gpu else 0.0)
    assert scores[("bob", "gradcheck")] == 0.0 and scores[("bob", "first-loss")] == 0.0
    assert scores[("bob", "stability")] == 1.0  # the loss itself is right
