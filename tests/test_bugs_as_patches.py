"""Every bugged variant is a patch (buggy/<exercise>/<bug>/ = manifest.toml + bug.diff against the reference):
it applies, nothing else is there, `dldiy bug new` / `dldiy bug show` write and read one, and a patch
the reference has outgrown fails loudly instead of grading something else."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from conftest import REPO, run_dldiy

from dldiy.graders.course.bugs import build_bugged
from dldiy.graders.course.folders import CourseError, buggy_variants
from dldiy.graders.course.handout import read_files

EXERCISES = sorted(p.name for p in (REPO / "buggy").iterdir() if p.is_dir())
FOLDERS = sorted(p for p in (REPO / "buggy").glob("*/*") if p.is_dir())


@pytest.mark.parametrize("exercise", EXERCISES)
def test_every_variant_patch_applies_and_changes_the_reference(exercise, tmp_path):
    reference = read_files(REPO / "reference" / exercise)
    variants = buggy_variants(exercise)
    assert variants and {v.id for v in variants} == {p.name for p in (REPO / "buggy" / exercise).iterdir() if p.is_dir()}
    for v in variants:
        built = read_files(build_bugged(exercise, v.id, tmp_path / v.id))
        assert set(built) == set(reference), v.id  # a patch only modifies the reference's files
        assert [path for path in built if built[path] != reference[path]], f"{v.id}: its patch changes nothing"


def test_no_whole_copy_remains_in_buggy():
    assert len(FOLDERS) > 150
    for folder in FOLDERS:
        manifest = tomllib.loads((folder / "manifest.toml").read_text())
        assert manifest.get("patch") == "bug.diff", folder
        assert sorted(p.name for p in folder.iterdir()) == ["bug.diff", "manifest.toml"], folder
        assert manifest["description"] and (manifest.get("caught_by") or manifest.get("crashes_at")), folder


def _course(tmp_path: Path, *bugs: str) -> Path:
    """A checkout-like course: reference/exercise-1 and the named bugs of buggy/exercise-1."""
    course = tmp_path / "course"
    shutil.copytree(REPO / "reference" / "exercise-1", course / "reference" / "exercise-1")
    (course / "buggy" / "exercise-1").mkdir(parents=True)
    for bug in bugs:
        shutil.copytree(REPO / "buggy" / "exercise-1" / bug, course / "buggy" / "exercise-1" / bug)
    return course


def test_a_whole_copy_in_buggy_fails_validation_loudly_naming_its_folder(tmp_path, monkeypatch):
    course = _course(tmp_path, "gradient-sign")
    copy = course / "buggy" / "exercise-1" / "old-style-copy"
    shutil.copytree(REPO / "reference" / "exercise-1", copy)
    (copy / "manifest.toml").write_text('description = "a copy"\ncaught_by = ["gradcheck"]\n')
    monkeypatch.setenv("DLDIY_COURSE", str(course))
    with pytest.raises(CourseError, match="buggy/exercise-1/old-style-copy is a whole copy"):
        buggy_variants("exercise-1")
    result = run_dldiy("validate", "exercise-1")
    assert result.returncode == 2, result.stdout[-2000:]
    assert "buggy/exercise-1/old-style-copy is a whole copy" in result.stderr and "logreg.py" in result.stderr


def test_bug_new_then_bug_show_apply_round_trips(tmp_path, monkeypatch):
    course = _course(tmp_path)
    monkeypatch.setenv("DLDIY_COURSE", str(course))
    edited = tmp_path / "edited" / "logreg.py"
    edited.parent.mkdir()
    original = (course / "reference" / "exercise-1" / "logreg.py").read_text()
    edited.write_text(original.replace("return torch.logaddexp(torch.zeros_like(u), -u).mean()",
                                       "return torch.logaddexp(torch.zeros_like(u), -u).sum()"))
    result = run_dldiy("bug", "new", "exercise-1", "loss-sum", "--from", str(edited))
    assert result.returncode == 0, result.stderr
    folder = course / "buggy" / "exercise-1" / "loss-sum"
    assert sorted(p.name for p in folder.iterdir()) == ["bug.diff", "manifest.toml"]
    diff = (folder / "bug.diff").read_text()
    assert diff.startswith("--- a/logreg.py\n+++ b/logreg.py\n@@ ") and "+    return torch.logaddexp(torch.zeros_like(u), -u).sum()" in diff
    manifest = tomllib.loads((folder / "manifest.toml").read_text())
    assert manifest["patch"] == "bug.diff" and manifest["caught_by"] == [] and "TODO" in manifest["description"]

    shown = run_dldiy("bug", "show", "exercise-1", "loss-sum", "--apply", str(tmp_path / "built"))
    assert shown.returncode == 0, shown.stderr
    assert diff in shown.stdout and 'patch = "bug.diff"' in shown.stdout
    assert (tmp_path / "built" / "logreg.py").read_bytes() == edited.read_bytes()
    assert (tmp_path / "built" / "source.ipynb").read_bytes() == (course / "reference" / "exercise-1" / "source.ipynb").read_bytes()

    skeleton = run_dldiy("validate", "exercise-1")  # a skeleton would be validated like a correct submission
    assert skeleton.returncode == 2 and "loss-sum/manifest.toml: the description is still the skeleton" in skeleton.stderr
    again = run_dldiy("bug", "new", "exercise-1", "loss-sum", "--from", str(edited))
    assert again.returncode == 2 and "already exists" in again.stderr
    same = run_dldiy("bug", "new", "exercise-1", "no-change", "--from", str(course / "reference" / "exercise-1"))
    assert same.returncode == 2 and "identical to the reference" in same.stderr
    assert not (course / "buggy" / "exercise-1" / "no-change").exists()


def test_bug_new_and_show_work_for_an_external_course(tmp_path):
    course = tmp_path / "mlp_numpy"
    shutil.copytree(REPO / "tests" / "courses" / "mlp_numpy", course)
    edited = tmp_path / "edited"
    shutil.copytree(course / "reference" / "mlp", edited)
    notebook = edited / "source.ipynb"
    text = notebook.read_text()
    assert text.count("grad[np.arange(len(self.y)), self.y] -= 1") == 1
    notebook.write_text(text.replace("grad[np.arange(len(self.y)), self.y] -= 1", "grad[np.arange(len(self.y)), self.y] -= 2"))
    made = run_dldiy("bug", "new", "mlp", "minus-two", "--from", str(edited), "--course", str(course), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (course / "buggy" / "mlp" / "minus-two" / "bug.diff").is_file()
    shown = run_dldiy("--course", str(course), "bug", "show", "mlp", "minus-two", "--apply", str(tmp_path / "b"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "b" / "source.ipynb").read_bytes() == notebook.read_bytes()


def test_a_patch_the_reference_outgrew_fails_loudly(tmp_path, monkeypatch):
    """The reference changes the very line gradient-sign's patch edits: every way of building the bug
    says which bug and which hunk, none grades the reference or a half-patched file."""
    course = _course(tmp_path, "gradient-sign")
    reference = course / "reference" / "exercise-1" / "logreg.py"
    text = reference.read_text()
    old = "    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]\n"
    assert text.count(old) == 1
    reference.write_text(text.replace(old, "    return -(torch.sigmoid(-u) * t) @ Xt / len(X)\n"))
    monkeypatch.setenv("DLDIY_COURSE", str(course))
    with pytest.raises(CourseError, match=r"buggy/exercise-1/gradient-sign: logreg.py: hunk 1 .* does not apply"):
        build_bugged("exercise-1", "gradient-sign", tmp_path / "built")
    shown = run_dldiy("bug", "show", "exercise-1", "gradient-sign", "--apply", str(tmp_path / "built2"))
    assert shown.returncode == 2 and "buggy/exercise-1/gradient-sign: logreg.py: hunk 1" in shown.stderr
    validated = run_dldiy("validate", "exercise-1")
    assert validated.returncode == 2 and "buggy/exercise-1/gradient-sign" in validated.stderr, validated.stdout[-2000:]


def test_bug_new_from_a_students_executed_notebook_is_a_diff_of_the_code_alone(tmp_path):
    """course6 trial (F9): a student's executed notebook (the natural source of a realistic bug) made a
    361-line diff of outputs, execution counts, cell ids and metadata, dropped the solution markers, and
    had to be named like the source notebook. The edit is now read as code: the diff holds the changed
    line, the markers stay where they were, and any notebook name is matched to the source's."""
    import json

    course = tmp_path / "mlp_numpy"
    shutil.copytree(REPO / "tests" / "courses" / "mlp_numpy", course)
    source = json.loads((course / "reference" / "mlp" / "source.ipynb").read_text())
    student = json.loads(json.dumps(source))
    bug = ("grad[np.arange(len(self.y)), self.y] -= 1", "grad[np.arange(len(self.y)), self.y] -= 2")
    for n, cell in enumerate(student["cells"]):
        text = "".join(cell["source"])
        text = "\n".join(line for line in text.split("\n") if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
        cell["source"], cell["id"] = text.replace(*bug), f"student-{n}"  # as the student's saved copy has it
        cell["metadata"] = {"execution": {"iopub.status.busy": "2026-11-27T10:00:00Z"}, "trusted": True}
        if cell["cell_type"] == "code":
            cell["execution_count"] = n + 1
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": f"run {n}\n"}]
    student["metadata"]["widgets"] = {"state": {}}
    (tmp_path / "lab3_jane.ipynb").write_text(json.dumps(student))

    made = run_dldiy("bug", "new", "mlp", "minus-two", "--from", str(tmp_path / "lab3_jane.ipynb"), "--course",
                     str(course), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "note: lab3_jane.ipynb taken as the reference's source.ipynb" in made.stdout, made.stdout
    diff = (course / "buggy" / "mlp" / "minus-two" / "bug.diff").read_text()
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 2 and bug[0] in changed[0] and bug[1] in changed[1], diff

    shown = run_dldiy("--course", str(course), "bug", "show", "mlp", "minus-two", "--apply", str(tmp_path / "b"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    built = json.loads((tmp_path / "b" / "source.ipynb").read_text())
    want = json.loads((course / "reference" / "mlp" / "source.ipynb").read_text().replace(*bug))
    assert built == want  # the source's ids, outputs, metadata and markers, with the student's line
