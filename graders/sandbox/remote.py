"""Harness side: the submission as seen from the trusted process, through an Endpoint.

`RemoteSubmission` has the interface harnesses always used (`sub.get(name)`, `sub.call(name, ...)`,
`sub.replaced(name, fn)`), but every call runs in the student's confined process. `sub.batch(calls)`
sends many calls in one message: [(target, method, args, kwargs), ...] run in order there, never
differentiable, each result (or a RemoteError in its place) checked here as any reply is. Autograd crosses
the boundary: when a call's inputs (or any tensor the student's process holds a mirror of) require
grad, the call becomes one node of the harness's graph (graders/sandbox/bridge.py), whose backward asks the student's
process for the vector-Jacobian product through its own graph. So `torch.autograd.grad(out, x)` on a
remote output computes what it always did, and only numbers ever cross.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable, Iterator

from .endpoint import _PUT_BACK, Endpoint, Local, RemoteError, RemoteHandle

BY_NAME = "name"  # a call target given as the module attribute's name


def _target(endpoint: Endpoint, target: Any, buffers: list[bytes]) -> Any:
    if isinstance(target, str):
        return {"name": target}
    return {"handle": endpoint.encode(target, buffers)}


class HungEarlier(BaseException):
    """The student's process refused to run a function of the submission that overran a check's timeout
    earlier in this job (student.refuse_hung): the check that needed it fails at once, as a timeout,
    instead of waiting its own timeout out. A BaseException, as wire.Timeout is: a probe's
    `except Exception` never takes it for the submission's error at one configuration."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def not_called_again(function: str, where: str) -> str:
    """The refusal's words (where: the check, seed and line it hung at)."""
    return f"{function}() did not finish in an earlier check ({where}): not called again"


def remote_op(endpoint: Endpoint, op: str, target: Any, **fields: Any) -> Any:
    buffers: list[bytes] = []
    header = {"op": op, "target": _target(endpoint, target, buffers)}
    for key in ("path", "name"):
        if key in fields:
            header[key] = endpoint.encode(fields[key], buffers)
    if "value" in fields:
        header["value"] = endpoint.encode(fields["value"], buffers)
    endpoint.send(header, buffers)
    return endpoint.await_reply()


def remote_getattr(endpoint: Endpoint, target: Any, name: str) -> Any:
    try:
        return remote_op(endpoint, "getattr", target, name=name)
    except RemoteError as e:
        if e.kind == "missing":
            raise AttributeError(e.message) from None
        raise


def _tensors_in(value: Any, out: list) -> None:
    from .bridge import tensors_in

    tensors_in(value, out)


def remote_call(endpoint: Endpoint, target: Any, method: str | None, args: tuple, kwargs: dict) -> Any:
    """Call `target` (a name or a handle), or its `method`, in the student's process (differentiable
    through graders/sandbox/bridge.py when its inputs, or tensors the student's process holds, require grad)."""
    import torch

    from . import bridge

    header: dict[str, Any] = {"op": "call", "method": method, "grad_mode": torch.is_grad_enabled()}
    return bridge.call(endpoint, lambda grad: _plain_call(endpoint, header, target, args, kwargs, grad=grad),
                       (args, kwargs))


def _plain_call(endpoint: Endpoint, header: dict, target: Any, args: tuple, kwargs: dict,
                grad: list[int] | None = None) -> Any:
    buffers: list[bytes] = []
    header = dict(header, target=_target(endpoint, target, buffers),
                  args=endpoint.encode(list(args), buffers), kwargs=endpoint.encode(dict(kwargs), buffers))
    if grad is not None:
        header["grad"] = grad
    endpoint.send(header, buffers)
    return endpoint.await_reply()


