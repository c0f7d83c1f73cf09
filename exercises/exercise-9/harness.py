"""exercise-9 probes: an Elman RNN by hand, backpropagation through time, global-norm clipping, and
a task that needs memory (recall, after T steps, the first value of a sequence).

Every input and initialisation is built here from the seed; torch.nn.RNN and
torch.nn.utils.clip_grad_norm_ give the targets of the agreement checks.

One bug, one deduction: each check measures its own function, with what it depends on replaced by the
harness's own correct version (written here with torch and autograd): rnn-agreement judges the
unrolling (ElmanRNN) with the student's cell forward but exact gradients through the cell (the hand
backward is gradcheck's), state-reset judges the reset with an exact cell, and train() runs with an
exact cell, model and clipping.

Those harness versions are built in the student's process (sub.local), and loops of many small calls
run there (sub.run_local, the `*_here` functions): one message per configuration instead of one per
step. Only values come back, and they are judged here against torch's, computed here (gradcheck's
central differences are formed here from the cell's outputs).
"""

import numpy as np
import torch

from dldiy.graders.api import ApiError, expect_history, expect_tensor
from dldiy.graders.api import built_inside as _inside
from dldiy.graders.kinds.contract import Properties
from dldiy.graders.sandbox.endpoint import RemoteError
from dldiy.graders.kinds.gradcheck import EPS, block
from dldiy.graders.kinds.invariants import (fresh_from_leftover_grads, reordered, same_first_step, takes_every_step,
                                           trains_in_place)
from dldiy.graders.batched import exact_vjp, expanded_error, function_kept_and_alone_here, through_sum
from dldiy.graders.kinds.parity import measure_parity
from dldiy.graders.kinds.first_loss import short_run
from dldiy.graders.kinds.placement import Placed, measure_placement, values_run, values_run_there

NAMES = ("W_ih", "W_hh", "b_ih", "b_hh")


# ---- the harness's own correct versions of the student's functions (torch, autograd) ----------------

def exact_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x @ W_ih.t() + b_ih + h @ W_hh.t() + b_hh)


class ExactElman:
    def __init__(self, params):
        self.params = params

    def forward(self, xs):
        p = self.params
        h = torch.zeros(xs.shape[1], p["W_hh"].shape[0], dtype=xs.dtype, device=xs.device)
        hs = []
        for x in xs:
            h = exact_cell(x, h, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"])
            hs.append(h)
        return torch.stack(hs)

    def predict(self, xs):
        return self.forward(xs)[-1] @ self.params["W_out"].t() + self.params["b_out"]


def exact_clip(parameters, max_norm):
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)


def exact(name):
    """The harness's own `name`, built where the submission runs (sub.local): train()'s hundred steps
    then call it there, instead of one message per call into this process (whose autograd graph, bridged
    back, cost more messages still). What train() returns is judged here all the same."""
    return {"rnn_cell": exact_cell, "ElmanRNN": ExactElman, "clip_grad_norm": exact_clip}[name]


def valued_by(student_cell):
    """A cell whose value is the student's forward and whose gradient is the exact one: an unrolling
    judged with it shows the student's forward values, not the student's hand backward."""
    def cell(x, h, W_ih, W_hh, b_ih, b_hh):
        if isinstance(x, torch.Tensor) and isinstance(h, torch.Tensor) and isinstance(W_hh, torch.Tensor) \
                and x.dim() == 2 and tuple(h.shape) != (x.shape[0], W_hh.shape[0]):
            # a (1, H) state broadcasts in the forward, and the cell's own backward then breaks (h^T (dL/da))
            raise ApiError(f"ElmanRNN.forward passed rnn_cell a hidden state of shape {tuple(h.shape)} for a batch "
                           f"of {x.shape[0]}: the cell takes h of shape (N, H) = ({x.shape[0]}, {W_hh.shape[0]}); "
                           "start from zeros of that shape")
        with torch.no_grad():
            value = student_cell(*(t.detach() for t in (x, h, W_ih, W_hh, b_ih, b_hh)))
        exact = exact_cell(x, h, W_ih, W_hh, b_ih, b_hh)
        # a nan or inf is compared with torch's value, and fails there (finite=False): not an error of form
        value = expect_tensor(value, "rnn_cell(x, h, W_ih, W_hh, b_ih, b_hh)", shape=tuple(exact.shape), dtype="float",
                              finite=False)
        return exact + (value.to(exact.dtype) - exact).detach()
    return cell


# ---- data and initialisation ------------------------------------------------------------------------

def recall_first(seed: int, n: int, T: int):
    """n sequences of T values ~ N(0, 1), shape (T, n, 1); the target is each sequence's first value,
    asked for after the last one: a model without memory can do no better than MSE 1."""
    X = np.random.default_rng(seed).normal(0.0, 1.0, (T, n, 1))
    return torch.tensor(X, dtype=torch.float32), torch.tensor(X[0], dtype=torch.float32)


def init_params(seed: int, D: int, H: int, O: int, dtype=torch.float32, device="cpu") -> dict:
    """Uniform(+-1/sqrt(H)) (torch.nn.RNN's default), except W_hh = 0.95 * a random orthogonal
    matrix, so that the state can carry a value over the sequence from the start."""
    rng = np.random.default_rng(seed + 10_000)
    bound = 1 / np.sqrt(H)
    raw = {"W_ih": rng.uniform(-bound, bound, (H, D)), "W_hh": 0.95 * np.linalg.qr(rng.normal(size=(H, H)))[0],
           "b_ih": rng.uniform(-bound, bound, H), "b_hh": rng.uniform(-bound, bound, H),
           "W_out": rng.uniform(-bound, bound, (O, H)), "b_out": rng.uniform(-bound, bound, O)}
    return {k: torch.tensor(v, dtype=dtype, device=device).requires_grad_(True) for k, v in raw.items()}


def _torch_rnn(params):
    """torch.nn.RNN (tanh, one layer, seq-first, h0 = 0) holding copies of params."""
    H, D = params["W_ih"].shape
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", dtype=params["W_ih"].dtype)
    with torch.no_grad():
        for name, value in params.items():
            if name in NAMES:
                kind, which = name.split("_")
                getattr(rnn, f"{'weight' if kind == 'W' else 'bias'}_{which}_l0").copy_(value)
    return rnn


def _params64(gen, D, H, O=1):  # noqa: E741
    return {k: torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.5 for k, shape in
            (("W_ih", (H, D)), ("W_hh", (H, H)), ("b_ih", (H,)), ("b_hh", (H,)), ("W_out", (O, H)), ("b_out", (O,)))}


def _forward(sub, params, xs, what="ElmanRNN(params).forward(xs)", model=None):
    model = model or sub.get("ElmanRNN")(params)
    T, N, _ = xs.shape
    return expect_tensor(model.forward(xs), what, shape=(T, N, params["W_hh"].shape[0]), dtype="float")


def _case(name, measured, target):
    try:  # a wrong shape or dtype is this case's failure, in words (exercise-8's _case)
        measured = expect_tensor(measured, name, shape=tuple(target.shape), dtype="float", finite=False)
    except ApiError as e:
        return {"name": name, "error": str(e).removeprefix(name + " ")}
    return {"name": name, "shape": list(target.shape), "values": measured.detach().reshape(-1).tolist(),
            "target": target.detach().reshape(-1).tolist()}


# ---- agreement with torch ---------------------------------------------------------------------------

