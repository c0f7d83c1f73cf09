"""invariants: properties every probed call must keep, whatever the values (no reference needed).

Two ways to use them, one module. As a check kind, the measurement is {"probed": [...], "violations":
[{"where", "what"}, ...]} gathered by `Watch` on every call the harness makes (arguments left
unmodified, the output's dtype following the inputs', no graph kept, a generator followed, an
autograd.Function's contract); the first violation fails the check. Inside any other check, a probe
calls the submission through `unmodified(...)` and checks what came back with `same_dtype` and
`no_graph`; a broken rule raises `Violation`, which the harness process turns into {"violation":
message} (with `@keeps_rules`, or for any probe, graders/sandbox/child.py), judged a failure of that check.
torch is imported inside the functions: the parent imports this module to judge, and never torch.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..course.exercise import Check
from ..verdict import Verdict, charged_elsewhere

if TYPE_CHECKING:
    import torch

NEEDS_REFERENCE = False


def judge(measured: dict[str, Any], expected: Any, check: Check) -> Verdict:
    probed, violations = list(measured.get("probed", [])), list(measured.get("violations", []))
    # One bug, one deduction: a violation of ONE part whose own check failed (the spec's charged_by: a part's
    # name -> the check(s) judging it; a violation is that part's where its `where` starts with "part(") is said
    # in a note, not charged again (exercise-8's own CNN inside the student's train())
    charged_by = check.params.get("charged_by") or {}
    parts = [next((part for part in charged_by if str(v.get("where", "")).startswith(f"{part}(")), None)
             for v in violations]
    owners = charged_elsewhere(charged_by, check.params.get("failed_checks") or (), parts)
    charged = [v for v, o in zip(violations, owners) if o is None]
    excused = [(v, o) for v, o in zip(violations, owners) if o is not None]
    note = (f" (note: {excused[0][0]['where']} breaks an invariant too, not charged again: a part whose own check "
            f"({excused[0][1]}) fails: {excused[0][0]['what']})") if excused else ""
    if not charged:
        return Verdict.passed(f"{len(probed)} call(s) probed, every invariant held" if not excused else
                              f"{len(probed)} call(s) probed, every invariant held but one{note}")
    first = charged[0]
    more = f" ({len(charged) - 1} more violation(s))" if len(charged) > 1 else ""
    # every violation names its rule and the fix: the check's general hint would only repeat the others
    return Verdict.failed(f"{first['where']}: {first['what']}{more}{note}", diagnosed=True, where=first["where"])


# ---- child side: what a harness uses to gather the measurement (torch imported inside) -------------

class Watch:
    """Calls into the submission that keep a record of every invariant they break."""

    def __init__(self) -> None:
        self.probed: list[str] = []
        self.violations: list[dict[str, str]] = []

    def violation(self, where: str, what: str) -> None:
        self.violations.append({"where": where, "what": what})

    def call(self, where: str, fn: Any, args: tuple, names: tuple[str, ...], **kwargs: Any) -> Any:
        """fn(*args, **kwargs), the tensors among `args` compared with copies kept before the call.
        The caller's own tensors are passed, not clones: a function that writes into its arguments
        (an initial weight, the data) is seen. A call that raises returns None: failing on these
        inputs is for the checks of values to report (one bug, one deduction), not an invariant."""
        import torch

        kept = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
        self.probed.append(where)
        try:
            result = fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - see above
            return None
        for name, arg, before in zip(names, args, kept):
            if before is not None and not _same(arg, before):
                self.violation(where, f"modified its argument {name} in place (the caller's tensor changed); "
                                      "work on a copy (x = x.clone()) or out of place")
        return result

    def dtype(self, where: str, value: Any, wanted: Any, what: str = "the output") -> None:
        """`value` (a tensor) has the inputs' floating dtype: float32 in, float32 out; float64 in, float64 out."""
        import torch

        if isinstance(value, torch.Tensor) and value.dtype != wanted:
            self.violation(where, f"{what} is {str(value.dtype).replace('torch.', '')} for "
                                  f"{str(wanted).replace('torch.', '')} inputs: the dtype must follow the inputs "
                                  "(a tensor created without dtype=, or a .float()/.double() cast?)")

    def no_graph(self, where: str, values: Any, what: str) -> None:
        """None of `values` drags an autograd graph along (a loss history kept as tensors keeps every step's graph)."""
        import torch

        for i, v in enumerate(values):
            if isinstance(v, torch.Tensor) and v.requires_grad:
                self.violation(where, f"{what} [{i}] is a tensor that requires grad: it keeps the autograd graph "
                                      "of its step alive (memory grows every step); record loss.item()")
                return

    def measurement(self) -> dict[str, Any]:
        return {"probed": self.probed, "violations": self.violations}


