"""exercise-4 probes: inputs built from the seed, the submission called, plain numbers returned.
Torch's own ops (the `target`s) are computed here too, so in the reference's run they are measured
by an untampered child; the parent compares a student's values with them."""

import numpy as np
import torch
import torch.nn.functional as F

from dldiy.graders.api import expect_history, expect_tensor, to_plain
from dldiy.graders.data import gaussian_blobs
from dldiy.graders.gradcheck import function_blocks


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _case(name, value, target=None):
    value = value.detach().double()
    case = {"name": name, "shape": list(value.shape) or [1], "values": to_plain(value.reshape(-1))}
    if target is not None:
        case["target"] = to_plain(target.detach().double().reshape(-1))
    return case


def _away_from_kink(g, n, dtype=torch.float64):
    """Offsets s with 0.2 <= |s| <= 1.5 and a random sign: 1 - t w = -s stays clear of the hinge's kink."""
    return (0.2 + 1.3 * torch.rand(n, generator=g, dtype=dtype)) * (2 * torch.randint(0, 2, (n,), generator=g) - 1)


def _spaced_logits(g, n, k, dtype=torch.float64):
    """Rows holding a permutation of 0, 0.7, 1.4, ... plus an offset: with margins 1 or 0.5 every
    m - z_y + max_{c != y} z_c stays >= 0.2 away from 0, and no two scores tie."""
    rows = [torch.randperm(k, generator=g).to(dtype) * 0.7 for _ in range(n)]
    return torch.stack(rows) + torch.randn(n, 1, generator=g, dtype=dtype)


def torch_agreement(sub, seed, p):
    g = _gen(seed)
    cases = []
    for n, k in ((6, 4), (1, 3)):
        Z = 3 * torch.randn(n, k, generator=g, dtype=torch.float64)
        y = torch.randint(0, k, (n,), generator=g)
        dims = {"n": n, "k": k}
        cases.append(_case(f"softmax, n={n}, k={k}", sub.call("softmax", Z.clone(), dims=dims),
                           torch.softmax(Z, dim=1)))
        cases.append(_case(f"cross_entropy, n={n}, k={k}", sub.call("cross_entropy", Z.clone(), y.clone()),
                           F.cross_entropy(Z, y)))
    for n in (7, 1):
        z = 4 * torch.randn(n, generator=g, dtype=torch.float64)
        y = torch.randint(0, 2, (n,), generator=g).double()
        target = torch.randn(n, generator=g, dtype=torch.float64)
        cases.append(_case(f"bce_with_logits, n={n}", sub.call("bce_with_logits", z.clone(), y.clone()),
                           F.binary_cross_entropy_with_logits(z, y)))
        cases.append(_case(f"l1_loss, n={n}", sub.call("l1_loss", z.clone(), target.clone()), F.l1_loss(z, target)))
        cases.append(_case(f"l2_loss, n={n}", sub.call("l2_loss", z.clone(), target.clone()), F.mse_loss(z, target)))
    return {"cases": cases}


