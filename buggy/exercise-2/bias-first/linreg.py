"""Linear regression, exact and iterative: the reference solution of exercise-2."""

import torch


def add_bias(X):
    """The bias trick: x~ = [x, 1], so that <x~, w~> = <w, x> + b."""
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)


def fit_exact(X, y):
    # Least squares on X~ itself (QR-based): never forms (X~^T X~)^{-1}.
    Xt = torch.cat([torch.ones(X.shape[0], 1, dtype=X.dtype), X], dim=1)  # [1, x]
    return torch.linalg.lstsq(Xt, y.unsqueeze(1)).solution.squeeze(1)


def loss(X, y, w):
    return ((add_bias(X) @ w - y) ** 2).mean()


def gradient(X, y, w):
    Xt = add_bias(X)
    return 2 * Xt.T @ (Xt @ w - y) / X.shape[0]


def train(X, y, w0, lr, steps):
    w = w0.clone()
    losses = []
    for _ in range(steps):
        losses.append(loss(X, y, w).item())
        w = w - lr * gradient(X, y, w)
    return w, losses
