"""parity: forward and backward agree on CPU and on an accelerator (CUDA, else MPS).

Measured with TF32 off and deterministic algorithms on, so differences come from the code, not from
reduced-precision matmuls. Judged with torch.testing.assert_close's default tolerances for the dtype
(float32: rtol 1.3e-6, atol 1e-5; float64: 1e-7, 1e-7), which the spec may widen.
With no accelerator the check is skipped with that reason: a skip is never a pass.
The measurement is {"skip": reason} or {"device": str, "outputs": [{"name", "dtype", "shape", "cpu", "accel"}]}.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..course.exercise import Check
from ..verdict import Verdict, as_array, fmt, unravel

NEEDS_REFERENCE = False
DEFAULT_TOLERANCES = {"float64": (1e-7, 1e-7), "float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5),
                      "bfloat16": (1.6e-2, 1e-5)}
MAX_VALUES = 100_000  # per output, to keep the child's message small


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
    accel = run(device)
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
    if not measured.get("outputs"):  # a degenerate measurement earns nothing
        return Verdict.failed("no output was measured on both devices: there is nothing to compare")
    worst = 0.0
    for out in measured["outputs"]:
        rtol, atol = DEFAULT_TOLERANCES.get(out["dtype"], DEFAULT_TOLERANCES["float32"])
        rtol, atol = float(check.params.get("rtol", rtol)), float(check.params.get("atol", atol))
        c, a = as_array(out["cpu"]), as_array(out["accel"])
        if not out.get("accel_device", "").startswith(measured["device"].split(" ")[0]):
            return Verdict.failed(f"{out['name']} came back on {out.get('accel_device')} when the inputs were "
                                  f"on {measured['device']}: a hard-coded device inside the code?")
        diff = np.abs(c - a)
        bad = ~(diff <= atol + rtol * np.abs(c))
        worst = max(worst, float(np.nanmax(diff, initial=0.0)))
        if bad.any():
            i = int(np.argmax(np.where(bad, np.nan_to_num(diff, nan=np.inf), -1)))
            return Verdict.failed(
                f"{out['name']} differs between CPU and {measured['device']} at {int(bad.sum())} of {c.size} "
                f"entries; worst at index {unravel(i, out['shape'])}: cpu {fmt(c[i])}, accelerator {fmt(a[i])} "
                f"(|diff| {fmt(diff[i])}, allowed {fmt(atol + rtol * abs(c[i]))} for {out['dtype']}, TF32 off)",
                max_abs_diff=float(diff[i]))
    return Verdict.passed(f"CPU and {measured['device']} agree (max |diff| {fmt(worst)}, TF32 off)",
                          max_abs_diff=worst)
