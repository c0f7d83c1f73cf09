"""gradcheck: hand-written gradients against central finite differences, in float64.

    numeric_j = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)        (error O(eps^2))
    rel_j     = |a_j - n_j| / max(1e-8, |a_j| + |n_j|)

Child side: `numeric_gradient` (for a scalar function and its hand gradient) and `function_blocks`
(for `torch.autograd.Function`s: the analytic Jacobian through the student's `backward`, the numeric
one from `forward`, as torch.autograd.gradcheck computes them). Parent side: `judge`, which names the
worst entries and reads the ratio analytic/numeric for a sign error or a constant factor. A block may
carry `out_dtype`, the dtype of the function's output at the float64 inputs (measured by the harness):
one that is not float64 is the diagnosis of a failing block, as finite differences then read rounding.
A block with an `error` may say `raised_in = "forward"`: the check's hint (on hand gradients) is then left out.
A block may say what its `numeric` holds, `numeric_is` (exercise-5's ReLU at exact zeros: torch's derivative 0 there,
where a central difference reads 1/2), for the message's rows.
A block may carry `forward` (`forward_values`): the function's own values at some inputs and the exact ones the harness
computed, with a tolerance per entry; a value off is the block's failure, said before its gradient (a forward cut off
to its asymptote too early, exercise-5's softplus at x = 15, has a slope finite differences cannot tell apart). A block
with `forward` and no `analytic` is the forward's values alone.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..course.exercise import Check
from ..verdict import Verdict, array_ratio_hint, as_array, fmt, unravel

NEEDS_REFERENCE = False
EPS = 1e-6


# ---- child side (torch is imported only here, inside the functions) --------------------------------

def numeric_gradient(f: Callable[[Any], Any], x: Any, eps: float = EPS) -> Any:
    """Central differences of a scalar function `f` at the float64 tensor `x`."""
    import torch

    x = x.detach().clone()
    grad = torch.zeros_like(x)
    flat, g = x.view(-1), grad.view(-1)
    for j in range(flat.numel()):
        saved = flat[j].item()
        flat[j] = saved + eps
        plus = float(f(x))
        flat[j] = saved - eps
        minus = float(f(x))
        flat[j] = saved
        g[j] = (plus - minus) / (2 * eps)
    return grad


def perturbed(x: Any, eps: float = EPS) -> Any:
    """The 2 x.numel() points of `numeric_gradient`, stacked: row 2j is x + eps e_j, row 2j+1 x - eps e_j
    (each entry moved as numeric_gradient moves it, x_j + eps in float64)."""
    import torch

    flat = x.detach().reshape(-1)
    j = torch.arange(flat.numel())
    points = flat.repeat(2 * flat.numel(), 1)
    points[2 * j, j] = flat + eps
    points[2 * j + 1, j] = flat - eps
    return points.reshape(2 * flat.numel(), *x.shape)


def numeric_gradient_stacked(f_stack: Callable[[Any], Any], x: Any, eps: float = EPS) -> Any:
    """`numeric_gradient` with every perturbed point evaluated at once: `f_stack` maps the stack of
    `perturbed(x, eps)` (k, *x.shape) to the k values of f there. One vectorised evaluation instead
    of 2 x.numel() (issue 17); the same central differences, up to the rounding of f's values."""
    return central_differences(f_stack(perturbed(x, eps)), x.shape, eps)


def central_differences(values: Any, shape: Sequence[int], eps: float = EPS) -> Any:
    """(f(x + eps e_j) - f(x - eps e_j)) / (2 eps), shaped like x, from f's values at the rows of
    `perturbed(x, eps)` in their order (a tensor or a list of floats)."""
    import torch

    pairs = torch.as_tensor(values, dtype=torch.float64).reshape(-1, 2)
    return ((pairs[:, 0] - pairs[:, 1]) / (2 * eps)).reshape(tuple(shape))


