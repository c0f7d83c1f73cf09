"""`dldiy check` takes what `dldiy grade` takes as one student's submission (a zip included), and an
unknown exercise says which course dldiy looked in and how to name another."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from conftest import REPO, run_dldiy

REFERENCE = REPO / "reference" / "exercise-1" / "logreg.py"
COURSE = REPO / "tests" / "courses" / "mlp_numpy"


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


def test_check_accepts_a_zip_as_grade_does(tmp_path):
    code = REFERENCE.read_text()
    for name, members in (("flat.zip", {"logreg.py": code}), ("nested.zip", {"alice/logreg.py": code})):
        result = run_dldiy("check", "exercise-1", str(_zip(tmp_path / name, members)), "--only", "gradcheck", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["submission"] == str(tmp_path / name) and report["checks"][0]["status"] == "pass", report


def test_check_refuses_a_zip_grade_refuses_in_one_line(tmp_path):
    unsafe = _zip(tmp_path / "evil.zip", {"../outside.py": "x = 1"})
    result = run_dldiy("check", "exercise-1", str(unsafe))
    assert result.returncode == 2 and result.stderr.startswith("dldiy: submission refused: "), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "outside.py").exists()
    (tmp_path / "junk.zip").write_text("not a zip")
    result = run_dldiy("check", "exercise-1", str(tmp_path / "junk.zip"))
    assert result.returncode == 2 and "is not a readable zip archive" in result.stderr, result.stderr


def test_an_unknown_exercise_says_where_dldiy_looked_for_the_course(tmp_path):
    result = run_dldiy("check", "softmax-sgd", "work.py", cwd=tmp_path)
    assert result.returncode != 0
    assert "unknown exercise 'softmax-sgd'; known: exercise-1" in result.stderr, result.stderr
    assert f"no dldiy.toml in {tmp_path} or a folder above it" in result.stderr, result.stderr
    assert "pass --course DIR" in result.stderr
    result = run_dldiy("--course", str(COURSE), "check", "softmax-sgd", "work.py", cwd=tmp_path)
    assert f"known: mlp (the exercises of the course at {COURSE}, found through its dldiy.toml)" in result.stderr
