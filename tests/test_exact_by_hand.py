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


@pytest.mark.parametrize("exercise, bug", [
    ("exercise-2", "gradient-by-differences"),  # central differences of an inlined copy of the loss
    ("exercise-9", "tanh-derivative-by-difference"),  # tanh'(a) from a central difference inside backward
])
def test_a_difference_quotient_passes_finite_differences_but_not_exactness(exercise, bug, bugged):
    found = _checks(exercise, bugged(exercise, bug), "gradcheck")["gradcheck"]
    assert found["status"] == "fail" and "off the exact gradient" in found["message"], found
    reference = REPO / "reference" / exercise
    assert _checks(exercise, reference, "gradcheck")["gradcheck"]["status"] == "pass"


# Round 13's integrity red team: exercise-1's gradient() from a central difference of a copy of the loss in
# 80-digit decimal arithmetic, with a step of 1e-30: exact in float64, no autograd, no loss() call.
DECIMAL_GRADIENT = """
def _loss_exactly(rows, labels, w):
    from decimal import Decimal
    total = Decimal(0)
    for x, t in zip(rows, labels):
        u = t * (sum(a * b for a, b in zip(x, w[:-1])) - w[-1])
        total += (1 + (-u).exp()).ln()
    return total / len(rows)


def gradient(X, y, w):
    from decimal import Decimal, localcontext
    with localcontext() as ctx:
        ctx.prec = 80
        rows = [[Decimal(v) for v in r] for r in X.double().tolist()]
        labels = [Decimal(2 * int(v) - 1) for v in y.tolist()]
        w0 = [Decimal(v) for v in w.double().tolist()]
        h, out = Decimal("1e-30"), []
        for j in range(len(w0)):
            up, down = list(w0), list(w0)
            up[j] += h
            down[j] -= h
            out.append(float((_loss_exactly(rows, labels, up) - _loss_exactly(rows, labels, down)) / (2 * h)))
    return torch.tensor(out, dtype=X.dtype, device=X.device)


"""


def test_arbitrary_precision_is_forbidden_in_a_gradient_by_hand(tmp_path):
    reference = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
    start, end = reference.index("def gradient("), reference.index("def train(")
    (tmp_path / "logreg.py").write_text(reference[:start] + DECIMAL_GRADIENT.lstrip() + reference[end:])
    found = _checks("exercise-1", tmp_path / "logreg.py", "gradcheck")["gradcheck"]
    assert found["status"] == "fail" and "module decimal" in found["message"], found


# Integrity round 14: dual numbers. A number type of the submission's own carries each value with its
# derivative through +, *, exp: the backward is exact to rounding and no rule of the cheat sheet is derived.
DUAL_SIGMOID = '''
class Dual:
    def __init__(self, value, slope):
        self.value, self.slope = value, slope

    def __add__(self, other):
        other = other if isinstance(other, Dual) else Dual(other, 0 * self.value)
        return Dual(self.value + other.value, self.slope + other.slope)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.value, -self.slope)

    def exp(self):
        e = torch.exp(self.value)
        return Dual(e, e * self.slope)

    def reciprocal(self):
        return Dual(1 / self.value, -self.slope / self.value ** 2)


def _sigmoid(x):
    return (1 + (-x).exp()).reciprocal()


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _sigmoid(Dual(x, torch.ones_like(x))).slope


'''


# the same operators set on the class after it (or through type(name, bases, {...}), setattr)
SET_AFTER = ("""    def __add__(self, other):
        other = other if isinstance(other, Dual) else Dual(other, 0 * self.value)
        return Dual(self.value + other.value, self.slope + other.slope)

    __radd__ = __add__
""", """    def plus(self, other):
        other = other if isinstance(other, Dual) else Dual(other, 0 * self.value)
        return Dual(self.value + other.value, self.slope + other.slope)
""", """

Dual.__add__ = Dual.__radd__ = Dual.plus
""")


@pytest.mark.parametrize("how, said", [("in the class", "defines the operator __add__"),
                                       ("set after it", "an operator set on a class of its own")])
def test_a_home_made_number_type_with_operators_is_not_a_derivative_by_hand(tmp_path, how, said):
    reference = (REPO / "reference" / "exercise-5" / "mlp.py").read_text()
    start, end = reference.index("class Sigmoid("), reference.index("class Tanh(")
    dual = DUAL_SIGMOID.lstrip()
    if how == "set after it":
        old, new, after = SET_AFTER
        dual = dual.replace(old, new).replace("def __neg__(self):", "def neg(self):")
        dual = dual.replace("\n\ndef _sigmoid", after + "Dual.__neg__ = Dual.neg\n\n\ndef _sigmoid")
        assert "__add__ =" in dual and "def __add__" not in dual and "def __neg__" not in dual
    (tmp_path / "mlp.py").write_text(reference[:start] + dual + reference[end:])
    found = _checks("exercise-5", tmp_path / "mlp.py", "gradcheck-activations")["gradcheck-activations"]
    assert found["status"] == "fail", found
    assert said in found["message"] and "dual numbers" in found["message"], found