def block(name: str, analytic: Any, numeric: Any, moves: bool = False, exact: Any = None,
          exact_floor: float = 0.0, hint: str = "", scale: float | None = None) -> dict[str, Any]:
    """One measured block: a named tensor's analytic and numeric gradient, flattened. `moves` says the
    harness knows (from its own computation) that the true gradient there is not zero: a loss that does
    not move is then a degenerate measurement, which proves nothing and earns nothing. `exact`: the
    gradient the harness computed itself (float64), where it knows the function is the one differentiated;
    the judge then holds the hand gradient to float64's rounding (`inexactness`, with `exact_floor`), which
    finite differences never reach. `hint`: the likely cause where this block disagrees with finite differences,
    said instead of reading the ratio analytic/numeric (with one point, every error gives a constant ratio).
    `scale`: the size of the terms the gradient is a sum of (`term_scale`), the floor under which a hand gradient
    held to the reference's (`against_reference`) is rounding, not a value."""
    made = {"name": name, "shape": list(numeric.shape), "moves": moves,
            "analytic": analytic.detach().double().reshape(-1).tolist(),
            "numeric": numeric.detach().double().reshape(-1).tolist()}
    if scale is not None and np.isfinite(scale):
        made["scale"] = float(scale)
    if hint:
        made["hint"] = hint
    if exact is not None:
        made["exact"] = exact.detach().double().reshape(-1).tolist()
        made["exact_floor"] = float(exact_floor)
    return made


# A derivative by hand in float64 is exact to its rounding: ~1e-15 of the gradient's largest entry (sums of a
# few hundred terms in another order included). A central difference of the function is off by ~1e-10 (steps of
# 1e-6), one of high order (Richardson, 8th order) by ~1e-13 (red team, round 5), float32 arithmetic inside by
# ~1e-7: all of them pass the comparison with finite differences (rtol 1e-5), none is a gradient by hand.
INEXACT = 2e-14


def term_scale(upstream: Any, out: Any, wrt: Any) -> float:
    """The size of the terms a gradient d<v, out>/d(wrt) is a sum of, from magnitudes alone: max|v| max|out| /
    max|wrt| (the slope of an output of that size over an input of that size), times sqrt(out's entries) for the
    sums over them. A hand gradient whose entries cancel to 0 (BatchNorm's dx through out.sum(): exactly 0) is
    rounding at ~1e-16 of this, on both sides; held relatively to the reference's largest entry, itself ~1e-16,
    two correct gradients differed by 100% (course8's trial). Numbers or arrays (numpy or torch)."""
    def biggest(t: Any) -> float:
        a = np.abs(np.asarray(t.detach().double().cpu() if hasattr(t, "detach") else t, dtype=float))
        a = a[np.isfinite(a)]
        return float(a.max(initial=0.0))
    size = int(np.asarray(out.detach().cpu() if hasattr(out, "detach") else out).size)
    v, o, w = biggest(upstream), biggest(out), biggest(wrt)
    return v * o / (w if w > 0 else 1.0) * float(np.sqrt(max(size, 1)))


def inexactness(analytic: Any, exact: Any, floor: float = 0.0) -> float:
    """max |analytic - exact| / max(floor, max |exact|): the normwise relative error (0 where both are 0).
    `floor` 1 where the exact gradient is torch's autograd, itself off by its rounding where every entry is
    ~1e-17 (tanh' far out: 1 - tanh^2, all cancellation): the error is then absolute below 1, where a finite
    difference is still ~1e-10 off. 0 where the harness's own formula is exact (exercise-1's sigma(-u)):
    relative, so that a cancellation (1 - sigma(u)) shows on a gradient of 1e-10."""
    scale = max(floor, float(np.abs(exact).max(initial=0.0)))
    diff = float(np.abs(analytic - exact).max(initial=0.0))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


# ---- parent side ------------------------------------------------------------------------------------