def _same(after: Any, before: Any) -> bool:
    import torch

    if not isinstance(after, torch.Tensor):
        return False
    after = after.detach()
    return after.shape == before.shape and after.dtype == before.dtype and bool(
        torch.equal(after, before) or (after.is_floating_point() and torch.allclose(after, before, rtol=0, atol=0,
                                                                                      equal_nan=True)))


# ---- inside other checks: rules that fail the check they are broken in -------------------------------

class Violation(Exception):
    """The submission broke a rule of the exercise (an argument modified, a dtype changed, autograd used)."""


# The likely cause of each result of a train() -> (w, losses) that a later call overwrote (results_kept's `causes`):
# exercises 1 and 2 hand it over as they are.
TRAIN_KEPT_CAUSES = {
    "w": "train() hands back a weight tensor it keeps between calls (a buffer updated in place, w -= ...) and "
         "overwrites it at the next call: start each call from a new tensor, w = w0.clone()",
    "losses": "train() hands back a list (or tensor) of losses it keeps between calls (a module-level list, or a "
              "mutable default argument `losses=[]`, cleared and refilled at the next call): build a new one inside "
              "train() at every call, losses = []",
}


def keeps_rules(probe: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A probe whose `Violation` becomes the measurement {"violation": message}."""
    @functools.wraps(probe)
    def wrapped(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return probe(*args, **kwargs)
        except Violation as v:
            return {"violation": str(v)}
    return wrapped


def unmodified(call: Callable[[], Any], what: str, /, **arguments: Any) -> Any:
    """`call()`, then a Violation if it changed any tensor among `arguments` (name -> tensor) in place."""
    kept = copies(**arguments)
    result = call()
    unchanged(kept, what, **arguments)
    return result


def copies(**arguments: Any) -> dict[str, Any]:
    """Copies of the tensors among `arguments` (name -> value), kept before a call for `unchanged`:
    `unmodified` for a call made elsewhere (one of a `sub.batch`)."""
    import torch

    return {name: t.detach().clone() for name, t in arguments.items() if isinstance(t, torch.Tensor)}


def unchanged(kept: dict[str, Any], what: str, /, **arguments: Any) -> None:
    """A Violation naming the first of `arguments` that differs from its copy in `kept` (see `copies`)."""
    for name, before in kept.items():
        if not _same(arguments[name], before):  # NaN where NaN was is unchanged
            raise Violation(f"{what} modified its argument {name} in place: the caller's tensor must be left as it "
                            f"was (work on a copy, e.g. {name}.clone(), or write `x = x - ...` instead of `x -= ...`)")


def returns_fresh(sub: Any, name: str, calls: list[tuple[str, tuple]], names: Sequence[str],
                  results: Sequence[str]) -> None:
    """A Violation if the student's `name`, called with each (label, args) of `calls` in its own process (one
    message), returns a tensor that shares memory with a tensor argument: `names`[i] names argument i,
    `results`[j] the result's item j. The caller's own tensor handed back (`w = w0` never copied, returned
    as it came when no update happens; a view of it) is changed by the caller's next in-place change of the
    result, and the other way round. A call that raises is the checks of values' to report."""
    from ..batched import aliases_here

    found = sub.run_local(aliases_here, sub.get(name), [list(args) for _, args in calls])
    if not isinstance(found, list):
        return
    for (label, _), shared in zip(calls, found):
        pair = shared[0] if isinstance(shared, list) and shared else None
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(k, int) for k in pair)
                and 0 <= pair[0] < len(results) and 0 <= pair[1] < len(names)):
            continue
        result, arg = results[pair[0]], names[pair[1]]
        raise Violation(f"{name}() ({label}) returned {result} sharing memory with its argument {arg}: the caller's "
                        f"own {arg} (or a view of it) came back, so an in-place change of {result} (a `+=`, an "
                        f"optimizer's step) changes {arg} too. Return a new tensor: start from a copy "
                        f"({arg}.clone()), not from {arg} itself")


def results_kept(sub: Any, name: str, calls: list[tuple[str, tuple]], results: Sequence[str],
                 cause: str | dict[str, str]) -> None:
    """A Violation if the student's `name`, called with each (label, args) of `calls` in turn in its own process
    (one message, graders/batched.overwritten_here), hands back a result that a later call then changes: the
    caller keeps what an earlier call returned (a gradient, a list of losses, trained weights), and must find it
    as it came. `results`: the result's items' names where it is a tuple (("w", "losses")), or one name. `cause`:
    the likely cause, in words (a buffer or a list kept between calls), or one per item's name. A list comes back
    to the harness as a copy made when the call returns (a tensor as a mirror that a later change syncs, but only
    where a later message carries it): the student's process is where an overwrite is always seen. A call that
    raises is the checks of values' to report."""
    from ..batched import overwritten_here

    found = sub.run_local(overwritten_here, sub.get(name), [list(args) for _, args in calls])
    if not isinstance(found, list):
        return
    for k, ((label, _), row) in enumerate(zip(calls, found)):
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], list)):
            continue
        path, was, now = [str(part) for part in row[0]], str(row[1]), str(row[2])
        if len(results) > 1 and path and path[0].startswith("[") and path[0][1:-1].isdigit() \
                and int(path[0][1:-1]) < len(results):
            whose = results[int(path[0][1:-1])]
            item = whose + "".join(path[1:])
        else:
            whose = results[0] if results else "its result"
            item = whose + "".join(path)
        later = ", then ".join(other for other, _ in calls[k + 1:])
        why = cause if isinstance(cause, str) else cause.get(whose, "")
        raise Violation(f"{name}() ({label}) returned {item} = {was}; after the next call ({name}(), {later}) the "
                        f"caller's {item} is {now}: a later call wrote into what an earlier one had handed back"
                        + (f". {why}" if why else ""))


