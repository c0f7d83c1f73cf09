"""first-loss: the training pipeline's first loss and a short trajectory, against the reference's.

The measurement is {"steps": [0, 1, 2, 5, ...], "losses": [...], "n": examples}. The first loss
catches a wrong loss, labels or initialisation; the later steps catch what leaves the first loss
unchanged (a missing zero_grad, a learning rate ignored, step() before backward()).
A loss matches when |measured - expected| <= atol + rtol * |expected|.
"""

from __future__ import annotations

import math
from typing import Any

from .exercise import Check
from .verdict import Verdict, first_mismatch, fmt, ratio_hint

NEEDS_REFERENCE = True


def judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    rtol = float(check.params.get("rtol", 1e-4))
    atol = float(check.params.get("atol", 1e-6))
    steps, losses = list(measured["steps"]), [_f(v) for v in measured["losses"]]
    want = [_f(v) for v in expected["losses"]]
    if steps != list(expected["steps"]) or len(losses) != len(want):
        return Verdict.failed(f"the trajectory has losses at steps {steps}; expected steps {expected['steps']}")
    i = first_mismatch(losses, want, rtol, atol)
    if i is None:
        later = ", ".join(map(str, steps[1:]))
        return Verdict.passed(f"first loss {fmt(losses[0])}" + (f", steps {later} match" if later else ""),
                              first_loss=losses[0])
    details = {"step": steps[i], "expected": want[i], "measured": losses[i]}
    if math.isnan(losses[i]) or math.isinf(losses[i]):
        what = "the first loss" if i == 0 else f"the loss at step {steps[i]}"
        return Verdict.failed(f"{what} is {fmt(losses[i])} (expected {fmt(want[i])}): the computation "
                              "overflows or diverges", **details)
    if i == 0:
        ratio = f" (ratio {fmt(losses[0] / want[0])})" if want[0] else ""
        hint = ratio_hint(losses[0], want[0], measured.get("n"))
        return Verdict.failed(f"first loss: expected {fmt(want[0])}, measured {fmt(losses[0])}{ratio}. "
                              + (hint or "The loss at initialisation differs: the loss formula, the labels or "
                                         "the data handling."), **details)
    return Verdict.failed(
        f"the first loss matches ({fmt(want[0])}) but the trajectory departs at step {steps[i]}: expected "
        f"{fmt(want[i])}, measured {fmt(losses[i])}. The update differs: the gradient, the learning rate, "
        "gradients accumulating between steps, or the order of the steps.", **details)


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)