def rnn_agreement(sub, seed, p):
    """Hidden states, the gradients of <hs, cotangent> w.r.t. xs and the four weights, and predict(xs),
    against torch.nn.RNN (and its read-out) with the same weights copied in, per configuration
    (T, N, D, H, O). The cell's value is the student's, its gradient the exact one (see valued_by)."""
    cases = []
    # built beside the student's cell (one message per forward, not one per step and its backward);
    # the hidden states and gradients it gives are compared here with torch.nn.RNN's
    with sub.replaced("rnn_cell", _inside(sub, valued_by, sub.get("rnn_cell"))):
        # the grid, then one configuration whose inputs are scaled so that the pre-activations reach
        # |a| ~ 1e4: tanh saturates at +-1 there, while e^a overflows beyond 710 and an exp ratio
        # (e^a - e^-a) / (e^a + e^-a) is inf / inf = nan
        grid = [(*g, 1.0) for g in p["grid"]] + [(*p["saturated"], 1e4)] if "saturated" in p else \
            [(*g, 1.0) for g in p["grid"]]
        for T, N, D, H, O, scale in grid:
            gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
            params, xs = _params64(gen, D, H, O), scale * torch.randn(T, N, D, generator=gen, dtype=torch.float64)
            # the dict in a seeded order of its keys, not the docstring's: a model that reads it by its order
            # (W_ih, W_hh, ... = self.params.values()) is seen (blind red team, round 8)
            params = reordered(params, seed * 1000 + len(cases))
            cotangent = torch.randn(T, N, H, generator=gen, dtype=torch.float64)
            config = f"T={T}, N={N}, D={D}, H={H}, O={O}" + (f", inputs x{scale:g} (tanh saturated)" if scale != 1 else "")
            rnn, x_ref = _torch_rnn(params), xs.clone().requires_grad_(True)
            target, _ = rnn(x_ref)
            # <target, cotangent> differentiated as a scalar: a grad_outputs tensor makes torch import
            # sympy (0.3-0.9 s), more than the whole check
            target_grads = torch.autograd.grad((target * cotangent).sum(), [x_ref, rnn.weight_ih_l0, rnn.weight_hh_l0,
                                                                            rnn.bias_ih_l0, rnn.bias_hh_l0])
            try:
                got = sub.run_local(unrolled_here, sub.get("ElmanRNN"), params, xs, cotangent)
            except RemoteError as e:  # valued_by's ApiError, raised there: said as the harness says it here
                if e.message.startswith("ApiError: "):
                    raise ApiError(e.message.removeprefix("ApiError: ")) from None
                said = _in_order_of_keys(sub, e, params, xs, cotangent)
                if said is None:
                    raise
                cases.append({"name": f"{config}: hidden states", "error": said})
                continue
            if not isinstance(got, dict):
                raise ApiError(f"{config}: the unrolling came back malformed")
            hs = expect_tensor(got.get("hs"), "ElmanRNN(params).forward(xs)", shape=(T, N, H), dtype="float",
                               finite=False)
            if not got.get("graph"):
                raise ApiError("ElmanRNN.forward's output does not require grad: is every step computed by "
                               "rnn_cell, and the hidden state kept in the graph?")
            cases.append(_case(f"{config}: hidden states", hs, target))
            for name, g, t in zip(("xs",) + NAMES, got.get("grads") or [None] * 5, target_grads):
                if g is None:  # this configuration's failure, in words (a weight left out of the unrolling)
                    cases.append({"name": f"{config}: gradient of {name} (through time)",
                                  "error": "backpropagation gave no gradient for it: is it used at every step?"})
                    continue
                cases.append(_case(f"{config}: gradient of {name} (through time)", g, t))
            pred = got.get("prediction")
            with torch.no_grad():
                want = target[-1] @ params["W_out"].t() + params["b_out"]
            name = f"{config}: predict(xs), the read-out of the last hidden state"
            case = {"name": name, "error": pred} if isinstance(pred, str) else _case(name, pred, want)
            ones = [f"{k} = 1" for k, v in (("N", N), ("H", H), ("O", O)) if v == 1]
            if "error" in case and ones:  # a size of 1 that a .squeeze() drops (blind red team, round 9)
                case["error"] = case["error"].split(" (same number of entries")[0]  # its generic guess: the hint's
                case["hint"] = (f"predict must return (N, O) = ({N}, {O}) for every size, here with {' and '.join(ones)}: "
                                "a .squeeze() (of hs[-1], of the read-out) drops every dimension of size 1, the batch's "
                                "for one sequence, H's or O's too, and the matmul or the shape then goes wrong. Index "
                                "hs[-1], which is (N, H) already, and keep it 2-D: hs[-1] @ W_out.T + b_out.")
            cases.append(case)
    return {"cases": cases}


