"""Many calls into the submission in one message (harness side, with the halves that run beside it).

A family of configurations is one `sub.batch`, the 2n perturbed inputs of a finite difference one
`sub.run_local`, instead of one round trip per call (issue 17: each round trip is a frame each way between two
processes). What crosses is what single calls would carry: the harness chooses every input (as data,
or as a trusted `sub.local` value such as a non-contiguous layout), the student's process sends back
what the student's functions returned, and every difference, comparison and verdict is computed here.
A forged reply can do no more than forged replies to single calls could.

What single calls via `sub.call` do and these do not: the student's traceback on an error (a batched
call's error comes back as one line). So a harness makes the first call of each function through
`sub.call` and batches the rest. A batched call of a student's function runs under the run-time
`forbid` guard as a single call does; inside `jacobians` (harness code calling the student's function)
the guard is not active, and the static half of `forbid` covers those calls.

`jacobians` runs in the student's process (loaded there by path, see endpoint.Local): it
imports nothing but torch.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

EPS = 1e-6  # graders/gradcheck.EPS: central differences, error O(eps^2)


# ---- run where the submission runs --------------------------------------------------------------------

def _why(e: BaseException) -> str:
    try:
        text = str(e)
    except Exception:  # noqa: BLE001 - a hostile exception's __str__
        text = ""
    return f"raised {type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"


def cotangent_for(shape: Sequence[int]) -> Any:
    """The fixed random vector v of graders/gradcheck.function_blocks (seed 0), for an output's shape."""
    import torch

    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def jacobians(fn: Callable[..., Any], inputs: list, moved: list) -> list:
    """fn's output at `inputs` and v^T J through the submission's backward (v: cotangent_for the
    output's shape), then, without grad, fn's outputs with input i replaced by each row of moved[i]
    in turn (the harness's perturbed copies of it, stacked), stacked in that order when they are
    tensors of one shape (else as a list: the harness says what was wrong). Every call gets fresh
    copies, so a function that writes into its arguments cannot spoil the next point.
    A scalar is differentiated (never grad_outputs, which makes torch import sympy: 0.3-0.9 s)."""
    import torch

    xs = [x.detach().double().requires_grad_(True) for x in inputs]
    out = fn(*xs)
    if not isinstance(out, torch.Tensor):
        return [out, None, []]
    grads: list = [None] * len(xs)
    summed: Any = None
    if out.requires_grad:
        grads = list(torch.autograd.grad((out * cotangent_for(out.shape)).sum(), xs, allow_unused=True))
        summed = through_sum(fn, inputs)
    at: list = []
    with torch.no_grad():
        for i, rows in enumerate(moved):
            for row in rows:
                at.append(fn(*(row.clone() if k == i else x.detach().clone() for k, x in enumerate(inputs))))
    if at and all(isinstance(a, torch.Tensor) and a.shape == at[0].shape for a in at):
        return [out.detach(), grads, torch.stack([a.detach().double() for a in at]), summed]
    return [out.detach(), grads, at, summed]


def through_sum(fn: Callable[..., Any], inputs: list) -> Any:
    """The gradients of fn(...).sum() on fresh copies: the backward then gets what `out.sum().backward()`
    gives it, an expanded tensor of ones (one element seen at every index), where a write into the
    incoming gradient (grad[x < 0] = 0, grad.mul_(...)) spoils every entry or raises. The error's first
    line where it raises."""
    import torch

    xs = [x.detach().double().requires_grad_(True) for x in inputs]
    try:
        out = fn(*xs)
        return list(torch.autograd.grad(out.sum(), xs, allow_unused=True))
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"


# ---- harness side -------------------------------------------------------------------------------------

def call_each(sub: Any, calls: list) -> list:
    """[[fn, args, kwargs], ...] -> [[True, result] or [False, "raised Error: first line"], ...]: the calls
    made in one message by `sub.batch` (graders/sandbox/remote.py), each as a single call would run, a
    handle's under the run-time `forbid` guard, a `sub.local` callable as harness code; an error comes
    back in its place, in words, and the others still run."""
    from .sandbox.endpoint import RemoteError

    replies = sub.batch([(fn, None, tuple(args), dict(kwargs)) for fn, args, kwargs in calls])
    return [[False, _why(r)] if isinstance(r, RemoteError) else [True, r] for r in replies]


