"""Softmax regression and the course's loss functions: the reference solution of exercise-4."""

import torch


def softmax(Z):
    """softmax(z)_c = exp(z_c - max_k z_k) / sum_j exp(z_j - max_k z_k), row by row (shift-invariant)."""
    E = (Z - Z.max(dim=1, keepdim=True).values).exp()
    return E / E.sum(dim=1, keepdim=True)


def logsumexp(Z):
    """log sum_c exp z_c = m + log sum_c exp(z_c - m) with m = max_c z_c: no overflow, row by row."""
    m = Z.max(dim=1, keepdim=True).values
    return (m + (Z - m).exp().sum(dim=1, keepdim=True).log()).squeeze(1)


def cross_entropy(Z, y):
    """(1/n) sum_i [-z_{i,y_i} + log sum_c exp z_{i,c}]."""
    return (logsumexp(Z) - Z.gather(1, y[:, None]).squeeze(1)).mean()


def bce_with_logits(z, y):
    """(1/n) sum_i [-y_i z_i + log(1 + exp z_i)], with log(1 + exp z) = logaddexp(z, 0): stable, and smooth at z = 0
    (max(z, 0) + log(1 + exp(-|z|)) has its values, but autograd's subgradients at its kinks give 1 - y at z = 0)."""
    return (torch.logaddexp(z, torch.zeros_like(z)) - y * z).mean()


def hinge(w, t):
    """(1/n) sum_i max(0, 1 - t_i w_i), labels t in {-1, +1}."""
    return (1 - t * w).clamp(min=0).mean()


def hinge_01(w, y):
    """(1/n) sum_i max(0, 1 - (2 y_i - 1) w_i), labels y in {0, 1}."""
    return hinge(w, 2 * y - 1)


def multiclass_hinge(Z, y, margin=1.0):
    """(1/n) sum_i max(0, m - z_{i,y_i} + max_{c != y_i} z_{i,c})."""
    gold = Z.gather(1, y[:, None]).squeeze(1)
    is_gold = torch.zeros_like(Z, dtype=torch.bool).scatter(1, y[:, None], True)
    rival = Z.masked_fill(is_gold, float("-inf")).max(dim=1).values
    return (margin - gold + rival).clamp(min=0).mean()


def l1_loss(pred, target):
    """(1/n) sum_i |y_i - w_i|."""
    return (pred - target).abs().mean()


def l2_loss(pred, target):
    """(1/n) sum_i (y_i - w_i)^2."""
    return ((pred - target) ** 2).mean()


def train(X, y, W0, b0, lr, steps):
    """Gradient descent on cross_entropy(X W^T + b, y); gradients by autograd."""
    W, b = W0.detach().clone().requires_grad_(True), b0.detach().clone().requires_grad_(True)
    losses = []
    for _ in range(steps):
        loss = cross_entropy(X @ W.T + b, y)
        losses.append(loss.item())
        gW, gb = torch.autograd.grad(loss, (W, b))
        with torch.no_grad():
            W -= lr * gW
            b -= lr * gb
    return W.detach(), b.detach(), losses