def compact(measured: dict[str, Any]) -> dict[str, Any]:
    """What a check with `against_reference` keeps of the reference's measurement: each block's hand gradient."""
    return {"blocks": [{"name": b["name"], "analytic": b["analytic"], **({"scale": b["scale"]} if "scale" in b else {})}
                       for b in measured["blocks"] if "analytic" in b]}


def _held_to_reference(measured: dict[str, Any], expected: Any) -> dict[str, Any]:
    """`measured` with each block's exact gradient taken from the reference's measurement at the same seed
    (`against_reference`: a course's own layers, whose gradient the harness cannot derive itself). The
    finite differences of the student's own forward check backward against forward; they cannot see a forward
    that is not the layer's, or that changes once backward() ran (integrity round 14: a backward storing
    zeros, then a forward returning zeros, agreed with itself at 0 = 0), nor a backward made of finite
    differences (~1e-10 off): the reference's hand gradient, exact to rounding, sees all three."""
    recorded = [b for b in (expected or {}).get("blocks", []) if isinstance(b, dict)]
    reference = {b.get("name"): b.get("analytic") for b in recorded}
    # The floor under which both are rounding: the reference's own term scale where it was recorded with one (its
    # inputs and output, never the submission's), else the measured block's (older expected.json; the same inputs)
    scales = {b.get("name"): b.get("scale") for b in recorded}
    blocks = []
    for b in measured["blocks"]:
        if b.get("exact") is None and reference.get(b.get("name")) is not None:
            scale = scales.get(b["name"]) if isinstance(scales.get(b["name"]), (int, float)) else b.get("scale")
            floor = ROUNDING_TERMS * float(scale) if isinstance(scale, (int, float)) and np.isfinite(scale) else 0.0
            b = {**b, "exact": reference[b["name"]], "exact_from": "reference", "exact_floor": floor}
        blocks.append(b)
    return {**measured, "blocks": blocks}


