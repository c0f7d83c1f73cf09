"""Exercise 6: optimizers from scratch, as in the MLHEP deck (Deep Learning 101).

Each optimizer is a torch.optim.Optimizer subclass, so it works with any model's parameters:

    opt = Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); loss.backward(); opt.step()

Rules of the game (they are what torch.optim does, and what makes parameter groups and
state_dict() work for free):
  - pass the hyper-parameters to super().__init__(params, defaults) and read them, in step(), from
    the parameter's group: `for group in self.param_groups: for p in group["params"]: group["lr"]`;
  - keep per-parameter state (momentum buffers, step counts) in `self.state[p]` (a dict per parameter,
    empty at first), every buffer starting at zero;
  - update in place under torch.no_grad() (decorate step with @torch.no_grad()): p.add_(...), p.sub_(...),
    the parameter's own memory, which every view of it sees (never p.data = a new tensor);
  - skip a parameter whose p.grad is None;
  - with weight_decay, use g = p.grad + weight_decay * p (L2 regularisation, as torch.optim does);
  - each step is yours: never call one of torch.optim's own optimizers inside it (torch.optim.SGD.step,
    torch.optim.Adam.step, ...: they are what yours are checked against).

Notation: g the gradient, lr the learning rate, t = 1, 2, ... the step count.
  GD        w <- w - lr g
  Momentum  v <- mu v + g;  w <- w - lr v          (the deck writes nu = lr v: the same trajectory)
  Nesterov  v <- mu v + g;  w <- w - lr (g + mu v)
  RMSProp   s <- alpha s + (1 - alpha) g^2 (entrywise);  w <- w - lr g / (sqrt(s) + eps)
            (eps outside the square root, as torch does; the deck writes sqrt(s + eps))
  Adam      m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2;
            w <- w - lr m^ / (sqrt(s^) + eps),  m^ = m / (1 - b1^t),  s^ = s / (1 - b2^t)
  Newton    w <- w - lr H^{-1} g, H the Hessian of the loss over all parameters flattened into one
            vector (torch.autograd.functional.hessian); get H^{-1} g by solving H d = g
            (torch.linalg.solve), never by inverting H.

Check your work with:  dldiy check exercise-6
"""

import torch
from torch.optim import Optimizer


class GD(Optimizer):
    """Gradient descent."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter; returns closure()'s loss when a closure is given."""
        raise NotImplementedError("exercise-6: implement GD.step")


class Momentum(Optimizer):
    """SGD with momentum."""

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        raise NotImplementedError("exercise-6: implement Momentum.__init__ (see GD's)")

    @torch.no_grad()
    def step(self, closure=None):
        raise NotImplementedError("exercise-6: implement Momentum.step")


class Nesterov(Optimizer):
    """Nesterov momentum: the step is taken along the look-ahead direction g + mu v."""

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        raise NotImplementedError("exercise-6: implement Nesterov.__init__")

    @torch.no_grad()
    def step(self, closure=None):
        raise NotImplementedError("exercise-6: implement Nesterov.step")


class RMSProp(Optimizer):
    """RMSProp."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        raise NotImplementedError("exercise-6: implement RMSProp.__init__")

    @torch.no_grad()
    def step(self, closure=None):
        raise NotImplementedError("exercise-6: implement RMSProp.step")


class Adam(Optimizer):
    """Adam, with bias correction."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        raise NotImplementedError("exercise-6: implement Adam.__init__")

    @torch.no_grad()
    def step(self, closure=None):
        raise NotImplementedError("exercise-6: implement Adam.step")


class Newton(Optimizer):
    """Newton-Raphson, for small problems (the Hessian has n^2 entries for n parameters)."""

    def __init__(self, params, lr=1.0):
        raise NotImplementedError("exercise-6: implement Newton.__init__")

    def step(self, closure):
        """`closure(*params)` returns the loss as a function of the parameters' values, in the order
        of self.param_groups, so torch.autograd.functional.hessian(closure, tuple(params)) gives the
        Hessian's blocks. Update every parameter; return the loss before the update."""
        raise NotImplementedError("exercise-6: implement Newton.step")
