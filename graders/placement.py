"""placement: outputs follow the inputs' device; runs on any machine, no GPU needed.

The probe runs the model's forward and backward with every input on PyTorch's `meta` device (shapes
and dtypes, no data). A tensor created inside without `device=` (for instance `torch.ones(n, 1)`),
or a hard-coded `.cuda()` / `.cpu()` / `.numpy()`, then raises or leaves an output on another device:
the same code would break, or silently copy, on a GPU.
The measurement is {"error": str} or {"outputs": {name: device}, "input_device": "meta"}.
"""

from __future__ import annotations

from typing import Any, Callable

from .exercise import Check
from .verdict import Verdict

NEEDS_REFERENCE = False


def measure_placement(run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Child side: `run(device)` builds inputs on `device` and returns the named output tensors."""
    try:
        outputs = run("meta")
    except Exception as e:  # noqa: BLE001 - the failure *is* the measurement
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        return {"error": f"{type(e).__name__}: {text}" if text else type(e).__name__}
    return {"input_device": "meta",
            "outputs": {name: str(getattr(t, "device", type(t).__name__)) for name, t in outputs.items()}}


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    what = check.params.get("what", "the forward and backward pass")
    if "error" in measured:
        return Verdict.failed(
            f"with every input on device 'meta', {what} raised {measured['error']}. A tensor created "
            "without device= (write torch.ones(n, 1, device=X.device)), or a hard-coded .cuda()/.cpu()/"
            ".numpy()/.item(), breaks the same way on a GPU.")
    stray = {n: d for n, d in measured["outputs"].items() if d != measured["input_device"]}
    if stray:
        name, device = next(iter(stray.items()))
        return Verdict.failed(f"with inputs on '{measured['input_device']}', {name} came back on '{device}': "
                              "an output does not follow its inputs' device")
    return Verdict.passed(f"{len(measured['outputs'])} outputs follow the inputs' device")