def _in_order_of_keys(sub, e, params, xs, cotangent):
    """After the unrolling raised `e` on `params` (the keys in a seeded order): where the same dict in the
    docstring's order runs, the order is the cause, said in words; else None (`e` is the finding)."""
    in_order = {k: params[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh", "W_out", "b_out") if k in params}
    try:
        sub.run_local(unrolled_here, sub.get("ElmanRNN"), in_order, xs, cotangent)
    except Exception:  # noqa: BLE001 - it raises in any order: e is the finding
        return None
    said = (e.message.splitlines() or [type(e).__name__])[0][:300]
    return (f"raised {said} on a params dict whose keys come in another order ({', '.join(params)}), and runs on the "
            "same dict in the docstring's order: read self.params by its keys (self.params[\"W_ih\"], ...), never by "
            "their order (W_ih, W_hh, ... = self.params.values())")


def unrolled_here(model, params, xs, cotangent) -> dict:
    """In the student's process (sub.run_local, one message per configuration): the student's model
    on copies of params and xs, its hidden states, the gradients of <hs, cotangent> w.r.t. xs and the
    four weights (backpropagation through the student's unrolling), and predict(xs). Compared in the
    harness with torch.nn.RNN's, computed there."""
    mine = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    x = xs.clone().requires_grad_(True)
    hs = model(mine).forward(x)
    if not isinstance(hs, torch.Tensor) or hs.shape != cotangent.shape or not hs.requires_grad:
        return {"hs": hs.detach() if isinstance(hs, torch.Tensor) else hs, "graph": False}
    grads = torch.autograd.grad((hs * cotangent).sum(), [x] + [mine[k] for k in NAMES], allow_unused=True)
    try:  # predict's own failure is its case's, said with the configuration (the states and gradients stand)
        with torch.no_grad():
            prediction = model(params).predict(xs)
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        prediction = f"raised {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
    return {"hs": hs.detach(), "graph": True, "prediction": prediction,
            "grads": [None if g is None else g.detach() for g in grads]}


def gradcheck(sub, seed, p):
    """The hand backward of one cell (all six inputs) against central differences (float64), for each
    (N, D, H) of the family. (Backpropagation through time is rnn-agreement's: it unrolls with exact
    cell gradients, so a wrong hand backward is charged here only.)"""
    gen = torch.Generator().manual_seed(seed)
    # The Function itself, not rnn_cell: an rnn_cell of plain torch ops (autograd's exact backward) with the
    # Function left a stub scored full marks (red team, round 8); the model's use of the Function is
    # the invariants' own-cell property's
    function, blocks = sub.get("RNNCellFunction"), []
    for N, D, H in p["cells"]:
        params = _params64(gen, D, H)
        x, h = torch.randn(N, D, generator=gen, dtype=torch.float64), torch.randn(N, H, generator=gen, dtype=torch.float64)
        inputs = [x, h] + [params[k] for k in NAMES]
        names = [f"one cell (N={N}, D={D}, H={H}): {n}" for n in ("x", "h") + NAMES]
        # the cell's backward once and its forward at every point of the differences, in one message
        got = sub.run_local(function_probes_here, function, inputs, EPS)
        if not isinstance(got, dict) or not isinstance(got.get("out"), torch.Tensor):
            raise ApiError(f"{CELL_CALL} did not return a tensor")
        cotangent = _cotangent(got["out"].shape)
        # the exact v^T J (autograd on exact_cell, here) where the cell's forward is right: a hand backward is
        # exact to float64's rounding, a difference quotient of the forward is not (red team, round 13)
        exact = exact_vjp(exact_cell, inputs, got["out"], cotangent)
        analytic, moved = got.get("analytic"), got.get("moved")
        if not (isinstance(analytic, list) and isinstance(moved, list) and len(analytic) == len(moved) == len(inputs)):
            raise ApiError("RNNCellFunction.apply: the finite differences came back malformed")
        summed, expanded = got.get("summed"), []
        transposed, laid_out = got.get("transposed"), []
        for i, (x_i, name, a, pairs) in enumerate(zip(inputs, names, analytic, moved)):
            numeric, numeric_ones = torch.zeros_like(x_i), torch.zeros_like(x_i)
            if not isinstance(pairs, list) or len(pairs) != x_i.numel():
                raise ApiError("RNNCellFunction.apply: the finite differences came back malformed")
            for j, (plus, minus) in enumerate(pairs):  # central differences, computed here from the outputs
                outs = [expect_tensor(v, CELL_CALL, dtype="float") for v in (plus, minus)]
                at = [float((v * cotangent).sum()) for v in outs]
                numeric.view(-1)[j] = (at[0] - at[1]) / (2 * EPS)
                numeric_ones.view(-1)[j] = (float(outs[0].sum()) - float(outs[1].sum())) / (2 * EPS)
            a = expect_tensor(a, f"the gradient of {name}", shape=tuple(x_i.shape), dtype="float") if a is not None \
                else torch.zeros_like(x_i)
            blocks.append(block(name, a, numeric, exact=None if exact is None else exact[i], exact_floor=1.0))
            label = f"{name}, through RNNCellFunction.apply(...).sum().backward() (an expanded incoming gradient)"
            if isinstance(summed, str):
                if not expanded:
                    expanded.append(expanded_error(label, summed))
            elif isinstance(summed, list) and i < len(summed):
                s = summed[i]
                expanded.append(block(label, torch.zeros_like(x_i) if s is None else expect_tensor(
                    s, f"the gradient of {label}", shape=tuple(x_i.shape), dtype="float"), numeric_ones))
            # the fixed direction v again, arriving as a transposed view: the same gradients are due
            label = f"{name}, with a non-contiguous incoming gradient (h' used through a transposed view)"
            if isinstance(transposed, str):
                if not laid_out:
                    laid_out.append({"name": label, "error": (
                        f"backward raised {transposed.rstrip('.')}; the same incoming gradient laid out "
                        "contiguously gives the right gradients: grad_h_new can arrive in any memory layout (here "
                        "a transposed view, as h'.t() downstream hands back), where view() cannot merge its "
                        "dimensions. Reshape it (reshape(), not view()) or call grad_h_new.contiguous() first")})
            elif isinstance(transposed, list) and i < len(transposed):
                t = transposed[i]
                laid_out.append(block(label, torch.zeros_like(x_i) if t is None else expect_tensor(
                    t, f"the gradient of {label}", shape=tuple(x_i.shape), dtype="float"), numeric))
        blocks += expanded + laid_out  # (after the fixed direction's: a wrong formula is said there first)
    return {"blocks": blocks}


def _cotangent(shape):
    """gradcheck's fixed random direction v (graders/gradcheck.function_blocks'): analytic v^T J, numeric
    d/dx <v, cell(x)>."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


CELL_CALL = "RNNCellFunction.apply(x, h, W_ih, W_hh, b_ih, b_hh)"


def function_probes_here(function, inputs, eps: float) -> dict:
    """In the student's process: cell_probes_here on the student's RNNCellFunction.apply."""
    return cell_probes_here(function.apply, inputs, eps)


def cell_probes_here(cell, inputs, eps: float) -> dict:
    """In the student's process (sub.run_local): the student's cell at `inputs`, the vector-Jacobian
    product v^T J through its hand backward (v = _cotangent; with a second call of the cell made between
    the forward and that backward), and its outputs at x_i +- eps e_j for every entry j of every input i.
    The harness forms the central differences from those outputs."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = cell(*leaves)
    if not isinstance(out, torch.Tensor):
        return {"out": None}
    # A second call in flight before the first one's backward, as an RNN's steps are (every forward over
    # T, then the backward through them): a cell that keeps what its backward needs anywhere but in ctx
    # (a global, the class) gives the first call the second one's gradient.
    later = cell(*[(0.5 * x.detach() + 0.25).requires_grad_(True) for x in inputs])
    cotangent = _cotangent(out.shape)
    analytic = torch.autograd.grad((out * cotangent).sum(), leaves, allow_unused=True)
    del later
    moved = []
    with torch.no_grad():
        for i, x in enumerate(inputs):
            pairs = []
            for j in range(x.numel()):
                pair = []
                for step in (eps, -eps):
                    xi = x.detach().clone()
                    xi.view(-1)[j] = xi.view(-1)[j].item() + step
                    pair.append(cell(*[xi if k == i else inputs[k].detach() for k in range(len(inputs))]))
                pairs.append(pair)
            moved.append(pairs)
    return {"out": out.detach(), "analytic": [None if g is None else g.detach() for g in analytic], "moved": moved,
            "summed": through_sum(cell, inputs), "transposed": transposed_upstream(cell, inputs, cotangent)}


def transposed_upstream(cell, inputs, cotangent):
    """In the student's process: v^T J through the cell's backward when the incoming gradient v arrives as
    a transposed, non-contiguous view (h' used as h'.t() downstream: autograd hands backward r.t() for a
    contiguous r), on fresh copies of `inputs`. A list of gradients, the error's first line where backward
    raised, or None where an (N, H) output with N or H = 1 has no non-contiguous layout to probe."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    try:
        out = cell(*leaves)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or min(out.shape) < 2 or not out.requires_grad:
            return None
        grads = torch.autograd.grad((out.t() * cotangent.t().contiguous()).sum(), leaves, allow_unused=True)
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
    return [None if g is None else g.detach() for g in grads]


def clipping(sub, seed, p):
    """clip_grad_norm on seeded gradients against torch.nn.utils.clip_grad_norm_: the returned total
    norm and every clipped gradient, for max_norm below, exactly at and above the total norm (float64,
    so that a tight tolerance sees the 1e-6 in max_norm / (norm + 1e-6)); with some parameters without
    a gradient; with the parameters given as a generator; with some .grad non-contiguous (laid out
    where the submission runs, clip_laid_out_here); and the total returned when no parameter has a
    gradient."""
    clip = sub.get("clip_grad_norm")
    cases = []
    for config in p["configs"]:
        factor, none, generator = config["factor"], set(config.get("none", [])), config.get("generator", False)
        transposed = sorted(config.get("transposed", []))
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        shapes = [(4, 3), (4, 4), (4,), (1, 4)]
        grads = [torch.randn(*s, generator=gen, dtype=torch.float64) * (k + 1) for k, s in enumerate(shapes)]
        ref = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
        mine = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
        for k, (r, m, g) in enumerate(zip(ref, mine, grads)):
            if k not in none:
                r.grad, m.grad = g.clone(), g.clone()
        max_norm = factor * float(torch.sqrt(sum((g * g).sum() for k, g in enumerate(grads) if k not in none)))
        target_total = torch.nn.utils.clip_grad_norm_(ref, max_norm)
        config_name = (f"max_norm = {'exactly' if factor == 1 else f'{factor:g} x'} the global norm"
                       + (f", parameters {sorted(none)} without a gradient" if none else "")
                       + (", parameters given as a generator" if generator else "")
                       + (f", the .grad of parameters {transposed} non-contiguous (transposed in memory)"
                          if transposed else ""))
        if transposed:  # laid out where the submission runs (a layout does not survive a copy to another process)
            got = sub.run_local(clip_laid_out_here, clip, grads, sorted(none), transposed, max_norm)
            if isinstance(got, str):
                said = (f"clip_grad_norm raised {got.rstrip('.')}; the gradients it was given are non-contiguous (a "
                        ".grad set from a transposed tensor, or the gradient of a parameter that is a transposed "
                        "view), and the same values laid out contiguously raise nothing: view(-1) cannot flatten them "
                        "(a g.view(-1)?)")
                cases += [{"name": f"{config_name}: returned total norm", "error": said}] + [
                    {"name": f"{config_name}: clipped gradient of parameter {k} (shape {tuple(r.shape)})", "error": said}
                    for k, r in enumerate(ref) if k not in none]
                continue
            if not isinstance(got, dict) or not isinstance(got.get("grads"), list) or len(got["grads"]) != len(mine):
                raise ApiError(f"{config_name}: clip_grad_norm's results came back malformed")
            for m, g in zip(mine, got["grads"]):
                m.grad = g
            total = expect_tensor(got.get("total"), "clip_grad_norm(parameters, max_norm)", shape=(), dtype="float")
        else:
            given = (q for q in mine) if generator else mine
            try:
                total = expect_tensor(clip(given, max_norm), "clip_grad_norm(parameters, max_norm)", shape=(),
                                      dtype="float")
            except Exception as e:  # noqa: BLE001 - after the first configuration, this one's failure, in words
                if not cases:
                    raise
                said = f"clip_grad_norm raised {_raised(e)} here (and not at the configurations before)"
                cases += [{"name": f"{config_name}: returned total norm", "error": said}] + [
                    {"name": f"{config_name}: clipped gradient of parameter {k} (shape {tuple(r.shape)})", "error": said}
                    for k, r in enumerate(ref) if k not in none]
                continue
        if isinstance(total, torch.Tensor) and total.dtype != target_total.dtype:
            # said as the dtype it is, not as float32's rounding of the value (blind red team, round 14)
            cases.append({"name": f"{config_name}: returned total norm", "error": (
                f"a {str(total.dtype).replace('torch.', '')} norm ({float(total):.9g}; torch's: {float(target_total):.9g}) "
                "for float64 gradients: the norm follows the gradients' dtype and device, as torch.nn.utils."
                "clip_grad_norm_'s does. A norm summed as a Python float and returned as torch.tensor(total) is "
                "float32 and on the CPU whatever the gradients are: compute it with tensor ops on the gradients, or "
                "torch.tensor(total, dtype=g.dtype, device=g.device)")})
        else:
            cases.append(_case(f"{config_name}: returned total norm", total, target_total))
        for k, (m, r) in enumerate(zip(mine, ref)):
            if k in none:
                if m.grad is not None:
                    raise ApiError(f"{config_name}: clip_grad_norm gave parameter {k} (whose .grad was None) a "
                                   "gradient; leave a None gradient as it is")
                continue
            case = _case(f"{config_name}: clipped gradient of parameter {k} (shape {tuple(r.shape)})", m.grad, r.grad)
            cases.append(dict(case, factors=_clipping_factors(k, grads, none, max_norm, generator)))
    # Parameters none of which has a gradient (a model not yet run backward): nothing to clip.
    idle = [torch.zeros(3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    target_total = torch.nn.utils.clip_grad_norm_(idle, 1.0)
    # Judged after every configuration above (in order): a clip_grad_norm that fails only here is said here,
    # and one wrong above is said there first (a generator used up by a first pass, which also leaves the norm
    # of no gradient unguarded, was charged through this case's TypeError alone: blind red team, round 4)
    name = "no parameter has a gradient: returned total norm"
    try:
        total = expect_tensor(clip(idle, 1.0), "clip_grad_norm(parameters, max_norm)", shape=(), dtype="float")
        cases.append(_case(name, total, target_total))
    except Exception as e:  # noqa: BLE001 - this case's failure, in words
        cases.append({"name": name, "error": (
            f"clip_grad_norm raised {_raised(e)}; with no gradient at all there is nothing to clip and the norm is 0, "
            "as torch.nn.utils.clip_grad_norm_ returns (a Python sum over no gradient is the int 0, which torch.sqrt "
            "refuses: return torch.tensor(0.0) when no parameter has a gradient)")})
    return {"cases": cases}


def _raised(e: Exception) -> str:
    """An error the student's code raised, as a message says it: its type and its first line."""
    if isinstance(e, RemoteError):  # its message says the student's type already
        return (e.message.strip().splitlines() or [type(e).__name__])[0][:300]
    text = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def clip_laid_out_here(clip, grads, none, transposed, max_norm) -> dict | str:
    """In the student's process (sub.run_local): clip(params, max_norm) on parameters whose .grad holds
    `grads` (but those at the indices `none`, without a gradient), those at the indices `transposed` laid
    out transposed in memory (the same values, non-contiguous: g.t().contiguous().t()). The returned
    norm and every .grad after the call, or the error's first line where it raised."""
    params = []
    for k, g in enumerate(grads):
        q = torch.zeros(g.shape, dtype=g.dtype, requires_grad=True)
        if k not in none:
            q.grad = g.t().contiguous().t() if k in transposed else g.clone()
        params.append(q)
    try:
        total = clip(params, max_norm)
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
    return {"total": total.detach() if isinstance(total, torch.Tensor) else total,
            "grads": [None if q.grad is None else q.grad.detach() for q in params]}


def _clipping_factors(k, grads, none, max_norm, generator):
    """The ratios clipped/expected that parameter k's gradient shows under each known mistake, from this
    configuration's own numbers (graders/kinds/agreement.py reads a constant ratio with them): the
    factor min(1, max_norm / (norm + 1e-6)) not applied, applied without its cap at 1, or computed from
    parameter k's gradient alone. A mistake that changes nothing here declares nothing. The configurations
    are judged in order, so a generator's is reached only by code right on lists of parameters."""
    norm = float(torch.sqrt(sum((g * g).sum() for j, g in enumerate(grads) if j not in none)))
    own = float(grads[k].norm())
    scale = min(1.0, max_norm / (norm + 1e-6))
    uncapped, alone = max_norm / (norm + 1e-6), min(1.0, max_norm / (own + 1e-6))
    factors = []
    if abs(1 / scale - 1) > 1e-3:
        factors.append({"ratio": 1 / scale, "says": (
            f"the gradient was left as it was, not multiplied by min(1, max_norm / (norm + 1e-6)) = {scale:.6g} "
            f"(norm {norm:.6g}, max_norm {max_norm:.6g})"
            + (". The parameters came as a generator here, which one pass uses up: if the norm was computed in "
               "a first pass, the second finds nothing to scale (make a list of them first)" if generator else
               f"; its own gradient's norm ({own:.6g}) is below max_norm, so a factor computed from it alone "
               "would leave it so too, where the norm is that of all the gradients together" if alone == 1.0 else ""))})
    if uncapped > 1 + 1e-3:
        factors.append({"ratio": uncapped / scale, "says": (
            f"the gradient was multiplied by max_norm / (norm + 1e-6) = {uncapped:.6g}, although its norm "
            f"{norm:.6g} is below max_norm {max_norm:.6g}, where the factor min(1, max_norm / (norm + 1e-6)) is 1: "
            "clipping only ever scales down")})
    if abs(alone / scale - 1) > 1e-3 and alone < 1.0:  # a factor of 1 is "left as it was", said above
        factors.append({"ratio": alone / scale, "says": (
            f"parameter {k}'s gradient was scaled by min(1, max_norm / (|g_{k}| + 1e-6)) = {alone:.6g}, from the "
            f"norm of its own gradient ({own:.6g}), where the factor comes from the norm of all the gradients "
            f"together ({norm:.6g}): {scale:.6g}")})
    return factors


def state_reset(sub, seed, p):
    """The same model object run on a first batch of sequences, then on a second: the second's hidden
    states must be torch.nn.RNN's from h0 = 0, as if the first had never been seen. Then every method's
    result on that object must not depend on the calls made before it (a blind red team, round 4: forward
    kept self.hs and predict read it back, the previous batch's read-out): predict after the forwards,
    predict after a predict, forward after the predicts, each minus the same call on a fresh model (made
    before any of them), which is 0 whatever the read-out (a wrong one is rnn-agreement's). And no state is
    shared between models or kept from the weights as they were (blind red team, round 8: hidden states
    written into a buffer held on the class, params in a dict held on the class, copies of W^T made in
    __init__): two models of other weights used in turn, a result kept while later calls run, and a call
    after the weights were updated in place (train()'s SGD steps), each minus the same call on a model made
    right before it."""
    gen = torch.Generator().manual_seed(seed)
    T, N, D, H = p["T"], p["N"], p["D"], p["H"]
    params = _params64(gen, D, H)
    first, second = (torch.randn(T, N, D, generator=gen, dtype=torch.float64) for _ in range(2))
    # the third and fourth batches another length and batch size: state kept from an earlier call (an h_0 made at the
    # first call's batch size) raises or misreads there (blind red team, round 7)
    third, fourth = (torch.randn(T + 1, N + 1, D, generator=gen, dtype=torch.float64) for _ in range(2))
    other = _params64(gen, D, H)  # a second model's weights
    model = sub.get("ElmanRNN")(params)
    with torch.no_grad(), sub.replaced("rnn_cell", _inside(sub, exact, "rnn_cell")):
        _forward(sub, params, first, model=model)
        hs = _forward(sub, params, second, "forward(xs) on a second batch", model=model)
        target, _ = _torch_rnn(params)(second)
        # each call on a fresh model first (one message), then the same calls on `model`, in order (one more)
        fresh = sub.run_local(history_here, sub.get("ElmanRNN"), params, [("predict", third), ("predict", fourth),
                                                                         ("forward", fourth)])
        after = sub.run_local(history_here, model, params, [("predict", third), ("predict", fourth),
                                                            ("forward", fourth)])
        shared = sub.run_local(shared_here, sub.get("ElmanRNN"), params, other, first, second)
    cases = [_case("hidden states of the second batch of sequences, run after a first one", hs, target)]
    O = params["W_out"].shape[0]
    for i, (what, shape) in enumerate(((f"predict(xs) on a third batch ({N + 1} sequences of length {T + 1}), after "
                                        f"forward on two others of {N} sequences of length {T}", (N + 1, O)),
                                       ("predict(xs) on a fourth batch, after predict on a third", (N + 1, O)),
                                       ("forward(xs) on the fourth batch again, after those predicts",
                                        (T + 1, N + 1, H)))):
        got, want = (r[i] if isinstance(r, list) and len(r) == 3 else None for r in (after, fresh))
        cases.append(_difference_case(f"{what}, minus the same call on a fresh model (0: no call depends on an earlier "
                                      "one)", got, want, shape))
    got, want = (shared.get(k) if isinstance(shared, dict) else None for k in ("calls", "fresh"))
    for i, (what, shape) in enumerate((("forward(xs) on a model (kept while the calls below run: a model of other "
                                        "weights on the same xs, then this model on other xs)", (T, N, H)),
                                       ("forward(xs) on a second model of other weights, both made before either "
                                        "ran", (T, N, H)),
                                       ("forward(xs) on other xs, the first model's second call", (T, N, H)),
                                       ("the first model's forward(xs) again, on the very xs object of its second "
                                        "call, after its weights were updated in place (as train()'s SGD steps update "
                                        "them)", (T, N, H)),
                                       ("predict(xs) after the weights the model was made with were updated in place "
                                        "(as train()'s SGD steps update them)", (N, O)))):
        cases.append(_difference_case(f"{what}, minus the same call on a model made right before it (0: no state "
                                      "shared between models or kept from earlier weights)",
                                      got[i] if isinstance(got, list) and len(got) == 5 else None,
                                      want[i] if isinstance(want, list) and len(want) == 5 else None, shape))
    return {"cases": cases}


def _difference_case(name, got, want, shape) -> dict:
    """A case of state-reset: a call on a model that has been used (`got`) minus the same call on a fresh one
    (`want`), compared with 0; a call that raises where the fresh one runs says so; a call that fails on a
    fresh model too, or no tensor at all, is rnn-agreement's finding (a case that agrees)."""
    count = int(np.prod(shape))
    if isinstance(got, str) and not isinstance(want, str):
        return {"name": name, "error": f"raised {got}, where the same call on a fresh model runs"}
    if isinstance(want, str) or not (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)) or \
            got.shape != want.shape:
        if isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor):
            return {"name": name, "error": f"returned shape {tuple(got.shape)}, where the same call on a fresh model "
                                           f"returns {tuple(want.shape)}"}
        return {"name": name, "shape": list(shape), "values": [0.0] * count, "target": [0.0] * count, "against": "0"}
    # the two calls' difference: 0 where they agree, also where both give the same nan or inf (a non-finite output is
    # rnn-agreement's finding); a wrong shape (the same in both) is rnn-agreement's too, so the difference is said by
    # its largest entry there
    got, want = got.detach().double(), want.detach().double()
    residual = torch.where((got == want) | (got.isnan() & want.isnan()), torch.zeros_like(got), got - want).reshape(-1)
    values = residual.tolist() if residual.numel() == count else [float(residual.abs().max())] * count
    return {"name": name, "shape": list(shape), "values": values, "target": [0.0] * count, "against": "0"}


