"""The perceptron and the separating hyperplane: the reference solution of exercise-7."""

import torch


def add_bias(X):
    """The bias trick: x~ = [x, 1], so that <x~, w~> = <a, x> + b."""
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)


def predict(X, w):
    return torch.where(add_bias(X) @ w > 0, 1, -1)


def train(X, y, w0, epochs):
    Xt = add_bias(X)
    w = w0.clone()
    mistakes = []
    for _ in range(epochs):
        count = 0
        for i in range(len(y)):
            if y[i] * (Xt[i] @ w) <= 0:  # on the hyperplane counts as a mistake
                w = w + 0.1 * y[i] * Xt[i]  # a learning rate, as in gradient descent
                count += 1
        mistakes.append(count)
        if count == 0:
            break
    return w, mistakes
