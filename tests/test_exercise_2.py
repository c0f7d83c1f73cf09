"""exercise-2 end to end: an implementation that differs from the reference only in incidental ways
passes every check, and a training loop that diverges is reported with the word 'divergence'."""

import json

import pytest
import torch

from conftest import REPO, run_dldiy

# Normal equations by torch.linalg.solve (the reference uses lstsq), float64 inside whatever the input
# dtype, the loss as r.r / n, the gradient summed example by example, in-place updates.
EQUIVALENT = '''
import torch


def _tilde(X):
    return torch.hstack((X, X.new_ones(X.shape[0], 1)))


def fit_exact(X, y):
    A = _tilde(X).double()
    return torch.linalg.solve(A.T @ A, A.T @ y.double()).to(X.dtype)


def loss(X, y, w):
    r = _tilde(X).double() @ w.double() - y.double()
    return (r.dot(r) / len(y)).to(X.dtype)


def gradient(X, y, w):
    A, w64 = _tilde(X).double(), w.double()
    g = torch.zeros_like(w64)
    for i in range(len(y)):
        g += 2.0 * (A[i] @ w64 - y[i]) * A[i]
    return (g / len(y)).to(w.dtype)


def train(X, y, w0, lr, steps):
    w = w0.clone().double()
    history = []
    for _ in range(steps):
        history.append(float(loss(X, y, w)))
        w -= lr * gradient(X, y, w)
    return w.to(w0.dtype), history
'''


def test_an_equivalent_implementation_passes_every_check(write_submission):
    path = write_submission(EQUIVALENT, name="linreg.py")
    result = run_dldiy("check", "exercise-2", str(path), "--json")
    report = json.loads(result.stdout)
    statuses = {c["name"]: (c["status"], c["message"]) for c in report["checks"]}
    assert result.returncode == 0, statuses
    # parity needs a GPU: skipped (never passed) where there is none
    assert {s for n, (s, _) in statuses.items() if n != "parity"} == {"pass"}, statuses
    assert statuses["parity"][0] == ("pass" if torch.cuda.is_available() else "skip"), statuses
    assert set(statuses) == {"exact-solution", "gradcheck", "first-loss", "convergence", "divergence", "placement",
                             "parity"}


def test_a_diverging_student_is_told_divergence_not_crashed(write_submission, check_json):
    # The step n times too long in train() itself, so GD blows up at lr = 0.1. (A gradient of the sum
    # costs gradcheck only: train() is judged with the grader's gradient; see the test below.)
    code = EQUIVALENT.replace("w -= lr * gradient(X, y, w)", "w -= lr * len(y) * gradient(X, y, w)")
    path = write_submission(code, name="linreg.py")
    checks = {c["name"]: c for c in check_json("exercise-2", path, "convergence", "divergence")[0]["checks"]}
    assert checks["convergence"]["status"] == "fail"
    assert "divergence" in checks["convergence"]["message"]
    assert checks["divergence"]["status"] == "pass" and "divergence" in checks["divergence"]["message"]


def test_a_training_loop_that_raises_when_it_diverges_fails_with_divergence(write_submission, check_json):
    code = EQUIVALENT.replace("        history.append(float(loss(X, y, w)))\n",
                              "        history.append(float(loss(X, y, w)))\n"
                              "        assert history[-1] < 1e300, 'loss exploded'\n")
    path = write_submission(code, name="linreg.py")
    report, exit_code = check_json("exercise-2", path, "divergence")
    (check,) = report["checks"]
    assert check["status"] == "fail", check
    assert "AssertionError: loss exploded" in check["message"] and "divergence" in check["message"]
    assert exit_code == 1


