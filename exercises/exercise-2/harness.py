"""exercise-2 probes: data from the seed (numpy), the submission called on it, plain numbers back.

The grader's own least-squares solution and stability limit are computed here with numpy in float64,
never with the submission's functions, so one wrong function cannot hide another.
"""

import numpy as np
import torch

from dldiy.graders.api import expect_history, expect_tensor
from dldiy.graders.gradcheck import block, numeric_gradient
from dldiy.graders.endpoint import RemoteError


def _design(seed, n, d, collinearity=None):
    """X (n, d) standard normal; with `collinearity`, feature 1 = feature 0 + collinearity * noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if collinearity is not None:
        X[:, 1] = X[:, 0] + collinearity * rng.normal(size=n)
    return X, rng


def _problem(seed, n, d, collinearity=None, targets=1):
    """X, targets y = X~ w_true + noise (one column per target), and w0, as float64 numpy arrays."""
    X, rng = _design(seed, n, d, collinearity)
    w_true = rng.normal(size=(d + 1, targets))
    Y = _with_bias(X) @ w_true + 0.1 * rng.normal(size=(n, targets))
    w0 = np.random.default_rng(seed + 10_000).normal(0.0, 0.5, d + 1)
    return X, (Y[:, 0] if targets == 1 else Y), w0


def _with_bias(X):
    return np.hstack([X, np.ones((len(X), 1))])


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def _train(sub, X, y, w0, lr, steps, d):
    w, losses = sub.call("train", X, y, w0.clone(), lr, steps)
    w = expect_tensor(w, "train() (its first result, w)", shape=(d + 1,), dtype="float", finite=False)
    losses = expect_history(losses, steps)
    return w, losses


def exact_solution(sub, seed, p):
    n, d = p["n"], p["d"]
    dims = {"n": n, "d": d}
    X, y, _ = _problem(seed, n, d)
    w = sub.call("fit_exact", _t(X), _t(y), dims=dims)
    cases = [{"name": "well-conditioned design (standard normal features): w~", "shape": [d + 1],
              "values": w.detach().double().tolist()}]
    # Ill-conditioned: two almost identical features, cond(X~) > 1e7. w~ is poorly determined there;
    # what a backward-stable method guarantees is a tiny backward error on the normal equations.
    X, Y, _ = _problem(seed, n, d, collinearity=p["collinearity"], targets=p["targets"])
    Xt = _with_bias(X)
    A = Xt.T @ Xt
    errors = []
    for j in range(p["targets"]):
        w = sub.call("fit_exact", _t(X), _t(Y[:, j]), dims=dims).detach().double().numpy()
        b = Xt.T @ Y[:, j]
        errors.append(float(np.linalg.norm(A @ w - b)
                            / (np.linalg.norm(A, 2) * np.linalg.norm(w) + np.linalg.norm(b))))
    cases.append({"name": f"ill-conditioned design (feature 1 = feature 0 + {p['collinearity']:g} x noise, "
                          f"cond(X~) > {1 / p['collinearity']:.0e}): backward error of the normal equations "
                          f"|A w~ - b| / (|A| |w~| + |b|) for {p['targets']} targets y",
                  "shape": [p["targets"]], "values": errors})
    return {"cases": cases}


def gradcheck(sub, seed, p):
    X, y, _ = _problem(seed, p["n"], p["d"])
    X, y = _t(X), _t(y)
    w = _t(np.random.default_rng(seed).normal(0, 1, p["d"] + 1))
    dims = {"n": p["n"], "d": p["d"]}
    analytic = sub.call("gradient", X, y, w.clone(), dims=dims)
    numeric = numeric_gradient(lambda v: sub.call("loss", X, y, v, dims=dims), w)
    return {"blocks": [block("w", analytic, numeric)]}


def first_loss(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"])
    steps = p["steps"]
    _, losses = _train(sub, _t(X), _t(y), _t(w0), p["lr"], max(steps) + 1, p["d"])
    return {"steps": steps, "losses": [losses[k] for k in steps], "n": p["n"]}


def convergence(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"])
    w_star = np.linalg.lstsq(_with_bias(X), y, rcond=None)[0]
    w, losses = _train(sub, _t(X), _t(y), _t(w0), p["lr"], p["budget"], p["d"])
    distance = float(np.linalg.norm(w.detach().double().numpy() - w_star) / np.linalg.norm(w_star))
    return {p["metric"]: distance, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)]}


def divergence(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"])
    Xt = _with_bias(X)
    limit = 2.0 / np.linalg.eigvalsh(2.0 / len(X) * Xt.T @ Xt).max()  # GD is stable iff lr < 2/lambda_max
    lr, steps = p["factor"] * limit, p["steps"]
    measured = {"lr": lr, "limit": limit, "steps": steps}
    try:
        _, losses = sub.get("train")(_t(X), _t(y), _t(w0), lr, steps)
    except RemoteError as e:  # raising at divergence is what this check reports
        if e.message.startswith("NotImplementedError"):
            raise
        measured["raised"] = e.message
        return measured
    # Stopping early at the first nan is allowed here: the history still shows the divergence.
    measured["losses"] = [float(v) for v in losses]
    return measured
