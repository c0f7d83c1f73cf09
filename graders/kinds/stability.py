"""stability: finite, correct values at extreme inputs (margins or logits of magnitude 1e3).

The measurement is {"cases": [{"name": str, "value": float}, ...]}; each value must be finite and
match the reference's at the same inputs (with the case's own `rtol`/`atol` where the reference's case
carries them; a case marked `finite_only` is judged for finiteness alone). `log(1 + exp(-u))` gives inf at u = -1000; the stable forms
(softplus, logaddexp, log-sum-exp with the max taken out) do not.
"""

from __future__ import annotations

import math
from typing import Any

from ..course.exercise import Check
from ..verdict import Verdict, close, fmt, ratio_hint, versus

NEEDS_REFERENCE = True
_CASE_FIELDS = ("name", "value", "rtol", "atol", "finite_only")  # what judge() reads of the reference's case


def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """What judge() reads of the reference's measurement (expected.json keeps only this)."""
    return {"cases": [{k: c[k] for k in _CASE_FIELDS if k in c} for c in measured["cases"]]}


def judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    rtol = float(check.params.get("rtol", 1e-6))
    atol = float(check.params.get("atol", 1e-8))
    want = {c["name"]: c["value"] for c in expected["cases"]}
    # Per-case settings come from the expectation (the reference's run), never from the submission's.
    settings = {c["name"]: c for c in expected["cases"]}
    for case in measured["cases"]:
        name, value = case["name"], math.nan if case["value"] is None else float(case["value"])
        target = want.get(name)
        if target is None:
            continue
        if not math.isfinite(value):
            return Verdict.failed(f"{name}: measured {fmt(value)}, expected {fmt(target)}: the computation "
                                  "overflows at extreme inputs; use a numerically stable form", case=name)
        if settings[name].get("finite_only"):  # only finiteness is judged here (the values are another check's)
            continue
        if not close(value, target, float(settings[name].get("rtol", rtol)), float(settings[name].get("atol", atol))):
            hint = ratio_hint(value, target)
            return Verdict.failed(f"{name}: {versus(target, value)}." + (f" {hint}" if hint else ""),
                                  case=name)
    if set(want) - {c["name"] for c in measured["cases"]}:
        return Verdict.failed(f"missing cases: {sorted(set(want) - {c['name'] for c in measured['cases']})}")
    return Verdict.passed(f"{len(want)} cases (extreme inputs among them), all finite and correct")
