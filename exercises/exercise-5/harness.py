"""exercise-5 probes: data and initialisations built from the seed, the submission's autograd
Functions and MLP called, plain numbers returned. Accuracies and hidden activations are computed
here with torch's own ops from the submission's parameters, not by the submission."""

import numpy as np
import torch

from dldiy.graders.api import ApiError, expect_history, expect_tensor
from dldiy.graders.coverage import measure_coverage
from dldiy.graders.data import gaussian_blobs
from dldiy.graders.gradcheck import function_blocks
from dldiy.graders.symmetry import layer_units

ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU", "softplus": "Softplus"}
TORCH_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
                     "softplus": torch.nn.functional.softplus}


def xor_blobs(seed, n, distance=6.0, margin=0.5):
    """Four separable Gaussians on a circle, opposite ones sharing a label: XOR, which no line separates."""
    X, k = gaussian_blobs(seed, n, classes=4, dim=2, distance=distance, margin=margin)
    return torch.tensor(X), torch.tensor(k % 2, dtype=torch.float64)


def harness_params(seed, sizes):
    """[W1, b1, W2, b2, ...], W_l ~ N(0, 1/d_in), b_l ~ N(0, 0.1^2): the same for every submission."""
    rng = np.random.default_rng(seed + 10_000)
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        params += [torch.tensor(rng.normal(0, d_in ** -0.5, (d_in, d_out))), torch.tensor(rng.normal(0, 0.1, d_out))]
    return params


def leaves(params):
    return [p.detach().clone().double().requires_grad_(True) for p in params]


def hidden_activations(X, params, activation):
    """The hidden layers' outputs, computed here with torch's own ops (trusted)."""
    f, h, out = TORCH_ACTIVATIONS[activation], X, []
    for W, b in list(zip(params[0::2], params[1::2]))[:-1]:
        h = f(h @ W.detach().double() + b.detach().double())
        out.append(h)
    return out


def logits(X, params, activation):
    h = ([X] + hidden_activations(X, params, activation))[-1]
    return h @ params[-2].detach().double() + params[-1].detach().double()


def gradcheck_linear(sub, seed, p):
    g = torch.Generator().manual_seed(seed)
    n, d = 5, 4  # a square W: a missing transpose gives wrong values, not a shape error
    X, W, b = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((n, d), (d, d), (d,)))
    Linear = sub.get("Linear")
    return {"blocks": function_blocks(lambda X, W, b: Linear.apply(X, W, b), [X, W, b],
                                      ["Linear: X", "Linear: W", "Linear: b"])}


def gradcheck_activations(sub, seed, p):
    g = torch.Generator().manual_seed(seed)
    blocks = []
    for name, cls in ACTIVATIONS.items():
        # |x| in [0.1, 3], so ReLU's kink at 0 is never inside a finite difference
        x = (0.1 + 2.9 * torch.rand(4, 3, generator=g, dtype=torch.float64)) * torch.sign(
            torch.randn(4, 3, generator=g, dtype=torch.float64))
        Function = sub.get(cls)
        blocks += function_blocks(lambda x, F=Function: F.apply(x), [x], [f"{cls}: x"])
    return {"blocks": blocks}


def _away_from_kink(seed, X, sizes, activation):
    """Harness parameters whose pre-activations all stay >= 1e-3 from 0 (for ReLU's kink)."""
    for attempt in range(100):
        params = harness_params(seed + 1000 * attempt, sizes)
        h, ok = X, True
        for W, b in list(zip(params[0::2], params[1::2]))[:-1]:
            pre = h @ W + b
            ok &= bool(pre.abs().min() >= 1e-3)
            h = TORCH_ACTIVATIONS[activation](pre)
        if ok or activation != "relu":
            return params
    raise RuntimeError("no parameters away from the kink")  # not the submission's fault