def expanded_error(label: str, raised: str) -> dict:
    """The block of a backward that raised on the expanded gradient of out.sum() (through_sum)."""
    return {"name": label, "error": (
        f"raised {raised}: the incoming gradient torch passes for out.sum() is one value seen at every index "
        "(expanded); a backward that writes into its incoming gradient (grad[x < 0] = 0, grad.mul_(...)) breaks "
        "there. Work on a copy (grad = grad.clone()) or out of place")}


def function_blocks(sub: Any, fn: Any, inputs: Sequence[Any], names: Sequence[str], eps: float = EPS,
                    exact: Callable[..., Any] | None = None) -> list[dict]:
    """graders/gradcheck.function_blocks in one message: the Jacobians of `fn` (a handle, or a trusted
    `sub.local` callable that calls the submission) w.r.t. each input, through the submission's
    backward and by central differences of its forward that this side computes from the outputs at
    the points it chose, both contracted with the same fixed vector v. A tensor cut from the graph
    (.detach(), .item()) reads as a zero analytic gradient: a failure that says so, not a crash.
    `exact`: the harness's own function (torch ops, run here), the one `fn` should compute; where the
    submission's float64 output agrees with it to rounding, each block carries the exact v^T J (autograd,
    here), and the judge holds the hand backward to float64's rounding, which finite differences of the
    forward (or a float32 backward) never reach."""
    import torch

    from .api import expect_tensor
    from .kinds.gradcheck import block, central_differences, perturbed, term_scale

    inputs = [x.detach().double() for x in inputs]
    moved = [perturbed(x, eps) for x in inputs]  # rows x_i + eps e_j, x_i - eps e_j for every entry j
    out, grads, at, *rest = sub.run_local(jacobians, fn, inputs, moved)
    summed = rest[0] if rest else None
    what = names[0].split(":")[0]
    out = expect_tensor(out, f"{what} (its output)", finite=False)
    # the output's own dtype at these float64 inputs: a float32 one makes the finite differences read its
    # rounding, which the judge then says instead of a cause in the gradient (graders/kinds/gradcheck.py)
    dtype = str(out.dtype).replace("torch.", "")
    points = sum(len(m) for m in moved)
    if not isinstance(grads, list) or len(grads) != len(inputs) or len(at) != points:
        raise ValueError("a malformed reply from the finite differences")
    v = cotangent_for(out.shape)
    if isinstance(at, torch.Tensor):
        at = expect_tensor(at, f"{what} (its output)", shape=(points, *out.shape), finite=False)
        values = (at.double() * v).reshape(points, -1).sum(dim=1).tolist()
    else:
        values = [float((expect_tensor(a, f"{what} (its output)", shape=tuple(out.shape), finite=False).double()
                         * v).sum()) for a in at]
    ones = (at.double().reshape(points, -1).sum(dim=1).tolist() if isinstance(at, torch.Tensor)
            else [float(a.double().sum()) for a in at])  # (each checked above)
    exact_grads = exact_vjp(exact, inputs, out, v) if exact is not None else None
    blocks: list[dict] = []
    expanded: list[dict] = []
    start = 0
    for i, (x, name) in enumerate(zip(inputs, names)):
        numeric = central_differences(values[start:start + 2 * x.numel()], x.shape, eps)
        numeric_ones = central_differences(ones[start:start + 2 * x.numel()], x.shape, eps)
        start += 2 * x.numel()
        g = grads[i]
        analytic = torch.zeros_like(x) if g is None else expect_tensor(g, f"the gradient of {name}",
                                                                       shape=tuple(x.shape), finite=False)
        blocks.append(block(name, analytic, numeric, exact=None if exact_grads is None else exact_grads[i],
                            exact_floor=1.0, scale=term_scale(v, out, x)))
        if summed is None:
            continue
        label = f"{name}, through {what}(...).sum().backward() (an expanded incoming gradient)"
        if isinstance(summed, str):  # the backward raised on the gradient torch passes for a sum
            if not expanded:
                expanded.append(expanded_error(label, summed))
            continue
        s = summed[i] if isinstance(summed, list) and i < len(summed) else None
        analytic_ones = torch.zeros_like(x) if s is None else expect_tensor(s, f"the gradient of {label}",
                                                                            shape=tuple(x.shape), finite=False)
        expanded.append(block(label, analytic_ones, numeric_ones, scale=term_scale(1.0, out, x)))
    # (after every block of the fixed direction: that one says a wrong formula first)
    return [dict(b, out_dtype=dtype, **overflowed(out, inputs)) for b in blocks + expanded]