def judge(measured: dict[str, Any], expected: Any, check: Check) -> Verdict:
    if check.params.get("against_reference"):
        if not isinstance(expected, dict) or not expected.get("blocks"):
            return Verdict("error", "no reference gradient recorded for this seed: the instructor must run `dldiy "
                                    "record` (this is not the submission's fault)")
        measured = _held_to_reference(measured, expected)
    rtol = float(check.params.get("rtol", 1e-5))
    atol = float(check.params.get("atol", 1e-7))
    worst_overall = worst_near_zero = 0.0
    excused: list[str] = []  # blocks right by the reference's gradient though not by the student's forward
    moving = [b for b in measured["blocks"] if b.get("moves")]
    if moving and all(np.all(np.abs(as_array(b["numeric"])) <= atol) for b in moving):
        return Verdict.failed(
            f"degenerate: the loss does not change with {moving[0]['name']} (its finite-difference gradient is 0 "
            f"everywhere, in all {len(moving)} configurations) where the true gradient is not, so the hand gradient "
            "is checked against nothing. The loss must depend on the weights: is it a constant, or detached from "
            "them?", diagnosed=True)
    for b in measured["blocks"]:
        if b.get("error"):  # the function raised on this block's configuration only
            if b.get("raised_in") == "forward":  # the hint on hand gradients would name the wrong half
                return Verdict.failed(f"{b['name']}: {b['error']} (no gradient can be checked where the forward "
                                      "raises)", diagnosed=True)
            return Verdict.failed(f"{b['name']}: {b['error']}")
        if isinstance(b.get("forward"), dict):
            wrong = _forward_off(b["name"], b["forward"])
            if wrong:
                return Verdict.failed(wrong, diagnosed=True)
            if "analytic" not in b:  # a block of the forward's values alone
                continue
        a, n = as_array(b["analytic"]), as_array(b["numeric"])
        shape = b.get("shape") or [len(n)]
        if a.shape != n.shape:
            return Verdict.failed(f"the gradient of {b['name']} has {a.size} entries; expected {n.size}")
        for arr, what in ((a, "the hand-written gradient"), (n, "the loss (finite differences)")):
            if not np.isfinite(arr).all():
                forward = b.get("forward_nonfinite")
                if isinstance(forward, dict):  # the forward itself is not finite there: its fault, not backward's
                    return Verdict.failed(_forward_overflows(b["name"], forward), diagnosed=True)
                i = int(np.flatnonzero(~np.isfinite(arr))[0])
                return Verdict.failed(f"{what} of {b['name']} is {fmt(arr[i])} at index {unravel(i, shape)}")
        err = np.abs(a - n)
        rel = err / np.maximum(1e-8, np.abs(a) + np.abs(n))
        # a block may ask for relative agreement alone (atol 0: a tail where the true gradient is ~1e-18)
        b_atol = atol if b.get("atol") is None else min(atol, max(0.0, float(b["atol"])))
        if b_atol < atol:
            rel = err / np.maximum(1e-300, np.abs(a) + np.abs(n))
        bad = err > b_atol + rtol * np.maximum(np.abs(a), np.abs(n))
        if bad.any() and b.get("exact_from") == "reference" and _agrees(a, b["exact"], rtol, b_atol):
            # One bug, one deduction: backward gives the reference's gradient, so what the finite differences of the
            # student's own forward disagree with is that forward, which the forward's check charges.
            excused.append(b["name"])
            continue
        # The pass message's relative error, where it means something: an entry whose gradient is below NEAR_ZERO
        # atol's (softmax(...).sum() is 1 whatever Z: its gradient is 0, a finite difference reads ~4e-10) is held
        # to atol, and its relative error (4e-10 / 1e-8 = 0.04) says only that both are ~0.
        near_zero = np.maximum(np.abs(a), np.abs(n)) <= NEAR_ZERO * b_atol
        worst_overall = max(worst_overall, float(np.where(near_zero, 0.0, rel).max(initial=0.0)))
        worst_near_zero = max(worst_near_zero, float(np.where(near_zero, err, 0.0).max(initial=0.0)))
        if bad.any():
            order = np.argsort(-rel * bad)[: min(3, int(bad.sum()))]
            numeric = str(b.get("numeric_is") or "numeric")  # where the harness put a known value in place of one
            rows = "; ".join(f"index {unravel(int(i), shape)}: analytic {fmt(a[i], n[i])}, {numeric} {fmt(n[i], a[i])}, "
                             f"rel. error {fmt(rel[i])}" for i in order)
            dtype = b.get("out_dtype")
            if dtype and dtype != "float64":  # the function's own output, measured: rounding, not a wrong slope
                return Verdict.failed(
                    f"analytic and numeric gradients of {b['name']} disagree at {int(bad.sum())} of {a.size} "
                    f"entries; worst: {rows}. {b['name'].split(':')[0]} returned {dtype} for these float64 inputs: its "
                    f"finite differences (steps of {fmt(EPS)}) then measure the rounding of {dtype} values, not "
                    "their slope, and its gradient passes through it too. Compute in the inputs' dtype (a new "
                    "tensor made with dtype=, or torch.empty_like / zeros_like, no .float()).",
                    diagnosed=True, worst_rel_error=float(rel.max()), bad_entries=int(bad.sum()), out_dtype=dtype)
            hint = b.get("hint") or array_ratio_hint(a, n, "analytic/numeric")  # a block's own likely cause first
            return Verdict.failed(
                f"analytic and numeric gradients of {b['name']} disagree at {int(bad.sum())} of {a.size} "
                f"entries; worst: {rows}." + (f" {hint}" if hint else ""),
                worst_rel_error=float(rel.max()), bad_entries=int(bad.sum()))
    # every block agrees with finite differences: now whether each is exact where the harness knows the answer
    inexact = 0.0
    for b in measured["blocks"]:
        if b.get("exact") is None:
            continue
        a, e = as_array(b["analytic"]), as_array(b["exact"])
        off = inexactness(a, e, float(b.get("exact_floor", 0.0))) if a.shape == e.shape and np.isfinite(e).all() else 0.0
        inexact = max(inexact, off)
        if off > INEXACT and b.get("exact_from") == "reference":
            i = int(np.argmax(np.abs(a - e)))
            shape = b.get("shape") or [a.size]
            return Verdict.failed(
                f"the gradient of {b['name']} agrees with finite differences of your own forward, but not with the "
                f"reference's gradient at the same inputs and parameters: at index {unravel(i, shape)} yours is "
                f"{fmt(a.ravel()[i], e.ravel()[i])}, the reference's {fmt(e.ravel()[i], a.ravel()[i])} (off by {off:.1e} "
                "relative to its largest entry). "
                + (_forward_blamed(check) if off > 1e-6 else
                   "A derivative by hand in float64 agrees with the reference's to ~1e-15; finite differences of the "
                   "forward (~1e-13 to 1e-10) or float32 arithmetic inside (~1e-7) are this far off: derive the "
                   "formula by hand and compute in the inputs' dtype."),
                diagnosed=True, inexact=off)
        if off > INEXACT:
            return Verdict.failed(
                f"the gradient of {b['name']} agrees with finite differences but is off the exact gradient by "
                f"{off:.1e} (relative to its largest entry) and no more: a derivative by hand in float64 is exact "
                f"to ~1e-15. Finite differences of the function (~1e-13 to 1e-10; not a derivative by hand) or "
                "float32 arithmetic inside (~1e-7) give such an error, and so do a cancellation in the formula "
                "(1 - a where a is close to 1, as in 1 - sigmoid(u) or (1 + tanh(z / 2)) / 2 for a sigmoid of a very "
                "negative z: use torch.sigmoid on the argument itself) and a clamp (a value kept within "
                "[eps, 1 - eps], inputs cut off). "
                "Derive the formula by hand and compute in the inputs' dtype.",
                diagnosed=True, inexact=off)
    near = (f"; where the gradient is ~0 (below {fmt(NEAR_ZERO * atol)}), within {worst_near_zero:.1e} absolute "
            f"(atol {fmt(atol)})") if worst_near_zero > 0 else ""
    if excused:
        near += (f" (note: the gradient of {', '.join(excused)} is the reference's at the same inputs, but not the "
                 "finite differences of your forward there: the forward computes another function, which its own "
                 "check charges)")
    return Verdict.passed(f"max rel. error {fmt(worst_overall)}{near}", worst_rel_error=worst_overall,
                          worst_abs_near_zero=worst_near_zero, inexact=inexact)


