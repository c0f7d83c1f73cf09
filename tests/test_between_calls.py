"""State kept between calls (blind round 9): the halves that run in the student's process, on toy functions.

graders/batched.overwritten_here (a result that a later call writes into: a module-level buffer or list, a mutable
default) and reads_changed_here (a result kept from an earlier call keyed by the tensor: functools.lru_cache, id(X));
exercise-3's Scale, evaluate() and test_set() probes. The checks that use them run end to end in `dldiy validate`
(buggy/exercise-{1,2,3}/*, corpus "blind red team, round 9")."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from dldiy.graders.batched import overwritten_here, reads_changed_here
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.sandbox.submission import load_module_from


def _augment(X):
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)


def _gradient(X, y, w):
    Xt = _augment(X)
    return 2 * Xt.T @ (Xt @ w - y) / len(X)


_BUFFER: dict = {}


def _gradient_into_buffer(X, y, w):
    out = _BUFFER.setdefault(w.shape, torch.empty_like(w))
    return out.copy_(_gradient(X, y, w))


_LOSSES: list = []


def _train(X, y, w0, lr, steps, shared=False):
    w, losses = w0.clone(), _LOSSES if shared else []
    losses.clear()
    for _ in range(steps):
        losses.append(float(((_augment(X) @ w - y) ** 2).mean()))
        w = w - lr * _gradient(X, y, w)
    return w, losses


def _calls(*ws):
    X, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    return [[X.clone(), y.clone(), w] for w in ws]


def test_a_result_a_later_call_writes_into_is_found_and_a_fresh_one_is_not():
    calls = _calls(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    assert overwritten_here(_gradient, calls) == [None, None]
    found = overwritten_here(_gradient_into_buffer, calls)
    assert found[1] is None and found[0][0][0].startswith("[")
    runs = [[*_calls(torch.zeros(3, dtype=torch.float64))[0], lr, 3] for lr in (0.1, 0.5)]
    assert overwritten_here(_train, runs) == [None, None]
    shared = overwritten_here(functools.partial(_train, shared=True), runs)
    assert shared[0][0][0] == "[1]", shared  # the losses, item 1 of (w, losses)


def test_an_answer_kept_by_the_tensor_identity_is_found_and_a_computed_one_is_not():
    args = _calls(torch.ones(3, dtype=torch.float64))[0]
    again, fresh = reads_changed_here(_gradient, args, 0, 3.0)
    assert torch.equal(again, fresh)

    @functools.lru_cache(maxsize=4)
    def cached(X):
        return _augment(X)

    def gradient(X, y, w):
        Xt = cached(X)
        return 2 * Xt.T @ (Xt @ w - y) / len(X)
    again, fresh = reads_changed_here(gradient, args, 0, 3.0)
    assert not torch.allclose(again, fresh)


def _ex3():
    return load_module_from(load_exercise("exercise-3").harness_path, "_test_between_calls_ex3")


def test_exercise_3_scale_is_held_to_its_max_value_not_the_images_maximum():
    harness = _ex3()

    class Scale:
        def __init__(self, max_value, own=False):
            self.max_value, self.own = max_value, own

        def __call__(self, images):
            return images / (images.max() if self.own else self.max_value)
    family = [list(c) for c in harness.SCALE_FAMILY]
    assert all(row[2] is None for row in harness.scale_here(Scale, family))
    rows = harness.scale_here(lambda m: Scale(m, own=True), family)
    want = [torch.allclose(got, images / m) for (m, _), (images, got, _) in zip(harness.SCALE_FAMILY, rows)]
    assert want == [False, False, True]  # the digits' own case (max 16 = max_value) cannot tell them apart


def test_exercise_3_evaluate_must_leave_the_gradients_and_test_set_must_hand_out_new_tensors():
    harness = _ex3()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    images, labels = torch.randn(5, 1, 8, 8), torch.arange(5)

    def evaluate(model, images, labels, zero=False):
        if zero:
            model.zero_grad()
        with torch.no_grad():
            return float(nn.functional.cross_entropy(model(images), labels)), 0.0
    assert harness.gradients_after_evaluate(evaluate, model, images, labels) is None
    assert harness.gradients_after_evaluate(functools.partial(evaluate, zero=True), model, images, labels)[0] == "1.weight"
    assert all(q.grad is None for q in model.parameters())  # put back as found

    kept = (torch.randn(4, 1, 8, 8), torch.arange(4))
    assert harness.test_set_written_here(lambda: (kept[0].clone(), kept[1].clone())) is False
    before = kept[0].clone()
    assert harness.test_set_written_here(lambda: kept) is True
    assert torch.equal(kept[0], before)  # put back as found
