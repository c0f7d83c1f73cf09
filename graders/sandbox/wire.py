"""The wire between the trusted harness and the student's process: framed messages of plain data.

A frame is `>I` header length, the header (UTF-8 JSON), then the raw bytes of the buffers the header
lists (`"buffers": [n0, n1, ...]`). Tensors and arrays travel as dtype + shape + raw bytes; every
other value is JSON. Nothing is ever pickled, so the worst a hostile peer can send is a wrong number,
a malformed frame or an oversized one, and each of these is refused by `Reader.read` before any of it
is parsed (header and buffer caps, JSON depth). Both sides use this module; only the harness side
trusts nothing it reads.

Value encoding (`"$"` tags a non-JSON value):
    {"$": "tensor", "id": int|null, "dtype": str, "shape": [..], "device": str, "buf": int|null,
     "rg": bool, "grad": <tensor>|null|absent}             a tensor (buf null: the peer's copy is current;
                                                           "device" absent: "cpu"; "rg" absent: false)
    {"$": "ndarray", "dtype", "shape", "buf"}              a numpy array
    {"$": "tuple", "v": [...]}, {"$": "dict", "v": [[k, v], ...]}, {"$": "float", "v": "nan"|"inf"|"-inf"}
    {"$": "handle", "id": int, "type": str, "callable": bool, "class": bool}   an object left where it lives
    {"$": "callback", "id": int}                           a harness function the student side may call
    {"$": "dtype", "v": "float64"}, {"$": "device", "v": "cpu"}, {"$": "generator", "seed": int}
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import select
import socket
import struct
import time
from typing import Any, TypedDict

HEADER_CAP = 4 << 20  # bytes of JSON in one frame
BUFFER_CAP = 256 << 20  # bytes of tensor data in one frame
DEPTH_CAP = 64  # nesting of lists/dicts in one value

# dtypes that may cross, by name; nothing else is ever reconstructed from bytes
DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


# BaseException, not Exception: a harness probe's `except Exception` (around student code whose
# raising *is* the measurement) must never swallow a broken conversation and carry on with a reply
# still in flight; these end the check, and the harness process restarts the student's process.
class WireError(BaseException):
    """A frame that breaks the protocol: too large, malformed, too deep, or an unknown type."""


class PeerGone(BaseException):
    """The other end closed the connection (it exited, or was killed)."""


class Timeout(BaseException):
    """No complete frame arrived before the deadline."""


class Frame(TypedDict, total=False):
    op: str  # "call" | "getattr" | "setpath" | "introspect" | "backward" | "callback" | "reply" | "hello"
    id: int
    value: Any
    error: dict[str, str]
    sync: list[Any]
    release: list[int]
    buffers: list[int]


# ---- framing -----------------------------------------------------------------------------------------

# One encoder for every frame: json.dumps with arguments builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False).encode
SMALL_FRAME = 1 << 16  # below this, a frame is joined into one bytes object: one copy, one syscall


def write_frame(sock: socket.socket, header: dict[str, Any], buffers: list[bytes]) -> None:
    """`header` (a dict the caller no longer needs: "buffers" is set in it) and its buffers, as one
    frame. A small frame is one sendall; a large one is handed to the kernel as it lies (sendmsg of
    the pieces), so megabytes of tensor data are not copied into one more buffer first."""
    if buffers:
        header["buffers"] = [len(b) for b in buffers]
    data = _encode(header).encode()
    prefix = struct.pack(">I", len(data))
    total = 4 + len(data) + sum(len(b) for b in buffers)
    if total <= SMALL_FRAME or not hasattr(sock, "sendmsg"):
        sock.sendall(b"".join([prefix, data, *buffers]))
        return
    pieces = [memoryview(prefix + data), *(memoryview(b).cast("B") for b in buffers if len(b))]
    while pieces:
        sent = sock.sendmsg(pieces[:512])  # (IOV_MAX is 1024 on Linux)
        while pieces and sent >= len(pieces[0]):
            sent -= len(pieces[0])
            pieces.pop(0)
        if pieces and sent:
            pieces[0] = pieces[0][sent:]


class Reader:
    """Frames from a socket, read in large chunks (one recv a frame, not three); pieces are taken by
    offset from the chunk read, and a large buffer is received straight into its own memory."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buffer, self.pos = sock, bytearray(), 0

    def _wait(self, deadline: float | None) -> None:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise Timeout()

    def _fill(self, n: int, deadline: float | None) -> None:
        """At least `n` unread bytes in the buffer."""
        if self.pos and len(self.buffer) - self.pos < n:
            del self.buffer[:self.pos]  # the unread tail to the front, once per refill
            self.pos = 0
        while len(self.buffer) - self.pos < n:
            self._wait(deadline)
            chunk = self.sock.recv(max(1 << 16, min(n - len(self.buffer) + self.pos, 1 << 22)))
            if not chunk:
                raise PeerGone()
            self.buffer += chunk

    def _take(self, n: int, deadline: float | None) -> bytes | bytearray:
        unread = len(self.buffer) - self.pos
        if n > (1 << 20) and unread < n:  # a large buffer: received into its own memory, no copies
            out = bytearray(n)
            view = memoryview(out)
            view[:unread] = memoryview(self.buffer)[self.pos:]
            self.buffer, self.pos = bytearray(), 0
            got = unread
            while got < n:
                self._wait(deadline)
                k = self.sock.recv_into(view[got:], min(n - got, 1 << 22))
                if not k:
                    raise PeerGone()
                got += k
            return out
        self._fill(n, deadline)
        piece = bytes(memoryview(self.buffer)[self.pos:self.pos + n])  # (the view dies here: the buffer may grow)
        self.pos += n
        if self.pos == len(self.buffer):
            self.buffer, self.pos = bytearray(), 0
        return piece

    def read(self, deadline: float | None = None) -> tuple[dict[str, Any], list[bytes]]:
        """One frame, or WireError/PeerGone/Timeout. Sizes are checked before anything is parsed."""
        (size,) = struct.unpack(">I", self._take(4, deadline))
        if size > HEADER_CAP:
            raise WireError(f"a message header of {size} bytes (the cap is {HEADER_CAP})")
        raw = self._take(size, deadline)
        try:
            header = json.loads(raw)
        except (ValueError, RecursionError):
            raise WireError("a message that is not valid JSON") from None
        if not isinstance(header, dict):
            raise WireError("a message that is not a JSON object")
        sizes = header.get("buffers", [])
        if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
            raise WireError("a message with malformed buffer sizes")
        if sum(sizes) > BUFFER_CAP:
            raise WireError(f"a message with {sum(sizes)} bytes of data (the cap is {BUFFER_CAP})")
        if raw.count(b"[") + raw.count(b"{") > DEPTH_CAP:  # else no value can nest deeper: no walk
            _check_depth(header, 0)
        return header, [self._take(n, deadline) for n in sizes]  # type: ignore[misc]


