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


def test_an_alternative_may_skip_only_the_checks_its_manifest_calls_inconclusive():
    """A correct solution whose placement cannot be judged on the meta device (torch.unique has no meta
    kernel) skips it: validate accepts that only where the manifest says `inconclusive = ["placement"]`."""
    from types import SimpleNamespace as NS

    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.course.validate import Row

    def report(placement):
        return NS(checks=[NS(name="gradcheck", status="pass", points=3.0, max_points=3.0, message="ok"),
                          NS(name="placement", status=placement, points=0.0 if placement != "pass" else 0.5,
                             max_points=0.5, message="inconclusive on the meta device: ...")])

    ex = load_exercise("exercise-1")
    plain = Row(ex, "alternative a", (), report=report("skip"), alternative=True, reference=report("pass"))
    declared = Row(ex, "alternative a", (), report=report("skip"), alternative=True, reference=report("pass"),
                   inconclusive=("placement",))
    failing = Row(ex, "alternative a", (), report=report("fail"), alternative=True, reference=report("pass"),
                  inconclusive=("placement",))
    assert len(plain.problems()) == 1 and "loses 0.5 point(s) in placement (skip)" in plain.problems()[0]
    assert declared.problems() == []
    assert len(failing.problems()) == 1  # inconclusive allows a skip, never a failure


def test_validate_names_the_checks_a_bug_costs_beyond_its_manifest():
    """An instructor's eps bug cost 6 of 9 points and validate said nothing (instructor trial): a bugged
    variant's failures beyond its manifest are listed (a warning, not a mismatch)."""
    from types import SimpleNamespace as NS

    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.course.validate import Row

    report = NS(checks=[NS(name="gradcheck", status="fail", points=0.0, max_points=3.0, message="x"),
                        NS(name="stability", status="error", points=0.0, max_points=1.0, message="y"),
                        NS(name="placement", status="skip", points=0.0, max_points=0.5, message="z"),
                        NS(name="first-loss", status="pass", points=3.0, max_points=3.0, message="ok")])
    ex = load_exercise("exercise-1")
    row = Row(ex, "eps-outside-sqrt", ("gradcheck",), report=report)
    assert row.problems() == [] and row.also_charged() == []  # a check that errored is said as such (errored())
    assert row.errored() == ["exercise-1/eps-outside-sqrt: stability errored (beyond its manifest: one bug, one deduction?): y"]
    assert row.blocking_errors() == []  # listed, not fatal: the bug is caught as its manifest says
    assert Row(ex, "alternative a", (), report=report, alternative=True).also_charged() == []
    result = run_dldiy("validate", "exercise-1")
    assert result.returncode == 0 and "Also charged beyond the manifest" in result.stdout
    # the same mistake in loss() and gradient() (one convention, two functions): gradcheck charges it too
    assert "exercise-1/sum-not-mean: gradcheck (fail, -3)" in result.stdout


def test_a_check_that_errors_is_reported_as_errored_not_as_a_mismatch_of_the_manifest():
    """A check whose probe raised measured nothing: validate says "errored" with what raised, for a check the
    manifest names as for the reference's, apart from the manifests' mismatches (it still exits 1), and the
    corpus figures count no such variant as caught and no such alternative at full marks."""
    from types import SimpleNamespace as NS

    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.course.validate import Row, corpus_figures

    raised = "the harness could not use what the submission returned (KeyError: 'x'; raised at harness.py line 70, in probe)"
    report = NS(checks=[NS(name="gradcheck", status="error", points=0.0, max_points=3.0, message=raised + "\nmore"),
                        NS(name="first-loss", status="pass", points=3.0, max_points=3.0, message="ok")])
    ex = load_exercise("exercise-1")
    bug = Row(ex, "some-bug", ("gradcheck",), report=report)
    assert bug.problems() == []
    assert bug.errored() == bug.blocking_errors() == [
        f"exercise-1/some-bug: gradcheck errored (its manifest names it: it must fail, measured): {raised}"]
    reference = Row(ex, "reference", (), report=report)
    assert reference.problems() == [] and reference.blocking_errors() == [f"exercise-1/reference: gradcheck errored: {raised}"]
    crash = Row(ex, "crash", (), crashes_at=("logreg.py",), report=report)
    assert crash.errored() == []  # a crash bug's errors are what its manifest expects (problems() judges them)
    figures = corpus_figures(ex, [reference, bug])
    assert (figures.caught, figures.bugs, figures.false_failures) == (0, 1, 1)
