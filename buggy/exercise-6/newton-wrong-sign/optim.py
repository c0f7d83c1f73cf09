"""Optimizers from scratch: the reference solution of exercise-6.

Each class keeps its hyper-parameters in `self.param_groups` and its per-parameter state in
`self.state[p]`, so torch.optim.Optimizer's state_dict()/load_state_dict() and parameter groups work
unchanged. Notation: g the gradient (plus weight_decay * p, L2 regularisation as in torch.optim),
lr the learning rate; every buffer starts at zero.
"""

import torch
from torch.optim import Optimizer


def regularised_gradient(p, weight_decay):
    """g = dL/dp + weight_decay * p: the gradient of L + (weight_decay / 2) ||p||^2."""
    return p.grad if weight_decay == 0 else p.grad.add(p, alpha=weight_decay)


class _FirstOrder(Optimizer):
    """The loop every first-order optimizer shares: closure, no_grad, skip parameters without a grad."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:  # a parameter outside this loss's graph is left untouched
                    self.update(p, regularised_gradient(p, group["weight_decay"]), group, self.state[p])
        return loss


class GD(_FirstOrder):
    """Gradient descent: w <- w - lr * g."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    def update(self, p, g, group, state):
        p.add_(g, alpha=-group["lr"])


class Momentum(_FirstOrder):
    """SGD with momentum: v <- mu * v + g, w <- w - lr * v.
    (The deck's nu = lr * v: the same trajectory for a constant lr.)"""

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def update(self, p, g, group, state):
        v = state.setdefault("velocity", torch.zeros_like(p))
        v.mul_(group["momentum"]).add_(g)
        p.add_(v, alpha=-group["lr"])


class Nesterov(_FirstOrder):
    """Nesterov momentum: v <- mu * v + g, w <- w - lr * (g + mu * v), the look-ahead gradient step."""

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def update(self, p, g, group, state):
        v = state.setdefault("velocity", torch.zeros_like(p))
        v.mul_(group["momentum"]).add_(g)
        p.add_(g.add(v, alpha=group["momentum"]), alpha=-group["lr"])


class RMSProp(_FirstOrder):
    """RMSProp: s <- alpha * s + (1 - alpha) * g^2 (entrywise), w <- w - lr * g / (sqrt(s) + eps)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

    def update(self, p, g, group, state):
        s = state.setdefault("square_avg", torch.zeros_like(p))
        s.mul_(group["alpha"]).addcmul_(g, g, value=1 - group["alpha"])
        p.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-group["lr"])


class Adam(_FirstOrder):
    """Adam with bias correction, at step t = 1, 2, ...:
    m <- b1 m + (1 - b1) g,  s <- b2 s + (1 - b2) g^2,  m^ = m / (1 - b1^t),  s^ = s / (1 - b2^t),
    w <- w - lr * m^ / (sqrt(s^) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def update(self, p, g, group, state):
        b1, b2 = group["betas"]
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        state["step"] += 1
        m, s, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        s.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat, s_hat = m / (1 - b1**t), s / (1 - b2**t)
        p.addcdiv_(m_hat, s_hat.sqrt().add_(group["eps"]), value=-group["lr"])


class Newton(Optimizer):
    """Newton-Raphson: w <- w - lr * H^{-1} g, with H the Hessian of the loss over all parameters
    (flattened and concatenated, from torch.autograd.functional.hessian) and H^{-1} g obtained by a
    linear solve, never by inverting H. For small problems only: H has n^2 entries."""

    def __init__(self, params, lr=1.0):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure):
        """`closure(*params)` returns the loss as a function of the parameters' values, in the order
        of self.param_groups; returns the loss before the update."""
        params = [p for group in self.param_groups for p in group["params"]]
        with torch.enable_grad():
            inputs = tuple(p.detach().requires_grad_() for p in params)
            loss = closure(*inputs)
            grads = torch.autograd.grad(loss, inputs)
            blocks = torch.autograd.functional.hessian(closure, inputs)
        sizes = [p.numel() for p in params]
        H = torch.cat([torch.cat([blocks[i][j].reshape(a, b) for j, b in enumerate(sizes)], dim=1)
                       for i, a in enumerate(sizes)], dim=0)
        g = torch.cat([gr.reshape(-1) for gr in grads])
        direction = torch.linalg.solve(H, g).split(sizes)
        k = 0
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(direction[k].view_as(p), alpha=group["lr"])
                k += 1
        return loss.detach()
