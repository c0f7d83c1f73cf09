"""exercise-9 probes: an Elman RNN by hand, backpropagation through time, global-norm clipping, and
a task that needs memory (recall, after T steps, the first value of a sequence).

Every input and initialisation is built here from the seed; torch.nn.RNN and
torch.nn.utils.clip_grad_norm_ give the targets of the agreement checks.
"""

import numpy as np
import torch

from dldiy.graders.api import ApiError, expect_history, expect_tensor
from dldiy.graders.gradcheck import function_blocks
from dldiy.graders.parity import measure_parity
from dldiy.graders.placement import measure_placement

NAMES = ("W_ih", "W_hh", "b_ih", "b_hh")


# ---- data and initialisation ------------------------------------------------------------------------

def recall_first(seed: int, n: int, T: int):
    """n sequences of T values ~ N(0, 1), shape (T, n, 1); the target is each sequence's first value,
    asked for after the last one: a model without memory can do no better than MSE 1."""
    X = np.random.default_rng(seed).normal(0.0, 1.0, (T, n, 1))
    return torch.tensor(X, dtype=torch.float32), torch.tensor(X[0], dtype=torch.float32)


def init_params(seed: int, D: int, H: int, O: int, dtype=torch.float32, device="cpu") -> dict:
    """Uniform(+-1/sqrt(H)) (torch.nn.RNN's default), except W_hh = 0.95 * a random orthogonal
    matrix, so that the state can carry a value over the sequence from the start."""
    rng = np.random.default_rng(seed + 10_000)
    bound = 1 / np.sqrt(H)
    raw = {"W_ih": rng.uniform(-bound, bound, (H, D)), "W_hh": 0.95 * np.linalg.qr(rng.normal(size=(H, H)))[0],
           "b_ih": rng.uniform(-bound, bound, H), "b_hh": rng.uniform(-bound, bound, H),
           "W_out": rng.uniform(-bound, bound, (O, H)), "b_out": rng.uniform(-bound, bound, O)}
    return {k: torch.tensor(v, dtype=dtype, device=device).requires_grad_(True) for k, v in raw.items()}


def _torch_rnn(params):
    """torch.nn.RNN (tanh, one layer, seq-first, h0 = 0) holding copies of params."""
    H, D = params["W_ih"].shape
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", dtype=params["W_ih"].dtype)
    with torch.no_grad():
        for name, value in params.items():
            if name in NAMES:
                kind, which = name.split("_")
                getattr(rnn, f"{'weight' if kind == 'W' else 'bias'}_{which}_l0").copy_(value)
    return rnn


def _params64(gen, D, H, O=1):
    return {k: torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.5 for k, shape in
            (("W_ih", (H, D)), ("W_hh", (H, H)), ("b_ih", (H,)), ("b_hh", (H,)), ("W_out", (O, H)), ("b_out", (O,)))}


def _forward(sub, params, xs, what="ElmanRNN(params).forward(xs)", model=None):
    model = model or sub.get("ElmanRNN")(params)
    T, N, _ = xs.shape
    return expect_tensor(model.forward(xs), what, shape=(T, N, params["W_hh"].shape[0]), dtype="float")


def _case(name, measured, target):
    measured = expect_tensor(measured, name, shape=tuple(target.shape), dtype="float")
    return {"name": name, "shape": list(target.shape), "values": measured.detach().reshape(-1).tolist(),
            "target": target.detach().reshape(-1).tolist()}


# ---- agreement with torch ---------------------------------------------------------------------------

def rnn_agreement(sub, seed, p):
    """Hidden states, and the gradients of <hs, cotangent> w.r.t. xs and the four weights, against
    torch.nn.RNN with the same weights copied in, per configuration (T, N, D, H)."""
    cases = []
    for T, N, D, H in p["grid"]:
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        params, xs = _params64(gen, D, H), torch.randn(T, N, D, generator=gen, dtype=torch.float64)
        cotangent = torch.randn(T, N, H, generator=gen, dtype=torch.float64)
        config = f"T={T}, N={N}, D={D}, H={H}"
        rnn, x_ref = _torch_rnn(params), xs.clone().requires_grad_(True)
        target, _ = rnn(x_ref)
        target_grads = torch.autograd.grad(target, [x_ref, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0,
                                                    rnn.bias_hh_l0], cotangent)
        mine = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        x_mine = xs.clone().requires_grad_(True)
        hs = _forward(sub, mine, x_mine)
        if not hs.requires_grad:
            raise ApiError("ElmanRNN.forward's output does not require grad: is the cell applied through "
                           "RNNCellFunction.apply?")
        grads = torch.autograd.grad(hs, [x_mine] + [mine[k] for k in NAMES], cotangent, allow_unused=True)
        cases.append(_case(f"{config}: hidden states", hs, target))
        for name, g, t in zip(("xs",) + NAMES, grads, target_grads):
            if g is None:
                raise ApiError(f"{config}: backpropagation gave no gradient for {name}")
            cases.append(_case(f"{config}: gradient of {name} (through time)", g, t))
    return {"cases": cases}


