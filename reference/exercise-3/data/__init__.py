"""The data: scikit-learn's 8x8 digits, normalised, split, and served in shuffled minibatches."""

from .digits import batches, load_splits

__all__ = ["batches", "load_splits"]
