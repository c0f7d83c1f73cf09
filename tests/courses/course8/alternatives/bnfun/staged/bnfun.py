"""A staged (CS231n-style) backward and a dict cache: correct, and its dx through out.sum() is rounding."""
import torch


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    mu = x.sum(0) / n
    xmu = x - mu
    var = (xmu * xmu).sum(0) / n
    sqrtvar = (var + eps).sqrt()
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    return gamma * xhat + beta, {"xhat": xhat, "xmu": xmu, "ivar": ivar, "sqrtvar": sqrtvar, "var": var,
                                 "gamma": gamma, "eps": eps}


def batchnorm_backward(dout, cache):
    c = cache
    n, d = dout.shape
    dbeta = dout.sum(0)
    dgamma = (dout * c["xhat"]).sum(0)
    dxhat = dout * c["gamma"]
    divar = (dxhat * c["xmu"]).sum(0)
    dxmu1 = dxhat * c["ivar"]
    dsqrtvar = -divar / c["sqrtvar"] ** 2
    dvar = 0.5 / torch.sqrt(c["var"] + c["eps"]) * dsqrtvar
    dsq = torch.ones(n, d, dtype=dout.dtype) / n * dvar
    dxmu2 = 2 * c["xmu"] * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -dx1.sum(0)
    dx2 = torch.ones(n, d, dtype=dout.dtype) / n * dmu
    return dx1 + dx2, dgamma, dbeta
