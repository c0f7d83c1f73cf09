"""exercise-6 probes: run the student's optimizers on small seeded problems (float64) and return
plain numbers; the judging happens in the parent (graders/agreement.py, graders/convergence.py).

Where torch ships the same optimizer, the probe also runs torch.optim's on the same problem with the
same hyper-parameters and returns its trajectory as the `target`. The parent compares the student's
values with the target measured in the *reference's* child, so patching torch.optim in a
submission changes nothing but the submission's own, unused, target.
"""

import io

import numpy as np
import torch
import torch.nn.functional as F

from dldiy.graders.api import ApiError
from dldiy.graders.data import gaussian_blobs

DTYPE = torch.float64


# --- the optimizers: the student's, and torch's twin --------------------------------------------

def student_optimizer(sub, name: str):
    cls = sub.get(name)
    info = cls.introspect() if hasattr(cls, "introspect") else {}
    if not (info.get("class") and "torch.optim.optimizer.Optimizer" in info.get("mro", [])):
        raise ApiError(f"`{name}` must be a class deriving from torch.optim.Optimizer, not {cls!r}")
    return cls


def torch_optimizer(name: str):
    """torch.optim's optimizer doing what the exercise's `name` does, with the same keyword names."""
    if name in ("GD", "Momentum"):
        return torch.optim.SGD
    if name == "Nesterov":
        return lambda params, **hyper: torch.optim.SGD(params, nesterov=True, **hyper)
    return {"RMSProp": torch.optim.RMSprop, "Adam": torch.optim.Adam}[name]


def hyper(table: dict) -> dict:
    """Spec (TOML) hyper-parameters as Python ones: betas = [0.9, 0.99] is a tuple."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def describe(name: str, table: dict) -> str:
    return f"{name}({', '.join(f'{k}={tuple(v) if isinstance(v, list) else v}' for k, v in table.items())})"


# --- the fixed problem of the trajectory checks ------------------------------------------------

def net_problem(seed: int, n: int = 16, width: int = 3):
    """A two-layer tanh regression, loss(W1, W2) = mean((tanh(X W1) W2 - Y)^2): non-quadratic, with
    two parameters of the same shape (a state shared between parameters shows), from the seed."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, width, generator=g, dtype=DTYPE)
    Y = torch.randn(n, width, generator=g, dtype=DTYPE)
    init = [0.7 * torch.randn(width, width, generator=g, dtype=DTYPE) for _ in range(2)]

    def loss(W1, W2):
        return ((torch.tanh(X @ W1) @ W2 - Y) ** 2).mean()

    return init, loss


def flat(params) -> list[float]:
    return torch.cat([p.detach().reshape(-1) for p in params]).tolist()


def run_first_order(make, config: dict, seed: int, steps: int) -> tuple[list[list[float]], list[float]]:
    """The trajectory of one configuration: parameters after each step (row 0: the initial values)
    and the loss before each step.

    config: `hyper` (constructor keywords); `second_group` (W2 in a second parameter group with these
    overrides); `unused` (a third parameter, outside the loss, so its .grad stays None); `resume`
    (after that many steps: state_dict(), torch.save/load, a new optimizer on fresh tensors built
    with `hyper` updated by `resume_hyper`, load_state_dict(), and on).
    """
    init, loss_fn = net_problem(seed)
    W1, W2 = (w.clone().requires_grad_() for w in init)
    unused = torch.linspace(-1, 1, W1.numel(), dtype=DTYPE).view_as(W1).requires_grad_()
    params = [W1, unused, W2] if config.get("unused") else [W1, W2]

    def build(params, table):
        if "second_group" in config:
            rest = [p for p in params if p is not params[-1]]
            return make([{"params": rest}, {"params": [params[-1]], **hyper(config["second_group"])}],
                        **hyper(table))
        return make(params, **hyper(table))

    opt = build(params, config["hyper"])
    rows, losses = [flat(params)], []
    for k in range(steps):
        if k == config.get("resume"):
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            params = [p.detach().clone().requires_grad_() for p in params]
            opt = build(params, {**config["hyper"], **config.get("resume_hyper", {})})
            buffer.seek(0)
            opt.load_state_dict(torch.load(buffer, weights_only=True))
        opt.zero_grad()
        loss = loss_fn(params[0], params[-1])
        loss.backward()
        opt.step()
        losses.append(loss.item())
        rows.append(flat(params))
    return rows, losses