def shared_here(model, params, other, xs, later) -> dict:
    """In the student's process (sub.run_local), under no_grad, on copies of the weights: two models, of
    `params` and of `other`, made before either runs; forward(xs) on the first, on the second, then
    forward(later) on the first, each result kept as returned (not copied) until the end; then the first
    model's weights updated in place, its forward(later) again, on the very `later` object its last forward had
    (a result cached on the input object, `if xs is self._xs: return self._hs`, hands back the states of the old
    weights: blind red team, round 9), and its predict(xs). `calls`: those five results, as they read at the
    end (or the error's first line); `fresh`: the same five calls each on a model made right before it, each
    result copied at once (or the error's first line)."""
    def copy(p):
        return {k: v.detach().clone() for k, v in p.items()}

    def said(e):
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"

    def moved(p):  # what an SGD step does to the weights: in place, the same tensors
        for v in p.values():
            v.mul_(0.5).add_(0.125)
        return p

    fresh = []
    with torch.no_grad():
        for make in (lambda: model(copy(params)).forward(xs), lambda: model(copy(other)).forward(xs),
                     lambda: model(copy(params)).forward(later), lambda: model(moved(copy(params))).forward(later),
                     lambda: model(moved(copy(params))).predict(xs)):
            try:
                out = make()
                fresh.append(out.detach().clone() if isinstance(out, torch.Tensor) else out)
            except Exception as e:  # noqa: BLE001 - the finding, said by the harness
                fresh.append(said(e))
        mine, theirs = copy(params), copy(other)
        calls = []
        try:
            one, two = model(mine), model(theirs)
        except Exception as e:  # noqa: BLE001
            return {"calls": [said(e)] * 5, "fresh": fresh}
        for call in (lambda: one.forward(xs), lambda: two.forward(xs), lambda: one.forward(later),
                     lambda: (moved(mine), one.forward(later))[1], lambda: one.predict(xs)):
            try:
                out = call()
                calls.append(out.detach() if isinstance(out, torch.Tensor) else out)  # kept as returned: a later
            except Exception as e:  # noqa: BLE001                                   call may write into it
                calls.append(said(e))
    return {"calls": calls, "fresh": fresh}


