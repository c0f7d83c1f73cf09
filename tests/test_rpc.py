"""The round trip between the harness and a real student process (graders/sandbox/wire.py, endpoint.py,
remote.py): in-place changes that torch's version counter misses still sync both ways, frames of
many megabytes arrive whole, and a batch of calls answers each call in its place."""

from __future__ import annotations

import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from dldiy.graders.sandbox.child import StudentProcess
from dldiy.graders.sandbox.endpoint import RemoteError
from dldiy.graders.kinds.invariants import Violation
from dldiy.graders.sandbox.remote import RemoteSubmission

MODULE = textwrap.dedent("""
    import torch

    def total(xs):
        return [float(x.sum()) for x in xs]

    def halve_through_data(x):
        x.data.mul_(0.5)  # no version bump on x

    def bump_through_numpy(x):
        x.numpy()[0] += 1.0

    def copy_into(x, y):
        x.copy_(y)

    def add_to_grad(p):
        p.grad.data.add_(1.0)

    def big(x):
        return x * 2

    def fail(message):
        raise ValueError(message)

    def same(value):
        return value

    def lent(x):
        return x.sum()

    def centre_in_place(X, k=None):
        X -= X.mean(axis=0)  # numpy: the caller's array
        return X

    def centre_copy(X, k=None):
        return X - X.mean(axis=0)

    def centre_keyword_in_place(X, k=None):
        k[:] = 0
        return X

    def call_lent_keeping_graphs(n, size):
        import sys
        lent = sys.modules[__name__].lent  # the harness's function while swapped in
        kept = []
        for _ in range(n):
            x = torch.zeros(size, dtype=torch.float64, requires_grad=True)
            with torch.enable_grad():
                kept.append(lent(x))  # differentiable: the harness keeps (outputs, inputs) for a backward
        return len(kept)
""")


class _Exercise:
    api: dict = {}


@pytest.fixture
def sub(tmp_path):
    (tmp_path / "rpc.py").write_text(MODULE)
    student = StudentProcess({"entry": str(tmp_path / "rpc.py"), "sandbox": None, "forbid": {}}, 60)
    try:
        yield RemoteSubmission(student.endpoint, _Exercise(), forbidden={"banned": "banned() is forbidden"})
    finally:
        student.kill()


def test_harness_writes_the_version_counter_misses_reach_the_student(sub):
    gen = torch.Generator().manual_seed(0)
    live = [torch.randn(4, 3, dtype=torch.float64, generator=gen) for _ in range(40)]
    base = torch.randn(3, 5, dtype=torch.float64, generator=gen)
    live.append(base.t())  # a transpose: fingerprinted from its span
    total = sub.get("total")
    with torch.no_grad():
        assert total(live) == [float(x.sum()) for x in live]
        for step in range(5):
            live[step].data[0, 0] = 100.0 + step  # through .data
            live[step + 10].numpy()[1, 1] = -7.0  # through a numpy view
            base.data[1, 2] = float(step)  # the transpose's storage, through its base
            assert total(live) == [float(x.sum()) for x in live], f"step {step}"


def test_student_writes_the_version_counter_misses_reach_the_harness(sub):
    x = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    sub.get("halve_through_data")(x)
    assert torch.equal(x, torch.arange(6, dtype=torch.float64).reshape(2, 3) * 0.5)
    y = torch.zeros(3, dtype=torch.float32)
    sub.get("bump_through_numpy")(y)
    assert y.tolist() == [1.0, 0.0, 0.0]
    z = torch.zeros(2, 2, dtype=torch.float64)
    sub.get("copy_into")(z, torch.ones(2, 2, dtype=torch.float64))
    assert torch.equal(z, torch.ones(2, 2, dtype=torch.float64))
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    p.grad = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        sub.get("add_to_grad")(p)
    assert p.grad.tolist() == [1.0, 1.0, 1.0]


def test_frames_of_many_megabytes_arrive_whole(sub):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3_000_000, dtype=torch.float64, generator=gen)  # 24 MB each way
    assert torch.equal(sub.get("big")(x), x * 2)
    assert torch.equal(sub.get("big")(x[::3]), x[::3] * 2)  # a strided view crosses with its layout