def variation(config: dict) -> str:
    """What a configuration adds to the plain run, as the failure message names it."""
    if "second_group" in config:
        return f" with W2 in a second group {describe('', config['second_group'])[1:-1]}"
    if config.get("unused"):
        return " with an unused parameter (entries 9-17, .grad None)"
    if "resume" in config:
        return (f" saved after step {config['resume']} and loaded into a new one built with "
                f"{describe('', config.get('resume_hyper', {}))[1:-1]}")
    return ""


def against_torch(sub, seed, p):
    """Every configuration run twice, by the student's optimizer and by torch.optim's."""
    cases = []
    for config in p["configs"]:
        name, steps = config["optimizer"], config.get("steps", p["steps"])
        mine = run_first_order(student_optimizer(sub, name), config, seed, steps)
        twin = run_first_order(torch_optimizer(name), config, seed, steps)
        label = describe(name, config["hyper"]) + variation(config)
        for (what, values, target) in (("parameters after each step (row 0: initial)", mine[0], twin[0]),
                                       ("loss before each step", mine[1], twin[1])):
            shape = list(np.shape(target))
            cases.append({"name": f"{label}: {what}", "shape": shape, "values": values, "target": target})
    return {"cases": cases}


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
    return lambda w: (1 - w[0]) ** 2 + 10 * (w[1] - w[0] ** 2) ** 2


def logistic_loss(X, y):
    return lambda w, b: F.binary_cross_entropy_with_logits(X @ w + b, y)


def newton_quadratic(sub, seed, p):
    """f(x, Y, c) = 1/2 z^T A z - b^T z with z = [x, vec(Y), c] (sizes 2, 4 and 1; x and Y in one
    parameter group, c in a second), A symmetric positive definite: one Newton step from z0 with
    learning rate lr lands on z0 - lr A^{-1} (A z0 - b); with lr = 1, on the minimum A^{-1} b. Three
    parameters of different sizes show a direction split or handed out in the wrong order. The target
    is computed here by a linear solve."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(7, 7))
    A = torch.tensor(M @ M.T + np.eye(7), dtype=DTYPE)
    b = torch.tensor(rng.normal(size=7), dtype=DTYPE)
    z0 = torch.tensor(rng.normal(size=7), dtype=DTYPE)
    Newton = student_optimizer(sub, "Newton")
    cases = []
    for lr in p["lrs"]:
        x, Y, c = (z0[:2].clone().requires_grad_(), z0[2:6].reshape(2, 2).clone().requires_grad_(),
                   z0[6:].clone().requires_grad_())
        Newton([{"params": [x, Y]}, {"params": [c]}], lr=lr).step(sub.local(quadratic_loss, A, b))
        target = z0 - lr * torch.linalg.solve(A, A @ z0 - b)
        cases.append({"name": f"one step with lr={lr} (lr=1: the minimum)", "shape": [7], "values": flat([x, Y, c]),
                      "target": target.tolist()})
    return {"cases": cases}


# --- the documented defaults ---------------------------------------------------------------------

def defaults(sub, seed, p):
    """Each optimizer built with its parameters alone: the hyper-parameters its (only) parameter group
    holds, which is what step() reads; compared with the reference's, i.e. the signature's defaults."""
    cases = []
    for name, keys in p["optimizers"].items():
        group = student_optimizer(sub, name)([torch.zeros(2, dtype=DTYPE, requires_grad=True)]).param_groups[0]
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


def train(sub, run: dict, init, factory, args: tuple, target: float) -> dict:
    """Train until the loss reaches `target` or the run's budget is spent; Newton's step takes the
    loss as a function of the parameters, the others a backward() before step()."""
    name = run["optimizer"]
    loss_fn = factory(*args)
    params = [w.clone().requires_grad_() for w in init]
    opt = student_optimizer(sub, name)(params, **hyper(run["hyper"]))
    losses = []
    for k in range(run["budget"] + 1):
        loss = loss_fn(*params)
        losses.append(loss.item())
        if not loss.item() > target or k == run["budget"]:  # reached, nan, or out of budget
            break
        if name == "Newton":
            opt.step(sub.local(factory, *args))
        else:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {"name": describe(name, run["hyper"]), "loss": losses[-1], "steps": k,
            "losses": losses[:: max(1, len(losses) // 20)] + losses[-1:]}


def rosenbrock(sub, seed, p):
    init, factory, args = rosenbrock_problem(seed)
    return {"runs": [train(sub, run, init, factory, args, p["target"]) for run in p["runs"]]}


def logistic(sub, seed, p):
    init, factory, args = logistic_problem(seed)
    return {"runs": [train(sub, run, init, factory, args, p["target"]) for run in p["runs"]]}
