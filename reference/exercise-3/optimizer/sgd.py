"""Stochastic gradient descent with momentum."""

import torch

from .base import Optimizer


class SGD(Optimizer):
    """Heavy-ball momentum, as torch.optim.SGD (no dampening, no Nesterov):

        b <- g at the first step, then b <- momentum * b + g;     p <- p - lr * b
    """

    def __init__(self, params, lr: float, momentum: float = 0.0):
        if lr <= 0.0:
            raise ValueError(f"the learning rate must be positive, got {lr}")
        super(SGD, self).__init__(params)
        self.lr = lr
        self.momentum = momentum

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            direction = p.grad
            if self.momentum != 0.0:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    buf = state["momentum_buffer"] = direction.clone()
                else:
                    buf = state["momentum_buffer"]
                    buf.mul_(self.momentum).add_(direction)
                direction = buf
            p.add_(direction, alpha=-self.lr)
