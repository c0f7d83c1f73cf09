"""Autograd across the process boundary, in both directions.

A call whose inputs require grad (or while the other side holds a mirror that does) becomes one node
of the caller's autograd graph (`Bridge`): its forward asks the other process to run the call with
those mirrors as differentiable inputs and to keep the graph; its backward asks that process for the
vector-Jacobian product through its own graph (`backward_reply`). The harness uses it to
differentiate through the student's functions; the student's process uses it when its code calls a
harness function lent to it (a correct dependency swapped in) and differentiates through the result.

    caller: outputs = Bridge(call)(inputs)          callee: outputs = fn(*args) with inputs as leaves
            d<v, outputs>/d inputs  <---- grads ----        torch.autograd.grad(outputs, inputs, v)
"""

from __future__ import annotations

from typing import Any, Callable

GRAPHS_KEPT = 256  # graphs a process keeps for the other side's backward passes
# bytes of tensor storage those graphs may hold: the harness keeps the inputs a student's process sent
# through a lent function (red team A02: 256 graphs of 256 MB each, 64 GB in the unconfined harness)
GRAPH_BYTES_KEPT = 512 << 20


def tensors_in(value: Any, out: list) -> list:
    """Tensors in a value, in the order both sides traverse it (lists, tuples, dict values)."""
    import torch

    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            tensors_in(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            tensors_in(v, out)
    return out


def _grad_inputs(endpoint: Any, args: Any) -> list:
    """The tensors of `args`, and every live mirror that is a leaf (a parameter the other side may
    hold, as a model does), that require grad; deduplicated. Never a mirror that is some earlier
    call's output: its graph belongs to that call (and may be freed already)."""
    found = tensors_in(args, [])
    for m in list(endpoint.mirrors.values()):  # (every call in grad mode walks them all: kept tight)
        t = m.strong if m.strong is not None else m.ref()
        if t is not None and t.requires_grad and t.is_leaf:
            found.append(t)
    seen, unique = set(), []
    for t in found:
        if id(t) not in seen and t.requires_grad and t.is_floating_point():
            seen.add(id(t))
            unique.append(t)
    return unique


def call(endpoint: Any, send: Callable[[list[int] | None], Any], args: Any) -> Any:
    """`send(grad_mids)` performs the request; bridged when grad is on and some input requires it."""
    import torch

    inputs = _grad_inputs(endpoint, args) if torch.is_grad_enabled() else []
    if not inputs:
        return send(None)
    bridged = _Call(endpoint, send, inputs)
    result = bridged.rebuild(_bridge().apply(bridged, *inputs))
    # The reply's own tensors are replaced by the graph's outputs in `result`: let them go, so that
    # their mirrors are released instead of being fingerprinted on every message while the graph lives.
    bridged.structure, bridged.originals = None, []
    return result


class _GraphRef:
    """The other process keeps a call's graph until this side lets go of its outputs."""

    def __init__(self, endpoint: Any, gid: int):
        self.endpoint, self.gid = endpoint, gid

    def __del__(self) -> None:
        try:
            self.endpoint._release.append(self.gid)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _Call:
    def __init__(self, endpoint: Any, send: Callable[[list[int] | None], Any], inputs: list):
        self.endpoint, self.send, self.inputs = endpoint, send, inputs
        self.structure: Any = None
        self.graph: _GraphRef | None = None
        self.differentiable: list[bool] = []
        self.originals: list = []

    def run(self) -> list:
        import torch

        from .endpoint import RemoteError

        result = self.send([self.endpoint.mirror_id(t) for t in self.inputs])
        if not (isinstance(result, dict) and set(result) == {"value", "graph", "differentiable"}):
            raise RemoteError({"kind": "protocol", "message": "a malformed reply to a differentiable call"})
        gid, diff = result["graph"], result["differentiable"]
        self.graph = _GraphRef(self.endpoint, gid) if isinstance(gid, int) else None
        self.structure = result["value"]
        self.originals = tensors_in(self.structure, [])
        self.differentiable = [bool(d) for d in diff] if isinstance(diff, list) else []
        if len(self.differentiable) != len(self.originals):
            self.differentiable = [False] * len(self.originals)
        # fresh outputs: this side's graph attaches to these, never to a tensor it already holds
        return [t.detach().clone() for t in self.originals] or [torch.zeros(())]

    def rebuild(self, flat: tuple) -> Any:
        import torch

        mapping = {id(orig): new for orig, new in zip(self.originals, flat)}

        def walk(v: Any) -> Any:
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

        from .endpoint import RemoteError

        if self.graph is None:
            return [None] * len(self.inputs)
        sent = [g if (d and g is not None) else None for g, d in zip(grads, self.differentiable)]
        result = self.endpoint.request({"op": "backward", "graph": self.graph.gid}, value=sent)
        if not isinstance(result, list) or len(result) != len(self.inputs):
            raise RemoteError({"kind": "protocol", "message": "a malformed reply to a backward pass"})
        out: list[torch.Tensor | None] = []
        for g, x in zip(result, self.inputs):
            if g is None:
                out.append(None)
            elif not isinstance(g, torch.Tensor) or g.shape != x.shape:
                raise RemoteError({"kind": "api", "message": (
                    f"a backward pass returned a gradient of shape {tuple(getattr(g, 'shape', ()))} for an input "
                    f"of shape {tuple(x.shape)}")})
            else:
                out.append(g.to(x.dtype))
        return out


_BRIDGE: Any = None


def _bridge() -> Any:
    global _BRIDGE
    if _BRIDGE is None:
        import torch

        class Bridge(torch.autograd.Function):
            """One call into the other process as a node of this process's autograd graph."""

            @staticmethod
            def forward(ctx, call: _Call, *inputs):  # type: ignore[override]
                outputs = call.run()
                ctx.call = call
                ctx.mark_non_differentiable(*[o for o, d in zip(outputs, call.differentiable) if not d])
                return tuple(outputs)

            @staticmethod
            def backward(ctx, *grads):  # type: ignore[override]
                return (None, *ctx.call.backward(grads))

        _BRIDGE = Bridge
    return _BRIDGE


# ---- the callee's side ---------------------------------------------------------------------------------

def inputs_for(endpoint: Any, grad: Any) -> list:
    """The tensors this side holds for the mirror ids a differentiable request lists."""
    from . import wire

    if grad is not None and not isinstance(grad, list):
        raise wire.WireError("a differentiable call with malformed inputs")
    inputs: list = []
    for mid in grad or []:
        m = endpoint.mirrors.get(mid) if isinstance(mid, int) else None
        t = m.tensor() if m is not None else None
        # None: a tensor this side has let go of (its release is on the way): no gradient flows to it
        if t is not None and not t.requires_grad and t.is_leaf and t.is_floating_point():
            t.requires_grad_(True)
        inputs.append(t)
    held = _storage_bytes([t for t in inputs if t is not None])
    if held > GRAPH_BYTES_KEPT:  # the caller names the inputs, every live leaf it mirrors: bounded here
        raise wire.WireError(f"a differentiable call whose inputs hold {held / 2**20:.1f} MB (the cap is "
                             f"{GRAPH_BYTES_KEPT / 2**20:.0f} MB)")
    return inputs


def tracked(endpoint: Any, result: Any, inputs: list, origin: str | None = None) -> dict[str, Any]:
    """The reply to a differentiable request: the value, and the graph kept for a backward pass (with
    `origin`, the API name whose call made it: its backward runs under that name's forbid rules)."""
    outputs = tensors_in(result, [])
    gid = endpoint.new_id()
    endpoint.graphs[gid] = (outputs, inputs, origin)
    sizes = endpoint.graph_bytes
    sizes[gid] = _storage_bytes([*outputs, *inputs])
    # the oldest go first, past the count or the bytes (the newest stays: its reply is on its way)
    while len(endpoint.graphs) > 1 and (len(endpoint.graphs) > GRAPHS_KEPT or sum(sizes.values()) > GRAPH_BYTES_KEPT):
        oldest = next(iter(endpoint.graphs))
        endpoint.graphs.pop(oldest)
        sizes.pop(oldest, None)
    return {"value": result, "graph": gid, "differentiable": [bool(getattr(o, "requires_grad", False)) for o in outputs]}


def _storage_bytes(tensors: list) -> int:
    """Bytes of the storages behind `tensors`, each storage once (a view counts its whole storage: what
    it keeps alive)."""
    sizes: dict[int, int] = {}
    for t in tensors:
        try:
            storage = t.untyped_storage()
            sizes[storage.data_ptr()] = storage.nbytes()
        except (AttributeError, RuntimeError, NotImplementedError):  # not a tensor; a meta or sparse one
            continue
    return sum(sizes.values())


def backward_reply(endpoint: Any, header: dict[str, Any], buffers: list[bytes],
                   run: Callable[[Callable[[], Any], str | None], Any] = lambda f, origin: f()) -> list:
    """The vector-Jacobian product through a graph this side kept (`run(f, origin)` wraps student code;
    origin: the API name whose call made the graph)."""
    import torch

    from . import wire
    from .endpoint import error_reply

    gid = header.get("graph")
    if gid not in endpoint.graphs:
        raise error_reply("protocol", "the graph of that call is gone")
    outputs, inputs, origin = endpoint.graphs[gid]
    grads = endpoint.decode(header.get("value"), buffers)
    if not isinstance(grads, list) or len(grads) != len(outputs):
        raise wire.WireError("a backward pass with the wrong number of gradients")
    pairs = [(o, g) for o, g in zip(outputs, grads)
             if isinstance(g, torch.Tensor) and getattr(o, "requires_grad", False)]
    held = [t for t in inputs if t is not None and t.requires_grad]
    if not pairs or not held:
        return [None] * len(inputs)

    if any(tuple(o.shape) != tuple(g.shape) for o, g in pairs):
        raise wire.WireError("a backward pass with a gradient of the wrong shape")

    def vjp() -> list:
        with torch.enable_grad():
            # sum <o, g> differentiated: the same vector-Jacobian product as grad_outputs=g, whose
            # explicit tensors make torch import sympy (0.3-0.9 s, once per process)
            total = sum((o * g.to(o.dtype)).sum() for o, g in pairs)
            found = torch.autograd.grad(total, held, allow_unused=True, retain_graph=True)
        by_id = {id(t): g for t, g in zip(held, found)}
        return [by_id.get(id(t)) if t is not None else None for t in inputs]

    return run(vjp, origin)
