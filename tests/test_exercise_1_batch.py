"""exercise-1's gradcheck and stability in one message per seed (issue 17): the finite differences of
the spec's loss at all 2(d+1) points at once give numeric_gradient's numbers, the frames per seed stay
few, and every judgement of a single call still holds per configuration in the batch."""

import numpy as np
import re

import pytest
import torch

from conftest import REPO
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.kinds.gradcheck import EPS, numeric_gradient, numeric_gradient_stacked, perturbed
from dldiy.graders.sandbox.submission import load_module_from

REFERENCE = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
EXERCISE = load_exercise("exercise-1")
HARNESS = load_module_from(EXERCISE.harness_path, "_test_ex1_batch_harness")
GRADIENT = """    Xt = add_bias(X)
    t = 2 * y.to(X.dtype) - 1
    u = t * (Xt @ w)
    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]"""
DIFFERENCES = """    g = torch.zeros_like(w)
    for j in range(len(w)):
        e = torch.zeros_like(w)
        e[j] = 1e-6
        g[j] = (loss(X, y, w + e) - loss(X, y, w - e)) / 2e-6
    return g"""


def _variant(write_submission, old, new):
    assert REFERENCE.count(old) == 1
    return write_submission(REFERENCE.replace(old, new), name="logreg.py")


def _check(check_json, path, name):
    report, _ = check_json("exercise-1", path, name)
    return {c["name"]: c for c in report["checks"]}[name]


def _configurations():
    """The gradcheck family's shapes and more, at many seeds: (seed, X, y, w)."""
    for seed in range(12):
        for n, d in ((20, 3), (1, 3), (20, 1), (7, 5), (100, 2), (33, 4)):
            X, y, w = HARNESS._problem(seed + n + 100 * d, n, d)
            if seed % 3 == 1:
                X = X.t().contiguous().t()
            if seed % 4 == 2:
                w = torch.zeros_like(w)
            yield seed, X, y, w


# ---- numeric_gradient_stacked -------------------------------------------------------------------------

def test_the_stacked_points_are_the_points_numeric_gradient_evaluates():
    """Bit for bit, in numeric_gradient's order (x + eps e_j, then x - eps e_j), for any shape of x."""
    x = torch.tensor(np.random.default_rng(0).normal(size=(2, 3)))
    seen = []
    numeric_gradient(lambda v: seen.append(v.clone()) or 0.0, x)
    assert torch.equal(perturbed(x), torch.stack(seen))


def test_stacked_differences_of_a_quadratic_are_its_gradient():
    A = torch.tensor(np.random.default_rng(1).normal(size=(6, 6)))
    x = torch.tensor(np.random.default_rng(2).normal(size=(2, 3)))
    numeric = numeric_gradient_stacked(lambda P: 0.5 * ((P.reshape(len(P), -1) @ A) * P.reshape(len(P), -1)).sum(1), x)
    assert numeric.shape == x.shape
    torch.testing.assert_close(numeric, (0.5 * (A + A.T) @ x.reshape(-1)).reshape(2, 3), rtol=1e-7, atol=1e-8)
    assert torch.allclose(numeric, numeric_gradient(lambda v: 0.5 * (v.reshape(-1) @ A @ v.reshape(-1)), x),
                          rtol=0, atol=1e-8)


def test_the_spec_loss_at_every_point_at_once_matches_one_point_at_a_time():
    """_spec_losses over the stack agrees with _spec_loss point by point to 1e-12 relative (in fact to
    a few units in the last place: one matmul and a vectorised softplus round in another order), so
    the central differences agree to 1e-12 of the loss over the step, far inside gradcheck's atol."""
    count = 0
    for seed, X, y, w in _configurations():
        points = perturbed(w)
        one_by_one = torch.tensor([float(HARNESS._spec_loss(X, y, v)) for v in points], dtype=torch.float64)
        at_once = HARNESS._spec_losses(X, y, points)
        torch.testing.assert_close(at_once, one_by_one, rtol=1e-12, atol=0)
        old = numeric_gradient(lambda v: HARNESS._spec_loss(X, y, v), w)
        new = numeric_gradient_stacked(lambda W: HARNESS._spec_losses(X, y, W), w)
        bound = 1e-12 * float(one_by_one.abs().max()) / EPS
        assert (new - old).abs().max() <= bound, (seed, tuple(X.shape), (new - old).abs().max().item(), bound)
        assert (new - old).abs().max() < float(EXERCISE.check("gradcheck").params["atol"]) / 10
        count += 1
    assert count == 72