def overflowed(out: Any, inputs: list) -> dict:
    """{"forward_nonfinite": {"index", "value", "input"}} where the forward's own output at the checked point
    is nan or inf (its first such entry, and the input's entry there when the function has one input of the
    output's shape: elementwise), else {}: a gradient and finite differences taken through it are nan too, and the
    judge then names the forward, not the hand backward (a blind red team's tanh as (e^x - e^-x)/(e^x + e^-x))."""
    import torch

    bad = ~torch.isfinite(out.detach())
    if not bool(bad.any()):
        return {}
    i = int(bad.reshape(-1).nonzero()[0, 0])
    found = {"index": [int(j) for j in torch.unravel_index(torch.tensor(i), out.shape)] if out.dim() else [],
             "value": float(out.detach().reshape(-1)[i])}
    if len(inputs) == 1 and tuple(inputs[0].shape) == tuple(out.shape):
        found["input"] = float(inputs[0].reshape(-1)[i])
    return {"forward_nonfinite": found}


def exact_vjp(exact: Callable[..., Any], inputs: list, out: Any, v: Any) -> list | None:
    """v^T J of the harness's `exact` at `inputs` (float64, autograd here), one tensor per input, when the
    submission's output `out` is float64 and agrees with exact's to rounding (1e-13 of its largest entry):
    else None (a wrong forward is another check's finding; the hand backward is judged against its own
    forward's finite differences alone)."""
    import torch

    from .kinds.gradcheck import inexactness

    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    want = exact(*xs)
    if out.dtype != torch.float64 or want.shape != out.shape or \
            inexactness(out.detach().numpy(), want.detach().double().numpy(), floor=1.0) > 1e-13:
        return None
    grads = torch.autograd.grad((want * v).sum(), xs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g.detach() for x, g in zip(xs, grads)]


def _parameters(sub: Any, name: str) -> list[str]:
    """The spec's parameter names of API `name` (`f(Z, y, margin=1.0) -> ...` -> Z, y, margin)."""
    entry = getattr(getattr(sub, "exercise", None), "api", {}).get(name)
    inside = entry.signature.partition("(")[2].partition(")")[0] if entry is not None else ""
    return [p.split("=")[0].split(":")[0].strip().lstrip("*") for p in inside.split(",") if p.strip()]


class Family:
    """A family's cases, in order, each one call of an API function on one configuration. The first
    configuration of each function is called through `sub.call` (the run-time forbid guard, the
    spec's shape and dtype, arguments unmodified; an error raises with the student's traceback); the
    others wait for `run()`, one message for all, and each is judged here as `sub.call` would: the
    spec's shape and dtype, the tensors passed compared with the harness's copies, then `finish`.
    A configuration that fails that way becomes its case's error, in words. `given_copies`: the arguments are
    the harness's own copies and another check owns the in-place rule (exercise-4's invariants: one bug, one
    deduction), so what a call does to them is not this family's to judge."""

    def __init__(self, sub: Any, finish: Callable[[str, Any, Any], dict], given_copies: bool = False):
        self.sub, self.finish = sub, finish  # finish(case name, returned tensor, target) -> the case
        self.given_copies = given_copies
        self.cases: list[dict | None] = []
        self.pending: list[tuple] = []
        self.called: set[str] = set()

    def add(self, case: str, name: str, args: Sequence[Any], target: Any = None,
            dims: dict[str, int] | None = None, **kwargs: Any) -> None:
        if name not in self.called:
            self.called.add(name)
            self.cases.append(self.finish(case, self.sub.call(name, *args, dims=dims, given_copies=self.given_copies,
                                                              **kwargs), target))
            return
        from .kinds.invariants import copies

        names = _parameters(self.sub, name)
        named = {names[k] if k < len(names) else f"#{k + 1}": a for k, a in enumerate(args)}
        self.pending.append((len(self.cases), case, name, list(args), kwargs, (named, copies(**named)), target, dims))
        self.cases.append(None)

    def run(self) -> list[dict]:
        from .api import check_result
        from .kinds.invariants import Violation, unchanged

        replies = call_each(self.sub, [[self.sub.get(name), args, kwargs]
                                       for _, _, name, args, kwargs, _, _, _ in self.pending])
        if not isinstance(replies, list) or len(replies) != len(self.pending):
            raise ValueError("a malformed reply to a family of calls")
        for (i, case, name, args, _, kept, target, dims), reply in zip(self.pending, replies):
            ok, value = reply if isinstance(reply, (list, tuple)) and len(reply) == 2 else (False, "no reply")
            try:
                if not ok:
                    raise _Failed(str(value))
                named, copied = kept
                try:
                    if not self.given_copies:
                        unchanged(copied, f"{name}()", **named)
                except Violation as v:
                    raise _Failed(f"raised Violation: {v}") from None
                self.cases[i] = self.finish(case, check_result(self.sub.exercise, name, value, tuple(args), dims),
                                            target)
            except _Failed as e:
                self.cases[i] = {"name": case, "error": str(e)}
            except Exception as e:  # noqa: BLE001 - this configuration's result unusable: its failure, in words
                self.cases[i] = {"name": case, "error": _why(e)}
        self.pending = []
        return [c for c in self.cases if c is not None]


