"""exercise-6 probes: run the student's optimizers on small seeded problems (float64) and return
plain numbers; the judging happens in the parent (graders/kinds/agreement.py, graders/kinds/convergence.py,
graders/kinds/contract.py).

Where torch ships the same optimizer, the probe also runs torch.optim's on the same problem with the
same hyper-parameters and returns its trajectory as the `target`. The parent compares the student's
values with the target measured in the *reference's* child, so patching torch.optim in a
submission changes nothing but the submission's own, unused, target.

The contract checks (weight decay, parameter groups, state_dict, .grad None, the rest of
torch.optim.Optimizer's contract) compare the student's optimizer with *itself*: the same run done
two ways that torch.optim's contract makes equal (weight_decay = wd on L, or weight_decay = 0 on
L + wd/2 ||w||^2; W2 in a second group, or alone with that group's values; ...). A wrong update
formula is charged once, by its own trajectory check, not again by every contract check.
The student's classes are only called, never inspected (no issubclass): what makes an Optimizer here
is what it does.

The steps themselves run in the student's process (sub.run_local, the `*_here` functions below): one
message per property or convergence check, not one per step, on the harness's own tensors, whose final
values come back synced. What is judged is checked here first: a reported trajectory must start where
the tensors started and end where they are (checked_rows), losses and gradients are recomputed here.
"""

import io
import math
import os
import traceback
import weakref
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dldiy.graders.api import ApiError
from dldiy.graders.kinds.contract import Properties
from dldiy.graders.kinds.parity import measure_parity
from dldiy.graders.kinds.placement import Placed, measure_placement, values_run, values_run_there
from dldiy.graders.data import gaussian_blobs, seeded_once
from dldiy.graders.verdict import departure as trajectory_departure

DTYPE = torch.float64
FIRST_ORDER = ("GD", "Momentum", "Nesterov", "RMSProp", "Adam")
RTOL, ATOL = 1e-9, 1e-12  # two float64 runs of the same arithmetic agree far below this


# --- the optimizers: the student's, and torch's twin --------------------------------------------

def student_optimizer(sub, name: str):
    """The student's class `name` (a handle), checked once per student's process: callable and, for the
    first-order optimizers, a step() of its own (inherited_step_here). The handle and that finding are kept
    for the process's later checks: two messages a check less. (A class rebound at run time changes only
    the submission's own answers; a call of torch.optim's steps is the run-time guard's, at every call.)"""
    if name in sub.forbidden:
        sub.get(name)  # the rule broken: the check fails, in words (a Violation)
    known = _CLASSES.setdefault(sub.endpoint, {})
    if name not in known:
        cls = sub.get(name)
        if not getattr(cls, "is_callable", False):
            raise ApiError(f"`{name}` must be a class (a torch.optim.Optimizer subclass); it is not callable")
        known[name] = (cls, sub.run_local(inherited_step_here, cls) if name in FIRST_ORDER else "")
    cls, inherited = known[name]
    if inherited:
        raise ApiError(f"{name}.step is {inherited}: the exercise asks for the update written by you (from "
                       f"scratch); subclass torch.optim.Optimizer and write step()")
    return cls


# the student's process (its endpoint) -> {optimizer name: (its class's handle, where its step comes from, or
# "")}; weak, so that it keeps no student's process alive (a replacement after a timeout has an endpoint of its own)
_CLASSES: "weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, str]]]" = weakref.WeakKeyDictionary()


def inherited_step_here(cls) -> str:
    """In the student's process: where `cls.step` comes from when it is not the submission's own (a subclass of
    torch.optim.SGD inherits torch's step), else "". A rule about the student's own code: the forbid list
    names the calls of torch.optim's steps from it; this is the inherited one, which no call shows."""
    import inspect

    import dldiy.graders

    step = getattr(cls, "step", None)
    try:
        step = inspect.unwrap(step)  # (@torch.no_grad() wraps the student's own)
    except (ValueError, TypeError):
        pass
    code = getattr(step, "__code__", None)
    if code is None:
        return ""  # not a Python function: the checks of values judge what it does
    theirs = [os.path.dirname(torch.__file__), os.path.dirname(dldiy.graders.__file__)]  # (and forbid's guards)
    if any(code.co_filename.startswith(d + os.sep) for d in theirs) and \
            getattr(step, "__qualname__", "") != "Optimizer.step":
        return f"{getattr(step, '__qualname__', 'step')}, inherited from {getattr(step, '__module__', 'torch')}"
    return ""


def build(make, params, name: str, **hyper):
    """`make(params, **hyper)`, checked to hold what Optimizer.__init__ sets up (param_groups, state)."""
    opt = make(params, **hyper)
    try:
        opt.param_groups[0]["params"]  # noqa: B018  # read only to see that they exist
        opt.state  # noqa: B018
    except (AttributeError, TypeError, IndexError, KeyError):
        raise ApiError(f"{name}(params, ...) has no usable param_groups/state: call "
                       "super().__init__(params, defaults) in __init__") from None
    return opt


def torch_optimizer(name: str):
    """torch.optim's optimizer doing what the exercise's `name` does, with the same keyword names."""
    if name in ("GD", "Momentum"):
        return torch.optim.SGD
    if name == "Nesterov":
        return lambda params, **hyper: torch.optim.SGD(params, nesterov=True, **hyper)
    return {"RMSProp": torch.optim.RMSprop, "Adam": torch.optim.Adam}[name]


TWINS = {"GD": "torch.optim.SGD", "Momentum": "torch.optim.SGD(momentum=mu)",
         "Nesterov": "torch.optim.SGD(momentum=mu, nesterov=True)", "RMSProp": "torch.optim.RMSprop",
         "Adam": "torch.optim.Adam"}


