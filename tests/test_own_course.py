"""An instructor's own course (tests/courses/mlp_numpy): a notebook pair in a real course's style, graded
without rewriting it. Real CLI, real sandboxed children, real notebooks."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, run_dldiy

COURSE = REPO / "tests" / "courses" / "mlp_numpy"
EMPTY, SOLUTION = COURSE / "notebooks" / "mlp.ipynb", COURSE / "notebooks" / "mlp_solution.ipynb"
SOFTMAX_STUB = '''class SoftmaxCrossEntropy:
    def forward(self, logits, y):
        # YOUR CODE HERE (a stub holding only comments: this cell does not parse)

    def backward(self):
        # YOUR CODE HERE
'''


def _check(path: Path, *args: str) -> dict:
    result = run_dldiy("check", "--course", str(COURSE), "mlp", str(path), "--json", *args)
    return json.loads(result.stdout)


def _assessed(check_json, path: Path) -> dict:
    """_check's report, assessed in-process through the session's fork server (conftest.check_json)."""
    return check_json("mlp", path, course=COURSE)[0]


def _statuses(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def half_done(folder: Path) -> Path:
    """Linear and ReLU finished; SoftmaxCrossEntropy a comment-only stub (a SyntaxError for its cell)."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("class SoftmaxCrossEntropy"))
    cell.source = SOFTMAX_STUB
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / "mlp.ipynb"))
    return folder / "mlp.ipynb"


def test_the_solution_gets_full_marks_from_outside_the_course_folder(tmp_path):
    report = _check(SOLUTION)
    assert report["score"] == report["max_score"] == 11, report
    assert set(_statuses(report).values()) == {"pass"}


def test_a_half_done_notebook_keeps_the_points_of_its_finished_part(tmp_path, check_json):
    report = _assessed(check_json, half_done(tmp_path / "alice"))
    statuses = _statuses(report)
    assert report["load_error"] is None
    assert {n for n, s in statuses.items() if s == "pass"} == {
        "linear-forward", "linear-backward", "linear-step", "relu-forward", "relu-backward"}
    assert report["score"] == 6 and report["max_score"] == 11
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["softmax-ce-backward"]["message"] == (  # the check names the cell that did not parse
        "seed 1: `SoftmaxCrossEntropy` is not defined: cell 5 did not parse at load (SyntaxError) (see the skipped cells)")
    assert statuses["training"] == "error"
    assert any(s.startswith("cell 5: SyntaxError") for s in report["skipped_lines"]), report["skipped_lines"]


def test_an_empty_notebook_loads_and_errors_check_by_check(check_json):
    report = _assessed(check_json, EMPTY)
    assert report["load_error"] is None and report["score"] == 0
    messages = [c["message"] for c in report["checks"]]
    assert all("NotImplementedError" in m for m in messages[:7]), messages


def test_a_bug_is_caught_with_a_message_that_names_it(tmp_path, check_json):
    folder = tmp_path / "bob"
    folder.mkdir()
    text = SOLUTION.read_text().replace('"        return grad / len(self.y)', '"        return grad')
    assert text != SOLUTION.read_text()
    (folder / "mlp.ipynb").write_text(text)
    report = _assessed(check_json, folder / "mlp.ipynb")
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["softmax-ce-backward"]["status"] == "fail"
    message = by_name["softmax-ce-backward"]["message"]
    assert "SoftmaxCrossEntropy input" in message and "constant 5" in message, message
    assert by_name["softmax-ce-forward"]["status"] == "pass" and by_name["linear-backward"]["status"] == "pass"


def test_the_course_is_found_like_pytests_root_and_builtin_stays_the_default():
    inside = run_dldiy("list", cwd=COURSE / "exercises" / "mlp")  # a dldiy.toml two folders up
    assert inside.returncode == 0 and "mlp" in inside.stdout and "exercise-1" not in inside.stdout
    builtin = run_dldiy("list")
    assert "exercise-1" in builtin.stdout and "Homework 2" not in builtin.stdout
    wrong = run_dldiy("list", "--course", str(REPO / "docs"))
    assert wrong.returncode == 2 and "no dldiy.toml" in wrong.stderr


def test_validate_runs_on_the_external_course():
    result = run_dldiy("--course", str(COURSE), "validate", "-j", "2")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 bugged variant(s) caught" in result.stdout