class _Failed(Exception):
    pass


def bound(fn: Callable[..., Any], rest: list, kwargs: dict) -> Callable[..., Any]:
    """fn with its trailing arguments bound (built where the submission runs, via sub.local):
    bound(cross_entropy, [y], {})(Z) = cross_entropy(Z, y)."""
    return lambda *xs: fn(*xs, *rest, **kwargs)


def with_gradient(fn: Callable[..., Any]) -> Callable[..., list]:
    """x, *rest -> [fn(x, *rest), d fn / d x] (None when the value is not on x's graph), built where the
    submission runs (via sub.local), so that the gradient is taken there: a call in `each`'s list."""
    return lambda x, *rest: _value_and_gradient(fn, x, rest)


def _value_and_gradient(fn: Callable[..., Any], x: Any, rest: tuple) -> list:
    import torch

    x = x.detach().clone().requires_grad_(True)
    value = fn(x, *rest)
    if not isinstance(value, torch.Tensor) or not value.requires_grad:
        return [value, None]
    (grad,) = torch.autograd.grad(value.sum(), x, allow_unused=True)
    return [value.detach(), grad]


def call_all(sub: Any, calls: list, what: str) -> list:
    """`call_each(sub, calls)`, every call expected to succeed: the first failure is an ApiError
    naming `what` (the configuration) and the error, in words."""
    from .api import ApiError

    replies = call_each(sub, calls)
    if not isinstance(replies, list) or len(replies) != len(calls):
        raise ValueError("a malformed reply to a list of calls")
    values = []
    for reply in replies:
        ok, value = reply if isinstance(reply, (list, tuple)) and len(reply) == 2 else (False, "no reply")
        if not ok:
            raise ApiError(f"{what}: {value}")
        values.append(value)
    return values


def backward_kept_here(fn, inputs) -> dict:
    """In the student's process (sub.run_local): fn on fresh copies of `inputs`, then the backward of
    <out, v> twice on that one forward (retain_graph=True, as two losses sharing a layer do). What it
    finds: whether the output handed to the caller and the inputs are as they were after the first
    backward, and whether the second backward gave the first one's gradients ("differs") or raised (its
    first line). {} when the forward or the first backward does not run (the gradient checks say so).
    Exercises 8 (conv2d, max_pool2d) and 9 (RNNCellFunction.apply) read it as their invariants."""
    import torch

    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    try:
        out = fn(*leaves)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return {}
        out_before, args_before = out.detach().clone(), [x.detach().clone() for x in leaves]
        loss = (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)).sum()
        first = torch.autograd.grad(loss, leaves, retain_graph=True, allow_unused=True)
    except Exception:  # noqa: BLE001 - see above
        return {}

    def same(a, b):
        return a.shape == b.shape and (torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))
    found = {"output changed": not same(out.detach(), out_before),
             "arguments changed": [i for i, (x, b) in enumerate(zip(leaves, args_before)) if not same(x.detach(), b)],
             "second": None}
    try:
        second = torch.autograd.grad(loss, leaves, allow_unused=True)
        if not all((g is None) == (h is None) and (g is None or same(g, h)) for g, h in zip(first, second)):
            found["second"] = "differs"
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        said = (str(e).strip().splitlines() or [""])[0].split(" Hint:")[0]  # (torch's hint is on anomaly detection)
        found["second"] = f"{type(e).__name__}: {said[:200].rstrip('.')}"
    return found