def hyper(table: dict) -> dict:
    """Spec (TOML) hyper-parameters as Python ones: betas = [0.9, 0.99] is a tuple."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def describe(name: str, table: dict) -> str:
    return f"{name}({', '.join(f'{k}={tuple(v) if isinstance(v, list) else v}' for k, v in table.items())})"


def flat(params) -> list[float]:
    return torch.cat([p.detach().reshape(-1).double() for p in params]).tolist()


# --- the coupled problem of the trajectory checks (against torch.optim) --------------------------

def net_problem(seed: int, n: int = 16, width: int = 3, device: str = "cpu"):
    """A two-layer tanh regression, loss(W1, W2) = mean((tanh(X W1) W2 - Y)^2): non-quadratic, with
    two parameters of the same shape (a state shared between parameters shows), W2 non-contiguous (a
    transposed tensor), from the seed. (Parameters of other shapes: the contract checks' problem.)"""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, width, generator=g, dtype=DTYPE)
    Y = torch.randn(n, width, generator=g, dtype=DTYPE)
    W1 = 0.7 * torch.randn(width, width, generator=g, dtype=DTYPE)
    W2 = (0.7 * torch.randn(width, width, generator=g, dtype=DTYPE)).t()
    if device != "cpu":  # the data where the parity check's parameters are (the initial values stay here)
        X, Y = X.to(device), Y.to(device)

    def loss(W1, W2):
        return ((torch.tanh(X @ W1) @ W2 - Y) ** 2).mean()

    def gradient(W1, W2):
        """(dloss/dW1, dloss/dW2) in closed form: a graph and its backward() cost ~5 times as much (~95 us a
        step), and each trajectory check steps tens of times a seed, in the student's process and here."""
        with torch.no_grad():
            T = torch.tanh(X @ W1.detach())
            dR = (2.0 / Y.numel()) * (T @ W2.detach() - Y)
            return [X.t() @ ((dR @ W2.detach().t()) * (1 - T * T)), T.t() @ dR]

    def along(rows) -> list[float]:
        """The loss at each row of parameters (W1's entries, then W2's, as flat() gives them), all rows in
        one batched pass: a dozen small tensors a row cost ten times as much."""
        with torch.no_grad():
            R = torch.as_tensor(np.asarray(rows, dtype=float), dtype=DTYPE).reshape(-1, 2, width, width)
            return ((torch.tanh(X @ R[:, 0]) @ R[:, 1] - Y) ** 2).mean(dim=(1, 2)).tolist()
    loss.gradient, loss.along = gradient, along
    return [W1, W2], loss


def run_first_order(make, name: str, config: dict, seed: int, steps: int) -> tuple[list[list[float]], list[float]]:
    """torch.optim's twin, here: parameters after each step (row 0: the initial values) and the loss
    before each step."""
    init, loss_fn = net_problem(seed)
    params = [w.clone().requires_grad_() for w in init]
    opt = build(make, params, name, **hyper(config["hyper"]))
    rows = [flat(params)]
    for _ in range(steps):
        clear_grads(params)
        accumulate(params, loss_fn.gradient(*params))  # (as descend() gives the student's optimizer its gradients)
        opt.step()
        rows.append(flat(params))
    return rows, losses_along(rows, seed)


def losses_along(rows, seed: int) -> list[float]:
    """The loss of the trajectory checks' problem at each row of parameters but the last, computed here (the
    loss before each step is the loss at that step's starting row): never a number the student's process
    reported; the same computation for the student's rows as for torch.optim's."""
    return net_problem(seed)[1].along(rows[:-1]) if len(rows) > 1 else []


def against_torch(sub, seed, p):
    """Every configuration run twice, by the student's optimizer (in its process, all of a check's runs
    in one message) and by torch.optim's (here). Configurations after the first are edge values of the
    hyper-parameters that torch.optim accepts (lr = 0, momentum = 0, alpha = 0, b1 = 0): a constructor
    that refuses them, or a step that divides by them, is the finding. When the message raises, the runs
    again one by one: the first's error raises with the student's traceback, an edge configuration's is
    reported in words as that configuration's failure. The edge configurations, a property of the constructor
    and the update's formula rather than of the seed's problem, run at the first seed of the student's process
    only, their cases marked "once"."""
    cases = []
    init, _ = net_problem(seed)
    configs = p["configs"]
    if configs and not sub.first_time(f"edges of {configs[0]['optimizer']}"):
        configs = configs[:1]
    todo = [(config, config.get("steps", p["steps"])) for config in configs]

    def fresh(config, steps):  # (keep: the optimizer comes back by handle, its state's dtypes read by near_miss)
        return {"params": [w.clone().requires_grad_() for w in init], "values": config["hyper"],
                "loss": ["net", seed], "steps": steps, "keep": True}
    name = todo[0][0]["optimizer"] if todo else ""
    try:
        done = run_there(sub, name, [fresh(*t) for t in todo])
    except Exception:  # noqa: BLE001 - which configuration raised: each alone
        done = run_there(sub, name, [fresh(*todo[0])])
        for t in todo[1:]:
            try:
                done += run_there(sub, name, [fresh(*t)])
            except Exception as e:  # noqa: BLE001 - the submission's error on this edge configuration only
                done.append(f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    for k, (config, steps) in enumerate(todo):
        name = config["optimizer"]
        label = describe(name, config["hyper"])
        whats = ("parameters W1, W2 after each step (row 0: initial)", "loss before each step")
        once = {"once": True} if k > 0 else {}
        if isinstance(done[k], str):
            edge = config.get("edge", "")
            for what in whats:
                cases.append({"name": f"{label}: {what}", **once, "error": (
                    f"{done[k]}; {TWINS[name]} accepts {edge or 'these values'} and runs: an __init__ that refuses "
                    "a hyper-parameter at the edge of its range (lr = 0 freezes the parameters, as a warm-up "
                    "scheduler starts; momentum = 0 is plain gradient descent; b1 = 0 is no averaging), or a step "
                    "that divides by it?")})
            continue
        run = done[k]
        mine = (run["rows"].tolist(), losses_along(run["rows"], seed))
        twin = run_first_order(torch_optimizer(name), name, config, seed, steps)
        hint = near_miss(name, run["rows"], twin[0], run.get("opt"))
        for (what, values, target) in zip(whats, mine, twin):
            cases.append({"name": f"{label}: {what}", "shape": list(np.shape(target)), "values": values,
                          "target": target, **once, **({"hint": hint} if hint else {})})
    return {"cases": cases}


def near_miss(name: str, rows, target, opt) -> str | None:
    """The hint for a trajectory that departs from torch's by a relative 1e-5 at most (the update's formula is
    torch's, its arithmetic less exact: the check's own hint, about the formula, would mislead): a state
    tensor that is not float64 for the float64 parameters (read from the optimizer, by handle), else the
    usual causes in words. None when the run agrees, or departs by more."""
    a, b = np.asarray(rows, dtype=float), np.asarray(target, dtype=float)
    if a.shape != b.shape or not np.isfinite(a).all():
        return None
    off = np.flatnonzero((np.abs(a - b) > ATOL + RTOL * np.abs(b)).any(axis=1))
    if not off.size or off[0] == 0:
        return None
    # the first step that departs (the cause, not its consequences): its move against torch's, in norm
    step = int(off[0])
    mine, theirs = a[step] - a[step - 1], b[step] - b[step - 1]
    rel = float(np.linalg.norm(mine - theirs) / max(float(np.linalg.norm(theirs)), 1e-300))
    if rel > 1e-3:
        return None
    small = (f"Step {step}, the first that departs from {TWINS[name]}'s, moves the parameters by a step that differs "
             f"from torch's by a relative {rel:.1g} (in norm): the update is torch's up to a detail of its arithmetic.")
    try:
        state = opt.state if isinstance(opt.state, dict) else {}
        low = next((f"self.state[...][{key!r}] is {value.dtype}" for buffers in state.values()
                    if isinstance(buffers, dict) for key, value in buffers.items()
                    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.dtype != DTYPE), None)
    except Exception:  # noqa: BLE001 - a state that cannot be read: the causes in words
        low = None
    if low:
        return (f"{small} {low} for float64 parameters: a buffer made with torch.zeros(p.shape) (float32, whatever "
                "p's dtype) rounds every step; create it with torch.zeros_like(p).")
    return (f"{small} Likely cause (the state is float64): "
            + ("eps added elsewhere than to sqrt(s^) (the paper's 'efficient form' lr sqrt(1 - b2^t) / (1 - b1^t) "
               "* m / (sqrt(s) + eps) is eps / sqrt(1 - b2^t) in torch's form: torch.optim.Adam divides m^ by "
               "sqrt(s^) + eps, s^ = s / (1 - b2^t)); or " if name == "Adam" else
               "eps added elsewhere than to sqrt(s) (torch: g / (sqrt(s) + eps)); or " if name == "RMSProp" else "")
            + "a constant or an intermediate in float32 (torch.tensor(x) or torch.zeros(shape) without dtype).")


# --- the contract checks: the student's optimizer against itself ---------------------------------

def separable_problem(seed: int):
    """loss = l(W1) + l(b) + l(W2), one term per parameter, so that a parameter's trajectory does not
    depend on the others': a run on some parameters can be compared with a run on all of them.
    W1 (3, 2), b (2,), W2 (2, 3) non-contiguous (a transposed tensor)."""
    g = torch.Generator().manual_seed(seed + 7)
    X, Y1 = torch.randn(12, 3, generator=g, dtype=DTYPE), torch.randn(12, 2, generator=g, dtype=DTYPE)
    Z, Y2 = torch.randn(12, 2, generator=g, dtype=DTYPE), torch.randn(12, 3, generator=g, dtype=DTYPE)
    c = torch.randn(2, generator=g, dtype=DTYPE)
    init = [0.7 * torch.randn(3, 2, generator=g, dtype=DTYPE), 0.5 * torch.randn(2, generator=g, dtype=DTYPE),
            (0.7 * torch.randn(3, 2, generator=g, dtype=DTYPE)).t()]
    parts = [Term(lambda W: ((torch.tanh(X.to(W.dtype) @ W) - Y1.to(W.dtype)) ** 2).mean(),
                  lambda W: tanh_slope(X.to(W.dtype), W, Y1.to(W.dtype))),
             Term(lambda b: ((b - c.to(b.dtype)) ** 2).sum() + 0.1 * (b ** 4).sum(),
                  lambda b: 2 * (b - c.to(b.dtype)) + 0.4 * b ** 3),
             Term(lambda W: ((torch.tanh(Z.to(W.dtype) @ W) - Y2.to(W.dtype)) ** 2).mean(),
                  lambda W: tanh_slope(Z.to(W.dtype), W, Y2.to(W.dtype)))]
    return init, parts


class Term:
    """One term of the separable loss: its value (differentiable) and its gradient in closed form. The
    contract checks take thousands of steps per check: the closed form is a few ops, where a graph and
    its backward() cost about three times as much. (step(closure) and the checks of p.grad itself use
    backward().)"""

    def __init__(self, value, slope):
        self.value, self.slope = value, slope

    def __call__(self, p):
        return self.value(p)


def tanh_slope(X, W, Y):
    """d/dW mean((tanh(X W) - Y)^2)."""
    t = torch.tanh(X @ W)
    return X.t() @ (2 * (t - Y) * (1 - t * t)) / t.numel()


NAMES = ("W1", "b", "W2")


def objective(parts, which, l2: float = 0.0):
    """The sum of the terms of the parameters `which` (indices), plus l2/2 ||w||^2 for each if l2."""
    def loss(*params):
        value = sum(parts[i](p) for i, p in zip(which, params))
        return value + 0.5 * l2 * sum((p * p).sum() for p in params) if l2 else value

    def gradient(*params):
        with torch.no_grad():
            return [parts[i].slope(p.detach()) + l2 * p.detach() if l2 else parts[i].slope(p.detach())
                    for i, p in zip(which, params)]
    loss.gradient = gradient
    return loss


def accumulate(params, grads) -> None:
    """What backward() does with the gradients: a new .grad laid out as its parameter, or added in place
    into the .grad there is (a state buffer that aliases p.grad then shows, as it does with backward())."""
    with torch.no_grad():
        for p, g in zip(params, grads):
            if p.grad is None:
                p.grad = torch.empty_like(p).copy_(g)
            else:
                p.grad.add_(g)


def leaves(init, which, dtype=DTYPE):
    return [init[i].clone().to(dtype).requires_grad_() for i in which]


def clear_grads(params) -> None:
    """What a correct zero_grad() does, done here: the student's own zero_grad() is judged by the
    contract check alone (one bug, one deduction), and each step costs one message, not two."""
    for p in params:
        p.grad = None


# --- runs in the student's process: one message per property, not one per step -----------------
# Each run below is harness code that sub.run_local runs beside the student's optimizer, on the
# harness's own tensors (mirrored there, their final values synced back). What comes back is checked
# here (run_there): row 0 is where the parameters started, the last row where they are now, so a
# trajectory it reports is the one they took; losses are recomputed here from the rows.

def problem_loss(loss: list):
    """The loss a run descends, from its description in plain data, so that either process builds it:
    ["net", seed] (the trajectory checks') or ["separable", seed, which, l2] (the contract checks')."""
    if loss[0] == "net":  # ["net", seed] or ["net", seed, device] (the parity check's: X, Y on that device)
        return net_problem(int(loss[1]), device=str(loss[2]) if len(loss) > 2 else "cpu")[1]
    _, seed, which, l2 = loss
    return objective(separable_problem(int(seed))[1], list(which), float(l2))


def usable(opt) -> bool:
    """Holds what Optimizer.__init__ sets up (param_groups, state)."""
    try:
        opt.param_groups[0]["params"]  # noqa: B018  # read only to see that they exist
        opt.state  # noqa: B018
    except (AttributeError, TypeError, IndexError, KeyError):
        return False
    return True


def as_data(value):
    """What step(closure) returned, as data: a number, or what it was."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value if isinstance(value, (int, float)) else {"returned": repr(value)[:200]}


def descend(opt, params, loss_fn, steps: int, zero: str = "none", schedule=None):
    """`steps` steps; zero = "none" (gradients cleared here), "zeros" (zero_grad(set_to_none=False)) or
    "closure" (step(closure), the closure clearing and recomputing the gradients); "keep" and
    "closure-keep": the same without clearing (gradients accumulate onto those already there, as with
    micro-batches); schedule = [k, group, factor]: that group's lr multiplied by factor before step k (as a
    scheduler does), or [k, group, {key: value}]: those hyper-parameters of the group set. Returns the rows
    of parameters (row 0: the initial values) and, for "closure", what each step returned and the loss
    its closure computed."""
    rows, returned = [flat(params)], []
    for k in range(steps):
        if schedule is not None and k == schedule[0]:
            group = opt.param_groups[schedule[1]]
            if isinstance(schedule[2], dict):
                group.update(hyper(schedule[2]))
            else:
                group["lr"] = group["lr"] * schedule[2]
        if zero in ("closure", "closure-keep"):
            seen = []

            def closure():
                if zero == "closure":
                    opt.zero_grad()
                loss = loss_fn(*params)
                loss.backward()
                seen.append(loss.item())
                return loss
            got = opt.step(closure)
            returned.append([as_data(got), seen, isinstance(got, torch.Tensor)])
        else:
            if zero == "none":
                clear_grads(params)
            elif zero == "zeros":
                opt.zero_grad(set_to_none=False)
            if hasattr(loss_fn, "gradient"):  # the separable loss: its gradient in closed form
                accumulate(params, loss_fn.gradient(*params))
            else:
                loss_fn(*params).backward()
            opt.step()
        rows.append(flat(params))
    return rows, returned


def one_run(make, params, values, loss, steps, groups=None, track=None, zero="none", schedule=None,
            generator=False, keep=False, state=False):
    """One run (in the student's process): the student's optimizer `make` built on `params` (a list;
    a generator of them; or groups = [[indices, group's own values], ...]) with `values`, descending
    `loss` over the parameters `track` (indices; all by default). keep: the optimizer comes back too
    (a handle: the harness reads its state); state: its state comes back with the rows (read as by the
    handle, without a message of its own)."""
    tracked = params if track is None else [params[i] for i in track]
    if groups is not None:
        given = [{"params": [params[i] for i in which], **hyper(extra)} for which, extra in groups]
    else:
        given = (q for q in params) if generator else params
    opt = make(given, **hyper(values))
    if not usable(opt):
        return {"unusable": True}
    rows, returned = descend(opt, tracked, problem_loss(loss), steps, zero, schedule)
    return {"rows": rows, "returned": returned, **({"opt": opt} if keep else {}), **({"state": opt.state} if state else {})}


def runs_here(make, runs: list) -> list:
    return [one_run(make, **run) for run in runs]


def resumed_here(make, whole, params, copies, values, loss, steps: int, k: int) -> list:
    """The uninterrupted run on `whole`; then on `params` k steps, state_dict() through torch.save and
    torch.load into a new optimizer on `copies` (given the parameters' values then), and the remaining
    steps: the rows of the three."""
    uninterrupted = one_run(make, whole, values, loss, steps)
    opt = make(params, **hyper(values))
    if "unusable" in uninterrupted or not usable(opt):
        return [{"unusable": True}] * 3
    loss_fn = problem_loss(loss)
    first = descend(opt, params, loss_fn, k)[0]
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    with torch.no_grad():
        for c, q in zip(copies, params):
            c.copy_(q)
    again = make(copies, **hyper(values))
    buffer.seek(0)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    return [uninterrupted, {"rows": first}, {"rows": descend(again, copies, loss_fn, steps - k)[0]}]


def added_here(make, W1, b, W2, fresh, values, seed: int) -> list:
    """2 steps on [W1, W2], then b added by add_param_group() and 3 steps on all three; and a fresh
    optimizer on `fresh` (b's start) alone for 3 steps."""
    opt = make([W1, W2], **hyper(values))
    if not usable(opt):
        return [{"unusable": True}] * 3
    before = descend(opt, [W1, W2], problem_loss(["separable", seed, [0, 2], 0.0]), 2)[0]
    opt.add_param_group({"params": [b]})
    rows = descend(opt, [W1, b, W2], problem_loss(["separable", seed, [0, 1, 2], 0.0]), 3)[0]
    solo = one_run(make, [fresh], values, ["separable", seed, [1], 0.0], 3)
    return [{"rows": before}, {"rows": rows}, solo]


def late_here(make, params, whole, values, seed: int, late: int, steps: int) -> list:
    """One optimizer on params = [W1, b, W2] (one group) for `steps` steps, b out of the loss for the
    first `late` of them (b.grad None: a frozen layer, unfrozen later), then in it; the rows of all
    three at every step (b's included, so that a b moved while its .grad was None shows as such). And
    the same optimizer on `whole` with every parameter in the loss from the start (the baseline: a wrong
    update is its own check's finding)."""
    opt = make(params, **hyper(values))
    if not usable(opt):
        return [{"unusable": True}] * 2
    without, every = problem_loss(["separable", seed, [0, 2], 0.0]), problem_loss(["separable", seed, [0, 1, 2], 0.0])
    rows = [flat(params)]
    for k in range(steps):
        clear_grads(params)
        given = params if k >= late else [params[0], params[2]]
        accumulate(given, (every if k >= late else without).gradient(*given))
        opt.step()
        rows.append(flat(params))
    return [{"rows": rows}, one_run(make, whole, values, ["separable", seed, [0, 1, 2], 0.0], steps)]


def dropped_here(make, params, values, seed: int, late: int, steps: int) -> list:
    """One optimizer on params = [W1, b, W2] (one group) for `steps` steps, b in the loss for the first
    `late` of them, then out of it with a gradient of zeros (what zero_grad(set_to_none=False) leaves: a
    layer frozen by a loss that no longer uses it); the rows of all three at every step. torch.optim
    still steps such a parameter (its momentum carries it on, Adam's step count goes on)."""
    opt = make(params, **hyper(values))
    if not usable(opt):
        return [{"unusable": True}]
    without, every = problem_loss(["separable", seed, [0, 2], 0.0]), problem_loss(["separable", seed, [0, 1, 2], 0.0])
    rows = [flat(params)]
    for k in range(steps):
        clear_grads(params)
        if k < late:
            accumulate(params, every.gradient(*params))
        else:
            accumulate([params[0], params[2]], without.gradient(params[0], params[2]))
            params[1].grad = torch.zeros_like(params[1])
        opt.step()
        rows.append(flat(params))
    return [{"rows": rows}]


def gone_here(make, params, values, seed: int, late: int, gone: int, steps: int) -> list:
    """One optimizer on params = [W1, b, W2] (one group) for `steps` steps: b in the loss for the first `late`
    of them, then out of it with its .grad None for `gone` steps (a layer frozen for a while: zero_grad() sets it
    to None and the loss no longer uses it), then in it again; the rows of all three at every step. torch.optim
    skips b entirely while its .grad is None: b stays put and its state (momentum buffer, running averages,
    Adam's step count) is left as it was, to go on from there when b's gradient comes back."""
    opt = make(params, **hyper(values))
    if not usable(opt):
        return [{"unusable": True}]
    without, every = problem_loss(["separable", seed, [0, 2], 0.0]), problem_loss(["separable", seed, [0, 1, 2], 0.0])
    rows = [flat(params)]
    for k in range(steps):
        clear_grads(params)
        given = [params[0], params[2]] if late <= k < late + gone else params
        accumulate(given, (without if len(given) == 2 else every).gradient(*given))
        opt.step()
        rows.append(flat(params))
    return [{"rows": rows}]


@seeded_once
def _gone_twin(seed, p):
    """gone_here's run by torch.optim's twin of p["optimizer"] (computed once per worker)."""
    init, _ = separable_problem(seed)
    done = gone_here(torch_optimizer(p["optimizer"]), leaves(init, [0, 1, 2]), p["hyper"], seed, p["late"], p["gone"],
                     p["steps"])
    return np.asarray(done[0]["rows"], dtype=float)


@seeded_once
def _dropped_twin(seed, p):
    """dropped_here's run by torch.optim's twin of p["optimizer"] (computed once per worker)."""
    init, _ = separable_problem(seed)
    done = dropped_here(torch_optimizer(p["optimizer"]), leaves(init, [0, 1, 2]), p["hyper"], seed, p["late"],
                        p["steps"])
    return np.asarray(done[0]["rows"], dtype=float)


@seeded_once
def _late_twin(seed, p):
    """late_here's two runs by torch.optim's twin of p["optimizer"] (no submission in them: computed once
    per worker for the whole class, handed out as copies)."""
    init, _ = separable_problem(seed)
    done = late_here(torch_optimizer(p["optimizer"]), leaves(init, [0, 1, 2]), leaves(init, [0, 1, 2]),
                     p["hyper"], seed, p["late"], p["steps"])
    return [np.asarray(run["rows"], dtype=float) for run in done]


def adam_first_update(b0: torch.Tensor, g: torch.Tensor, h: dict, t: int) -> np.ndarray:
    """Adam's first update of a parameter at b0 with gradient g (weight decay added here), its bias
    correction taken at step t: what b becomes when its first step is counted as the t-th."""
    b1, b2 = h["betas"]
    g = g + h.get("weight_decay", 0.0) * b0
    m_hat, s_hat = (1 - b1) * g / (1 - b1 ** t), (1 - b2) * g * g / (1 - b2 ** t)
    return (b0 - h["lr"] * m_hat / (s_hat.sqrt() + h["eps"])).numpy()


def checked_rows(name: str, result, start: list[float], now: list[float] | None, steps: int) -> np.ndarray:
    """The rows a run reported, refused unless they start where the harness's tensors started and end
    where they are now (`now`; None: a part whose end the next part starts from)."""
    if not isinstance(result, dict):
        raise ApiError(f"{name}: a run came back malformed")
    if result.get("unusable"):
        raise ApiError(f"{name}(params, ...) has no usable param_groups/state: call "
                       "super().__init__(params, defaults) in __init__")
    try:
        rows = np.asarray(result.get("rows"), dtype=float)
    except (TypeError, ValueError):
        rows = np.zeros(0)
    if (rows.shape != (steps + 1, len(start)) or not np.array_equal(rows[0], start, equal_nan=True)
            or (now is not None and not np.array_equal(rows[-1], now, equal_nan=True))):
        raise ApiError(f"{name}: the parameters are not where the run's own record says they are: were they "
                       "changed outside step()?")
    return rows


def zero_grad_here(opt, params, values, loss) -> dict:
    """values given: the optimizer built (opt is its class), backward(), step() and zero_grad();
    values None: backward() and zero_grad(set_to_none=False) on the optimizer `opt`. The optimizer
    comes back by handle; the .grad tensors, synced back, are read by the harness."""
    if values is not None:
        opt = opt(params, **hyper(values))
        if not usable(opt):
            return {"unusable": True}
    problem_loss(loss)(*params).backward()
    if values is not None:
        opt.step()
        opt.zero_grad()
    else:
        opt.zero_grad(set_to_none=False)
    return {"opt": opt}


def grads_after_steps_here(make, runs: list, settings: list, loss, steps: int) -> list:
    """In the student's process: for each run (parameters) and its values, the optimizer built, then `steps`
    times gradients cleared here, backward() and step(); the rows of parameters (row 0: the start) and each
    p.grad as step() left it (step k: the gradient backward() made at row k, if step() left it alone)."""
    out = []
    for params, values in zip(runs, settings):
        opt = make(params, **hyper(values))
        if not usable(opt):
            out.append({"unusable": True})
            continue
        loss_fn, rows, grads = problem_loss(loss), [flat(params)], []
        views = [q.detach() for q in params]  # the parameters' memory: an update in place shows through them
        for _ in range(steps):
            clear_grads(params)
            loss_fn(*params).backward()
            opt.step()
            grads.append([None if q.grad is None else q.grad.detach().double().reshape(-1).tolist() for q in params])
            rows.append(flat(params))
        stale = [i for i, (v, q) in enumerate(zip(views, params)) if not torch.equal(v, q.detach())]
        out.append({"rows": rows, "grads": grads, "stale": stale})
    return out


def _short(t: torch.Tensor) -> str:
    """A few entries of a tensor, for a message."""
    v = t.detach().reshape(-1).tolist()
    return "[" + ", ".join(f"{x:.6g}" for x in v[:3]) + (", ...]" if len(v) > 3 else "]")


def built(name: str, result):
    """The optimizer a run in the student's process built and sent back (a handle), or an ApiError."""
    if isinstance(result, dict) and result.get("unusable"):
        raise ApiError(f"{name}(params, ...) has no usable param_groups/state: call "
                       "super().__init__(params, defaults) in __init__")
    if not isinstance(result, dict) or "opt" not in result:
        raise ApiError(f"{name}: a run came back malformed")
    return result["opt"]


def parts_of(name: str, value, n: int) -> list:
    """The n results a run in the student's process sent back, or an ApiError."""
    if not isinstance(value, list) or len(value) != n:
        raise ApiError(f"{name}: a run came back malformed")
    return value


def run_there(sub, name: str, runs: list[dict]) -> list[dict]:
    """`runs` (one_run's arguments) of the student's `name`, in its process, in one message; each
    run's rows checked against the harness's tensors (checked_rows)."""
    def tracked(run):
        return run["params"] if run.get("track") is None else [run["params"][i] for i in run["track"]]
    starts = [flat(tracked(run)) for run in runs]
    results = parts_of(name, sub.run_local(runs_here, student_optimizer(sub, name), runs), len(runs))
    return [{**result, "rows": checked_rows(name, result, start, flat(tracked(run)), run["steps"])}
            for run, start, result in zip(runs, starts, results)]


def departure(measured, expected, rtol: float = RTOL, atol: float = ATOL, names=None) -> str | None:
    """Where two trajectories (rows = steps) first differ, in words; None when they agree (verdict.departure,
    which exercise-3's SGD probe shares, at this exercise's float64 tolerances)."""
    return trajectory_departure(measured, expected, rtol=rtol, atol=atol, names=names)


def stood_still(name: str, rows, steps: int) -> str | None:
    """A degenerate run earns nothing: where step() left every parameter where it started (each row the
    start), a property that compares two runs of it (weight decay as L2, state_dict, a parameter without a
    gradient) holds of a step that does nothing. Then what is wrong, in words; None when it moved."""
    a = np.asarray(rows, dtype=float)
    if a.ndim == 2 and len(a) > 1 and np.array_equal(a, np.broadcast_to(a[:1], a.shape)):
        return (f"{name}.step() left every parameter where it started in all {steps} steps (gradients nonzero, "
                "lr > 0): nothing to compare, so this property cannot hold; the update's own check says what "
                "step() should do")
    return None


def entry_names(init, which) -> list[str]:
    names = []
    for i in which:
        names += [f"{NAMES[i]}[{', '.join(map(str, np.unravel_index(k, tuple(init[i].shape))))}]"
                  for k in range(init[i].numel())]
    return names


def configs(p) -> list[tuple[str, dict]]:
    return [(c["optimizer"], hyper(c["hyper"])) for c in p["configs"]]


def weight_decay(sub, seed, p):
    """weight_decay = wd on L is L2 regularisation: the same trajectory as weight_decay = 0 on
    L + wd/2 ||w||^2 (torch.optim adds wd * w to the gradient, once)."""
    init, parts = separable_problem(seed)
    every, props = [0, 1, 2], Properties("optim.py")
    for name, h in configs(p):
        wd = h["weight_decay"]

        def prop(name=name, h=h, wd=wd):
            ways = {"decay": (wd, 0.0), "l2": (0.0, wd), "none": (0.0, 0.0)}
            done = run_there(sub, name, [{"params": leaves(init, every), "values": {**h, "weight_decay": decay},
                                          "loss": ["separable", seed, every, l2], "steps": p["steps"]}
                                         for decay, l2 in ways.values()])
            runs = {key: run["rows"] for key, run in zip(ways, done)}
            if still := stood_still(name, runs["l2"], p["steps"]):
                return still
            where = departure(runs["decay"], runs["l2"], names=entry_names(init, every))
            if where is None:
                return None
            cause = ("weight_decay is ignored (the run equals weight_decay = 0 on L)"
                     if departure(runs["decay"], runs["none"]) is None else
                     "weight decay applied twice, decoupled from the gradient (AdamW-style), or scaled")
            return (f"weight_decay={wd} on L departs from weight_decay=0 on L + {wd / 2:g} ||w||^2 {where}. "
                    f"Likely cause: {cause}; g = p.grad + weight_decay * p enters the update once, wherever g is used.")
        props.test(f"{describe(name, h)} = L2 regularisation of the loss", prop)
    return props.result()


def param_groups(sub, seed, p):
    """Two groups, [W1, b] with the constructor's values and [W2] with its own: each group's trajectory
    is the one the optimizer gives that group's parameters alone with that group's values; then the
    second group's lr changed before step 2 (as a scheduler does) changes that step of W2 only."""
    init, parts = separable_problem(seed)
    first, second, every = [0, 1], [2], [0, 1, 2]
    props = Properties("optim.py")
    for config in p["configs"]:
        name, h, h2 = config["optimizer"], hyper(config["hyper"]), hyper(config["second_group"])
        steps = p["steps"]

        def grouped(schedule=None, h=h, h2=h2):
            return _grouped(init, seed, h, h2, steps, schedule)

        def alone(which, values):
            return {"params": leaves(init, which), "values": values, "loss": ["separable", seed, which, 0.0],
                    "steps": steps}

        def own_values(name=name, h=h, h2=h2):
            both, first_alone, second_alone = (run["rows"] for run in run_there(
                sub, name, [grouped(), alone(first, h), alone(second, {**h, **h2})]))
            n1 = sum(init[i].numel() for i in first)
            where = departure(both[:, :n1], first_alone, names=entry_names(init, first))
            if where:
                return f"the first group's parameters depart from {describe(name, h)} on W1, b alone {where}"
            where = departure(both[:, n1:], second_alone, names=entry_names(init, second))
            if not where:
                return None
            # Which of the group's own values were ignored: the run equals one with that value reverted.
            keys = [key for key in h2 if key in h]
            reverted = [run["rows"] for run in run_there(
                sub, name, [alone(second, {**h, **h2, key: h[key]}) for key in keys] + [alone(second, h)])]
            ignored = [key for key, rows in zip(keys, reverted) if departure(both[:, n1:], rows) is None]
            if departure(both[:, n1:], reverted[-1]) is None:
                ignored = list(h2)
            return (f"W2 departs from {describe(name, {**h, **h2})} on W2 alone {where}"
                    + (f": the second group's {', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} ignored, "
                       "the constructor's used instead. Read every hyper-parameter from the group (group['lr'], ...) "
                       "inside the loop over self.param_groups, never from self.defaults or attributes set in "
                       "__init__." if ignored else "."))
        props.test(f"{describe(name, h)} with W2 in a second group {describe('', h2)[1:-1]}", own_values)

        # the runs of the two mid-run properties below, in one message (made at the first's first need): the plain
        # run; the second group's lr times 0.25 before step 2; every one of its hyper-parameters set to the first
        # group's before step 2; its lr = 0 from the start
        shared: dict = {}
        changes = {key: h[key] for key in h2 if key != "weight_decay"}

        def mid_run(name=name, grouped=grouped, h=h, h2=h2, shared=shared, changes=changes):
            if not shared:
                shared["rows"] = [run["rows"] for run in run_there(sub, name, [
                    grouped(), grouped([2, 1, 0.25]), grouped([2, 1, changes]), _grouped(init, seed, h, {**h2, "lr": 0.0}, steps)])]
            return shared["rows"]

        def scheduled(name=name, mid_run=mid_run, h=h, h2=h2):
            factor, k = 0.25, 2
            plain, changed = mid_run()[:2]
            if not np.isfinite(np.asarray(plain[: k + 2], dtype=float)).all():
                return None  # a run already nan or inf by then cannot show an lr's effect: the update's check charges it
            n1 = sum(init[i].numel() for i in first)
            if departure(changed[:, :n1], plain[:, :n1]):
                return (f"changing param_groups[1]['lr'] before step {k} moved the first group's parameters "
                        f"{departure(changed[:, :n1], plain[:, :n1])}: each group's lr applies to that group only")
            d_plain, d_changed = plain[k + 1, n1:] - plain[k, n1:], changed[k + 1, n1:] - changed[k, n1:]
            if departure(changed[k + 1:k + 2, n1:], plain[k + 1:k + 2, n1:]) is None:
                return (f"param_groups[1]['lr'] multiplied by {factor} before step {k} (as a scheduler does) changed "
                        "nothing: the lr is read once (in __init__, or from self.defaults) instead of from the group "
                        "at every step")
            if name in ("GD", "RMSProp", "Adam"):  # the whole step is lr times something lr does not change
                bad = ~(np.abs(d_changed - factor * d_plain) <= ATOL + RTOL * np.abs(factor * d_plain))
                if bad.any():
                    i = int(np.argmax(bad))
                    return (f"with param_groups[1]['lr'] multiplied by {factor} before step {k}, that step changes "
                            f"{entry_names(init, second)[i]} by {d_changed[i]:.10g}, not {factor} x {d_plain[i]:.10g} "
                            "(the unchanged run's change): lr must scale the whole step, read from the group at "
                            "every step")
            # the whole run against torch.optim's twin under the same schedule, computed here; only when the
            # run without the schedule is torch's (a wrong update is its own check's finding, not this one's)
            plain_t, changed_t = _twin_runs(seed, {"optimizer": name, "hyper": h, "second": h2, "steps": steps,
                                                   "schedule": [k, 1, factor]})
            if departure(plain, plain_t) is not None:
                return None
            where = departure(changed, changed_t, names=entry_names(init, every))
            if where is None:
                return None
            held = ("the velocity" if name in ("Momentum", "Nesterov") else "the state")
            deck = (" (the deck's nu <- mu nu + lr g, w <- w - nu: nu keeps the lr of every earlier step)"
                    if name in ("Momentum", "Nesterov") else "")
            return (f"with param_groups[1]['lr'] multiplied by {factor} before step {k} (as a scheduler does), the run "
                    f"departs from {TWINS[name]}'s under the same schedule {where}, although it is torch's while lr "
                    f"stays constant. Likely cause: lr folded into {held}{deck}, so a changed lr is read at the wrong "
                    f"step. Keep lr out of what is carried between steps ({'v <- mu v + g' if deck else 'the buffers'}) "
                    "and multiply the step by the group's current lr (w <- w - lr * ...), as torch.optim does")
        props.test(f"{describe(name, h)}: the second group's lr changed mid-run (a scheduler)", scheduled)

        def every_changed(name=name, h=h, h2=h2, mid_run=mid_run, changes=changes):
            # every hyper-parameter of the second group set to the first group's values before step k (momentum,
            # betas, alpha, eps: read at every step, not when a buffer is made nor cached in __init__), and a third
            # run with the second group's lr = 0 (W2 stays where it is: an lr of 0 is an lr, not a missing one),
            # both against torch.optim's twin under the same schedule, computed here
            k, new, zero = 2, changes, {**h2, "lr": 0.0}
            plain, _, changed, still = (np.asarray(rows, dtype=float) for rows in mid_run())
            plain_t, changed_t = _twin_runs(seed, {"optimizer": name, "hyper": h, "second": h2, "steps": steps,
                                                   "schedule": [k, 1, new]})
            if departure(plain, plain_t) is not None:
                return None  # a wrong update is its own check's finding
            n1 = sum(init[i].numel() for i in first)
            if not np.array_equal(still[:, n1:], np.broadcast_to(still[0, n1:], still[:, n1:].shape)):
                moved = int(np.argmax(np.any(still[:, n1:] != still[0, n1:], axis=0)))
                return (f"with the second group's lr = 0 ({describe('', zero)[1:-1]}), "
                        f"{entry_names(init, second)[moved]} moved (torch.optim's twin leaves it where it is). Likely "
                        "cause: `group['lr'] or self.defaults['lr']` (or a test for a falsy lr): an lr of 0 is the "
                        "group's lr; read group['lr'] as it is")
            where = departure(changed, changed_t, names=entry_names(init, every))
            if where is None:
                return None
            return (f"with the second group's {', '.join(new)} set to {describe('', new)[1:-1]} before step {k} (in "
                    f"param_groups[1], mid-run), the run departs from {TWINS[name]}'s under the same change {where}. "
                    "Likely cause: a hyper-parameter read once (in __init__, or when a state buffer is made) instead "
                    "of from the group at every step(): read every one from the group inside the loop over "
                    "self.param_groups")
        props.test(f"{describe(name, h)}: every hyper-parameter of the second group changed mid-run; its lr = 0",
                   every_changed)
    return props.result()


def _grouped(init, seed, h, h2, steps, schedule=None):
    """param-groups' run: [W1, b] with the constructor's values h, [W2] with its own h2."""
    every = [0, 1, 2]
    return {"params": leaves(init, every), "values": h, "groups": [[[0, 1], {}], [[2], h2]],
            "loss": ["separable", seed, every, 0.0], "steps": steps, "schedule": schedule}


@seeded_once
def _twin_runs(seed, p):
    """torch.optim's twin of p["optimizer"] on param-groups' run, without and with p["schedule"]: the rows of
    each (no submission in them: computed once per worker for the whole class, handed out as copies)."""
    init, _ = separable_problem(seed)
    twin = torch_optimizer(p["optimizer"])
    return [np.asarray(one_run(twin, **_grouped(init, seed, p["hyper"], p["second"], p["steps"], schedule))["rows"],
                       dtype=float) for schedule in (None, p["schedule"])]  # (arrays: copied whole, not entry by entry)


def grad_none(sub, seed, p):
    """A parameter U outside the loss (its .grad stays None) is left exactly as it was, weight decay
    on; the others move as they do without U."""
    init, parts = separable_problem(seed)
    props = Properties("optim.py")
    for name, h in configs(p):

        def prop(name=name, h=h):
            W1, W2 = leaves(init, [0, 2])
            U = torch.linspace(-1, 1, 6, dtype=DTYPE).view(3, 2).requires_grad_()
            loss = ["separable", seed, [0, 2], 0.0]
            both, solo = (run["rows"] for run in run_there(sub, name, [
                {"params": [W1, U, W2], "track": [0, 2], "values": h, "loss": loss, "steps": p["steps"]},
                {"params": leaves(init, [0, 2]), "values": h, "loss": loss, "steps": p["steps"]}]))
            if still := stood_still(name, solo, p["steps"]):
                return still
            if not torch.equal(U.detach(), torch.linspace(-1, 1, 6, dtype=DTYPE).view(3, 2)):  # synced back
                return (f"U (never in the loss, U.grad None) moved to {[round(v, 6) for v in U.detach().reshape(-1).tolist()]}: "
                        "skip a parameter whose p.grad is None (no weight decay, no momentum, no state for it); "
                        "a gradient of zeros is not the same thing")
            where = departure(both, solo, names=entry_names(init, [0, 2]))
            return (f"W1, W2 move differently when U is also given {where}" if where else None)
        props.test(f"{describe(name, h)} with a parameter U whose .grad is None", prop)
        if name in STATEFUL and p.get("gone"):
            late, gone, after = p["gone"]
            props.test(f"{describe(name, h)}: b's .grad None at steps {late + 1} to {late + gone} only (b in the loss "
                       "before and after)",
                       lambda name=name, h=h: gone_gradient(sub, seed, name, h, late, gone, late + gone + after, p))
    return props.result()


def gone_gradient(sub, seed: int, name: str, h: dict, late: int, gone: int, steps: int, p) -> str | None:
    """[W1, b, W2] in one group, b in the loss for the first `late` steps, its .grad None for the next `gone`, then
    in the loss again: every parameter after every step = torch.optim's twin's on the same run (b skipped entirely
    while its .grad is None: it stays put, its state untouched). Judged from step `late` on only where the first
    `late` steps agree (a wrong update is its own check's finding). Where b stands still but its state was
    changed (its updates differ once its gradient is back), charged only where a parameter whose gradient comes
    late is right (optimizer-contract's late_gradient: a step count kept per optimizer is that check's finding)."""
    init, _ = separable_problem(seed)
    params = leaves(init, [0, 1, 2])
    start = flat(params)
    done = parts_of(name, sub.run_local(gone_here, student_optimizer(sub, name), params, h, seed, late, gone, steps), 1)
    rows = checked_rows(name, done[0], start, flat(params), steps)
    twin = _gone_twin(seed, {"optimizer": name, "hyper": h, "late": late, "gone": gone, "steps": steps})
    if departure(rows[: late + 1], twin[: late + 1]) is not None:
        return None
    where = departure(rows, twin, names=entry_names(init, [0, 1, 2]))
    if where is None:
        return None
    cols = slice(6, 8)  # b's entries, between W1's six and W2's six
    message = f"the run departs from {TWINS[name]}'s on the same run {where}"
    sat_out = rows[late:late + gone + 1, cols]
    if not np.array_equal(sat_out, np.broadcast_to(sat_out[:1], sat_out.shape)):
        return (f"{message}: b moved while its .grad was None. torch.optim skips such a parameter entirely (if p.grad "
                "is None: continue, before anything else): no update from the velocity or the running averages it "
                "still holds, no weight decay; a gradient of zeros is not the same thing")
    if late_gradient(sub, seed, name, h, p["late"], p["steps"]) is not None:
        return None  # a parameter whose gradient comes late is already wrong: optimizer-contract's finding
    return (f"{message}: b stood still while its .grad was None, but once its gradient came back (step "
            f"{late + gone + 1}) its update differs: its state changed while it sat out (a running average decayed "
            "with s.mul_(alpha), a momentum buffer updated, a step count advanced, before the check for None). Skip "
            "the parameter entirely while p.grad is None: its state goes on from where it was")


def state_dict(sub, seed, p):
    """state_dict() after `resume` steps, through torch.save/torch.load, into a new optimizer on copies
    of the parameters: load_state_dict() restores the state, so the trajectory goes on as the
    uninterrupted run's. (Built with the same values: hyper-parameters read from elsewhere than the
    groups are param-groups' finding, not this check's.)"""
    init, parts = separable_problem(seed)
    every, props = [0, 1, 2], Properties("optim.py")
    for config in p["configs"]:
        name, h, k = config["optimizer"], hyper(config["hyper"]), p["resume"]
        loss = ["separable", seed, every, 0.0]

        def prop(name=name, h=h, k=k):
            whole, params, copies = leaves(init, every), leaves(init, every), leaves(init, every)
            start = flat(params)
            done = parts_of(name, sub.run_local(resumed_here, student_optimizer(sub, name), whole, params, copies,
                                                h, loss, p["steps"], k), 3)
            uninterrupted = checked_rows(name, done[0], start, flat(whole), p["steps"])
            before = checked_rows(name, done[1], start, flat(params), k)
            after = checked_rows(name, done[2], flat(params), flat(copies), p["steps"] - k)
            rows = np.concatenate([before, after[1:]])
            if still := stood_still(name, uninterrupted, p["steps"]):
                return still
            where = departure(rows, uninterrupted, rtol=p["rtol"], names=entry_names(init, every))
            return (f"saved after step {k} and loaded into a new {name}, the run departs from the "
                    f"uninterrupted one {where}. Keep all per-parameter state (buffers, step counts) in self.state[p] "
                    "and all hyper-parameters in self.param_groups: that is what state_dict() saves and "
                    "load_state_dict() restores." if where else None)
        props.test(f"{describe(name, h)}: state_dict()/load_state_dict() mid-run", prop)
    return props.result()


def optimizer_contract(sub, seed, p):
    """The rest of torch.optim.Optimizer's contract, each optimizer against itself (weight decay on,
    so that a graph would show): parameters given as a generator;
    zero_grad() sets .grad to None, zero_grad(set_to_none=False) to zeros, and both give the same
    trajectory; step(closure) returns the closure's loss and steps as step() does; step() leaves
    p.grad as it was, with weight decay on (g = p.grad.add_(...)) and at 0 (g is p.grad itself: g.mul_(...)
    writes into it); no autograd graph in the state or on the parameters, float64 and float32
    parameters keep their dtype (a float32 buffer for a float64 parameter shows in the trajectory
    checks, not here: one bug, one deduction); a group added by add_param_group() is optimised as if
    it had been there from the start; and, for the optimizers with per-parameter state, a parameter
    whose .grad is None for the first steps and then has one moves as under torch.optim's twin
    (late_gradient: its state, Adam's step count included, starts at its own first gradient)."""
    init, parts = separable_problem(seed)
    every, steps, props = [0, 1, 2], p["steps"], Properties("optim.py")
    names = entry_names(init, every)
    for name, h in configs(p):
        make, label = student_optimizer(sub, name), describe(name, h)
        loss_fn, loss = objective(parts, every), ["separable", seed, every, 0.0]

        def plain(h=h, zero="none", generator=False):
            return {"params": leaves(init, every), "values": h, "loss": loss, "steps": steps, "zero": zero,
                    "generator": generator}

        def generator(name=name):
            rows, alike = (run["rows"] for run in run_there(sub, name, [plain(generator=True), plain()]))
            where = departure(rows, alike, names=names)
            return (f"built from a generator (as model.parameters() is) the run departs from the one built from a "
                    f"list {where}: iterate `params` once, or leave it to Optimizer.__init__ (it makes a list), "
                    "and loop over self.param_groups" if where else None)
        props.test(f"{label}(a generator of parameters)", generator)

        def zero_grad(name=name, make=make, h=h):
            params = leaves(init, every)  # their .grad synced back after each message, read here
            opt = built(name, sub.run_local(zero_grad_here, make, params, h, loss))
            kept = [NAMES[i] for i, q in enumerate(params) if q.grad is not None]
            if kept:
                return (f"after zero_grad(), {kept[0]}.grad is still a tensor: torch's default is set_to_none=True "
                        "(.grad becomes None); if you override zero_grad, keep its signature and default")
            sub.run_local(zero_grad_here, opt, params, None, loss)
            for i, q in enumerate(params):
                if q.grad is None or q.grad.abs().max().item() != 0:
                    return (f"after zero_grad(set_to_none=False), {NAMES[i]}.grad is "
                            f"{'None' if q.grad is None else 'not zero'}: it must be a tensor of zeros")
            return None
        props.test(f"{label}.zero_grad() and zero_grad(set_to_none=False)", zero_grad)

        def zeros_same_run(name=name, h=h):
            h = {**h, "weight_decay": 0.0}  # g is then p.grad itself: a buffer that aliases it shows
            zeros, nones = (run["rows"] for run in run_there(sub, name, [plain(h=h, zero="zeros"), plain(h=h)]))
            where = departure(zeros, nones, names=names)
            return (f"with zero_grad(set_to_none=False) the run departs from the one with zero_grad() {where}: a "
                    "buffer in the state that is p.grad itself (not a copy) is zeroed with it and accumulates "
                    "the next gradients: store g.clone() or a new tensor" if where else None)
        props.test(f"{label}: the same run with zero_grad(set_to_none=False)", zeros_same_run)

        def closure(name=name, plain=plain):
            # and with W1 in one parameter group, b and W2 in a second: the closure still runs once per step
            # (a closure() inside the loop over self.param_groups runs once per group)
            # and a closure that only calls backward(), on top of the gradients already there (micro-batches):
            # the same run as backward() then step() without clearing; step() never clears them itself
            closed, alike, grouped, kept, kept_alike = run_there(
                sub, name, [plain(zero="closure"), plain(), {**plain(zero="closure"), "groups": [[[0], {}], [[1, 2], {}]]},
                            plain(zero="closure-keep"), plain(zero="keep")])
            for how, run in (("", closed), (" with two parameter groups ([W1], [b, W2])", grouped)):
                returned = run["returned"]
                if not isinstance(returned, list) or len(returned) != steps:
                    raise ApiError(f"{name}: a run came back malformed")
                for k, (got, seen, tensor) in enumerate(returned):
                    if len(seen) != 1:
                        return (f"step(closure){how} called the closure {len(seen)} times at step {k}; expected once: "
                                "call `loss = closure()` once, at the top of step() (under torch.enable_grad()), "
                                "before the loop over self.param_groups, never inside it"
                                + (" (each call recomputes every gradient, at parameters a previous group already "
                                   "moved)" if how else ""))
                    if not isinstance(got, (int, float)) or (got != seen[0] and not (math.isnan(got) and math.isnan(seen[0]))):
                        what = got["returned"] if isinstance(got, dict) and "returned" in got else repr(got)
                        return (f"step(closure){how} returned {what} at step {k}; expected the closure's loss "
                                f"{seen[0]:.10g}: call `closure()` under torch.enable_grad() and return what it returned")
                    if not tensor:  # torch.optim returns the closure's tensor: opt.step(closure).item() must work
                        return (f"step(closure){how} returned the number {got!r} at step {k}, not the closure's tensor: "
                                "torch.optim's optimizers return what the closure returned (a caller may call .item() "
                                "or .backward() on it); return `loss`, not float(loss)")
            where = departure(closed["rows"], alike["rows"], names=names)
            if where:
                return f"the run with step(closure) departs from the one with backward(); step() {where}"
            where = departure(kept["rows"], kept_alike["rows"], names=names)
            return (f"with a closure that only calls loss.backward() (no zero_grad: gradients accumulate onto those "
                    f"already there, as with micro-batches), the run departs from backward(); step() without clearing "
                    f"{where}. Likely cause: step() clears the gradients (zero_grad()) before calling the closure; "
                    "torch.optim's step() never clears them: the closure (the caller) does" if where else None)
        props.test(f"{label}.step(closure)", closure)

        def grad_untouched(name=name, make=make, h=h):
            # at weight_decay = 0 too: there g is p.grad itself (no copy made by g = p.grad + wd * p), so an
            # in-place op on g anywhere in the update (g.mul_, g.add_, g.div_) writes into p.grad (round 5's
            # escapes); both settings, two steps each, in one message
            settings = [({**h, "weight_decay": 0.0}, "weight_decay=0"), (h, f"weight_decay={h['weight_decay']:g}")]
            runs = [leaves(init, every) for _ in settings]
            starts = [flat(params) for params in runs]
            done = parts_of(name, sub.run_local(grads_after_steps_here, make, runs, [v for v, _ in settings], loss, 2),
                            len(settings))
            for (values, how), params, start, result in zip(settings, runs, starts, done):
                if not isinstance(result, dict) or not isinstance(result.get("grads"), list):
                    built(name, result)  # the ApiError that says why (unusable), or malformed
                rows = checked_rows(name, result, start, flat(params), 2)
                for k, grads in enumerate(result["grads"]):
                    # the gradient backward() gave at the row the step started from, computed here
                    at = [torch.tensor(t, dtype=DTYPE).reshape(q.shape).requires_grad_() for t, q in
                          zip(torch.tensor(rows[k], dtype=DTYPE).split([q.numel() for q in params]), params)]
                    before = torch.autograd.grad(loss_fn(*at), at)
                    for i, (got, g) in enumerate(zip(grads, before)):
                        got = None if got is None else torch.as_tensor(got, dtype=DTYPE).reshape(g.shape)
                        if got is None or not torch.allclose(got, g, rtol=1e-12, atol=1e-15, equal_nan=True):
                            what = ("None" if got is None else
                                    f"{_short(got)} where backward() made {_short(g)}")
                            return (f"with {how}, step() changed {NAMES[i]}.grad at step {k} ({what}); torch.optim's "
                                    "optimizers leave it as backward() made it (gradient accumulation, clipping and "
                                    "logging read it after the step). Likely cause: "
                                    + ("g = p.grad is p.grad itself when weight_decay = 0, and an in-place op on it "
                                       "(g.mul_, g.add_, g.div_, g.addcmul_) writes into p.grad: use out-of-place ops "
                                       "(g * c, g + v) on g, or g = p.grad.clone()" if values["weight_decay"] == 0 else
                                       "g = p.grad + weight_decay * p computed in place (p.grad.add_(...)): use "
                                       "p.grad.add(p, alpha=weight_decay), out of place"))
                stale = result.get("stale")
                if not isinstance(stale, list):
                    raise ApiError(f"{name}: a run came back malformed")
                if stale:
                    return (f"with {how}, after step() a view of {NAMES[int(stale[0])]} taken before it "
                            f"({NAMES[int(stale[0])]}.detach(), sharing its memory) no longer sees its values: the "
                            "update gave the parameter new memory (p.data = p.data - ..., or p.data = new), which "
                            "leaves stale every view and alias of it (tied weights, a transposed view). Update in "
                            "place under torch.no_grad(): p.sub_(...), p.add_(...), as torch.optim does")
                # and the last gradients are those on the harness's tensors (synced back)
                for i, (q, got) in enumerate(zip(params, result["grads"][-1])):
                    if q.grad is None or not torch.equal(q.grad, torch.as_tensor(got, dtype=DTYPE).reshape(q.shape)):
                        raise ApiError(f"{name}: {NAMES[i]}.grad is not what the run reported: changed outside step()?")
            return None
        both = {**h, "weight_decay": f"0 and {h['weight_decay']:g}"}
        props.test(f"{describe(name, both)}.step() leaves p.grad as backward() made it and updates p in place",
                   grad_untouched)

        def no_graph(name=name, h=h):
            runs = [{"params": leaves(init, every, dtype), "values": h, "loss": loss, "steps": 2, "state": True}
                    for dtype in (DTYPE, torch.float32)]
            for dtype, run, done in zip((DTYPE, torch.float32), runs, run_there(sub, name, runs)):
                params, state = run["params"], done["state"]  # the parameters synced back; the state as a plain dict
                for i, q in enumerate(params):
                    if q.grad_fn is not None or not q.requires_grad:
                        return (f"after step(), {NAMES[i]} is no longer a leaf requiring grad: update it in place "
                                "under torch.no_grad() (p.add_, p.sub_), never rebind it to an expression")
                    if q.dtype != dtype:
                        return f"after step(), {NAMES[i]} ({dtype} before) is {q.dtype}"
                    for key, value in state.get(q, {}).items():
                        if not isinstance(value, torch.Tensor):
                            continue
                        if value.grad_fn is not None or value.requires_grad:
                            return (f"self.state[{NAMES[i]}]['{key}'] holds an autograd graph (grad_fn "
                                    f"{type(value.grad_fn).__name__}): every step keeps the previous ones' graphs "
                                    "alive (memory grows each step). Compute the state under torch.no_grad() "
                                    "(decorate step with @torch.no_grad())")
            return None
        props.test(f"{label}: no autograd graph, float64 and float32 parameters kept as they are", no_graph)

        def added_group(name=name, h=h):
            (W1, W2), (b,), (fresh,) = leaves(init, [0, 2]), leaves(init, [1]), leaves(init, [1])
            start, b_start = flat([W1, W2]), flat([b])
            done = parts_of(name, sub.run_local(added_here, student_optimizer(sub, name), W1, b, W2, fresh, h, seed), 3)
            moved = checked_rows(name, done[0], start, None, 2)
            rows = checked_rows(name, done[1], list(moved[-1][:6]) + b_start + list(moved[-1][6:]), flat([W1, b, W2]), 3)
            solo = checked_rows(name, done[2], b_start, flat([fresh]), 3)
            mine = rows[:, 6:8]
            where = departure(mine, solo, names=entry_names(init, [1]))
            if where is None:
                return None
            cause = ("b never moves: loop over self.param_groups in step(), not over a list kept from __init__"
                     if np.all(mine == mine[0]) else
                     "b must start from a fresh state of its own (buffers at zero, step count 1 at its first "
                     "step): keep per-parameter state in self.state[p], not on the optimizer")
            return f"b, added by add_param_group() after 2 steps, departs from a fresh {name} on b {where}: {cause}"
        props.test(f"{label}.add_param_group()", added_group)

        if name in STATEFUL:
            props.test(f"{label}: b's first gradient at step {p['late'] + 1}, W1's and W2's at step 1",
                       lambda name=name, h=h: late_gradient(sub, seed, name, h, p["late"], steps))
            props.test(f"{label}: b out of the loss after step {p['late']}, its gradient zeros (zero_grad(set_to_none=False))",
                       lambda name=name, h=h: dropped_gradient(sub, seed, name, h, p["late"], steps))
    _newton_contract(sub, seed, props)
    return props.result()


def _newton_contract(sub, seed, props) -> None:
    """Newton's part of the Optimizer contract (its step(closure) is its own: the first-order properties above do
    not apply), in one message (newton_contract_here): one step on [x, Y] and [c] updates each parameter in place
    (a view taken before sees the update; each stays a float64 leaf that requires grad), and a group added by
    add_param_group() after construction takes part in the next step (the closure gets it, in param_groups order:
    the step lands on the quadratic's minimum, lr = 1). A blind red team's Newton wrote p.data = new, and another
    cached its parameter list in __init__; both passed every check, which ran only the first-order optimizers here
    (round 8)."""
    rng = np.random.default_rng(seed + 30_000)
    M = rng.normal(size=(7, 7))
    A = torch.tensor(M @ M.T + np.eye(7), dtype=DTYPE)
    b = torch.tensor(rng.normal(size=7), dtype=DTYPE)
    z0 = torch.tensor(rng.normal(size=7), dtype=DTYPE)
    label = describe("Newton", {"lr": 1.0})
    found: dict = {}

    def run():
        if not found:
            starts = [z0[:2].clone(), z0[2:6].reshape(2, 2).clone(), z0[6:].clone()]
            got = sub.run_local(newton_contract_here, student_optimizer(sub, "Newton"), A, b, starts)
            found.update(got if isinstance(got, dict) else {"malformed": True})
        if found.get("unusable"):
            built("Newton", {"unusable": True})  # the ApiError that says why
        return found

    # a step that raises on [x, Y] and [c] (two groups, as newton-quadratic's first run) is newton-quadratic's finding,
    # which that check reports as its error: not charged here again (one bug, one deduction)
    def in_place():
        done = run()
        if done.get("error"):
            return None
        stale, leaf = done.get("stale"), done.get("leaf")
        if not isinstance(stale, list) or not isinstance(leaf, list):
            raise ApiError("Newton: a run came back malformed")
        names = ("x", "Y", "c")
        if stale:
            i = int(stale[0]) if isinstance(stale[0], int) and 0 <= stale[0] < 3 else 0
            return (f"after step(), a view of {names[i]} taken before it ({names[i]}.detach(), sharing its memory) no "
                    "longer sees its values: the update gave the parameter new memory (p.data = p.data - ..., or "
                    "p.data = new), which leaves stale every view and alias of it (a model's tied weights, a transposed "
                    "view). Update in place under torch.no_grad(): p.sub_(lr * d.view_as(p)), as torch.optim does")
        if leaf:
            i = int(leaf[0]) if isinstance(leaf[0], int) and 0 <= leaf[0] < 3 else 0
            return (f"after step(), {names[i]} is no longer a float64 leaf that requires grad: update it in place under "
                    "torch.no_grad() (p.sub_), never rebind it to an expression or another dtype")
        return None
    props.test(f"{label}.step(closure) updates each parameter in place (a view sees the update)", in_place)

    def added_group():
        done = run()
        added = done.get("added")
        if isinstance(added, str) and done.get("error"):
            return None  # the step raises with every group given at construction too: newton-quadratic's finding
        if isinstance(added, str):
            return (f"with c added by add_param_group() after construction (Newton([x, Y]), then "
                    f"add_param_group({{'params': [c]}})), step(closure) raised {added}. Likely cause: a list of "
                    "parameters kept from __init__ (self.params = ...): read them from self.param_groups at every "
                    "step(), so that the closure gets every parameter of every group, in their order")
        if not isinstance(added, list) or len(added) != 7:
            raise ApiError("Newton: a run came back malformed")
        got = torch.tensor(added, dtype=DTYPE)
        want = torch.linalg.solve(A, b)  # lr = 1 from any start: the minimum
        if torch.allclose(got, want, rtol=1e-8, atol=1e-10):
            return None
        moved = not torch.allclose(got[6:], z0[6:], rtol=0, atol=0)
        return (f"with c added by add_param_group() after construction (Newton([x, Y]), then add_param_group({{'params': "
                f"[c]}})), one step (lr = 1) ends at {_short(got)}, where the exact Newton step over all three lands on "
                f"the minimum {_short(want)}"
                + ("" if moved else ": c never moved. Likely cause: a list of parameters kept from __init__; read them "
                   "from self.param_groups at every step()"))
    props.test(f"{label}.add_param_group()", added_group)


def newton_contract_here(make, A, b, starts) -> dict:
    """In the student's process: (1) Newton(lr=1) on [x, Y] and [c] (two groups), one step on the quadratic of A
    and b: "stale" the indices of the parameters a view taken before the step does not follow, "leaf" those no
    longer float64 leaves that require grad; (2) Newton(lr=1) on [x, Y], then add_param_group({'params': [c]}),
    one step: "added" the values of [x, Y, c] after it (7 floats), or the first line of what it raised. "error":
    the first line of what (1) raised; "unusable": no param_groups."""
    def said(e):
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
    params = [s.clone().requires_grad_() for s in starts]
    opt = make([{"params": params[:2]}, {"params": params[2:]}], lr=1.0)
    if not usable(opt):
        return {"unusable": True}
    views = [q.detach() for q in params]
    out: dict = {}
    try:
        opt.step(quadratic_loss(A, b))
        out["stale"] = [i for i, (q, v) in enumerate(zip(params, views)) if not torch.equal(v, q.detach())]
        out["leaf"] = [i for i, q in enumerate(params)
                       if q.grad_fn is not None or not q.requires_grad or q.dtype != DTYPE]
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        out["error"] = said(e)
    params = [s.clone().requires_grad_() for s in starts]
    opt = make(params[:2], lr=1.0)
    try:
        opt.add_param_group({"params": params[2:]})
        opt.step(quadratic_loss(A, b))
        out["added"] = flat(params)
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        out["added"] = said(e)
    return out


def dropped_gradient(sub, seed: int, name: str, h: dict, late: int, steps: int) -> str | None:
    """[W1, b, W2] in one group, b in the loss for the first `late` steps, then out of it with a gradient of
    zeros: every parameter after every step = torch.optim's twin's on the same run (a zero gradient is a
    gradient: the state goes on, momentum carries b on). Judged from step `late` on only where the first
    `late` steps agree (before that, a wrong update is its own check's finding)."""
    init, _ = separable_problem(seed)
    params = leaves(init, [0, 1, 2])
    start = flat(params)
    done = parts_of(name, sub.run_local(dropped_here, student_optimizer(sub, name), params, h, seed, late, steps), 1)
    rows = checked_rows(name, done[0], start, flat(params), steps)
    twin = _dropped_twin(seed, {"optimizer": name, "hyper": h, "late": late, "steps": steps})
    if departure(rows[: late + 1], twin[: late + 1]) is not None:
        return None
    where = departure(rows, twin, names=entry_names(init, [0, 1, 2]))
    if where is None:
        return None
    cols = slice(6, 8)  # b's entries
    stuck = np.array_equal(rows[late:, cols], np.broadcast_to(rows[late, cols], rows[late:, cols].shape)) and \
        not np.array_equal(twin[late:, cols], np.broadcast_to(twin[late, cols], twin[late:, cols].shape))
    return (f"with b out of the loss after step {late} and its .grad zeros (zero_grad(set_to_none=False)), the run "
            f"departs from {TWINS[name]}'s on the same run {where}"
            + (": b stops where it is, while torch's state carries it on. A gradient of zeros is a gradient: skip a "
               "parameter only when p.grad is None, never when it is all zeros (p.grad.any())" if stuck else ""))


STATEFUL = ("Momentum", "Nesterov", "RMSProp", "Adam")  # the optimizers with per-parameter state


def late_gradient(sub, seed: int, name: str, h: dict, late: int, steps: int) -> str | None:
    """[W1, b, W2] in one group, b.grad None for the first `late` steps and then in the loss (a frozen
    layer unfrozen later): every parameter after every step = torch.optim's twin's on the same run,
    computed here. b's state starts at its first gradient (torch.optim.Adam's state[b]['step'] counts
    b's own steps), whatever the other parameters' steps. Judged only when the student's optimizer is
    torch's on the same problem with every parameter in the loss from the start (a wrong update is its
    own check's finding) and over the first `late` steps (b moved while its .grad was None, or W2 left
    behind: grad-none's finding)."""
    init, _ = separable_problem(seed)
    params, whole = leaves(init, [0, 1, 2]), leaves(init, [0, 1, 2])
    start = flat(params)
    done = parts_of(name, sub.run_local(late_here, student_optimizer(sub, name), params, whole, h, seed, late,
                                        steps), 2)
    rows = checked_rows(name, done[0], start, flat(params), steps)
    baseline = checked_rows(name, done[1], start, flat(whole), steps)
    twin, twin_baseline = _late_twin(seed, {"optimizer": name, "hyper": h, "late": late, "steps": steps})
    if departure(baseline, twin_baseline) is not None or departure(rows[: late + 1], twin[: late + 1]) is not None:
        return None
    names = entry_names(init, [0, 1, 2])
    where = departure(rows, twin, names=names)
    if where is None:
        return None
    first = late + 1  # the row after b's first update
    cols = slice(6, 8)  # b's entries, between W1's six and W2's six
    others = np.r_[0:6, 8:14]
    b_first = departure(rows[first:first + 1, cols], twin[first:first + 1, cols]) is not None
    others_agree = departure(rows[: first + 1, others], twin[: first + 1, others]) is None
    message = (f"with b's .grad None for the first {late} steps (then b in the loss), the run departs from "
               f"{TWINS[name]}'s on the same run {where}")
    if not (b_first and others_agree):
        return (f"{message}. Every parameter keeps its own state in self.state[p], created at its first "
                "gradient; a parameter without a gradient leaves the others' updates as they are")
    if name != "Adam":
        return (f"{message}, while W1 and W2 agree. Likely cause: b's state does not start fresh at its first "
                f"gradient (at step {first}): create each buffer at zero in self.state[p] when p first has a .grad, "
                "and update only the state of parameters that have one")
    with torch.no_grad():
        b0 = torch.tensor(rows[late, cols], dtype=DTYPE)
        g = separable_problem(seed)[1][1].slope(b0)
    counted = ("; its first update is exactly Adam's with bias correction at t = "
               f"{first} (1 - b1^{first}, 1 - b2^{first}), the number of step() calls, not at t = 1"
               if np.allclose(rows[first, cols], adam_first_update(b0, g, h, first), rtol=RTOL, atol=ATOL) else "")
    return (f"{message}, while W1 and W2 agree: b's first update is wrong{counted}. Likely cause: the step count is "
            "kept per group/optimizer, not per parameter: a parameter's first update must use bias correction for "
            "step 1 (torch.optim.Adam keeps it in self.state[p]['step'], counting that parameter's own steps)")


# --- Newton-Raphson on a quadratic ----------------------------------------------------------------

def quadratic_loss(A, b):
    """f(x, Y, c) = 1/2 z^T A z - b^T z, z = [x, vec(Y), c]. Module-level, as every loss handed to
    Newton's step: the student's process builds it beside its tensors (sub.local), since step()
    differentiates it twice."""
    def f(x, Y, c):
        z = torch.cat([x.reshape(-1), Y.reshape(-1), c.reshape(-1)])
        return 0.5 * z @ A @ z - b @ z
    return f


def rosenbrock_loss():
    def loss(w):
        return (1 - w[0]) ** 2 + 10 * (w[1] - w[0] ** 2) ** 2

    # In closed form, on Python floats: hundreds of first-order steps per run, where two tensor ops
    # each cost more than this arithmetic (Newton differentiates `loss`). The same float64 operations in
    # the same order as on 0-dim tensors: the very same numbers.
    def gradient(w):
        x, y = w.detach().tolist()
        return [torch.tensor([-2 * (1 - x) - 40 * x * (y - x * x), 20 * (y - x * x)], dtype=w.dtype, device=w.device)]

    def value(w):
        x, y = w.detach().tolist()
        a, b = 1 - x, y - x * x
        return a * a + 10 * (b * b)
    loss.gradient, loss.value = gradient, value
    return loss


def logistic_loss(X, y):
    return lambda w, b: F.binary_cross_entropy_with_logits(X @ w + b, y)


def newton_quadratic(sub, seed, p):
    """f(x, Y, c) = 1/2 z^T A z - b^T z with z = [x, vec(Y), c] (sizes 2, 4 and 1; x and Y in one
    parameter group, c in a second), A symmetric positive definite: one Newton step from z0 with
    learning rate lr lands on z0 - lr A^{-1} (A z0 - b); with lr = 1, on the minimum A^{-1} b. Three
    parameters of different sizes show a direction split or handed out in the wrong order. The target
    is computed here by a linear solve. The runs that probe how step() is written rather than the seed's
    quadratic (another lr from a generator, a group's own lr, a non-contiguous Y, an ill-conditioned H) run at
    the first seed of the student's process only, their cases marked "once"; every run of a seed goes in one
    message."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(7, 7))
    A = torch.tensor(M @ M.T + np.eye(7), dtype=DTYPE)
    b = torch.tensor(rng.normal(size=7), dtype=DTYPE)
    z0 = torch.tensor(rng.normal(size=7), dtype=DTYPE)
    f = quadratic_loss(A, b)

    def start(strided: bool = False):
        Y = z0[2:6].reshape(2, 2)
        return (z0[:2].clone().requires_grad_(), (Y.t().contiguous().t() if strided else Y.clone()).requires_grad_(),
                z0[6:].clone().requires_grad_())
    # every step in one message, in the student's process; the parameters come back synced. At every seed: lr = 1
    # from two groups; at the process's first, the other lrs too (from a generator: lr scales the step whatever the
    # quadratic)
    once = sub.first_time("newton-structure")
    lrs = list(p["lrs"]) if once else list(p["lrs"][:1])
    starts, group_lr = [start() for _ in lrs], [None] * len(lrs)
    if once:
        # a third run: two groups, c's with an lr of its own (per-group hyper-parameters, read at every step)
        starts.append(start())
        lrs.append(p["lrs"][0])
        group_lr.append(p["lrs"][0] / 4)
        # and a fourth: Y non-contiguous (the same values, transposed storage), as the first-order optimizers' W2
        # is: a step written through p.view(-1) raises there, one through p.reshape(-1) writes into a copy
        starts.append(start(strided=True))
        lrs.append(p["lrs"][0])
        group_lr.append(None)
    strided = len(starts) - 1 if once else None
    twice = None
    if once:
        # and a fifth: two steps with lr = 0.5 (three quarters of the way): each step from the gradient and Hessian at
        # the parameters as they are then (a blind red team's Newton took g by loss.backward() into a p.grad it never
        # cleared, so the second step used both steps' gradients: one step alone was right, round 9)
        starts.append(start())
        lrs.append(p["lrs"][-1])
        group_lr.append(None)
        twice = len(starts) - 1
    runs = [[*xYc, lr, g] for xYc, lr, g in zip(starts, lrs, group_lr)]
    if once:  # and the ill-conditioned quadratic's step (_newton_backward_error)
        ill = _ill_conditioned(rng)
        runs.append([*ill[2], 1.0, None, ill[0], ill[1]])
    done = parts_of("Newton", sub.run_local(newton_here, student_optimizer(sub, "Newton"), A, b, runs, twice), len(runs))
    cases = []
    for k, ((x, Y, c), lr, result) in enumerate(zip(starts, lrs, done)):
        if not isinstance(result, dict) or result.get("unusable"):
            built("Newton", result)  # the ApiError that says why
        returned = result.get("returned")
        rates = torch.full((7,), lr, dtype=DTYPE)
        if group_lr[k] is not None:
            rates[6:] = group_lr[k]
        target = z0 - rates * torch.linalg.solve(A, A @ z0 - b)
        if k == twice:
            target = target - rates * torch.linalg.solve(A, A @ target - b)
            cases.append({"name": f"two steps with lr={lr}, parameters from a generator (each from where the last "
                                  f"ended: {1 - (1 - lr) ** 2:g} of the way)",
                          "shape": [7], "values": flat([x, Y, c]), "target": target.tolist(), "once": True})
            continue
        how = "two groups" if k == 0 else "parameters from a generator" if k < len(p["lrs"]) else \
            "Y non-contiguous (a transposed tensor), parameters from a generator" if k == strided else \
            (f"two groups, the second's own lr={group_lr[k]} (the group's, not the defaults'), the first's lr set "
             f"in param_groups[0] after construction (built with lr={2 * lr})")
        minimum = " (lr=1: the minimum)" if group_lr[k] is None else ""
        name = f"one step with lr={lr}, {how}{minimum}"
        marked = {"once": True} if k > 0 else {}
        if result.get("error"):  # step() raised on this configuration only: a failure of its case, said as such
            cases.append({"name": name, "shape": [7], "values": [math.nan] * 7, "target": target.tolist(), **marked,
                          "error": (f"Newton.step(closure) on a non-contiguous Y raised {result['error'].rstrip('.')}. Likely "
                                    "cause: the step written through p.view(-1), which needs a contiguous tensor (and "
                                    "p.reshape(-1) is a copy there: writes into it are lost); write into p itself, "
                                    "p.sub_(lr * d.view_as(p)) with d the parameter's slice of H^{-1} g, as torch.optim's "
                                    "optimizers work on any layout"
                                    if k == strided else f"Newton.step(closure) raised {result['error']}")})
            continue
        cases.append({"name": name, "shape": [7], "values": flat([x, Y, c]), "target": target.tolist(), **marked})
        if k == strided:
            continue  # the loss returned: judged on the contiguous runs
        loss = returned
        cases.append({"name": f"lr={lr}: the loss step(closure) returns (the closure's, before the update)"
                      if group_lr[k] is None else f"lr={lr}, the second group's lr={group_lr[k]}: the loss "
                      "step(closure) returns (the closure's, before the update)",
                      "shape": [1], "values": [float(loss) if isinstance(loss, (int, float)) else math.nan],
                      "target": [f(*z0.split([2, 4, 1])).item()], **marked})
    if once:
        cases.append({**_newton_backward_error(*ill, done[-1]), "once": True})
    return {"cases": cases}


def _ill_conditioned(rng):
    """A quadratic whose A has condition number 1e10, b and the start z0 = 0 (split as x, Y, c) of
    _newton_backward_error's step."""
    Q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    A = torch.tensor(Q @ np.diag(np.logspace(0, 10, 7)) @ Q.T, dtype=DTYPE)
    A = (A + A.T) / 2
    # from z0 = 0, the gradient g = A z0 - b = -b exactly (no rounding of A z0 to spread along every direction),
    # along H's largest eigenvector: the step d = H^{-1} g is then small (||H|| ||d|| ~ ||g||), where a solve's
    # residual is ~1e-16 ||g|| and an inverse's ~cond(H) 1e-16 ||g||
    z0 = torch.zeros(7, dtype=DTYPE)
    b = -torch.tensor(Q[:, -1], dtype=DTYPE)
    return A, b, (z0[:2].clone().requires_grad_(), z0[2:6].reshape(2, 2).clone().requires_grad_(),
                  z0[6:].clone().requires_grad_())


def _newton_backward_error(A, b, start, result):
    """One Newton step (lr = 1) on a quadratic whose A has condition number 1e10 (_ill_conditioned), judged by the
    backward error of its direction d = z0 - z1, ||A d - g|| / (||A|| ||d|| + ||g||) with g = A z0 - b: ~1e-17 for
    a linear solve (LU, Cholesky, least squares), ~1e-7 for H^{-1} g however the inverse was formed (inv, or a
    solve against the identity: round 13's red team, which the forbid list's names do not see), where the
    well-conditioned quadratic above cannot tell them apart. `result`: newton_here's for that step."""
    name = ("one step (lr=1) on an ill-conditioned quadratic (cond(H) = 1e10): the backward error of its direction d, "
            "||H d - g|| / (||H|| ||d|| + ||g||) (a linear solve: ~1e-17; H^{-1} g from an inverse: ~1e-7)")
    if not isinstance(result, dict) or result.get("unusable") or result.get("error"):
        return {"name": name, "shape": [1], "values": [math.nan], "target": [0.0],
                "error": f"Newton.step(closure) raised {result.get('error')}" if isinstance(result, dict) and
                result.get("error") else "Newton could not be used on this quadratic"}
    z0 = torch.zeros(7, dtype=DTYPE)
    g = A @ z0 - b
    d = z0 - torch.tensor(flat(list(start)), dtype=DTYPE)
    error = float(torch.linalg.vector_norm(A @ d - g) /
                  (torch.linalg.matrix_norm(A, 2) * torch.linalg.vector_norm(d) + torch.linalg.vector_norm(g)))
    return {"name": name, "shape": [1], "values": [error], "target": [0.0]}


def newton_here(make, A, b, runs: list, twice=None) -> list:
    """In the student's process: for each run [x, Y, c, lr, group_lr], one step of Newton(lr=lr) on f
    (first run: [x, Y] and [c] in two groups; the next: parameters from a generator, as model.parameters()
    is; with group_lr: two groups, [c]'s with that lr), and what step(closure) returned. A run
    [x, Y, c, lr, group_lr, A2, b2] steps on the quadratic of A2 and b2 instead of A and b's. The run at index
    `twice` takes two steps (what the second returned)."""
    out = []
    for k, (x, Y, c, lr, group_lr, *own) in enumerate(runs):
        if k == twice:
            opt = make((t for t in (x, Y, c)), lr=lr)
            if not usable(opt):
                out.append({"unusable": True})
                continue
            opt.step(quadratic_loss(A, b))
            out.append({"returned": as_data(opt.step(quadratic_loss(A, b)))})
            continue
        A_k, b_k = own if own else (A, b)
        if group_lr is not None:
            params = [{"params": [x, Y]}, {"params": [c], "lr": group_lr}]
        else:
            params = [{"params": [x, Y]}, {"params": [c]}] if k == 0 else (t for t in (x, Y, c))
        # with a group's own lr, the first group's lr is set in param_groups after construction (as a scheduler
        # does): an lr read in __init__ steps with twice it
        opt = make(params, lr=2 * lr if group_lr is not None else lr)
        if not usable(opt):
            out.append({"unusable": True})
            continue
        if group_lr is not None:
            opt.param_groups[0]["lr"] = lr
        if Y.is_contiguous():
            out.append({"returned": as_data(opt.step(quadratic_loss(A_k, b_k)))})
            continue
        try:  # a layout the others lack: an error here is this run's finding, not the whole check's
            out.append({"returned": as_data(opt.step(quadratic_loss(A_k, b_k)))})
        except Exception as e:  # noqa: BLE001
            out.append({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"})
    return out


# --- the documented defaults ---------------------------------------------------------------------

def defaults(sub, seed, p):
    """Each optimizer built with its parameters alone: the hyper-parameters its (only) parameter group
    holds, which is what step() reads; compared with the reference's, i.e. the signature's defaults."""
    cases = []
    for name, keys in p["optimizers"].items():
        group = build(student_optimizer(sub, name), [torch.zeros(2, dtype=DTYPE, requires_grad=True)],
                      name).param_groups[0]
        for key in keys:
            if key not in group:
                raise ApiError(f"{name}(params).param_groups[0] has no '{key}': pass it in the defaults dict")
            value = [float(v) for v in np.ravel(group[key])]
            cases.append({"name": f"{name}(params): param_groups[0]['{key}']", "shape": [len(value)], "values": value})
    return {"cases": cases}


# --- convergence: Rosenbrock and logistic regression ---------------------------------------------

def rosenbrock_problem(seed):
    """f(x, y) = (1 - x)^2 + 10 (y - x^2)^2 (minimum 0 at (1, 1)), from (-1.2, 1) moved by the seed."""
    start = torch.tensor([-1.2, 1.0], dtype=DTYPE) + torch.tensor(np.random.default_rng(seed).normal(0, 0.2, 2))
    return [start], rosenbrock_loss, ()


def logistic_problem(seed):
    """Mean logistic loss of (w, b) on two separable Gaussians (40 points in 2-D), from w = 0, b = 0."""
    X, y = gaussian_blobs(seed, 40, classes=2, dim=2, distance=6.0, margin=0.5)
    X, y = torch.tensor(X, dtype=DTYPE), torch.tensor(y, dtype=DTYPE)
    return [torch.zeros(2, dtype=DTYPE), torch.zeros(1, dtype=DTYPE)], logistic_loss, (X, y)


def descend_to_target(opt, params, loss_fn, budget: int, target: float, newton: bool):
    """Steps until the loss reaches `target` or `budget` is spent; Newton's step takes the loss as a
    function of the parameters, the others a backward() before step() (gradients cleared here: the
    student's zero_grad() is the contract check's alone). Run in the student's process (sub.run_local:
    hundreds of tiny steps in one message); `train` checks what it reports."""
    losses, gradient = [], None if newton else getattr(loss_fn, "gradient", None)
    value = getattr(loss_fn, "value", None) if gradient is not None else None  # the loss as a float
    for k in range(budget + 1):
        if value is not None:
            losses.append(value(*params))
        else:
            with torch.set_grad_enabled(gradient is None):  # a closed-form gradient needs no graph
                loss = loss_fn(*params)
            losses.append(loss.item())
        if not losses[-1] > target or k == budget:  # reached, nan, or out of budget
            break
        if newton:
            opt.step(loss_fn)
        else:
            clear_grads(params)
            if gradient is not None:
                accumulate(params, gradient(*params))
            else:
                loss.backward()
            opt.step()
    return losses, k


def trained_here(loss_fn, runs: list) -> list:
    """Every run of a convergence check, in the student's process, one message for all: each builds
    its optimizer (make, params, values) and descends to the target (descend_to_target)."""
    out = []
    for make, params, values, budget, target, newton in runs:
        try:
            opt = make(params, **hyper(values))
            out.append(descend_to_target(opt, params, loss_fn, budget, target, newton) if usable(opt) else
                       {"unusable": True})
        except Exception as e:  # noqa: BLE001 - this run's finding; the other runs still run
            out.append({"raised": f"{type(e).__name__}: {str(e)[:300]}{_student_line(e)}"})
    return out


def _student_line(e: BaseException) -> str:
    """ (file:line), the last frame of the traceback outside this harness: where the student's code raised."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
    return f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""


def train(sub, runs: list[dict], init, factory, args: tuple, target: float) -> list[dict]:
    """Train each run until the loss reaches `target` or its budget is spent. The loops run beside the
    student's optimizers; the parameters each reached come back mirrored, and the loss there is
    recomputed here, so what is judged is never a number the student's process reported."""
    params = [[w.clone().requires_grad_() for w in init] for _ in runs]
    given = [(student_optimizer(sub, run["optimizer"]), ps, run["hyper"], run["budget"], target,
              run["optimizer"] == "Newton") for run, ps in zip(runs, params)]
    # Newton's runs in a message of their own: a message runs under the rules of every API name whose objects
    # it hands over, and Newton's (forbidden operators: a torch dispatch mode, ~4 us an operator) slowed the
    # first-order runs' thousand steps 2-3 times over, where they are not those runs' rules
    done: list = [None] * len(runs)
    for newton in (False, True):
        which = [k for k, run in enumerate(runs) if (run["optimizer"] == "Newton") is newton]
        if which:
            got = sub.run_local(trained_here, sub.local(factory, *args), [given[k] for k in which])
            if not isinstance(got, list) or len(got) != len(which):
                raise ApiError("the training runs came back malformed")
            for k, result in zip(which, got):
                done[k] = result
    return [judged_run(run, ps, result, factory, args) for run, ps, result in zip(runs, params, done)]


def judged_run(run: dict, params: list, result, factory, args: tuple) -> dict:
    name = run["optimizer"]
    if isinstance(result, dict) and isinstance(result.get("raised"), str):
        return {"name": describe(name, run["hyper"]), "optimizer": name, "raised": result["raised"][:400]}
    if isinstance(result, dict) and result.get("unusable"):
        raise ApiError(f"{name}(params, ...) has no usable param_groups/state: call "
                       "super().__init__(params, defaults) in __init__")
    if not (isinstance(result, (list, tuple)) and len(result) == 2 and isinstance(result[0], list)):
        raise ApiError(f"{describe(name, run['hyper'])}: the training run came back malformed")
    reported, k = result
    with torch.no_grad():
        loss = float(factory(*args)(*params))
    last = float(reported[-1]) if reported else math.nan
    if not (math.isnan(loss) and math.isnan(last)) and abs(loss - last) > 1e-9 * max(1.0, abs(loss)):
        raise ApiError(f"{describe(name, run['hyper'])}: the loss at the parameters reached is {loss!r}, not the "
                       f"{last!r} the training loop saw: the parameters changed outside step()?")
    losses = [float(v) for v in reported[:-1]] + [loss]
    return {"name": describe(name, run["hyper"]), "optimizer": name, "loss": loss, "steps": int(k),
            "losses": losses[:: max(1, len(losses) // 20)] + losses[-1:]}


def rosenbrock(sub, seed, p):
    init, factory, args = rosenbrock_problem(seed)
    return {"runs": train(sub, p["runs"], init, factory, args, p["target"])}


def logistic(sub, seed, p):
    init, factory, args = logistic_problem(seed)
    return {"runs": train(sub, p["runs"], init, factory, args, p["target"])}


# --- placement: every optimizer on parameters and gradients on the meta device ---------------------

def meta_params(name: str, with_values: bool = False) -> list:
    """Built in the student's process: the contract checks' shapes (W2 non-contiguous), or Newton's
    quadratic's (x, Y, c), on the meta device (shapes and dtypes, no values); `with_values`, inside
    placement's second run, with seeded values (graders/kinds/elsewhere.py)."""
    generator = torch.Generator().manual_seed(0)

    def on_meta(*shape: int):
        if with_values:
            return torch.randn(*shape, generator=generator, dtype=DTYPE).to("meta")
        return torch.empty(*shape, dtype=DTYPE, device="meta")
    if name == "Newton":
        return [on_meta(*s).requires_grad_() for s in ((2,), (2, 2), (1,))]
    return [on_meta(3, 2).requires_grad_(), on_meta(2).requires_grad_(), on_meta(2, 3).t().requires_grad_()]


def placed_here(make, name: str, values: dict, steps: int, with_values: bool = False) -> dict:
    """In the student's process (sub.run_local): `name` built on parameters on the meta device and
    `steps` step() calls, gradients on meta too (Newton: step(closure) on a quadratic whose A and b are
    on meta); where each parameter, each gradient, each state tensor and what step() returned are. A
    0-dim CPU tensor in the state is torch's own step count (torch.optim.Adam keeps it there): left out.
    Meta tensors are built and run there only (their first use imports torch's meta kernels).
    `with_values`: placement's second run, where the meta one stopped at a value read: the same on a
    device with values (a positive definite A, gradients of 0.1)."""
    with values_run_there(with_values):
        return _placed_here(make, name, values, steps)


def _placed_here(make, name: str, values: dict, steps: int) -> dict:
    params = meta_params(name, with_values=values_run())
    opt = make(params, **hyper(values))
    returned = None
    for _ in range(steps):
        if name == "Newton":
            if values_run():
                A = (torch.eye(7, dtype=DTYPE) * 2 + 0.1).to("meta")
                b = torch.ones(7, dtype=DTYPE).to("meta")
            else:
                A, b = torch.empty(7, 7, dtype=DTYPE, device="meta"), torch.empty(7, dtype=DTYPE, device="meta")
            returned = opt.step(quadratic_loss(A, b))
        else:
            for q in params:
                q.grad = torch.full_like(q, 0.1) if values_run() else torch.empty_like(q)
            opt.step()
    names = ("x", "Y", "c") if name == "Newton" else NAMES
    out = {}
    for label, q in zip(names, params):
        out[f"{label} after {steps} step() calls"] = q
        if q.grad is not None:
            out[f"{label}.grad"] = q.grad
        state = opt.state.get(q, {}) if isinstance(getattr(opt, "state", None), dict) else {}
        for key, value in (state.items() if isinstance(state, dict) else ()):
            if isinstance(value, torch.Tensor) and not (value.dim() == 0 and value.device.type == "cpu"):
                out[f"self.state[{label}][{key!r}]"] = value
    if isinstance(returned, torch.Tensor):
        out["the loss step(closure) returned"] = returned
    return {k: str(getattr(v, "device", type(v).__name__)) for k, v in out.items()}


def placement(sub, seed, p):
    """Each optimizer in turn (construction and a few step() calls on the meta device, in the student's
    process): the first whose parameters, gradients or state left the parameters' device, or that raised
    a device error, is the measurement; one that needs a value (an .item(), a solve without a meta kernel)
    is inconclusive and the others decide; all inconclusive: inconclusive."""
    found, unsure, cpu_too = {}, [], {}
    for config in p["configs"]:
        name, values = config["optimizer"], config.get("hyper", {})
        label = describe(name, values)

        def run(device, name=name, values=values, label=label):
            # (measure_placement's second run, with values, is passed on to the student's process)
            placed = sub.run_local(placed_here, student_optimizer(sub, name), name, values, p["steps"], values_run())
            if not isinstance(placed, dict) or not all(isinstance(v, str) for v in placed.values()):
                raise ApiError("the placement run came back malformed")
            return {f"{label}: {k}": Placed(v) for k, v in placed.items()}
        measured = measure_placement(run)
        if "error" in measured:
            return {**measured, "error": f"{label}: {measured['error']}"}
        if "cpu_too" in measured:  # it fails on the CPU too with these inputs: the judge asks who charges that
            cpu_too.setdefault("cpu_too", f"{label}: {measured['cpu_too']}")
        if "inconclusive" in measured:
            unsure.append(f"{label}: {measured['inconclusive']}")
            continue
        found.update(measured["outputs"])
        if any(device != "meta" for device in measured["outputs"].values()):
            break
    if not found:
        return {"inconclusive": "; ".join(unsure) or "no optimizer was run", **cpu_too}
    return {"input_device": "meta", "outputs": found, **cpu_too}



# --- parity: every optimizer's run on the CPU and on the accelerator --------------------------------

def parity(sub, seed, p):
    """Each optimizer's run (`steps` steps of the trajectory checks' problem; Newton: one step on the
    quadratic), from the same start on the CPU and on the accelerator (measure_parity's run(device)):
    the parameters reached, compared by the parity kind. float64, so that only a device's own
    arithmetic differs."""
    init, _ = net_problem(seed)

    def run(device):
        out = {}
        for config in p["configs"]:
            name, values = config["optimizer"], config.get("hyper", {})
            label = describe(name, values)
            if name == "Newton":
                rng = np.random.default_rng(seed)
                M = rng.normal(size=(7, 7))
                A = torch.tensor(M @ M.T + np.eye(7), dtype=DTYPE, device=device)
                b = torch.tensor(rng.normal(size=7), dtype=DTYPE, device=device)
                z0 = torch.tensor(rng.normal(size=7), dtype=DTYPE, device=device)
                params = [z0[:2].clone().requires_grad_(), z0[2:6].reshape(2, 2).clone().requires_grad_(),
                          z0[6:].clone().requires_grad_()]
                done = parts_of(name, sub.run_local(newton_here, student_optimizer(sub, name), A, b,
                                                    [[*params, float(values.get("lr", 1.0)), None]]), 1)
                if not isinstance(done[0], dict) or done[0].get("unusable"):
                    built(name, done[0])  # the ApiError that says why
                names = ("x", "Y", "c")
            else:
                params = [w.clone().to(device).requires_grad_() for w in init]
                run_there(sub, name, [{"params": params, "values": values, "loss": ["net", seed, device],
                                       "steps": p["steps"]}])
                names = ("W1", "W2")
            out.update({f"{label}: {n} after {'one step' if name == 'Newton' else str(p['steps']) + ' steps'}":
                        q.detach() for n, q in zip(names, params)})
        return out
    return measure_parity(run)
