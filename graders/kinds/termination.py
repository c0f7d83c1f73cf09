"""termination: an iterative algorithm stops when, and only when, it should, and within its bound.

For an algorithm that declares convergence (the perceptron: an epoch without a mistake), two claims
can be checked independently of the submission's own bookkeeping:
  - a convergence claim is true: the harness recounts the errors of the returned parameters
    (`errors`, e.g. training points with t_i <w, x~_i> <= 0) and finds none;
  - on a problem that is solvable (`should_converge = true`, the default) it converges within its
    budget and after at most `bound` updates, where the bound is a theorem's (Novikoff:
    updates <= (R / gamma)^2) computed from the data in the *reference's* child and read from the
    expectation, never from the submission's measurement;
  - on a problem that is not (`should_converge = false`, e.g. overlapping classes) it does not
    claim convergence.

Measurement: {"converged": bool (the submission's claim), "errors": int, "n": int, "updates": int,
"epochs": int, "budget": int, "last": int (optional: the updates of the last epoch run)}; the reference's
may add "bound": float and "bound_text": str. A run that claims no convergence and stopped before its
budget is said to have stopped early (with its recounted errors), not to have run out of epochs.
"""

from __future__ import annotations

from typing import Any

from ..course.exercise import Check
from ..verdict import Verdict, fmt

NEEDS_REFERENCE = True


def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """What judge() reads of the reference's measurement (its convergence and Novikoff bound), plus the
    hyperplane the decision-boundary picture draws beside the student's (graders/plots.py)."""
    kept: dict[str, Any] = {k: measured[k] for k in ("converged", "bound", "bound_text") if k in measured}
    if isinstance(measured.get("boundary"), dict) and "w" in measured["boundary"]:
        kept["boundary"] = {"w": measured["boundary"]["w"]}
    return kept


def judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    should_converge = bool(check.params.get("should_converge", True))
    converged, errors, n = bool(measured["converged"]), int(measured["errors"]), int(measured["n"])
    updates, epochs, budget = int(measured["updates"]), int(measured["epochs"]), int(measured["budget"])
    ran = f"after {epochs} epoch(s) and {updates} update(s)"
    if converged and errors:
        return Verdict.failed(
            f"claims convergence {ran}, but the returned parameters misclassify {errors} of {n} training "
            "points (recounted independently): the convergence test, or the mistake count, is wrong",
            errors=errors)
    if not should_converge:
        if expected.get("converged"):
            return Verdict("error", "the reference converged on this data, so it is separable: the exercise's "
                                    "overlapping data is wrong (this is not the submission's fault)")
        if converged:
            return Verdict.failed(f"claims convergence {ran} on data that is not linearly separable (the "
                                  "reference does not converge in the same budget)")
        return Verdict.passed(f"no convergence claimed within the budget of {budget} epochs ({errors} of {n} "
                              "points still misclassified), as expected on overlapping classes")
    bound = expected.get("bound")
    bound_text = expected.get("bound_text") or (f"the bound {fmt(bound)}" if bound is not None else "")
    if not converged and epochs < budget:  # it stopped on its own, yet its last epoch had mistakes
        last = measured.get("last")
        counted = f"{int(last)} update(s) in the last one, {updates} in all" if last is not None else f"{updates} update(s)"
        why = (f"The returned parameters do separate the data (0 of {n} errors, recounted), but the epoch without a "
               "mistake that shows it was never run, so no convergence is claimed.") if errors == 0 \
            else f"The returned parameters misclassify {errors} of {n} training points (recounted)."
        return Verdict.failed(
            f"stopped after {epochs} of the {budget} epochs allowed ({counted}), neither after an epoch without a "
            f"mistake nor at the end of the budget, the two ways a run ends. {why}",
            diagnosed=True, errors=errors, updates=updates)
    if not converged and errors == 0:  # the whole budget run, yet what it returned makes no mistake
        last = measured.get("last")
        counted = f", the last one counting {int(last)} update(s)" if last is not None else ""
        return Verdict.failed(
            f"ran all {budget} epochs of its budget without an epoch counted free of mistakes ({updates} update(s) "
            f"counted{counted}), yet the parameters it returned misclassify none of the {n} training points "
            "(recounted): with them the next pass over the data makes no update, an epoch whose count is 0.",
            diagnosed=True, errors=errors, updates=updates)
    if not converged:
        return Verdict.failed(
            f"no convergence within the budget of {budget} epochs: {errors} of {n} training points are still "
            f"misclassified {ran}. The data is separable, so convergence is guaranteed"
            + (f" after at most {bound_text} updates" if bound is not None else "") + ".",
            errors=errors, updates=updates)
    if bound is not None and updates > float(bound):
        return Verdict.failed(f"converged, but {ran}: more updates than {bound_text} allows. Are updates made "
                              "on points that are already correctly classified?", updates=updates, bound=bound)
    within = f", within {bound_text}" if bound is not None else ""
    return Verdict.passed(f"converged with 0 training errors {ran}{within}", updates=updates)
