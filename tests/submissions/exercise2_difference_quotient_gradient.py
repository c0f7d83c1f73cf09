"""A hostile student (round 13): exercise-2 gradient() by central differences of an inlined copy of the
loss (float64, step 1e-6): no loss() call to count."""

from decimal import Decimal

import torch


def add_bias(X):
    """The bias trick: x~ = [x, 1], so that <x~, w~> = <w, x> + b."""
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)


def fit_exact(X, y):
    # Least squares on X~ itself (QR-based): never forms (X~^T X~)^{-1}.
    Xt = add_bias(X)
    return torch.linalg.lstsq(Xt, y.unsqueeze(1)).solution.squeeze(1)


def loss(X, y, w):
    return ((add_bias(X) @ w - y) ** 2).mean()


def _loss_exactly(rows, ys, w):
    total = Decimal(0)
    for x, t in zip(rows, ys):
        r = sum(a * b for a, b in zip(x, w[:-1])) + w[-1] - t
        total += r * r
    return total / len(rows)


def gradient(X, y, w):
    Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1).double()
    w64 = w.double()
    h = 1e-6
    out = torch.zeros_like(w64)
    for j in range(w64.numel()):
        e = torch.zeros_like(w64)
        e[j] = h
        lp = ((Xt @ (w64 + e) - y.double()) ** 2).mean()
        lm = ((Xt @ (w64 - e) - y.double()) ** 2).mean()
        out[j] = (lp - lm) / (2 * h)
    return out.to(w.dtype)


def train(X, y, w0, lr, steps):
    w = w0.clone()
    losses = []
    for _ in range(steps):
        losses.append(loss(X, y, w).item())
        w = w - lr * gradient(X, y, w)
    return w, losses
