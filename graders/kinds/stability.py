"""stability: finite, correct values at extreme inputs (margins or logits of magnitude 1e3).

The measurement is {"cases": [{"name": str, "value": float}, ...]}; each value must be finite and
match the reference's at the same inputs (with the case's own `rtol`/`atol` where the reference's case
carries them; a case marked `finite_only` is judged for finiteness alone; a case's `why` is the likely cause
said when it is not finite; the spec's `case_hints`, {a part of a case's name: likely cause}, the cause said when
a case's value is wrong; a case marked `once` runs at the first seed of a student's process only, and may be
missing at the others; a case the harness marks `excused` failed as another function does, whose check charges
it: it is not judged, and the measurement's note says why). `log(1 + exp(-u))` gives inf at u = -1000; the stable forms
(softplus, logaddexp, log-sum-exp with the max taken out) do not.

One bug, one deduction: a case marked `base` is the function at the spec's own configuration, whose
value another check charges (the check's `base_check`, exercise-1's first-loss). When it differs from the reference's, the
formula is wrong everywhere and that is not this check's to charge: every case is then judged for
finiteness alone, and the verdict says so. A stable, correct-at-the-base function is judged in full.
Likewise per function: a case may name its `part` (exercise-4's bce_with_logits), and the spec's `charged_by =
{part: check}` the check that measures that function's formula; where that check failed on that very function
(its `parts_failed`), a wrong but finite value of the part's cases is said in a note, not charged (one part only).
"""

from __future__ import annotations

import math
from typing import Any

from ..course.exercise import Check
from ..verdict import Verdict, case_hint, close, fmt, ratio_hint, versus

NEEDS_REFERENCE = True
_CASE_FIELDS = ("name", "value", "rtol", "atol", "finite_only", "base", "why", "once", "part")  # what judge() reads of the reference's case


def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """What judge() reads of the reference's measurement (expected.json keeps only this)."""
    return {"cases": [{k: c[k] for k in _CASE_FIELDS if k in c} for c in measured["cases"]]}


def judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    rtol = float(check.params.get("rtol", 1e-6))
    atol = float(check.params.get("atol", 1e-8))
    want = {c["name"]: c["value"] for c in expected["cases"]}
    # Per-case settings come from the expectation (the reference's run), never from the submission's.
    settings = {c["name"]: c for c in expected["cases"]}
    # (not when the base check passed for this submission: then nobody else charges a wrong base value)
    wrong_base = "" if check.params.get("base_check_passed") else \
        _wrong_base(measured, settings, rtol, atol, str(check.params.get("base_check", "another check")))
    excused, owner = _charged_part(measured, settings, check)
    noted: list[str] = []  # excused cases whose values differ: said, not charged
    for case in measured["cases"]:
        name, value = case["name"], math.nan if case["value"] is None else float(case["value"])
        target = want.get(name)
        if target is None or case.get("excused"):  # excused: the harness's word, a failure another check charges
            continue
        if not math.isfinite(value):
            why = settings[name].get("why")  # the case's own likely cause, said instead of the check's hint
            return Verdict.failed(f"{name}: measured {fmt(value)}, expected {fmt(target)}: "
                                  + (str(why) if why else "the computation overflows at extreme inputs; use a "
                                                          "numerically stable form"), diagnosed=bool(why), case=name)
        if settings[name].get("finite_only") or wrong_base:  # only finiteness (the values are another check's)
            continue
        if not close(value, target, float(settings[name].get("rtol", rtol)), float(settings[name].get("atol", atol))):
            if excused is not None and settings[name].get("part") == excused:
                noted.append(f"{name}: {versus(target, value)}")
                continue
            said = case_hint(check.params.get("case_hints"), name)  # the spec's likely cause for a family of cases
            hint = said or ratio_hint(value, target)
            return Verdict.failed(f"{name}: {versus(target, value)}." + (f" {hint}" if hint else ""),
                                  case=name, diagnosed=bool(said))
    # a case the reference marks "once" runs at the first seed of a process only (a property of the function alone,
    # not of the seed's data): a process that ran it at an earlier seed may leave it out here
    missing = set(want) - {c["name"] for c in measured["cases"]} - {n for n in want if settings[n].get("once")}
    if missing:
        return Verdict.failed(f"missing cases: {sorted(missing)}")
    if wrong_base:
        values = [case["value"] for case in measured["cases"] if case["name"] in want and not settings[case["name"]].get("finite_only")]
        if len(set(values)) == 1 and len(set(want[n] for n in want if not settings[n].get("finite_only"))) > 1:
            return Verdict.failed(f"every value is {fmt(float(values[0]))}, on inputs where the reference's differ: a "
                                  "function that ignores its inputs is not judged stable (a constant earns nothing)",
                                  diagnosed=True)
        return Verdict.passed(f"{len(want)} cases (extreme inputs among them), all finite; their values were not "
                              f"judged: {wrong_base}")
    if noted:
        return Verdict.passed(f"{len(want)} cases (extreme inputs among them), all finite; {len(noted)} value(s) of "
                              f"{excused} differ, which check {owner!r} charges already (a wrong formula, not an "
                              f"instability: one bug, one deduction). Note: {noted[0]}")
    return Verdict.passed(f"{len(want)} cases (extreme inputs among them), all finite and correct")


def _charged_part(measured: dict[str, Any], settings: dict[str, dict[str, Any]],
                  check: Check) -> tuple[str | None, str | None]:
    """(the part, its check): the function (a case's `part`, exercise-4's bce_with_logits) whose own check (the
    spec's charged_by = {part: check}) failed on that very function (graders/judge.py's failed_parts: agreement's
    `parts_failed`), so that its values here are judged for finiteness alone; only ONE part
    (verdict.charged_elsewhere's rule: code that stubs every function keeps nothing). (None, None) otherwise."""
    charged_by = check.params.get("charged_by") or {}
    failed_parts = check.params.get("failed_parts") or {}
    parts = sorted({str(settings[c["name"]]["part"]) for c in measured["cases"]
                    if c["name"] in settings and settings[c["name"]].get("part")})
    owners = {part: str(charged_by[part]) for part in parts
              if part in charged_by and part in (failed_parts.get(str(charged_by[part])) or ())}
    if len(owners) != 1:
        return None, None
    part, owner = next(iter(owners.items()))
    return part, owner


def _wrong_base(measured: dict[str, Any], settings: dict[str, dict[str, Any]], rtol: float, atol: float,
                charged_by: str) -> str:
    """Why the values are not this check's to judge ("" when they are): the reference's `base` case
    (the spec's own configuration) measured differently, a wrong formula another check charges."""
    for case in measured["cases"]:
        name = case["name"]
        if not settings.get(name, {}).get("base"):
            continue
        value, target = math.nan if case["value"] is None else float(case["value"]), settings[name]["value"]
        # the base case's own tolerance where it carries one: the base check's (a loss in float32 is off there)
        if math.isfinite(value) and not close(value, target, float(settings[name].get("rtol", rtol)),
                                              float(settings[name].get("atol", atol))):
            return (f"{name} is {fmt(value)}, not {fmt(target)}: the formula differs at the spec's own "
                    f"configuration, which {charged_by} charges (one bug, one deduction)")
    return ""