# ---- frames per seed ------------------------------------------------------------------------------------

@pytest.fixture
def reference_sub(tmp_path):
    from dldiy.graders.sandbox.child import StudentProcess
    from dldiy.graders.sandbox.remote import RemoteSubmission

    (tmp_path / "logreg.py").write_text(REFERENCE)
    student = StudentProcess({"entry": str(tmp_path / "logreg.py"), "sandbox": None, "forbid": {}}, 60)
    try:
        yield lambda: RemoteSubmission(student.endpoint, EXERCISE)
    finally:
        student.kill()


@pytest.mark.parametrize("check, most", [("gradcheck", 4), ("stability", 1)])
def test_a_seed_costs_a_few_messages_not_one_per_call(reference_sub, monkeypatch, check, most):
    """gradcheck: the loss's handle, the counting stand-in in and out, one batch (was 13); stability:
    one batch (was 12). Frames the harness sends, counted where they leave (its process only). The student's
    process's first seed also carries the probes run once per process (round 9's state kept between calls: a
    handle and two functions built there, three frames at most)."""
    from dldiy.graders.sandbox.endpoint import Endpoint

    sent = []
    real = Endpoint.send
    monkeypatch.setattr(Endpoint, "send", lambda self, header, *rest: sent.append(header.get("op")) or real(
        self, header, *rest))
    for seed in (1, 42):
        sent.clear()
        measured = getattr(HARNESS, check)(reference_sub(), seed, EXERCISE.check(check).params)
        assert "violation" not in measured and "note" not in measured, measured
        assert len(sent) <= most + (3 if seed == 1 else 0) and sent.count("batch") == 1, sent


# ---- the judgements of single calls, per configuration of the batch ------------------------------------

def test_differences_of_the_loss_at_one_configuration_only_are_still_caught(write_submission, check_json):
    """The stand-in counts loss() over the whole batch: more loss() calls than gradient() calls means
    one call made two or more, which is what a single call was charged for."""
    # differences at the family's d = 5 configuration only: 2 (d + 1) = 12 loss() calls in one gradient() call,
    # more than the batch's gradient() calls
    path = _variant(write_submission, GRADIENT, "    if X.shape[1] != 5:\n" + "\n".join(
        "    " + line for line in GRADIENT.splitlines()) + "\n" + DIFFERENCES)
    check = _check(check_json, path, "gradcheck")
    counted = re.search(r"called loss\(\) (\d+) times in its (\d+) calls", check["message"])
    assert check["status"] == "fail" and counted and int(counted[1]) == 12 > int(counted[2]), check["message"]
    assert "at least twice in one call" in check["message"] and "by hand" in check["message"]


def test_a_gradient_that_calls_the_loss_once_per_call_keeps_full_marks(write_submission, check_json):
    path = _variant(write_submission, GRADIENT, "    loss(X, y, w)  # printed, say\n" + GRADIENT)
    check = _check(check_json, path, "gradcheck")
    assert check["status"] == "pass" and check["points"] == check["max_points"], check["message"]


def test_an_argument_changed_at_a_later_configuration_is_named(write_submission, check_json):
    path = _variant(write_submission, GRADIENT, GRADIENT.replace(
        "    return", "    if not X.is_contiguous():\n        X[0, 0] += 1.0\n    return"))
    check = _check(check_json, path, "gradcheck")
    assert check["status"] == "fail" and "gradient() modified its argument X in place" in check["message"], check


def test_an_error_at_a_later_configuration_names_it(write_submission, check_json):
    path = _variant(write_submission, GRADIENT, "    if (w == 0).all():\n        raise ValueError('zero weights')\n"
                    + GRADIENT)
    check = _check(check_json, path, "gradcheck")
    assert check["status"] == "fail", check
    assert "at gradient(), n=20, d=3, w = 0 (every margin exactly 0): ValueError: zero weights" in check["message"]