def _forward_blamed(check: Check) -> str:
    """What a backward that matches the student's own forward but not the reference's gradient says of the forward:
    the forward's fault where another check failed, never "check forward first" where every other check passed."""
    others = check.params.get("other_failures")
    failing = sorted(others) if isinstance(others, dict) else None
    if failing:
        return (f"So backward matches your forward, and your forward is not the layer's: check forward first (failing: "
                f"{', '.join(failing)}; its formula, or values it keeps from an earlier call).")
    if failing is None:  # judged alone (no other check's result at hand)
        return ("So backward matches your forward, and your forward is not the layer's: check forward first (its "
                "formula, or values it keeps from an earlier call).")
    return ("So backward matches your forward, and your forward is not the layer's at these inputs, though no other check "
            "fails: look for what the other checks do not cover (values kept from an earlier call, a branch on the "
            "inputs or their shape, a parameter used otherwise).")


def forward_values(at: Any, values: Any, exact: Any, atol: Any, rtol: float, hint: str = "") -> dict[str, Any]:
    """A block's `forward` (child side): the function's values at the inputs `at` (flattened), the exact ones the harness
    computed, and the tolerance |value - exact| <= atol_j + rtol |exact| (atol one per entry, or one for all)."""
    flat = [float(v) for v in np.asarray(at, dtype=float).ravel()]
    atols = [float(a) for a in np.broadcast_to(np.asarray(atol, dtype=float), (len(flat),))]
    return {"at": flat, "values": [float(v) for v in np.asarray(values, dtype=float).ravel()],
            "exact": [float(v) for v in np.asarray(exact, dtype=float).ravel()], "atol": atols, "rtol": float(rtol),
            **({"hint": hint} if hint else {})}


