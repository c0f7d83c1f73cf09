"""Optimizers written by hand."""

from .base import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD"]
