"""exercise-8 probes: convolutions and max-pooling by hand, then a small CNN on the 8x8 digits.

Every input and initialisation is built here from the seed; torch's own ops (F.conv2d, F.max_pool2d
and their autograd) give the targets of the agreement checks.
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dldiy.graders.api import ApiError, expect_history, expect_tensor
from dldiy.graders.gradcheck import function_blocks
from dldiy.graders.parity import measure_parity
from dldiy.graders.placement import measure_placement


# ---- data -------------------------------------------------------------------------------------------

def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 digits shipped inside scikit-learn, pixels scaled to [0, 1], without importing
    sklearn (its import alone costs about a second): the same file sklearn.datasets.load_digits reads."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as sklearn_digits  # the slow, documented way

        d = sklearn_digits()
        return d.data / 16.0, d.target.astype(np.int64)
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",")
    return raw[:, :-1] / 16.0, raw[:, -1].astype(np.int64)


def _digits_split(seed: int, n_train: int):
    X, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(X))
    X = torch.tensor(X[order], dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y[order])
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _init_params(seed: int, channels: int, dtype=torch.float32, device="cpu") -> dict:
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for conv and linear layers."""
    rng = np.random.default_rng(seed + 10_000)
    def u(shape, fan_in):
        bound = 1 / np.sqrt(fan_in)
        return torch.tensor(rng.uniform(-bound, bound, shape), dtype=dtype, device=device).requires_grad_(True)
    flat = channels * 4 * 4
    return {"conv_w": u((channels, 1, 3, 3), 9), "conv_b": u((channels,), 9),
            "fc_w": u((10, flat), flat), "fc_b": u((10,), flat)}


def _train(sub, seed, p, steps):
    Xtr, ytr, Xte, yte = _digits_split(seed, p["n_train"])
    params = _init_params(seed, p["channels"])
    result = sub.call("train", params, Xtr, ytr, p["lr"], steps, p["batch_size"])
    if not isinstance(result, tuple) or len(result) != 2:
        raise ApiError("train() must return (params, losses)")
    params, losses = result
    losses = expect_history(losses, steps)
    return params, losses, Xte, yte


# ---- agreement with torch ---------------------------------------------------------------------------

