"""agreement: named arrays agree with the reference's (or with torch's own op) on the same inputs.

The measurement is {"cases": [{"name": str, "shape": [...], "values": [...], "target": [...]?}]}, one
case per configuration (a shape, a stride, a design matrix...), in a fixed order; a case with an
"error" (the submission raised on that configuration only) fails with that message. Each case's values
are compared with the expectation's `target` when the probe measured one (torch's own op, computed in
the reference's untampered child), else with the reference's `values`:
    |measured - expected| <= atol + rtol * |expected|, entrywise.
The message names the first configuration that disagrees, the worst entry and a likely cause.
For a trajectory (rows = steps), `first = true` names the first entry that disagrees in row-major
order instead (the first departure is the cause, later ones its consequence), and `axes = ["step",
"entry"]` names the index's axes in the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..course.exercise import Check
from ..verdict import Verdict, array_ratio_hint, as_array, unravel, versus

NEEDS_REFERENCE = True


def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """What judge() reads of the reference's measurement (expected.json keeps only this): each case's
    name, shape and the values compared against (the `target` where one was measured, else `values`)."""
    return {"cases": [{"name": c["name"], **({"shape": c["shape"]} if "shape" in c else {}),
                       **({"target": c["target"]} if "target" in c else {"values": c["values"]})}
                      for c in measured["cases"]]}


def judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    rtol = float(check.params.get("rtol", 1e-5))
    atol = float(check.params.get("atol", 1e-8))
    against = check.params.get("against", "the reference")
    first = bool(check.params.get("first", False))
    axes = list(check.params.get("axes", []))
    got = {c["name"]: c for c in measured["cases"]}
    for want in expected["cases"]:
        name = want["name"]
        case = got.get(name)
        if case is None:
            return Verdict.failed(f"{name}: no value was measured")
        if case.get("error"):  # the call raised on this configuration: say so, as a failure of this case
            return Verdict.failed(f"{name}: {case['error']}", case=name)
        e = as_array(want["target"] if "target" in want else want["values"])
        m = as_array(case["values"])
        shape = want.get("shape") or [e.size]
        if m.size != e.size or list(case.get("shape") or [m.size]) != list(shape):
            return Verdict.failed(f"{name}: shape {tuple(case.get('shape') or [m.size])}, expected {tuple(shape)}",
                                  case=name)
        diff = np.abs(m - e)
        bad = ~(diff <= atol + rtol * np.abs(e))
        if bad.any():
            i = int(np.argmax(bad)) if first else int(np.argmax(np.where(bad, np.nan_to_num(diff, nan=np.inf), -1)))
            overflow = bool((~np.isfinite(m) & np.isfinite(e)).any())
            hint = ("The values are not finite where the expected ones are: an overflow or a 0/0 on the way (an "
                    "exp of a large number, a log of 0, a ratio of two infinities)?") if overflow else \
                "" if first else array_ratio_hint(m, e) if np.isfinite(m).all() else "The values are not finite."
            return Verdict.failed(
                f"{name}: differs from {against} at {int(bad.sum())} of {e.size} entries; {'first' if first else 'worst'} "
                f"at {_where(unravel(i, shape), axes)}: {versus(e[i], m[i])}."
                + (f" {hint}" if hint else ""), diagnosed=overflow, case=name, max_abs_diff=float(diff[i]))
    return Verdict.passed(f"{len(expected['cases'])} case(s) agree with {against}")


def _where(index: tuple[int, ...], axes: list[str]) -> str:
    """An index as the message reads it: "step 3, entry 5" when the axes are named, else "index (3, 5)"."""
    if axes and len(axes) >= len(index):
        return ", ".join(f"{axis} {i}" for axis, i in zip(axes, index))
    return f"index {index}"