def reads_changed(sub: Any, name: str, args: tuple, names: Sequence[str], index: int, factor: float,
                  label: str) -> None:
    """A Violation if the student's `name`, called on `args`, then again on the same tensors after the caller
    changed argument `index` in place (times `factor`), does not give what it gives on fresh copies of the changed
    tensors (graders/batched.reads_changed_here, in the student's process): a result kept from an earlier call and
    keyed by the tensor (functools.lru_cache, id(X), X.data_ptr(): an in-place change keeps all three). A call
    that raises, or a result that is not a tensor, is the checks of values' to report."""
    import torch

    from ..batched import reads_changed_here

    found = sub.run_local(reads_changed_here, sub.get(name), list(args), index, factor)
    if not (isinstance(found, list) and len(found) == 2 and all(isinstance(v, torch.Tensor) for v in found)):
        return
    again, fresh = (v.detach() for v in found)
    if again.shape == fresh.shape and (torch.equal(again, fresh) or (
            again.is_floating_point() and fresh.is_floating_point()
            and torch.allclose(again.double(), fresh.double(), rtol=1e-9, atol=1e-12, equal_nan=True))):
        return
    arg = names[index]

    def said(t: "torch.Tensor") -> str:
        values = t.double().reshape(-1).tolist()
        return ", ".join(f"{v:.6g}" for v in values[:4]) + (", ..." if len(values) > 4 else "") if t.dim() else \
            f"{values[0]:.6g}"
    raise Violation(f"{name}() on {label}, called again on the same tensors after the caller changed {arg} in place "
                    f"({arg}.mul_({factor:g})), returned {said(again)}, where it gives {said(fresh)} on a fresh copy of "
                    f"the changed {arg}: it answered from what it kept of the earlier call. A cache keyed by the tensor "
                    f"(functools.lru_cache, a dict keyed by id({arg}) or {arg}.data_ptr()) does not see an in-place "
                    "change, and a new tensor can reuse a freed one's id or memory: compute from the arguments at "
                    "every call")


def trains_in_place(sub: Any, args: tuple) -> None:
    """A Violation if the student's train(*args) (args[0] a dict of parameters), run in its own process (one
    message), breaks the contract exercises 8 and 9 state: every parameter updated in place (the same tensor,
    the same memory: a view of it taken before sees the update) and the very dict it was given returned.
    `p.data = p.data - lr * g` leaves every view and alias of p stale (tied weights); a new dict of detached
    copies cannot be trained again (its tensors require no grad). A call that raises is the checks of values'
    to report."""
    from ..batched import trained_in_place_here

    found = sub.run_local(trained_in_place_here, sub.get("train"), list(args))
    if not isinstance(found, list) or not found or not isinstance(found[0], list) or not found[0]:
        return
    kind, key = str(found[0][0]), str(found[0][1]) if len(found[0]) > 1 else ""
    if kind == "stale":
        raise Violation(f"after train(), a view of params[{key!r}] taken before the call (params[{key!r}].detach(), "
                        "sharing its memory) does not see its new values: the update gave the parameter new memory "
                        "(p.data = p.data - lr * p.grad, or p.data = new), which leaves every view and alias of it "
                        "stale. Update in place without recording it: with torch.no_grad(): p -= lr * p.grad")
    if kind == "entry":
        raise Violation(f"after train(), params[{key!r}] is another tensor than the one the caller put there: the "
                        "dict's entries were replaced (params[k] = ...), where the docstring says to update them in "
                        "place (with torch.no_grad(): p -= lr * p.grad), the caller's own tensors")
    raise Violation("train() returned (params, losses) with params another dict than the one it was given"
                    + (f" (its {key!r} another tensor)" if kind == "returned" else "")
                    + ": return the very dict, its tensors updated in place. A dict of copies (detached clones) "
                    "leaves the caller's parameters behind and cannot be trained again (its tensors require no grad)")


