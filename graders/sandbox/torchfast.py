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
import types
from typing import Any, Callable

_done = False


def skip_dynamo() -> None:
    """Once per process that runs student code: neither an optimizer nor the meta device (the
    placement check) imports torch._dynamo."""
    global _done
    if _done:
        return
    _done = True
    skip_dynamo_in_optimizers()
    skip_dynamo_in_meta()
    skip_unprofiled_record_function()


def skip_unprofiled_record_function() -> None:
    """`torch.autograd.profiler.record_function` marks a region for a profiler: every optimizer's step()
    (torch.optim.Optimizer wraps it) and every DataLoader batch enter one, and each entry and exit is a
    dispatched op (~20 us). With no profiler running they record nothing (torch only keeps the
    handle), so here they are skipped then: 8% of an optimizer exercise's time in the student's
    process. With a profiler running, the region is recorded as torch does."""
    try:
        import torch
        from torch.autograd import profiler
    except ImportError:
        return
    cls = profiler.record_function
    enter, exit_ = cls.__enter__, cls.__exit__
    if getattr(enter, "_dldiy_skips", False):
        return

    def __enter__(self: Any) -> Any:
        if torch.autograd._profiler_enabled():
            return enter(self)
        self._dldiy_skipped = True
        return self

    def __exit__(self: Any, *exc: Any) -> Any:
        if self.__dict__.pop("_dldiy_skipped", False):
            return None
        return exit_(self, *exc)

    __enter__._dldiy_skips = True  # type: ignore[attr-defined]
    cls.__enter__, cls.__exit__ = __enter__, __exit__  # type: ignore[method-assign]


def skip_dynamo_in_optimizers() -> None:
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


def skip_dynamo_in_meta() -> int:
    """The same for the meta device (the placement check): torch's Python decompositions and meta
    functions are wrapped by `torch._disable_dynamo`, whose first call imports torch._dynamo (with
    inductor, fsdp, ...: 2 s) only to mark them "do not compile". Each wrapped function found in
    torch's decomposition modules is marked as its own disabled version (what `inner` caches), so
    the import never happens. Returns how many were marked."""
    import sys

    try:
        import torch._compile
    except ImportError:
        return 0
    inner = torch._compile._disable_dynamo(lambda: None).__code__  # the code of every such wrapper
    prefixes = ("torch._refs", "torch._prims", "torch._decomp", "torch._meta_registrations", "torch._prims_common")
    seen: set[int] = set()
    marked = 0

    def visit(fn: Any, depth: int) -> None:
        nonlocal marked
        if depth > 4 or id(fn) in seen or not callable(fn):
            return
        seen.add(id(fn))
        code = getattr(fn, "__code__", None)
        cells = getattr(fn, "__closure__", None) or ()
        if code is inner and "fn" in code.co_freevars:
            wrapped = cells[code.co_freevars.index("fn")].cell_contents
            if getattr(wrapped, "__dynamo_disable", None) is None:
                wrapped.__dynamo_disable = wrapped  # type: ignore[attr-defined]  # what inner() caches
                marked += 1
        for cell in cells:
            try:
                visit(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                pass
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None:
            visit(wrapped, depth + 1)

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(prefixes):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, types.FunctionType):
                visit(value, 0)
            elif isinstance(value, dict):  # the decomposition tables: op -> function (or op -> table)
                for entry in list(value.values()):
                    for f in (list(entry.values()) if isinstance(entry, dict) else [entry]):
                        if isinstance(f, types.FunctionType):
                            visit(f, 0)
    return marked
