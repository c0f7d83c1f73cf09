"""A derivative by hand is exact to float64's rounding; a difference quotient is not (issue 13, red team round 13).

Where the harness knows the function differentiated (its own formula, or torch's autograd on its own ops
once the submission's forward agrees with them), a gradcheck block carries the exact gradient, and the
judge (graders/kinds/gradcheck.py) fails a hand gradient that agrees with finite differences yet sits
farther from the exact one than rounding can put it: finite differences of a copy of the function
(~1e-13 to 1e-10), float32 inside (~1e-7). Arbitrary precision (decimal, fractions, gmpy2), where a step
of 1e-30 makes a difference quotient exact, is forbidden by name. Real subprocesses, through the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO, run_dldiy
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.kinds.gradcheck import INEXACT, inexactness, judge

SUBMISSIONS = REPO / "tests" / "submissions"


def _checks(exercise: str, path, *only: str) -> dict:
    args = [a for name in only for a in ("--only", name)]
    result = run_dldiy("check", exercise, str(path), "--json", *args)
    assert result.stdout, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def _block(analytic, exact, floor=0.0):
    a = np.asarray(analytic, dtype=float)
    return {"name": "w", "shape": [a.size], "analytic": a.tolist(), "numeric": a.tolist(),
            "exact": np.asarray(exact, dtype=float).tolist(), "exact_floor": floor}


def test_the_judge_fails_a_gradient_off_the_exact_one_beyond_rounding_and_passes_rounding():
    check = load_exercise("exercise-2").check("gradcheck")
    exact = np.array([0.3, -1.7, 2.5])
    rounded = exact * (1 + 3e-16 * np.array([1, -1, 1]))
    assert judge({"blocks": [_block(rounded, exact)]}, None, check).status == "pass"
    quotient = exact * (1 + 1e-10 * np.array([1, -1, 1]))
    verdict = judge({"blocks": [_block(quotient, exact)]}, None, check)
    assert verdict.status == "fail" and "off the exact gradient by 1.0e-10" in verdict.message, verdict.message


def test_the_floor_makes_tiny_gradients_absolute_and_no_floor_keeps_them_relative():
    tail = np.array([4e-18, 1e-17])  # tanh' far out: torch's own 1 - tanh^2 is all rounding there
    assert inexactness(tail + 2e-16, tail, floor=1.0) < INEXACT
    assert inexactness(tail * (1 + 1e-9), tail, floor=0.0) > INEXACT  # 1 - sigma(u): relative on 1e-10
    assert inexactness(np.zeros(2), np.zeros(2)) == 0.0


@pytest.mark.parametrize("exercise, submission, check", [
    ("exercise-2", "exercise2_difference_quotient_gradient.py", "gradcheck"),
    ("exercise-9", "exercise9_difference_quotient_backward.py", "gradcheck"),
])
def test_a_difference_quotient_passes_finite_differences_but_not_exactness(exercise, submission, check):
    found = _checks(exercise, SUBMISSIONS / submission, check)[check]
    assert found["status"] == "fail" and "off the exact gradient" in found["message"], found
    reference = REPO / "reference" / exercise
    assert _checks(exercise, reference, check)[check]["status"] == "pass"


def test_arbitrary_precision_is_forbidden_in_a_gradient_by_hand():
    found = _checks("exercise-1", SUBMISSIONS / "exercise1_decimal_difference_quotient.py", "gradcheck")["gradcheck"]
    assert found["status"] == "fail" and "module decimal" in found["message"], found
