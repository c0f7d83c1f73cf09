"""convergence: training reaches the exercise's target (e.g. >= 99% training accuracy) in its budget.

The measurement is {"metric": value, "losses": [a few losses along training], "steps": budget}; the
check's `target` (and `metric`, default "accuracy") come from the spec. On failure the message reads
the loss curve: rising (an update uphill, a learning rate too high), flat (nothing learned), nan.
A measurement may instead hold several runs judged against the same target (optimizers, learning
rates, architectures on one task): {"runs": [{"name": str, metric: value, "losses": [...], "steps": n}]}
(or {"name": str, "raised": message} for a run that raised); it passes when every run does, and the
message names the first run that does not. {"inconclusive": why}: the harness cannot measure the training
apart from what another check charges (a skip: the instructor's policy decides what it is worth).
The spec's `charged_by` maps a run's "optimizer" to the check
that measures its steps: where ONE optimizer's runs fail and its own check failed too, they are said in a
note, not charged; where several do, the check fails as before.
The spec's `see_first` (check names: the checks that judge the same training's first steps, such as first-loss)
keeps the loss curve's reading from guessing a cause where one of them failed: the curve is described, and the
failing check named as the place to start (a loss formula wrong at the first step is no sign error).
"""

from __future__ import annotations

import math
from typing import Any

from ..course.exercise import Check
from ..verdict import Verdict, charged_elsewhere, fmt

NEEDS_REFERENCE = False


def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """judge() reads no expectation; a check recorded with `record_reference` keeps only what the
    pictures draw beside the student's (graders/plots.py): the loss curve, the hyperplane, the filters."""
    kept: dict[str, Any] = {k: measured[k] for k in ("losses", "filters") if k in measured}
    if isinstance(measured.get("boundary"), dict) and "w" in measured["boundary"]:
        kept["boundary"] = {"w": measured["boundary"]["w"]}
    return kept


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    if "inconclusive" in measured:  # the harness could not measure the training apart from what another check charges
        return Verdict.skipped(f"inconclusive: {measured['inconclusive']}")
    if "runs" not in measured:
        return judge_run(measured, check)
    runs = measured["runs"]
    if not runs:
        return Verdict.failed("no run was measured")
    # The run of ONE optimizer whose own check failed (the spec's charged_by: an optimizer's name -> the check
    # of its steps) is that check's to charge: said here, not charged twice (one bug, one deduction).
    verdicts = [judge_run(run, check) for run in runs]
    owners = charged_elsewhere(check.params.get("charged_by") or {}, check.params.get("failed_checks") or (),
                               [str(run.get("optimizer", "")) if v.status != "pass" else None
                                for run, v in zip(runs, verdicts)])
    excused: list[str] = []
    reached = []
    for run, verdict, other in zip(runs, verdicts, owners):
        if verdict.status == "pass":
            reached.append(run)
            continue
        if other is not None:
            excused.append(f"{run['name']} does not reach it ({verdict.message.split('; ')[0]}), which check "
                           f"{other!r} charges already")
            continue
        note = f" (note: {'; '.join(excused)})" if excused else ""
        return Verdict.failed(f"{run['name']}: {verdict.message}{note}", run=run["name"], **verdict.details)
    goal = ">=" if check.params.get("goal", "max") == "max" else "<="
    target = f"{check.params.get('metric', 'accuracy')} {goal} {fmt(float(check.params['target']))}"
    # A run whose part's own check failed is no evidence that the part converges (its steps are wrong: an optimizer
    # that jumps to the minimum it knows reaches any target), so its reaching the target is not credited either:
    # the check passes on the runs of parts whose own checks hold (integrity round 8's endpoint category)
    wrong = set(check.params.get("failed_checks") or ())
    uncredited = [run for run in reached if _own_check(check.params.get("charged_by") or {}, run, wrong)]
    if uncredited and len(uncredited) == len(reached):
        named = ", ".join(f"{run['name']} ({_own_check(check.params['charged_by'], run, wrong)!r})" for run in reached)
        return Verdict.failed(f"every run that reaches {target} is of a part whose own check fails: {named}; a run "
                              "whose steps are wrong is no evidence that it converges, so none is credited"
                              + (f" (note: {'; '.join(excused)})" if excused else ""))
    reached = [run for run in reached if run not in uncredited]
    if uncredited:
        excused.append("not credited, their own checks failing: " + ", ".join(run["name"] for run in uncredited))
    steps = ", ".join(f"{run['name']} in {run.get('steps')} steps" for run in reached)
    if excused:
        return Verdict.passed(f"{len(reached)} of {len(runs)} runs reach {target}{': ' + steps if steps else ''} "
                              f"(note: {'; '.join(excused)})")
    return Verdict.passed(f"all {len(runs)} runs reach {target}: {steps}")