def remote_batch(endpoint: Endpoint, calls: list[tuple[Any, str | None, tuple, dict]]) -> list[Any]:
    """Run `calls` [(target, method, args, kwargs)] in the student's process in one message (see
    `RemoteSubmission.batch`): the list of their results, a `RemoteError` in the place of a call that
    raised. Tensors among the arguments are mirrored as by single calls (in-place changes sync back)."""
    import torch

    from .endpoint import remote_error

    buffers: list[bytes] = []
    encoded = []
    for target, method, args, kwargs in calls:
        if method is not None and not isinstance(method, str):
            raise TypeError("a batch call's method is a name or None")
        encoded.append({"target": _target(endpoint, target, buffers), "method": method,
                        "args": endpoint.encode(list(args), buffers), "kwargs": endpoint.encode(dict(kwargs), buffers)})
    endpoint.send({"op": "batch", "calls": encoded, "grad_mode": torch.is_grad_enabled()}, buffers)
    outcomes = endpoint.await_reply()
    if not isinstance(outcomes, list) or len(outcomes) != len(calls):
        raise RemoteError({"kind": "protocol", "message": "a malformed reply to a batch of calls"})
    results: list[Any] = []
    for outcome in outcomes:
        if not (isinstance(outcome, list) and len(outcome) == 2 and isinstance(outcome[0], bool)):
            raise RemoteError({"kind": "protocol", "message": "a malformed outcome in a batch of calls"})
        ok, value = outcome
        if not ok and isinstance(value, dict) and value.get("kind") == "hung":  # the whole check, as a single call
            raise HungEarlier(str(value.get("message", ""))[:2000])
        results.append(value if ok else remote_error(value if isinstance(value, dict) else {"message": str(value)}))
    return results


