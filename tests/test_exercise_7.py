"""exercise-7 end to end, and the theorems its checks lean on.

An implementation that differs from the reference only in incidental ways (numpy float64 inside, a
while loop, another but equivalent sign test) passes every check. Novikoff's bound as the harness
computes it is never beaten by a correct perceptron, and the overlapping data is never separated.
"""

import json

import numpy as np
from hypothesis import given, settings, strategies as st

from conftest import REPO, run_dldiy
from dldiy.graders.sandbox.submission import load_module_from

EQUIVALENT = '''
import numpy as np
import torch


def predict(X, w):
    scores = X @ w[:-1] + w[-1]
    return 1 - 2 * (scores <= 0).long()


def train(X, y, w0, epochs):
    Xt = np.hstack([X.numpy(), np.ones((X.shape[0], 1))])
    t = y.numpy().astype(np.float64)
    w = w0.numpy().astype(np.float64).copy()
    mistakes, epoch = [], 0
    while epoch < epochs and (not mistakes or mistakes[-1] > 0):
        wrong = 0
        for x, label in zip(Xt, t):
            if label * float(np.sum(x * w)) <= 0.0:
                w += label * x
                wrong += 1
        mistakes.append(wrong)
        epoch += 1
    return torch.from_numpy(w).to(w0.dtype), mistakes
'''

harness = load_module_from(REPO / "exercises" / "exercise-7" / "harness.py", "_test_harness_exercise_7")


def test_an_equivalent_implementation_passes_every_check(write_submission):
    path = write_submission(EQUIVALENT, name="perceptron.py")
    result = run_dldiy("check", "exercise-7", str(path), "--json")
    statuses = {c["name"]: (c["status"], c["message"]) for c in json.loads(result.stdout)["checks"]}
    assert result.returncode == 0, statuses
    assert {s for s, _ in statuses.values()} == {"pass"}
    assert set(statuses) == {"novikoff", "held-out", "no-false-convergence", "first-update", "predict-boundary"}


def _perceptron(Xt, t, epochs):
    w, mistakes = np.zeros(Xt.shape[1]), []
    for _ in range(epochs):
        wrong = 0
        for x, label in zip(Xt, t):
            if label * (x @ w) <= 0:
                w, wrong = w + label * x, wrong + 1
        mistakes.append(wrong)
        if wrong == 0:
            break
    return w, mistakes


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_the_harness_bound_holds_for_a_correct_perceptron(seed):
    X, t = harness._blobs(seed, 200, distance=3.0, margin=0.25)
    Xt = harness._with_bias(X)
    gamma = harness.separating_margin(Xt * t[:, None])
    assert gamma > 0  # a separating direction was found: the data is separable
    w, mistakes = _perceptron(Xt, t, 1000)
    assert mistakes[-1] == 0 and harness._errors(X, t, w) == 0
    R = np.linalg.norm(Xt, axis=1).max()
    assert sum(mistakes) <= (R / gamma) ** 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_the_overlapping_data_is_never_separated_in_the_budget(seed):
    X, t = harness._blobs(seed, 100, distance=1.0, margin=None)
    _, mistakes = _perceptron(harness._with_bias(X), t, 20)
    assert mistakes[-1] > 0


def test_the_margin_found_is_close_to_the_best_on_a_known_case():
    # Two points +-(1, 0) with x~ = [x, 1]: z = (1, 0, 1) and (1, 0, -1); the best unit direction is
    # (1, 0, 0) with margin 1.
    Z = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, -1.0]])
    assert 0.97 <= harness.separating_margin(Z) <= 1.0 + 1e-12


def test_a_loop_that_overwrites_the_callers_w0_is_named(write_submission, check_json):
    code = EQUIVALENT.replace("    w = w0.numpy().astype(np.float64).copy()", "    w = w0.numpy()  # a view: w0 itself")
    (check,) = check_json("exercise-7", write_submission(code, name="perceptron.py"), "first-update")[0]["checks"]
    assert check["status"] == "fail" and "modified its argument w0 in place" in check["message"]


def test_predict_is_probed_over_a_family_and_charged_once(write_submission, check_json):
    # The notebook's two features hard-coded in predict(): right at d = 2, wrong at d = 3.
    code = EQUIVALENT.replace("    scores = X @ w[:-1] + w[-1]", "    scores = X[:, :2] @ w[:2] + w[-1]")
    checks = {c["name"]: c for c in check_json("exercise-7", write_submission(code, name="perceptron.py"))[0]["checks"]}
    assert {n for n, c in checks.items() if c["status"] != "pass"} == {"predict-boundary"}, checks
    assert "d=3" in checks["predict-boundary"]["message"]
