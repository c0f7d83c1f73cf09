"""divergence: training at a learning rate above the stability limit is reported as divergence.

Gradient descent on a quadratic with Hessian H contracts the error along each eigenvector by
|1 - lr * lambda| per step, so it is stable only for lr < 2 / lambda_max(H). The probe runs the
submission's training loop at lr = factor * 2 / lambda_max with factor > 1 (the exercise computes
lambda_max from its own data) and records the loss history. The history diverges when a loss is
not finite, or when the last loss exceeds `growth` (default 100) times the first.

The check passes when the history diverges: the training loop used lr as given, did not clip or
rescale the step, and reported the divergence by returning its losses (inf and nan included)
rather than raising. It fails when the loop raised, or when the losses did not grow.

Measurement: {"lr": float, "limit": float, "steps": int, "losses": [float | None, ...]}
or {"lr": float, "limit": float, "steps": int, "raised": "ExceptionName: message (file:line)"}.
"""

from __future__ import annotations

import math
from typing import Any

from ..course.exercise import Check
from ..verdict import Verdict, fmt

NEEDS_REFERENCE = False


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    growth = float(check.params.get("growth", 100.0))
    lr, limit = float(measured["lr"]), float(measured["limit"])
    where = f"at lr = {fmt(lr)} ({fmt(lr / limit)} x the stability limit 2/lambda_max = {fmt(limit)})"
    if "raised" in measured:
        return Verdict.failed(
            f"{where}, training raised {measured['raised']} instead of reporting divergence. Above the "
            "stability limit gradient descent must diverge; train() should still return its loss history, "
            "inf and nan included, and let the caller read the divergence from it.", lr=lr)
    losses = [math.nan if v is None else float(v) for v in measured["losses"]]
    if not losses:
        return Verdict.failed(f"{where}, training returned no losses, so no divergence can be read from them")
    bad = next((k for k, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None:
        return Verdict.passed(f"divergence {where}, as expected: the loss goes from {fmt(losses[0])} to "
                              f"{fmt(losses[bad])} at step {bad}", step=bad)
    if losses[-1] > growth * losses[0]:
        return Verdict.passed(f"divergence {where}, as expected: the loss grows from {fmt(losses[0])} to "
                              f"{fmt(losses[-1])} in {len(losses)} steps", growth=losses[-1] / losses[0])
    return Verdict.failed(
        f"no divergence {where}: the loss went from {fmt(losses[0])} to {fmt(losses[-1])} in {len(losses)} "
        f"steps (divergence means a nan/inf or a growth beyond x{fmt(growth)}). Plain gradient descent "
        "diverges at this rate: is lr used as given, or is the step rescaled, clipped or capped?",
        last=losses[-1], first=losses[0])
