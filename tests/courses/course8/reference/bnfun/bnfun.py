"""Batch normalisation by hand: a forward returning (out, cache) and a backward(dout, cache)."""
import torch


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalisation of a (N, D) batch, training mode: (out, cache)."""
    mu = x.mean(dim=0)
    xc = x - mu
    var = (xc ** 2).mean(dim=0)
    inv_std = 1.0 / torch.sqrt(var + eps)
    xhat = xc * inv_std
    out = gamma * xhat + beta
    cache = (xhat, inv_std, gamma)
    return out, cache


def batchnorm_backward(dout, cache):
    """Given dL/dout (N, D) and the cache of batchnorm_forward, return (dx, dgamma, dbeta)."""
    xhat, inv_std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(dim=0)
    dgamma = (dout * xhat).sum(dim=0)
    dxhat = dout * gamma
    dx = inv_std / N * (N * dxhat - dxhat.sum(dim=0) - xhat * (dxhat * xhat).sum(dim=0))
    return dx, dgamma, dbeta
