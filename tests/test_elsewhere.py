"""graders/kinds/elsewhere.py: a second device with values, on the CPU, and placement's second run on it.

The meta device has no values, so code that reads one stops there; placement then runs the code again
with its inputs on `Elsewhere` tensors. These must compute what the CPU computes (values, gradients,
aliasing), allow what a GPU allows (a value read, a CPU scalar, CPU indices, an explicit .cpu()) and
refuse what a GPU refuses (a CPU tensor meeting the inputs, .numpy()), in torch's own words.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dldiy.graders.kinds.elsewhere import Elsewhere, values_elsewhere
from dldiy.graders.kinds.placement import judge, measure_placement
from dldiy.graders.course.exercise import load_exercise

OPS = {
    "matmul": lambda a, b: a @ b.T,
    "cat with ones made on the inputs' device": lambda a, b: torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)], 1),
    "softplus": lambda a, b: torch.nn.functional.softplus(a - b),
    "new_zeros + add_": lambda a, b: a.new_zeros(a.shape).add_(b),
    "indexing by a CPU index": lambda a, b: a[torch.tensor([0, a.shape[0] - 1])],
    "a CPU scalar tensor": lambda a, b: a * torch.tensor(2.0, dtype=a.dtype),
    "transpose and column": lambda a, b: a.T[0] + b[:, 0].sum(),
    "masked by a value": lambda a, b: a[a > b],
    "where with numbers": lambda a, b: torch.where(a > b, 1.0, -1.0).to(a.dtype) + torch.where(b > 0, b, 0.0),
}


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 5), seed=st.integers(0, 2**16), op=st.sampled_from(sorted(OPS)),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_every_op_computes_what_the_cpu_computes_and_stays_on_the_device(rows, cols, seed, op, dtype):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(rows, cols, generator=g, dtype=dtype), torch.randn(rows, cols, generator=g, dtype=dtype)
    want = OPS[op](a, b)
    with values_elsewhere():
        got = OPS[op](a.to("meta"), b.to("meta"))
    assert isinstance(got, Elsewhere) and got.device.type == "meta" and got.dtype == want.dtype
    assert torch.equal(got.held, want)


def test_gradients_flow_and_values_can_be_read_as_on_a_gpu():
    with values_elsewhere():
        X = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to("meta")
        w = torch.zeros(3, dtype=torch.float64, device="meta", requires_grad=True)
        loss = ((X @ w - 1) ** 2).mean()
        loss.backward()
        assert isinstance(w.grad, Elsewhere) and torch.allclose(w.grad.held, -2 * X.held.mean(0))
        assert loss.item() == 1.0 and float(loss.detach()) == 1.0 and bool(loss > 0) and len(X.tolist()) == 5
        host = X.cpu()  # an explicit copy to the host is allowed; it is then a CPU tensor
        assert type(host) is torch.Tensor and host.device.type == "cpu"


def test_views_and_in_place_writes_alias_as_on_the_cpu():
    with values_elsewhere():
        a = torch.zeros(2, 3, device="meta")
        column = a[:, 1]
        column.add_(5)
        assert a.held[0, 1] == 5 and a.to("meta") is a


@pytest.mark.parametrize("code, words", [
    (lambda X: torch.cat([X, torch.ones(X.shape[0], 1)], 1), "at least two devices, the inputs' device and cpu"),
    (lambda X: X @ torch.tensor([1.0, 2.0, 3.0]), "at least two devices"),
    (lambda X: X.cpu() + X, "at least two devices"),
    (lambda X: X.numpy(), "can't convert meta device type tensor to numpy"),
])
def test_what_a_gpu_refuses_is_refused_in_torchs_words(code, words):
    with values_elsewhere(), pytest.raises((RuntimeError, TypeError), match=words.replace("(", r"\(")):
        code(torch.ones(4, 3).to("meta"))


def _run_with(fn):
    """A placement `run(device)` over a function that reads a value (as a loss history does)."""
    def run(device):
        X = torch.linspace(-1, 1, 12).reshape(4, 3).to(device)
        return {"out": fn(X)}
    return run


def _value_reading_bias(X):
    if X.sum().item() > -100:  # a value read: the meta device stops here
        return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], 1)
    return X


def _value_reading_bias_on_cpu(X):
    if X.sum().item() > -100:
        return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], 1)
    return X


def test_placement_judges_value_reading_code_instead_of_calling_it_inconclusive():
    check = load_exercise("exercise-2").check("placement")
    right = measure_placement(_run_with(_value_reading_bias))
    assert right.get("with_values") and judge(right, None, check).status == "pass"
    wrong = measure_placement(_run_with(_value_reading_bias_on_cpu))
    verdict = judge(wrong, None, check)
    assert verdict.status == "fail" and "second device with values" in verdict.message, verdict.message
    assert "test_elsewhere.py:" in verdict.message  # the student's line


def test_what_this_device_cannot_simulate_is_inconclusive_never_a_failure():
    """A tensor torch makes itself on the reported device ('meta', no values) cannot be run with values:
    NotSimulated, which placement reports as inconclusive."""
    made_by_torch = torch.full((), 1.0, device="meta")  # (made outside the probe: a real meta tensor)

    def run(device):
        X = torch.ones(3, 2).to(device)
        if X.sum().item() > 0:  # the meta device stops here
            return {"out": X.clamp(min=0) + made_by_torch}
        return {"out": X}
    measured = measure_placement(run)
    assert "inconclusive" in measured and "cannot run" in measured["inconclusive"], measured


def test_without_values_value_reading_code_stays_inconclusive():
    measured = measure_placement(_run_with(_value_reading_bias_on_cpu), values=False)
    assert "inconclusive" in measured and "reads a value" in measured["inconclusive"]


def test_the_meta_devices_inconclusive_cases_get_a_gpus_verdict_with_values(tmp_path):
    """tests/test_torchfast.py's family of placement cases: where the meta device cannot tell (value reads,
    data-dependent shapes), the second run gives what a GPU gives: a boolean mask, an all() guard and
    nonzero run on the device; torch.tensor(x.tolist()) and a CPU buffer copied into leave the output on
    the CPU; .item() returns a number (no device: the judge calls it inconclusive)."""
    import importlib.util

    from test_torchfast import PLACEMENT_FAMILY

    (tmp_path / "family.py").write_text(PLACEMENT_FAMILY)
    spec = importlib.util.spec_from_file_location("family", tmp_path / "family.py")
    family = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(family)
    want = {"a boolean mask": "meta", "an all() guard": "meta", "nonzero": "meta", "tolist": "cpu",
            "a CPU buffer copied into": "cpu", "item": "float"}
    for name, device in want.items():
        assert "inconclusive" in measure_placement(family.CASES[name], values=False), name
        measured = measure_placement(family.CASES[name])
        assert measured.get("outputs") == {"o": device} and measured.get("with_values"), (name, measured)


def test_the_harness_takes_a_tensor_on_this_device_only_during_placements_second_run():
    """A student may not hand the harness Elsewhere tensors (values that report another device) outside
    the run that made them: any other time the wire refuses them as a tensor on an unknown device."""
    from dldiy.graders.sandbox import wire
    from dldiy.graders.sandbox.endpoint import Endpoint

    a, b = wire.socketpair()
    harness = Endpoint(a, "harness")
    buffers = [torch.ones(3).numpy().tobytes()]
    value = {"$": "tensor", "dtype": "float32", "shape": [3], "device": "elsewhere", "buf": 0}
    with pytest.raises(wire.WireError, match="unknown device 'elsewhere'"):
        harness._plain_tensor(value, buffers)
    with values_elsewhere():
        taken = harness._plain_tensor(value, buffers)
    assert isinstance(taken, Elsewhere) and torch.equal(taken.held, torch.ones(3))
    a.close()
    b.close()


# exercise-8's CNN and exercise-9's RNN, guarded by a value read (the meta device stops there), right and
# with a CPU tensor met in the forward: the student's process runs placement's second run too
GUARDED = {
    "exercise-8": ("convnet.py",
                   '    h = max_pool2d(torch.relu(conv2d(x, params["conv_w"], params["conv_b"], stride=1, padding=1)))\n',
                   '    if float(x.abs().max()) > 1e6:  # a guard that reads a value\n        raise ValueError("inputs too large")\n',
                   '    h = h + torch.zeros(h.shape[1:])  # no device=\n'),
    "exercise-9": ("rnn.py",
                   '        h = torch.zeros(xs.shape[1], p["W_hh"].shape[0], dtype=xs.dtype, device=xs.device)\n',
                   '        if not torch.isfinite(xs).all():  # a guard that reads a value\n            raise ValueError("non-finite")\n',
                   '        h = h + torch.zeros(h.shape[-1])  # no device=\n'),
}


@pytest.mark.parametrize("exercise_id", sorted(GUARDED))
def test_a_value_guard_in_a_model_gets_a_gpus_verdict_in_the_students_process(exercise_id, tmp_path, check_json):
    """The placement probes of exercises 8 and 9 run in the student's process (sub.run_local): the second
    run with values is passed on there. A stray CPU tensor behind the guard fails, naming its line; the
    guarded right code passes, exercise-8's too, whose max-pool backward makes torch.zeros(...,
    device=grad_out.device) where autograd runs it, outside torch function modes (elsewhere's
    _FactoriesElsewhere, a dispatch mode, makes it Elsewhere there)."""
    import shutil

    from conftest import REPO

    entry, line, guard, stray = GUARDED[exercise_id]
    verdicts = {}
    for name, extra in (("right", ""), ("stray", stray)):
        folder = tmp_path / name
        shutil.copytree(REPO / "reference" / exercise_id, folder)
        source = (folder / entry).read_text()
        assert line in source
        (folder / entry).write_text(source.replace(line, guard + line + extra))
        report, _ = check_json(exercise_id, folder, "placement")
        verdicts[name] = report["checks"][0]
    stray_check = verdicts["stray"]
    assert stray_check["status"] == "fail", stray_check
    assert "second device with values" in stray_check["message"] and f"{entry}:" in stray_check["message"], stray_check
    right = verdicts["right"]
    assert right["status"] == "pass" and "then on a second device with values" in right["message"], right


def test_a_tensor_made_on_the_device_in_a_functions_backward_has_values():
    """Autograd runs a custom Function's backward outside torch function modes: a factory given the
    gradient's device there is made Elsewhere by the dispatch mode beneath, so the backward computes
    what the CPU computes (and a CPU tensor of one or more dimensions met there is still refused)."""

    class Doubled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return torch.zeros(*g.shape, dtype=g.dtype, device=g.device) + g * 2

    class Stray(Doubled):
        @staticmethod
        def backward(ctx, g):
            return torch.zeros(*g.shape, dtype=g.dtype) + g * 2  # no device=

    x = torch.arange(3.0, dtype=torch.float64)
    with values_elsewhere():
        on = x.to("meta").requires_grad_()
        (grad,) = torch.autograd.grad(Doubled.apply(on).sum(), [on])
        assert isinstance(grad, Elsewhere) and grad.device.type == "meta"
        assert torch.equal(grad.held, torch.full((3,), 2.0, dtype=torch.float64))
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
            torch.autograd.grad(Stray.apply(on).sum(), [on])
    assert torch.zeros(2, device="meta").is_meta and not isinstance(torch.zeros(2, device="meta"), Elsewhere)


def test_the_values_device_never_imports_dynamo():
    """torch wraps a dispatch mode's __torch_dispatch__ in torch._disable_dynamo, whose first call imports
    torch._dynamo (over a second, every check whose placement runs with values: exercise-2's always)."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from dldiy.graders.kinds.elsewhere import values_elsewhere\n"
            "with values_elsewhere():\n"
            "    x = torch.zeros(3, device='meta') + torch.ones(3).to('meta')\n"
            "assert type(x).__name__ == 'Elsewhere', type(x)\n"
            "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def _raises_off_the_cpu(X):
    """Integrity red team, round 13: a placement bug hidden behind a refusal to run anywhere but the CPU,
    which turned the check into an inconclusive skip (out of the maximum under --skips leave-out)."""
    if X.device.type != "cpu":
        raise ValueError("not supported")
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], 1)


