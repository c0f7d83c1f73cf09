"""scikit-learn's 8x8 digits (1797 images, intensities 0..16), read from the file its wheel ships.

This is the file `sklearn.datasets.load_digits()` reads; reading it directly avoids importing
scikit-learn (a second of start-up) and downloads nothing.
"""

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

from .transforms import Normalize, Scale

N_TRAIN = 1500  # the first 1500 images train, the last 297 test: a fixed split, no randomness
MAX_INTENSITY = 16.0
MEAN, STD = 0.3051, 0.3750  # of the scaled training images


@functools.lru_cache(maxsize=1)
def _read_digits() -> np.ndarray:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the digits come with scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    return np.loadtxt(path, delimiter=",", dtype=np.float32)  # (1797, 65): 64 pixels, then the label


def load_splits() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((train images, train labels), (test images, test labels)); images (n, 1, 8, 8), normalised."""
    table = torch.from_numpy(_read_digits().copy())
    images = table[:, :64].reshape(-1, 1, 8, 8)
    labels = table[:, 64].long()
    transform = [Scale(MAX_INTENSITY), Normalize(mean=(MEAN,), std=(STD,))]
    for t in transform:
        images = t(images)
    return (images[:N_TRAIN], labels[:N_TRAIN]), (images[N_TRAIN:], labels[N_TRAIN:])


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """Endless minibatches (images, labels); each pass over the data in a new random order."""
    n = len(images)
    if n < batch_size:  # else the loop below would spin forever without yielding
        raise ValueError(f"{n} examples cannot fill a minibatch of {batch_size}")
    while True:
        order = torch.randperm(n)
        shuffled_images, shuffled_labels = images[order], labels[order]
        for start in range(0, n - batch_size + 1, batch_size):
            yield shuffled_images[start:start + batch_size], shuffled_labels[start:start + batch_size]
