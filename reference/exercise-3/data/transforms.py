"""Transforms of image batches shaped (n, channels, height, width)."""

from typing import Sequence

import torch


class Scale:
    """x <- x / max_value: pixel intensities in [0, max_value] to [0, 1]."""

    def __init__(self, max_value: float):
        self.max_value = max_value

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images / self.max_value


class Normalize:
    """x[:, c] <- (x[:, c] - mean[c]) / std[c], one mean and std per channel, into a new tensor (images unchanged)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = mean
        self.std = std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = images.clone()
        for c, (m, s) in enumerate(zip(self.mean, self.std)):
            out[:, c] = (out[:, c] - m) / s
        return out
