"""exercise-1 probes: each builds its inputs from the seed (trusted data), calls the submission, and
returns plain numbers. The judging happens in the parent (graders/kinds/<kind>.py).

One bug, one deduction: train() is run with the harness's own gradient (autograd on the spec's loss,
written here, not the reference's code), so a wrong gradient() costs gradcheck only; convergence also
uses the harness's loss, so it measures train() alone. Every call keeps the invariants of
graders/kinds/invariants.py: arguments left unmodified, the inputs' dtype, no autograd graph in a hand gradient.
"""

import numpy as np
import torch

from dldiy.graders.api import ApiError, expect_history, expect_tensor
from dldiy.graders.api import built_inside as _inside
from dldiy.graders.data import gaussian_blobs
from dldiy.graders.kinds.gradcheck import block, numeric_gradient
from dldiy.graders.kinds.invariants import (dependency_note, loss_note, CallCounter, Violation, keeps_rules,
                                            no_graph, same_dtype, unmodified)
from dldiy.graders.kinds.parity import measure_parity
from dldiy.graders.kinds.placement import measure_placement


def _problem(seed, n, d, distance=4.0, margin=None, dtype=torch.float64):
    if d == 1:  # gaussian_blobs places its means in 2 dimensions: one feature is drawn here
        rng = np.random.default_rng(seed)
        y = np.arange(n) % 2
        X = (rng.normal(size=(n, 1)) + distance / 2 * (2 * y[:, None] - 1)).astype(np.float64)
    else:
        X, y = gaussian_blobs(seed, n, classes=2, dim=d, distance=distance, margin=margin)
    w0 = np.random.default_rng(seed + 10_000).normal(0.0, 0.5, d + 1)
    return (torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=torch.int64), torch.tensor(w0, dtype=dtype))


def _spec_loss(X, y, w):
    """The spec's loss, written here with torch (the harness's own, for train() and for gradcheck's
    degenerate test): (1/n) sum_i softplus(-t_i <x~_i, w>), t = 2y - 1, x~ = [x, -1]."""
    Xt = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
    return torch.nn.functional.softplus(-(2 * y.to(X.dtype) - 1) * (Xt @ w)).mean()


def _spec_gradient(X, y, w):
    """The gradient of _spec_loss, -(1/n) sum_i sigma(-u_i) t_i x~_i (closed form: 100 steps of train()
    per check and seed stay cheap)."""
    Xt = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
    t = 2 * y.to(X.dtype) - 1
    return -(torch.sigmoid(-t * (Xt @ w.detach())) * t) @ Xt / len(X)



def harness_gradient():
    return _spec_gradient


def harness_loss_fn():
    return _spec_loss


def _call(sub, name, X, y, w, dims, finite=True):
    """The submission's loss() or gradient() on (X, y, w), its arguments untouched, its dtype kept;
    `finite=False` leaves an inf or nan for the judge to report (stability)."""
    what = f"{name}()"
    out = unmodified(lambda: sub.get(name)(X, y, w), what, X=X, y=y, w=w)
    shape = () if name == "loss" else (dims["d"] + 1,)
    out = expect_tensor(out, what, shape=shape, dtype="float", finite=finite)
    return same_dtype(out, X.dtype, what)