def _own_check(charged_by: dict[str, Any], run: dict[str, Any], failed: set[str]) -> str | None:
    """The spec's own check of the part a run exercises (`charged_by`, by the run's "optimizer"), where it failed."""
    named = charged_by.get(str(run.get("optimizer", "")))
    return next((c for c in ([named] if isinstance(named, str) else list(named or [])) if c in failed), None)


def judge_run(measured: dict[str, Any], check: Check) -> Verdict:
    """One run: its metric against the spec's target, and the loss curve read out on failure."""
    if measured.get("raised"):  # the run stopped with an exception (its message names the student's line)
        return Verdict.failed(f"raised {measured['raised']}")
    metric = check.params.get("metric", "accuracy")
    target = float(check.params["target"])
    higher_is_better = check.params.get("goal", "max") == "max"
    value = measured[metric]
    value = math.nan if value is None else float(value)
    steps = measured.get("steps")
    budget = f" after {steps} steps" if steps is not None else ""
    reached = value >= target if higher_is_better else value <= target
    if isinstance(measured.get("losses"), list) and not measured["losses"] and steps != 0:
        # A degenerate measurement earns nothing: a loop that trained but recorded no loss (its append
        # outside the loop, or never made) leaves the curve the exercise asks for empty, and a metric
        # alone cannot tell a trained model from one that was handed in trained. The built-in harnesses
        # check the history's length where train() returns it (one loss per step), so this is the
        # notebook's loop, whose only check this is.
        return Verdict.failed(f"{metric} {fmt(value)}{budget}, but the training recorded no loss: the loss "
                              "curve is empty (is the loss appended inside the loop, once a step?)", value=value)
    if reached and math.isfinite(value):
        return Verdict.passed(f"{metric} {fmt(value)}{budget} (target {'>=' if higher_is_better else '<='} "
                              f"{fmt(target)})", value=value)
    failed = set(check.params.get("failed_checks") or ())
    first = [str(name) for name in check.params.get("see_first") or () if str(name) in failed]
    curve = describe_curve([math.nan if v is None else float(v) for v in measured.get("losses", [])], first)
    return Verdict.failed(f"{metric} {fmt(value)}{budget}; the target is {'>=' if higher_is_better else '<='} "
                          f"{fmt(target)}. {curve}", value=value, target=target)


def describe_curve(losses: list[float], failed_first: list[str] | None = None) -> str:
    """The loss curve in a sentence a student can act on. `failed_first`: the checks of the same training's
    first steps that failed (the spec's see_first): named in place of a guessed cause."""
    if not losses:
        return ""
    shown = " -> ".join(fmt(v) for v in losses[:: max(1, len(losses) // 5)][:6])
    start = ""
    if failed_first:
        named = " and ".join(repr(name) for name in failed_first)
        several = len(failed_first) > 1
        start = (f" Check{'s' if several else ''} {named} fail{'' if several else 's'} too, on the first steps of this "
                 f"training, and say{'' if several else 's'} what differs there: start there (its cause is likely this "
                 "curve's too).")
    if any(math.isnan(v) or math.isinf(v) for v in losses):
        k = next(i for i, v in enumerate(losses) if math.isnan(v) or math.isinf(v))
        return f"Loss curve: {shown}. The loss becomes {fmt(losses[k])}" + \
            (f".{start}" if failed_first else ": divergence (a learning rate too high?).")
    first, last = losses[0], losses[-1]
    if last > first * 1.05:
        return f"Loss curve: {shown}. The loss rises" + \
            (f".{start}" if failed_first else ": divergence, or an update that goes uphill (a sign error?).")
    if abs(last - first) <= 0.01 * max(abs(first), 1e-12):
        return f"Loss curve: {shown}. The loss barely moves" + \
            (f".{start}" if failed_first else ": is the update applied, the learning rate used?")
    return f"Loss curve: {shown}. The loss falls, but not far enough within the budget.{start}"