def history_here(model, params, calls) -> list:
    """In the student's process (sub.run_local): `calls`, [(method, xs)], on `model`, an ElmanRNN object
    (or the class, for a fresh object per call), in order, under no_grad: each result (detached), or the
    error's first line where one raised."""
    results = []
    for method, xs in calls:
        try:
            target = model(params) if isinstance(model, type) else model
            with torch.no_grad():
                out = getattr(target, method)(xs)
            results.append(out.detach() if isinstance(out, torch.Tensor) else out)
        except Exception as e:  # noqa: BLE001 - the finding, said by the harness
            results.append(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}")
    return results


# ---- training on the memory task --------------------------------------------------------------------

def exact_dependencies(sub):
    """train() judged alone: the cell, the model and the clipping it calls are the harness's own."""
    import contextlib
    stack = contextlib.ExitStack()
    for name in ("rnn_cell", "ElmanRNN", "clip_grad_norm"):
        stack.enter_context(sub.replaced(name, _inside(sub, exact, name)))
    return stack


def _train(sub, seed, p, steps, leftover=False):
    """train() judged alone (exact_dependencies). `leftover`: every parameter arrives with a .grad already
    (seeded), as an earlier backward leaves it."""
    X, y = recall_first(seed, p["n_train"], p["T"])
    dtype = getattr(torch, p.get("dtype", "float32"))  # a float64 run: the whole training in float64
    # in a seeded order of the keys, not the docstring's: a train() that reads the dict by its order is seen
    params = reordered(init_params(seed, 1, p["H"], 1, dtype), seed)
    X, y = X.to(dtype), y.to(dtype)
    if leftover:
        gen = torch.Generator().manual_seed(seed + 20_000)
        for q in params.values():
            q.grad = torch.randn(q.shape, generator=gen, dtype=q.dtype)
    with exact_dependencies(sub):
        result = sub.call("train", params, X, y, p["lr"], steps, p["batch_size"], p["max_norm"])
    if not isinstance(result, tuple) or len(result) != 2:
        raise ApiError("train() must return (params, losses)")
    params, losses = result
    losses = expect_history(losses, steps)
    return params, losses