def test_a_batch_answers_each_call_in_its_place(sub):
    x = torch.ones(3, dtype=torch.float64)
    results = sub.batch([("total", None, ([x],), {}), ("fail", None, ("no",), {}),
                         (sub.get("halve_through_data"), None, (x,), {}), ("missing_name", None, (), {}),
                         ("total", None, ([x],), {})])
    assert results[0] == [3.0]
    assert isinstance(results[1], RemoteError) and isinstance(results[1], ValueError) and str(results[1]) == "no"
    assert results[2] is None
    assert isinstance(results[3], RemoteError) and results[3].kind == "missing"
    assert results[4] == [1.5]  # the calls ran in order: the halving is seen by the last one
    assert x.tolist() == [0.5, 0.5, 0.5]  # and synced back to the harness
    with pytest.raises(Violation):
        sub.batch([("banned", None, (), {})])
    assert sub.batch([]) == []


_scalars = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=1e307, max_value=1.7e308),
                     st.integers(-2**53, 2**53), st.booleans(), st.none(), st.text(max_size=4))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=8), st.tuples(inner, inner)),
                       max_leaves=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_values)
def test_plain_values_cross_and_come_back_as_they_were(sub, value):
    """Lists of plain numbers take a shortcut both ways (sent as they are when every float is finite;
    nothing to decode in a list of JSON scalars): nan, inf, a sum that overflows, bools, None and strings
    come back with their types and values, nested or not."""
    back = sub.call("same", value)

    def same(a, b):
        if isinstance(a, float) and a != a:
            return isinstance(b, float) and b != b
        if isinstance(a, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return type(a) is type(b) and a == b

    assert same(value, back), (value, back)


def test_a_swap_whose_value_cannot_be_built_leaves_every_later_put_back_its_swap():
    """Two swaps travel ahead of one request and the first one's value fails to build in the student's
    process: the second is made all the same, the request answers with the error, and the put-backs
    sent later (inner first) each find their swap: nothing out of step for the next request."""
    import types

    from dldiy.graders.sandbox.student import Server

    def decode(value, buffers):
        if value == "broken":
            raise RuntimeError("the factory raised")
        return value

    module = types.ModuleType("submission")
    module.gradient = "theirs"
    endpoint = types.SimpleNamespace(decode=decode, handler=None)
    server = Server(endpoint, types.SimpleNamespace(module=module), {})
    with pytest.raises(RuntimeError, match="the factory raised"):
        server._swap([{"name": "gradient", "value": "broken"}, {"name": "loss", "value": "ours"}], [])
    assert module.loss == "ours"
    server._swap([{"name": "loss"}, {"name": "gradient"}], [])  # the harness's put-backs, inner first
    assert module.gradient == "theirs" and not hasattr(module, "loss")


def test_a_value_nested_past_the_cap_is_refused_before_anything_recurses_into_it():
    """A frame's nesting is walked before any decoder recurses into it: a reply nested deeper than the cap
    (which json reads) is refused as a WireError, and one nested 100,000 deep (which json cannot read) too,
    never a RecursionError in the harness; one within the cap arrives whole."""
    import socket
    import struct

    from dldiy.graders.sandbox import wire

    def nested(depth: int) -> list:
        value: list = []
        for _ in range(depth):
            value = [value]
        return value

    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = wire.Reader(ours)
        wire.write_frame(theirs, {"value": nested(wire.DEPTH_CAP + 5)}, [])
        with pytest.raises(wire.WireError, match="nested deeper"):
            reader.read()
        body = b'{"value":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        theirs.sendall(struct.pack(">I", len(body)) + body)
        with pytest.raises(wire.WireError, match="not valid JSON"):
            reader.read()
        wire.write_frame(theirs, {"value": nested(wire.DEPTH_CAP - 2)}, [])
        assert reader.read()[0]["value"] == nested(wire.DEPTH_CAP - 2)


def test_graphs_the_harness_keeps_for_a_students_backward_are_capped_in_bytes(sub, monkeypatch):
    """Red team A02: a student's process calling a lent harness function with inputs that require grad
    (every live leaf it mirrors is one) made the unconfined harness keep every input (256 graphs of
    256 MB). A call whose inputs hold more than GRAPH_BYTES_KEPT (here 8 MB; 2 MB more each call) is
    refused, and the graphs kept stay within it."""
    from dldiy.graders.sandbox import bridge

    monkeypatch.setattr(bridge, "GRAPH_BYTES_KEPT", 8 << 20)
    with sub.replaced("lent", lambda x: x.sum()):
        assert sub.call("call_lent_keeping_graphs", 3, 1 << 18) == 3  # 6 MB: within the cap
        with pytest.raises(RemoteError, match=r"inputs hold 8\.[0-9] MB \(the cap is 8 MB\)"):
            sub.call("call_lent_keeping_graphs", 12, 1 << 18)
    graphs, sizes = sub.endpoint.graphs, sub.endpoint.graph_bytes
    assert set(sizes) == set(graphs) and sum(sizes.values()) <= 8 << 20, sizes


def test_the_harness_process_caps_its_own_data_memory():
    """Whatever passes the wire's caps fails an allocation in the harness (RLIMIT_DATA: a student's
    memory limit plus headroom), never the grader's machine."""
    import subprocess
    import sys

    code = textwrap.dedent("""
        import resource, torch
        from dldiy.graders.sandbox.child import _cap_own_memory, HARNESS_DATA_HEADROOM
        from dldiy.graders.sandbox.confine import Limits
        _cap_own_memory()
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        print(soft == Limits().memory_bytes + HARNESS_DATA_HEADROOM, hard == resource.RLIM_INFINITY)
        try:
            torch.empty(soft // 8 + 1, dtype=torch.float64)  # more than the whole cap at once
            print("allocated")
        except (MemoryError, RuntimeError) as e:
            print(type(e).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() in (["True", "True", "RuntimeError"], ["True", "True", "MemoryError"]), done.stdout


def test_a_numpy_argument_changed_in_place_is_a_violation_like_a_tensor_one(tmp_path):
    """Arrays cross by value (no mirror): the student's side compares each numpy argument's bytes after the
    call and says which changed, with its reply (the instructor trial's numpy exercise: unseen before)."""
    import types

    import numpy as np

    (tmp_path / "rpc.py").write_text(MODULE)
    entries = {name: types.SimpleNamespace(signature=f"{name}(X, k=None)", mutates=False, shape=None, dtype=None)
               for name in ("centre_in_place", "centre_copy", "centre_keyword_in_place")}
    exercise = types.SimpleNamespace(api=entries)
    student = StudentProcess({"entry": str(tmp_path / "rpc.py"), "sandbox": None, "forbid": {}}, 60)
    try:
        sub = RemoteSubmission(student.endpoint, exercise)
        X = np.arange(6.0).reshape(3, 2)
        assert np.allclose(sub.call("centre_copy", X), X - X.mean(axis=0))
        with pytest.raises(Violation, match=r"centre_in_place\(\) modified its argument X in place: the caller's array"):
            sub.call("centre_in_place", X)
        with pytest.raises(Violation, match="modified its argument k in place"):
            sub.call("centre_keyword_in_place", X, k=np.ones(2))
        assert np.allclose(sub.call("centre_copy", X, k=np.ones(2)), X - X.mean(axis=0))  # nothing carried over
        assert (X == np.arange(6.0).reshape(3, 2)).all()  # (by value: the harness's own never changes)
    finally:
        student.kill()


def test_a_swap_takes_the_replaced_callable_out_of_the_modules_registries_and_puts_it_back():
    """A registry filled when the module ran (ACTIVATIONS = {"relu": ReLU}) gets the swap's value too, so
    code that reads the registry calls the harness's; the put-back restores the entry, unless the
    submission changed it meanwhile; a dict of plain data is left alone."""
    import types

    from dldiy.graders.sandbox.student import Server

    def ReLU():
        return "theirs"

    def ours():
        return "ours"

    module = types.ModuleType("submission")
    module.ReLU = ReLU
    module.ACTIVATIONS = {"relu": ReLU, "tanh": len}
    module.SIZES = {"relu": 3}
    endpoint = types.SimpleNamespace(decode=lambda value, buffers: ours, handler=None)
    server = Server(endpoint, types.SimpleNamespace(module=module), {})
    server._swap([{"name": "ReLU", "value": "ours"}], [])
    assert module.ReLU is ours and module.ACTIVATIONS == {"relu": ours, "tanh": len} and module.SIZES == {"relu": 3}
    server._swap([{"name": "ReLU"}], [])
    assert module.ReLU is ReLU and module.ACTIVATIONS["relu"] is ReLU
    server._swap([{"name": "ReLU", "value": "ours"}], [])
    module.ACTIVATIONS["relu"] = print  # the submission's own change, meanwhile: kept
    server._swap([{"name": "ReLU"}], [])
    assert module.ReLU is ReLU and module.ACTIVATIONS["relu"] is print
