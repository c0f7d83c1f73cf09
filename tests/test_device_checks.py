"""placement and parity, tested on a CPU-only machine.

placement runs forward and backward on the `meta` device, so a hard-coded `.cuda()` and a tensor made
on the wrong device inside forward are caught without a GPU. parity's measuring side is exercised with
the CPU standing in for the accelerator, and its judge on hand-made measurements.
"""

import dataclasses
import json

import pytest
import torch

from conftest import REPO
from dldiy.graders.course.validate import Row, missing
from dldiy.graders.kinds import parity
from dldiy.graders.course.exercise import load_exercise


def _variant(write_submission, exercise, entry, old, new):
    source = (REPO / "reference" / exercise / entry).read_text()
    assert source.count(old) == 1
    return write_submission(source.replace(old, new), name=entry)


def _device_checks(check_json, exercise, path):
    """`dldiy check EXERCISE PATH --only placement --only parity --json`'s checks, assessed in-process
    through the session's fork server (conftest.check_json)."""
    return {c["name"]: c for c in check_json(exercise, path, "placement", "parity")[0]["checks"]}


HARD_CODED_CUDA = ("    h = max_pool2d(", "    x = x.cuda()  # run on the GPU\n    h = max_pool2d(")
H0_ON_CPU = ('dtype=xs.dtype, device=xs.device)', 'dtype=xs.dtype)')


@pytest.mark.parametrize("exercise, entry, edit, raised", [
    ("exercise-8", "convnet.py", HARD_CODED_CUDA, "with every input on device 'meta'"),
    ("exercise-9", "rnn.py", H0_ON_CPU, "with every input on device 'meta'"),
])
def test_placement_catches_a_hard_coded_device_without_a_gpu(write_submission, check_json, exercise, entry, edit,
                                                             raised):
    checks = _device_checks(check_json, exercise, _variant(write_submission, exercise, entry, *edit))
    assert checks["placement"]["status"] == "fail"
    assert checks["placement"]["message"].startswith(raised)
    if not torch.cuda.is_available():
        assert checks["parity"]["status"] == "skip"
        assert "no CUDA or MPS device" in checks["parity"]["message"]


@pytest.mark.parametrize("exercise", ["exercise-8", "exercise-9"])
def test_the_references_put_every_output_on_the_inputs_device(exercise, check_json):
    checks = _device_checks(check_json, exercise, REPO / "reference" / exercise)
    assert checks["placement"]["status"] == "pass"
    assert checks["parity"]["status"] in ("pass", "skip")


@pytest.fixture
def cpu_as_accelerator(monkeypatch):
    """measure_parity with the CPU standing in for the accelerator; torch's global flags restored."""
    monkeypatch.setattr(parity, "accelerator", lambda: ("cpu", "CPU standing in for an accelerator"))
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic)


def test_parity_measures_and_judges_a_deterministic_computation_as_equal(cpu_as_accelerator):
    def run(device):
        x = torch.linspace(-1, 1, 12, device=device).reshape(3, 4)
        return {"y": torch.tanh(x @ x.t())}

    measured = parity.measure_parity(run)
    assert torch.are_deterministic_algorithms_enabled()
    verdict = parity.judge(json.loads(json.dumps(measured)), None, load_exercise("exercise-8").check("parity"))
    assert verdict.status == "pass", verdict.message


def test_parity_fails_a_computation_that_depends_on_the_run(cpu_as_accelerator):
    calls = []

    def run(device):  # stands for a device-dependent op: the second run differs by 1e-4
        calls.append(device)
        return {"logits": torch.ones(2, 3, device=device) * (1 + 1e-4 * (len(calls) - 1))}

    verdict = parity.judge(parity.measure_parity(run), None, load_exercise("exercise-8").check("parity"))
    assert verdict.status == "fail"
    assert "logits differs between CPU and cpu" in verdict.message and "TF32 off" in verdict.message