def _number_off_the_cpu(X):
    return 0.0 if X.device.type != "cpu" else X.sum()


def _raises_everywhere(X):
    raise ValueError("a shape error, everywhere")


@pytest.mark.parametrize("fn", [_raises_off_the_cpu, _number_off_the_cpu])
def test_code_that_answers_otherwise_off_the_cpu_fails_placement_instead_of_skipping(fn):
    check = load_exercise("exercise-1").check("placement")
    verdict = judge(measure_placement(_run_with(fn)), None, check)
    assert verdict.status == "fail", verdict.message
    assert "on the CPU" in verdict.message, verdict.message


def test_an_error_on_every_device_stays_inconclusive_for_the_checks_of_values():
    measured = measure_placement(_run_with(_raises_everywhere))
    assert "inconclusive" in measured and "not about devices" in measured["inconclusive"], measured


def test_devices_reported_by_the_students_process_are_compared_with_the_cpu_run_too():
    """Exercises 4-9 place their inputs in the student's process and get back device names (Placed): a
    number off the CPU where the CPU run gives a tensor fails there as it does for tensors here."""
    from dldiy.graders.kinds.placement import Placed

    def run(device):
        return {"out": Placed("float" if device != "cpu" else "cpu")}
    verdict = judge(measure_placement(run), None, load_exercise("exercise-5").check("placement"))
    assert verdict.status == "fail" and "on the CPU it is a tensor" in verdict.message, verdict.message
