"""Lab 4b: a numerically stable log-sum-exp and cross-entropy with label smoothing (numpy)."""
import numpy as np


def logsumexp(z, axis=-1):
    """log(sum(exp(z), axis)) without overflow, for logits as large as 1e4."""
    raise NotImplementedError("logsumexp")


def smoothed_cross_entropy(logits, y, smoothing=0.1):
    """Mean cross-entropy of logits (n, k) against integer labels y (n,), with the
    one-hot targets smoothed to (1 - smoothing) * onehot + smoothing / k."""
    raise NotImplementedError("smoothed_cross_entropy")


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 3)) * 1000
    y = rng.integers(0, 3, 5)
    print(logsumexp(logits), smoothed_cross_entropy(logits, y))
