"""first-loss: the training pipeline's first loss and a short trajectory, against the reference's.

The measurement is {"steps": [0, 1, 2, 5, ...], "losses": [...], "n": examples}, optionally with
"history" (the loss at every step 0..max(steps)) and "final" (the weights train() returned, flattened:
a loop one update short or long keeps the history right and returns other weights). The first loss catches a wrong loss, labels or
initialisation; the later steps catch what leaves the first loss unchanged (a missing zero_grad, a
learning rate ignored, step() before backward()).
A loss matches when |measured - expected| <= atol + rtol * |expected|.

A failure is diagnosed from the numbers before any fixed hint is given:
- a one-step shift: measured[k] equals the reference's loss at step k + 1 (the loss recorded after the
  update instead of before it);
- a constant ratio measured/expected at every step (a sum for a mean: the ratio is n; a factor 2).
- "alike" in the measurement, [{"step", "loss", "why"}, ...]: the loss the harness itself computed for the
  same pipeline with one setting changed (exercise-5: another activation); a measured loss that matches
  one (and the reference's does not) is said by its `why` (train() does not pass `activation` on).
A diagnosed failure carries `diagnosed=True`, and the judge then leaves out the spec's generic hint.

Beside the main trajectory, the spec's `runs` ([{n_train, batch_size, steps, hint}], and a run's own rtol
and atol where it has them: a float64 run) are shorter runs of
the same train() at other settings (a batch larger than the data), measured as "runs": [{"config":
words, "losses": [one per step]} or {"config", "error"}] and judged at every step against the
reference's, once the main trajectory matches (a wrong loss is said there first); a run that departs
fails with its configuration and the spec's `hint` for it.

"parts", [{"name", "problem"}], are parts of the pipeline the harness probed alone on data of its own
(exercise-3's batches() on n a multiple of the batch size, which the project's data never is; Normalize on
several channels, SGD against torch.optim.SGD, ConvNet built with other arguments): a problem there fails
the check once the trajectory matches, and is added to a failure of the trajectory (the likely cause, one
deduction). Every part's problem is said.

Where only later losses depart, the first loss is read for what it says: equal to the reference's to
rounding, the updates differ; within the tolerance but off by more than rounding (the data normalised with
other statistics moves it by ~1e-4), the cause already lies before the first update.
"""

from __future__ import annotations

import math
from typing import Any

from ..course.exercise import Check
from ..verdict import Verdict, close, first_mismatch, fmt, ratio_hint, versus

NEEDS_REFERENCE = True


def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """What judge() and the loss-curve picture read of the reference's measurement: the steps, the
    losses there and, when measured, the full history (the one-step-shift diagnosis)."""
    return {k: measured[k] for k in ("steps", "losses", "history", "final", "runs") if k in measured}


def judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    verdict = _judge(measured, expected, check)
    parts = [part for part in measured.get("parts") or []
             if isinstance(part, dict) and isinstance(part.get("problem"), str) and part["problem"]]
    if not parts:
        return verdict
    said = [f"{part.get('name') or 'a part of the pipeline'} probed alone does not: {part['problem']}." for part in parts]
    name = parts[0].get("name") or "a part of the pipeline"
    if verdict.status == "pass":
        return Verdict.failed(f"the losses match the reference's here, but {' Also, '.join(said)}", diagnosed=True,
                              part=name)
    if verdict.status == "fail":
        verdict.message += f" Also, {' Also, '.join(said)}"
    return verdict


