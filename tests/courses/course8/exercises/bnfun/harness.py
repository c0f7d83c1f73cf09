"""bnfun probes: a forward -> (out, cache) and a backward(dout, cache), checked as one autograd.Function."""

import torch
import torch.nn.functional as F

from dldiy.graders.api import built_inside
from dldiy.graders.batched import function_blocks
from dldiy.graders.layers import as_array

N, D = 8, 5


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(N, D, generator=g, dtype=torch.float64) + 2.0
    return x, torch.randn(D, generator=g, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64)


def forward_agrees(sub, seed, p):
    x, gamma, beta = _inputs(seed)
    out, _ = sub.call("batchnorm_forward", x, gamma, beta)  # the out part only: the cache is the student's own
    values = as_array(out, "batchnorm_forward(...)[0]")
    return {"cases": [{"name": "out", "shape": list(values.shape), "values": values.ravel().tolist()}]}


def bn_function(forward, backward):
    """The student's two functions as one autograd.Function, built in the student's process (built_inside)."""
    class BatchNormFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta):
            out, cache = forward(x, gamma, beta)
            ctx.cache = cache
            return out

        @staticmethod
        def backward(ctx, dout):
            return backward(dout, ctx.cache)

    return lambda *xs: BatchNormFn.apply(*xs)


def backward_gradcheck(sub, seed, p):
    x, gamma, beta = _inputs(seed)
    fn = built_inside(sub, bn_function, sub.get("batchnorm_forward"), sub.get("batchnorm_backward"))
    return {"blocks": function_blocks(sub, fn, [x, gamma, beta], ["batchnorm_backward: dx",
                                                                  "batchnorm_backward: dgamma",
                                                                  "batchnorm_backward: dbeta"])}


def backward_against_torch(sub, seed, p):
    """dx, dgamma, dbeta against torch's own op: each case's `target` is autograd of F.batch_norm, computed here
    (recorded from the reference's run, measured live at hidden seeds), which the student's values are held to."""
    x, gamma, beta = _inputs(seed)
    dout = torch.randn(N, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    _, cache = sub.call("batchnorm_forward", x, gamma, beta)
    grads = sub.call("batchnorm_backward", dout, cache)
    leaves = [t.clone().requires_grad_(True) for t in (x, gamma, beta)]
    out = F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], training=True, eps=1e-5)
    want = torch.autograd.grad((out * dout).sum(), leaves)
    cases = []
    for name, got, target in zip(("dx", "dgamma", "dbeta"), grads, want):
        values = as_array(got, name)
        cases.append({"name": name, "shape": list(values.shape), "values": values.ravel().tolist(),
                      "target": target.ravel().tolist()})
    return {"cases": cases}
