"""Harness side: the submission as seen from the trusted process, through an Endpoint.

`RemoteSubmission` has the interface harnesses always used (`sub.get(name)`, `sub.call(name, ...)`,
`sub.replaced(name, fn)`), but every call runs in the student's confined process. Autograd crosses
the boundary: when a call's inputs (or any tensor the student's process holds a mirror of) require
grad, the call becomes one node of the harness's graph (`_Bridge`), whose backward asks the student's
process for the vector-Jacobian product through its own graph. So `torch.autograd.grad(out, x)` on a
remote output computes what it always did, and only numbers ever cross.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable, Iterator

from .endpoint import Endpoint, Local, RemoteError, RemoteHandle

BY_NAME = "name"  # a call target given as the module attribute's name


def _target(endpoint: Endpoint, target: Any, buffers: list[bytes]) -> Any:
    if isinstance(target, str):
        return {"name": target}
    return {"handle": endpoint.encode(target, buffers)}


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
    import torch

    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _tensors_in(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _tensors_in(v, out)


def remote_call(endpoint: Endpoint, target: Any, method: str | None, args: tuple, kwargs: dict) -> Any:
    """Call `target` (a name or a handle), or its `method`, in the student's process."""
    import torch

    header: dict[str, Any] = {"op": "call", "method": method, "grad_mode": torch.is_grad_enabled()}
    grad_inputs = []
    if torch.is_grad_enabled():
        for t in _registered(endpoint, (args, kwargs)):
            if t.requires_grad and t.dtype.is_floating_point:
                grad_inputs.append(t)
    if not grad_inputs:
        return _plain_call(endpoint, header, target, args, kwargs)
    call = _BridgedCall(endpoint, header, target, args, kwargs, grad_inputs)
    flat = _Bridge.apply(call, *grad_inputs)
    return call.rebuild(flat)


def _registered(endpoint: Endpoint, args: Any) -> list:
    """The tensors of `args` and every live tensor the student's process mirrors, deduplicated."""
    found: list = []
    _tensors_in(args, found)
    for mid in list(endpoint.mirrors):
        m = endpoint.mirrors.get(mid)
        t = m.tensor() if m is not None else None
        if t is not None:
            found.append(t)
    seen, unique = set(), []
    for t in found:
        if id(t) not in seen:
            seen.add(id(t))
            unique.append(t)
    return unique


def _plain_call(endpoint: Endpoint, header: dict, target: Any, args: tuple, kwargs: dict,
                grad: list[int] | None = None) -> Any:
    buffers: list[bytes] = []
    header = dict(header, target=_target(endpoint, target, buffers),
                  args=endpoint.encode(list(args), buffers), kwargs=endpoint.encode(dict(kwargs), buffers))
    if grad is not None:
        header["grad"] = grad
    endpoint.send(header, buffers)
    return endpoint.await_reply()


class _GraphRef:
    """The student's process keeps a call's graph until the harness lets go of its outputs."""

    def __init__(self, endpoint: Endpoint, gid: int):
        self.endpoint, self.gid = endpoint, gid

    def __del__(self) -> None:
        try:
            self.endpoint._release.append(self.gid)
        except Exception:  # noqa: BLE001
            pass


class _BridgedCall:
    def __init__(self, endpoint, header, target, args, kwargs, grad_inputs):
        self.endpoint, self.header, self.target = endpoint, header, target
        self.args, self.kwargs, self.grad_inputs = args, kwargs, grad_inputs
        self.structure: Any = None
        self.graph: _GraphRef | None = None
        self.differentiable: list[bool] = []

    def run(self) -> list:
        import torch

        mids = [self.endpoint.mirror_id(t) for t in self.grad_inputs]
        result = _plain_call(self.endpoint, self.header, self.target, self.args, self.kwargs, grad=mids)
        if not (isinstance(result, dict) and set(result) == {"value", "graph", "differentiable"}):
            raise RemoteError({"kind": "protocol", "message": "a malformed reply to a differentiable call"})
        gid, diff = result["graph"], result["differentiable"]
        self.graph = _GraphRef(self.endpoint, gid) if isinstance(gid, int) else None
        flat: list = []
        _tensors_in(result["value"], flat)
        self.structure = result["value"]
        self.differentiable = [bool(d) for d in diff] if isinstance(diff, list) else []
        if len(self.differentiable) != len(flat):
            self.differentiable = [False] * len(flat)
        # fresh outputs: the harness's graph attaches to these, never to a tensor it already holds
        self.outputs = [t.detach().clone() for t in flat]
        self._originals = flat
        return [t for t in self.outputs] or [torch.zeros(())]

    def rebuild(self, flat: tuple) -> Any:
        mapping = {id(orig): new for orig, new in zip(self._originals, flat)}

        def walk(v):
            import torch

            if isinstance(v, torch.Tensor):
                return mapping.get(id(v), v)
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, tuple):
                return tuple(walk(x) for x in v)
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            return v

        return walk(self.structure)

    def backward(self, grads: tuple) -> list:
        import torch

        if self.graph is None:
            return [None] * len(self.grad_inputs)
        sent = [g if (d and g is not None) else None for g, d in zip(grads, self.differentiable)]
        result = self.endpoint.request({"op": "backward", "graph": self.graph.gid}, value=sent)
        if not isinstance(result, list) or len(result) != len(self.grad_inputs):
            raise RemoteError({"kind": "protocol", "message": "a malformed reply to a backward pass"})
        out = []
        for g, x in zip(result, self.grad_inputs):
            if g is None:
                out.append(None)
            elif not isinstance(g, torch.Tensor) or g.shape != x.shape:
                raise RemoteError({"kind": "api", "message": (
                    f"a backward pass returned a gradient of shape {tuple(getattr(g, 'shape', ()))} for an input "
                    f"of shape {tuple(x.shape)}")})
            else:
                out.append(g.to(x.dtype))
        return out


