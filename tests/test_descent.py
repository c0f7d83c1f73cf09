"""graders/descent.py: a gradient method's weights pass at any learning rate and momentum; an endpoint reached
another way, or a rule that is no gradient method, does not (property-based, on random quadratics and a
logistic loss)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dldiy.graders.descent import follows_descent, heavy_ball, probe_steps
from dldiy.graders.kinds.invariants import Violation


def _quadratic(seed: int, d: int = 4):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(d, d))
    H = M @ M.T / d + 0.5 * np.eye(d)
    b = rng.normal(size=d)
    return H, b, np.linalg.solve(H, b), rng.normal(size=d)


def _tolerance(w_star):
    return lambda want: 1e-6 * float(np.linalg.norm(want - w_star)) + 1e-12


def _judge(weights, w0, gradient, w_star):
    follows_descent(weights, w0, gradient, _tolerance(w_star), "on a random quadratic")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), lr_scale=st.floats(0.05, 0.9), beta=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
       shift=st.sampled_from([0, 1]))
def test_a_gradient_method_at_any_learning_rate_and_momentum_passes(seed, lr_scale, beta, shift):
    """Plain descent (beta 0), momentum and gradients that accumulate (beta 1), each at its own learning rate, with or
    without an update skipped: first-loss's charges, never this one's."""
    H, b, w_star, w0 = _quadratic(seed)
    lr = lr_scale / np.linalg.eigvalsh(H).max() * (1 - beta / 2)
    gradient = lambda w, _k: H @ w - b  # noqa: E731
    probes = probe_steps(seed, 200)
    path = heavy_ball(w0, gradient, lr, beta, max(probes))
    _judge({k: path[max(k - shift, 0)] for k in probes}, w0, gradient, w_star)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), honest_until=st.integers(0, 30))
def test_an_endpoint_reached_another_way_fails(seed, honest_until):
    """Descent while steps are few (or never), the minimum itself after: the closed form answered for descent."""
    H, b, w_star, w0 = _quadratic(seed)
    gradient = lambda w, _k: H @ w - b  # noqa: E731
    probes = probe_steps(seed, 200)
    path = heavy_ball(w0, gradient, 0.5 / np.linalg.eigvalsh(H).max(), 0.0, max(probes))
    with pytest.raises(Violation, match="not gradient descent's at any learning rate"):
        _judge({k: path[k] if k <= honest_until else w_star for k in probes}, w0, gradient, w_star)


@pytest.mark.parametrize("rule", ["newton", "normalised", "straight line"])
def test_a_rule_that_is_no_gradient_method_fails(rule):
    """Damped Newton steps, steps normalised to a fixed length, a straight line from w0 to the minimum: each ends
    where descent does, none is a gradient method."""
    H, b, w_star, w0 = _quadratic(7)
    gradient = lambda w, _k: H @ w - b  # noqa: E731
    probes = probe_steps(7, 200)
    weights, w = {}, w0
    for k in range(1, max(probes) + 1):
        g = gradient(w, k)
        if rule == "newton":
            w = w - 0.3 * np.linalg.solve(H, g)
        elif rule == "normalised":
            w = w - 0.05 * g / np.linalg.norm(g)
        else:
            w = w0 + (1 - 0.8 ** k) * (w_star - w0)
        weights[k] = w
    with pytest.raises(Violation) as raised:
        _judge({k: weights[k] for k in probes}, w0, gradient, w_star)
    assert "train() returns w = [" in str(raised.value) or "first step does not move" in str(raised.value)


def test_stochastic_descent_reads_the_batch_of_each_step():
    """A minibatch gradient (the step's own batch): SGD in batch order passes, SGD over the batches shuffled does not."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    batches = [np.arange(8 * (k % 5), 8 * (k % 5) + 8) for k in range(200)]
    gradient = lambda w, k: 2 * X[batches[k]].T @ (X[batches[k]] @ w - y[batches[k]]) / 8  # noqa: E731
    w0, w_star = np.zeros(3), np.linalg.lstsq(X, y, rcond=None)[0]
    probes = probe_steps(11, 200)
    path = heavy_ball(w0, gradient, 0.05, 0.0, max(probes))
    _judge({k: path[k] for k in probes}, w0, gradient, w_star)
    order = np.random.default_rng(0).permutation(200)
    shuffled = heavy_ball(w0, lambda w, k: gradient(w, int(order[k])), 0.05, 0.0, max(probes))
    with pytest.raises(Violation):
        _judge({k: shuffled[k] for k in probes}, w0, gradient, w_star)