def _at(label, call):
    """`call()` at a configuration of a family: an exception there (the spec's first configuration
    passed) is a failure that names the configuration, not a crash."""
    try:
        return call()
    except (Violation, NotImplementedError):
        raise
    except ApiError as e:  # a wrong form (a shape, an inf) at this configuration only
        raise Violation(f"at {label}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the submission's error at one configuration is the finding
        raise Violation(f"at {label}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
                        " (code that assumes one shape, layout or dtype?)") from None


def _train(sub, X, y, w0, lr, steps, harness_loss=False):
    """train() with the harness's gradient (and, with `harness_loss`, its loss) in place of the student's."""
    d = X.shape[1]
    with sub.replaced("gradient", _inside(sub, harness_gradient)):
        if harness_loss:  # convergence: copies in, train()'s invariants are first-loss's (one deduction)
            with sub.replaced("loss", _inside(sub, harness_loss_fn)):
                w, losses = sub.call("train", X.clone(), y.clone(), w0.clone(), lr, steps)
        else:
            w, losses = unmodified(lambda: sub.call("train", X, y, w0, lr, steps), "train()", X=X, y=y, w0=w0)
    w = expect_tensor(w, "train() (its first result, w)", shape=(d + 1,), dtype="float", finite=False)
    if not harness_loss:
        same_dtype(w, X.dtype, "train() (its first result, w)")
    return w, expect_history(losses, steps)


def _gradcheck_family(seed, p):
    """(label, X, y, w): the spec's sizes, then odd ones, a non-contiguous X and w = 0 (every margin 0)."""
    n, d = p["n"], p["d"]
    rng = np.random.default_rng(seed)
    family = []
    for label, nn, dd in ((f"n={n}, d={d}", n, d), (f"n=1, d={d}", 1, d), (f"n={n}, d=1", n, 1),
                          ("n=7, d=5, X non-contiguous (a transposed tensor)", 7, 5)):
        X, y, _ = _problem(seed + nn + 100 * dd, nn, dd)
        if "non-contiguous" in label:
            X = X.t().contiguous().t()
        family.append((label, X, y, torch.tensor(rng.normal(0, 1, dd + 1))))
    X, y, _ = _problem(seed, n, d)
    family.append((f"n={n}, d={d}, w = 0 (every margin exactly 0)", X, y, torch.zeros(d + 1, dtype=torch.float64)))
    return family


@keeps_rules
def gradcheck(sub, seed, p):
    blocks, measured = [], []
    counter = CallCounter(sub.get("loss"))
    # By hand: autograd off, and loss() left alone (a finite difference of one's own loss is not by hand).
    # The counting stand-in is installed once for the whole family (two messages, not two per configuration).
    with sub.replaced("loss", counter):
        for k, (label, X, y, w) in enumerate(_gradcheck_family(seed, p)):
            at = _at if k else (lambda label, call: call())  # the spec's own configuration raises as it is
            dims = {"n": len(X), "d": X.shape[1]}
            before = counter.calls
            with torch.no_grad():
                analytic = at(f"gradient(), {label}", lambda: _call(sub, "gradient", X, y, w, dims))
            if counter.calls - before >= 2:
                raise Violation(f"gradient() called loss() {counter.calls - before} times ({label}): a gradient from "
                                "differences of the loss is not a gradient by hand; write (1/n) sum_i -sigma(-u_i) t_i x~_i")
            measured.append((label, X, y, w, no_graph(analytic, "gradient()")))
    for label, X, y, w, analytic in measured:
        # The spec's loss, not the student's: gradcheck measures gradient() alone (one bug, one deduction).
        numeric = numeric_gradient(lambda v: _spec_loss(X, y, v), w)
        moves = bool(_spec_gradient(X, y, w).abs().max() > 1e-6)
        blocks.append(block(f"w ({label})", analytic, numeric, moves=moves))
    # float32 in, float32 out: the same gradient within float32's precision.
    X, y, _ = _problem(seed, p["n"], p["d"])
    w = torch.tensor(np.random.default_rng(seed).normal(0, 1, p["d"] + 1))
    with torch.no_grad():
        g32 = _call(sub, "gradient", X.float(), y, w.float(), {"n": p["n"], "d": p["d"]})
        g64 = _call(sub, "gradient", X, y, w, {"n": p["n"], "d": p["d"]})
    if not torch.allclose(g32.double(), g64, rtol=1e-4, atol=1e-6):
        raise Violation(f"gradient() on float32 inputs differs from its float64 result beyond float32 precision: "
                        f"{g32.tolist()} vs {g64.tolist()}")
    return {"blocks": blocks, **loss_note(sub, (X, y, w), float(_spec_loss(X, y, w)), dims={"n": p["n"], "d": p["d"]})}




def _gradient_note(sub, X, y, w):
    """A note when the student's own gradient() differs from the harness's at w: train() was judged
    with the harness's, so this is said (gradcheck charges it), not charged again."""
    return dependency_note(sub, "gradient", (X, y, w.clone()), _spec_gradient(X, y, w))


@keeps_rules
def first_loss(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"])
    steps = p["steps"]
    _, losses = _train(sub, X, y, w0, p["lr"], max(steps) + 1)
    return {"steps": steps, "losses": [losses[k] for k in steps], "history": losses, "n": p["n"],
            **_gradient_note(sub, X, y, w0)}


@keeps_rules
def convergence(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"], distance=6.0, margin=0.5)
    w, losses = _train(sub, X, y, w0, p["lr"], p["budget"], harness_loss=True)
    # Accuracy by the spec's convention x~ = [x, -1], computed here rather than by the submission.
    scores = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype)], 1) @ w.detach().to(X.dtype)
    accuracy = ((scores >= 0).long() == y).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)],
            "boundary": {"w": w.tolist(), "points": X.tolist(), "labels": y.tolist(), "bias": -1.0}}