def same_dtype(value: torch.Tensor, dtype: torch.dtype, what: str) -> torch.Tensor:
    """A Violation unless `value` has the inputs' floating dtype (float64 in, float64 out)."""
    if value.dtype != dtype:
        raise Violation(f"{what} returned {str(value.dtype).replace('torch.', '')} for "
                        f"{str(dtype).replace('torch.', '')} inputs: the output's dtype must follow the inputs' "
                        "(no hard-coded dtype=, no .float() or .double() of the result)")
    return value


def same_cast_as(value: Any, companion: Any, dtype: torch.dtype, what: str, companion_what: str, owner: str) -> str:
    """A note ("" where it does not apply) when `value` (a function's outcome for `dtype` inputs: what it
    returned, or the RemoteError it raised) fails as `companion` (another function's outcome on the same inputs),
    whose own check (`owner`) charges that, does: both come back in the same wrong dtype, or both raise. One cast
    both share (a helper's bias column made with a hard-coded dtype), one bug, one deduction. Only that is
    excused: the caller still judges a value."""
    import torch

    from ..sandbox.endpoint import RemoteError

    name = str(dtype).replace("torch.", "")
    if isinstance(value, RemoteError) and isinstance(companion, RemoteError):
        return (f"{what} raises on {name} inputs, as {companion_what} does ({value.message.splitlines()[0][:200]}): one "
                f"cause both share (a helper with a hard-coded dtype?), which check {owner!r} charges")
    if not (isinstance(value, torch.Tensor) and isinstance(companion, torch.Tensor)) or value.dtype == dtype \
            or companion.dtype != value.dtype:
        return ""
    found = str(value.dtype).replace("torch.", "")
    return (f"{what} returns {found} for {name} inputs, as {companion_what} does: one cast both share (a helper with "
            f"a hard-coded dtype?), which check {owner!r} charges")


def bfloat16_precision(value: torch.Tensor, exact: torch.Tensor, what: str) -> torch.Tensor:
    """A Violation unless `value`, computed from bfloat16 inputs, is bfloat16 and within bfloat16's precision
    (3 significant digits: 3e-2 of the largest entry) of `exact` (the float64 result). The third dtype of a
    family: code that works in float32 and float64 alone (a constant made with dtype=torch.float32 that
    torch.cat promotes, a .float() inside) raises here or comes back in another dtype (round 13's blind
    red team: a bias column of dtype float32)."""
    import torch

    same_dtype(value, torch.bfloat16, what)
    scale = max(1.0, float(exact.abs().max()))
    off = float((value.double() - exact).abs().max())
    if not off <= 3e-2 * scale:
        raise Violation(f"{what} on bfloat16 inputs is {value.double().tolist()}, where the float64 result is "
                        f"{exact.tolist()}: off by {off:.3g}, beyond bfloat16's precision")
    return value


def same_first_step(got: Any, loss: Any, want: Sequence[Any]) -> bool:
    """Whether the student's process's reply {"loss": float, "grads": [tensor, ...]} at a first training step
    agrees with the harness's own `loss` and gradients `want` (to 1e-4: float32 models pass). Exercises 8 and
    9 ask it before charging a train() run with the student's own model: where the model itself is already
    off, that is its own checks' finding, not train()'s."""
    import torch

    if not isinstance(got, dict) or not isinstance(got.get("loss"), float) or \
            abs(got["loss"] - float(loss)) > 1e-4 * abs(float(loss)) + 1e-6:
        return False
    grads = got.get("grads")
    if not isinstance(grads, list) or len(grads) != len(want):
        return False
    return all(isinstance(g, torch.Tensor) and g.shape == w.shape
               and torch.allclose(g.double(), w.double(), rtol=1e-4, atol=1e-6) for g, w in zip(grads, want))


def no_graph(value: torch.Tensor, what: str) -> torch.Tensor:
    """A Violation if a hand-computed result carries an autograd graph (requires_grad or a grad_fn)."""
    if value.requires_grad or value.grad_fn is not None:
        raise Violation(f"{what} returned a tensor with requires_grad={value.requires_grad} (grad_fn "
                        f"{type(value.grad_fn).__name__ if value.grad_fn is not None else None}): a gradient by "
                        "hand needs no autograd graph")
    return value


def trained_without_graph(value: torch.Tensor, what: str) -> torch.Tensor:
    """A Violation if weights a training loop returned carry the autograd graph of its updates (a start
    from w0.clone().requires_grad_(True)): memory grows with the steps, and value.numpy() raises."""
    if value.requires_grad or value.grad_fn is not None:
        raise Violation(f"{what} has requires_grad=True: the weights carry the autograd graph of every update "
                        "(memory grows with the steps, and .numpy() raises). Train by hand on plain tensors: "
                        "w = w0.clone(), without requires_grad_()")
    return value


STALLED_LR = 1e-30  # positive, and far below a float64 weight's last bit: no step changes anything
STALLED_STEPS = 4


