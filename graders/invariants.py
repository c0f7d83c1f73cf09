"""Child side: invariants every probed call must keep, whatever the exercise.

A probe calls the submission through `unmodified(...)` (its tensor arguments are compared with copies
kept before the call: a function that overwrites its caller's data is named) and checks what came back
with `same_dtype` and `no_graph`. A broken invariant raises `Violation`; a probe wrapped in `@keeps_rules`
then returns {"violation": message}, which the parent judges a failure of that check (graders/judge.py),
so the student reads the rule that was broken, not a crash.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch


class Violation(Exception):
    """The submission broke a rule of the exercise (an argument modified, a dtype changed, autograd used)."""


def keeps_rules(probe: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A probe whose `Violation` becomes the measurement {"violation": message}."""
    @functools.wraps(probe)
    def wrapped(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return probe(*args, **kwargs)
        except Violation as v:
            return {"violation": str(v)}
    return wrapped


def unmodified(call: Callable[[], Any], what: str, **arguments: Any) -> Any:
    """`call()`, then a Violation if it changed any tensor among `arguments` (name -> tensor) in place."""
    kept = {name: t.detach().clone() for name, t in arguments.items() if isinstance(t, torch.Tensor)}
    result = call()
    for name, before in kept.items():
        after = arguments[name]
        if after.shape != before.shape or after.dtype != before.dtype or not torch.equal(
                torch.nan_to_num(after.detach(), nan=0.5), torch.nan_to_num(before, nan=0.5)):
            raise Violation(f"{what} modified its argument {name} in place: the caller's tensor must be left as it "
                            f"was (work on a copy, e.g. {name}.clone(), or write `x = x - ...` instead of `x -= ...`)")
    return result


def same_dtype(value: torch.Tensor, dtype: torch.dtype, what: str) -> torch.Tensor:
    """A Violation unless `value` has the inputs' floating dtype (float64 in, float64 out)."""
    if value.dtype != dtype:
        raise Violation(f"{what} returned {str(value.dtype).replace('torch.', '')} for "
                        f"{str(dtype).replace('torch.', '')} inputs: the output's dtype must follow the inputs' "
                        "(no hard-coded dtype=, no .float() or .double() of the result)")
    return value


def no_graph(value: torch.Tensor, what: str) -> torch.Tensor:
    """A Violation if a hand-computed result carries an autograd graph (requires_grad or a grad_fn)."""
    if value.requires_grad or value.grad_fn is not None:
        raise Violation(f"{what} returned a tensor with requires_grad={value.requires_grad} (grad_fn "
                        f"{type(value.grad_fn).__name__ if value.grad_fn is not None else None}): a gradient by "
                        "hand needs no autograd graph")
    return value


class CallCounter:
    """Stands in for one of the submission's functions and counts the calls made to it."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)