def hinge(sub, seed, p):
    # No torch.nn.functional op computes these (multi_margin_loss sums over the rivals and divides by
    # k; the course's multi-class hinge takes the best rival): compared with the reference's values.
    g = _gen(seed)
    n, k = 8, 4
    w = 2 * torch.randn(n, generator=g, dtype=torch.float64)
    t = (2 * torch.randint(0, 2, (n,), generator=g) - 1).double()
    Z = 2 * torch.randn(n, k, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    return {"cases": [
        _case("hinge, labels in {-1, +1}", sub.call("hinge", w.clone(), t.clone())),
        _case("hinge_01, labels in {0, 1}", sub.call("hinge_01", w.clone(), (t + 1) / 2)),
        _case("multiclass_hinge, default margin", sub.call("multiclass_hinge", Z.clone(), y.clone())),
        _case("multiclass_hinge, margin 1", sub.call("multiclass_hinge", Z.clone(), y.clone(), margin=1.0)),
        _case("multiclass_hinge, margin 0.5", sub.call("multiclass_hinge", Z.clone(), y.clone(), margin=0.5)),
    ]}


def _on_graph(fn):
    """`fn` with its output kept on the autograd graph: a loss cut from its inputs (.detach(), .item())
    then reads as a zero analytic gradient, a failure that says so, rather than a crash."""
    def wrapped(*xs):
        return fn(*xs) + 0.0 * sum(x.sum() for x in xs)
    return wrapped


def gradcheck(sub, seed, p):
    g = _gen(seed)
    n, k = 5, 4
    Z = torch.randn(n, k, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    t = (2 * torch.randint(0, 2, (n,), generator=g) - 1).double()
    w = t * (1 + _away_from_kink(g, n))
    pred = torch.randn(n, generator=g, dtype=torch.float64)
    target = pred + _away_from_kink(g, n)
    yb = torch.randint(0, 2, (n,), generator=g).double()
    S = _spaced_logits(g, n, k)
    f = sub.get
    blocks = []
    blocks += function_blocks(_on_graph(lambda Z: f("softmax")(Z)), [Z], ["softmax: Z"])
    blocks += function_blocks(_on_graph(lambda Z: f("cross_entropy")(Z, y)), [Z], ["cross_entropy: Z"])
    blocks += function_blocks(_on_graph(lambda z: f("bce_with_logits")(z, yb)), [Z[:, 0] * 3],
                              ["bce_with_logits: z"])
    blocks += function_blocks(_on_graph(lambda w: f("hinge")(w, t)), [w], ["hinge: w"])
    blocks += function_blocks(_on_graph(lambda w: f("hinge_01")(w, (t + 1) / 2)), [w], ["hinge_01: w"])
    blocks += function_blocks(_on_graph(lambda S: f("multiclass_hinge")(S, y, margin=1.0)), [S],
                              ["multiclass_hinge: Z"])
    blocks += function_blocks(_on_graph(lambda a, b: f("l1_loss")(a, b)), [pred, target],
                              ["l1_loss: pred", "l1_loss: target"])
    blocks += function_blocks(_on_graph(lambda a, b: f("l2_loss")(a, b)), [pred, target],
                              ["l2_loss: pred", "l2_loss: target"])
    return {"blocks": blocks}


def _value_and_grad_norm(fn, x, *rest):
    x = x.clone().requires_grad_(True)
    value = expect_tensor(fn(x, *rest), fn.__name__ + "()", shape=(), finite=False)
    if not value.requires_grad:
        return value.item(), 0.0
    (grad,) = torch.autograd.grad(value, x)
    return value.item(), grad.norm().item()


def stability(sub, seed, p):
    Z = torch.tensor([[1000.0, -1000.0, 0.0, 500.0], [-1000.0, 1000.0, 999.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 2])
    z = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0], dtype=torch.float64)
    yb = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    P = expect_tensor(sub.get("softmax")(Z.clone()), "softmax()", shape=(2, 4), finite=False)
    ce, ce_grad = _value_and_grad_norm(sub.get("cross_entropy"), Z, y)
    bce, bce_grad = _value_and_grad_norm(sub.get("bce_with_logits"), z, yb)
    return {"cases": [
        {"name": "softmax row sums at logits of +-1000 (sum of both rows)", "value": P.sum().item()},
        {"name": "softmax probability of class 2 in row 1 (logits 1000 and 999)", "value": P[1, 2].item()},
        {"name": "cross_entropy at logits of +-1000", "value": ce},
        {"name": "norm of the cross_entropy gradient at logits of +-1000", "value": ce_grad},
        {"name": "bce_with_logits at logits of +-1000", "value": bce},
        {"name": "norm of the bce_with_logits gradient at logits of +-1000", "value": bce_grad},
    ]}


def _problem(seed, n, d, k, distance, margin):
    X, y = gaussian_blobs(seed, n, classes=k, dim=d, distance=distance, margin=margin)
    rng = np.random.default_rng(seed + 10_000)
    W0, b0 = rng.normal(0.0, 0.5, (k, d)), rng.normal(0.0, 0.5, k)
    return torch.tensor(X), torch.tensor(y), torch.tensor(W0), torch.tensor(b0)


def _train(sub, X, y, W0, b0, lr, steps):
    W, b, losses = sub.call("train", X, y, W0.clone(), b0.clone(), lr, steps)
    k, d = W0.shape
    W = expect_tensor(W, "train() (its first result, W)", shape=(k, d), dtype="float", finite=False)
    b = expect_tensor(b, "train() (its second result, b)", shape=(k,), dtype="float", finite=False)
    losses = expect_history(losses, steps)
    return W.detach(), b.detach(), losses


def first_loss(sub, seed, p):
    X, y, W0, b0 = _problem(seed, p["n"], p["d"], p["k"], distance=4.0, margin=None)
    steps = p["steps"]
    _, _, losses = _train(sub, X, y, W0, b0, p["lr"], max(steps) + 1)
    return {"steps": steps, "losses": [losses[s] for s in steps], "n": p["n"]}


def convergence(sub, seed, p):
    X, y, W0, b0 = _problem(seed, p["n"], p["d"], p["k"], distance=6.0, margin=0.5)
    W, b, losses = _train(sub, X, y, W0, b0, p["lr"], p["budget"])
    # The predicted class is the argmax of the logits, computed here rather than by the submission.
    accuracy = ((X @ W.double().T + b.double()).argmax(dim=1) == y).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)]}