def gradcheck(sub, seed, p):
    """The hand backward of one cell (all six inputs), then BPTT through the unrolled forward, against
    central differences (float64)."""
    gen = torch.Generator().manual_seed(seed)
    T, N, D, H = p["T"], p["N"], p["D"], p["H"]
    params = _params64(gen, D, H)
    x, h = torch.randn(N, D, generator=gen, dtype=torch.float64), torch.randn(N, H, generator=gen, dtype=torch.float64)
    cell = sub.get("rnn_cell")
    blocks = function_blocks(cell, [x, h] + [params[k] for k in NAMES],
                             [f"one cell: {n}" for n in ("x", "h") + NAMES])
    xs = torch.randn(T, N, D, generator=gen, dtype=torch.float64)

    def unrolled(xs, *weights):
        return _forward(sub, dict(params, **dict(zip(NAMES, weights))), xs)
    blocks += function_blocks(unrolled, [xs] + [params[k] for k in NAMES],
                              [f"through {T} steps: {n}" for n in ("xs",) + NAMES])
    return {"blocks": blocks}


def clipping(sub, seed, p):
    """clip_grad_norm on seeded gradients against torch.nn.utils.clip_grad_norm_: the returned total
    norm and every clipped gradient, for max_norm below and above the total norm (float64, so that a
    tight tolerance sees the 1e-6 in max_norm / (norm + 1e-6)); and the total returned when no
    parameter has a gradient."""
    clip = sub.get("clip_grad_norm")
    cases = []
    for factor in p["max_norm_factors"]:
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        shapes = [(4, 3), (4, 4), (4,), (1, 4)]
        grads = [torch.randn(*s, generator=gen, dtype=torch.float64) * (k + 1) for k, s in enumerate(shapes)]
        ref = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
        mine = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
        for r, m, g in zip(ref, mine, grads):
            r.grad, m.grad = g.clone(), g.clone()
        max_norm = factor * float(torch.sqrt(sum((g * g).sum() for g in grads)))
        target_total = torch.nn.utils.clip_grad_norm_(ref, max_norm)
        total = expect_tensor(clip(mine, max_norm), "clip_grad_norm(parameters, max_norm)", shape=(), dtype="float")
        config = f"max_norm = {factor:g} x the global norm"
        cases.append(_case(f"{config}: returned total norm", total, target_total))
        for k, (m, r) in enumerate(zip(mine, ref)):
            cases.append(_case(f"{config}: clipped gradient of parameter {k} (shape {tuple(r.shape)})", m.grad, r.grad))
    # Parameters none of which has a gradient (a model not yet run backward): nothing to clip.
    idle = [torch.zeros(3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    target_total = torch.nn.utils.clip_grad_norm_(idle, 1.0)
    total = expect_tensor(clip(idle, 1.0), "clip_grad_norm(parameters, max_norm)", shape=(), dtype="float")
    cases.append(_case("no parameter has a gradient: returned total norm", total, target_total))
    return {"cases": cases}


def state_reset(sub, seed, p):
    """The same model object run on a first batch of sequences, then on a second: the second's hidden
    states must be torch.nn.RNN's from h0 = 0, as if the first had never been seen."""
    gen = torch.Generator().manual_seed(seed)
    T, N, D, H = p["T"], p["N"], p["D"], p["H"]
    params = _params64(gen, D, H)
    first, second = (torch.randn(T, N, D, generator=gen, dtype=torch.float64) for _ in range(2))
    model = sub.get("ElmanRNN")(params)
    with torch.no_grad():
        _forward(sub, params, first, model=model)
        hs = _forward(sub, params, second, "forward(xs) on a second batch", model=model)
        target, _ = _torch_rnn(params)(second)
    return {"cases": [_case("hidden states of the second batch of sequences, run after a first one", hs, target)]}


# ---- training on the memory task --------------------------------------------------------------------

def _train(sub, seed, p, steps):
    X, y = recall_first(seed, p["n_train"], p["T"])
    params = init_params(seed, 1, p["H"], 1)
    result = sub.call("train", params, X, y, p["lr"], steps, p["batch_size"], p["max_norm"])
    if not isinstance(result, tuple) or len(result) != 2:
        raise ApiError("train() must return (params, losses)")
    params, losses = result
    losses = expect_history(losses, steps)
    return params, losses


def first_loss(sub, seed, p):
    steps = p["steps"]
    _, losses = _train(sub, seed, p, max(steps) + 1)
    return {"steps": steps, "losses": [losses[k] for k in steps], "n": p["batch_size"]}


def convergence(sub, seed, p):
    params, losses = _train(sub, seed, p, p["budget"])
    X, y = recall_first(seed + 1, 500, p["T"])  # held-out sequences
    with torch.no_grad():
        pred = expect_tensor(sub.get("ElmanRNN")(params).predict(X), "ElmanRNN(params).predict(X_test)",
                             shape=tuple(y.shape), dtype="float")
    return {"mse": ((pred - y) ** 2).mean().item(), "steps": p["budget"],
            "losses": losses[:: max(1, len(losses) // 10)]}


def _device_run(sub, seed):
    def run(device):
        X, y = recall_first(seed, 8, 5)
        X, y = X.to(device), y.to(device)
        params = init_params(seed, 1, 6, 1, device=device)
        model = sub.get("ElmanRNN")(params)
        pred = model.predict(X)
        grads = torch.autograd.grad(((pred - y) ** 2).mean(), list(params.values()))
        return {"prediction": pred, **{f"gradient of {k}": g for k, g in zip(params, grads)}}
    return run


def placement(sub, seed, p):
    return measure_placement(_device_run(sub, seed))


def parity(sub, seed, p):
    return measure_parity(_device_run(sub, seed))
