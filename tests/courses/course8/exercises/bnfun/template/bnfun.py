"""Batch normalisation by hand: a forward returning (out, cache) and a backward(dout, cache)."""
import torch


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalisation of a (N, D) batch, training mode: (out, cache)."""
    raise NotImplementedError


def batchnorm_backward(dout, cache):
    """Given dL/dout (N, D) and the cache of batchnorm_forward, return (dx, dgamma, dbeta)."""
    raise NotImplementedError