def test_parity_judge_names_an_output_left_on_another_device():
    measured = {"device": "cuda (fake)", "outputs": [
        {"name": "prediction", "dtype": "float32", "shape": [2], "accel_device": "cpu", "cpu": [1.0, 2.0],
         "accel": [1.0, 2.0]}]}
    verdict = parity.judge(measured, None, load_exercise("exercise-9").check("parity"))
    assert verdict.status == "fail" and "hard-coded device" in verdict.message


def test_two_devices_meeting_is_placements_to_charge_and_parity_says_so(cpu_as_accelerator):
    """Seen on the H100 (2026-11-27): a tensor made on the CPU inside the code failed placement and
    errored in parity too, so a device bug cost twice on a GPU grader and once on a CPU one. Where
    placement failed, parity is inconclusive (the skip policy decides); where it passed, parity charges."""
    calls = []

    def run(device):  # the second run (the accelerator's) meets a tensor left on another device
        calls.append(device)
        if len(calls) == 2:
            raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                               "cuda:0 and cpu!")
        return {"logits": torch.ones(2, 3)}

    measured = json.loads(json.dumps(parity.measure_parity(run)))
    assert "same device" in measured["mixed_devices"]
    check = load_exercise("exercise-8").check("parity")
    assert check.params["charged_by"] == {"devices": "placement"}
    placement_failed = dataclasses.replace(check, params={**check.params, "failed_checks": ["placement"]})
    verdict = parity.judge(measured, None, placement_failed)
    assert verdict.status == "skip" and "'placement' charges that already" in verdict.message, verdict.message
    verdict = parity.judge(measured, None, check)
    assert verdict.status == "fail" and "mixes devices" in verdict.message, verdict.message

    def other(device):  # any other error is the check's error, as before
        raise ValueError("shapes (2, 3) and (4,) not aligned")

    with pytest.raises(ValueError):
        parity.measure_parity(other)


def test_nan_on_both_devices_agrees_and_nothing_finite_is_inconclusive():
    """exercise-6's adam-step-zero-based makes every parameter nan on both devices: parity said they
    "differ" (nan != nan) and charged the Adam check's bug again. nan on both sides, or the same
    infinity, agrees; nan against a number does not; nothing finite at all is nothing to compare."""
    check = load_exercise("exercise-9").check("parity")

    def measured(cpu, accel):
        return {"device": "cuda (fake)", "outputs": [{"name": "p", "dtype": "float32", "shape": [len(cpu)],
                                                      "accel_device": "cuda:0", "cpu": cpu, "accel": accel}]}

    nan, inf = float("nan"), float("inf")
    assert parity.judge(measured([1.0, nan, inf], [1.0, nan, inf]), None, check).status == "pass"
    verdict = parity.judge(measured([1.0, nan], [1.0, 2.0]), None, check)
    assert verdict.status == "fail" and "index (1,)" in verdict.message, verdict.message
    assert parity.judge(measured([1.0, inf], [1.0, -inf]), None, check).status == "fail"
    # nothing finite: the other checks' to charge where one failed (the Adam check there), parity's where none did
    # (integrity round 8: nan for the probe's inputs alone made parity a skip at will)
    adam_failed = dataclasses.replace(check, params={**check.params, "other_failures": {"adam": "nan"}})
    verdict = parity.judge(measured([nan, nan], [nan, nan]), None, adam_failed)
    assert verdict.status == "skip" and "inconclusive" in verdict.message, verdict.message
    verdict = parity.judge(measured([nan, nan], [nan, nan]), None, check)
    assert verdict.status == "fail" and "every other check passes" in verdict.message, verdict.message


def test_parity_is_skipped_with_its_reason_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(parity, "accelerator", lambda: (None, "no CUDA or MPS device on this machine"))
    measured = parity.measure_parity(lambda device: pytest.fail("nothing should run"))
    verdict = parity.judge(measured, None, load_exercise("exercise-9").check("parity"))
    assert verdict.status == "skip" and "no CUDA" in verdict.message