@pytest.mark.slow  # 30 notebooks, end to end
def test_grade_30_notebooks_with_two_jobs(tmp_path):
    """Solutions, half-done and empty notebooks in one class: each gets its own score (the rate is
    measured by benchmarks/course_grade.py)."""
    subs = tmp_path / "submissions"
    for i in range(30):
        kind = ("solution", "half", "empty")[i % 3]
        folder = subs / f"student{i:02d}-{kind}"
        if kind == "half":
            half_done(folder)
        else:
            folder.mkdir(parents=True)
            shutil.copy(SOLUTION if kind == "solution" else EMPTY, folder / "mlp.ipynb")
    result = run_dldiy("grade", "--course", str(COURSE), "mlp", str(subs), "--out", str(tmp_path / "out"),
                       "--jobs", "2", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "out" / "gradebook.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30
    want = {"solution": 11.0, "half": 6.0, "empty": 0.0}
    for row in rows:
        assert float(row["total"]) == want[row["student"].split("-")[1]], row


def _course_requiring(tmp_path, requirements: str) -> Path:
    """A copy of the test course whose spec's requirements line is `requirements`."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    spec = course / "exercises" / "mlp" / "spec.toml"
    spec.write_text(spec.read_text().replace('requirements = ["matplotlib", "numpy"]', f"requirements = {requirements}"))
    return course


def _validate_and_grade_refuse(course: Path, tmp_path, line: str) -> None:
    """Both stop before any work, exit 2, with `line` alone on stderr."""
    for args in (["validate"], ["grade", "mlp", str(course / "notebooks"), "--out", str(tmp_path / "out")]):
        result = run_dldiy("--course", str(course), *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.strip().splitlines() == [line]


def test_missing_requirements_stop_grade_and_validate_in_one_line(tmp_path):
    course = _course_requiring(tmp_path, '["matplotlib", "dldiy-no-such-package"]')
    _validate_and_grade_refuse(course, tmp_path, "dldiy: mlp needs dldiy-no-such-package, not installed here "
                               "(the spec's requirements): pip install dldiy-no-such-package")


def test_a_requirement_installed_at_the_wrong_version_stops_grade_and_validate_in_one_line(tmp_path):
    """`numpy>=99` is not met by the numpy installed here: the version counts, not only the name."""
    import importlib.metadata

    numpy = importlib.metadata.version("numpy")
    course = _course_requiring(tmp_path, '["matplotlib>=3.5", "numpy>=99"]')
    _validate_and_grade_refuse(course, tmp_path, f"dldiy: mlp: numpy {numpy} is installed, the exercise needs "
                               "numpy>=99 (the spec's requirements): pip install 'numpy>=99'")
    spec = course / "exercises" / "mlp" / "spec.toml"
    spec.write_text(spec.read_text().replace('"numpy>=99"', f'"numpy=={numpy}", "scikit-learn>=1.0,<99"'))
    from dldiy.graders.course.exercise import load_exercise_dir, unmet_requirements

    assert unmet_requirements(load_exercise_dir(course / "exercises" / "mlp")) == []
    spec.write_text(spec.read_text().replace(f'"numpy=={numpy}"', '"numpy=>1.24"'))  # a typo is refused, never "met"
    result = run_dldiy("--course", str(course), "validate")
    assert result.returncode == 2 and "requirements: 'numpy=>1.24' is not a requirement" in result.stderr, result.stderr


@pytest.mark.parametrize("spec, version, met", [
    (">=1.24", "2.1.0", True), (">=99", "2.1.0", False), ("<2", "2.0.0rc1", False), ("<2", "1.26.4", True),
    ("<2.0.0rc2", "2.0.0rc1", True), ("==2.1.*", "2.1.3", True), ("==2.1.*", "2.10.0", False), ("!=2.1.*", "2.2", True),
    ("~=2.1", "2.9", True), ("~=2.1", "3.0", False), ("~=2.1.3", "2.1.9", True), ("~=2.1.3", "2.2.0", False),
    ("==2.1", "2.1.0", True), ("==2.1", "2.1.0+cpu", True), ("==2.1+cu121", "2.1.0+cpu", False), (">2.1", "2.1.post1", False),
    (">2.1", "2.1.1", True), (">2.1a1", "2.1", True), (">=2.1", "2.1rc1", False), (">=2.1rc1", "2.1rc1", True),
    (">=1.0.dev0", "1.0a1", True), (">=1.24,<2", "1.26.4", True), (">=1.24,<2", "2.0", False), ("===2.1", "2.1", True),
    (">=1!0", "2.1", False), ("", "0.0.1", True), (">=2", "(of unknown version)", False),
])
def test_a_requirement_judges_the_installed_version_as_pep_440_does(spec, version, met):
    """The specifiers are read as pip reads them (packaging), an installed pre-release admitted."""
    from dldiy.graders.course.requirements import parse_requirement

    assert parse_requirement(f"numpy{spec}").satisfied_by(version) is met


def test_limits_from_the_command_line_override_the_spec(tmp_path):
    # the runner waits for the load and the first check together: both limits are set here. The load
    # takes 0.5 s for sure (a definition whose default argument sleeps: definitions mode runs it), so
    # that a loaded machine cannot make it beat the limit.
    slow = nbformat.read(str(SOLUTION), as_version=4)
    slow.cells.append(nbformat.v4.new_code_cell("def _slow_to_define(pause=__import__('time').sleep(0.5)):\n    pass\n"))
    path = tmp_path / "mlp.ipynb"
    nbformat.write(slow, str(path))
    report = _check(path, "--load-timeout", "0.05", "--check-timeout", "0.001", "--memory", "1GiB")
    assert "did not finish loading within 0.05 s" in (report["load_error"] or ""), report
    assert "did not finish loading" not in (_check(path, "--load-timeout", "20")["load_error"] or "")


def test_authoring_the_course_takes_at_most_150_lines_of_spec_and_harness():
    folder = COURSE / "exercises" / "mlp"
    lines = sum(len((folder / name).read_text().splitlines()) for name in ("spec.toml", "harness.py"))
    assert lines <= 150, lines


def test_new_scaffolds_an_exercise_whose_checks_run(tmp_path):
    """`dldiy new` from the pair: template = the empty notebook, reference = the solution with regions
    around exactly what the empty one lacks, and the scaffolded gradchecks pass on the solution."""
    result = run_dldiy("new", "hw", "--from", str(EMPTY), "--solution", str(SOLUTION), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dldiy.toml").is_file() and "7 solution region(s)" in result.stdout
    template = nbformat.read(str(tmp_path / "exercises" / "hw" / "template" / "mlp.ipynb"), as_version=4)
    assert [c.source for c in template.cells] == [c.source for c in nbformat.read(str(EMPTY), as_version=4).cells]
    from dldiy.graders.course.notebook import solution_code, strip_solutions

    reference = nbformat.read(str(tmp_path / "reference" / "hw" / "source.ipynb"), as_version=4)
    solution = nbformat.read(str(SOLUTION), as_version=4)
    assert [solution_code(c.source) for c in reference.cells] == [c.source for c in solution.cells]
    stripped = [strip_solutions(c.source)[0] for c in reference.cells if c.cell_type == "code"]
    assert stripped == [c.source for c in template.cells if c.cell_type == "code"]  # stubs where the empty has them
    spec = (tmp_path / "exercises" / "hw" / "spec.toml").read_text()
    assert 'load = "definitions"' in spec and '"matplotlib"' in spec and 'train = { contains = "in range(n_epochs):" }' in spec
    before = json.loads(run_dldiy("check", "hw", str(SOLUTION), "--json", cwd=tmp_path).stdout)
    assert all("must run `dldiy record`" in c["message"] for c in before["checks"]), before  # the instructor's step
    assert run_dldiy("record", "hw", cwd=tmp_path).returncode == 0
    check = run_dldiy("check", "hw", str(SOLUTION), "--json", cwd=tmp_path)
    report = json.loads(check.stdout)
    assert len(report["checks"]) == 3 and report["score"] == report["max_score"] == 3, report


# Integrity round 14 against the scaffold: backwards that agree with finite differences of the student's own
# forward, without being the layer's gradient. Each edit of the solution's Linear cell.
LINEAR_FORWARD = "        self.x = x\n        return x @ self.W + self.b\n"
LINEAR_BACKWARD = "        self.dW = self.x.T @ grad_out\n        self.db = grad_out.sum(axis=0)\n        return grad_out @ self.W.T\n"
NOT_BY_HAND = {
    # every output and gradient 0: nothing moves, 0 = 0
    "all-zero": (LINEAR_FORWARD, "        self.x = x\n        return np.zeros((len(x), self.W.shape[1]))\n",
                 LINEAR_BACKWARD, "        self.dW = np.zeros_like(self.W)\n        self.db = np.zeros_like(self.b)\n"
                                  "        return np.zeros_like(self.x)\n"),
    # a forward that answers zeros once backward() ran, a backward of zeros
    "stateful": (LINEAR_FORWARD, "        self.x = x\n        if getattr(self, 'done', False):\n"
                                 "            return np.zeros((len(x), self.W.shape[1]))\n        return x @ self.W + self.b\n",
                 LINEAR_BACKWARD, "        self.done = True\n        self.dW = np.zeros_like(self.W)\n"
                                  "        self.db = np.zeros_like(self.b)\n        return np.zeros_like(self.x)\n"),
    # finite differences of its own forward for every gradient
    "differences": (LINEAR_BACKWARD, """        def objective():
            return float(np.sum((self.x @ self.W + self.b) * grad_out))
        grads = []
        for value in (self.x, self.W, self.b):
            g = np.zeros_like(value)
            for i in np.ndindex(value.shape):
                keep = value[i]
                value[i] = keep + 1e-6
                up = objective()
                value[i] = keep - 1e-6
                down = objective()
                value[i] = keep
                g[i] = (up - down) / 2e-6
            grads.append(g)
        self.dW, self.db = grads[1], grads[2]
        return grads[0]
""", LINEAR_FORWARD, LINEAR_FORWARD),
}


@pytest.mark.parametrize("attack, said", [("all-zero", "your forward is not the layer's"),
                                          ("stateful", "gave other values the second time"),
                                          ("differences", "finite differences of the forward")])
def test_the_scaffolds_gradchecks_hold_a_backward_to_the_references_gradient(tmp_path, attack, said):
    assert run_dldiy("new", "hw", "--from", str(EMPTY), "--solution", str(SOLUTION), cwd=tmp_path).returncode == 0
    assert run_dldiy("record", "hw", cwd=tmp_path).returncode == 0
    nb = nbformat.read(str(SOLUTION), as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("class Linear"))
    first_old, first_new, second_old, second_new = NOT_BY_HAND[attack]
    for old, new in ((first_old, first_new), (second_old, second_new)):
        assert cell.source.count(old) == 1, old
        cell.source = cell.source.replace(old, new)
    nbformat.write(nb, str(tmp_path / "attack.ipynb"))
    report = json.loads(run_dldiy("check", "hw", str(tmp_path / "attack.ipynb"), "--json", cwd=tmp_path).stdout)
    linear = next(c for c in report["checks"] if c["name"] == "linear-backward")
    assert linear["status"] in ("fail", "error") and said in linear["message"], linear
    assert report["score"] == 2, report  # ReLU's and the loss's own points stay


def test_mutants_of_a_notebook_edit_only_its_solution_regions():
    from dldiy.graders.mutation.analysis import mutants_of
    from dldiy.graders.course.notebook import solution_lines

    text = (COURSE / "reference" / "mlp" / "source.ipynb").read_text()
    mutants = mutants_of(text, "source.ipynb")
    assert len(mutants) >= 20
    code = [c for c in json.loads(text)["cells"] if c["cell_type"] == "code"]
    for m in mutants:
        nb = json.loads(m.source)  # still a notebook, never mutated JSON
        cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        changed = [i for i, (a, b) in enumerate(zip(code, cells), 1) if "".join(a["source"]) != "".join(b["source"])]
        assert changed == [m.cell]
        assert m.line in solution_lines("".join(code[m.cell - 1]["source"]))
        assert m.diff(text).startswith(f"--- reference/source.ipynb[cell {m.cell}]")


@pytest.mark.parametrize("mode", ["all", "definitions"])
def test_load_modes_tags_and_shipped_data(tmp_path, monkeypatch, mode):
    """In process: 'all' runs the data cell (reading the shipped file, the !wget skipped); skip_tags
    leaves a tagged cell out; named cells wait for the harness. (The plot cell raises here, its losses
    kept back with the training cell: test_with_load_all_the_plot_cell_runs_headless... draws it.)"""
    from dldiy.graders.sandbox.submission import CELL_RUNNER, load

    nb = nbformat.read(str(SOLUTION), as_version=4)
    slow = next(c for c in nb.cells if c.source.startswith("out = X_train"))
    slow.metadata["tags"] = ["slow"]
    next(c for c in nb.cells if "for epoch in" in c.source).metadata["tags"] = ["train"]
    nbformat.write(nb, str(tmp_path / "mlp.ipynb"))
    monkeypatch.chdir(tmp_path)
    train = {"tag": "train"} if mode == "all" else {"contains": "for epoch in range(n_epochs)"}
    settings = {"mode": mode, "skip_tags": ["slow"], "cells": {"train": train},
                "data": "data", "data_dir": str(COURSE / "exercises" / "mlp" / "data")}
    loaded = load(tmp_path / "mlp.ipynb", settings)
    names = vars(loaded.module)
    assert "Linear" in names and "model" not in names and "out" not in names
    assert ("X_train" in names) == (mode == "all") and (tmp_path / "data" / "blobs.csv").is_file()
    import numpy as np

    data = {"X_train": np.zeros((4, 2)), "y_train": np.zeros(4, dtype=int)} if mode == "definitions" else {}
    got = names[CELL_RUNNER](["train"], {"n_epochs": 3, **data}, ["losses"], 0)
    assert len(got["losses"]) == 3 and "losses" not in vars(loaded.module)


def test_start_record_release_and_mutate_work_on_the_external_course(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    (course / "exercises" / "mlp" / "expected.json").unlink()
    assert run_dldiy("record", "mlp", cwd=course).returncode == 0
    assert json.loads((course / "exercises" / "mlp" / "expected.json").read_text())["checks"]["linear-forward"]
    start = run_dldiy("--course", str(course), "start", "mlp", str(tmp_path / "alice"))
    assert start.returncode == 0 and (tmp_path / "alice" / "mlp.ipynb").read_bytes() == \
        (course / "exercises" / "mlp" / "template" / "mlp.ipynb").read_bytes()
    # the data beside the notebook, as grading's working copy has it: its data cell reads it offline
    # (course6 trial: only the notebook was written, and its data cell went to the network)
    assert (tmp_path / "alice" / "data" / "blobs.csv").read_bytes() == \
        (course / "exercises" / "mlp" / "data" / "blobs.csv").read_bytes()
    assert "alice/data/ (the exercise's data)" in start.stdout
    release = run_dldiy("release", str(tmp_path / "bundle"), cwd=course)
    assert release.returncode == 0, release.stderr
    handed = nbformat.read(str(tmp_path / "bundle" / "mlp" / "mlp.ipynb"), as_version=4)
    assert "self.dW = self.x.T @ grad_out" not in json.dumps(handed.cells)
    # the instructor's empty notebook, the one `dldiy start` handed alice (course7 trial F7)
    assert (tmp_path / "bundle" / "mlp" / "mlp.ipynb").read_bytes() == (tmp_path / "alice" / "mlp.ipynb").read_bytes()
    assert "# YOUR CODE HERE" in json.dumps(handed.cells)
    mutate = run_dldiy("mutate", "mlp", "--limit", "2", "--json", "-j", "2", cwd=course)
    report = json.loads(mutate.stdout)[0]
    assert report["mutants"] == 2 and all("source.ipynb[cell" in m["id"] for m in report["mutants_detail"])


def test_a_student_checks_their_notebook_inside_the_released_bundle(tmp_path):
    """`dldiy release` of the course writes a bundle that is a course of its own: a dldiy.toml and
    exercises/ (spec, harness, expected values, template, data; never reference/, buggy/ or the
    instructor's equivalents), beside the wheel, whose exercises are only dldiy's built-in ones. A student
    who unpacks it, installs dldiy (here: this interpreter's, nothing new installed) and runs `dldiy
    check mlp` in it, or in the exercise's folder, is checked on the notebook they work in."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    (course / "exercises" / "mlp" / "equivalents.toml").write_text("# the instructor's reviewed mutants\n")
    bundle = tmp_path / "bundle"
    release = run_dldiy("release", str(bundle), cwd=course)
    assert release.returncode == 0, release.stderr
    assert sorted(str(p.relative_to(bundle)) for p in (bundle / "exercises").rglob("*") if p.is_file()) == [
        "exercises/mlp/data/blobs.csv", "exercises/mlp/expected.json", "exercises/mlp/harness.py",
        "exercises/mlp/spec.toml", "exercises/mlp/template/mlp.ipynb"]
    assert (bundle / "exercises" / "mlp" / "data" / "blobs.csv").read_bytes() == \
        (COURSE / "exercises" / "mlp" / "data" / "blobs.csv").read_bytes()
    # and beside the notebook the student works in, whose own data cell reads data/blobs.csv
    assert sorted(p.name for p in (bundle / "mlp").iterdir()) == ["data", "expected.json", "mlp.ipynb"]
    assert (bundle / "mlp" / "data" / "blobs.csv").read_bytes() == \
        (COURSE / "exercises" / "mlp" / "data" / "blobs.csv").read_bytes()
    assert "MLP from scratch" in (bundle / "dldiy.toml").read_text()
    assert not [p for p in bundle.rglob("*") if p.name in ("reference", "buggy", "source.ipynb", "bug.diff")]
    readme = (bundle / "README.md").read_text()
    assert readme.startswith("# MLP from scratch (a test course in the style of a real one): exercises\n")
    assert "run `dldiy check EXERCISE`" in readme and "`dldiy check mlp` checks `mlp/mlp.ipynb`" in readme
    assert "pip install matplotlib numpy" in readme  # the course's requirements

    env = {k: v for k, v in os.environ.items() if k != "DLDIY_COURSE"}  # found through the bundle's dldiy.toml only
    handed_out = json.loads(run_dldiy("check", "mlp", "--json", cwd=bundle, env=env).stdout)
    assert handed_out["load_error"] is None and handed_out["score"] == 0, handed_out
    shutil.copy(SOLUTION, bundle / "mlp" / "mlp.ipynb")  # the student's finished notebook, where they work
    for cwd in (bundle, bundle / "mlp"):
        result = run_dldiy("check", "mlp", "--json", cwd=cwd, env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        report = json.loads(result.stdout)
        assert report["score"] == report["max_score"] == 11, report


def test_the_leak_scan_reads_the_course_files_a_bundle_ships(tmp_path):
    """A solution line in a file of exercises/ that the bundle ships (here the harness, and a file of the
    shipped data) stops the release, naming where it was found; nothing is written."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    line = "        self.dW = self.x.T @ grad_out\n"
    assert line in (course / "reference" / "mlp" / "source.ipynb").read_text().replace('"', "").replace("\\n", "\n")
    harness = course / "exercises" / "mlp" / "harness.py"
    harness.write_text(harness.read_text() + "\n\ndef _peek(self, grad_out):\n" + line)
    (course / "exercises" / "mlp" / "data" / "notes.txt").write_text("Linear.backward:\n" + line)
    release = run_dldiy("release", str(tmp_path / "bundle"), cwd=course)
    assert release.returncode != 0
    assert "release stopped: reference code found in it" in release.stderr
    assert "exercises/mlp/harness.py: 'self.dW = self.x.T @ grad_out'" in release.stderr, release.stderr
    assert "exercises/mlp/data/notes.txt: 'self.dW = self.x.T @ grad_out'" in release.stderr, release.stderr
    assert not (tmp_path / "bundle").exists()


def test_the_shipped_data_is_read_only_to_the_submission(tmp_path):
    text = SOLUTION.read_text().replace(
        '"data = np.loadtxt(', '"open(\\"data/blobs.csv\\", \\"a\\").write(\\"1,1,1\\")\\n",\n    "data = np.loadtxt(', 1)
    (tmp_path / "mlp.ipynb").write_text(text)
    course = tmp_path / "course"  # a copy: without the sandbox's read-only mounts the write would land
    shutil.copytree(COURSE, course)
    result = run_dldiy("check", "--course", str(course), "mlp", str(tmp_path / "mlp.ipynb"), "--json", "--only",
                       "training")
    report = json.loads(result.stdout)
    assert report["checks"][0]["status"] == "error"
    message = report["checks"][0]["message"]
    assert ("Read-only file system: 'data/blobs.csv'" in message  # read-only mounts
            or "Permission denied: 'data/blobs.csv'" in message), report  # and an unprivileged uid


@pytest.mark.parametrize("bug", [False, True])
def test_gradcheck_layer_on_a_torch_layer_with_a_hand_written_backward(bug):
    """The helper is framework-agnostic: a torch layer (no autograd) with gradient attributes of its own naming."""
    import numpy as np
    import torch

    from dldiy.graders.course.exercise import Check
    from dldiy.graders.kinds.gradcheck import judge
    from dldiy.graders.layers import gradcheck_layer

    class Affine:
        def __init__(self):
            self.weight, self.bias = torch.randn(3, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)

        def forward(self, x):
            self.x = x
            return x @ self.weight + self.bias

        def backward(self, g):
            self.weight_grad = self.x.T @ g * (2 if bug else 1)
            self.bias_grad = g.sum(0)
            return g @ self.weight.T

    blocks = gradcheck_layer(Affine(), np.random.default_rng(0).standard_normal((4, 3)), name="Affine",
                             grads={"weight": "weight_grad", "bias": "bias_grad"}, framework="torch")
    assert [b["name"] for b in blocks["blocks"]] == ["Affine input", "Affine.weight", "Affine.bias"]
    verdict = judge(blocks, None, Check("g", "gradcheck", "g", 1.0))
    assert verdict.status == ("fail" if bug else "pass"), verdict.message
    if bug:
        assert "Affine.weight" in verdict.message and "constant 2" in verdict.message


def test_the_bundle_of_a_notebook_exercise_holds_one_notebook_under_its_entry_name(tmp_path, monkeypatch):
    """An exercise named apart from its notebook (`dldiy new hw --from mlp.ipynb`): the bundle's folder
    holds one notebook, the entry that `dldiy check` and `grade` look for, not the empty notebook beside
    a second, stubbed copy named after the exercise (a student working in that one would be graded on
    the untouched entry)."""
    from dldiy.graders.course.exercise import load_exercise_dir
    from dldiy.graders.course.release import stage_exercise

    made = run_dldiy("new", "hw", "--from", str(EMPTY), "--solution", str(SOLUTION), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    monkeypatch.setenv("DLDIY_COURSE", str(tmp_path))
    stage_exercise(load_exercise_dir(tmp_path / "exercises" / "hw"), tmp_path / "bundle" / "hw")
    assert sorted(p.name for p in (tmp_path / "bundle" / "hw").glob("*.ipynb")) == ["mlp.ipynb"]
    # the instructor's empty notebook, as `dldiy start` hands it out (course7 trial F7: not a copy regenerated
    # from the solution, whose stubs replaced the instructor's hints)
    assert (tmp_path / "bundle" / "hw" / "mlp.ipynb").read_bytes() == \
        (tmp_path / "exercises" / "hw" / "template" / "mlp.ipynb").read_bytes()


@pytest.mark.slow  # a timed-out check costs its child: about 10 s
def test_the_specs_check_timeout_and_memory_apply_and_the_command_line_overrides_them(tmp_path):
    """Linear.forward sleeps 0.6 s, ReLU.forward allocates 400 MB. The spec's timeout = 0.3 and
    memory = "300MiB" stop them; --check-timeout 20 --memory 2GiB lifts both for one run."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    spec = course / "exercises" / "mlp" / "spec.toml"
    text = spec.read_text()
    assert "timeout = 10  #" in text and 'memory = "2GiB"' in text
    spec.write_text(text.replace("timeout = 10  #", "timeout = 0.3  #").replace('memory = "2GiB"', 'memory = "300MiB"'))
    nb = nbformat.read(str(SOLUTION), as_version=4)
    for start, line in (("class Linear", "import time; time.sleep(0.6)"), ("class ReLU", "_big = np.ones(50_000_000)")):
        cell = next(c for c in nb.cells if c.source.startswith(start))
        assert cell.source.count("    def forward(self, x):\n") == 1
        cell.source = cell.source.replace("    def forward(self, x):\n", f"    def forward(self, x):\n        {line}\n")
    nbformat.write(nb, str(tmp_path / "mlp.ipynb"))
    only = ("--only", "linear-forward", "--only", "relu-forward")

    def run(*limits: str) -> dict:
        result = run_dldiy("check", "--course", str(course), "mlp", str(tmp_path / "mlp.ipynb"), "--json", *only, *limits)
        return {c["name"]: c for c in json.loads(result.stdout)["checks"]}

    by_spec = run()
    assert by_spec["linear-forward"]["status"] == "error", by_spec
    assert "did not finish within 0.3 s" in by_spec["linear-forward"]["message"]
    assert by_spec["relu-forward"]["status"] == "error" and "MemoryError" in by_spec["relu-forward"]["message"], by_spec
    lifted = run("--check-timeout", "20", "--memory", "2GiB")
    assert {n: c["status"] for n, c in lifted.items()} == {"linear-forward": "pass", "relu-forward": "pass"}, lifted


def test_a_cell_that_raises_at_load_costs_only_the_checks_that_need_it(tmp_path, check_json):
    """A cell that parses but raises while it runs (here ReLU's class body) is reported and left out:
    ReLU's checks and the training loop that uses it error, every other part keeps its points."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("class ReLU:\n"))
    cell.source = cell.source.replace("class ReLU:\n", "class ReLU:\n    scale = 1 / 0\n", 1)
    nbformat.write(nb, str(tmp_path / "mlp.ipynb"))
    report = _assessed(check_json, tmp_path / "mlp.ipynb")
    assert report["load_error"] is None
    statuses = _statuses(report)
    assert {n for n, s in statuses.items() if s != "pass"} == {"relu-forward", "relu-backward", "training"}, statuses
    assert set(statuses[n] for n in ("relu-forward", "relu-backward", "training")) == {"error"}
    assert report["score"] == 11 - 1 - 1 - 2
    assert any(s.startswith("cell 4 raised ZeroDivisionError") for s in report["skipped_lines"]), report["skipped_lines"]
    by_name = {c["name"]: c["message"] for c in report["checks"]}
    cause = "cell 4 raised ZeroDivisionError at load (see the skipped cells)"
    for name in ("relu-forward", "relu-backward"):  # the check says why ReLU is missing, not only that it is
        assert by_name[name] == f"seed 1: `ReLU` is not defined: {cause}", by_name
    assert f"NameError: name 'ReLU' is not defined: {cause}" in by_name["training"], by_name  # the loop's cell too


@pytest.mark.parametrize("mode, name, said", [
    ("all", "Scaler", "cell 2 raised ZeroDivisionError at load (see the skipped cells)"),  # it binds the name
    ("all", "norm", "cell 3 did not parse at load (SyntaxError) (see the skipped cells)"),
    ("all", "helper", "cell 3 did not parse at load (SyntaxError) (see the skipped cells)"),  # mentioned there
    # cell 5's NameError for Scaler is cell 2's consequence: cell 2 is named once, in its place
    ("all", "Missing", "no cell mentions it, and cell 2 raised ZeroDivisionError at load, cell 3 did not parse at "
                       "load (SyntaxError) and cell 4 raised NameError at load (see the skipped cells)"),
    ("all", "only_used", None),  # used by a cell that ran, never defined: no failed cell to blame
    ("all", "undefined_name", None),  # only the cell that stopped on it: its consequence, not its cause
    ("definitions", "Net", "cell 6 was left out from line 1 at load (definitions mode) (see the skipped cells)"),
])
def test_a_missing_name_is_traced_to_the_cell_that_failed_at_load(tmp_path, monkeypatch, mode, name, said):
    """In process: which failed cell a missing name is blamed on (submission.missing_cause), in the
    words the harness gives it (cause_text)."""
    from dldiy.graders.sandbox.submission import cause_text, load, missing_cause

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        "import numpy as np\nhidden = len('abc')",  # a call definitions mode does not run (int('3') it runs)
        "class Scaler:\n    factor = 1 / 0",
        "def norm(x:\n    return helper(x)\n\nclass Kept:\n    pass",
        "y = undefined_name + 1",
        "s = Scaler()",
        "class Net:\n    width = hidden * 2",
        "def f():\n    return only_used",
    )])
    nbformat.write(nb, str(tmp_path / "hw.ipynb"))
    monkeypatch.chdir(tmp_path)
    loaded = load(tmp_path / "hw.ipynb", {"mode": mode})
    assert "Kept" in vars(loaded.module) and "f" in vars(loaded.module)
    cause = missing_cause(loaded, name)
    assert (cause_text(cause) if cause else None) == said


def test_the_harness_words_only_a_well_formed_cause_from_the_students_process():
    """The cause crosses from the student's process as data; the harness words it, or drops it whole."""
    from dldiy.graders.sandbox.submission import cause_text

    assert cause_text({"cells": [[4, "raised", "ZeroDivisionError"]]}) == \
        "cell 4 raised ZeroDivisionError at load (see the skipped cells)"
    for junk in ("cell 4", {"cells": [[4, "raised", "ValueError: 0 points for you"]]}, {"cells": [["4", "raised", "E"]]},
                 {"cells": [[4, "confessed", "E"]]}, {"cells": [[4, "raised", "E" * 81]]}, {"cells": []}, None):
        assert cause_text(junk) == ""  # type: ignore[arg-type]


def test_with_load_all_the_plot_cell_runs_headless_and_leaves_no_figure_open(tmp_path, check_json):
    """load = "all" with no cell kept for the harness: the training loop and the plot cell run at load,
    plt.show() returns at once off-screen, and the figure is freed after its cell."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    spec = course / "exercises" / "mlp" / "spec.toml"
    text = spec.read_text()
    cells = 'data = { contains = "np.loadtxt" }\ntrain = { contains = "for epoch in range(n_epochs):" }\n'
    assert cells in text and 'load = "definitions"' in text
    spec.write_text(text.replace(cells, "").replace('load = "definitions"', 'load = "all"'))
    nb = nbformat.read(str(SOLUTION), as_version=4)
    plot = next(i for i, c in enumerate(nb.cells) if "plt.show()" in c.source)
    nb.cells.insert(plot + 1, nbformat.v4.new_code_cell(
        "import matplotlib\n"
        "assert len(losses) == n_epochs  # the loop ran at load\n"
        "assert matplotlib.get_backend().lower() == 'agg', matplotlib.get_backend()\n"
        "assert plt.get_fignums() == [], plt.get_fignums()"))
    nbformat.write(nb, str(tmp_path / "mlp.ipynb"))
    report = check_json("mlp", tmp_path / "mlp.ipynb", "linear-forward", course=course)[0]
    assert report["load_error"] is None and report["score"] == 1
    assert [s for s in report["skipped_lines"] if not s.split(": ", 1)[1].startswith("!")] == [], report["skipped_lines"]


def test_load_tags_select_cells_and_the_training_cell_runs_seeded(tmp_path, monkeypatch):
    """In process: with load_tags only the tagged cells run at load (here the imports and the three
    layer classes: not the data or hyperparameter cells). The training cell, run by the harness with
    its inputs, gives the same losses for the same seed and other losses for another seed."""
    import numpy as np

    from dldiy.graders.sandbox.submission import CELL_RUNNER, load

    nb = nbformat.read(str(SOLUTION), as_version=4)
    for cell in nb.cells:
        if cell.source.startswith(("import numpy", "class ")):
            cell.metadata["tags"] = ["graded"]
    nbformat.write(nb, str(tmp_path / "mlp.ipynb"))
    monkeypatch.chdir(tmp_path)
    settings = {"mode": "all", "load_tags": ["graded"], "cells": {"train": {"contains": "for epoch in range(n_epochs)"}}}
    names = vars(load(tmp_path / "mlp.ipynb", settings).module)
    assert {"np", "Linear", "ReLU", "SoftmaxCrossEntropy"} <= names.keys()
    assert not {"X_train", "lr", "n_epochs", "model", "losses"} & names.keys()
    rng = np.random.default_rng(0)
    inputs = {"X_train": rng.standard_normal((30, 2)), "y_train": rng.integers(0, 3, 30), "lr": 0.1, "n_epochs": 5,
              "hidden": 8}
    run = names[CELL_RUNNER]
    first, again, other = (run(["train"], inputs, ["losses"], seed)["losses"] for seed in (0, 0, 1))
    assert len(first) == 5 and first == again and first != other


def test_release_nbgrader_keeps_the_notebooks_cells_one_by_one(tmp_path):
    """release --nbgrader on the course: every cell of the reference notebook stays its own cell (its
    solution cells marked for nbgrader), then one autograder cell per check; never the notebook's JSON
    pasted into one cell."""
    import tomllib

    result = run_dldiy("--course", str(COURSE), "release", "--nbgrader", str(tmp_path))
    assert result.returncode == 0, result.stderr
    nb = nbformat.read(str(tmp_path / "source" / "mlp" / "mlp.ipynb"), as_version=4)
    reference = nbformat.read(str(COURSE / "reference" / "mlp" / "source.ipynb"), as_version=4)
    # nbgrader's copy adds, after each solution region, the stub naming the task (nbgrader's own stub is one
    # text for every region) and, where a function ends without a return, a `return` closing the region
    added = re.compile(r'^ *(raise NotImplementedError\("mlp: implement .*"\)|return  # the end of the solution.*)$')

    def without_added(source: str) -> str:
        return "\n".join(line for line in source.split("\n") if not added.match(line))

    assert [without_added(c.source) for c in nb.cells[:len(reference.cells)]] == [c.source for c in reference.cells]
    assert sum(len(re.findall(r'raise NotImplementedError\("mlp: implement', c.source)) for c in nb.cells) >= 3
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    spec = tomllib.loads((COURSE / "exercises" / "mlp" / "spec.toml").read_text())
    assert grade_ids == [c["name"] for c in spec["checks"]]  # one autograder cell per check
    solutions = [c.source.split("\n")[0] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions == ["class Linear:", "class ReLU:", "class SoftmaxCrossEntropy:"]
    assert not any('"cell_type"' in c.source for c in nb.cells)


def test_check_inside_a_real_kernel_judges_the_cells_the_spec_names_as_dldiy_check_does(tmp_path, monkeypatch):
    """In Jupyter, check() re-runs the kernel's definitions; the cells the spec names ([cells] data and
    train, run by the training check) are handed over as they were typed, the last run of each: the
    solved notebook gets what `dldiy check` gives the saved notebook, full marks (it lost the training
    check's points: "the notebook has no cell that the spec's cells.data selects")."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(SOLUTION), as_version=4)
    for cell in nb.cells:  # no network in a test: the data is there already (the `!mkdir` shell line stays)
        cell.source = "\n".join(line for line in cell.source.split("\n") if not line.startswith("!wget"))
    nb.cells.append(nbformat.v4.new_code_cell(
        'from dldiy import check\nresult = check("mlp", plots=False)\nimport json\n'
        'print("RESULT", json.dumps({c.name: c.points for c in result.report.checks}))'))
    shutil.copytree(COURSE / "exercises" / "mlp" / "data", tmp_path / "data")
    saved = tmp_path / "mlp.ipynb"
    nbformat.write(nb, str(saved))
    # What the kernel ran also holds a broken version of the data cell, since deleted from the notebook
    # (and the training loop run twice): the saved notebook's data cell is the one judged.
    data_cell = next(c for c in nb.cells if "np.loadtxt" in c.source)
    nb.cells.insert(nb.cells.index(data_cell), nbformat.v4.new_code_cell(
        'data = np.loadtxt("data/no-such-file.csv", delimiter=",")'))
    train_cell = next(c for c in nb.cells if "for epoch in range(n_epochs):" in c.source)
    nb.cells.insert(nb.cells.index(train_cell) + 1, nbformat.v4.new_code_cell(train_cell.source))
    monkeypatch.setenv("DLDIY_COURSE", str(COURSE))  # the kernel inherits it: the course, found
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    found = re.search(r"RESULT (\{.*\})", text)
    assert found, [o for o in nb.cells[-1].outputs]
    in_kernel = json.loads(found.group(1))
    cli = _check(saved)
    assert in_kernel == {c["name"]: c["points"] for c in cli["checks"]}, (in_kernel, text)
    assert sum(in_kernel.values()) == 11


def test_new_checks_only_the_layers_a_student_writes_and_builds_them_with_their_required_arguments():
    """Instructor trial: the scaffold built BatchNorm(3, 3, 3) (momentum and eps given 3) and gradchecked the
    classes the notebook hands out whole. Only a class holding a solution region gets a check, built with
    its required arguments."""
    import nbformat

    from dldiy.graders.course import notebook
    from dldiy.graders.course.scaffold import analyse, harness_text, spec_text

    given = "class Linear:\n    def __init__(self, n_in, n_out):\n        self.W = 0\n" \
            "    def forward(self, x):\n        return x\n    def backward(self, g):\n        self.dW = g\n        return g\n"
    written = (f"class BatchNorm:\n    def __init__(self, d, momentum=0.1, eps=1e-5):\n        self.gamma = 1\n"
               f"    def forward(self, x):\n        {notebook.BEGIN}\n        y = x\n        {notebook.END}\n        return y\n"
               f"    def backward(self, g):\n        self.dgamma = g\n        return g\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(given), nbformat.v4.new_code_cell(written)])
    found = analyse(nb)
    assert [(layer["name"], layer["args"], layer["given"]) for layer in found["layers"]] == \
        [("Linear", ["n_in", "n_out"], True), ("BatchNorm", ["d"], False)]
    harness, spec = harness_text("bn", found), spec_text("bn", "BN", "bn.ipynb", found)
    assert 'sub.get("BatchNorm")(3)' in harness and "Linear" not in harness
    assert 'name = "batch-norm-backward"' in spec and "linear" not in spec


def test_a_training_cell_whose_selected_line_changed_is_said_in_a_students_words(tmp_path):
    """An instructor's trial (round 13): a correct notebook whose training loop reads `for epoch in range(200):`
    lost the training check with "the notebook has no cell that the spec's cells.train selects", instructor
    jargon. It names the line the exercise looks for and what to do instead."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace("for epoch in range(n_epochs):", "for epoch in range(200):")
    saved = tmp_path / "mlp.ipynb"
    nbformat.write(nb, str(saved))
    shutil.copytree(COURSE / "exercises" / "mlp" / "data", tmp_path / "data")
    messages = [c["message"] for c in _check(saved)["checks"] if c["status"] != "pass"]
    assert any("contains 'for epoch in range(n_epochs):'" in m and "keep that cell as it was handed out" in m
               for m in messages), messages
    assert not any("cells.train" in m for m in messages), messages


def test_release_nbgrader_refuses_a_top_level_solution_region_in_one_line(tmp_path):
    """course6 trial: the training loop's body marked as a solution region (top-level code, as own-course.md's
    notebooks have it) stopped `dldiy release --nbgrader` with a Python traceback (SolutionRegionError). It
    is refused in one line that says why and what to do; the student bundle takes the notebook as it is."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    source = course / "reference" / "mlp" / "source.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    cell = next(c for c in nb.cells if "for epoch in range(n_epochs):" in c.source)
    cell.source = cell.source.replace("    grad = loss_fn.backward()\n",
                                      "    ### BEGIN SOLUTION\n    grad = loss_fn.backward()\n    ### END SOLUTION\n")
    nbformat.write(nb, str(source))
    result = run_dldiy("release", "--nbgrader", str(tmp_path / "nbg"), cwd=course)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: release --nbgrader stopped: mlp: a solution region outside any "
                                    "function"), result.stderr
    assert "leave mlp out: -e EXERCISE for the others" in result.stderr
    assert not (tmp_path / "nbg" / "source").exists()
    assert run_dldiy("release", str(tmp_path / "bundle"), cwd=course).returncode == 0


def test_an_exception_of_the_harness_itself_names_its_line(tmp_path):
    """course6 trial: a probe that raised (the instructor's own RuntimeError, writing the harness) read "the
    harness could not use what the submission returned (RuntimeError: ...)", the student's fault as far
    as it said. The message now names the harness's line, where the probe's own code raised."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    harness = course / "exercises" / "mlp" / "harness.py"
    text = harness.read_text()
    assert "def forward(sub, seed, p):\n" in text
    harness.write_text(text.replace("def forward(sub, seed, p):\n",
                                    "def forward(sub, seed, p):\n    raise RuntimeError('a mistake of mine')\n"))
    line = harness.read_text().split("\n").index("    raise RuntimeError('a mistake of mine')") + 1
    report = json.loads(run_dldiy("check", "mlp", str(SOLUTION), "--json", "--only", "linear-forward", cwd=course).stdout)
    assert report["checks"][0]["message"] == (
        "seed 1: the harness could not use what the submission returned (RuntimeError: a mistake of mine; raised "
        f"at harness.py line {line}, in forward)"), report["checks"][0]
