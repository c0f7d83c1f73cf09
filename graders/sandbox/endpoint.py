"""One end of the harness <-> student conversation: values by copy, tensors by mirror, objects by handle.

Both processes hold an `Endpoint`. A tensor that crosses keeps an id: the receiver makes a copy of its
own (its *mirror*) and the pair stays linked, so that in-place changes on either side (an optimizer's
`p.sub_`, `p.data = ...`, a new `.grad`) travel with the next message in either direction ("sync"),
and a tensor sent back returns as the very object the other side holds. Objects that are not plain
data (classes, functions, models, optimizers) never cross: the other side gets a handle and calls
through it. Either side may call the other while a call is in flight (a closure passed to
`step(closure)`, a dependency the harness swaps in), so `request` serves nested requests until its
own reply arrives.

The harness side trusts nothing it decodes: every value is rebuilt from checked plain data
(graders/sandbox/wire.py), and a malformed message is a WireError, never an exception inside the harness.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import math
import socket
import types
import time
import weakref
from pathlib import Path
from typing import Any, Callable

from . import wire

# The student side compares a tensor's bytes to see if it changed (version counters miss `p.data.sub_`);
# above this many elements it trusts version counter and storage pointer only.
BYTE_COMPARE_LIMIT = 1 << 17
# The harness side compares small tensors' bytes too (a fresh .grad can reuse a freed one's storage
# and version number); large ones are data it does not change behind the student's back.
HARNESS_BYTE_COMPARE_LIMIT = 1 << 12


_PLAIN_TENSORS: tuple[type, ...] = ()  # torch.Tensor and nn.Parameter, set by `_plain_tensors`


_ELSEWHERE = __name__.rsplit(".", 2)[0] + ".kinds.elsewhere"


def _elsewhere(t: Any) -> bool:
    """Whether a meta tensor is the placement probe's Elsewhere (values on the CPU), loaded only if used."""
    import sys

    module = sys.modules.get(_ELSEWHERE)
    return module is not None and isinstance(t, module.Elsewhere)


def _plain_tensors() -> tuple[type, ...]:
    """The tensor types whose memory `_fingerprint` may read directly (never a subclass, whose
    methods could be anything)."""
    global _PLAIN_TENSORS
    if not _PLAIN_TENSORS:
        import torch

        _PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)
    return _PLAIN_TENSORS


