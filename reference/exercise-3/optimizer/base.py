"""What every optimizer shares: the parameters it updates, and clearing their gradients.

A minimal stand-in for torch.optim.Optimizer (whose first use imports torch's compiler, over a
second of start-up this small project does not need).
"""

from typing import Iterable

import torch


class Optimizer:
    def __init__(self, params: Iterable[torch.Tensor]):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("the optimizer got no parameter to update")
        self.state: dict[torch.Tensor, dict] = {p: {} for p in self.params}

    def zero_grad(self) -> None:
        """Forget the gradients of the last backward(): without this they add up across steps."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError
