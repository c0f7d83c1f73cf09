"""An instructor's own course through nbgrader: `dldiy release --nbgrader` puts what the locked cell needs
beside the notebook (never the reference), and real `nbgrader generate_assignment` / `autograde` grade
the own-course exercise; grade cells whose locked cell could not run say why, never a NameError."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, run_dldiy
from dldiy.graders.batch.export import nbgrader_environ

COURSE = REPO / "tests" / "courses" / "mlp_numpy"
SOLUTION = COURSE / "notebooks" / "mlp_solution.ipynb"
BUG = ("return grad / len(self.y)", "return grad")  # buggy/mlp/softmax-ce-grad-not-averaged
POINTS = {"linear-forward": 1, "linear-backward": 2, "linear-step": 1, "relu-forward": 1, "relu-backward": 1,
          "softmax-ce-forward": 1, "softmax-ce-backward": 2, "training": 2}


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in nbgrader_environ().items() if k != "DLDIY_COURSE"}  # found from the notebook's folder
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=" + str(course)],
                         cwd=course, capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def _filled(released: Path, bug: bool = False) -> dict:
    """The handed-out notebook with each solution cell replaced by the solved notebook's cell of that
    class (as a student fills it in); the download line left out (no network in a test)."""
    solved = {c.source.split("\n")[0]: c.source for c in nbformat.read(str(SOLUTION), as_version=4).cells
              if c.cell_type == "code"}
    nb = nbformat.read(str(released), as_version=4)
    filled = 0
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solved[cell.source.split("\n")[0]]
            filled += 1
        cell.source = "\n".join(line for line in cell.source.split("\n") if not line.startswith("!wget"))
        if bug:
            cell.source = cell.source.replace(*BUG)
    assert filled == 3
    return nbformat.writes(nb)


def _submit(course: Path, student: str, text: str) -> None:
    target = course / "submitted" / student / "mlp" / "mlp.ipynb"
    target.parent.mkdir(parents=True)
    target.write_text(text)


def _scores(course: Path, students: list[str]) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s: {g.name: g.auto_score for g in gb.find_submission_notebook("mlp", "mlp", s).grades}
                for s in students}


def _outputs(cell) -> str:
    text = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) +
                   "\n".join(o.get("traceback", [])) for o in cell.get("outputs", []))
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.slow  # nbgrader's own generate_assignment and autograde (three kernels), end to end
def test_nbgrader_autogrades_an_own_course_exercise_out_of_the_box(tmp_path):
    course = tmp_path / "nbcourse"
    result = run_dldiy("--course", str(COURSE), "release", "--nbgrader", str(course))
    assert result.returncode == 0, result.stderr
    assert "with dldiy.toml, exercises/mlp/, data/ beside the notebook" in result.stdout, result.stdout
    source = course / "source" / "mlp"
    files = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    # What the locked cell needs, as the student bundle carries it: never reference/, buggy/, the
    # instructor-only equivalents, nor a second notebook (nbgrader would take it for an assignment's).
    assert files == ["data/blobs.csv", "dldiy.toml", "exercises/mlp/data/blobs.csv", "exercises/mlp/expected.json",
                     "exercises/mlp/harness.py", "exercises/mlp/spec.toml", "mlp.ipynb"], files
    assert (source / "exercises/mlp/spec.toml").read_bytes() == (COURSE / "exercises/mlp/spec.toml").read_bytes()
    # The grade cells read the locked cell's result through dldiy, not through a notebook variable.
    nb = nbformat.read(str(source / "mlp.ipynb"), as_version=4)
    grade_cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.source.split("\n")[-1] for c in grade_cells] == [f'autograded("mlp").require("{name}")' for name in POINTS]

    _nbgrader(course, "generate_assignment", "mlp")
    handout = course / "release" / "mlp"
    assert (handout / "dldiy.toml").is_file() and (handout / "data" / "blobs.csv").is_file()
    assert "### BEGIN SOLUTION" not in (handout / "mlp.ipynb").read_text()
    _submit(course, "alice", _filled(handout / "mlp.ipynb"))
    _submit(course, "bob", _filled(handout / "mlp.ipynb", bug=True))
    # A submission's own copy of the course is not what grades it: nbgrader copies the source's over it.
    (course / "submitted" / "bob" / "mlp" / "dldiy.toml").write_text("[course]\ntitle = 'mine'\n")
    _nbgrader(course, "autograde", "mlp")
    scores = _scores(course, ["alice", "bob"])
    assert scores["alice"] == POINTS, scores
    # The grad not averaged: the backward's points, and the training's (the loop diverges); each cell's
    # points are what `dldiy check` gives the same notebook (its [cells] training check included).
    assert scores["bob"] == {**POINTS, "softmax-ce-backward": 0, "training": 0}, scores
    for student in ("alice", "bob"):
        cli = run_dldiy("--course", str(COURSE), "check", "mlp", str(course / "submitted" / student / "mlp" / "mlp.ipynb"),
                        "--json")
        assert {c["name"]: c["points"] for c in json.loads(cli.stdout)["checks"]} == scores[student], cli.stdout
    autograded = json.loads((course / "autograded" / "bob" / "mlp" / "mlp.ipynb").read_text())
    failed = [_outputs(c) for c in autograded["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade_id") == "softmax-ce-backward"]
    assert "AssertionError: softmax-ce-backward: fail" in failed[0], failed

    # The layout of the trial that gave everyone 0: the course is not beside the notebook. The locked cell
    # says why in one line, and each grade cell fails with that reason, not a NameError.
    shutil.rmtree(source / "exercises")
    (source / "dldiy.toml").unlink()
    _submit(course, "carol", _filled(handout / "mlp.ipynb"))
    _nbgrader(course, "autograde", "mlp", "--student", "carol")
    assert set(_scores(course, ["carol"])["carol"].values()) == {0}
    cells = json.loads((course / "autograded" / "carol" / "mlp" / "mlp.ipynb").read_text())["cells"]
    (locked,) = [_outputs(c) for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == "dldiy-run-checks"]
    assert "unknown exercise 'mlp'" in locked and "--course" in locked and "Traceback" not in locked, locked
    graded = [_outputs(c) for c in cells if c["metadata"].get("nbgrader", {}).get("grade")]
    assert len(graded) == len(POINTS) and not any("NameError" in g for g in graded), graded
    assert all("no points: the autograder cell under \"Check everything\" could not run the checks: SpecError: "
               "unknown exercise 'mlp'" in g for g in graded), graded[0]


def test_release_nbgrader_refuses_an_exercise_without_a_source_notebook(tmp_path):
    """A .py exercise with no reference/<id>/source.ipynb: nbgrader's copy would be stubs without solution
    cells; release says so and writes nothing."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    (course / "exercises" / "mlp" / "spec.toml").write_text(
        (course / "exercises" / "mlp" / "spec.toml").read_text().replace('entry = "mlp.ipynb"', 'entry = "mlp.py"'))
    shutil.rmtree(course / "exercises" / "mlp" / "template")
    (course / "exercises" / "mlp" / "template").mkdir()
    (course / "exercises" / "mlp" / "template" / "mlp.py").write_text(
        'def relu(x):\n    raise NotImplementedError("mlp: implement relu(x)")\n')
    (course / "reference" / "mlp" / "source.ipynb").unlink()
    (course / "reference" / "mlp" / "mlp.py").write_text("def relu(x):\n    return x * (x > 0)\n")
    out = tmp_path / "nbcourse"
    result = run_dldiy("--course", str(course), "release", "--nbgrader", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("mlp has no source notebook (reference/mlp/source.ipynb), only its starting files, so nbgrader's copy "
            "would hand out the stubs with no solution cells") in result.stderr, result.stderr
    assert not out.exists()


def test_grade_cells_say_why_when_the_autograder_cell_could_not_run(monkeypatch, capsys, tmp_path):
    """The grade cells read the locked cell's result through dldiy: a locked cell that never ran, or could
    not find the exercise, makes each grade cell fail with that reason; a part's check() of an unknown
    exercise is one line and a result that grades nothing."""
    import dldiy.incheck
    from dldiy import check
    from dldiy.incheck import autograded

    monkeypatch.setattr(dldiy.incheck, "_inside_grading_child", lambda: False)
    monkeypatch.setattr(dldiy.incheck, "_AUTOGRADED", {})
    monkeypatch.delenv("DLDIY_COURSE", raising=False)
    monkeypatch.chdir(tmp_path)  # no dldiy.toml here or above
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(AssertionError, match=r'training: no points: the autograder cell under "Check everything" '
                                             r'\(check\("mlp", autograde=True\)\) has not run in this kernel'):
        autograded("mlp").require("training")
    result = check("mlp", autograde=True)
    said = capsys.readouterr().out
    assert "dldiy: unknown exercise 'mlp'" in said and "--course DIR" in said, said
    assert result.score == 0 and "unknown exercise 'mlp'" in repr(result)
    with pytest.raises(AssertionError, match="training: no points: the autograder cell under \"Check everything\" "
                                             "could not run the checks: SpecError: unknown exercise 'mlp'"):
        autograded("mlp").require("training")
    monkeypatch.delenv("NBGRADER_EXECUTION")
    with pytest.raises(AssertionError, match="linear-step: no points: SpecError: unknown exercise 'mlp'"):
        check("mlp", "linear-step").require("linear-step")
