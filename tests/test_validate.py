"""CI's guarantee: every reference passes every check, every bugged variant is caught as its manifest says."""

import pytest

from conftest import run_dldiy


@pytest.mark.slow
def test_validate_every_exercise():
    result = run_dldiy("validate", timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "reference(s) pass" in result.stdout and "caught as their manifests say" in result.stdout


def test_validate_reports_a_variant_that_is_not_caught(tmp_path, monkeypatch):
    """A 'bug' that changes no behaviour must make validate fail: the matrix is not a rubber stamp."""
    import shutil

    from conftest import REPO

    course = tmp_path / "course"
    shutil.copytree(REPO / "reference" / "exercise-1", course / "reference" / "exercise-1")
    fake = course / "buggy" / "exercise-1" / "not-a-bug"
    fake.mkdir(parents=True)
    (fake / "bug.diff").write_text('--- a/logreg.py\n+++ b/logreg.py\n@@ -1,3 +1,3 @@\n'
                                   '-"""Logistic regression by hand: the reference solution of exercise-1."""\n'
                                   '+"""Logistic regression by hand (only this docstring differs)."""\n \n import torch\n')
    (fake / "manifest.toml").write_text('description = "a docstring edit"\ncaught_by = ["gradcheck"]\npatch = "bug.diff"\n')
    monkeypatch.setenv("DLDIY_COURSE", str(course))
    result = run_dldiy("validate", "exercise-1")
    assert result.returncode == 1
    assert "not-a-bug: must fail gradcheck but it is pass" in result.stdout
