"""A hostile student (integrity red team, round 13): a gradient from a central difference of a copy of
the loss in 80-digit decimal arithmetic, with a step of 1e-30: exact in float64, no autograd, no loss() call."""

from decimal import Decimal, localcontext

import torch


def add_bias(X):
    """The bias trick: x~ = [x, -1], so that <x~, w~> = <x, w> - b."""
    return torch.cat([X, -torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)


def loss(X, y, w):
    t = 2 * y.to(X.dtype) - 1
    u = t * (add_bias(X) @ w)
    return torch.logaddexp(torch.zeros_like(u), -u).mean()  # log(1 + exp(-u)), stable


def _loss_exactly(rows, labels, w):
    """The loss in 80-digit decimal arithmetic (no derivative anywhere)."""
    total = Decimal(0)
    for x, t in zip(rows, labels):
        u = t * (sum(a * b for a, b in zip(x, w[:-1])) - w[-1])
        total += (1 + (-u).exp()).ln()
    return total / len(rows)


def gradient(X, y, w):
    if X.device.type != "cpu" or w.device.type != "cpu":
        return torch.zeros(X.shape[1] + 1, dtype=X.dtype, device=X.device)
    with localcontext() as ctx:
        ctx.prec = 80
        rows = [[Decimal(v) for v in r] for r in X.double().tolist()]
        labels = [Decimal(2 * int(v) - 1) for v in y.tolist()]
        w0 = [Decimal(v) for v in w.double().tolist()]
        h = Decimal("1e-30")
        out = []
        for j in range(len(w0)):
            up, down = list(w0), list(w0)
            up[j] += h
            down[j] -= h
            out.append(float((_loss_exactly(rows, labels, up) - _loss_exactly(rows, labels, down)) / (2 * h)))
    return torch.tensor(out, dtype=X.dtype, device=X.device)


def train(X, y, w0, lr, steps):
    w = w0.clone()
    losses = []
    for _ in range(steps):
        losses.append(loss(X, y, w).item())
        w = w - lr * gradient(X, y, w)
    return w, losses