def _judge(measured: dict[str, Any], expected: dict[str, Any], check: Check) -> Verdict:
    rtol = float(check.params.get("rtol", 1e-4))
    atol = float(check.params.get("atol", 1e-6))
    steps, losses = list(measured["steps"]), [_f(v) for v in measured["losses"]]
    want = [_f(v) for v in expected["losses"]]
    if steps != list(expected["steps"]) or len(losses) != len(want):
        return Verdict.failed(f"the trajectory has losses at steps {steps}; expected steps {expected['steps']}")
    i = first_mismatch(losses, want, rtol, atol)
    if i is None and "final" in expected:  # the history is right: are the weights returned the ones it ends at?
        final, wanted = measured.get("final"), [_f(v) for v in expected["final"]]
        got = [_f(v) for v in final] if isinstance(final, list) else []
        j = first_mismatch(got, wanted, rtol, atol) if len(got) == len(wanted) else 0
        if j is not None:
            updates = measured.get("updates", "every")
            where = versus(wanted[j], got[j]) if j < len(got) else f"{len(got)} entries returned, {len(wanted)} expected"
            return Verdict.failed(
                f"the loss history matches, but the weights train() returned are not those after its {updates} "
                f"updates: entry {j}: {where}. "
                "A loop one update short or long (the last update never applied, or one more after the last "
                "loss), or a copy of the weights returned instead of the updated ones.", diagnosed=True)
    if i is None:
        departed = _runs_departed(measured, expected, check, rtol, atol)
        if departed:
            return departed
        later = ", ".join(map(str, steps[1:]))
        runs = len(expected.get("runs") or [])
        return Verdict.passed(f"first loss {fmt(losses[0])}" + (f", steps {later} match" if later else "")
                              + (f"; {runs} shorter run(s) at other settings match too" if runs else ""),
                              first_loss=losses[0])
    details = {"step": steps[i], "expected": want[i], "measured": losses[i]}
    if math.isnan(losses[i]) or math.isinf(losses[i]):
        what = "the first loss" if i == 0 else f"the loss at step {steps[i]}"
        return Verdict.failed(f"{what} is {fmt(losses[i])} (expected {fmt(want[i])}): the computation "
                              "overflows or diverges", **details)
    alike = _alike(measured, steps, losses, want, rtol, atol)
    if alike:
        what = "first loss" if i == 0 else f"the loss at step {steps[i]}"
        return Verdict.failed(f"{what}: {versus(want[i], losses[i])}. {alike}", diagnosed=True, **details)
    shift = _shifted_by_one(measured, expected, rtol, atol, steps[i])
    if shift:
        return Verdict.failed(shift, diagnosed=True, **details)
    constant = _constant_ratio(losses, want, measured.get("n"))
    if constant:
        what = "first loss" if i == 0 else f"the loss at step {steps[i]}"
        return Verdict.failed(f"{what}: {versus(want[i], losses[i])}. {constant}",
                              diagnosed=True, **details)
    precision = _float32_precision(losses, want, rtol)
    if precision:
        what = "first loss" if i == 0 else f"the loss at step {steps[i]}"
        return Verdict.failed(f"{what}: {versus(want[i], losses[i])}. {precision}", diagnosed=True, **details)
    if i == 0:
        ratio = f" (ratio {fmt(losses[0] / want[0])})" if want[0] else ""
        hint = ratio_hint(losses[0], want[0], measured.get("n"))
        return Verdict.failed(f"first loss: {versus(want[0], losses[0])}{ratio}. "
                              + (hint or "The loss at initialisation differs: the loss formula, the labels or "
                                         "the data handling."), diagnosed=bool(hint), **details)
    per_pass = check.params.get("steps_per_pass")  # minibatches in one pass over the data (exercise-3)
    if per_pass and steps[i] >= int(per_pass) > steps[i - 1]:
        return Verdict.failed(
            f"the losses measured in the first pass over the data match (steps {steps[0]} to {steps[i - 1]}; a pass is "
            f"{per_pass} minibatches) and depart at step {steps[i]}, in the second pass: {versus(want[i], losses[i])}. What "
            "differs is how one pass ends and the next begins: the last, partial minibatch (kept or dropped), the "
            "order of the examples (drawn again for each pass, or once), the data iterator restarted.",
            diagnosed=True, **details)
    first_off = abs(losses[0] - want[0]) / abs(want[0]) if want[0] else abs(losses[0] - want[0])
    if first_off > FLOAT32_REL:  # within the tolerance, and not the reference's
        return Verdict.failed(
            f"the trajectory departs at step {steps[i]}: {versus(want[i], losses[i])}. The first loss is within the "
            f"tolerance but not the reference's either: {versus(want[0], losses[0])}, more than rounding (float32's "
            f"included, ~{FLOAT32_REL:.0e}) explains. So the difference is there before the first update, and the "
            "updates carry it on: look before the first backward(), at what the loss is computed from: the data "
            "(its scaling, the normalisation's mean and std and the images they are computed on), the labels, "
            "the initialisation, the random draws.", diagnosed=True, **details)
    return Verdict.failed(
        f"the first loss matches ({fmt(want[0])}) but the trajectory departs at step {steps[i]}: "
        f"{versus(want[i], losses[i])}. The update differs: the gradient, the learning rate, "
        "gradients accumulating between steps, or the order of the steps.", **details)


def short_run(run: Any, config: str) -> dict[str, Any]:
    """Harness side: one of the spec's `runs` (a shorter run of train() at another setting), `run()` giving its
    losses at every step, as the judge compares them with the reference's; or the error train() raised there
    (a failure of that run, said in words). Exercises 8 and 9."""
    from ..api import ApiError
    from ..sandbox.endpoint import RemoteError

    try:
        return {"config": config, "losses": run()}
    except RemoteError as e:
        return {"config": config, "error": (e.message.splitlines() or ["an error"])[0][:300]}
    except ApiError as e:
        return {"config": config, "error": f"a malformed result ({str(e)[:300]})"}


