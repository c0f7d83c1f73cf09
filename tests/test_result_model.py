"""One result model (issue 12): typed lines between the harness process and the parent, one Report
with one JSON form that every consumer reads back, and the parent's checks as the only ones the
harness runs (a change made on the parent's side reaches it)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from conftest import REPO
from dldiy.graders.sandbox import messages
from dldiy.graders.batch.export import feedback_markdown, gradescope_results
from dldiy.graders.batch.gradebook import csv_row
from dldiy.graders.report import CheckResult, Report

# -- messages -----------------------------------------------------------------------------------------


def test_each_line_the_child_writes_is_read_back_as_written():
    sent = [messages.loaded(["cell 1, line 1: %time"], ["seccomp"], True), messages.load_error("boom"),
            messages.measured("gradcheck", 42, {"max_rel_error": 1e-9, "note": None}),
            messages.failed("gradcheck", 1, messages.error("raised", "ValueError: no", "File x, line 2\n  y"))]
    for message in sent:
        assert messages.parse(messages.encode(message).encode()) == message


@pytest.mark.parametrize("line", [
    b"not json", b"[1, 2]", b'{"type": "loaded!"}', b'{"type": "result", "check": 1, "seed": 2, "measurement": 0}',
    b'{"type": "result", "check": "a", "seed": "2", "measurement": 0}',
    b'{"type": "result", "check": "a", "seed": true, "measurement": 0}',
    b'{"type": "result", "check": "a", "seed": 2}',  # neither a measurement nor an error
    b'{"type": "result", "check": "a", "seed": 2, "measurement": 0, "error": {}}',  # both
    b'{"type": "result", "check": "a", "seed": 2, "error": {"kind": "forged", "message": "", "traceback": ""}}',
    b'{"type": "result", "check": "a", "seed": 2, "error": {"kind": "raised", "message": 3, "traceback": ""}}',
])
def test_a_line_that_is_not_one_of_ours_is_ignored(line):
    assert messages.parse(line) is None


def test_a_loaded_line_with_odd_fields_is_made_plain():
    parsed = messages.parse(b'{"type": "loaded", "skipped": [1, "x"], "sandbox": "not a list", "pid_namespace": "yes"}')
    # only a true bool says the student's process was its PID namespace's init (the parent then skips its sweep)
    assert parsed == {"type": "loaded", "skipped": ["1", "x"], "sandbox": [], "pid_namespace": False}


# -- the report and its one JSON form -------------------------------------------------------------------

def _check(name: str, status: str, points: float = 0.0, **details) -> CheckResult:
    return CheckResult(name, "first_loss", status, points, 2.0, f"{name} says {status}", f"title of {name}",
                       dict(details))


def test_the_status_rule():
    assert Report("e", "s", [_check("a", "pass", 2), _check("b", "skip")]).status == "pass"
    assert Report("e", "s", [_check("a", "pass", 2), _check("b", "fail")]).status == "fail"
    assert Report("e", "s", [_check("a", "error"), _check("b", "fail")]).exit_code == 2
    assert Report("e", "s", [], load_error="no logreg.py").status == "error"


def test_a_traceback_is_shown_for_an_error_with_more_than_one_line_only():
    assert _check("a", "error", traceback="File x, line 1\nValueError").traceback_to_show.endswith("ValueError")
    assert _check("a", "error", traceback="ValueError").traceback_to_show == ""
    assert _check("a", "fail", traceback="File x, line 1\nValueError").traceback_to_show == ""


def test_to_json_and_from_json_are_one_form_and_every_consumer_reads_it():
    report = Report("exercise-1", "alice/logreg.py",
                    [_check("a", "pass", 2.0), _check("b", "error", traceback="File x, line 3\nKeyError"),
                     _check("gpu", "skip")], skipped_lines=["cell 2, line 1: !ls"], sandbox=["seccomp"])
    report.apply_skip_policy("leave-out")
    data = json.loads(json.dumps(report.to_json()))
    assert Report.from_json(data) == report
    assert (data["status"], data["score"], data["max_score"]) == ("error", 2.0, 4.0)
    assert data["error"] == "b: b says error"
    record = {"student": "alice", "graded_file": "/x/logreg.py", "sha256": "ab" * 32, "duration_s": 1.5,
              "skips": "leave-out", **data}
    markdown = feedback_markdown(record, "Exercise 1")
    assert "**Total: 2/4**" in markdown and "Your code's traceback:" in markdown and "not counted" in markdown
    assert gradescope_results(record)["score"] == 2.0
    assert csv_row(record, ["a", "b", "gpu"])[1:7] == ["2", "0", "", "2", "4", "error"]


def test_a_record_of_an_unusable_submission_keeps_its_maximum():
    unusable = Report("exercise-1", "bob", [], "no logreg.py in the submission", declared_max=10.0)
    back = Report.from_json(json.loads(json.dumps(unusable.to_json())))
    assert (back.status, back.score, back.max_score, back.error) == ("error", 0.0, 10.0, "no logreg.py in the submission")


def test_the_notebook_result_is_a_view_of_the_report():
    from dldiy.incheck import Result

    report = Report("exercise-1", "this notebook", [_check("a", "pass", 2.0), _check("b", "fail")])
    result = Result(report)
    assert (result.score, result.max_score, result.status("b")) == (2.0, 4.0, "fail")
    result.require("a")
    with pytest.raises(AssertionError, match="b: fail: b says fail"):
        result.require("b")
    with pytest.raises(KeyError):
        result.status("nope")


# -- the parent's checks are the ones the harness runs -------------------------------------------------

def test_a_parent_side_change_to_a_checks_params_reaches_the_harness(tmp_path, fork_server):
    from dldiy.graders.assess import assessment
    from dldiy.graders.course.exercise import load_exercise_dir

    folder = tmp_path / "exercise-1"
    shutil.copytree(REPO / "exercises" / "exercise-1", folder)
    exercise = load_exercise_dir(folder)
    spec = exercise.check("first-loss")
    changed = dataclasses.replace(spec, params={**spec.params, "n": 37, "steps": [0, 3]})
    (folder / "spec.toml").unlink()  # the harness process reads no spec: everything comes from the parent
    done = assessment(exercise, REPO / "reference" / "exercise-1", checks=[changed], server=fork_server)
    for seed in exercise.seeds:
        measured = done.outcome.results[("first-loss", seed)]["measurement"]
        assert (measured["n"], measured["steps"]) == (37, [0, 3])
    assert [c.name for c in done.report.checks] == ["first-loss"]


def _finite_one_by_one(value):
    """judge._finite's definition: every float that is nan or inf spelt out, one value at a time."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite_one_by_one(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_one_by_one(v) for v in value]
    return value


_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=1e307, max_value=1.7e308),
                     st.integers(-10**20, 10**20), st.booleans(), st.none(), st.text(max_size=3))
_details = st.recursive(_numbers, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                         st.dictionaries(st.text(max_size=3), inner, max_size=4)),
                        max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(_details)
def test_a_verdicts_details_spell_out_exactly_the_nan_and_inf_of_their_numbers(details):
    """The fast path for lists of plain numbers (their sum finite: none is nan or inf; a sum that
    overflows takes the long way) gives what spelling out each value does."""
    import json

    from dldiy.graders.judge import _finite

    out = _finite(details)
    assert json.dumps(out, allow_nan=False) == json.dumps(_finite_one_by_one(details), allow_nan=False)