def takes_every_step(run: Callable[[float, int], Any], what: str = "train()", once_for: Any = None,
                     at_rest: Callable[[int], Any] | None = None, at_rest_words: str = "",
                     tiny_loss: Callable[[int], Any] | None = None, tiny_loss_words: str = "") -> None:
    """`run(lr, steps)` (a training loop of the submission, its history checked by api.expect_history)
    at a learning rate so small that no weight and no loss changes: the loop must still take every one
    of its steps and record the loss before each (the spec's len(losses) == steps). A Violation names
    a loop that stops once the loss (or the weights, or the gradient) stops changing: a run that
    converges, or stalls on a plateau, then returns a shorter history than it was asked for. Then
    `run(lr, 0)`: no step at all is a loop that returns its start and no losses, not an error (a
    torch.stack of no losses raises, a loss recorded before the loop is one too many). And, given
    `at_rest(steps)` (the same loop where the gradient is exactly zero, `at_rest_words` saying where),
    every step there too: a stop on a small gradient norm shows. And, given `tiny_loss(steps)` (the same loop
    where the loss is far below any threshold a loop might stop at, 1e-12 or less, and still falling:
    `tiny_loss_words` saying where), every step there too: a stop once the loss is "small enough" shows
    (blind round 8: `if loss < 1e-3: break` returned one loss for five steps).
    `once_for` (the harness's `sub`): run once per submission's process, at its first seed (the visible
    ones come first); the property does not depend on the seed, and each run costs the harness ~2 ms."""
    from ..api import ApiError, HistoryLengthError
    from ..sandbox.endpoint import RemoteError

    if once_for is not None and not once_for.first_time("takes_every_step"):
        return
    try:
        run(STALLED_LR, STALLED_STEPS)
    except HistoryLengthError as e:
        raise Violation(f"{what} at lr = {STALLED_LR:g} for steps = {e.steps}, where the loss cannot change, returned "
                        f"{e.count} losses: it must take all `steps` updates and record the loss before each one, "
                        "even when the loss stops changing (no early stop on convergence)") from None
    try:
        run(STALLED_LR, 0)
    except HistoryLengthError as e:
        raise Violation(f"{what} with steps = 0 returned {e.count} losses: no step, no loss (a loss recorded before "
                        "the loop, or one after it, is one more than the steps taken)") from None
    except ApiError as e:  # its w, at no step: the form is checked as at any other
        raise Violation(f"{what} with steps = 0: {e}") from None
    except RemoteError as e:
        raise Violation(f"{what} with steps = 0 raised {e.message.splitlines()[0][:300]}: with no step to take it "
                        "must return its starting weights and an empty history (a torch.stack or torch.cat of no "
                        "losses raises; return the list, or build the tensor only when there is one)") from None
    if at_rest is not None:
        try:
            at_rest(STALLED_STEPS)
        except HistoryLengthError as e:
            raise Violation(f"{what} {at_rest_words} for steps = {e.steps} returned {e.count} losses: it must take every "
                            "step even where the gradient is zero (no stop on a small gradient norm)") from None
    if tiny_loss is not None:
        try:
            tiny_loss(STALLED_STEPS)
        except HistoryLengthError as e:
            raise Violation(f"{what} {tiny_loss_words} for steps = {e.steps} returned {e.count} losses: it must take every "
                            "step however small the loss (no stop once the loss is below a threshold: "
                            "len(losses) == steps)") from None


class CallCounter:
    """Stands in for one of the submission's functions and counts the calls made to it."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


def dependency_note(sub, name: str, args: tuple, exact: "torch.Tensor") -> dict:
    """{} when the student's own `name(*args)` agrees with the harness's `exact`; else a note (never a
    charge) that the check ran with the grader's `name`, which its own check already judges."""
    import torch

    from ..api import expect_tensor

    from ..sandbox.remote import HungEarlier

    try:
        with torch.no_grad():
            own = expect_tensor(sub.get(name)(*args), f"{name}()", shape=tuple(exact.shape), dtype="float")
        if torch.allclose(own.double(), exact.double(), rtol=1e-6, atol=1e-9):
            return {}
    except HungEarlier as e:  # its own check charged the timeout: a note here, never a second charge
        return {"note": f"train() was run with the grader's {name}(); yours was not run again: {e.message}"}
    except Exception:  # noqa: BLE001 - whatever went wrong, the function's own check reports it
        pass
    return {"note": f"train() was run with the grader's {name}(); your {name}() differs from it (see its own "
                    "check), so with your own the trajectory would differ"}


def loss_note(sub, args: tuple, want: float, **call) -> dict:
    """gradcheck differentiates the spec's loss (the harness's own), so that it measures gradient() alone:
    a wrong loss() is the loss's checks' to charge (one bug, one deduction). {} when the student's
    loss(*args) equals the harness's `want`; else a note, never a charge. Arguments are copies: what
    loss() does to them is its own checks' to see."""
    import torch

    def own() -> float:
        with torch.no_grad():
            return float(sub.call("loss", *(a.clone() for a in args), **call))
    return loss_note_of(own, want)


