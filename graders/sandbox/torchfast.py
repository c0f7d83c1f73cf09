"""Keep torch.optim from importing torch._dynamo (2-3 s) in processes that never compile, and the meta
device on torch's C++ kernels where they judge devices as its Python ones do.

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
    native_meta_kernels()


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


def never_compiled(wrapped: Any) -> Any:
    """Mark `wrapped`, the function inside a torch._disable_dynamo wrapper, as already disabled: the
    wrapper's first call then no longer imports torch._dynamo (1.1-1.3 s) to disable it. torch wraps
    every dispatch mode's __torch_dispatch__ so, and the optimizers' methods. Returns `wrapped`."""
    if wrapped is not None and getattr(wrapped, "__dynamo_disable", None) is None:
        wrapped.__dynamo_disable = wrapped  # what torch._compile's inner() caches
    return wrapped


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
                never_compiled(wrapped)
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
                never_compiled(wrapped)
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


# binary ops that are TensorIterator kernels in C++ (the device check included) though their Python
# reference dispatches to another reference instead of carrying the elementwise wrapper itself
_ELEMENTWISE_BY_NAME = frozenset({"div.Tensor", "div.Tensor_mode", "div.out", "div.out_mode", "div_.Tensor",
                                  "div_.Tensor_mode"})


def native_meta_kernels() -> int:
    """The meta device (the placement check) on torch's C++ meta kernels where they exist and judge
    devices as the Python ones do; returns how many ops changed.

    `import torch` registers a Python meta function over the C++ one for ~1,300 ops
    (torch/_meta_registrations.py, `activate_meta`), for symbolic shapes; eagerly, on concrete shapes,
    each call then runs torch's Python references: `torch.logaddexp` on meta took 2 ms, `u * u` 76 us,
    against under 1 us in C++, and exercise-1's loss and gradient 10 ms of every student's process.
    What the placement check reads of a call is its outputs' device and the device errors it raises. An
    op with at most one tensor argument has no devices to mix (a device argument, as zeros_like's, places
    the output alike in both); an elementwise op's C++ kernel is a TensorIterator, whose meta pass checks
    devices as the Python reference does (a 0-dim CPU tensor allowed, any other CPU tensor refused), and
    an in-place one (add_) as a GPU does, where torch's Python meta function checked shapes only. Those go
    back to C++ (so do ops of one tensor with only a device-generic C++ kernel); every other op
    (a tensor list such as `cat`, whose C++ meta does not check devices, matrix products, losses,
    convolutions) keeps its Python meta function. torch.compile's tracing (the Python dispatcher) keeps
    every Python kernel (`py_kernels`), untouched here. Only on a torch in nosympy.VERIFIED_TORCH."""
    try:
        import torch
        import torch._meta_registrations as registrations
        from torch._decomp import global_decomposition_table
    except ImportError:
        return 0
    from .nosympy import verified  # the torch versions the meta device's shortcuts were checked against

    if not verified(torch.__version__):
        return 0
    library = getattr(registrations, "_meta_lib_dont_use_me_use_register_meta", None)
    if library is None or getattr(library, "_dldiy_native", False):
        return 0
    registered = {key.split("/")[1] for key in getattr(library, "_op_impls", ())}  # "aten/<name>/Meta"
    table: dict[Any, Callable[..., Any]] = {}
    for kind in ("meta", "post_autograd", "pre_autograd"):  # activate_meta's order of precedence
        for op, fn in global_decomposition_table[kind].items():
            table.setdefault(op, fn)
    ops = [(op, fn) for op, fn in table.items()
           if isinstance(op, torch._ops.OpOverload) and op.name().split("::")[-1] in registered]
    if len(ops) != len(registered):  # a registration made elsewhere: leave torch as it is
        return 0
    library._destroy()
    replacement = torch.library.Library("aten", "IMPL", "Meta")
    replacement._dldiy_native = True  # type: ignore[attr-defined]
    native, elementwise = 0, _Elementwise()
    by_name = {op.name().split("::")[-1]: fn for op, fn in table.items() if isinstance(op, torch._ops.OpOverload)}
    for op, fn in ops:
        name = op.name()
        short = name.split("::")[-1]
        base, _, overload = short.partition(".")
        # an in-place op (add_.Tensor) is the TensorIterator of its out-of-place twin (add.Tensor), written back
        twin = by_name.get(f"{base[:-1]}.{overload}" if overload else base[:-1]) if base.endswith("_") else None
        tensors = _tensor_arguments(op)
        if tensors is not None and _cpp_runs_on_meta(name, tensors) and \
                (tensors <= 1 or short in _ELEMENTWISE_BY_NAME or elementwise(fn) or (twin is not None and elementwise(twin))):
            native += 1
            continue
        replacement.impl(op, fn)
    registrations._meta_lib_dont_use_me_use_register_meta = replacement  # later registrations land here
    return native


def _cpp_runs_on_meta(name: str, tensors: int) -> bool:
    """torch has a C++ meta kernel for `name`, or (an op of at most one tensor, such as zeros_like or
    new_empty) a device-generic C++ kernel, which runs on meta through the ops it calls."""
    import torch

    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return has(name, "Meta") or (tensors <= 1 and has(name, "CompositeExplicitAutograd"))


def _tensor_arguments(op: Any) -> int | None:
    """How many tensor arguments `op` takes; None when it takes a list of tensors, or a device beside two
    tensors or more. (A device beside one tensor, as `zeros_like(x, device=...)` takes it, places the
    output where the C++ kernel and the Python function alike put it: that device, else x's.)"""
    count, device = 0, False
    for argument in op._schema.arguments:
        kind = argument.type.kind()
        if kind == "OptionalType":
            kind = argument.type.getElementType().kind()
        if kind == "TensorType":
            count += 1
        elif kind == "DeviceObjType":
            device = True
        elif kind == "ListType" and "Tensor" in str(argument.type):
            return None
    return None if device and count > 1 else count


class _Elementwise:
    """Whether torch's Python reference `fn` is an elementwise one: it carries the elementwise
    type-promotion wrapper, somewhere in its closures or what it wraps, or is a meta function built on
    `elementwise_meta` (an op's overloads share one reference: each answered once)."""

    def __init__(self) -> None:
        from torch._prims_common.wrappers import elementwise_type_promotion_wrapper

        self.wrapper = elementwise_type_promotion_wrapper
        self.known: dict[int, bool] = {}

    def __call__(self, fn: Any, depth: int = 0) -> bool:
        if depth > 4 or fn is None:
            return False
        if id(fn) not in self.known:
            self.known[id(fn)] = False  # (a cycle ends here)
            self.known[id(fn)] = self._search(fn, depth)
        return self.known[id(fn)]

    def _search(self, fn: Any, depth: int) -> bool:
        code = getattr(fn, "__code__", None)
        if code is not None and "elementwise_meta" in code.co_names:  # _meta_registrations' own (addcmul, lerp, ...)
            return True
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, self.wrapper) or (callable(value) and self(value, depth + 1)):
                return True
        return self(getattr(fn, "__wrapped__", None), depth + 1)
