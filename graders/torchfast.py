"""Keep torch.optim from importing torch._dynamo (2-3 s) in processes that never compile.

`torch.optim.Optimizer.add_param_group` (called by every optimizer's __init__), `zero_grad`,
`state_dict` and friends are wrapped by `torch._disable_dynamo`, which imports torch._dynamo on the
first call only to mark them "do not compile"; torch's own optimizers' `step` is wrapped by
`_use_grad_for_differentiable`, which imports it to place graph breaks. dldiy never calls
torch.compile, so both wrappers are set to call the plain function: the maths is unchanged, and a
check of an optimizer exercise stops paying for a compiler it does not use.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

_done = False


def skip_dynamo_in_optimizers() -> None:
    global _done
    if _done:
        return
    _done = True
    try:
        import torch
        import torch.optim
    except ImportError:
        return
    classes = [torch.optim.Optimizer, *_subclasses(torch.optim.Optimizer)]
    for cls in classes:
        for name, attr in list(vars(cls).items()):
            code = getattr(attr, "__code__", None)
            wrapped = getattr(attr, "__wrapped__", None)
            if code is None or wrapped is None:
                continue
            if code.co_name == "inner" and code.co_filename.endswith("_compile.py"):
                wrapped.__dynamo_disable = wrapped  # type: ignore[attr-defined]  # torch._compile caches this
            elif code.co_name == "_use_grad":
                setattr(cls, name, _use_grad(wrapped))


def _use_grad(func: Callable[..., Any]) -> Callable[..., Any]:
    """torch.optim's `_use_grad_for_differentiable`, without its graph breaks."""
    import torch

    @functools.wraps(func)
    def use_grad(self: Any, *args: Any, **kwargs: Any) -> Any:
        previous = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return func(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(previous)

    return use_grad


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out
