"""agreement: named arrays agree with the reference's (or with torch's own op) on the same inputs.

The measurement is {"cases": [{"name": str, "shape": [...], "values": [...], "target": [...]?}]}, one
case per configuration (a shape, a stride, a design matrix...), in a fixed order; a case with an
"error" (the submission raised on that configuration only) fails with that message; a case the reference
marks "once" runs at the first seed of a student's process only and may be missing at the others. Each case's values
are compared with the expectation's `target` when the probe measured one (torch's own op, computed in
the reference's untampered child), else with the reference's `values`:
    |measured - expected| <= atol + rtol * |expected|, entrywise.
The message names the first configuration that disagrees, the worst entry and, where the measurement
shows one, a cause:
  - a case may declare `factors`, [{"ratio": r, "says": text}]: the ratios measured/expected that a
    known mistake produces there, computed by the harness from that case's own data (clipping: the
    factor min(1, max_norm / norm) left out, or not capped at 1). A constant ratio equal to a declared
    one is diagnosed with its text; one that matches none is said plainly, without a guess;
  - the check's `case_hints` (a table: a part of the case's name -> hint) gives the hint for the cases
    whose name holds that part (a gradient's cases get the backward's hint, not the forward's), in
    place of the check's own hint;
  - a vector of the wrong length shows its values beside the expected ones (a run that stopped an
    epoch early or late reads at once);
  - a case may name what it is compared with, `against` (a difference of two calls compared with 0), in
    place of the check's;
  - the check's `case_tolerances`, [{"parts": [...], "rtol": r, "atol": a}], gives the tolerance of the
    cases whose name holds every one of those parts (the first entry that matches), in place of the
    check's (a float64 softmax agrees with torch's to ~1e-15, where the check's float32 cases need 1e-5);
  - a case may carry its own `hint`, computed by the harness from what it measured (a trajectory that
    departs from torch's by a relative 1e-9 only: float32 state, not the formula), in place of the
    check's own and of `case_hints`.
A check that covers several functions declares them, `parts = ["softmax", "cross_entropy", ...]` (a case
belongs to the part its name starts with, "softmax, n=6, ..."): every case is then judged, each failing
function costs its equal share of the check's points (one bug, one deduction: one wrong op does not take the
points of the others), and the message gives the first failing case of each (details `parts_failed`).
For a trajectory (rows = steps), `first = true` names the first entry that disagrees in row-major
order instead (the first departure is the cause, later ones its consequence), and `axes = ["step",
"entry"]` names the index's axes in the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..course.exercise import Check
from ..verdict import Verdict, array_ratio_hint, as_array, case_hint, fmt, unravel, versus

NEEDS_REFERENCE = True


def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """What judge() reads of the reference's measurement (expected.json keeps only this): each case's
    name, shape and the values compared against (the `target` where one was measured, else `values`)."""
    return {"cases": [{"name": c["name"], **({"shape": c["shape"]} if "shape" in c else {}),
                       **({"target": c["target"]} if "target" in c else {"values": c["values"]}),
                       **({"once": True} if c.get("once") else {})}
                      for c in measured["cases"]]}


def judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    rtol = float(check.params.get("rtol", 1e-5))
    atol = float(check.params.get("atol", 1e-8))
    # (course8 trial: a check of torch's own op said "agree with the reference"): the spec's `against`, else what the
    # expectation holds, the harness's own target where every case has one
    targets = bool(expected.get("cases")) and all("target" in c for c in expected["cases"])
    against = check.params.get("against", "the target the harness computed" if targets else "the reference")
    got = {c["name"]: c for c in measured["cases"]}
    parts = [str(part) for part in check.params.get("parts") or ()]
    failures: dict[str, Verdict] = {}  # the first failing case of each part (the spec's `parts`), in order
    for want in expected["cases"]:
        name = want["name"]
        part = part_of(name, parts)
        if part is not None and part in failures:
            continue  # that function is charged already, by its first failing case
        verdict = _judge_case(check, want, got.get(name), rtol, atol, against)
        if verdict is None:
            continue
        if part is None:  # a case of no declared part: the whole check fails on it, as a check without parts
            return verdict
        failures[part] = verdict
    if failures:
        return _charged_per_part(failures, parts)
    return Verdict.passed(f"{len(expected['cases'])} case(s) agree with {against}")


def part_of(name: str, parts: list[str]) -> str | None:
    """The part (an API function: the spec's `parts`) whose cases are named "<part>, ...", or None."""
    return next((part for part in parts if name == part or name.startswith(f"{part}, ")), None)


def _charged_per_part(failures: dict[str, Verdict], parts: list[str]) -> Verdict:
    """One bug, one deduction: a check that covers several functions (the spec's `parts`, each worth an equal
    share of its points) charges each failing function's share, said with the first failing case of each;
    graders/judge.py's _combine reads `parts_failed` (the union over the seeds) for the points."""
    failed = [part for part in parts if part in failures]
    verdict = failures[failed[0]]
    others = [f"{part}: {failures[part].message.splitlines()[0]}" for part in failed[1:]]
    agree = [part for part in parts if part not in failures]
    verdict.message += (f"\nCharged per function: {len(failed)} of {len(parts)} ({', '.join(failed)}) disagree, each "
                        f"losing its 1/{len(parts)} of the points" + (f"; {', '.join(agree)} agree" if agree else "")
                        + "." + "".join(f"\nAlso {line}" for line in others))
    verdict.details.update(parts_failed=failed, parts=len(parts))
    return verdict


def _judge_case(check: Check, want: dict[str, Any], case: dict[str, Any] | None, rtol: float, atol: float,
                against: str) -> Verdict | None:
    """The failure of one expected case (None: it agrees, or it is a "once" case this process left out)."""
    first = bool(check.params.get("first", False))
    axes = list(check.params.get("axes", []))
    name = want["name"]
    if case is None and want.get("once"):  # run at the first seed of a student's process only (a property of
        return None                        # the function alone): a process that ran it earlier leaves it out
    if case is None:
        return Verdict.failed(f"{name}: no value was measured", case=name)
    own = case.get("hint") if isinstance(case.get("hint"), str) and case.get("hint") else None
    if case.get("error"):  # the call raised on this configuration: say so, as a failure of this case
        return _failed(check, f"{name}: {case['error']}", case=name, hint=own)
    e = as_array(want["target"] if "target" in want else want["values"])
    m = as_array(case["values"])
    shape = want.get("shape") or [e.size]
    if m.size != e.size or list(case.get("shape") or [m.size]) != list(shape):
        values = f": measured {_listed(m)}, expected {_listed(e)}" if len(shape) == 1 and \
            len(case.get("shape") or [m.size]) == 1 else ""
        return _failed(check, f"{name}: shape {tuple(case.get('shape') or [m.size])}, expected {tuple(shape)}"
                       f"{values}", case=name, hint=own)
    r, a = _tolerance(check, name, rtol, atol)
    diff = np.abs(m - e)
    bad = ~(diff <= a + r * np.abs(e))
    if not bad.any():
        return None
    i = int(np.argmax(bad)) if first else int(np.argmax(np.where(bad, np.nan_to_num(diff, nan=np.inf), -1)))
    overflow = bool((~np.isfinite(m) & np.isfinite(e)).any())
    factor, known = (None, False) if overflow or first or not np.isfinite(m).all() else \
        _factor(m, e, case.get("factors"))
    hint = ("The values are not finite where the expected ones are: an overflow or a 0/0 on the way (an "
            "exp of a large number, a log of 0, a ratio of two infinities)?") if overflow else \
        factor if factor is not None else \
        "" if first else array_ratio_hint(m, e) if np.isfinite(m).all() else "The values are not finite."
    still = _stood_still(m, e, shape)
    return _failed(
        check, f"{name}: differs from {case.get('against') or against} at {int(bad.sum())} of {e.size} entries; "
        f"{'first' if first else 'worst'} at {_where(unravel(i, shape), axes)}: {versus(e[i], m[i])}."
        + (" Every row equals the first: nothing moved." if still else "")
        + (f" {hint}" if hint else ""), diagnosed=overflow or known, case=name, hint=own,
        max_abs_diff=float(diff[i]), **({"degenerate": True} if still else {}))


def _tolerance(check: Check, name: str, rtol: float, atol: float) -> tuple[float, float]:
    """(rtol, atol) of the case `name`: the first `case_tolerances` entry whose parts all occur in it, else the check's."""
    for entry in check.params.get("case_tolerances") or ():
        if isinstance(entry, dict) and all(str(part) in name for part in entry.get("parts", ())):
            return float(entry.get("rtol", rtol)), float(entry.get("atol", atol))
    return rtol, atol


def _stood_still(m: np.ndarray, e: np.ndarray, shape: list[int]) -> bool:
    """A trajectory (rows = steps) measured standing still where the expected one moves: a step that does
    nothing. Marked `degenerate`, so that no other check takes this failure for a bug to note instead of
    charging (graders/judge.py's charged_by: a stub is not a bug)."""
    if len(shape) != 2 or shape[0] < 2:
        return False
    m2, e2 = m.reshape(shape), e.reshape(shape)
    return bool(np.array_equal(m2, np.broadcast_to(m2[:1], m2.shape)) and not np.array_equal(e2, np.broadcast_to(e2[:1], e2.shape)))


def _failed(check: Check, message: str, case: str, diagnosed: bool = False, hint: str | None = None,
            **details: Any) -> Verdict:
    """A failure of `case`; the case's own `hint`, else the check's `case_hints` entry for it, if any, is its
    hint (in place of the check's own, which names another part of the computation)."""
    own = hint or case_hint(check.params.get("case_hints"), case)
    if own is not None and not diagnosed:
        return Verdict.failed(message + (f"\nHint: {own}" if own else ""), diagnosed=True, case=case, **details)
    return Verdict.failed(message, diagnosed=diagnosed, case=case, **details)


def _factor(m: np.ndarray, e: np.ndarray, factors: Any) -> tuple[str | None, bool]:
    """With declared `factors`: the diagnosis of a constant ratio measured/expected that one of them
    explains (several that coincide are all said), the ratio alone when none does (no guess at a cause
    the harness did not declare), with whether a factor explained it. None without declared factors,
    and for a ratio that is not constant or is -1 or 1 (the generic reading applies: which entries
    agree, a sign error)."""
    if not factors:
        return None, False
    mask = np.abs(e) > 1e-6
    if mask.sum() < 1:
        return None, False
    r = m[mask] / e[mask]
    mean = float(np.mean(r))
    if abs(mean) <= 1e-12 or np.std(r) > 1e-3 * abs(mean):
        return None, False
    said = [f["says"] for f in factors if abs(float(f["ratio"]) - mean) <= 1e-3 * abs(mean)]
    if not said:
        if abs(mean + 1) < 1e-3 or abs(mean - 1) < 1e-3:
            return None, False
        return (f"The ratio measured/expected is {fmt(mean)} at every entry." if mask.sum() >= 2 else ""), False
    return f"The ratio measured/expected is {fmt(mean)} at every entry: " + "; or ".join(said) + ".", True


def _listed(values: np.ndarray, most: int = 8) -> str:
    """A short vector as the message shows it: [5, 4, 0], or its first values and its length."""
    shown = ", ".join(fmt(v) for v in values[:most])
    return f"[{shown}]" if values.size <= most else f"[{shown}, ...] ({values.size} values)"


def _where(index: tuple[int, ...], axes: list[str]) -> str:
    """An index as the message reads it: "step 3, entry 5" when the axes are named, else "index (3, 5)"."""
    if axes and len(axes) >= len(index):
        return ", ".join(f"{axis} {i}" for axis, i in zip(axes, index))
    return f"index {index}"