def test_an_explicit_inverse_is_caught_by_the_rule_and_named(write_submission, check_json):
    """The spec forbids an inverse in fit_exact: the check fails naming the call and its line (the
    ill-conditioned design's values would catch it too, but the rule says why first)."""
    code = EQUIVALENT.replace("torch.linalg.solve(A.T @ A, A.T @ y.double())",
                              "(torch.linalg.inv(A.T @ A) @ (A.T @ y.double()))")
    path = write_submission(code, name="linreg.py")
    (check,) = check_json("exercise-2", path, "exact-solution")[0]["checks"]
    assert check["status"] == "fail"
    assert "torch.linalg.inv" in check["message"] and "linreg.py line" in check["message"], check


def test_a_wrong_gradient_costs_gradcheck_only(write_submission, check_json):
    """One bug, one deduction: train() is run with the grader's own gradient and loss."""
    code = EQUIVALENT.replace("return (g / len(y)).to(w.dtype)", "return g.to(w.dtype)")
    checks = {c["name"]: c for c in check_json("exercise-2", write_submission(code, name="linreg.py"))[0]["checks"]}
    assert {n for n, c in checks.items() if c["status"] not in ("pass", "skip")} == {"gradcheck"}, checks


def test_a_fit_that_overwrites_the_callers_x_is_named(write_submission, check_json):
    code = EQUIVALENT.replace("    A = _tilde(X).double()\n", "    X[0, 0] += 1.0  # in place\n    A = _tilde(X).double()\n")
    (check,) = check_json("exercise-2", write_submission(code, name="linreg.py"), "exact-solution")[0]["checks"]
    assert check["status"] == "fail" and "modified its argument X in place" in check["message"]


LINREG = (REPO / "reference" / "exercise-2" / "linreg.py").read_text()
RIGHT_LOSS = "    return ((add_bias(X) @ w - y) ** 2).mean()\n"


@pytest.mark.parametrize("wrong_loss", [
    "    return ((add_bias(X) @ w - y) ** 2).sum()\n",  # buggy/exercise-2/loss-sum
    "    return ((add_bias(X) @ w - y) ** 2).sum() / (len(y) - 1)\n",  # loss-over-n-minus-one
    "    return (((add_bias(X) @ w).unsqueeze(1) - y) ** 2).mean()\n",  # residual-broadcast
], ids=["sum", "n-minus-one", "residual-broadcast"])
def test_a_wrong_loss_costs_first_loss_only_gradcheck_notes_it(write_submission, check_json, wrong_loss):
    """One bug, one deduction: gradcheck differentiates the spec's loss, so a right gradient() beside a
    wrong loss() passes it, with a note; the loss is charged by first-loss alone."""
    assert LINREG.count(RIGHT_LOSS) == 1
    path = write_submission(LINREG.replace(RIGHT_LOSS, wrong_loss), name="linreg.py")
    checks = {c["name"]: c for c in check_json("exercise-2", path)[0]["checks"]}
    # (parity skips on a machine without a GPU: a skip is not a failure of this bug)
    assert [n for n, c in checks.items() if c["status"] not in ("pass", "skip")] == ["first-loss"], checks
    assert "note: the gradient was checked against the finite differences of the spec's loss" in checks["gradcheck"]["message"]


@pytest.mark.parametrize("bug, check", [("bias-first", "exact-solution"),
                                        ("bias-column-first-everywhere", "exact-solution"),
                                        ("bias-column-first-everywhere", "gradcheck")])
def test_a_bias_put_first_is_said_as_a_layout_not_as_precision(bug, check, bugged, check_json):
    """The sixth round's blind red team: w~ = [b, w] was "1.59 away ... expected within float32 precision"; and the
    gradient of x~ = [1, x] was blamed on an expanded form in float32. A w~ wrong on float64 data is no matter of
    float32: the layout is said where the values are the solution's in another order, the blocks otherwise."""
    result = check_json("exercise-2", bugged("exercise-2", bug), check)[0]["checks"][0]
    assert result["status"] == "fail" and "float32" not in result["message"], result["message"]
    if check == "exact-solution":
        assert "in another order: [b, w]" in result["message"] and "bias last" in result["message"], result["message"]
    else:
        assert "analytic and numeric gradients of w" in result["message"], result["message"]