def loss_note_of(own: Callable[[], float], want: float) -> dict:
    """`loss_note` for a loss() already called (in a `sub.batch`): `own()` gives its value as `sub.call`
    would have (checked, its error raised); {} or the note."""
    from ..sandbox.remote import HungEarlier

    try:
        value = own()
        if abs(value - want) <= 1e-9 + 1e-6 * abs(want):
            return {}
        measured = f"{value:.10g}"
    except HungEarlier as e:  # the loss's own checks charged the timeout
        measured = f"nothing ({e.message})"
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the loss's own checks report it
        measured = f"an error ({type(e).__name__})"
    return {"note": f"the gradient was checked against the finite differences of the spec's loss; your loss() "
                    f"differs from it (expected {want:.10g}, measured {measured}), which the loss's own checks charge"}


def fresh_from_leftover_grads(run):
    """`run(leftover)` -> (params, losses), train() from the same initial weights with every .grad None
    (False) or holding a leftover gradient (True): a train() that clears the gradients before each
    backward trains the same in both. One that clears them only after its update (or never) adds the
    leftover to its first batch's gradient (and clips that sum): a Violation, which fails first-loss
    (train()'s check); one that differs from itself with no leftover at all (random batches) is said as that.
    Exercises 8 and 9."""
    (p0, l0), (p1, l1) = run(False), run(True)
    if not (isinstance(p0, dict) and isinstance(p1, dict) and set(p0) == set(p1)) or len(l0) != len(l1):
        return  # a malformed result is the trajectory's to report
    moved, losses_differ = _runs_differ(p0, l0, p1, l1)
    if moved or losses_differ:
        # Before blaming the leftover: the same run again, with no leftover. A train() that differs from itself
        # (batches drawn at random: blind red team, round 6) was told to clear its gradients, which it did.
        p2, l2 = run(False)
        if isinstance(p2, dict) and set(p2) == set(p0) and len(l2) == len(l0):
            moved_again, differ_again = _runs_differ(p0, l0, p2, l2)
            if moved_again or differ_again:
                said = (f"losses {[round(v, 6) for v in l0]}, then {[round(v, 6) for v in l2]}" if differ_again
                        else f"the same losses, other weights ({', '.join(moved_again)})")
                raise Violation(
                    f"train() run twice for {len(l0)} steps from the same weights and data, every .grad None both times, "
                    f"gave {said}: the same inputs must give the same run. Something changes from one call to the "
                    "next: state kept between calls (a step or batch counter in a module-level global, on the function "
                    "or a class, which the second call goes on from), or batches drawn at random (torch.randperm, a "
                    "shuffle), where batch k of every call holds rows (k*batch_size + i) mod n, i < batch_size, in "
                    "that order, from k = 0")
        said = (f"losses {[round(v, 6) for v in l1]} instead of {[round(v, 6) for v in l0]}" if losses_differ
                else f"the same losses, other weights ({', '.join(moved)})")
        raise Violation(
            f"train() for {len(l0)} steps from the same weights, once with every parameter's .grad None and once with "
            f"a leftover .grad on each (as an earlier backward leaves it), gave {said}: its first update used the "
            "leftover gradient added to its batch's. Clear the gradients before each backward (p.grad = None or "
            "p.grad.zero_() before loss.backward()), not after the update: each step's gradient is its batch's only")


def _runs_differ(p0: dict, l0: Any, p1: dict, l1: Any) -> tuple[list[str], bool]:
    """(the parameters whose values differ, whether the losses differ) between two runs of train()."""
    import torch

    moved = [k for k in p0 if isinstance(p0[k], torch.Tensor) and isinstance(p1[k], torch.Tensor)
             and p0[k].shape == p1[k].shape
             and not torch.allclose(p1[k].detach().double(), p0[k].detach().double(), rtol=1e-6, atol=1e-9)]
    return moved, any(abs(a - b) > 1e-6 * abs(a) + 1e-9 for a, b in zip(l0, l1))


# ---- an autograd.Function's backward: run twice, and with each input alone requiring grad ---------------