def _extreme(seed, n, d, scale):
    """X (n, d) in random directions, labels from the seed, and w with every <x~_i, w> = +-scale: the
    margins t_i <x~_i, w> are +-scale with both signs (points on both sides, right and wrong)."""
    rng = np.random.default_rng(seed + 7)
    w = rng.normal(size=d + 1)
    a, b = w[:d], w[d]
    unit = a / np.linalg.norm(a)
    signed = scale * rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.5, n)
    noise = rng.normal(size=(n, d))
    noise -= np.outer(noise @ unit, unit)  # orthogonal to a: moves no score
    X = noise + np.outer((signed + b) / np.linalg.norm(a), unit)  # <x, a> - b = signed
    y = rng.integers(0, 2, n)
    return torch.tensor(X), torch.tensor(y, dtype=torch.int64), torch.tensor(w)


@keeps_rules
def stability(sub, seed, p):
    """loss() over a family of inputs (sizes, float32, a non-contiguous X, every margin 0) against the
    reference's values, and loss() and gradient() at margins of magnitude 1000 in random directions."""
    cases = []

    def loss_case(name, X, y, w, **tolerance):
        value = _at(f"loss(), {name}", lambda: _call(sub, "loss", X, y, w, {"n": len(X), "d": X.shape[1]}, finite=False))
        cases.append({"name": f"loss, {name}", "value": value.item(), **tolerance})

    # The spec's own configuration (first-loss's first loss): where it is wrong, the formula is, and
    # first-loss charges that; this check then judges finiteness only (graders/kinds/stability.py).
    X, y, w = _problem(seed, p["n"], p["d"])
    loss_case(f"n={p['n']}, d={p['d']}, the spec's configuration", X, y, w, base=True)
    X, y, w = _problem(seed + 1, 1, 2)
    loss_case("n=1, d=2", X, y, w)
    X, y, w = _problem(seed + 2, 20, 1)
    loss_case("n=20, d=1", X, y, w)
    X, y, w = _problem(seed + 3, 20, 4)
    loss_case("n=20, d=4, float32 X and w", X.float(), y, w.float(), rtol=1e-5, atol=1e-6)
    loss_case("n=20, d=4, X non-contiguous (a transposed tensor)", X.t().contiguous().t(), y, w)
    loss_case("n=20, d=4, w = 0 (every margin 0)", X, y, torch.zeros_like(w))
    for label, size in (("margins of magnitude 1000", 1000.0), ("margins of magnitude 30", 30.0)):
        X, y, w = _extreme(seed, 8, 3, size)
        loss_case(f"{label} in random directions (n=8, d=3)", X, y, w)
        with torch.no_grad():
            grad = no_graph(_call(sub, "gradient", X, y, w, {"n": 8, "d": 3}, finite=False), "gradient()")
        cases.append({"name": f"gradient at {label} (n=8, d=3): largest entry", "finite_only": True,
                      "value": grad.abs().max().item() if torch.isfinite(grad).all() else float("nan")})
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
