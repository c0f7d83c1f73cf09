"""A correct exercise-6 submission written differently from the reference, on purpose: no shared
base class, the deck's form of momentum (nu = lr * g + mu * nu), Adam in torch's algebraic form with a
tensor step count, updates through p.data (in place: p.data.sub_), Newton on one flattened vector. It must pass every check."""

import torch
from torch.autograd.functional import hessian, jacobian


def _check(lr):
    if lr < 0:
        raise ValueError(f"invalid learning rate {lr}")


class GD(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, weight_decay=0.0):
        _check(lr)
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad + group["weight_decay"] * p
                    p.data.sub_(group["lr"] * g)
        return loss


class Momentum(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        _check(lr)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad + group["weight_decay"] * p
                    nu = self.state[p].get("nu", torch.zeros_like(p))
                    if self.state[p].get("lr", group["lr"]) not in (group["lr"], 0):  # a scheduler changed lr:
                        nu = nu * (group["lr"] / self.state[p]["lr"])  # nu = lr v holds the old lr
                    self.state[p]["lr"] = group["lr"]
                    nu = group["lr"] * g + group["momentum"] * nu  # the deck's form
                    self.state[p]["nu"] = nu
                    p -= nu
        return loss


class Nesterov(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        _check(lr)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                mu = group["momentum"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad + group["weight_decay"] * p
                    state = self.state[p]
                    v = mu * state["v"] + g if "v" in state else g.clone()
                    state["v"] = v
                    p.data.sub_(group["lr"] * (g + mu * v))
        return loss


class RMSProp(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        _check(lr)
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad + group["weight_decay"] * p
                    s = self.state[p].get("s", torch.zeros_like(p))
                    s = group["alpha"] * s + (1 - group["alpha"]) * g * g
                    self.state[p]["s"] = s
                    p -= group["lr"] * g / (torch.sqrt(s) + group["eps"])
        return loss


class Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        _check(lr)
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad + group["weight_decay"] * p
                    state = self.state[p]
                    if len(state) == 0:
                        state["t"] = torch.tensor(0.0)
                        state["m"] = torch.zeros_like(p)
                        state["v"] = torch.zeros_like(p)
                    state["t"] += 1
                    t = state["t"].item()
                    state["m"].lerp_(g, 1 - beta1)
                    state["v"].mul_(beta2).add_((1 - beta2) * g ** 2)
                    step_size = group["lr"] / (1 - beta1 ** t)
                    denom = state["v"].sqrt() / (1 - beta2 ** t) ** 0.5 + group["eps"]
                    p.sub_(step_size * state["m"] / denom)
        return loss


class Newton(torch.optim.Optimizer):
    def __init__(self, params, lr=1.0):
        super().__init__(params, {"lr": lr})

    def step(self, closure):
        params = [p for group in self.param_groups for p in group["params"]]
        shapes = [p.shape for p in params]
        z = torch.cat([p.detach().flatten() for p in params])

        def f(flat):
            pieces, start = [], 0
            for shape in shapes:
                n = shape.numel()
                pieces.append(flat[start:start + n].reshape(shape))
                start += n
            return closure(*pieces)

        H = hessian(f, z)
        g = jacobian(f, z)
        d = torch.linalg.solve(H, g.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            loss = f(z)
            start = 0
            for group in self.param_groups:
                for p in group["params"]:
                    n = p.numel()
                    p -= group["lr"] * d[start:start + n].view_as(p)
                    start += n
        return loss
