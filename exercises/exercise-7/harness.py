"""exercise-7 probes: data from the seed (numpy), the submission called on it, plain numbers back.

Whether the returned hyperplane separates the training set is recounted here from w (a mistake is
t_i <x~_i, w> <= 0), never taken from the submission. Novikoff's bound (R / gamma)^2 is computed here
too, from the data: R = max_i |x~_i|, and gamma the margin of a separating direction found by
projected gradient on the hard-margin dual. Any separating direction's margin is at most the best
margin, so the bound is a valid one. The judge reads the bound from the *reference's* measurement
(expected.json, or a live reference run for hidden seeds), never from the submission's.
"""

import numpy as np
import torch

from dldiy.graders.api import ApiError, expect_tensor
from dldiy.graders.data import gaussian_blobs


def _with_bias(X):
    return np.hstack([X, np.ones((len(X), 1))])


def _blobs(seed, n, distance, margin):
    """X (n, 2) and labels t in {-1, +1} from two Gaussians (graders/data.py)."""
    X, y = gaussian_blobs(seed, n, classes=2, dim=2, distance=distance, margin=margin)
    return X, 2 * y - 1


def _train(sub, X, t, w0, epochs):
    """The submission's train() on float64 X, int64 labels: (w as numpy, mistakes per epoch)."""
    w, mistakes = sub.call("train", torch.tensor(X), torch.tensor(t), torch.tensor(w0), epochs)
    w = expect_tensor(w, "train() (its first result, w)", shape=(X.shape[1] + 1,), dtype="float")
    mistakes = [int(m) for m in mistakes]
    if not 1 <= len(mistakes) <= epochs or min(mistakes) < 0:
        raise ApiError(f"train() returned mistakes per epoch {mistakes[:10]} for epochs={epochs}; expected "
                       f"between 1 and {epochs} counts, one per epoch run, each >= 0")
    return w.detach().double().numpy(), mistakes


def _errors(X, t, w):
    """Training points on the wrong side of, or on, the hyperplane <x~, w> = 0."""
    return int(np.sum(t * (_with_bias(X) @ w) <= 0))


def separating_margin(Z, iterations=300):
    """max over iterates of min_i <z_i, v> / |v|, v = Z^T alpha, by FISTA on the hard-margin dual
    max_{alpha >= 0} sum(alpha) - |Z^T alpha|^2 / 2 (rows z_i = t_i x~_i). A lower bound on the best
    margin, and positive when the data is separable (within 3% of the optimum in 300 iterations)."""
    step = 1.0 / np.linalg.norm(Z, 2) ** 2
    alpha = beta = np.zeros(len(Z))
    best = -np.inf
    for k in range(1, iterations + 1):
        new = np.maximum(0.0, beta + step * (1.0 - Z @ (Z.T @ beta)))
        beta, alpha = new + (k - 1) / (k + 2) * (new - alpha), new
        v = Z.T @ alpha
        if np.linalg.norm(v) > 0:
            best = max(best, float((Z @ v).min() / np.linalg.norm(v)))
    return best


