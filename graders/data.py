"""Deterministic data for the seeded checks, in numpy (the trusted parent can regenerate it too)."""

from __future__ import annotations

import numpy as np


def gaussian_blobs(seed: int, n: int, classes: int = 2, dim: int = 2, distance: float = 6.0,
                   margin: float | None = 0.5, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """`n` points in `dim` dimensions from `classes` isotropic Gaussians (std `scale`), labels 0..k-1.

    Class means lie on a circle of diameter `distance` (a random rotation per seed), each class's
    points drawn in turn. With `margin`, points closer than `margin` to a boundary between their mean
    and another's are redrawn, so the classes are linearly separable (pairwise, by the bisectors).
    With `margin=None` they may overlap.
    """
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.normal(0, 1.0, dim)
    means = np.zeros((classes, dim))
    for k in range(classes):
        a = angle + 2 * np.pi * k / classes
        means[k, :2] = distance / 2 * np.array([np.cos(a), np.sin(a)])
    means += offset
    labels = np.arange(n) % classes
    X = np.empty((n, dim))
    for i, k in enumerate(labels.tolist()):  # Python ints, as _inside() takes
        while True:
            x = means[k] + scale * rng.normal(size=dim)
            if margin is None or _inside(x, k, means, margin):
                break
        X[i] = x
    return X, labels.astype(np.int64)


def _inside(x: np.ndarray, k: int, means: np.ndarray, margin: float) -> bool:
    for j in range(len(means)):
        if j == k:
            continue
        direction = means[k] - means[j]
        mid = (means[k] + means[j]) / 2
        if (x - mid) @ direction / np.linalg.norm(direction) < margin:
            return False
    return True
