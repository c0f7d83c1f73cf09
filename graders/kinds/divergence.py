"""divergence: training at a learning rate above the stability limit is reported as divergence.

Gradient descent on a quadratic with Hessian H contracts the error along each eigenvector by
|1 - lr * lambda| per step, so it is stable only for lr < 2 / lambda_max(H). The probe runs the
submission's training loop at lr = factor * 2 / lambda_max with factor > 1 (the exercise computes
lambda_max from its own data) and records the loss history. The history diverges when a loss is
not finite, or when the last loss exceeds `growth` (default 100) times the first.

The check passes when the history diverges: the training loop used lr as given, did not clip or
rescale the step, and reported the divergence by returning its losses, one per step, inf and nan
included, rather than raising. It fails when the loop raised, stopped early, or the losses did not
grow; and, where the harness also ran plain gradient descent with the same loss and gradient (`plain`; `plain_lr32`
with lr rounded to float32, `weights_grew` whether the loop's final weights grew as plain descent's: diagnoses),
when the loop followed it for its first FOLLOWED steps and then left it while its losses were finite:
something changed the step once it grew (a clamp of the weights, a cap on the step). A loop that does
not follow plain descent from the start is judged by the growth alone (first-loss and convergence
charge a wrong update: one bug, one deduction). A loop that follows plain descent with lr rounded to float32
(`plain_lr32`: torch.tensor(lr) inside train()) is diagnosed so; where the spec's `charged_by = {lr32 = CHECK}`
names a check that failed (the trajectory's, which sees the same float32 lr at an ordinary rate), it is said in
a note and the divergence judged as it is (one bug, one deduction).

Where the measurement has `more` (runs at the same rate in another configuration: exercise-2's float32,
where the loss turns nan within its steps), each must return one loss per step too and not raise.

Measurement: {"lr": float, "limit": float, "steps": int, "losses": [float | None, ...], "plain": [...],
"more": [{"what": str, "steps": int, "losses": [...], "plain": [...] | "raised": str}, ...] (optional)}
or {"lr": float, "limit": float, "steps": int, "raised": "ExceptionName: message (file:line)"}.
"""

from __future__ import annotations

import math
from typing import Any