def _tensor(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def _case(name, measured, target):
    measured = expect_tensor(measured, name, shape=tuple(target.shape), dtype="float")
    return {"name": name, "shape": list(target.shape), "values": measured.detach().reshape(-1).tolist(),
            "target": target.detach().reshape(-1).tolist()}


def _with_grads(fn, inputs, cotangent):
    """fn(*inputs) and the gradients of <fn(*inputs), cotangent> with respect to each input."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(cotangent.shape):
        return out, [None] * len(inputs)  # _case reports the wrong shape
    if not out.requires_grad:
        raise ApiError("the output does not require grad: is the result built with torch.autograd.Function.apply?")
    return out, torch.autograd.grad(out, inputs, cotangent, allow_unused=True)


def _agreement(name, fn, target_fn, inputs, input_names, gen):
    """Cases for fn's output and its gradients against torch's target_fn, on the same inputs."""
    with torch.no_grad():
        cotangent = _tensor(gen, *target_fn(*inputs).shape)
    target, target_grads = _with_grads(target_fn, inputs, cotangent)
    got, got_grads = _with_grads(fn, inputs, cotangent)
    cases = [_case(f"{name}: output", got, target)]
    for what, g, t in zip(input_names, got_grads, target_grads):
        if g is None:
            raise ApiError(f"{name}: backward returned no gradient for {what}")
        cases.append(_case(f"{name}: gradient of {what}", g, t))
    return cases


def conv_agreement(sub, seed, p):
    """Output and the three gradients of the hand conv2d against F.conv2d, per configuration."""
    conv2d = sub.get("conv2d")
    cases = []
    for N, C, H, W, K, kh, kw, stride, padding in p["grid"]:
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        inputs = (_tensor(gen, N, C, H, W), _tensor(gen, K, C, kh, kw), _tensor(gen, K))
        config = f"x {N}x{C}x{H}x{W}, weight {K}x{C}x{kh}x{kw}, stride {stride}, padding {padding}"
        cases += _agreement(config, lambda x, w, b: conv2d(x, w, b, stride, padding),
                            lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
                            inputs, ("x", "weight", "bias"), gen)
    for N, C, H, W, K, kh, kw in p.get("defaults_grid", []):  # conv2d(x, weight, bias): the signature's defaults
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        inputs = (_tensor(gen, N, C, H, W), _tensor(gen, K, C, kh, kw), _tensor(gen, K))
        config = f"x {N}x{C}x{H}x{W}, weight {K}x{C}x{kh}x{kw}, stride and padding not given (defaults 1 and 0)"
        cases += _agreement(config, lambda x, w, b: conv2d(x, w, b), F.conv2d, inputs, ("x", "weight", "bias"), gen)
    return {"cases": cases}


def pool_agreement(sub, seed, p):
    """Output and input gradient of the hand 2x2 max-pooling against F.max_pool2d(x, 2)."""
    max_pool2d = sub.get("max_pool2d")
    cases = []
    for N, C, H, W in p["grid"]:
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        cases += _agreement(f"x {N}x{C}x{H}x{W}", max_pool2d, lambda x: F.max_pool2d(x, 2),
                            (_tensor(gen, N, C, H, W),), ("x",), gen)
    return {"cases": cases}


def gradcheck(sub, seed, p):
    """Jacobians through the hand backward against central differences of the hand forward (float64)."""
    conv2d, max_pool2d = sub.get("conv2d"), sub.get("max_pool2d")
    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for N, C, H, W, K, kh, kw, stride, padding in p["conv_grid"]:
        config = f"stride {stride}, padding {padding}, kernel {kh}x{kw}"
        blocks += function_blocks(lambda x, w, b: conv2d(x, w, b, stride, padding),
                                  (_tensor(gen, N, C, H, W), _tensor(gen, K, C, kh, kw), _tensor(gen, K)),
                                  [f"conv2d {n} ({config})" for n in ("x", "weight", "bias")])
    for N, C, H, W in p["pool_grid"]:
        blocks += function_blocks(max_pool2d, (_tensor(gen, N, C, H, W),), [f"max_pool2d x ({N}x{C}x{H}x{W})"])
    return {"blocks": blocks}


def equivariance(sub, seed, p):
    """conv(shift(x)) - shift'(conv(x)) on an image whose content sits away from the borders, where
    shift' moves by (dy, dx) / stride. A convolution is translation-equivariant: every entry is 0."""
    conv2d = sub.get("conv2d")
    gen = torch.Generator().manual_seed(seed)
    size, margin = p["size"], p["margin"]
    x = torch.zeros(1, 2, size, size, dtype=torch.float64)
    x[..., margin:size - margin, margin:size - margin] = _tensor(gen, 1, 2, size - 2 * margin, size - 2 * margin)
    w, b = _tensor(gen, 3, 2, 3, 3), _tensor(gen, 3)
    cases = []
    for dy, dx, stride in p["shifts"]:
        with torch.no_grad():
            out = expect_tensor(conv2d(x, w, b, stride, 1), "conv2d(x)", dtype="float")
            shifted = expect_tensor(conv2d(torch.roll(x, (dy, dx), (2, 3)), w, b, stride, 1), "conv2d(shift(x))",
                                    shape=tuple(out.shape), dtype="float")
        residual = shifted - torch.roll(out, (dy // stride, dx // stride), (2, 3))
        cases.append({"name": f"shift by ({dy}, {dx}), stride {stride}: conv(shift(x)) - shift(conv(x))",
                      "shape": list(residual.shape), "values": residual.reshape(-1).tolist()})
    return {"cases": cases}


# ---- the CNN on digits ------------------------------------------------------------------------------

def first_loss(sub, seed, p):
    steps = p["steps"]
    _, losses, _, _ = _train(sub, seed, p, max(steps) + 1)
    return {"steps": steps, "losses": [losses[k] for k in steps], "n": p["batch_size"]}


def convergence(sub, seed, p):
    params, losses, Xte, yte = _train(sub, seed, p, p["budget"])
    with torch.no_grad():
        logits = expect_tensor(sub.call("cnn_forward", params, Xte), "cnn_forward(params, X_test)",
                               shape=(len(Xte), 10), dtype="float")
    accuracy = (logits.argmax(1) == yte).double().mean().item()
    try:  # only for the picture of the learned filters: never a reason to fail the check
        filters = expect_tensor(params["conv_w"], "conv_w", dtype="float").detach().double().tolist()
    except Exception:  # noqa: BLE001
        filters = None
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)],
            "filters": filters}


def _device_run(sub, seed):
    def run(device):
        X, y, _, _ = _digits_split(seed, 16)
        X, y = X.to(device), y.to(device)
        params = _init_params(seed, 4, device=device)
        logits = sub.get("cnn_forward")(params, X)
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, list(params.values()))
        return {"logits": logits, **{f"gradient of {k}": g for k, g in zip(params, grads)}}
    return run


def placement(sub, seed, p):
    return measure_placement(_device_run(sub, seed))


def parity(sub, seed, p):
    return measure_parity(_device_run(sub, seed))
