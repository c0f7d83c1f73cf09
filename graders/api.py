"""Harness side: reach into a loaded submission and check that what comes back has the promised form.

Harnesses call `sub.call("gradient", X, y, w, dims={"n": 20, "d": 3})` (graders/sandbox/remote.py, in the
trusted harness process): a missing name, a wrong shape or dtype, or a NaN in a plain function's
output becomes an ApiError, one line naming what was expected, so the student never sees our
traceback.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .course.exercise import ApiEntry, Exercise


class ApiError(Exception):
    """What the submission returned (or failed to define) does not match the exercise's API."""


class HistoryLengthError(ApiError):
    """A training loop returned another number of losses than the steps it was asked for."""

    def __init__(self, message: str, count: int, steps: int):
        super().__init__(message)
        self.count, self.steps = count, steps


def check_result(exercise: Exercise, name: str, result: Any, args: tuple, dims: dict[str, int] | None) -> Any:
    """The result of the student's `name` checked against the spec's shape and dtype (an ApiError if not)."""
    entry = exercise.api.get(name)
    if entry is not None and (entry.shape or entry.dtype):
        result = expect_tensor(result, f"{name}()", shape=_shape(entry, dims or {}), dtype=entry.dtype,
                               device=_device_of(args))
    return result

    @contextmanager
    def replaced(self, name: str, fn: Callable[..., Any]) -> Iterator[None]:
        """Within the block, the submission's own code calling `name` calls the harness's `fn` instead
        (one bug, one deduction: train() is judged with a correct gradient()); restored on exit, even
        on an exception. `fn` receives and returns tensors. The cross-process proxy keeps this API."""
        missing = object()
        saved = getattr(self.module, name, missing)
        setattr(self.module, name, fn)
        try:
            yield
        finally:
            if saved is missing:
                delattr(self.module, name)
            else:
                setattr(self.module, name, saved)


def _shape(entry: ApiEntry, dims: dict[str, int]) -> tuple[int, ...] | None:
    if entry.shape is None:
        return None
    return tuple(eval(entry.shape, {"__builtins__": {}}, dims))  # spec text, trusted; e.g. "(d+1,)"


def _device_of(args: tuple) -> torch.device | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
    return None


def expect_tensor(value: Any, what: str, shape: tuple[int, ...] | None = None, dtype: str | None = None,
                  finite: bool = True, device: torch.device | None = None,
                  allow_number: bool = False) -> torch.Tensor:
    """`value` as a tensor of the expected shape and kind, or an ApiError saying how it differs.
    A plain number where a tensor is promised is reported as what it is: turning it into a float32
    tensor would hand the judge rounding noise (a finite difference of it) instead of the cause.
    `allow_number` accepts one where the spec allows it, kept at float64 precision."""
    if isinstance(value, (bool, int, float, np.floating, np.integer)):
        if not allow_number or isinstance(value, bool):
            kind = ("a numpy " + type(value).__name__ if isinstance(value, (np.floating, np.integer))
                    else "a Python " + type(value).__name__)
            raise ApiError(f"{what} returned {kind} ({value!r}); expected a torch tensor"
                           + (f" of shape {tuple(shape)}" if shape is not None else "")
                           + (" (return the tensor itself, not .item() or float() of it)" if shape == () else ""))
        value = torch.tensor(value, dtype=torch.float64 if dtype == "float" or isinstance(value, (float, np.floating))
                             else torch.int64)
    elif isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise ApiError(f"{what} returned {type(value).__name__}; expected a torch tensor"
                       + (f" of shape {shape}" if shape is not None else ""))
    if shape is not None and tuple(value.shape) != tuple(shape):
        hint = ""
        if value.numel() == int(np.prod(shape)):
            hint = " (same number of entries: a missing .squeeze(), .view() or a transpose?)"
        raise ApiError(f"{what} returned shape {tuple(value.shape)}; expected {tuple(shape)}{hint}")
    if dtype == "float" and not value.is_floating_point():
        raise ApiError(f"{what} returned dtype {value.dtype}; expected a floating-point tensor")
    if dtype == "int" and (value.is_floating_point() or value.is_complex()):
        raise ApiError(f"{what} returned dtype {value.dtype}; expected an integer tensor")
    if device is not None and value.device.type != "meta" and device.type == "meta":
        raise ApiError(f"{what} returned a tensor on {value.device}; the inputs were on {device}")
    if finite and value.device.type != "meta" and value.is_floating_point() and not torch.isfinite(value).all():
        bad = (~torch.isfinite(value)).nonzero()[0].tolist()
        raise ApiError(f"{what} returned {value[tuple(bad)].item()} at index {tuple(bad)} for finite inputs")
    return value


def expect_history(losses: Any, steps: int, what: str = "train()") -> list[float]:
    """A training loop's loss history: one number per step, as floats. NaN and inf are kept: a
    diverging loss is for the judge to read (divergence), not an error in the submission's form."""
    try:  # the length first: a tensor view of millions of entries (8 bytes on the wire, stride 0) would
        # otherwise be turned into a list of Python floats, seconds and gigabytes in the trusted process
        count = len(losses)
    except TypeError:
        count = None
    if count is not None and count != steps:
        raise HistoryLengthError(f"{what} returned {count} losses for steps={steps}; expected one per step"
                                 + _history_cause(count, steps), count, steps)
    try:
        history = [float(v) for v in losses]
    except (TypeError, ValueError):
        raise ApiError(f"{what} must return its losses as a sequence of numbers, one per step") from None
    if len(history) != steps:
        raise HistoryLengthError(f"{what} returned {len(history)} losses for steps={steps}; expected one per step"
                                 + _history_cause(len(history), steps), len(history), steps)
    return history


def _history_cause(count: int, steps: int) -> str:
    """The likely cause of a history of the wrong length, from the numbers alone (blind round 8: "29 losses for
    steps=6" said nothing of where the other 23 came from)."""
    if count == steps + 1:
        return " (one more: a loss recorded after the loop, or before it as well as in it?)"
    if count > steps:
        return (f" ({count - steps} more than asked: a list kept from earlier calls, a mutable default argument "
                "`losses=[]` or a global, or more than one loss recorded per step?)")
    if count == steps - 1:
        return " (one short: a loop over range(steps - 1), or one that starts at 1?)"
    return ""


def to_plain(value: Any) -> Any:
    """Tensors and numpy values as JSON-ready lists and floats (the child never pickles)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().tolist() if value.is_floating_point() else value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def built_inside(sub: Any, factory: Callable[..., Any], *args: Any) -> Any:
    """factory(*args) built where the submission runs: through sub.local when the submission answers from
    its own process (train()'s hundred calls of the harness's gradient stay there instead of one message
    each; a harness callback would hand back results without an autograd graph), here when it runs in
    this one. `factory` is a module-level function of the harness file."""
    local = getattr(sub, "local", None)
    return local(factory, *args) if local is not None else factory(*args)