def gradients_alone_here(fn, inputs) -> dict:
    """In the student's process (sub.run_local): the gradients of <fn(...), v> for every input, all of them
    requiring grad ("every"), then for each input i with it alone requiring grad ("alone"[i]: a tensor, None,
    or the first line of what backward raised). A backward that reads ctx.needs_input_grad right gives each
    input the same gradient whatever the others require; one that guards a gradient by another input's flag
    (needs_input_grad[0] for the weight's) gives None where that other input needs none (the images of a
    network's first layer never do; xs and h_0 in an RNN's training). {} when the forward or the first
    backward does not run. Exercises 8 and 9 read it as their invariants."""
    import torch

    def grads(mask):
        leaves = [x.detach().clone().requires_grad_(m) for x, m in zip(inputs, mask)]
        out = fn(*leaves)
        v = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)
        return torch.autograd.grad((out * v).sum(), [q for q, m in zip(leaves, mask) if m], allow_unused=True)
    try:
        every = grads([True] * len(inputs))
    except Exception:  # noqa: BLE001 - the gradient checks report a backward that fails with every input
        return {}
    alone = []
    for i in range(len(inputs)):
        try:
            g = grads([j == i for j in range(len(inputs))])[0]
            alone.append(None if g is None else g.detach())
        except Exception as e:  # noqa: BLE001 - the finding, said by the harness
            alone.append(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}")
    return {"every": [None if g is None else g.detach() for g in every], "alone": alone}


def kept_and_alone_here(fn, inputs) -> dict:
    """backward_kept_here and gradients_alone_here on the same inputs, in one message."""
    return {"kept": backward_kept_here(fn, inputs), "alone": gradients_alone_here(fn, inputs)}


def function_kept_and_alone_here(function, inputs) -> dict:
    """kept_and_alone_here on an autograd.Function's apply."""
    return kept_and_alone_here(function.apply, inputs)


def trained_in_place_here(fn, args) -> Any:
    """In the student's process (sub.run_local): train(*args), args[0] a dict of parameters, and what of its
    contract it broke: ["dict"] where (params, losses)'s params is not the dict it was given, ["entry", k] where
    params[k] is no longer the tensor it was (rebound), ["stale", k] where a view of params[k] taken before the
    call does not see its new values (the update gave the parameter new memory: p.data = ...), ["returned", k]
    where the returned dict's k is another tensor. A string (the first line of what it raised) for a call that
    raised. invariants.trains_in_place judges it."""
    import torch

    params = args[0]
    before = {k: (v, v.detach()) for k, v in params.items() if isinstance(v, torch.Tensor)}
    try:
        out = fn(*args)
    except Exception as e:  # noqa: BLE001 - the checks of values report a call that raises
        return _why(e)
    got = out[0] if isinstance(out, (tuple, list)) and out else None
    found: list = [] if got is params else [["dict"]]
    for k, (tensor, view) in before.items():
        if params.get(k) is not tensor:
            found.append(["entry", k])
        elif not torch.equal(view, tensor.detach()):
            found.append(["stale", k])
        if isinstance(got, dict) and got is not params and got.get(k) is not tensor:
            found.append(["returned", k])
    return found


def aliases_here(fn, calls) -> list:
    """In the student's process (sub.run_local): fn(*args) for each `args` of `calls`, and for each call the
    pairs [j, i] where the result's tensor j (the result itself, or item j of a tuple or list) shares memory
    with the tensor argument i: an argument handed back as it came (`w = w0` never copied), a view of it
    (`w0.detach()`, `w0[:]`) or a tensor over its numpy array. A string (the first line of what it raised)
    for a call that raised. invariants.returns_fresh judges it."""
    import torch

    def memory(t):
        try:
            storage = t.untyped_storage()
            return storage.data_ptr() if storage.nbytes() > 0 else 0
        except Exception:  # noqa: BLE001 - no storage to compare (a meta or a subclass tensor): nothing shared
            return 0
    found: list = []
    for args in calls:
        try:
            out = fn(*args)
        except Exception as e:  # noqa: BLE001 - the checks of values report a call that raises
            found.append(_why(e))
            continue
        outs = out if isinstance(out, (tuple, list)) else (out,)
        found.append([[j, i] for j, o in enumerate(outs) if isinstance(o, torch.Tensor) and memory(o)
                      for i, a in enumerate(args) if isinstance(a, torch.Tensor) and memory(a) == memory(o)])
    return found


