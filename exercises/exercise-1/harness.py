"""exercise-1 probes: each builds its inputs from the seed (trusted data), calls the submission, and
returns plain numbers. The judging happens in the parent (graders/<kind>.py)."""

import numpy as np
import torch

from dldiy.graders.api import expect_history, expect_tensor
from dldiy.graders.data import gaussian_blobs
from dldiy.graders.gradcheck import block, numeric_gradient
from dldiy.graders.parity import measure_parity
from dldiy.graders.placement import measure_placement


def _problem(seed, n, d, distance=4.0, margin=None, dtype=torch.float64):
    X, y = gaussian_blobs(seed, n, classes=2, dim=d, distance=distance, margin=margin)
    w0 = np.random.default_rng(seed + 10_000).normal(0.0, 0.5, d + 1)
    return (torch.tensor(X, dtype=dtype), torch.tensor(y), torch.tensor(w0, dtype=dtype))


def _train(sub, X, y, w0, lr, steps):
    w, losses = sub.call("train", X, y, w0.clone(), lr, steps)
    d = X.shape[1]
    w = expect_tensor(w, "train() (its first result, w)", shape=(d + 1,), dtype="float", finite=False)
    losses = expect_history(losses, steps)
    return w, losses


def gradcheck(sub, seed, p):
    X, y, _ = _problem(seed, p["n"], p["d"])
    w = torch.tensor(np.random.default_rng(seed).normal(0, 1, p["d"] + 1))
    dims = {"n": p["n"], "d": p["d"]}
    analytic = sub.call("gradient", X, y, w.clone(), dims=dims)
    numeric = numeric_gradient(lambda v: sub.call("loss", X, y, v, dims=dims), w)
    return {"blocks": [block("w", analytic, numeric)]}


def first_loss(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"])
    steps = p["steps"]
    _, losses = _train(sub, X, y, w0, p["lr"], max(steps) + 1)
    return {"steps": steps, "losses": [losses[k] for k in steps], "n": p["n"]}


def convergence(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"], distance=6.0, margin=0.5)
    w, losses = _train(sub, X, y, w0, p["lr"], p["budget"])
    # Accuracy by the spec's convention x~ = [x, -1], computed here rather than by the submission.
    scores = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype)], 1) @ w.detach().to(X.dtype)
    accuracy = ((scores >= 0).long() == y).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)],
            "boundary": {"w": w.tolist(), "points": X.tolist(), "labels": y.tolist(), "bias": -1.0}}


def stability(sub, seed, p):
    # One feature, two points with t = -1 and +1: w = [+-1000, 0] puts every margin at -+1000.
    X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    cases = []
    for sign, label in ((1.0, "-1000"), (-1.0, "+1000")):
        w = torch.tensor([1000.0 * sign, 0.0], dtype=torch.float64)
        loss = expect_tensor(sub.get("loss")(X, y, w.clone()), "loss()", shape=(), finite=False)
        grad = expect_tensor(sub.get("gradient")(X, y, w.clone()), "gradient()", shape=(2,), finite=False)
        cases.append({"name": f"loss at margins {label}", "value": loss.item()})
        cases.append({"name": f"gradient norm at margins {label}", "value": grad.norm().item()})
    return {"cases": cases}


def _device_run(sub, seed):
    def run(device):
        X, y, w = _problem(seed, 16, 2, dtype=torch.float32)
        X, y, w = X.to(device), y.to(device), w.to(device)
        return {"loss": sub.get("loss")(X, y, w), "gradient": sub.get("gradient")(X, y, w)}
    return run


def placement(sub, seed, p):
    return measure_placement(_device_run(sub, seed))


def parity(sub, seed, p):
    return measure_parity(_device_run(sub, seed))
