"""parity: forward and backward agree on CPU and on an accelerator (CUDA, else MPS).

Measured with TF32 off and deterministic algorithms on, so differences come from the code, not from
reduced-precision matmuls. Judged with torch.testing.assert_close's default tolerances for the dtype
(float32: rtol 1.3e-6, atol 1e-5; float64: 1e-7, 1e-7), which the spec may widen.
With no accelerator the check is skipped with that reason: a skip is never a pass.
The measurement is {"skip": reason}, {"device": str, "outputs": [{"name", "dtype", "shape", "cpu", "accel"}]},
or {"device": str, "mixed_devices": what raised} where the accelerator's run stopped at two devices meeting.

One bug, one deduction: two devices meeting (a tensor made on the CPU inside the code) is placement's
to charge (the spec's `charged_by = {devices = "placement"}`). Where that check failed, parity says it
could not measure agreement (inconclusive: the instructor's skip policy decides), so a device bug costs
the same on a GPU grader as on a CPU one; where placement passed (its probe could not see it), parity
charges it. Values that are nan, or the same infinity, on both devices agree: they are a value check's
business, not a disagreement; where no value is finite on either device there is nothing to compare,
and parity says so.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from ..course.exercise import Check
from ..verdict import Verdict, as_array, charged_elsewhere, fmt, unravel

NEEDS_REFERENCE = False
DEFAULT_TOLERANCES = {"float64": (1e-7, 1e-7), "float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5),
                      "bfloat16": (1.6e-2, 1e-5)}
READS_OTHER_CHECKS = True  # judged after the others, with their failures (graders/judge.py): see `compared`
MAX_VALUES = 100_000  # per output, to keep the child's message small
# what torch raises where tensors of two devices meet in one operation
MIXED_DEVICES = re.compile(r"same device|at least two devices|different from other tensors on|"
                           r"is not on the expected device|should be the same or input should be")


def accelerator() -> tuple[str | None, str]:
    """The accelerator to compare against, or None and why not."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_name(0)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps", "Apple MPS"
    return None, "no CUDA or MPS device on this machine, so CPU/GPU parity was not measured"


def measure_parity(run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Child side: `run(device)` builds seeded inputs on `device`, returns named output tensors."""
    import torch

    device, name = accelerator()
    if device is None:
        return {"skip": name}
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True)
    cpu = run("cpu")
    try:
        accel = run(device)
    except Exception as e:  # the student's error (a RemoteError: its message names their line) or torch's
        text = str(getattr(e, "message", "") or f"{type(e).__name__}: {e}")
        if not MIXED_DEVICES.search(text):
            raise
        return {"device": f"{device} ({name})", "mixed_devices": text[:500]}
    outputs = []
    for key, c in cpu.items():
        a = accel[key]
        outputs.append({"name": key, "dtype": str(c.dtype).removeprefix("torch."), "shape": list(c.shape),
                        "accel_device": str(a.device),
                        "cpu": c.detach().double().reshape(-1)[:MAX_VALUES].tolist(),
                        "accel": a.detach().cpu().double().reshape(-1)[:MAX_VALUES].tolist()})
    return {"device": f"{device} ({name})", "outputs": outputs}


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    if "skip" in measured:
        return Verdict.skipped(str(measured["skip"]))
    if "mixed_devices" in measured:
        mixed = f"on {measured['device']} the code mixes devices: {measured['mixed_devices']}"
        owner = charged_elsewhere(check.params.get("charged_by") or {}, check.params.get("failed_checks") or (),
                                  ["devices"])[0]
        if owner is not None:
            return Verdict.skipped(f"inconclusive: {mixed}. Check {owner!r} charges that already; whether "
                                   f"CPU and GPU agree could not be measured")
        return Verdict.failed(f"{mixed}. A tensor made without device= (torch.zeros, torch.tensor) or a "
                              f"hard-coded .cpu()/.cuda() stays on one device whatever the inputs' device",
                              diagnosed=True)
    if not measured.get("outputs"):  # a degenerate measurement earns nothing
        return Verdict.failed("no output was measured on both devices: there is nothing to compare")
    worst = 0.0
    compared = 0
    for out in measured["outputs"]:
        rtol, atol = DEFAULT_TOLERANCES.get(out["dtype"], DEFAULT_TOLERANCES["float32"])
        rtol, atol = float(check.params.get("rtol", rtol)), float(check.params.get("atol", atol))
        c, a = as_array(out["cpu"]), as_array(out["accel"])
        if not out.get("accel_device", "").startswith(measured["device"].split(" ")[0]):
            return Verdict.failed(f"{out['name']} came back on {out.get('accel_device')} when the inputs were "
                                  f"on {measured['device']}: a hard-coded device inside the code?")
        same = (c == a) | (np.isnan(c) & np.isnan(a))  # nan on both, or the same infinity: they agree
        finite = np.isfinite(c) & np.isfinite(a)
        compared += int(finite.sum())
        with np.errstate(invalid="ignore"):  # inf - inf: nan, read as a difference unless `same`
            diff = np.where(same, 0.0, np.abs(c - a))
            bad = ~same & (~finite | ~(diff <= atol + rtol * np.abs(c)))  # inf against -inf, or a number
        worst = max(worst, float(np.nanmax(np.where(finite, diff, 0.0), initial=0.0)))
        if bad.any():
            i = int(np.argmax(np.where(bad, np.nan_to_num(diff, nan=np.inf), -1)))
            return Verdict.failed(
                f"{out['name']} differs between CPU and {measured['device']} at {int(bad.sum())} of {c.size} "
                f"entries; worst at index {unravel(i, out['shape'])}: cpu {fmt(c[i])}, accelerator {fmt(a[i])} "
                f"(|diff| {fmt(diff[i])}, allowed {fmt(atol + rtol * abs(c[i]))} for {out['dtype']}, TF32 off)",
                max_abs_diff=float(diff[i]))
    if not compared:
        nowhere = (f"no value is finite on either device (nan or inf everywhere), so CPU and {measured['device']} "
                   "agreement could not be measured")
        if not check.params.get("other_failures"):
            # a skip at will (integrity round 8, placement's twin): nan for the probe's inputs alone, where every
            # other check passed, would take this check out of the maximum; no other check charges such values
            return Verdict.failed(f"{nowhere}, and every other check passes: nan or inf for the probe's own inputs "
                                  "alone, where valid inputs of any shape or size must give numbers")
        return Verdict.skipped(f"inconclusive: {nowhere}; the values themselves are the other checks' to judge")
    return Verdict.passed(f"CPU and {measured['device']} agree (max |diff| {fmt(worst)}, TF32 off)",
                          max_abs_diff=worst)