def _runs_departed(measured: dict[str, Any], expected: dict[str, Any], check: Check, rtol: float,
                   atol: float) -> Verdict | None:
    """The first of the spec's `runs` whose losses depart from the reference's, as a failure; None when
    every run matches (or the reference measured none)."""
    wanted, got = list(expected.get("runs") or []), measured.get("runs")
    spec = list(check.params.get("runs") or [])
    for r, want in enumerate(wanted):
        run = got[r] if isinstance(got, list) and r < len(got) and isinstance(got[r], dict) else {}
        config = str(want.get("config") or run.get("config") or f"run {r + 1}")
        hint = str(spec[r].get("hint", "")) if r < len(spec) and isinstance(spec[r], dict) else ""
        said = f" {hint}" if hint else ""
        if run.get("error"):
            return Verdict.failed(f"the main trajectory matches, but train() with {config} raised "
                                  f"{run['error']}.{said}", diagnosed=bool(hint), run=config)
        losses, want_losses = [_f(v) for v in run.get("losses") or []], [_f(v) for v in want.get("losses") or []]
        # a run may hold its own tolerance (a float64 run: float64's, not the float32 trajectory's)
        own = spec[r] if r < len(spec) and isinstance(spec[r], dict) else {}
        k = first_mismatch(losses, want_losses, float(own.get("rtol", rtol)), float(own.get("atol", atol)))
        if k is None:
            continue
        where = versus(want_losses[k], losses[k]) if k < min(len(losses), len(want_losses)) else \
            f"{len(losses)} losses returned, {len(want_losses)} expected"
        return Verdict.failed(f"the main trajectory matches, but with {config} the loss at step {k} departs from "
                              f"the reference's: {where}.{said}", diagnosed=bool(hint), run=config, step=k)
    return None


def _alike(measured: dict[str, Any], steps: list[int], losses: list[float], want: list[float], rtol: float,
           atol: float) -> str:
    """The `why` of the harness's first "alike" entry ({"step", "loss", "why"}: the loss that another run of
    the same pipeline, computed by the harness with a setting changed, gives at `step`) that the measured
    loss there matches while the reference's does not, else ""."""
    for entry in measured.get("alike") or []:
        if not isinstance(entry, dict) or entry.get("step") not in steps or not isinstance(entry.get("why"), str):
            continue
        k = steps.index(entry["step"])
        other = _f(entry.get("loss"))
        if close(losses[k], other, rtol, atol) and not close(want[k], other, rtol, atol):
            return entry["why"]
    return ""


def _shifted_by_one(measured: dict[str, Any], expected: dict[str, Any], rtol: float, atol: float,
                    failing: int) -> str:
    """A message when every measured loss is the reference's loss one step later, else "". The shift
    must explain the first failing step, and the reference's losses must move between the steps
    compared (on a flat trajectory a shift and no shift read the same)."""
    got, want = measured.get("history"), expected.get("history")
    if got is not None and want is not None:
        pairs = [(k, _f(got[k]), _f(want[k + 1]), _f(want[k])) for k in range(min(len(got), len(want) - 1))]
    else:  # only the sampled steps: compare where step k and step k + 1 were both recorded
        at = {s: _f(v) for s, v in zip(expected["steps"], expected["losses"])}
        pairs = [(s, _f(v), at[s + 1], at[s]) for s, v in zip(measured["steps"], measured["losses"]) if s + 1 in at]
    if (len(pairs) < 2 or failing not in {k for k, *_ in pairs}
            or not all(close(m, e, rtol, atol) for _, m, e, _ in pairs)
            or all(close(before, e, rtol, atol) for _, _, e, before in pairs)):
        return ""
    k, m, *_ = pairs[0]
    return (f"the loss recorded at step {k} ({fmt(m)}) is the reference's loss after one update, at step {k + 1}, "
            f"and so on at every step ({len(pairs)} compared): the loss history is shifted by one step. "
            "Record the loss before each update (losses[k] is the loss of the weights that update k starts "
            "from), not after it.")


def _constant_ratio(losses: list[float], want: list[float], n: int | None) -> str:
    """A message when measured/expected is one constant (not 1) at every recorded step, else ""."""
    if len(losses) < 2 or any(e == 0 or not math.isfinite(m) for m, e in zip(losses, want)):
        return ""
    ratios = [m / e for m, e in zip(losses, want)]
    r = ratios[0]
    if abs(r - 1) < 1e-6 or any(abs(q - r) > 1e-6 * abs(r) for q in ratios):
        return ""
    cause = ratio_hint(r, 1.0, n) or "a constant factor in the loss (a missing or extra 1/n, 2 or 1/2?)."
    return f"measured/expected is {fmt(r)} at every recorded step: {cause}"


# float32 keeps ~7 significant digits: a few roundings of 6e-8 stay far below this (a first loss farther from
# the reference's, relative, is not rounding)
FLOAT32_REL = 1e-5


def _float32_precision(losses: list[float], want: list[float], rtol: float) -> str:
    """A message when every loss agrees with the reference's to float32's precision but not to the
    check's (float64) tolerance: the formula is right, some step of it ran in float32, else ""."""
    if rtol >= FLOAT32_REL or not losses or any(not math.isfinite(m) or e == 0 for m, e in zip(losses, want)):
        return ""
    worst = max(abs(m - e) / abs(e) for m, e in zip(losses, want))
    if not rtol < worst <= FLOAT32_REL:
        return ""
    return (f"Every loss agrees with the reference's to about 7 significant digits, and no better (largest "
            f"rel. error {worst:.1e}): the formula is right but part of it runs in float32 although the inputs "
            "are float64. Look for a .float(), a tensor made inside without dtype= (torch.tensor(...), "
            "torch.zeros(...) are float32 by default) or an accumulator of the default dtype.")


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)