def test_an_error_at_the_spec_configuration_is_the_students_own_traceback(write_submission, check_json):
    path = _variant(write_submission, GRADIENT, "    raise ValueError('not yet')")
    check = _check(check_json, path, "gradcheck")
    assert check["status"] == "error" and "ValueError" in check["message"] and "not yet" in check["message"], check


def test_the_float32_result_is_compared_with_the_float64_one(write_submission, check_json):
    path = _variant(write_submission, GRADIENT, GRADIENT.replace(
        "    return -(", "    scale = 1.01 if X.dtype == torch.float32 else 1.0\n    return -scale * ("))
    check = _check(check_json, path, "gradcheck")
    assert check["status"] == "fail" and "on float32 inputs differs from its float64 result" in check["message"], check


def test_a_failing_loss_is_a_note_in_gradcheck_never_a_charge(write_submission, check_json):
    path = write_submission(REFERENCE + "\n\ndef loss(X, y, w):\n    raise RuntimeError('no loss')\n", name="logreg.py")
    check = _check(check_json, path, "gradcheck")
    assert check["status"] == "pass" and check["points"] == check["max_points"], check
    assert "your loss() differs from it" in check["message"] and "an error (RuntimeError)" in check["message"]


def test_stability_names_the_argument_a_float32_call_changed(write_submission, check_json):
    path = write_submission(REFERENCE + "\n\n_loss = loss\n\n\ndef loss(X, y, w):\n    if X.dtype == torch.float32:\n"
                            "        w[0] = 5.0\n    return _loss(X, y, w)\n", name="logreg.py")
    check = _check(check_json, path, "stability")
    assert check["status"] == "fail" and "loss() modified its argument w in place" in check["message"], check


def test_stability_names_the_configuration_a_loss_fails_at(write_submission, check_json):
    path = write_submission(REFERENCE + "\n\n_loss = loss\n\n\ndef loss(X, y, w):\n    if X.shape[0] == 1:\n"
                            "        raise IndexError('n=1')\n    return _loss(X, y, w)\n", name="logreg.py")
    check = _check(check_json, path, "stability")
    assert check["status"] == "fail" and "at loss(), n=1, d=2: IndexError: n=1" in check["message"], check


def test_stability_still_charges_a_gradient_with_a_graph_at_extreme_margins(write_submission, check_json):
    path = _variant(write_submission, GRADIENT, GRADIENT.replace(
        "    return -(",
        "    if X.shape[0] == 8:\n        return (-(torch.sigmoid(-u) * t) @ Xt / X.shape[0]).requires_grad_(True)\n"
        "    return -("))
    check = _check(check_json, path, "stability")
    assert check["status"] == "fail" and "requires_grad=True" in check["message"], check


def test_the_harness_loop_functions_give_the_spec_functions_values_bit_for_bit():
    """train()'s gradient and loss (built once per train() call, x~ and t kept while X and y are
    unchanged) equal _spec_gradient and _spec_loss exactly, also after an in-place change of X."""
    import torch

    from dldiy.graders.sandbox.submission import load_module_from
    from dldiy.graders.course.exercise import load_exercise

    harness = load_module_from(load_exercise("exercise-1").harness_path, "_ex1_loop_functions")
    gradient, loss = harness.harness_gradient(), harness.harness_loss_fn()
    X, y, w = harness._problem(5, 30, 3)
    for _ in range(3):
        w = w - 0.1 * gradient(X, y, w)
        assert torch.equal(gradient(X, y, w), harness._spec_gradient(X, y, w))
        assert torch.equal(loss(X, y, w), harness._spec_loss(X, y, w))
    X.mul_(2)  # the same object, a new version: x~ is built again
    assert torch.equal(gradient(X, y, w), harness._spec_gradient(X, y, w))
    assert torch.equal(loss(X.float(), y, w.float()), harness._spec_loss(X.float(), y, w.float()))
