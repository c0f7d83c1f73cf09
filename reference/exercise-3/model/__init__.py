"""The network."""

from .net import ConvNet

__all__ = ["ConvNet"]