from ..course.exercise import Check
from ..verdict import Verdict, charged_elsewhere, fmt

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
    steps = int(measured.get("steps", len(losses)))
    if len(losses) < steps:
        return Verdict.failed(
            f"{where}, train() returned {len(losses)} losses for steps={steps}: it stopped early. The spec asks "
            "for one loss per step, inf and nan included: the caller reads the divergence from them.", lr=lr)
    for run in measured.get("more") or ():  # the same rate in another configuration (exercise-2: float32)
        stopped = _stopped_early(run)
        if stopped:
            return Verdict.failed(f"{where}, {stopped}", lr=lr)
    plain = measured.get("plain")
    left = _leaves_plain_descent(losses, [math.nan if v is None else float(v) for v in plain]) \
        if isinstance(plain, list) else None
    note = ""
    if left is not None:
        k, got, want = left
        recorded = _record_capped(losses, k, want) if measured.get("weights_grew") is True else ""
        if recorded:
            return Verdict.failed(f"{where}, {recorded}", diagnosed=True, step=k)
        lr32 = measured.get("plain_lr32")  # plain descent with lr rounded to float32, where the harness ran it
        if isinstance(lr32, list) and _leaves_plain_descent(losses, [math.nan if v is None else float(v) for v in lr32]) \
                is None and _follows(losses, lr32) > k:
            said = (f"train() leaves plain gradient descent at step {k} (loss {got:.9g}, not {want:.9g}), but "
                    f"follows plain descent with lr rounded to float32 ({lr32_value(lr)!r}) step for step: the "
                    "learning rate is made a float32 number inside train() (torch.tensor(lr) is float32 by default; "
                    "pass dtype=w.dtype, or use the Python number as it is). Above the stability limit every step "
                    "multiplies that 1e-8 difference")
            # one bug, one deduction: the float32 learning rate is a precision bug of every training, which the
            # check of the trajectory (the spec's charged_by = {lr32 = ...}) charges where it failed; the
            # divergence itself (one loss per step, growing to inf and nan) is then judged as it is
            owner = charged_elsewhere(check.params.get("charged_by") or {}, check.params.get("failed_checks") or (),
                                      ["lr32"])[0]
            if owner is None:
                return Verdict.failed(f"{where}, {said}.", diagnosed=True, step=k)
            note = f" (note: {said}, which check {owner!r} charges already)"
        else:
            return Verdict.failed(
                f"{where}, train() follows plain gradient descent for {k} steps, then leaves it at step {k}: loss "
                f"{fmt(got)} where plain gradient descent with the same loss and gradient gives {fmt(want)}. Something "
                "changes the step once it grows: a clamp or clip of the weights or of the gradient, a cap on the "
                "step, a rescaling. Above the stability limit the weights must be left to overflow: the "
                "divergence is for the caller to read from the losses.", diagnosed=True, step=k)
    if isinstance(plain, list):
        hidden = _overflow_hidden(losses, [math.nan if v is None else float(v) for v in plain])
        if hidden:
            return Verdict.failed(f"{where}, {hidden}", diagnosed=True)
        if left is None and measured.get("weights_grew") is False and _follows(losses, plain) >= FOLLOWED:
            return Verdict.failed(
                f"{where}, train()'s losses follow plain gradient descent, whose weights grow without bound, but the "
                "weights it returned did not grow: it returns other weights than its last iterate (the best seen, "
                "w0, an earlier copy). The spec's train() returns the weights after its last update; above the "
                "stability limit they are huge, inf or nan, and the caller must see that.", diagnosed=True)
    bad = next((k for k, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None:
        return Verdict.passed(f"divergence {where}, as expected: the loss goes from {fmt(losses[0])} to "
                              f"{fmt(losses[bad])} at step {bad}{note}", step=bad)
    if losses[-1] > growth * losses[0]:
        return Verdict.passed(f"divergence {where}, as expected: the loss grows from {fmt(losses[0])} to "
                              f"{fmt(losses[-1])} in {len(losses)} steps{note}", growth=losses[-1] / losses[0])
    return Verdict.failed(
        f"no divergence {where}: the loss went from {fmt(losses[0])} to {fmt(losses[-1])} in {len(losses)} "
        f"steps (divergence means a nan/inf or a growth beyond x{fmt(growth)}). Plain gradient descent "
        "diverges at this rate: is lr used as given, or is the step rescaled, clipped or capped?",
        last=losses[-1], first=losses[0])


def _stopped_early(run: dict[str, Any]) -> str | None:
    """What is wrong with one more run at the same rate (its `what`, `steps`, `losses` or `raised`), or None."""
    what, steps = str(run.get("what", "another configuration")), int(run.get("steps", 0))
    if "raised" in run:
        return (f"in {what}, training raised {run['raised']} instead of reporting divergence: train() should "
                "return its loss history, inf and nan included, and let the caller read the divergence from it.")
    losses = [math.nan if v is None else float(v) for v in run.get("losses") or ()]
    if len(losses) < steps:
        last = f" (its last loss {fmt(losses[-1])})" if losses else ""
        return (f"in {what}, train() returned {len(losses)} losses for steps={steps}{last}: it stopped early, where "
                "the loss overflows to inf and then turns nan. The spec asks for one loss per step, inf and nan "
                "included: the caller reads the divergence from them.")
    # nan written as inf: where plain descent (the same loss and gradient) turns nan, the loop says +inf at
    # every such step and nan nowhere (a loop with its own rounding may turn nan a step apart: not judged)
    plain = [math.nan if v is None else float(v) for v in run.get("plain") or ()]
    hidden = _overflow_hidden(losses, plain)
    if hidden:
        return f"in {what}, {hidden}"
    nans = [k for k, v in enumerate(plain) if math.isnan(v) and k < len(losses)]
    if nans and not any(math.isnan(v) for v in losses) and all(losses[k] == math.inf for k in nans):
        return (f"in {what}, train() recorded inf at step {nans[0]} and after, where the loss is nan (plain gradient "
                "descent with the same loss and gradient turns nan there: infinities of both signs in the weights). "
                "The spec asks for the losses as they are, inf and nan included: a nan replaced by inf hides it.")
    return None


def _overflow_hidden(losses: list[float], plain: list[float]) -> str:
    """Why a history that followed plain descent at first holds no inf or nan at all, where plain descent's loss
    (the same loss and gradient) is inf or nan for OVERFLOWED steps or more: the record made finite (a
    torch.nan_to_num, a clamp, a `v if isfinite(v) else ...`). A loop with its own rounding overflows a step
    apart, never not at all: the loss grows by orders of magnitude a step there. "" otherwise."""
    gone = [k for k, v in enumerate(plain) if not math.isfinite(v)]
    if len(gone) < OVERFLOWED or _follows(losses, plain) < FOLLOWED or len(losses) < len(plain) \
            or not all(math.isfinite(v) for v in losses):
        return ""
    if max(losses) > WIDER * max(v for v in plain if math.isfinite(v)):
        return ""  # it grew on past the dtype's overflow: a wider dtype inside (first-loss charges a float64 loop)
    k = gone[0]
    shown = ", ".join(f"{fmt(losses[j])} at step {j} (plain descent: {fmt(plain[j])})" for j in sorted({k, gone[-1]}))
    return (f"train() records only finite losses, where plain gradient descent with the same loss and gradient "
            f"overflows from step {k} on: it records {shown}. A non-finite loss made finite (torch.nan_to_num, a "
            "clamp of what is appended) hides the divergence: record the loss as it is, inf and nan included.")


WIDER = 1e3  # beyond plain descent's last finite loss: the loss grows ~300 times a step there, a clamp stays below
OVERFLOWED = 3  # steps of plain descent's history that must be inf or nan before a history without any is judged


def lr32_value(lr: float) -> float:
    """lr rounded to float32, as torch.tensor(lr) holds it."""
    import struct

    return float(struct.unpack("f", struct.pack("f", lr))[0])


def _follows(losses: list[float], plain: list[Any]) -> int:
    """How many steps from the start `losses` match `plain` (to RTOL, or both the same non-finite value)."""
    k = 0
    for got, want in zip(losses, [math.nan if v is None else float(v) for v in plain]):
        same = got == want or (math.isnan(got) and math.isnan(want)) or \
            (math.isfinite(got) and math.isfinite(want) and abs(got - want) <= RTOL * abs(want))
        if not same:
            break
        k += 1
    return k


def _record_capped(losses: list[float], k: int, want: float) -> str:
    """Why the history leaves plain descent at step k, where from k on it records one value, below plain
    descent's loss, at every step, while the weights train() returned grew as plain descent's did (the harness's
    `weights_grew`: the record capped, min(loss, 1e300), the step untouched; a clamp of the weights keeps the loss
    constant too, with the weights bounded); else ""."""
    rest = losses[k:]
    if len(rest) < 2 or not math.isfinite(rest[0]) or any(v != rest[0] for v in rest) or not rest[0] < want:
        return ""
    return (f"train() records the loss {fmt(rest[0])} at step {k} and at every step after it ({len(rest)} steps), where "
            f"plain gradient descent's loss is {fmt(want)} at step {k} and grows on, and the weights grew as plain descent's: "
            f"the step is untouched, the recorded value capped (a min(loss, {fmt(rest[0])}), a clamp of what is "
            "appended). Record the loss as it "
            "is, inf and nan included: the caller reads the divergence from it.")


FOLLOWED = 3  # steps a loop must match plain descent from the start to be judged against it later
RTOL = 1e-6  # the same update in another order rounds differently by ~1e-15, amplified with the signal
HUGE = 1e300  # near float64's overflow, one rounding can overflow one step earlier or later


def _leaves_plain_descent(losses: list[float], plain: list[float]) -> tuple[int, float, float] | None:
    """(step, the loop's loss, plain descent's) where a history that matched plain descent for at least
    FOLLOWED steps leaves it while not overflowing, else None."""
    k = 0
    for got, want in zip(losses, plain):
        if not (math.isfinite(got) and math.isfinite(want)) or abs(got - want) > RTOL * abs(want):
            break
        k += 1
    if k < FOLLOWED or k >= min(len(losses), len(plain)):
        return None
    got, want = losses[k], plain[k]
    if math.isfinite(got) and math.isfinite(want):
        return k, got, want
    if math.isfinite(want) and want < HUGE:  # the loop overflowed where plain descent did not
        return k, got, want
    if math.isfinite(got) and not math.isfinite(want) and all(math.isfinite(v) for v in losses[k:k + 3]) \
            and got < HUGE:  # plain descent overflowed; the loop stays finite
        return k, got, want
    return None