def gradcheck_mlp(sub, seed, p):
    sizes = p["sizes"]
    X, y = xor_blobs(seed, p["n"])
    forward = sub.get("mlp_forward")
    blocks = []
    for activation in p["activations"]:
        params = _away_from_kink(seed, X, sizes, activation)
        names = [f"{activation} network: {k}{i // 2 + 1}" for i, k in enumerate("Wb" * (len(params) // 2))]
        blocks += function_blocks(lambda X, *ps, a=activation: forward(X, list(ps), a), [X] + params,
                                  [f"{activation} network: X"] + names)
    z = logits(X, harness_params(seed, sizes), "tanh")
    blocks += function_blocks(lambda z: sub.get("loss")(z, y), [z], ["loss: logits"])
    return {"blocks": blocks}


def coverage(sub, seed, p):
    X, y = xor_blobs(seed, p["n"])
    params = leaves(harness_params(seed, p["sizes"]))
    value = expect_tensor(sub.call("loss", sub.call("mlp_forward", X, params, p["activation"]), y), "loss()",
                          shape=())
    if not value.requires_grad:
        return {"where": "loss(mlp_forward(X, params)).backward()",
                "parameters": [{"name": n, "shape": list(q.shape), "grad": None} for n, q in zip(_names(params), params)]}
    value.backward()
    return measure_coverage(zip(_names(params), params), f"one backward pass through the {p['activation']} MLP "
                            f"{'-'.join(map(str, p['sizes']))}")


def _names(params):
    return [f"{k}{i // 2 + 1}" for i, k in enumerate("Wb" * (len(params) // 2))]


def _train(sub, X, y, params, lr, steps, activation):
    result = sub.call("train", X, y, params, lr, steps, activation)
    try:
        params, losses = result
        params, losses = list(params), [float(v) for v in losses]
    except (TypeError, ValueError):
        raise ApiError("train() must return (params, losses): the list of parameters and one loss per step") from None
    losses = expect_history(losses, steps)
    return params, losses


def symmetry(sub, seed, p):
    X, y = xor_blobs(seed, p["n"])
    init = sub.call("init_params", list(p["sizes"]), torch.Generator().manual_seed(seed))
    if not isinstance(init, (list, tuple)) or len(init) != 2 * (len(p["sizes"]) - 1):
        raise ApiError(f"init_params() must return a list [W1, b1, W2, b2, ...] of {2 * (len(p['sizes']) - 1)} tensors")
    probe_X = X[: p["probe_points"]]
    snapshots = [{"name": "at initialisation", "layers": [
        layer_units(f"hidden layer {i + 1}", h) for i, h in enumerate(hidden_activations(probe_X, init, p["activation"]))]}]
    trained, _ = _train(sub, X, y, leaves(init), p["lr"], p["steps"], p["activation"])
    snapshots.append({"name": f"after {p['steps']} steps of train()", "layers": [
        layer_units(f"hidden layer {i + 1}", h) for i, h in enumerate(hidden_activations(probe_X, trained, p["activation"]))]})
    return {"snapshots": snapshots}



def init_scale(sub, seed, p):
    """log2(d_in * mean(W_l^2)) per layer: 0 for W_l ~ N(0, 1/d_in) up to sampling error (relative std
    sqrt(2 / (d_in d_out)) of the mean square, under 4% here), 1 for He's 2/d_in, |.| < 0.5 for Glorot's
    2/(d_in + d_out) at these sizes. Judged against 0 with a tolerance of a factor ~3 in variance, so any
    fan-in scaling passes, drawn in any order, while N(0, 1) or N(0, 1/d_in^2) is off by log2(d_in) = 6."""
    sizes = list(p["sizes"])
    init = sub.call("init_params", sizes, torch.Generator().manual_seed(seed))
    if not isinstance(init, (list, tuple)) or len(init) != 2 * (len(sizes) - 1):
        raise ApiError(f"init_params() must return a list [W1, b1, W2, b2, ...] of {2 * (len(sizes) - 1)} tensors")
    scaled = []
    for l, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = expect_tensor(init[2 * l], f"init_params(...)[{2 * l}] (W{l + 1})", shape=(d_in, d_out), dtype="float")
        scaled.append(float(np.log2(d_in * float((W.detach().double() ** 2).mean()))))
    return {"cases": [{"name": f"log2(d_in * mean(W_l^2)) for layers {' -> '.join(map(str, sizes))} (0 when W_l ~ N(0, 1/d_in))",
                       "shape": [len(scaled)], "values": scaled, "target": [0.0] * len(scaled)}]}


def first_loss(sub, seed, p):
    X, y = xor_blobs(seed, p["n"], margin=None, distance=4.0)
    steps = p["steps"]
    _, losses = _train(sub, X, y, leaves(harness_params(seed, p["sizes"])), p["lr"], max(steps) + 1, p["activation"])
    return {"steps": steps, "losses": [losses[s] for s in steps], "n": p["n"]}


def convergence(sub, seed, p):
    X, y = xor_blobs(seed, p["n"])
    trained, losses = _train(sub, X, y, leaves(harness_params(seed, p["sizes"])), p["lr"], p["budget"], p["activation"])
    with torch.no_grad():
        accuracy = ((logits(X, trained, p["activation"]).reshape(-1) >= 0).double() == y).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)]}