def _kept(value):
    """A copy of `value` taken now, to compare it with later (_changed_at): tensors cloned (detached), lists,
    tuples and dicts copied item by item, anything else (a number, a string) as it is."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return [_kept(v) for v in value]
    if isinstance(value, dict):
        return {k: _kept(v) for k, v in value.items()}
    return value


def _said(value) -> str:
    """A number, or a short account of anything else, for a message."""
    try:
        return f"{float(value):.6g}"
    except Exception:  # noqa: BLE001 - not a number: its type
        return type(value).__name__


def _changed_at(now, kept, path: list) -> list | None:
    """Where `now` no longer equals `kept` (its copy, taken by _kept when it was returned): [path, what it was, what
    it is], the path a list of parts ("[2]", "[1, 0]", " (its length)"); None where it is the same (NaN where NaN
    was is the same)."""
    import torch

    if isinstance(kept, torch.Tensor):
        if not isinstance(now, torch.Tensor):
            return [path, "a tensor", type(now).__name__]
        now = now.detach()
        if now.shape != kept.shape or now.dtype != kept.dtype:
            return [path + [" (its shape or dtype)"], str(tuple(kept.shape)), str(tuple(now.shape))]
        differ = now != kept
        if kept.is_floating_point():
            differ &= ~(now.isnan() & kept.isnan())
        if not bool(differ.any()):
            return None
        if kept.dim() == 0:
            return [path, _said(kept), _said(now)]
        index = tuple(int(i) for i in differ.nonzero()[0].tolist())
        return [path + [f"[{', '.join(map(str, index))}]"], _said(kept[index]), _said(now[index])]
    if isinstance(kept, list):
        if not isinstance(now, (list, tuple)) or len(now) != len(kept):
            return [path + [" (its length)"], str(len(kept)), str(len(now)) if isinstance(now, (list, tuple)) else "-"]
        for i, (a, b) in enumerate(zip(now, kept)):
            found = _changed_at(a, b, path + [f"[{i}]"])
            if found is not None:
                return found
        return None
    if isinstance(kept, dict):
        if not isinstance(now, dict) or set(now) != set(kept):
            return [path + [" (its keys)"], str(sorted(map(str, kept))), "other keys"]
        for k in kept:
            found = _changed_at(now[k], kept[k], path + [f"[{k!r}]"])
            if found is not None:
                return found
        return None
    try:
        same = bool(now == kept) or (now != now and kept != kept)
    except Exception:  # noqa: BLE001 - a value that cannot be compared is not judged
        same = True
    return None if same else [path, _said(kept), _said(now)]


def overwritten_here(fn, calls) -> list:
    """In the student's process (sub.run_local): fn(*args) for each `args` of `calls`, in order, each result kept
    as it was returned with a copy of it taken at once; then, after the last call, for each call whether its result
    still equals that copy: None where it does, [path, was, is] (_changed_at; the path's first part the result's
    item, "[1]" for item 1 of a tuple) where a later call wrote into it (a module-level buffer or list, a mutable
    default argument, refilled and handed out again). A string (the first line of what it raised) for a call
    that raised. invariants.results_kept judges it."""
    results: list = []
    for args in calls:
        try:
            out = fn(*args)
        except Exception as e:  # noqa: BLE001 - the checks of values report a call that raises
            results.append(_why(e))
            continue
        results.append((out, _kept(out)))
    return [row if isinstance(row, str) else _changed_at(row[0], row[1], []) for row in results]


def reads_changed_here(fn, args, index: int, factor: float) -> Any:
    """In the student's process (sub.run_local): fn(*args) on the tensors `args` (copies of them), then the caller's
    in-place change of argument `index` (multiplied by `factor`, `.mul_`, the same tensor object), fn(*args) again
    on those very tensors, and fn on fresh copies of them as they are now. Returns [again, fresh] (copies of both
    results): a function that reads its arguments gives the same for both, one that answers from what it kept of
    an earlier call keyed by the tensor (functools.lru_cache, a dict keyed by id(X) or X.data_ptr(), which an
    in-place change keeps) does not. A string (the first line of what it raised) for a call that raised.
    invariants.reads_changed judges it."""
    import torch

    given = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        fn(*given)
        with torch.no_grad():
            given[index].mul_(factor)
        again = fn(*given)
        fresh = fn(*[a.clone() if isinstance(a, torch.Tensor) else a for a in given])
    except Exception as e:  # noqa: BLE001 - the checks of values report a call that raises
        return _why(e)
    return [_kept(again), _kept(fresh)]