class RemoteSubmission:
    """What a harness probes: the submission's names, called in the student's process."""

    def __init__(self, endpoint: Endpoint, exercise: Any, forbidden: dict[str, str] | None = None):
        self.endpoint = endpoint
        self.exercise = exercise
        self.forbidden = forbidden or {}  # API name -> the static scan's finding
        # name -> the handle `get` gave: a probe's loop of `sub.get(name)(...)` costs one message a
        # call, not two. Only handles (the submission's functions and classes) are kept, and `replaced`
        # forgets them; a submission that rebinds its own names at run time only changes its own answers.
        self._handles: dict[str, RemoteHandle] = {}

    def get(self, name: str) -> Any:
        from ..api import ApiError

        if name in self.forbidden:  # a rule of the spec broken: the check fails, in words
            from ..kinds.invariants import Violation

            raise Violation(self.forbidden[name])
        known = self._handles.get(name)
        if known is not None:
            return known
        try:
            value = remote_op(self.endpoint, "getattr", None, name=name)
        except RemoteError as e:
            if e.kind == "missing":
                from .submission import cause_text

                cause = cause_text(e.cause) if e.cause is not None else ""
                if cause:  # a cell that failed at load would have defined it: say which, and why
                    raise ApiError(f"`{name}` is not defined: {cause}") from None
                entry = self.exercise.api.get(name)
                wanted = f": `{entry.signature}`" if entry else ""
                raise ApiError(f"the submission does not define `{name}`{wanted}") from None
            raise
        if isinstance(value, RemoteHandle):
            self._handles[name] = value
        return value

    def call(self, name: str, *args: Any, dims: dict[str, int] | None = None, given_copies: bool = False,
             **kwargs: Any) -> Any:
        """Call the student's `name`; check the spec's shape and dtype and that no argument changed.
        `given_copies`: the arguments are the harness's own copies, handed over so that what the call does
        to them is not this check's to judge: another check owns the in-place rule for `name` (one bug,
        one deduction: a train() that overwrites w0 is charged by the check of train()'s invariants only)."""
        from ..api import ApiError, check_result

        fn = self.get(name)
        if not isinstance(fn, RemoteHandle) or not fn.is_callable:
            raise ApiError(f"`{name}` in the submission is a {getattr(fn, 'type_name', type(fn).__name__)}, "
                           "not a function")
        self.endpoint.changed_data.clear()
        self.endpoint.changed_arrays = []
        result = fn(*args, **kwargs)
        entry = self.exercise.api.get(name)
        if entry is not None and not getattr(entry, "mutates", False) and not given_copies:
            names = _parameter_names(entry.signature)
            changed = _changed_arguments(self.endpoint, args, kwargs, names)
            arrays = [names[c] if isinstance(c, int) and c < len(names) else f"#{c + 1}" if isinstance(c, int) else c
                      for c in self.endpoint.changed_arrays]
            if changed or arrays:  # a rule broken: a failure of the check, in words (graders/kinds/invariants.py)
                from ..kinds.invariants import Violation

                what, copy = ("tensor", "x = x.clone()") if changed else ("array", "x = x.copy()")
                raise Violation(f"{name}() modified its argument {(changed or arrays)[0]} in place: the caller's {what} "
                                f"must be left as it was (work on a copy: {copy})")
        return check_result(self.exercise, name, result, args, dims)

    def batch(self, calls: list[tuple[Any, str | None, tuple, dict]]) -> list[Any]:
        """Many calls in one message: each (target, method, args, kwargs), where target is an API name
        or a handle (`sub.get(name)`, an object the submission returned) and method a name or None,
        e.g. `[(opt, "step", (), {}), ("loss", None, (X, y, w), {})]`. They run in order in the
        student's process, as single calls would, but never differentiably (no autograd bridge);
        the list of results comes back as checked data, a `RemoteError` (not raised) in the place of
        a call that raised, so the harness judges each. For a probe's many small independent reads
        (an optimizer's state, a model's parameters): one round trip instead of one per call."""
        for target, *_ in calls:
            if isinstance(target, str) and target in self.forbidden:
                from ..kinds.invariants import Violation

                raise Violation(self.forbidden[target])
        return remote_batch(self.endpoint, calls)

    def local(self, factory: Callable[..., Any], *args: Any) -> Local:
        """`factory(*args)` built in the student's process (see endpoint.Local): pass it as an argument."""
        return Local(factory, *args)

    def first_time(self, what: str) -> bool:
        """True the first time `what` is asked for in this student's process, False after: for a probe of a
        property that depends on no seed's data, run at the process's first seed only (the visible seeds come
        first). Its values, where a judge compares them, are marked "once" (stability, agreement)."""
        if what in self.endpoint.once:
            return False
        self.endpoint.once.add(what)
        return True

    def run_local(self, factory: Callable[..., Any], *args: Any) -> Any:
        """`factory(*args)` run in the student's process (a module-level harness function, given the
        student's objects by handle), its result sent back as data. For loops of many tiny calls (an
        optimizer's steps to convergence) whose outcome the harness then verifies itself: one
        message instead of one per step."""
        import torch

        # in the harness's grad mode, as every call is: not in whatever mode the student's process was left in
        return self.endpoint.request({"op": "local", "grad_mode": torch.is_grad_enabled()}, value=Local(factory, *args))

    def call_printing(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, str]:
        """Call the student's `name` and return (its result, what it printed on stdout)."""
        self.get(name)  # a missing name is an ApiError, a forbidden one too
        result = _plain_call(self.endpoint, {"op": "call", "method": None, "capture": True}, name, args, kwargs)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str)):
            raise RemoteError({"kind": "protocol", "message": "a malformed reply to a call that prints"})
        return result

    @contextlib.contextmanager
    def replaced(self, name: str, fn: Callable[..., Any]) -> Iterator[None]:
        """Within the block, the submission's `name` is the harness's `fn` (its callers call ours). The swap,
        and the one that puts the submission's own back, travel ahead of the next request (Endpoint.swaps):
        the student's code runs only when asked, so it sees `fn` in every call made inside the block and
        in none after it, without a message of their own (issue 17: they were 24 of exercise-1's 54).
        The handle `get(name)` gave before the block is good again after it: the swap puts back the very
        object it replaced (a handle read inside the block is the harness's `fn`, forgotten)."""
        before = self._handles.pop(name, None)
        self.endpoint.swaps.append((name, fn))
        try:
            yield
        finally:
            self._handles.pop(name, None)
            if before is not None:
                self._handles[name] = before
            self.endpoint.swaps.append((name, _PUT_BACK))


def _parameter_names(signature: str) -> list[str]:
    """`train(X, y, w0, lr, steps) -> ...` -> ["X", "y", "w0", "lr", "steps"] (the spec's own names)."""
    inside = signature.partition("(")[2].partition(")")[0]
    return [p.split("=")[0].split(":")[0].strip().lstrip("*") for p in inside.split(",") if p.strip()]


def _changed_arguments(endpoint: Endpoint, args: tuple, kwargs: dict, names: list[str] | None = None) -> list[str]:
    """Names (the spec's, else positions) of tensor arguments the last reply's sync changed (.grad aside)."""
    names = names or []
    changed = []
    for label, value in [*((names[i] if i < len(names) else f"#{i + 1}", a) for i, a in enumerate(args)),
                         *kwargs.items()]:
        found: list = []
        _tensors_in(value, found)
        for t in found:
            mid = endpoint._by_object.get(id(t))
            if mid is not None and mid in endpoint.changed_data:
                changed.append(label)
                break
    return changed


__all__ = ["RemoteSubmission", "RemoteHandle", "RemoteError", "remote_batch", "remote_call", "remote_getattr",
           "weakref"]