@functools.lru_cache(maxsize=1024)
def _spans_itself(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """Does a layout with these non-negative strides cover exactly as many elements as it holds
    (a transpose, a permutation of a dense block)? Cached: a tensor keeps its layout for life."""
    return min(strides) >= 0 and 1 + sum((n - 1) * st for n, st in zip(shape, strides)) == math.prod(shape)


class RemoteError(Exception):
    """The other side answered a request with an error: {"kind", "message", "traceback"}, and for an
    exception the student's code raised, its "type" and "text". `remote_error` gives it the type's
    name (and, for a builtin exception, that type as a base), so harness code reads it as it would
    the local exception: `except NotImplementedError`, `type(e).__name__`, `str(e)`."""

    def __init__(self, error: dict[str, Any]):
        self.kind = str(error.get("kind", "raised"))[:64]
        self.message = str(error.get("message", ""))[:20_000]
        self.traceback = str(error.get("traceback", ""))[:50_000]
        self.text = str(error.get("text", self.message))[:2_000]
        self.cause = error.get("cause")  # a missing name's likely cause: read by submission.cause_text only
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.text


_REMOTE_TYPES: dict[str, type] = {}
MAX_REMOTE_TYPES = 256
MAX_TYPE_NAME = 100


def remote_error(error: dict[str, Any]) -> RemoteError:
    import builtins

    name = str(error.get("type", "")) if error.get("kind") == "raised" else ""
    if not name.isidentifier() or len(name) > MAX_TYPE_NAME:
        return RemoteError(error)
    if name not in _REMOTE_TYPES:
        if len(_REMOTE_TYPES) >= MAX_REMOTE_TYPES:  # the worker serves a whole class: names a student invents
            _REMOTE_TYPES.clear()                  # must not pile up in it (red team, round 5: ~70 MB a job)
        local = getattr(builtins, name, None)
        bases = (RemoteError, local) if isinstance(local, type) and issubclass(local, Exception) \
            and local.__init__ is not None else (RemoteError,)
        try:
            _REMOTE_TYPES[name] = type(name, bases, {"__str__": RemoteError.__str__})
        except TypeError:  # an incompatible layout (OSError's): the name alone
            _REMOTE_TYPES[name] = type(name, (RemoteError,), {})
    return _REMOTE_TYPES[name](error)


class _Mirror:
    __slots__ = ("ref", "strong", "state", "grad_state")

    def __init__(self, tensor: Any, strong: bool):
        self.strong = tensor if strong else None
        self.ref = None if strong else weakref.ref(tensor)
        self.state: Any = None  # what the peer last saw of the data
        self.grad_state: Any = None  # ... and of .grad

    def tensor(self) -> Any:
        return self.strong if self.strong is not None else self.ref()


_PLAIN_SCALARS = {float, int, str, type(None)}  # sent as they are (a float when finite); not bool's subclasses
_JSON_SCALARS = {float, int, str, bool, type(None)}  # what JSON decodes besides lists and dicts
_PUT_BACK = object()  # a swap that puts the submission's own back (Endpoint.swaps)


class Endpoint:
    """`side` is "harness" (trusted; holds weak references to its own tensors) or "student"."""

    def __init__(self, sock: socket.socket, side: str):
        self.sock, self.side = sock, side
        self.reader = wire.Reader(sock)
        self.compare_bytes = side == "student"
        self.saw_elsewhere = False  # a decoded tensor was on the placement probe's other device
        sign = 1 if side == "harness" else -1
        self._ids = (sign * i for i in itertools.count(1))
        self.mirrors: dict[int, _Mirror] = {}
        self._by_object: dict[int, int] = {}  # id(tensor) -> mirror id
        self.objects: dict[int, Any] = {}  # handles this side gave out (student side)
        # graphs kept for the other side's backward (bridge.py): outputs, inputs, the API name whose call made it
        self.graphs: dict[int, tuple[list, list, str | None]] = {}
        self.graph_bytes: dict[int, int] = {}  # the bytes each of those holds (bridge.GRAPH_BYTES_KEPT)
        self.callbacks: dict[int, Callable[..., Any]] = {}  # functions this side lent (harness side)
        # harness side: harness files whose code the student's process has (endpoint.Local), and those a
        # message encoded but not yet written carries, with that message's buffers
        self.code_sent: set[str] = set()
        self.code_pending: list[tuple[str, list[bytes]]] = []
        self.once: set[str] = set()  # harness side: probes run once per student's process (RemoteSubmission.first_time)
        # harness side: the submission's names for which the harness handed over its own code (a swap's value
        # is a Local, built there): the process holds it, and so may any code of the submission that kept it;
        # no later task measures anything in it (child.serve_one retires it). A harness function lent as a
        # callback (a counter around the student's own loss) runs here, on this side's terms: it hands
        # nothing over, and a harness that lent its own correct function so would need the same rule.
        # A process keeps serving tasks that hand over the same names (or more): what it holds then gives the
        # submission nothing the task does not give it anyway; any other task gets a fresh process.
        self.stand_ins: set[str] = set()
        self.task_stand_ins: set[str] = set()  # those the task now running handed over (child.serve_one resets it)
        self._release: list[int] = []
        # harness side: the submission's names to swap for the harness's, or to put back (RemoteSubmission.
        # replaced), sent ahead of the next request instead of in messages of their own
        self.swaps: list[tuple[str, Any]] = []
        self._dead_mirrors: list[tuple[int, int]] = []
        # harness side: the peer's tensors decoded since the last message, held until the next one has
        # collected their changes. A mirror is otherwise held weakly, and one used once and dropped
        # (`getattr(layer.q, "weight").copy_(W)` under no_grad: course7 trial) was forgotten, its
        # in-place change with it, before any message carried it: the student's layer kept its own weights.
        self._held: list[Any] = []
        self.deadline: float | None = None  # for reads (harness side: the check's timeout)
        self.handler: Callable[[dict[str, Any], list[bytes]], Any] | None = None  # serves the peer's requests
        self.changed_data: set[int] = set()  # mirror ids whose data the peer changed (reset by the caller)
        # arrays travel by value, without mirrors: the student's side says which of a call's numpy
        # arguments the call changed in place (positions, or keyword names), with its reply
        self.changed_arrays: list[int | str] = []
        self.methods_by_class: dict[int, set[str]] = {}  # harness side: see RemoteHandle._methods
        self._class_ids: dict[type, int] = {}  # student side: a number for each class handed out

    # ---- ids ------------------------------------------------------------------------------------------

    def new_id(self) -> int:
        return next(self._ids)

    def _forget(self, mid: int) -> None:
        self._release.append(mid)
        self.mirrors.pop(mid, None)

    def mirror_id(self, tensor: Any) -> int:
        """The id under which `tensor` is mirrored on the other side (registered now if new)."""
        mid = self._by_object.get(id(tensor))
        if mid is not None:
            m = self.mirrors.get(mid)
            if m is not None and m.tensor() is tensor:
                return mid
        mid = self.new_id()
        self._register(mid, tensor)
        return mid

    def _register(self, mid: int, tensor: Any) -> None:
        strong = self.side == "student"
        m = _Mirror(tensor, strong)
        if not strong:
            key = id(tensor)
            m.ref = weakref.ref(tensor, lambda _r, mid=mid, key=key: self._dead(mid, key))  # type: ignore[misc]
        self.mirrors[mid] = m
        self._by_object[id(tensor)] = mid

    def _dead(self, mid: int, key: int) -> None:
        # Called by the garbage collector, at any moment (even while this side walks its tables):
        # only note it; the tables change at the next send.
        self._dead_mirrors.append((mid, key))

    def _bury(self) -> None:
        while self._dead_mirrors:
            mid, key = self._dead_mirrors.pop()
            if self._by_object.get(key) == mid:
                del self._by_object[key]
            m = self.mirrors.get(mid)
            if m is not None and m.tensor() is None:
                self._forget(mid)

    # ---- change tracking --------------------------------------------------------------------------------

    def _fingerprint(self, t: Any) -> Any:
        """What the peer must have seen of `t` for its copy to be current: its bytes when it is small
        (torch's version counter misses a write through `p.data` or a numpy view), else its version,
        storage and identity. Taken for every live mirror on every message, so the common case (a
        plain contiguous CPU tensor) reads its bytes straight from memory: no torch op, no copy but
        the bytes, as does a transpose (with its strides); any other tensor goes through
        wire.tensor_bytes, which gives a contiguous tensor the same tuple as the direct read."""
        import torch

        if t is None:
            return None
        limit = BYTE_COMPARE_LIMIT if self.compare_bytes else HARNESS_BYTE_COMPARE_LIMIT
        if type(t) in (_PLAIN_TENSORS or _plain_tensors()) and t.is_cpu and t.numel() <= limit:
            size = t.nbytes
            if t.is_contiguous():
                return t.shape, t.dtype, "cpu", ctypes.string_at(t.data_ptr(), size) if size else b""
            strides, shape = t.stride(), t.shape
            if size and _spans_itself(shape, strides):
                # a transpose (any layout whose span holds as many elements as the tensor): every
                # element lies in the span, so no write to one goes unseen
                return shape, t.dtype, "cpu", ctypes.string_at(t.data_ptr(), size), strides
        obj = id(t)  # (a new tensor at a freed one's address, version 0, would pass for unchanged)
        t = torch.Tensor.detach(t)
        device = t.device.type
        if device == "meta" and _elsewhere(t):  # the placement probe's values on another device
            return ("elsewhere", *self._fingerprint(t.held))
        if device != "meta" and t.numel() <= limit:
            return t.shape, t.dtype, device, wire.tensor_bytes(t)[2]
        return t._version, t.data_ptr() if device != "meta" else 0, obj, t.shape, t.dtype, device

    def _grad_of(self, t: Any) -> Any:
        try:
            return t.grad if t.is_leaf else None
        except Exception:  # noqa: BLE001 - a student tensor subclass may raise anything
            return None

    def collect_sync(self, buffers: list[bytes]) -> list[Any]:
        """Updates for every mirror that changed since the peer last saw it (run on every message:
        the loop is kept tight, and an update's dict is built only for a mirror that changed)."""
        updates = []
        fingerprint = self._fingerprint
        for mid, m in list(self.mirrors.items()):
            t = m.strong if m.strong is not None else m.ref()
            if t is None:
                continue
            entry: dict[str, Any] | None = None
            state = fingerprint(t)
            if state != m.state:
                entry = {"id": mid, "data": self._tensor_value(t, buffers)}
                m.state = state
            grad = self._grad_of(t)
            gstate = fingerprint(grad) if grad is not None else None
            if gstate != m.grad_state:
                entry = entry or {"id": mid}
                entry["grad"] = None if grad is None else self._tensor_value(grad, buffers)
                m.grad_state = gstate
            if entry is not None:
                updates.append(entry)
        return updates

    def apply_sync(self, updates: Any, buffers: list[bytes]) -> None:
        import torch

        if not isinstance(updates, list):
            raise wire.WireError("a malformed sync list")
        for entry in updates:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
                raise wire.WireError("a malformed sync entry")
            m = self.mirrors.get(entry["id"])
            t = m.tensor() if m is not None else None
            if t is None:
                continue
            with torch.no_grad():
                if "data" in entry:
                    new = self._plain_tensor(entry["data"], buffers)
                    if new.shape == t.shape and new.dtype == t.dtype and (t.device.type != "meta" or _elsewhere(t)):
                        t.copy_(new)
                    else:
                        t.data = new.to(t.device) if t.device.type != "meta" else new
                    m.state = self._fingerprint(t)
                    self.changed_data.add(entry["id"])
                if "grad" in entry and t.is_leaf:
                    g = entry["grad"]
                    t.grad = None if g is None else _own(self._plain_tensor(g, buffers).to(t.device))
                    m.grad_state = self._fingerprint(t.grad) if t.grad is not None else None

    # ---- values -------------------------------------------------------------------------------------------

    def _tensor_value(self, t: Any, buffers: list[bytes]) -> dict[str, Any]:
        import torch

        t = torch.Tensor.detach(t)
        device = t.device.type
        if device == "meta" and _elsewhere(t):  # values, on the placement probe's other device
            t, device = t.held, "elsewhere"
        value: dict[str, Any] = {"$": "tensor"}  # (compact: "device" absent is the CPU, "rg" absent false)
        if device != "cpu":
            value["device"] = device
        if device == "meta":
            value.update(dtype=str(t.dtype).removeprefix("torch."), shape=list(t.shape), buf=None)
            return value
        strides = list(t.stride())
        if not t.is_contiguous() and t.numel() > 0 and all(st >= 0 for st in strides) and device in ("cpu", "elsewhere"):
            # the layout crosses too (a transpose, a step slice): the span of storage it covers, and its
            # strides, so that code which only works on contiguous tensors meets the same input there
            span = 1 + sum((n - 1) * st for n, st in zip(t.shape, strides))
            if span <= 4 * t.numel():
                base = torch.as_strided(t, (span,), (1,), t.storage_offset())
                dtype, _, raw = wire.tensor_bytes(base)
                value.update(dtype=dtype, shape=list(t.shape), strides=strides, span=span, buf=len(buffers))
                buffers.append(raw)
                return value
        dtype, shape, raw = wire.tensor_bytes(t)
        value.update(dtype=dtype, shape=shape, buf=len(buffers))
        buffers.append(raw)
        return value

    def _plain_tensor(self, value: Any, buffers: list[bytes]) -> Any:
        if not isinstance(value, dict) or value.get("$") != "tensor":
            raise wire.WireError("a malformed tensor")
        device = value.get("device", "cpu")
        if device not in ("cpu", "meta", "cuda", "mps", "elsewhere"):
            raise wire.WireError(f"a tensor on an unknown device {device!r}")
        if device == "elsewhere":  # graders/kinds/elsewhere.py: CPU values that say they are on another device
            from ..kinds.elsewhere import Elsewhere, active

            if self.side == "harness" and not active():  # a student's own, outside placement's second run
                raise wire.WireError("a tensor on an unknown device 'elsewhere'")

            self.saw_elsewhere = True
            return Elsewhere(self._plain_tensor({**value, "device": "cpu"}, buffers))
        if device == "meta":
            return wire.tensor_from(value.get("dtype"), value.get("shape"), b"", "meta")
        buf = value.get("buf")
        if not isinstance(buf, int) or not 0 <= buf < len(buffers):
            raise wire.WireError("a tensor without its data")
        if "strides" in value:
            return self._strided(value, buffers[buf], device)
        return wire.tensor_from(value.get("dtype"), value.get("shape"), buffers[buf], self._device(device))

    def _strided(self, value: dict[str, Any], raw: bytes, device: str) -> Any:
        """A non-contiguous tensor rebuilt with its strides, every index checked inside its storage."""
        shape, strides, span = value.get("shape"), value.get("strides"), value.get("span")
        if not (isinstance(shape, list) and isinstance(strides, list) and isinstance(span, int)
                and len(shape) == len(strides) and all(isinstance(x, int) and x >= 0 for x in shape + strides)):
            raise wire.WireError("a strided tensor with a malformed layout")
        if span < 1 or span != 1 + sum((n - 1) * st for n, st in zip(shape, strides) if n > 0):
            raise wire.WireError("a strided tensor whose layout does not match its storage")
        base = wire.tensor_from(value.get("dtype"), [span], raw, "cpu")
        out = base.as_strided(shape, strides)
        return out if self._device(device) == "cpu" else out.to(self._device(device))

    def _device(self, device: str) -> str:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            return "cpu"  # the peer claims a device this side does not have: keep the values
        return device

    def encode(self, value: Any, buffers: list[bytes], depth: int = 0) -> Any:
        import numpy as np
        import torch

        if depth > wire.DEPTH_CAP - 4:
            raise wire.WireError("a value nested too deeply to send")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float):
            return wire.encode_float(float(value))
        if isinstance(value, torch.Tensor):
            mid = self.mirror_id(value)
            m = self.mirrors[mid]
            state = self._fingerprint(value)
            # The student's side always sends the data: the harness may have let go of its copy of a
            # mirror (its release is still on the way), and must never be left without the values.
            if state != m.state or m.state is None or self.side == "student":
                out = self._tensor_value(value, buffers)
                m.state = state
            else:
                out = {"$": "tensor", "buf": None}
            out["id"] = mid
            if value.requires_grad:
                out["rg"] = True
            grad = self._grad_of(value)
            gstate = self._fingerprint(grad) if grad is not None else None
            if gstate != m.grad_state:  # sent with the tensor: a mirror made by this message has no sync yet
                out["grad"] = None if grad is None else self._tensor_value(grad, buffers)
                m.grad_state = gstate
            return out
        if isinstance(value, np.ndarray):
            dtype, shape, raw = wire.ndarray_bytes(value)
            buffers.append(raw)
            return {"$": "ndarray", "dtype": dtype, "shape": shape, "buf": len(buffers) - 1}
        if isinstance(value, (np.floating,)):
            return wire.encode_float(float(value))
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, list):
            kinds = set(map(type, value))  # a history of losses, a picture's points: plain numbers in C
            if kinds <= _PLAIN_SCALARS and (float not in kinds or math.isfinite(sum(v for v in value if type(v) is float))):
                return list(value)
            return [self.encode(v, buffers, depth + 1) for v in value]
        if isinstance(value, types.GeneratorType) and self.side == "harness":
            # a one-shot iterator there too (model.parameters() is one): the contract stays the same
            return {"$": "iter", "v": [self.encode(v, buffers, depth + 1) for v in value]}
        if isinstance(value, tuple):
            return {"$": "tuple", "v": [self.encode(v, buffers, depth + 1) for v in value]}
        if isinstance(value, dict):
            return {"$": "dict", "v": [[self.encode(k, buffers, depth + 1), self.encode(v, buffers, depth + 1)]
                                       for k, v in value.items()]}
        if isinstance(value, torch.dtype):
            return {"$": "dtype", "v": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"$": "device", "v": str(value)}
        if isinstance(value, torch.Generator):
            return {"$": "generator", "seed": int(value.initial_seed())}
        if isinstance(value, Local) and self.side == "harness":
            return value.encode(self, buffers, depth)
        return self.encode_other(value)

    def encode_other(self, value: Any) -> Any:
        if self.side == "harness":
            if isinstance(value, BoundMethod):  # passed on: the attribute itself, read now
                value = value.resolve()
            if isinstance(value, RemoteHandle):
                return {"$": "handle", "id": value._id}
            cid = self.new_id()
            self.callbacks[cid] = value
            if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType,
                                  functools.partial)):
                return {"$": "callback", "id": cid}
            # a class or an object of the harness's (a correct model swapped in): used by handle there
            return {"$": "hobj", "id": cid, "callable": callable(value), "type": _type_name(value)}
        if isinstance(value, HarnessProxy):
            return {"$": "hobj", "id": object.__getattribute__(value, "_id")}
        hid = self.new_id()
        self.objects[hid] = value
        name = getattr(value, "__name__", None)
        cls = type(value)  # (the classes stay referenced here: a number is never reused)
        return {"$": "handle", "id": hid, "type": _type_name(value), "callable": callable(value),
                "class": isinstance(value, type), "name": name if isinstance(name, str) else _type_name(value),
                "cls": self._class_ids.setdefault(cls, len(self._class_ids))}

    def decode(self, value: Any, buffers: list[bytes], depth: int = 0) -> Any:
        import torch

        if depth > wire.DEPTH_CAP:
            raise wire.WireError("a value nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            if set(map(type, value)) <= _JSON_SCALARS:  # nothing inside to decode (a tensor, nan: a dict)
                return value
            return [self.decode(v, buffers, depth + 1) for v in value]
        if not isinstance(value, dict):
            raise wire.WireError(f"an unknown value of type {type(value).__name__}")
        tag = value.get("$")
        if tag == "tensor":
            mid = value.get("id")
            if mid is not None and not isinstance(mid, int):
                raise wire.WireError("a tensor with a malformed id")
            m = self.mirrors.get(mid) if mid is not None else None
            known = m.tensor() if m is not None else None
            if value.get("buf") is None and "dtype" not in value:  # unchanged: the copy this side holds
                if known is None:
                    raise wire.WireError("a tensor the other side never sent")
                self._receive_grad(known, value, buffers)
                return known
            fresh = self._plain_tensor(value, buffers)
            if known is not None:  # the peer sent its copy: update ours in place where it differs
                with torch.no_grad():
                    same = (fresh.shape == known.shape and fresh.dtype == known.dtype and known.device.type != "meta")
                    if not same:
                        known.data = fresh
                        self.changed_data.add(mid)
                    elif not torch.equal(torch.Tensor.detach(known), fresh.to(known.device)):
                        known.copy_(fresh)  # (equal values are left alone: no version bump under a graph)
                        self.changed_data.add(mid)
                m.state = self._fingerprint(known)
                self._receive_grad(known, value, buffers)
                return known
            if value.get("rg") and fresh.is_floating_point():
                fresh.requires_grad_(True)
            if mid is not None:
                self._register(mid, fresh)
                self.mirrors[mid].state = self._fingerprint(fresh)
                self._receive_grad(fresh, value, buffers)
                if self.side == "harness":  # held until the next message carries what was done to it
                    self._held.append(fresh)
            return fresh
        if tag == "ndarray":
            buf = value.get("buf")
            if not isinstance(buf, int) or not 0 <= buf < len(buffers):
                raise wire.WireError("an array without its data")
            return wire.ndarray_from(value.get("dtype"), value.get("shape"), buffers[buf])
        if tag == "tuple":
            return tuple(self.decode(v, buffers, depth + 1) for v in _list(value.get("v")))
        if tag == "iter" and self.side == "student":
            return iter([self.decode(v, buffers, depth + 1) for v in _list(value.get("v"))])
        if tag == "dict":
            out = {}
            for pair in _list(value.get("v")):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise wire.WireError("a malformed dict entry")
                key = self.decode(pair[0], buffers, depth + 1)
                try:
                    out[key] = self.decode(pair[1], buffers, depth + 1)
                except TypeError:
                    raise wire.WireError("a dict with an unhashable key") from None
            return out
        if tag == "float":
            return wire.decode_float(value)
        if tag == "dtype":
            name = value.get("v")
            if name not in wire.DTYPES:
                raise wire.WireError(f"an unknown dtype {name!r}")
            return getattr(torch, name)
        if tag == "device":
            name = str(value.get("v"))
            if name.split(":")[0] not in ("cpu", "cuda", "mps", "meta"):
                raise wire.WireError(f"an unknown device {name!r}")
            return torch.device(name)
        if tag == "generator":
            seed = value.get("seed")
            if not isinstance(seed, int):
                raise wire.WireError("a generator without a seed")
            return torch.Generator().manual_seed(seed)
        if tag == "handle":
            return self.decode_handle(value)
        if tag == "callback":
            return self.decode_callback(value)
        if tag == "hobj":
            hid = value.get("id")
            if self.side == "harness":
                if hid not in self.callbacks:
                    raise wire.WireError("a handle the harness never lent")
                return self.callbacks[hid]
            if not isinstance(hid, int):
                raise wire.WireError("a malformed harness handle")
            return HarnessProxy(self, hid, bool(value.get("callable")), str(value.get("type", "object")))
        if tag == "local" and self.side == "student":
            return Local.build(self, value, buffers, depth)
        raise wire.WireError(f"an unknown value tag {tag!r}")

    def _receive_grad(self, t: Any, value: dict[str, Any], buffers: list[bytes]) -> None:
        if "grad" not in value or not t.is_leaf:
            return
        g = value["grad"]
        grad = None if g is None else _own(self._plain_tensor(g, buffers))
        if grad is not None and (grad.shape != t.shape or grad.dtype != t.dtype):
            raise wire.WireError("a gradient whose shape or dtype differs from its tensor's")
        t.grad = None if grad is None else grad.to(t.device)
        m = self.mirrors.get(self._by_object.get(id(t), 0))
        if m is not None:
            m.grad_state = self._fingerprint(t.grad) if t.grad is not None else None

    def decode_handle(self, value: dict[str, Any]) -> Any:
        hid = value.get("id")
        if not isinstance(hid, int):
            raise wire.WireError("a handle without an id")
        if self.side == "student":
            if hid not in self.objects:
                raise wire.WireError("a handle this side never gave out")
            return self.objects[hid]
        handle = RemoteHandle(self, hid, str(value.get("type", "object"))[:200], bool(value.get("callable")),
                              bool(value.get("class")), str(value.get("name", "object"))[:200])
        if value.get("bound") is True:  # the student side says: a method of the object read (see RemoteHandle)
            object.__setattr__(handle, "_bound", True)
        cls = value.get("cls")
        if isinstance(cls, int) and len(self.methods_by_class) < 10_000:
            object.__setattr__(handle, "_methods", self.methods_by_class.setdefault(cls, set()))
        return handle

    def decode_callback(self, value: dict[str, Any]) -> Any:
        if self.side == "harness":
            raise wire.WireError("the submission cannot lend functions to the harness")
        cid = value.get("id")

        def callback(*args, **kwargs):
            return call_harness(self, cid, args, kwargs)

        callback.__name__ = callback.__qualname__ = "harness_function"
        return callback

    # ---- messages -------------------------------------------------------------------------------------------

    def _serve_callback(self, header: dict[str, Any], buffers: list[bytes]) -> Any:
        """Run a function the harness lent to the student's code, in the caller's grad mode (a
        closure under enable_grad calls backward; this side may be inside a no-grad bridge)."""
        import torch

        from . import bridge

        fn = self.callbacks.get(header.get("id"))
        if fn is None or not callable(fn):
            raise wire.WireError("a call to a function the harness never lent")
        args = self.decode(header.get("args", []), buffers)
        kwargs = self.decode(header.get("kwargs", {"$": "dict", "v": []}), buffers)
        if "grad" in header:
            inputs = bridge.inputs_for(self, header["grad"])
            with torch.enable_grad():
                return bridge.tracked(self, fn(*args, **kwargs), inputs)
        with torch.set_grad_enabled(header.get("grad_mode") is not False):
            return fn(*args, **kwargs)

    def send(self, header: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        buffers = buffers if buffers is not None else []
        self._bury()
        header = dict(header)
        sync = self.collect_sync(buffers)
        self._held.clear()
        if sync:  # (absent reads as none: most messages change no mirror)
            header["sync"] = sync
        if self._release:
            header["release"], self._release = self._release, []
        if self.swaps and header.get("op") != "reply":  # (a request: the student applies them before it)
            handed = {name for name, value in self.swaps if isinstance(value, Local)}
            self.stand_ins |= handed
            self.task_stand_ins |= handed
            header["swaps"] = [{"name": name} if value is _PUT_BACK else {"name": name, "value": self.encode(value, buffers)}
                               for name, value in self.swaps]
            self.swaps = []
        if self.deadline is None:
            wire.write_frame(self.sock, header, buffers)
            self._code_delivered(buffers)
            return
        # The harness's writes are bounded by the check's deadline too: a student that floods its socket
        # and never reads would otherwise block this process in sendall for good (red team A14: 251 s)
        self.sock.settimeout(max(1e-3, self.deadline - time.monotonic()))
        try:
            wire.write_frame(self.sock, header, buffers)
        except TimeoutError:
            raise wire.Timeout() from None
        finally:
            self.sock.settimeout(None)
        self._code_delivered(buffers)

    def _code_delivered(self, buffers: list[bytes]) -> None:
        """A Local's harness code counts as sent once the message that carried it was written (a message
        encoded is not always a message sent); what other messages carried and never sent is forgotten."""
        if self.code_pending:
            self.code_sent.update(path for path, carried in self.code_pending if carried is buffers)
            self.code_pending.clear()

    def receive(self) -> tuple[dict[str, Any], list[bytes]]:
        header, buffers = self.reader.read(self.deadline)
        self.apply_sync(header.get("sync", []), buffers)
        released = header.get("release", [])
        if isinstance(released, list):
            for mid in released:
                if isinstance(mid, int):
                    self.objects.pop(mid, None)
                    self.graphs.pop(mid, None)
                    self.graph_bytes.pop(mid, None)
                    m = self.mirrors.pop(mid, None)
                    if m is not None:
                        t = m.tensor()
                        if t is not None and self._by_object.get(id(t)) == mid:
                            del self._by_object[id(t)]
        return header, buffers

    def request(self, header: dict[str, Any], args: tuple = (), kwargs: dict | None = None,
                value: Any = None) -> Any:
        """Send a request and serve the peer's nested requests until the reply comes; its value."""
        buffers: list[bytes] = []
        header = dict(header)
        if args or kwargs:
            header["args"] = self.encode(list(args), buffers)
            header["kwargs"] = self.encode(dict(kwargs or {}), buffers)
        if value is not None:
            header["value"] = self.encode(value, buffers)
        self.send(header, buffers)
        return self.await_reply()

    def await_reply(self) -> Any:
        while True:
            header, buffers = self.receive()
            op = header.get("op")
            if op == "reply":
                changed = header.get("changed_arrays") if self.side == "harness" else None
                if isinstance(changed, list):
                    self.changed_arrays = [c for c in changed[:64] if isinstance(c, (int, str)) and not isinstance(c, bool)]
                if "error" in header:
                    error = header["error"] if isinstance(header["error"], dict) else {"message": str(header["error"])}
                    if error.get("kind") == "hung" and self.side == "harness":
                        from .remote import HungEarlier  # past every probe's `except Exception`, as a timeout

                        raise HungEarlier(str(error.get("message", ""))[:2000])
                    raise remote_error(error)
                return self.decode(header.get("value"), buffers)
            self.serve(header, buffers)

    def serve(self, header: dict[str, Any], buffers: list[bytes]) -> None:
        """Answer one request of the peer with a reply frame (value or error)."""
        reply_buffers: list[bytes] = []
        try:
            op = header.get("op")
            if op == "callback" and self.side == "harness":
                result = self._serve_callback(header, buffers)
            elif op == "hgetattr" and self.side == "harness":
                obj, name = self.callbacks.get(header.get("id")), header.get("name")
                if obj is None or not isinstance(name, str) or name.startswith("__"):
                    raise wire.WireError("an attribute of something the harness never lent")
                result = getattr(obj, name)
            elif op == "backward" and self.side == "harness":
                from . import bridge

                result = bridge.backward_reply(self, header, buffers)
            elif self.handler is not None:
                result = self.handler(header, buffers)
            else:
                raise wire.WireError(f"an unexpected request {header.get('op')!r}")
            reply = {"op": "reply", "value": self.encode(result, reply_buffers)}
            if self.changed_arrays and self.side == "student":
                reply["changed_arrays"], self.changed_arrays = self.changed_arrays, []
        except _Reply as r:  # the handler built its own error reply
            reply, reply_buffers = {"op": "reply", "error": r.error}, []
        except wire.WireError as e:  # the peer's request was malformed: say so, stay up
            reply, reply_buffers = {"op": "reply", "error": {"kind": "protocol", "message": str(e)}}, []
        self.send(reply, reply_buffers)


class Local:
    """A value the student's process builds itself with trusted code: `factory(*args)`, where
    `factory` is a module-level function of a harness file. For what must live beside the student's
    tensors, e.g. a closure that step(closure) differentiates twice: a harness callback would hand back
    a loss without a graph. Its inputs cross as data, and the harness file's compiled code crosses
    with the first Local a student's process receives.

    The harness is nowhere in the student's process before that (red team, round 5): it was loaded in
    the zygote, so that a submission read the spec's own loss and gradient from sys.modules at import
    and answered every call with them, for 9.5 of 10 with no code of its own. Now the zygote holds no
    harness module and no harness code, the sandbox covers harness.py files (mounts.INSTRUCTOR_FILES),
    and the first Local comes after the visible tasks that probe what it would answer (gradcheck
    before the training loops that borrow the harness's gradient)."""

    def __init__(self, factory: Callable[..., Any], *args: Any):
        self.factory, self.args = factory, args

    def encode(self, endpoint: "Endpoint", buffers: list[bytes], depth: int) -> dict[str, Any]:
        import marshal
        import sys

        path = getattr(sys.modules.get(self.factory.__module__), "__file__", None)
        if not path or "<locals>" in self.factory.__qualname__:
            raise wire.WireError(f"{self.factory.__name__} must be a module-level function of a harness file")
        name = self.factory.__name__
        value = {"$": "local", "path": str(path), "name": name,
                 "args": endpoint.encode(list(self.args), buffers, depth + 1)}
        # only the factory and what it reaches of its file (localcode.py), once per (file, factory) and
        # process, until a message that carried it was written (Endpoint._code_delivered)
        key = f"{path}::{name}"
        if key not in endpoint.code_sent:
            code = Local._code.get(key)
            if code is None:
                from .localcode import factory_code

                try:
                    code = Local._code[key] = marshal.dumps(factory_code(Path(path), name))
                except (OSError, SyntaxError, ValueError, LookupError) as e:
                    raise wire.WireError(f"the harness file {path} could not be read ({e})") from None
            value["code"] = len(buffers)
            buffers.append(code)
            endpoint.code_pending.append((key, buffers))
        return value

    _code: dict[str, bytes] = {}  # harness side: each factory's marshalled code ("path::factory")

    _modules: dict[str, Any] = {}

    @classmethod
    def build(cls, endpoint: "Endpoint", value: dict[str, Any], buffers: list[bytes], depth: int) -> Any:
        import marshal
        import sys
        import types

        path, name = value.get("path"), value.get("name")
        if not isinstance(path, str) or not isinstance(name, str) or not path.endswith(".py"):
            raise wire.WireError("a malformed local value")
        key = f"{path}::{name}"
        if key not in cls._modules:
            index = value.get("code")
            if not isinstance(index, int) or not 0 <= index < len(buffers):
                raise wire.WireError("a local value of a harness whose code never came")
            module = types.ModuleType(f"_dldiy_local_{len(cls._modules)}")
            module.__file__ = path
            # in sys.modules only while it runs (dataclasses look a module up there): never importable by
            # the submission afterwards (integrity round 7b: `import _dldiy_local_0` read the harness)
            sys.modules[module.__name__] = module
            try:
                codes = marshal.loads(buffers[index])
                for code in codes if isinstance(codes, tuple) else (codes,):  # (localcode: one per statement)
                    if not isinstance(code, types.CodeType):
                        raise wire.WireError("a local value whose code is not code")
                    exec(code, module.__dict__)
            finally:
                sys.modules.pop(module.__name__, None)
            cls._modules[key] = module
        args = endpoint.decode(value.get("args", []), buffers, depth + 1)
        return getattr(cls._modules[key], name)(*args)


def call_harness(endpoint: "Endpoint", cid: int, args: tuple, kwargs: dict) -> Any:
    """The student's code calls something the harness lent: differentiable through bridge.py."""
    import torch

    from . import bridge

    def send(grad: list[int] | None) -> Any:
        header: dict[str, Any] = {"op": "callback", "id": cid, "grad_mode": torch.is_grad_enabled()}
        if grad is not None:
            header["grad"] = grad
        return endpoint.request(header, args=args, kwargs=kwargs)

    return bridge.call(endpoint, send, (args, kwargs))


class HarnessProxy:
    """In the student's process: a class or object the harness lent (a correct model swapped in for
    the student's). Calling it, or a method of it, runs in the harness; values come back as data."""

    __slots__ = ("_endpoint", "_id", "_callable", "_type")

    def __init__(self, endpoint: "Endpoint", hid: int, is_callable: bool, type_name: str):
        for k, v in (("_endpoint", endpoint), ("_id", hid), ("_callable", is_callable), ("_type", type_name)):
            object.__setattr__(self, k, v)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        endpoint = object.__getattribute__(self, "_endpoint")
        return endpoint.request({"op": "hgetattr", "id": object.__getattribute__(self, "_id"), "name": name})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_harness(object.__getattribute__(self, "_endpoint"), object.__getattribute__(self, "_id"),
                            args, kwargs)

    def __repr__(self) -> str:
        return f"<the grader's {object.__getattribute__(self, '_type')}>"


class _Reply(Exception):
    def __init__(self, error: dict[str, str]):
        self.error = error


def error_reply(kind: str, message: str, traceback: str = "", cause: dict | None = None) -> _Reply:
    """An error answer; `cause`, for a missing name, is submission.missing_cause's (plain data)."""
    error: dict[str, Any] = {"kind": kind, "message": message, "traceback": traceback}
    if cause is not None:
        error["cause"] = cause
    return _Reply(error)


def _own(t: Any) -> Any:
    """A gradient that owns its storage (a strided view would refuse zero_grad's in-place detach)."""
    return t.clone() if t._base is not None else t


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise wire.WireError("a malformed list")
    return value


def _type_name(value: Any) -> str:
    cls = value if isinstance(value, type) else type(value)
    return getattr(cls, "__qualname__", getattr(cls, "__name__", "object"))


class RemoteHandle:
    """An object that lives in the student's process: call it, call its methods, read its attributes.

    `handle.attr` returns plain values by copy (tensors mirrored) and other objects as handles;
    `handle(...)` and `handle.method(...)` call it there. Only what the student's process answers
    ever reaches the harness, as checked plain data."""

    __slots__ = ("_endpoint", "_id", "type_name", "is_callable", "is_class", "__name__", "__weakref__",
                 "_bound", "_methods")

    def __init__(self, endpoint: Endpoint, hid: int, type_name: str, is_callable: bool, is_class: bool,
                 name: str = "object"):
        object.__setattr__(self, "__name__", name)
        object.__setattr__(self, "_endpoint", endpoint)
        object.__setattr__(self, "_id", hid)
        object.__setattr__(self, "type_name", type_name)
        object.__setattr__(self, "is_callable", is_callable)
        object.__setattr__(self, "is_class", is_class)
        object.__setattr__(self, "_bound", False)  # a method of the object it was read from (decode_handle)
        object.__setattr__(self, "_methods", None)  # names read once that were such methods, shared by
        # every object of one class of the submission's (decode_handle): a new optimizer per run reads
        # its `step` once for all

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        from .remote import remote_getattr

        methods = self._methods
        if methods is not None and name in methods:
            return BoundMethod(self, name)
        value = remote_getattr(self._endpoint, self, name)
        if methods is not None and isinstance(value, RemoteHandle) and value._bound:
            methods.add(name)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        """`handle.name = value` sets it on the object in the student's process (value by copy)."""
        self.set_path([name], value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .remote import remote_call

        return remote_call(self._endpoint, self, None, args, kwargs)

    def __iter__(self):
        from .remote import remote_op

        return iter(remote_op(self._endpoint, "list", self))

    def introspect(self) -> dict[str, Any]:
        """{"type", "mro": [qualified class names], "callable"}: as the student's process describes it."""
        from .remote import remote_op

        info = remote_op(self._endpoint, "introspect", self)
        return info if isinstance(info, dict) else {}

    def set_path(self, path: list[Any], value: Any) -> None:
        """`obj[path[0]][path[1]]... = value` (attribute names as str, indices/keys otherwise)."""
        from .remote import remote_op

        remote_op(self._endpoint, "setpath", self, path=path, value=value)

    def __repr__(self) -> str:
        return f"<the submission's {self.type_name}>"

    def __del__(self) -> None:
        try:
            self._endpoint._release.append(self._id)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class BoundMethod:
    """`handle.name` for a method of the submission's object that was read once already (an
    optimizer's `opt.step` in a loop of steps): calling it is one message, a method call that the
    student's process resolves when it runs (as a fresh read would), instead of a read then a call.
    Any other use reads the attribute for real, once, and goes on with that handle."""

    __slots__ = ("_owner", "_name", "_handle")

    def __init__(self, owner: RemoteHandle, name: str):
        self._owner, self._name, self._handle = owner, name, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._handle is not None:
            return self._handle(*args, **kwargs)
        from .remote import remote_call

        return remote_call(self._owner._endpoint, self._owner, self._name, args, kwargs)

    def resolve(self) -> RemoteHandle:
        if self._handle is None:
            from .remote import remote_getattr

            self._handle = remote_getattr(self._owner._endpoint, self._owner, self._name)
        return self._handle

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return repr(self.resolve())


def monotonic_deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds
