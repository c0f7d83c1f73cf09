"""A second device with values, on the CPU: where the meta device cannot run, placement still can.

The meta device has shapes and no values, so code that reads one (`.item()`, `if loss > best`, a loss
history of floats, `int(y[i])`) stops there and the meta probe can only say "inconclusive". Here every
input is an `Elsewhere` tensor: a CPU tensor (real values) that reports device 'meta', so that code which
follows its inputs (`torch.ones(n, 1, device=X.device)`, `X.new_zeros(...)`, `zeros_like`) stays on it,
and what a GPU would refuse is refused in the same words:

- an operation that mixes it with a CPU tensor of one or more dimensions (a CPU scalar tensor, and CPU
  indices into it, are allowed, as on CUDA);
- `.numpy()` of it (a CUDA tensor has no numpy view), a hard-coded `.cuda()`.

What a GPU allows works: `.item()`, `.tolist()`, `float(...)`, comparisons in Python, `.cpu()` (a copy
that is then a plain CPU tensor: an output left there is a stray output), `copy_` across devices.

`values_elsewhere()` is the context: inside it, a tensor moved or created with device 'meta' (how the
harnesses' `run(device)` place their inputs) becomes Elsewhere instead.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, return_and_correct_aliasing
from torch.utils._pytree import tree_map

from ..sandbox.torchfast import never_compiled

_META = torch.device("meta")
_aten = torch.ops.aten
# CPU index tensors into a CUDA tensor are moved by torch itself: not a placement error
_INDEXING = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default, _aten._index_put_impl_.default}
_CROSS_DEVICE = {_aten.copy_.default, _aten._to_copy.default, _aten.lift_fresh.default, _aten.lift_fresh_copy.default}


class Elsewhere(torch.Tensor):
    """A CPU tensor that says it lives on another device ('meta'), with its values."""

    held: torch.Tensor
    __slots__ = ("held",)

    @staticmethod
    def __new__(cls, held: torch.Tensor) -> "Elsewhere":
        made = torch.Tensor._make_wrapper_subclass(  # type: ignore[attr-defined]
            cls, held.shape, strides=held.stride(), storage_offset=held.storage_offset(), dtype=held.dtype,
            layout=held.layout, device=_META, requires_grad=held.requires_grad)
        made.held = held
        _without_dtensor()
        return made

    def __repr__(self) -> str:  # type: ignore[override]
        return f"Elsewhere({self.held!r})"

    def __tensor_flatten__(self) -> tuple[list[str], None]:
        return ["held"], None

    @staticmethod
    def __tensor_unflatten__(inner_tensors: dict[str, torch.Tensor], meta: None, size: Any, stride: Any) -> "Elsewhere":
        return Elsewhere(inner_tensors["held"])

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:  # type: ignore[override]
        kwargs = kwargs or {}
        if any(isinstance(a, torch.Tensor) and not isinstance(a, Elsewhere) and a.is_meta for a in _leaves((args, kwargs))):
            # made inside torch's C++ on the reported device (a Python number wrapped on 'meta'): no values
            raise NotSimulated(f"{func.__name__} met a tensor torch made on the meta device itself")
        if func not in _CROSS_DEVICE and func not in _INDEXING:
            _refuse_mixing(func, args, kwargs)
        if func is _aten._to_copy.default and kwargs.get("device") is not None \
                and torch.device(kwargs["device"]).type == "cpu":  # .cpu(): a copy that leaves the device
            return func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        out = func(*tree_map(_unwrap, args), **tree_map(_unwrap_device, kwargs))
        out = tree_map(_wrap, out)
        return return_and_correct_aliasing(func, args, kwargs, out)


class NotSimulated(RuntimeError):
    """This device cannot run an operation as a GPU would (no values where torch made a tensor itself):
    not a finding about the submission."""


def _unwrap(a: Any) -> Any:
    return a.held if isinstance(a, Elsewhere) else a


def _unwrap_device(a: Any) -> Any:
    if isinstance(a, torch.device) and a.type == "meta":
        return torch.device("cpu")
    return _unwrap(a)


def _wrap(a: Any) -> Any:
    return Elsewhere(a) if isinstance(a, torch.Tensor) and not isinstance(a, Elsewhere) else a


def _refuse_mixing(func: Any, args: tuple, kwargs: dict) -> None:
    tensors = [a for a in _leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
    if not any(isinstance(t, Elsewhere) for t in tensors):
        return
    stray = next((t for t in tensors if not isinstance(t, Elsewhere) and t.dim() > 0), None)
    if stray is not None:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"the inputs' device and {stray.device}! (in {func.__name__}: a tensor created without "
                           "device=, or moved with .cpu(), met the inputs)")


def _leaves(tree: Any) -> list[Any]:
    out: list[Any] = []
    tree_map(out.append, tree)
    return out


_DTENSOR = "torch.distributed.tensor"


def _without_dtensor() -> types.ModuleType | None:
    """torch's C++ asks every tensor subclass that meets an op whether it is a DTensor, importing
    torch.distributed.tensor for the class on first use: 0.8 s, sympy among it (exercise-2's placement
    went from 1.9 to 3.0 s, every submission, since its reference always needs the second run). Once a
    process holds Elsewhere tensors (from the first one made, for the process's life: the wire's own
    detach() of one meets the question too), and only if nothing imported it before, a module whose
    DTensor nothing is an instance of answers that question (a grading process uses no DTensor)."""
    if _DTENSOR in sys.modules:
        return None
    stub = _DTensorStandIn(_DTENSOR)
    stub.DTensor = type("DTensor", (torch.Tensor,), {})  # type: ignore[attr-defined]
    sys.modules[_DTENSOR] = stub
    return stub


class _DTensorStandIn(types.ModuleType):
    """Answers DTensor alone; any other name (torch's meta functions import DeviceMesh from it) imports
    the real module in its place and answers from there."""

    def __getattr__(self, name: str) -> Any:
        import importlib

        if sys.modules.get(_DTENSOR) is self:
            del sys.modules[_DTENSOR]
        return getattr(importlib.import_module(_DTENSOR), name)


_ACTIVE = [0]  # how many values_elsewhere contexts are open in this process


def active() -> bool:
    """Whether placement's second run is under way here (a probe that places its inputs in the student's
    process passes that on: exercise-6's placed_here)."""
    return _ACTIVE[0] > 0


class _FactoriesElsewhere(TorchDispatchMode):
    """Below values_elsewhere: a tensor made on 'meta' from nothing but numbers and shapes (aten.zeros,
    aten.full, ...; `.to('meta')` of a CPU tensor) where the function mode does not reach is made
    Elsewhere too. Autograd runs a custom Function's backward outside torch function modes but inside
    dispatch modes: exercise-8's max-pool backward, torch.zeros(..., device=grad_out.device), was a real
    meta tensor there (NotSimulated, an inconclusive placement)."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "meta":
            tensors = [a for a in _leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
            if not tensors:  # a factory: the same on the CPU, with values
                return _wrap(func(*args, **{**kwargs, "device": torch.device("cpu")}))
            if func is _aten._to_copy.default and len(tensors) == 1 and not isinstance(tensors[0], Elsewhere) \
                    and tensors[0].device.type == "cpu":  # a CPU tensor moved to the reported device
                return _wrap(func(*args, **{**kwargs, "device": torch.device("cpu")}))
        return func(*args, **kwargs)


# torch wraps every dispatch mode's __torch_dispatch__ in torch._disable_dynamo, whose first call imports
# torch._dynamo (1.1 s: exercise-2's check went from 0.3 to 1.8 s over `import torch`). Nothing here is ever
# compiled: the wrapper is told its function is already "disabled".
never_compiled(getattr(_FactoriesElsewhere.__dict__["__torch_dispatch__"], "__wrapped__", None))


class values_elsewhere(TorchFunctionMode):
    """Inside: `.to('meta')` and factories given device 'meta' make Elsewhere tensors (CPU values), in
    a custom Function's backward too (_FactoriesElsewhere); `.numpy()` and `.cuda()` of an Elsewhere
    tensor raise as they would on a GPU."""

    def __enter__(self) -> "values_elsewhere":
        _ACTIVE[0] += 1
        _without_dtensor()
        self._factories = _FactoriesElsewhere()
        self._factories.__enter__()
        return super().__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE[0] -= 1
        super().__exit__(*exc)
        self._factories.__exit__(*exc)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if args and isinstance(args[0], Elsewhere):
            if func is torch.Tensor.numpy:
                raise TypeError("can't convert meta device type tensor to numpy. Use Tensor.cpu() to copy the "
                                "tensor to host memory first.")
            if func is torch.Tensor.cuda:
                raise RuntimeError("a hard-coded .cuda() moves a tensor off its inputs' device")
            if func is torch.Tensor.tolist:
                return args[0].held.tolist()
        if func is torch.where and len(args) == 3 and any(isinstance(a, Elsewhere) for a in args):
            # torch.where(mask, 1.0, -1.0), where(x > 0, x, 0.0): C++ wraps each number as a tensor on the
            # mask's device, here 'meta' without its value; a 0-dim tensor of the number's own dtype
            # promotes as the number does (below any tensor of one or more dimensions)
            args = tuple(Elsewhere(torch.tensor(a)) if isinstance(a, (bool, int, float)) else a for a in args)
        device = kwargs.get("device")
        if func is torch.Tensor.to and device is None:
            device = next((a for a in args[1:] if isinstance(a, (str, torch.device))), None)
        if device is not None and torch.device(device).type == "meta":
            if func is torch.Tensor.to:
                rest: list[Any] = [torch.device("cpu") if a is device else a for a in args[1:]]
                moved = func(_unwrap(args[0]), *rest, **{**kwargs, **({"device": "cpu"} if "device" in kwargs else {})})
                if isinstance(args[0], Elsewhere) and moved is args[0].held:
                    return args[0]  # already there: .to() returns the tensor itself
                return _wrap(moved)
            return tree_map(_wrap, func(*args, **{**kwargs, "device": "cpu"}))
        return func(*args, **kwargs)