def first_loss(sub, seed, p):
    steps = p["steps"]
    _, losses = _train(sub, seed, p, max(steps) + 1)
    runs = [short_run(lambda: _train(sub, seed, {**p, **run}, run["steps"])[1],
                       f"{run['n_train']} training sequences and batch_size {run['batch_size']}"
                       + (f", {run['dtype']} sequences and parameters" if run.get("dtype") else ""))
            for run in p.get("runs", [])]
    # 16 examples, all of them every batch (batch k holds rows (k * n + i) mod n): each step sees the same loss
    takes_every_step(lambda lr, count: _train(sub, seed, {**p, "lr": lr, "n_train": 16, "batch_size": 16}, count), once_for=sub)
    fresh_from_leftover_grads(lambda leftover: _train(sub, seed, {**p, **_LEFTOVER_RUN}, 2, leftover))
    if sub.first_time("trains-in-place"):  # once per student's process: the contract, not the seed's values
        X, y = recall_first(seed, _LEFTOVER_RUN["n_train"], p["T"])
        with exact_dependencies(sub):
            trains_in_place(sub, (init_params(seed, 1, p["H"], 1), X, y, p["lr"], 2, _LEFTOVER_RUN["batch_size"],
                                  p["max_norm"]))
    return {"steps": steps, "losses": [losses[k] for k in steps], "n": p["batch_size"], "runs": runs}


# first-loss's run from parameters that arrive with a leftover .grad: 2 steps (the first update shows in losses[1]
# and in the weights returned)
_LEFTOVER_RUN = {"n_train": 24, "batch_size": 8}