def judge_alone(watch: Watch, where: str, found: Any, names: tuple[str, ...] | list[str], why_not: dict[str, str]) -> None:
    """gradients_alone_here's findings as violations: each input alone requiring grad gets the gradient it
    gets when every input requires grad (`why_not`[name]: when that input alone needs a gradient). Exercises
    5 (Linear) and 8 (conv2d) read it (exercise-9 says it of its cell in its own words)."""
    import torch

    if not isinstance(found, dict) or not found:
        return
    every, alone = found.get("every"), found.get("alone")
    if not (isinstance(every, (list, tuple)) and isinstance(alone, list) and len(every) == len(alone) == len(names)):
        return
    for name, g_all, g in zip(names, every, alone):
        if not isinstance(g_all, torch.Tensor):
            continue  # no gradient with every input requiring grad: the gradient checks' finding
        said = f"with only {name} requiring grad ({why_not[name]}), backward"
        flags = ("ctx.needs_input_grad[i] is input i's own flag: " + ", ".join(f"{i} {n}" for i, n in enumerate(names)))
        if isinstance(g, str):
            watch.violation(where, f"{said} raised {g}, where with every input requiring grad it runs: {flags}; "
                                   "return None for an input that needs no gradient, and compute each other one")
        elif not isinstance(g, torch.Tensor):
            watch.violation(where, f"{said} gave {name} no gradient (None), where with every input requiring grad "
                                   f"it gives one: a gradient guarded by another input's flag ({flags})?")
        elif g.shape != g_all.shape or not torch.allclose(g.double(), g_all.double(), rtol=1e-9, atol=1e-12):
            gap = (g.double() - g_all.double()).abs().max().item() if g.shape == g_all.shape else float("nan")
            watch.violation(where, f"{said} gave {name} another gradient than with every input requiring grad "
                                   f"(largest difference {gap:.3g}): what backward computes for {name} must not depend "
                                   f"on which other inputs require grad ({flags})")


def backward_kept(watch: Watch, sub: Any, where: str, fn: Any, inputs: Any, names: tuple[str, ...] | list[str],
                  alone: tuple[str, dict[str, str]] | None = None) -> None:
    """backward_kept_here's findings as violations: backward leaves the output it was given the gradient of
    and the forward's arguments as they were, and a second backward on the same forward gives the same
    gradients (backward writes into nothing that forward saved or returned). `alone` (where, why_not):
    in the same message, each input alone requiring grad gets its gradient (gradients_alone_here). `fn` runs
    in the student's process (a handle, or a callable built there with sub.local)."""
    from ..batched import backward_kept_here, kept_and_alone_here

    watch.probed.append(where)
    if alone is None:
        found = sub.run_local(backward_kept_here, fn, list(inputs))
    else:
        both = sub.run_local(kept_and_alone_here, fn, list(inputs))
        both = both if isinstance(both, dict) else {}
        watch.probed.append(alone[0])
        judge_alone(watch, alone[0], both.get("alone"), names, alone[1])
        found = both.get("kept")
    if not isinstance(found, dict) or not found:
        return
    cause = ("backward writes in place into a tensor the forward saved or returned (a .mul_(), .add_(), "
             "out-parameter or slice assignment on ctx.saved_tensors): compute out of place")
    if found.get("output changed"):
        watch.violation(where, "after backward, the output forward handed to the caller holds other values: " + cause)
    elif found.get("arguments changed"):
        changed = [names[i] for i in found["arguments changed"] if isinstance(i, int) and 0 <= i < len(names)]
        watch.violation(where, f"after backward, its argument {' and '.join(changed) or '?'} holds other values: " + cause)
    elif found.get("second") == "differs":
        watch.violation(where, "a second backward on the same forward (retain_graph=True, as two losses sharing the "
                               "layer run) gave other gradients than the first: " + cause)
    elif found.get("second"):
        watch.violation(where, f"a second backward on the same forward (retain_graph=True, as two losses sharing the "
                               f"layer run) raised {str(found['second'])[:200]}: " + cause)


# ---- a signature's defaults: the spec's own -------------------------------------------------------------