def _check_depth(value: dict[str, Any] | list[Any], depth: int) -> None:
    """`value` (a dict or list json.loads made) nests no deeper than DEPTH_CAP. Only containers are
    visited: a call per number of a batch's arguments was a tenth of a student's process's time."""
    if depth > DEPTH_CAP:
        raise WireError(f"a value nested deeper than {DEPTH_CAP} levels")
    for v in value.values() if type(value) is dict else value:
        if type(v) is dict or type(v) is list:  # (json.loads makes no subclass of either)
            _check_depth(v, depth + 1)


# ---- plain values --------------------------------------------------------------------------------------

def encode_float(x: float) -> Any:
    return x if math.isfinite(x) else {"$": "float", "v": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def decode_float(tag: dict[str, Any]) -> float:
    v = tag.get("v")
    if v not in ("nan", "inf", "-inf"):
        raise WireError(f"an unknown float {v!r}")
    return float(v)


_DTYPE_NAMES: dict[Any, str] = {}  # torch.float64 -> "float64", ... (filled at first use: no torch at import)


def tensor_bytes(t: Any) -> tuple[str, list[int], bytes]:
    """dtype name, shape and raw bytes of a tensor (copied to the CPU, contiguous)."""
    import torch

    if not _DTYPE_NAMES:
        _DTYPE_NAMES.update({getattr(torch, name): name for name in DTYPES})
    if type(t) in (torch.Tensor, torch.nn.Parameter) and t.is_cpu and t.is_contiguous() and t.dtype in _DTYPE_NAMES:
        size = t.nbytes  # the common case: the bytes straight from memory, one copy
        return _DTYPE_NAMES[t.dtype], list(t.shape), ctypes.string_at(t.data_ptr(), size) if size else b""
    t = torch.Tensor.detach(t)
    if t.device.type != "cpu":
        t = t.cpu()
    name = str(t.dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise WireError(f"a tensor of dtype {name} cannot be sent")
    if name == "bfloat16":
        raw = t.contiguous().view(torch.int16).numpy().tobytes()
    else:
        raw = t.contiguous().numpy().tobytes()
    return name, list(t.shape), raw


def tensor_from(dtype: str, shape: Any, raw: bytes, device: str = "cpu") -> Any:
    """A fresh tensor from untrusted dtype/shape/bytes: each is checked against the others."""
    import numpy as np
    import torch

    if dtype not in DTYPES:
        raise WireError(f"a tensor of unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and 0 <= s for s in shape) or len(shape) > 16:
        raise WireError("a tensor with a malformed shape")
    count = math.prod(shape)
    if device == "meta":
        return torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
    np_dtype = np.int16 if dtype == "bfloat16" else np.dtype(dtype if dtype != "bool" else np.bool_)
    if count * np.dtype(np_dtype).itemsize != len(raw):
        raise WireError(f"a tensor of shape {tuple(shape)} and dtype {dtype} with {len(raw)} bytes")
    array = np.frombuffer(raw, dtype=np_dtype).reshape(shape).copy()
    t = torch.from_numpy(array)
    if dtype == "bfloat16":
        t = t.view(torch.bfloat16)
    if device != "cpu":
        t = t.to(device)
    return t


def ndarray_bytes(a: Any) -> tuple[str, list[int], bytes]:
    import numpy as np

    a = np.ascontiguousarray(a)
    name = str(a.dtype)
    if name not in DTYPES:
        raise WireError(f"a numpy array of dtype {name} cannot be sent")
    return name, list(a.shape), a.tobytes()


def ndarray_from(dtype: str, shape: Any, raw: bytes) -> Any:
    import numpy as np

    if dtype not in DTYPES or dtype == "bfloat16":
        raise WireError(f"an array of unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and 0 <= s for s in shape) or len(shape) > 16:
        raise WireError("an array with a malformed shape")
    if math.prod(shape) * np.dtype(dtype).itemsize != len(raw):
        raise WireError("an array whose bytes do not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def socketpair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for s in (a, b):
        os.set_inheritable(s.fileno(), False)
    return a, b