def convergence(sub, seed, p):
    params, losses = _train(sub, seed, p, p["budget"])
    X, y = recall_first(seed + 1, 500, p["T"])  # held-out sequences
    if not isinstance(params, dict) or not all(k in params for k in ("W_ih", "W_hh", "b_ih", "b_hh", "W_out", "b_out")):
        raise ApiError("train() must return (params, losses) with params the dict it was given, trained")
    with torch.no_grad():
        pred = expect_tensor(ExactElman(params).predict(X), "the trained parameters' prediction on X_test",
                             shape=tuple(y.shape), dtype="float")
    return {"mse": ((pred - y) ** 2).mean().item(), "steps": p["budget"],
            "losses": losses[:: max(1, len(losses) // 10)]}


def _device_run(sub, seed):
    def run(device):
        X, y = recall_first(seed, 8, 5)
        X, y = X.to(device), y.to(device)
        params = init_params(seed, 1, 6, 1, device=device)
        model = sub.get("ElmanRNN")(params)
        pred = model.predict(X)
        # allow_unused: a parameter left out of the prediction is rnn-agreement's finding, not a device problem
        grads = torch.autograd.grad(((pred - y) ** 2).mean(), list(params.values()), allow_unused=True)
        return {"prediction": pred, **{f"gradient of {k}": g for k, g in zip(params, grads) if g is not None}}
    return run



def placed_here(model, seed: int, with_values: bool = False) -> dict:
    """_device_run's run on the meta device, in the student's process (sub.run_local): the devices of
    the prediction and of the gradients. Meta tensors are built and run there only, so this process does
    not import torch's meta kernels (about a second) for a check that reads nothing but devices.
    `with_values`: placement's second run, where the meta one stopped at a value read: the same on a
    device with values (graders/kinds/elsewhere.py)."""
    with values_run_there(with_values):
        return _placed_here(model, seed)


def _placed_here(model, seed: int) -> dict:
    X, y = recall_first(seed, 8, 5)
    X, y = X.to("meta"), y.to("meta")
    params = init_params(seed, 1, 6, 1, device="meta")
    pred = model(params).predict(X)
    # allow_unused: a parameter left out of the prediction is rnn-agreement's finding, not a device problem
    grads = torch.autograd.grad(((pred - y) ** 2).mean(), list(params.values()), allow_unused=True)
    outputs = {"prediction": pred, **{f"gradient of {k}": g for k, g in zip(params, grads) if g is not None}}
    return {name: str(getattr(t, "device", type(t).__name__)) for name, t in outputs.items()}


def placement(sub, seed, p):
    def run(device):
        # (measure_placement's second run, with values, is passed on to the student's process)
        found = sub.run_local(placed_here, sub.get("ElmanRNN"), seed, values_run())
        if not isinstance(found, dict):
            raise ApiError("the placement run came back malformed")
        return {str(name): Placed(str(where)) for name, where in found.items()}
    return measure_placement(run)


def parity(sub, seed, p):
    return measure_parity(_device_run(sub, seed))


# ---- invariants on every function, each judged against itself ----------------------------------------

def invariants(sub, seed, p):
    """What holds whatever the values: arguments left as they were (forward, predict, the cell,
    clip_grad_norm, train), the output dtype follows the inputs (float32 in, float32 out, close to the
    student's own float64 result), a non-contiguous xs gives what its contiguous copy gives, the norm
    clip_grad_norm returns carries no graph, and train() is deterministic."""
    props = Properties("rnn.py")
    gen = torch.Generator().manual_seed(seed)
    T, N, D, H = 4, 3, 2, 5
    params = _params64(gen, D, H, 2)
    xs = torch.randn(T, N, D, generator=gen, dtype=torch.float64)

    def untouched(before: dict, after: dict, call: str):
        for name, value in before.items():
            if not torch.equal(after[name].detach(), value):
                return f"{call} modified its argument {name} in place: work on a copy (x = x.clone()) or out of place"
        return None

    # first: a forward that raises on float64 inputs only is said under this property's title, not under the
    # next one's (which runs forward on float64 too; blind red team, round 14)
    def dtypes():
        with torch.no_grad():
            mine32 = {k: v.float() for k, v in params.items()}
            h32 = _forward(sub, mine32, xs.float(), "ElmanRNN(float32 params).forward(float32 xs)")
            pred = sub.get("ElmanRNN")(mine32).predict(xs.float())
            cell = sub.get("rnn_cell")(xs[0].float(), h32[0], *(mine32[k] for k in NAMES))
            try:
                h64 = _forward(sub, params, xs)
                pred64 = sub.get("ElmanRNN")(params).predict(xs)
            except RemoteError as e:  # float32 ran: a tensor of the default dtype meets float64 ones
                said = (e.message.splitlines() or ["an error"])[0][:300]
                return (f"forward(xs) and predict(xs) run on float32 xs and parameters but raise on float64 ones ({said}): "
                        "a tensor made inside without dtype= (torch.zeros(N, H) is float32, the default) meets the "
                        "float64 ones; make it with dtype=xs.dtype and device=xs.device (or torch.zeros_like, xs.new_zeros)")
        for what, out, want in (("forward(xs) on float64", h64, torch.float64),
                                ("predict(xs) on float64", pred64, torch.float64),
                                ("forward(xs) on float32", h32, torch.float32),
                                ("predict(xs) on float32", pred, torch.float32),
                                ("rnn_cell on float32", cell, torch.float32)):
            if out.dtype != want:
                return (f"{what} returned {out.dtype}: the output must follow the inputs' dtype (a tensor made "
                        "without dtype=xs.dtype, or a .float() / .double() cast?)")
        err = ((h32.double() - h64).abs() / (1e-3 + h64.abs())).max().item()
        if err > 1e-4:
            return f"float32 hidden states differ from your own float64 ones by a relative {err:.3g} (> 1e-4)"
        return None
    props.test("float64 in, float64 out; float32 in, float32 out (close to float64)", dtypes)

    def arguments_kept():
        mine = {k: v.clone() for k, v in params.items()}
        x = xs.clone()
        model = sub.get("ElmanRNN")(mine)
        with torch.no_grad():
            model.forward(x)
            model.predict(x)
        return untouched({"xs": xs, **params}, {"xs": x, **mine}, "forward/predict")
    props.test("forward(xs) and predict(xs) leave xs and the parameters as they were", arguments_kept)

    def cell_arguments_kept():
        args = [xs[0], torch.randn(N, H, generator=gen, dtype=torch.float64)] + [params[k] for k in NAMES]
        copies = [a.clone() for a in args]
        sub.get("rnn_cell")(*copies)
        return untouched(dict(zip(("x", "h") + NAMES, args)), dict(zip(("x", "h") + NAMES, copies)),
                         "rnn_cell(x, h, W_ih, W_hh, b_ih, b_hh)")
    props.test("rnn_cell leaves its arguments as they were", cell_arguments_kept)

    alone_found = {}

    def backward_kept():
        own = torch.Generator().manual_seed(seed + 1)  # (gen's draws stay the other properties')
        args = [xs[0], torch.randn(N, H, generator=own, dtype=torch.float64)] + [params[k] for k in NAMES]
        # with, in the same message, each input alone requiring grad (gradients_alone's property below)
        both = sub.run_local(function_kept_and_alone_here, sub.get("RNNCellFunction"), args)
        both = both if isinstance(both, dict) else {}
        alone_found.update(both.get("alone") or {})
        found = both.get("kept")
        if not isinstance(found, dict) or not found:
            return None  # forward or a first backward that fails: gradcheck's to report
        cause = ("backward writes in place into a tensor the forward saved or returned (h_new.mul_(...), "
                 "1 - h_new ** 2 computed with in-place ops on ctx.saved_tensors): compute out of place, "
                 "grad_h_new * (1 - h_new * h_new)")
        if found.get("output changed"):
            return ("after backward, the h' that RNNCellFunction.apply returned to the caller holds other values "
                    "(the caller's hidden state, and every later step's input, changed under it): " + cause)
        changed = ("x", "h") + NAMES
        moved = [changed[i] for i in found.get("arguments changed") or [] if isinstance(i, int) and 0 <= i < len(changed)]
        if moved:
            return f"after backward, its argument {' and '.join(moved)} holds other values: " + cause
        if found.get("second") == "differs":
            return ("a second backward on the same forward (retain_graph=True, as two losses sharing the RNN run) "
                    "gave other gradients than the first: " + cause)
        if found.get("second"):
            return ("a second backward on the same forward (retain_graph=True, as two losses sharing the RNN run) "
                    f"raised {str(found['second'])[:200]}: " + cause)
        return None
    props.test("RNNCellFunction's backward leaves h' (the output the caller holds) and the arguments as they were, "
               "and runs twice on one forward (retain_graph=True) with the same gradients", backward_kept)

    def gradients_alone():
        every, alone = alone_found.get("every"), alone_found.get("alone")
        names = ("x", "h") + NAMES
        if not (isinstance(every, (list, tuple)) and isinstance(alone, list) and len(every) == len(alone) == len(names)):
            return None  # a forward or a backward that fails with every input requiring grad: gradcheck's to report
        flags = "ctx.needs_input_grad[i] is input i's own flag: " + ", ".join(f"{i} {n}" for i, n in enumerate(names))
        for name, g_all, g in zip(names, every, alone):
            if not isinstance(g_all, torch.Tensor):
                continue  # no gradient with every input requiring grad: gradcheck's finding
            said = (f"with only {name} requiring grad (" + ("the data and the state need none, as xs and h_0 in "
                    "training" if name in NAMES else "the weights frozen") + "), backward")
            if isinstance(g, str):
                return (f"{said} raised {g}, where with every input requiring grad it runs: {flags}; return None for "
                        "an input that needs no gradient, and compute each other one")
            if not isinstance(g, torch.Tensor):
                effect = ("so no gradient flows back through time: the weights learn from the last step alone "
                          "(backpropagation through time cut at every step)" if name == "h" else
                          "so the weights would never learn" if name in NAMES else "")
                return (f"{said} gave {name} no gradient (None), where with every input requiring grad it gives one: "
                        f"a gradient guarded by another input's flag ({flags})? In training xs and h_0 need no "
                        f"gradient{', ' + effect if effect else ''}")
            if g.shape != g_all.shape or not torch.allclose(g.double(), g_all.double(), rtol=1e-9, atol=1e-12):
                return (f"{said} gave {name} another gradient than with every input requiring grad: what backward "
                        f"computes for {name} must not depend on which other inputs require grad ({flags})")
        return None
    props.test("each input of RNNCellFunction alone requiring grad gets the gradient it gets when all six do "
               "(ctx.needs_input_grad read input by input)", gradients_alone)


    def own_cell():
        calls = []
        cell, function = sub.get("rnn_cell"), sub.get("RNNCellFunction")

        def counted_cell(*args):
            calls.append("rnn_cell")
            return cell(*args)

        class CountedFunction:  # what forward may call instead of rnn_cell
            @staticmethod
            def apply(*args):
                calls.append("apply")
                return function.apply(*args)
        with sub.replaced("rnn_cell", counted_cell), sub.replaced("RNNCellFunction", CountedFunction):
            _forward(sub, params, xs)
        # apply at every step, whether forward calls it or rnn_cell does: an rnn_cell of plain torch ops
        # (autograd's backward) is not the student's own cell (red team, round 8)
        if calls.count("apply") < T:
            return (f"forward(xs) over T={T} steps ran RNNCellFunction.apply {calls.count('apply')} times (rnn_cell "
                    f"{calls.count('rnn_cell')} times): every step must run your own cell, RNNCellFunction.apply "
                    "with its hand backward (rnn_cell calls it)")
        return None
    props.test("forward(xs) runs the student's own cell at every step", own_cell)

    def non_contiguous():
        strided = xs.transpose(0, 1).contiguous().transpose(0, 1)  # (T, N, D) with the batch axis outermost
        assert not strided.is_contiguous()
        with torch.no_grad():
            a = _forward(sub, params, strided, "forward(a non-contiguous xs)")
            b = _forward(sub, params, xs)
        if not torch.allclose(a, b, rtol=1e-12, atol=1e-14):
            return "forward on a non-contiguous xs (a transposed tensor) differs from forward on its contiguous copy"
        return None
    props.test("forward on a non-contiguous xs = on its contiguous copy", non_contiguous)

    def clip_contract():
        # float32 parameters and gradients (the clipping check's are float64): the norm follows their dtype
        mine = [v.float().requires_grad_() for v in params.values()]
        for q in mine:
            q.grad = torch.randn(q.shape, generator=gen, dtype=torch.float64).float()
        before = [q.detach().clone() for q in mine]
        try:
            total = sub.get("clip_grad_norm")(mine, 0.1)
        except Exception as e:  # noqa: BLE001
            if _rule_of_the_spec(e):
                return None  # a call the spec's rules refuse: the clipping check charges it (one bug, one deduction)
            raise
        problem = untouched(dict(zip(params, before)), dict(zip(params, mine)), "clip_grad_norm")
        if problem:
            return problem.replace("its argument", "the parameter") + " (only .grad is scaled)"
        if isinstance(total, torch.Tensor) and (total.requires_grad or total.grad_fn is not None):
            return "the norm clip_grad_norm returns carries an autograd graph: compute it from the .grad tensors"
        if isinstance(total, torch.Tensor) and total.dtype != torch.float32:
            return (f"clip_grad_norm on float32 gradients returned a {str(total.dtype).replace('torch.', '')} norm: "
                    "the norm follows the gradients' dtype, as torch.nn.utils.clip_grad_norm_'s does (an accumulator "
                    "in float64 is fine, cast the result back: total.to(grads[0].dtype))")
        return None
    props.test("clip_grad_norm changes the gradients only and returns a plain number of the gradients' dtype "
               "(float32 gradients, float32 norm)", clip_contract)

    trained = {}  # train_contract's first run, with the harness's model, cell and clipping (own_model_in_train's)

    def train_contract():
        X, y = recall_first(seed, *_OWN_RUN["data"])
        X0, y0 = X.clone(), y.clone()
        runs = []
        with exact_dependencies(sub):
            for _ in range(2):
                params = init_params(seed, 1, _OWN_RUN["H"], 1)
                result = sub.call("train", params, X, y, *_OWN_RUN["settings"])
                kept = next((i for i, v in enumerate(result[1]) if isinstance(v, torch.Tensor) and v.requires_grad), None)
                if kept is not None:  # as exercise-8's invariants say it
                    return (f"train()'s losses [{kept}] is a tensor that requires grad: it keeps the autograd graph of "
                            "its step alive (memory grows every step); record loss.item()")
                runs.append(expect_history(result[1], 3))
                if not trained and isinstance(result[0], dict):
                    trained.update(losses=runs[-1], params={k: v.detach().clone() for k, v in result[0].items()
                                                            if isinstance(v, torch.Tensor)})
        problem = untouched({"X": X0, "y": y0}, {"X": X, "y": y}, "train()")
        if problem:
            return problem
        if runs[0] != runs[1]:
            return f"two runs of train() on the same data and initial weights gave losses {runs[0]} and {runs[1]}"
        return None
    props.test("train() leaves X and y as they were, keeps no graph in its losses and is deterministic", train_contract)

    def own_model_in_train():
        # Every other run of train() puts the harness's model, cell and clipping in place of the student's (one
        # bug, one deduction), so a model that breaks only across training steps was never run (a blind red
        # team, round 4: "no check runs the student's train() with the student's own model"). The same run as
        # train_contract's first, with nothing replaced: where the model, the cell and the clipping are right
        # on their own (their checks, named by the spec's charged_by, pass), it must give the same losses and
        # weights; where one of them fails its own check, this is said in a note, not charged again.
        if not trained:
            return None  # train() itself failed above: first-loss's, or the property above's, to charge
        X, y = recall_first(seed, *_OWN_RUN["data"])
        # First the run's first step alone, on a fresh model: where the student's model and cell do not give the
        # exact loss and gradients there (a wrong read-out, a wrong shape, a wrong backward), their own checks
        # charge it, whatever status they end with, and this property has nothing of its own to say
        if not _first_step_exact(sub, seed, X, y):
            return None
        try:
            result = sub.call("train", init_params(seed, 1, _OWN_RUN["H"], 1), X, y, *_OWN_RUN["settings"])
        except NotImplementedError:
            return None  # a part not written yet: its own check says so
        except RemoteError as e:
            said = (e.message.splitlines() or ["an error"])[0].split(". ")[0][:300]
            return (f"raised {said}, where with the harness's model, cell "
                    "and clipping in their place it runs: " + _CARRIED)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return None  # the form of train()'s result is first-loss's to judge
        losses = expect_history(result[1], len(trained["losses"]))
        k = next((k for k, (a, b) in enumerate(zip(losses, trained["losses"])) if abs(a - b) > 1e-4 * abs(b) + 1e-6), None)
        if k is not None:
            return (f"gave losses {[round(v, 6) for v in losses]} where with the harness's model, cell and clipping in "
                    f"their place it gives {[round(v, 6) for v in trained['losses']]} (from step {k} on): " + _CARRIED)
        returned = result[0] if isinstance(result[0], dict) else {}
        for name, want in trained["params"].items():
            got = returned.get(name)
            if not isinstance(got, torch.Tensor) or got.shape != want.shape:
                return None  # the form of the weights returned is first-loss's to judge
            scale = float(want.abs().max()) or 1.0
            if float((got.detach().double() - want.double()).abs().max()) > 1e-4 * scale:
                return (f"gave the losses it gives with the harness's model, cell and clipping in their place, but "
                        f"other weights ({name}) after its last update: " + _CARRIED)
        return None
    props.test("ElmanRNN(params) inside your own train(), with your own rnn_cell and clip_grad_norm, trains as the "
               "harness's model, cell and clipping do (3 steps: the same losses and weights)", own_model_in_train)

    def clip_in_place():
        mine = [v.clone().requires_grad_() for v in params.values()]
        for q in mine:
            q.grad = torch.randn(q.shape, generator=gen, dtype=torch.float64)
        try:
            kept = sub.run_local(grads_kept, sub.get("clip_grad_norm"), mine, 0.1)
        except Exception as e:  # noqa: BLE001
            if _rule_of_the_spec(e):
                return None  # the clipping check charges it
            raise
        if isinstance(kept, list) and not all(kept):
            return ("clip_grad_norm gave a parameter a new gradient tensor (p.grad = p.grad * scale) instead of scaling "
                    "its .grad in place (p.grad.mul_(scale)): whatever holds the gradient tensor (an optimizer's "
                    "state, a hook, the caller) keeps the unclipped values")
        return None
    props.test("clip_grad_norm scales every p.grad in place (the same tensor)", clip_in_place)

    def mean_over_outputs():
        # The spec's MSE averages over the outputs too. Three outputs that copy one (W_out's and b_out's rows,
        # y's columns alike) give the same mean as that one output alone, a sum over the outputs three times
        # it. lr = 0: nothing moves, so whatever else train() does to its losses (a loss recorded after the
        # update, a sum over the batch: first-loss's to charge) is the same in both runs (first-loss and
        # convergence train one output, where the two agree).
        X, y = recall_first(seed, 8, 4)
        one = init_params(seed, 1, 4, 1)
        three = {**one, "W_out": one["W_out"].detach().repeat(3, 1), "b_out": one["b_out"].detach().repeat(3)}
        losses = []
        with exact_dependencies(sub):
            # one output; the same 8 sequences twice in one batch of 16 (a batch mean is unchanged); three
            # outputs that copy the one
            for start, X_, target, batch in ((one, X, y, 8), (one, X.repeat(1, 2, 1), y.repeat(2, 1), 16),
                                             (three, X, y.repeat(1, 3), 8)):
                result = sub.call("train", {k: v.detach().clone().requires_grad_() for k, v in start.items()},
                                  X_, target, 0.0, 1, batch, 1.0)
                if not isinstance(result, (tuple, list)) or len(result) != 2:
                    return None  # the form of train()'s result is first-loss's to judge
                losses.append(expect_history(result[1], 1)[0])
        close = [abs(v - losses[0]) <= 1e-5 * abs(losses[0]) + 1e-9 for v in losses]
        if not close[1]:
            return None  # not a mean over the batch: first-loss charges that (one bug, one deduction)
        del losses[1]
        if close[2]:
            return None
        ratio = losses[1] / losses[0] if losses[0] else float("nan")
        return (f"three outputs that copy one give train() a first loss of {losses[1]:.6g}, that one output alone "
                f"{losses[0]:.6g} (ratio {ratio:.4g}): the MSE is a mean over the batch and every output"
                + (" (summed over the outputs?)" if abs(ratio - 3) < 1e-3 else ""))
    props.test("train()'s loss is the mean over the batch and every output (3 outputs)", mean_over_outputs)
    return props.result()


# invariants' train() runs: recall_first(seed, n, T), H, and (lr, steps, batch_size, max_norm); max_norm is small
# enough that every step clips
_OWN_RUN = {"data": (64, 5), "H": 4, "settings": (0.1, 3, 16, 0.1)}

_CARRIED = ("your model, cell and clipping agree with torch where their own checks call them, so something is carried "
            "from one call or one training step to the next (a model that keeps the hidden states or a copy of the "
            "weights made in __init__, which the in-place updates never reach; a cell or a clipping that keeps "
            "state): every step must run on the weights as updated and on its own batch only")


def _first_step_exact(sub, seed, X, y) -> bool:
    """Whether the student's model (with its own cell) gives, on the first batch of invariants' train() run
    and from its initial weights, the loss and the gradients the harness's exact model gives."""
    batch = _OWN_RUN["settings"][2]
    xb, yb = X[:, :batch], y[:batch]
    params = init_params(seed, 1, _OWN_RUN["H"], 1)
    try:
        got = sub.run_local(first_step_here, sub.get("ElmanRNN"), params, xb, yb)
    except Exception:  # noqa: BLE001 - the model's own checks report it
        return False
    loss = ((ExactElman(params).predict(xb) - yb) ** 2).mean()
    want = torch.autograd.grad(loss, list(params.values()))
    return same_first_step(got, loss, want)


def first_step_here(model, params, xb, yb):
    """In the student's process (sub.run_local): the loss of model(params).predict(xb) against yb, on copies
    of params, and its gradients (None where none reaches a weight); None where predict's output cannot be
    compared with yb (a wrong shape: rnn-agreement's)."""
    mine = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    pred = model(mine).predict(xb)
    if not isinstance(pred, torch.Tensor) or pred.shape != yb.shape or not pred.requires_grad:
        return None
    loss = ((pred - yb) ** 2).mean()
    grads = torch.autograd.grad(loss, list(mine.values()), allow_unused=True)
    return {"loss": float(loss), "grads": [None if g is None else g.detach() for g in grads]}


def _rule_of_the_spec(e: BaseException) -> bool:
    """Whether `e` is the run-time guard refusing a call the spec's `forbid` names (its words end in
    "this exercise asks for NAME without ..."): the check that judges that function's values charges it."""
    return "this exercise asks for" in str(e)


def grads_kept(clip, params, max_norm):
    """In the student's process (sub.run_local): clip_grad_norm(params, max_norm), then whether each
    parameter's .grad is still the tensor it was (a harness-side copy of the gradient cannot tell)."""
    before = [q.grad for q in params]
    clip(params, max_norm)
    return [q.grad is g for q, g in zip(params, before) if g is not None]