def test_validate_reports_a_cuda_only_variant_as_not_validated_on_a_cpu_machine():
    assert missing("") is None
    assert "does not know" in missing("tpu")
    if torch.cuda.is_available():
        assert missing("cuda") is None
    else:
        assert missing("cuda") == "requires cuda; torch.cuda.is_available() is False on this machine"
    row = Row(load_exercise("exercise-8"), "buggy/exercise-8/tf32-in-forward", ("parity",), not_here="requires cuda")
    assert row.problems() == []  # neither a pass nor a mismatch: listed apart, with its reason
    manifest = (REPO / "buggy/exercise-8/tf32-in-forward/manifest.toml").read_text()
    assert 'requires = "cuda"' in manifest and 'caught_by = ["parity"]' in manifest


def test_placement_fails_an_output_moved_to_the_host_but_not_a_value_read(write_submission, check_json):
    """A copy out of a meta tensor is a value read (`.tolist()`: inconclusive) unless the student's line
    moves the tensor to a device: `.cpu()` on the loss is then run with values, where the loss comes back
    on the CPU: the placement error, the copy's line named (on a GPU machine, `.cuda()` of a meta tensor
    raises the same copy error)."""
    moved = _variant(write_submission, "exercise-1", "logreg.py",
                     "    return torch.logaddexp(torch.zeros_like(u), -u).mean()  # log(1 + exp(-u)), stable",
                     "    return torch.logaddexp(torch.zeros_like(u), -u).mean().cpu()")
    checks = _device_checks(check_json, "exercise-1", moved)
    assert checks["placement"]["status"] == "fail", checks["placement"]
    message = checks["placement"]["message"]
    assert "came back on 'cpu'" in message and "a copy to the host at logreg.py:" in message, message


def test_placement_passes_a_numpy_round_trip_moved_back(write_submission, check_json):
    """A copy to the host that comes back (`.cpu().numpy()`, then `.to(X.device)`) runs on a GPU: the meta
    run stops at the copy, the run with values puts every output on the inputs' device (exercise-7's
    numpy-inside train(), placement extended to train() after round 6's blind red team)."""
    round_trip = _variant(write_submission, "exercise-1", "logreg.py",
                          "    return torch.logaddexp(torch.zeros_like(u), -u).mean()  # log(1 + exp(-u)), stable",
                          "    import numpy as np\n"
                          "    value = np.logaddexp(0.0, -u.detach().cpu().numpy()).mean()\n"
                          "    return torch.logaddexp(torch.zeros_like(u), -u).mean() * 0 + torch.tensor(value).to(u)")
    checks = _device_checks(check_json, "exercise-1", round_trip)
    assert checks["placement"]["status"] == "pass", checks["placement"]


def _raising(error):
    def run(device):
        raise error
    return run


@pytest.mark.parametrize("error, verdict", [
    # torch has no meta kernel for the op: a GPU runs it (red team: torch.unique in a label check)
    (NotImplementedError("aten::_unique2: attempted to run this operator with Meta tensors, but there was no fake "
                         "impl or Meta kernel registered."), "inconclusive"),
    # a shape bug raises on the CPU too: the checks of values charge it, placement cannot tell
    (RuntimeError("Attempting to broadcast a dimension of length 16 at -1!"), "inconclusive"),
    (RuntimeError("Tensor on device cpu is not on the expected device meta!"), "error"),
    (RuntimeError("Expected all tensors to be on the same device, but found at least two devices, meta and cpu!"),
     "error"),
    (TypeError("can't convert meta device type tensor to numpy."), "error"),
])
def test_placement_fails_only_errors_about_devices(error, verdict):
    from dldiy.graders.kinds.placement import measure_placement

    assert verdict in measure_placement(_raising(error))