def _make_bridge():
    import torch

    class _Bridge(torch.autograd.Function):
        """One remote call as a node of the harness's autograd graph (see the module docstring)."""

        @staticmethod
        def forward(ctx, call: _BridgedCall, *inputs):  # type: ignore[override]
            outputs = call.run()
            ctx.call = call
            ctx.mark_non_differentiable(*[o for o, d in zip(outputs, call.differentiable) if not d])
            return tuple(outputs)

        @staticmethod
        def backward(ctx, *grads):  # type: ignore[override]
            return (None, *ctx.call.backward(grads))

    return _Bridge


class _LazyBridge:
    _cls = None

    def apply(self, *args):
        if _LazyBridge._cls is None:
            _LazyBridge._cls = _make_bridge()
        return _LazyBridge._cls.apply(*args)


_Bridge = _LazyBridge()


class RemoteSubmission:
    """What a harness probes: the submission's names, called in the student's process."""

    def __init__(self, endpoint: Endpoint, exercise: Any, forbidden: dict[str, str] | None = None):
        self.endpoint = endpoint
        self.exercise = exercise
        self.forbidden = forbidden or {}  # API name -> the static scan's finding

    def get(self, name: str) -> Any:
        from .api import ApiError

        if name in self.forbidden:
            raise ApiError(self.forbidden[name])
        try:
            return remote_op(self.endpoint, "getattr", None, name=name)
        except RemoteError as e:
            if e.kind == "missing":
                entry = self.exercise.api.get(name)
                wanted = f": `{entry.signature}`" if entry else ""
                raise ApiError(f"the submission does not define `{name}`{wanted}") from None
            raise

    def call(self, name: str, *args: Any, dims: dict[str, int] | None = None, **kwargs: Any) -> Any:
        """Call the student's `name`; check the spec's shape and dtype and that no argument changed."""
        from .api import ApiError, check_result

        fn = self.get(name)
        if not isinstance(fn, RemoteHandle) or not fn.is_callable:
            raise ApiError(f"`{name}` in the submission is a {getattr(fn, 'type_name', type(fn).__name__)}, "
                           "not a function")
        self.endpoint.changed_data.clear()
        result = fn(*args, **kwargs)
        entry = self.exercise.api.get(name)
        if entry is not None and not getattr(entry, "mutates", False):
            changed = _changed_arguments(self.endpoint, args, kwargs)
            if changed:
                raise ApiError(f"{name}() modified its argument {changed[0]} in place; it must leave its inputs "
                               "unchanged (work on a copy: x = x.clone())")
        return check_result(self.exercise, name, result, args, dims)

    def local(self, factory: Callable[..., Any], *args: Any) -> Local:
        """`factory(*args)` built in the student's process (see endpoint.Local): pass it as an argument."""
        return Local(factory, *args)

    def call_printing(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, str]:
        """Call the student's `name` and return (its result, what it printed on stdout)."""
        self.get(name)  # a missing name is an ApiError, a forbidden one too
        result = _plain_call(self.endpoint, {"op": "call", "method": None, "capture": True}, name, args, kwargs)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str)):
            raise RemoteError({"kind": "protocol", "message": "a malformed reply to a call that prints"})
        return result

    @contextlib.contextmanager
    def replaced(self, name: str, fn: Callable[..., Any]) -> Iterator[None]:
        """Within the block, the submission's `name` is the harness's `fn` (its callers call ours)."""
        old = remote_op(self.endpoint, "replace", None, name=name, value=fn)
        try:
            yield
        finally:
            remote_op(self.endpoint, "replace", None, name=name, value=old)


def _changed_arguments(endpoint: Endpoint, args: tuple, kwargs: dict) -> list[str]:
    """Positions/names of tensor arguments the last reply's sync changed (data or .grad aside)."""
    changed = []
    for label, value in [*((f"#{i + 1}", a) for i, a in enumerate(args)), *kwargs.items()]:
        found: list = []
        _tensors_in(value, found)
        for t in found:
            mid = endpoint._by_object.get(id(t))
            if mid is not None and mid in endpoint.changed_data:
                changed.append(label)
                break
    return changed


__all__ = ["RemoteSubmission", "RemoteHandle", "RemoteError", "remote_call", "remote_getattr", "weakref"]
