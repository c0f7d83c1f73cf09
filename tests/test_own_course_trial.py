"""What an instructor's trial of dldiy on their own course found (a LayerNorm autograd.Function notebook and
a plain-.py softmax regression): each fixed, proven here with the real command line on real files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, run_dldiy

COURSE = REPO / "tests" / "courses" / "mlp_numpy"
EMPTY, SOLUTION = COURSE / "notebooks" / "mlp.ipynb", COURSE / "notebooks" / "mlp_solution.ipynb"


def _gradebook(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_a_changed_exercise_regrades_the_batch_and_a_bare_regrade_keeps_its_seeds(tmp_path):
    """Instructor trial: after a change to the spec, `dldiy grade` said "resuming: 12 of 12 already graded"
    and kept the grades of the old spec; `--regrade` drew new hidden seeds without a word. The batch now
    records a hash of each file that decides a grade; a resumed run grades again, with the batch's seeds,
    whoever was graded under another version, and says which files changed. A bare --regrade keeps the
    batch's seeds, and says so; --hidden N draws new ones, and says that too."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SOLUTION, subs / "alice.ipynb")
    shutil.copy(EMPTY, subs / "bob.ipynb")
    out = tmp_path / "grades"
    args = ("grade", "mlp", str(subs), "--out", str(out), "--only", "linear-forward", "--only", "linear-backward",
            "-j", "2")
    first = run_dldiy(*args, cwd=course)
    assert first.returncode == 0, first.stderr
    batch = json.loads((out / "batch.json").read_text())
    seeds = batch["hidden_seeds"]
    assert {"exercises/mlp/spec.toml", "exercises/mlp/harness.py", "exercises/mlp/expected.json",
            "exercises/mlp/data/blobs.csv", "reference/mlp/source.ipynb"} <= set(batch["exercise_files"])
    assert not any("/template/" in name for name in batch["exercise_files"])  # the handout decides no grade
    assert _gradebook(out)["alice"]["total"] == "3"

    same = run_dldiy(*args, cwd=course)
    assert "resuming: 2 of 2 already graded" in same.stderr and "exercise changed" not in same.stderr

    spec = course / "exercises" / "mlp" / "spec.toml"
    text = spec.read_text()
    backward = text.index('name = "linear-backward"')
    spec.write_text(text[:backward] + text[backward:].replace("points = 2", "points = 4", 1))
    changed = run_dldiy(*args, cwd=course)
    assert changed.returncode == 0, changed.stderr
    assert ("the exercise changed since this batch graded it (exercises/mlp/spec.toml changed): grading again "
            "the 2 submission(s) graded under the old version, with the batch's hidden seeds") in changed.stderr
    assert "resuming" not in changed.stderr
    book = _gradebook(out)
    assert (book["alice"]["total"], book["alice"]["max"], book["bob"]["max"]) == ("5", "5", "5")
    assert json.loads((out / "batch.json").read_text())["hidden_seeds"] == seeds
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert {r["exercise_fingerprint"] for r in journal[-2:]} == \
        {json.loads((out / "batch.json").read_text())["exercise_fingerprint"]}
    assert "resuming: 2 of 2" in run_dldiy(*args, cwd=course).stderr  # and then it is settled

    again = run_dldiy(*args, "--regrade", cwd=course)
    assert again.returncode == 0, again.stderr
    assert f"grading everyone again with the batch's hidden seeds {', '.join(map(str, seeds))}" in again.stderr
    assert json.loads((out / "batch.json").read_text())["hidden_seeds"] == seeds
    redrawn = run_dldiy(*args, "--regrade", "--hidden", "1", cwd=course)
    assert redrawn.returncode == 0, redrawn.stderr
    now = json.loads((out / "batch.json").read_text())["hidden_seeds"]
    assert len(now) == 1 and f"grading everyone again with new hidden seeds {now[0]}; the batch had" in redrawn.stderr