def keeps_defaults(sub: Any, name: str, make_args: Callable[[], Sequence[Any]], where: str,
                   watch: Watch | None = None) -> None:
    """The student's `name` called with the parameters its spec signature gives a default left out, then
    with those defaults passed (positionally, in the signature's order): both results must be the same,
    exactly (a train() whose `activation` defaults to 'sigmoid' where the spec says 'tanh' trains another
    network for every caller who leaves it out: blind red team, round 7). `make_args()` gives fresh
    arguments for the other parameters each time (a call may change them in place); both calls must be
    deterministic on them. Where the results differ, the explicit call is made once more: a function that
    differs from itself is not this probe's to judge. Run once per student's process (it depends on no
    seed). A finding is `watch`'s violation at `where`, or else a Violation; a call with the defaults
    given that raises is the other checks' to report (nothing said), one without them that raises is
    this one's. No defaults in the signature: nothing to do."""
    entry = getattr(getattr(sub, "exercise", None), "api", {}).get(name)
    defaults = entry.defaults() if entry is not None else []
    if not defaults or not sub.first_time(f"defaults of {name}"):
        return

    def say(what: str) -> None:
        if watch is None:
            raise Violation(f"{where}: {what}")
        watch.violation(where, what)

    if watch is not None:
        watch.probed.append(where)
    fn = sub.get(name)
    values = [value for _, value in defaults]
    try:
        explicit = fn(*make_args(), *values)
    except Exception:  # noqa: BLE001 - failing at the spec's own values is for the checks of values to say
        return
    left_out = " or ".join(f"`{p}`" for p, _ in defaults)
    given = ", ".join(f"{p}={v!r}" for p, v in defaults)
    spec_default = "the spec's default" + ("s" if len(defaults) > 1 else "")
    signature = f"`{entry.signature}`" if entry is not None else ""
    try:
        omitted = fn(*make_args())
    except Exception as e:  # noqa: BLE001 - the call the spec allows, refused: this probe's finding
        message = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        say(f"{name}() without {left_out} raised {type(e).__name__}: {message}; with {given} ({spec_default}) it "
            f"runs. The spec's signature gives {'them' if len(defaults) > 1 else 'it'} a default: {signature}")
        return
    path = _said_difference(omitted, explicit)
    if path is None or _first_difference(explicit, fn(*make_args(), *values)) is not None:
        return  # the same, or a function that differs from itself on the same inputs: not a default's doing
    path = _trimmed(omitted, path)
    label = _path_label(path, entry.returns() if entry is not None else [])
    said_without, said_with = _at_path(omitted, path), _at_path(explicit, path)
    say(f"{name}() without {left_out} gives {label}{_in_words(said_without)}; with {given} ({spec_default}) it gives "
        f"{label}{_in_words(said_with)}: a default in your signature (or what your code does when the argument is left "
        f"out) differs from the spec's {signature}. Give each parameter the spec's default, so that a caller who "
        "leaves it out gets what the spec promises")


def _said_difference(a: Any, b: Any) -> tuple | None:
    """`_first_difference`, where results are several (a tuple, a list) those that are lists of numbers (a loss
    history) looked at first: a history says a run's difference in fewer words than its weights."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        def numbers(v: Any) -> bool:
            return isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v)
        for i in sorted(range(len(a)), key=lambda i: not numbers(a[i])):
            found = _first_difference(a[i], b[i], (i,))
            if found is not None:
                return found
        return None
    return _first_difference(a, b)


def _first_difference(a: Any, b: Any, path: tuple = ()) -> tuple | None:
    """The path (indices, keys) to the first place where `a` and `b` differ, exactly (a tensor's dtype,
    shape and values, NaN equal to NaN; floats by value), or None where they are the same."""
    import math

    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return path
        a, b = a.detach(), b.detach()
        same = a.dtype == b.dtype and a.shape == b.shape and (
            torch.equal(a, b) or (a.is_floating_point() and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)))
        return None if same else path
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, (*path, i))
            if found is not None:
                return found
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return path
        for k in a:
            found = _first_difference(a[k], b[k], (*path, k))
            if found is not None:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    try:
        return None if type(a) is type(b) and bool(a == b) else path
    except Exception:  # noqa: BLE001 - values that do not compare are not the same
        return path


def _trimmed(value: Any, path: tuple) -> tuple:
    """`path` without its last index where that indexes a list of numbers (a loss history reads better whole)."""
    for i, key in enumerate(path):
        if i == len(path) - 1 and isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
            return path[:-1]
        value = value[key]
    return path


def _at_path(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _path_label(path: tuple, returns: list[str]) -> str:
    """`losses `, `params[2] `, ... (the signature's names for the results), or "" for the whole result."""
    if not path:
        return ""
    head, rest = path[0], path[1:]
    label = returns[head] if len(returns) > 1 and isinstance(head, int) and head < len(returns) else f"[{head!r}]"
    return label + "".join(f"[{key!r}]" for key in rest) + " "


def _in_words(value: Any) -> str:
    """A result in a few numbers: a tensor's first values and shape, a list of numbers' first four."""
    import torch

    def number(v: float) -> str:
        return f"{v:.6g}"
    if isinstance(value, torch.Tensor):
        flat = value.detach().reshape(-1).double().tolist()
        shown = ", ".join(number(v) for v in flat[:4]) + (", ..." if len(flat) > 4 else "")
        return f"[{shown}] ({'x'.join(map(str, value.shape)) or 'a scalar'}, {str(value.dtype).replace('torch.', '')})"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(number(float(v)) for v in value[:4]) + (", ...]" if len(value) > 4 else "]")
    return repr(value)[:120]


def reordered(mapping: dict, seed: int) -> dict:
    """The same items in a seeded order in which no key keeps its place (with two keys or more): a
    params dict handed over in it shows code that reads the dict by its order (`a, b, c = params.values()`)
    rather than by its keys (blind red team, round 8: every probe built its dicts in the docstring's order)."""
    import numpy as np

    keys = list(mapping)
    if len(keys) < 2:
        return dict(mapping)
    rng = np.random.default_rng(seed + 90_000)
    while True:  # a derangement: about e tries
        order = [keys[i] for i in rng.permutation(len(keys))]
        if all(a != b for a, b in zip(order, keys)):
            return {k: mapping[k] for k in order}