def _forward_off(name: str, forward: dict[str, Any]) -> str:
    """The block's forward values against the exact ones, in words ("" when every entry is within its tolerance)."""
    x, v, e = as_array(forward.get("at", [])), as_array(forward.get("values", [])), as_array(forward.get("exact", []))
    atol = as_array(forward.get("atol", [])) if forward.get("atol") is not None else np.zeros_like(e)
    if not (x.shape == v.shape == e.shape == atol.shape) or not x.size:
        return f"the forward of {name.split(':')[0]} returned {v.size} values where {e.size} were expected"
    bad = ~(np.abs(v - e) <= atol + float(forward.get("rtol", 0.0)) * np.abs(e))  # (nan fails)
    if not bad.any():
        return ""
    i = int(np.flatnonzero(bad)[np.argmax(np.nan_to_num(np.abs(v - e)[bad], nan=np.inf))])
    function = name.split(":")[0].strip()
    hint = str(forward.get("hint") or "")
    return (f"the forward of {function} at x = {fmt(x[i])} returned {float(v[i])!r}, where its exact value is {float(e[i])!r} (off by "
            f"{fmt(abs(v[i] - e[i]))}, beyond {fmt(float(atol[i] + float(forward.get('rtol', 0.0)) * abs(e[i])))}; "
            f"{int(bad.sum())} of {x.size} values off)." + (f" {hint}" if hint else ""))


def _agrees(analytic: np.ndarray, exact: Any, rtol: float, atol: float) -> bool:
    """Whether a hand gradient is the reference's, to the check's own tolerances."""
    e = as_array(exact)
    return (e.shape == analytic.shape and bool(np.isfinite(e).all()) and bool(np.isfinite(analytic).all())
            and bool(np.all(np.abs(analytic - e) <= atol + rtol * np.maximum(np.abs(analytic), np.abs(e)))))


# A gradient held to the reference's is compared relatively to max(its largest entry, ROUNDING_TERMS x the size of
# its terms): below that, an entry is a sum that cancels, and both hand gradients read their own rounding there
# (~1e-16 of the terms, well under INEXACT); a backward by finite differences is still ~1e-10 of them off
ROUNDING_TERMS = 1.0

# Below NEAR_ZERO x atol a gradient entry is ~0: rounding in its finite difference (~1e-10) is a large part of it
NEAR_ZERO = 100.0


def _forward_overflows(name: str, forward: dict[str, Any]) -> str:
    """A block whose forward returned nan or inf at the checked point (graders/batched.overflowed), in words."""
    function = name.split(":")[0]
    index = tuple(forward.get("index") or ())
    at = f" at index {index}" if index else ""
    where = f", where {name.split(':')[1].split('(')[0].strip() or 'the input'} = {fmt(forward['input'])}" \
        if isinstance(forward.get("input"), (int, float)) and ":" in name else ""
    return (f"the forward of {function} returned {fmt(forward.get('value'))}{at}{where}, so the gradients taken "
            "through it (yours and the finite differences) are not finite either: the forward overflows there, "
            "not the backward (exp(x) is inf beyond x = 709.8 in float64, 88.7 in float32, and inf / inf or "
            "inf - inf is nan). Compute the forward in a form that stays finite for large |x|: exponentiate only "
            "-|x|" + _STABLE_FORMS.get(function.strip().lower(), "") + ", or use torch's own function there.")


_STABLE_FORMS = {"tanh": " (tanh x = sign(x) (1 - e^(-2|x|)) / (1 + e^(-2|x|)))",
                 "sigmoid": " (sigma(x) = 1 / (1 + e^(-x)) where x >= 0, e^x / (1 + e^x) where x < 0)",
                 "softplus": " (log(1 + e^x) = max(x, 0) + log(1 + e^(-|x|)))"}