def _termination(sub, X, t, epochs):
    w, mistakes = _train(sub, X, t, np.zeros(X.shape[1] + 1), epochs)
    return {"converged": mistakes[-1] == 0, "errors": _errors(X, t, w), "n": len(t),
            "updates": sum(mistakes), "epochs": len(mistakes), "budget": epochs,
            "boundary": {"w": w.tolist(), "points": X.tolist(), "labels": ((t + 1) // 2).tolist(), "bias": 1.0}}


def novikoff(sub, seed, p):
    X, t = _blobs(seed, p["n"], p["distance"], p["margin"])
    measured = _termination(sub, X, t, p["epochs"])
    R = float(np.linalg.norm(_with_bias(X), axis=1).max())
    gamma = separating_margin(_with_bias(X) * t[:, None])
    if gamma <= 0:
        raise RuntimeError(f"exercise-7 harness: no separating direction found at seed {seed}")
    bound = (R / gamma) ** 2
    measured.update(bound=bound, bound_text=f"Novikoff's bound (R/gamma)^2 = ({R:.4g}/{gamma:.4g})^2 = {bound:.4g}")
    return measured


def held_out(sub, seed, p):
    # One draw from the same two Gaussians, split: the first n points train, the next n_test test.
    X, t = _blobs(seed, p["n"] + p["n_test"], p["distance"], p["margin"])
    Xtr, ttr, Xte, tte = X[:p["n"]], t[:p["n"]], X[p["n"]:], t[p["n"]:]
    w, _ = _train(sub, Xtr, ttr, np.zeros(3), p["epochs"])
    pred = sub.call("predict", torch.tensor(Xte), torch.tensor(w), dims={"n": p["n_test"]})
    accuracy = float((pred.detach().cpu().double().numpy() == tte).mean())
    return {p["metric"]: accuracy}


def no_false_convergence(sub, seed, p):
    X, t = _blobs(seed, p["n"], p["distance"], None)
    return _termination(sub, X, t, p["epochs"])


def first_update(sub, seed, p):
    X, t = _blobs(seed, p["n"], p["distance"], None)
    w0 = np.random.default_rng(seed + 10_000).normal(0.0, 1.0, 3)
    wrong = np.flatnonzero(t * (_with_bias(X) @ w0) <= 0)
    if len(wrong) == 0:  # cannot happen on these overlapping classes; say so if it ever does
        raise RuntimeError(f"exercise-7 harness: w0 misclassifies no point at seed {seed}")
    first = int(wrong[0])  # the first point w0 gets wrong
    w_first, _ = _train(sub, X[: first + 1], t[: first + 1], w0, 1)
    w_epoch, _ = _train(sub, X, t, w0, 1)
    _, mistakes = _train(sub, X, t, w0, p["epochs"])
    # From w0 = 0 on separable data: every first score is 0 (a mistake), and the run must stop after
    # the first epoch without a mistake, so the list of counts ends at its first 0.
    Xs, ts = _blobs(seed, p["n"], p["separable_distance"], p["separable_margin"])
    ts = ts if ts[0] > 0 else -ts  # first point +1 at score 0: a mistake, though t * 0 > 0 is not, nor t / 0
    w_zero, mistakes_zero = _train(sub, Xs, ts, np.zeros(3), p["separable_epochs"])
    return {"cases": [
        {"name": f"w after the first update (on point {first}, the first that w0 misclassifies)",
         "shape": [3], "values": w_first.tolist()},
        {"name": "w after one epoch from w0", "shape": [3], "values": w_epoch.tolist()},
        {"name": f"updates in each epoch (at most {p['epochs']} epochs from w0)", "shape": [len(mistakes)],
         "values": [float(m) for m in mistakes]},
        {"name": "w after training from w0 = 0 on separable data", "shape": [3], "values": w_zero.tolist()},
        {"name": f"updates in each epoch from w0 = 0 on separable data (at most {p['separable_epochs']} epochs, "
                 "stopping after the first epoch without a mistake)",
         "shape": [len(mistakes_zero)], "values": [float(m) for m in mistakes_zero]},
    ]}


def predict_boundary(sub, seed, p):
    """predict() at points whose score <w, x~> is exactly 0 (a -1), just above 0, and of both signs.
    w = [1, -2, 1/2] and dyadic points keep every score exact in floating point."""
    rng = np.random.default_rng(seed)
    x2 = rng.integers(-8, 9, p["n"]) / 2.0
    score = rng.choice(np.array(p["scores"], dtype=float), p["n"])
    X = np.stack([2.0 * x2 - 0.5 + score, x2], axis=1)
    w = np.array([1.0, -2.0, 0.5])
    pred = sub.call("predict", torch.tensor(X), torch.tensor(w), dims={"n": p["n"]})
    return {"cases": [{"name": "labels at scores " + ", ".join(f"{s:g}" for s in p["scores"]) + " (in random order)",
                       "shape": [p["n"]], "values": [float(v) for v in pred.detach().cpu().double().numpy()]}]}
