"""exercise-5 probes: data and initialisations built from the seed, the submission's autograd
Functions and MLP called, plain numbers returned. Accuracies and hidden activations are computed
here with torch's own ops from the submission's parameters, not by the submission."""

import numpy as np
import torch
import torch.nn.functional as F

from dldiy.graders.api import ApiError, expect_history, expect_tensor
from dldiy.graders.api import built_inside as _inside
from dldiy.graders.kinds.contract import Properties
from dldiy.graders.kinds.coverage import measure_coverage
from dldiy.graders.descent import flatten, follows_descent, leaves_of, probe_steps, train_result, weights_of
from dldiy.graders.data import SOFTPLUS_GAP, gaussian_blobs, softplus_grid
from dldiy.graders.batched import bound, call_all, call_each, function_blocks
from dldiy.graders.kinds.gradcheck import forward_values
from dldiy.graders.kinds.invariants import (Violation, Watch, backward_kept, fresh_from_leftover_grads, keeps_defaults, keeps_rules,
                                            takes_every_step)
from dldiy.graders.kinds.placement import placed_in_student, values_run_there
from dldiy.graders.kinds.symmetry import layer_units

ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU", "softplus": "Softplus"}
TORCH_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
                     "softplus": torch.nn.functional.softplus}
# the exact functions whose autograd gradients hold a hand backward to float64's rounding (graders/batched.py's
# `exact`): F.softplus returns x itself beyond 20 (derivative 1, where sigmoid(25) = 1 - 1.4e-11 is exact)
EXACT_ACTIVATIONS = dict(TORCH_ACTIVATIONS, softplus=lambda x: torch.logaddexp(x, torch.zeros_like(x)))


def xor_blobs(seed, n, distance=6.0, margin=0.5):
    """Four separable Gaussians on a circle, opposite ones sharing a label: XOR, which no line separates."""
    X, k = gaussian_blobs(seed, n, classes=4, dim=2, distance=distance, margin=margin)
    return torch.tensor(X), torch.tensor(k % 2, dtype=torch.float64)


def harness_params(seed, sizes):
    """[W1, b1, W2, b2, ...], W_l ~ N(0, 1/d_in), b_l ~ N(0, 0.1^2): the same for every submission."""
    rng = np.random.default_rng(seed + 10_000)
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        params += [torch.tensor(rng.normal(0, d_in ** -0.5, (d_in, d_out))), torch.tensor(rng.normal(0, 0.1, d_out))]
    return params


def leaves(params):
    return [p.detach().clone().double().requires_grad_(True) for p in params]


def hidden_activations(X, params, activation):
    """The hidden layers' outputs, computed here with torch's own ops (trusted)."""
    f, h, out = TORCH_ACTIVATIONS[activation], X, []
    for W, b in list(zip(params[0::2], params[1::2]))[:-1]:
        h = f(h @ W.detach().double() + b.detach().double())
        out.append(h)
    return out


def logits(X, params, activation):
    h = ([X] + hidden_activations(X, params, activation))[-1]
    return h @ params[-2].detach().double() + params[-1].detach().double()


# ---- the harness's own layers (torch's autograd), standing in for the submission's where a check
# judges another function: a wrong Linear.backward costs the Linear checks, not mlp_forward's or train()'s.

class _Op:
    """Something with .apply, like an autograd.Function: the submission calls Linear.apply(X, W, b)."""

    def __init__(self, fn):
        self.apply = fn


def _linear(X, W, b):
    return X @ W + b


OWN_LAYERS = {"Linear": _linear, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "ReLU": torch.relu, "Softplus": F.softplus}


def harness_layer(name):
    """The harness's layer `name` as an object with .apply, built where the submission runs."""
    return _Op(OWN_LAYERS[name])


def harness_mlp_forward():
    return _own_mlp_forward


def harness_loss():
    return _own_loss





def _own_mlp_forward(X, params, activation="tanh"):
    act, h = TORCH_ACTIVATIONS[activation], X
    layers = list(zip(params[0::2], params[1::2]))
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        h = act(h) if i < len(layers) - 1 else h
    return h


def _exact_mlp_forward(X, params, activation):
    """_own_mlp_forward with EXACT_ACTIVATIONS: the function whose gradient a hand backward must give."""
    h, layers = X, list(zip(params[0::2], params[1::2]))
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        h = EXACT_ACTIVATIONS[activation](h) if i < len(layers) - 1 else h
    return h


def _own_loss(logits, y):
    z = logits.reshape(-1)
    return (F.softplus(z) - y * z).mean()


class _Replaced:
    """Several of the submission's names replaced at once (Submission.replaced, nested)."""

    def __init__(self, sub, names):
        self.sub, self.names, self.stack = sub, names, []

    def __enter__(self):
        for name, fn in self.names.items():
            cm = self.sub.replaced(name, fn)
            cm.__enter__()
            self.stack.append(cm)

    def __exit__(self, *exc):
        while self.stack:
            self.stack.pop().__exit__(*exc)
        return False


def own_layers(sub):
    """mlp_forward judged on its own: the layers it calls by name are the harness's."""
    return _Replaced(sub, {name: _inside(sub, harness_layer, name) for name in OWN_LAYERS})


def own_network(sub):
    """train() judged on its own: mlp_forward and loss are the harness's."""
    return _Replaced(sub, {"mlp_forward": _inside(sub, harness_mlp_forward), "loss": _inside(sub, harness_loss)})


def _blocks(sub, first, fn, inputs, names, exact=None):
    """function_blocks of one family configuration, one message (graders/batched.py); one other than
    the first that raises is reported as that configuration's failure, in words (the first raises as
    usual, with the student's traceback). `exact`: the harness's own function (torch's ops), which holds
    the hand backward to float64's rounding where the forward agrees with it."""
    if first:
        return function_blocks(sub, fn, inputs, names, exact=exact)
    try:
        return function_blocks(sub, fn, inputs, names, exact=exact)
    except Exception as e:  # noqa: BLE001 - the submission's error on this configuration only
        return [{"name": names[0], "error": f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}]


def applied(Function, strided):
    """Function.apply on its inputs, the 2-D ones (X and W, or x) laid out non-contiguously when
    `strided`: built where the submission runs (a layout does not survive a copy between processes)."""
    lay = _strided if strided else (lambda t: t)
    return lambda *xs: Function.apply(*(lay(x) if x.dim() == 2 else x for x in xs))


def network(forward, activation):
    """(X, W1, b1, ...) -> forward(X, [W1, b1, ...], activation), built where the submission runs."""
    return lambda X, *params: forward(X, list(params), activation)


def gradcheck_linear(sub, seed, p):
    g = torch.Generator().manual_seed(seed)
    Linear = sub.get("Linear")
    blocks = []
    for i, (n, d_in, d_out, layout) in enumerate(p["family"]):  # the first W square: a missing transpose gives wrong values
        X, W, b = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((n, d_in), (d_in, d_out), (d_out,)))
        words = f"X {n}x{d_in}, W {d_in}x{d_out}" + (", non-contiguous X and W" if layout == "strided" else "")
        # laid out inside fn: finite differences need contiguous inputs
        blocks += _blocks(sub, i == 0, _inside(sub, applied, Linear, layout == "strided"), [X, W, b],
                          [f"Linear: {v} ({words})" for v in ("X", "W", "b")], exact=lambda X, W, b: X @ W + b)
    return {"blocks": blocks}


def gradcheck_activations(sub, seed, p):
    g = torch.Generator().manual_seed(seed)
    blocks = []
    for name, cls in ACTIVATIONS.items():
        Function = sub.get(cls)
        for i, (rows, cols, layout, edge) in enumerate(p["family"]):
            x = _edge_inputs(g, (rows, cols), edge)
            words = f"x {rows}x{cols}" + (", non-contiguous" if layout == "strided" else "") + {
                "": "", "large": ", |x| up to 800, both signs", "zeros": ", exact zeros"}[edge]
            found = _blocks(sub, i == 0, _inside(sub, applied, Function, layout == "strided"), [x],
                            [f"{cls}: x ({words})"], exact=EXACT_ACTIVATIONS[name])
            blocks += _at_relu_kink(found, x) if name == "relu" and edge == "zeros" else found
        if name == "softplus":
            # its derivative sigmoid(x) far in the left tail (~1e-18 at -40), judged relative alone: taken from
            # the output as 1 - exp(-y), it cancels to 0 there (6% off at -16 in float32; a blind red team's miss).
            # One entry per block: a finite difference of a sum would lose the tiny term in the sum's rounding.
            for value in (-40.0, -30.0):
                tail = _blocks(sub, False, _inside(sub, applied, Function, False),
                               [torch.tensor([[value]], dtype=torch.float64)],
                               [f"{cls}: x = {value:g} (far left tail, judged relative alone)"])
                blocks += [dict(b, atol=0.0) for b in tail]
            blocks += _softplus_grid_block(sub, Function, seed)
    return {"blocks": blocks}


# One input at each magnitude of a grid from 1 to 40, both signs (jittered by the seed in multiples of 1/8, never
# within 19.76..21.12): log(1 + e^x) switched to its asymptote (x, or 0) too early drops e^-|x|, 2e-9 to 0.4 here (a
# blind red team's Softplus cut off at 10, round 8), where a stable form is exact to float64's rounding; beyond 20,
# torch's own F.softplus is the identity, off by log1p(e^-20) < 2.1e-9: the bound there. exercise-4's BCE has the same.
SOFTPLUS_CUT_OFF = ("Far from 0, log(1 + e^x) is x + log(1 + e^-x) (x > 0) or log(1 + e^x) (x < 0), and the small term is "
                    "never 0 in float64: e^-|x| (1.8e-7 at 15.5, 2e-9 at 20). Switching to the asymptote (x, or 0) "
                    "below |x| = 20 drops it: compute max(x, 0) + log1p(exp(-|x|)) at every x (torch's F.softplus "
                    "switches at 20, where it is off by 2e-9: the tolerance beyond 20).")


def _softplus_tolerance(x):
    """float64's rounding of softplus(x) up to |x| = 20 (its value to 1e-14 absolute, 1e-13 relative), F.softplus's
    gap beyond."""
    return SOFTPLUS_GAP if abs(x) > 20 else 1e-14


def _softplus_grid_block(sub, Function, seed):
    """Softplus's forward on the grid (one row, one message): its values against log(1 + e^x) computed exactly here
    (torch.logaddexp), each to _softplus_tolerance; a block of the forward's values alone (its gradient on such a wide
    range of values is the finite differences' rounding: the tails above are judged one entry at a time)."""
    xs = [x for x, _ in softplus_grid(seed)]
    x = torch.tensor([xs], dtype=torch.float64)
    name = "Softplus: x on a grid from 1 to 40 in magnitude, both signs (its values, to float64's rounding; 2e-9 beyond 20)"
    (out,) = call_all(sub, [[_inside(sub, applied, Function, False), [x.clone()], {}]], f"Softplus.apply(x), {name[10:]}")
    out = expect_tensor(out, "Softplus.apply(x) (its output)", finite=False)
    values = out.detach().double().reshape(-1) if out.numel() == len(xs) else torch.full((len(xs),), float("nan"))
    exact = EXACT_ACTIVATIONS["softplus"](x).reshape(-1)
    return [{"name": name, "forward": forward_values(xs, values, exact, [_softplus_tolerance(v) for v in xs], 1e-13,
                                                     SOFTPLUS_CUT_OFF)}]


RELU_AT_ZERO = ("At x = 0 exactly, ReLU'(0) = 0, as torch's relu has it (the template's docstring says so): the mask "
                "is x > 0, not x >= 0. Any value in [0, 1] is a subgradient there, but the network's gradient must "
                "agree with torch's, and a bias that starts at 0 puts inputs exactly on the kink.")


def _at_relu_kink(blocks, x):
    """ReLU's blocks at exact zeros, held at those entries to torch's derivative, 0 (the template's ReLU'(0) = 0),
    where a central difference reads 1/2 (the kink's average): each block's `numeric` there is 0 (the incoming
    gradient times 0), elsewhere the finite difference. A block with an error is kept as it is."""
    at_zero = (x.reshape(-1) == 0).tolist()
    out = []
    for b in blocks:
        if b.get("error") or len(b.get("numeric", ())) != len(at_zero):
            out.append(b)
            continue
        out.append({**b, "numeric": [0.0 if zero else v for v, zero in zip(b["numeric"], at_zero)],
                    "numeric_is": "expected (torch's ReLU'(0) = 0)", "hint": RELU_AT_ZERO})
    return out


def _away_from_kink(seed, X, sizes, activation):
    """Harness parameters whose pre-activations all stay >= 1e-3 from 0 (for ReLU's kink)."""
    for attempt in range(100):
        params = harness_params(seed + 1000 * attempt, sizes)
        h, ok = X, True
        for W, b in list(zip(params[0::2], params[1::2]))[:-1]:
            pre = h @ W + b
            ok &= bool(pre.abs().min() >= 1e-3)
            h = TORCH_ACTIVATIONS[activation](pre)
        if ok or activation != "relu":
            return params
    raise RuntimeError("no parameters away from the kink")  # not the submission's fault


def gradcheck_mlp(sub, seed, p):
    sizes = p["sizes"]
    X, y = xor_blobs(seed, p["n"])
    forward = sub.get("mlp_forward")
    blocks = []
    with own_layers(sub):
        for activation in p["activations"]:
            params = _away_from_kink(seed, X, sizes, activation)
            names = [f"{activation} network: {k}{i // 2 + 1}" for i, k in enumerate("Wb" * (len(params) // 2))]
            blocks += function_blocks(sub, _inside(sub, network, forward, activation), [X] + params,
                                      [f"{activation} network: X"] + names,
                                      exact=lambda X, *ps, a=activation: _exact_mlp_forward(X, list(ps), a))
    z = logits(X, harness_params(seed, sizes), "tanh")
    loss = _inside(sub, bound, sub.get("loss"), [y], {})

    def exact(z):
        return (EXACT_ACTIVATIONS["softplus"](z.reshape(-1)) - y * z.reshape(-1)).mean()
    blocks += function_blocks(sub, loss, [z], ["loss: logits"], exact=exact)
    # and at logits exactly 0 (a last layer that starts at zero), where the BCE is smooth (slope sigmoid(0) - y) but
    # a softplus with kinks there, max(z, 0) + log(1 + exp(-|z|)) through autograd, gets 1 - y (blind round 8). Against
    # finite differences alone: at z = 0 a loss that broadcasts (n, 1) against (n,) has the spec's value, log 2, and
    # the exact gradient would charge here what mlp-forward charges (one bug, one deduction)
    blocks += [dict(b, hint=LOSS_AT_ZERO) for b in function_blocks(
        sub, loss, [torch.zeros_like(z)], ["loss: logits exactly 0 (a last layer that starts at zero)"])]
    return {"blocks": blocks}


LOSS_AT_ZERO = ("At z = 0 exactly the BCE is smooth: its slope is sigmoid(0) - y = 0.5 - y (per example, / n), and a "
                "network whose last layer starts at zero puts every logit there. max(z, 0) + log(1 + exp(-|z|)) has the "
                "right values, but through autograd each kink gets a subgradient of autograd's own choosing (clamp(min=0) "
                "or relu gives 1 or 0 at z = 0, |z| gives 0): 1 - y or -y instead. Call your Softplus (its backward is "
                "sigmoid(z), smooth), or a form smooth at 0 (torch.logaddexp(z, torch.zeros_like(z))).")


def coverage(sub, seed, p):
    X, y = xor_blobs(seed, p["n"])
    params = leaves(harness_params(seed, p["sizes"]))
    with own_layers(sub):
        value = expect_tensor(sub.call("loss", sub.call("mlp_forward", X, params, p["activation"]), y), "loss()",
                              shape=())
        if not value.requires_grad:
            return {"where": "loss(mlp_forward(X, params)).backward()",
                    "parameters": [{"name": n, "shape": list(q.shape), "grad": None} for n, q in zip(_names(params), params)]}
        value.backward()
    return measure_coverage(zip(_names(params), params), f"one backward pass through the {p['activation']} MLP "
                            f"{'-'.join(map(str, p['sizes']))}")


def _names(params):
    return [f"{k}{i // 2 + 1}" for i, k in enumerate("Wb" * (len(params) // 2))]


def _train(sub, X, y, params, lr, steps, activation):
    with own_network(sub):
        result = sub.call("train", X, y, params, lr, steps, activation)
    try:
        params, losses = result
        params, losses = list(params), [float(v) for v in losses]
    except (TypeError, ValueError):
        raise ApiError("train() must return (params, losses): the list of parameters and one loss per step") from None
    losses = expect_history(losses, steps)
    return params, losses


def symmetry(sub, seed, p):
    X, y = xor_blobs(seed, p["n"])
    init = sub.call("init_params", list(p["sizes"]), torch.Generator().manual_seed(seed))
    if not isinstance(init, (list, tuple)) or len(init) != 2 * (len(p["sizes"]) - 1):
        raise ApiError(f"init_params() must return a list [W1, b1, W2, b2, ...] of {2 * (len(p['sizes']) - 1)} tensors")
    probe_X = X[: p["probe_points"]]
    snapshots = [{"name": "at initialisation", "layers": [
        layer_units(f"hidden layer {i + 1}", h) for i, h in enumerate(hidden_activations(probe_X, init, p["activation"]))]}]
    trained, _ = _train(sub, X, y, leaves(init), p["lr"], p["steps"], p["activation"])
    snapshots.append({"name": f"after {p['steps']} steps of train()", "layers": [
        layer_units(f"hidden layer {i + 1}", h) for i, h in enumerate(hidden_activations(probe_X, trained, p["activation"]))]})
    return {"snapshots": snapshots}



def init_scale(sub, seed, p):
    """init_params([32, 256, 16], generator): each weight matrix centred on 0 and scaled by its fan-in.

    Scale: d_in * mean(W_l^2) within [low, high] = [1/16, 8] at each layer. 1 for W_l ~ N(0, 1/d_in); torch's
    default Linear init 1/3, He 2, Glorot 2 d_in / (d_in + d_out) (0.22 on 32 -> 256, 1.88 on 256 -> 16), Xavier
    with tanh's gain at most 5.2, an orthogonal init 1/8 on 32 -> 256 (its rows orthonormal): all inside. A layer
    narrow-to-wide (1:8) and one wide-to-narrow (16:1) make scaling by the fan-out fail whatever its constant:
    1/d_out gives 16 on 256 -> 16, 2/d_out 32 there, 1/(3 d_out) (torch's helpers on a (d_in, d_out) tensor)
    1/24 on 32 -> 256. Sampling error: 8192 and 4096 weights, a log2 spread under 0.04; the nearest correct init
    (Xavier with tanh's gain on 256 -> 16) stays 0.5 in log2 inside a bound, the nearest fan-out one (1/(3 d_out)
    on 32 -> 256) 0.5 outside: 15 sampling sigmas or more either way.

    Centre: the mean within `centre_z` standard errors (std / sqrt(count)) of 0, and the signs balanced (positives
    minus negatives within `centre_z` sqrt(count)): any distribution symmetric about 0 (normal, uniform on (-a, a),
    truncated normal, orthogonal) stays inside but for a chance of 1e-9; torch.rand's [0, 1) is 150 away.

    Width: init_params(width_sizes) (16-16-256-256), whose first and last layers are square: a fixed scale
    passes the bounds above (0.1 * randn: 0.32 and 2.56) but gives these two layers d_in * mean(W^2) 16 times
    apart, where every fan-in init gives the same (width_findings).
    The measurement is a contract's ({"checked", "violations"}), each violation in words with the per-layer figures."""
    sizes = list(p["sizes"])
    weights = _init_weights(sub.call("init_params", sizes, torch.Generator().manual_seed(seed)), sizes)
    squares = list(p.get("width_sizes") or [])
    wide = _init_weights(sub.call("init_params", squares, torch.Generator().manual_seed(seed + 1)), squares) \
        if squares else []
    props = Properties("mlp.py")
    for what, problem in init_findings(sizes, weights, float(p["low"]), float(p["high"]), float(p["centre_z"])):
        props.test(what, lambda problem=problem: problem)
    if squares:
        for what, problem in width_findings(squares, wide, float(p["width_ratio"])):
            props.test(what, lambda problem=problem: problem)
    return props.result()


def _init_weights(init, sizes):
    """The weight matrices of init_params(sizes)'s result (float64 copies), its biases checked: each a
    vector of shape (d_out,), all zero."""
    if not isinstance(init, (list, tuple)) or len(init) != 2 * (len(sizes) - 1):
        raise ApiError(f"init_params() must return a list [W1, b1, W2, b2, ...] of {2 * (len(sizes) - 1)} tensors")
    weights = []
    for l, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = expect_tensor(init[2 * l], f"init_params({sizes}, ...)[{2 * l}] (W{l + 1})", shape=(d_in, d_out), dtype="float")
        # b_l's shape too: a (1, d_out) bias broadcasts in the forward, then breaks a Linear's backward
        b = init[2 * l + 1]
        if not isinstance(b, torch.Tensor) or tuple(b.shape) != (d_out,):
            got = f"shape {tuple(b.shape)}" if isinstance(b, torch.Tensor) else f"a {type(b).__name__}"
            raise Violation(f"init_params(...)[{2 * l + 1}] (b{l + 1}) is {got}; each bias is a vector of shape "
                            f"(d_out,) = ({d_out},): a (1, {d_out}) row broadcasts in the forward, then a Linear's "
                            "backward returns a gradient of the wrong shape")
        if bool((b.detach() != 0).any()):
            raise Violation(f"init_params(...)[{2 * l + 1}] (b{l + 1}) is not zero (largest |entry| "
                            f"{float(b.detach().abs().max()):.3g}): the spec starts every bias at 0, "
                            "torch.zeros(d_out, dtype=torch.float64); only the weights are drawn")
        weights.append(W.detach().double())
    return weights


def width_findings(sizes, weights, ratio):
    """[(what was checked, None or what is wrong)] for init_params(sizes) whose first and last layers are
    square (d_in = d_out) and of different widths: every init that scales by the fan-in (LeCun, He, torch's
    default, Glorot, orthogonal, any gain) gives both the same d_in * mean(W^2), while a fixed scale (0.1 *
    torch.randn) gives one as many times the other as the widths differ (16 on 16 -> 16 and 256 -> 256).
    Within a factor `ratio` of each other passes. Plain torch: tests/test_exercise_5.py sweeps it."""
    first, last = (0, len(weights) - 1)
    if len(weights) < 2 or any(sizes[l] != sizes[l + 1] for l in (first, last)) or sizes[first] == sizes[last]:
        raise ValueError(f"width_sizes must begin and end with a square layer of two widths, not {sizes}")
    net = f"init_params({sizes}, generator)"
    what = f"W{first + 1} ({sizes[first]} -> {sizes[first]}) and W{last + 1} ({sizes[last]} -> {sizes[last]}) of {net} scaled alike"
    if any(bool((W == W.reshape(-1)[0]).all()) for W in (weights[first], weights[last])):
        return [(f"{what} (constant: the symmetry check's to judge)", None)]
    a, b = (sizes[l] * float((weights[l] ** 2).mean()) for l in (first, last))
    if max(a, b) <= ratio * min(a, b):
        return [(what, None)]
    fixed = abs(np.log2(b / a) - np.log2(sizes[last] / sizes[first])) < 1.0
    return [(what, f"d_in * mean(W^2) = {a:.3g} on the {sizes[first]}-wide layer and {b:.3g} on the "
                   f"{sizes[last]}-wide one, {max(a, b) / min(a, b):.3g} times apart; an init scaled by the fan-in gives "
                   f"both the same (1 for N(0, 1/d_in), whatever the width), within a factor {ratio:g} here."
                   + (f" mean(W^2) is {float((weights[first] ** 2).mean()):.3g} and {float((weights[last] ** 2).mean()):.3g}: "
                      "about the same whatever the width, a fixed scale (0.1 * torch.randn?) instead of 1/sqrt(d_in)."
                      if fixed else ""))]


def init_findings(sizes, weights, low, high, z):
    """[(what was checked, None or what is wrong, in words)] for the weight matrices `weights` of
    init_params(sizes): each centred on 0 (mean and signs), then each scaled by its fan-in (d_in * mean(W^2)
    within [low, high]). Plain torch, no submission: tests/test_exercise_5.py sweeps it over seeds and inits."""
    net = f"init_params({sizes}, generator)"
    layers = [f"W{l + 1} ({d_in} -> {d_out}) of {net}" for l, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:]))]
    stats = []
    for W in weights:
        n, mean, ms = W.numel(), float(W.mean()), float((W ** 2).mean())
        pos, neg = int((W > 0).sum()), int((W < 0).sum())
        stats.append({"n": n, "mean": mean, "std": float(W.std(unbiased=False)), "ms": ms, "pos": pos, "neg": neg,
                      "constant": bool((W == W.reshape(-1)[0]).all())})
    findings = []
    for layer, s in zip(layers, stats):
        what = f"{layer} centred on 0"
        if s["constant"]:  # a constant has no spread to judge: the symmetry check reports it
            findings.append((f"{layer} (constant: the symmetry check's to judge)", None))
            continue
        off = abs(s["mean"]) * s["n"] ** 0.5 / s["std"]
        signs = abs(s["pos"] - s["neg"]) / max(s["pos"] + s["neg"], 1) ** 0.5
        problem = None
        if off > z or signs > z:
            fraction = s["pos"] / s["n"]
            cause = (" All weights positive: torch.rand draws from [0, 1); use torch.randn (or a uniform on (-a, a), "
                     "(2 * torch.rand(...) - 1) * a)." if s["pos"] == s["n"] else
                     " All weights negative: a draw from [0, 1) (torch.rand) negated? Use torch.randn (or "
                     "(2 * torch.rand(...) - 1) * a)." if s["neg"] == s["n"] else "")
            problem = (f"mean {s['mean']:.3g}, std {s['std']:.3g} (mean/std {s['mean'] / s['std']:.3g}), "
                       f"{100 * fraction:.1f}% of its {s['n']} weights positive; "
                       f"expected a distribution symmetric about 0: a mean within {z:g} std/sqrt({s['n']}) = "
                       f"{z * s['std'] / s['n'] ** 0.5:.2g} of 0 and about half the weights positive "
                       f"(50% +- {100 * z * 0.5 / s['n'] ** 0.5:.1f}%).{cause}")
        findings.append((what, problem))
    scaled = [d_in * s["ms"] for d_in, s in zip(sizes, stats)]
    per_out = [d_out * s["ms"] for d_out, s in zip(sizes[1:], stats)]
    for l, (layer, s, d_in, d_out) in enumerate(zip(layers, stats, sizes[:-1], sizes[1:])):
        what = f"{layer} scaled by its fan-in"
        if s["constant"]:
            continue
        problem = None
        if not low <= scaled[l] <= high:
            problem = (f"d_in * mean(W^2) = {scaled[l]:.3g} (log2 {np.log2(scaled[l]):+.2f}), expected between "
                       f"{_ratio(low)} and {_ratio(high)}: 1 for W ~ N(0, 1/d_in), torch's default Linear init 1/3, "
                       f"He 2, Glorot 2 d_in / (d_in + d_out) = {2 * d_in / (d_in + d_out):.3g} here. Per layer: "
                       f"d_in * mean(W^2) = {', '.join(f'{r:.3g}' for r in scaled)}; "
                       f"d_out * mean(W^2) = {', '.join(f'{r:.3g}' for r in per_out)}."
                       + _scale_cause(sizes, stats))
        findings.append((what, problem))
    return findings


def _ratio(x):
    return f"1/{1 / x:.3g}" if 0 < x < 1 else f"{x:.3g}"


def _scale_cause(sizes, stats):
    """A likely cause, said only when the figures of every layer show it: the variance follows d_out
    (d_out * mean(W^2) the same in every layer), 1/d_in^2, or no width at all (mean(W^2) the same)."""
    if len(stats) < 2 or any(t["constant"] for t in stats):
        return ""
    ms = np.array([t["ms"] for t in stats])
    d_in, d_out = np.array(sizes[:-1], dtype=float), np.array(sizes[1:], dtype=float)

    def same(values):  # within a factor 1.5 of each other (the layers' widths differ by 8 or more)
        logs = np.log2(values)
        return float(logs.max() - logs.min()) < 0.6

    if same(d_out * ms) and not same(d_in * ms):
        return (" The variance follows d_out, not d_in: W is (d_in, d_out), so scale by its number of rows, "
                "W.shape[0] (torch.nn.init's kaiming_ helpers read the fan-in as size(1), the convention of "
                "nn.Linear's (d_out, d_in) weight).")
    if same(d_in ** 2 * ms):
        return " The variance falls as 1/d_in^2: divided by d_in instead of sqrt(d_in)?"
    if same(ms):
        return (f" mean(W^2) is about {float(np.exp(np.log(ms).mean())):.3g} in every layer whatever its width: the "
                "draws are not scaled by the fan-in (multiply a standard normal by 1/sqrt(d_in)).")
    return ""


def first_loss(sub, seed, p):
    X, y = xor_blobs(seed, p["n"], margin=None, distance=4.0)
    steps = p["steps"]
    _, losses = _train(sub, X, y, leaves(harness_params(seed, p["sizes"])), p["lr"], max(steps) + 1, p["activation"])
    takes_every_step(lambda lr, count: _train(sub, X, y, leaves(harness_params(seed, p["sizes"])), lr, count,
                                              p["activation"]), once_for=sub)
    if sub.first_time("leftover grads"):  # the property depends on no seed's data
        fresh_from_leftover_grads(lambda leftover: _leftover_run(sub, X[:_LEFTOVER_N], y[:_LEFTOVER_N], seed, p, leftover))
    return {"steps": steps, "losses": [losses[s] for s in steps], "n": p["n"],
            "alike": _other_activations(X, y, harness_params(seed, p["sizes"]), p["activation"])}


# first-loss's run from parameters that arrive with a leftover .grad: 2 steps on the first points (the first update
# shows in losses[1] and in the weights returned)
_LEFTOVER_N = 24


def _leftover_run(sub, X, y, seed, p, leftover):
    """train() for 2 steps from the harness's leaves; `leftover`: each arrives with a .grad already (seeded), as a
    caller's earlier backward leaves it (inspecting a gradient, a first loss.backward() by hand). The spec's
    train() gets leaf tensors that require grad: a .grad on them is the caller's, never the first step's."""
    params = leaves(harness_params(seed, p["sizes"]))
    if leftover:
        gen = torch.Generator().manual_seed(seed + 20_000)
        for q in params:
            q.grad = torch.randn(q.shape, generator=gen, dtype=q.dtype)
    trained, losses = _train(sub, X.clone(), y.clone(), params, p["lr"], 2, p["activation"])
    return dict(zip(_names(trained), trained)), losses


def _other_activations(X, y, params, activation):
    """The first loss of the same network with each other activation (the harness's layers and loss, no
    submission): a train() whose first loss is one of these does not pass its `activation` on to mlp_forward
    (graders/kinds/first_loss.py reads "alike"). Four forward passes."""
    alike = []
    with torch.no_grad():
        for other in ACTIVATIONS:
            if other == activation:
                continue
            default = " (mlp_forward's default)" if other == "tanh" else ""
            alike.append({"step": 0, "loss": float(_own_loss(_own_mlp_forward(X, params, other), y)),
                          "why": f"It is the first loss of the same network with activation={other!r}{default} "
                                 f"instead of {activation!r}: train() does not pass its `activation` argument on to "
                                 f"mlp_forward (call mlp_forward(X, params, activation) inside train())"})
    return alike


@keeps_rules
def convergence(sub, seed, p):
    X, y = xor_blobs(seed, p["n"])
    trained, losses = _train(sub, X, y, leaves(harness_params(seed, p["sizes"])), p["lr"], p["budget"], p["activation"])
    with torch.no_grad():
        accuracy = ((logits(X, trained, p["activation"]).reshape(-1) >= 0).double() == y).double().mean().item()
    _descends(sub, seed, p, X, y, flatten(trained))
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)]}


def _descends(sub, seed, p, X, y, w_end):
    """graders/descent.py: train()'s parameters after 1, 2 and 3 steps and at the budget (`w_end`, convergence's own
    run: a network's descent is its own path all the way; the harness's network and loss inside) are gradient
    descent's at one learning rate, to 1e-5 (float64 orderings agree to ~1e-14; a float32 step inside, first-loss's
    charge, stays within it)."""
    shapes = [tuple(q.shape) for q in harness_params(seed, p["sizes"])]

    probes = probe_steps(seed, p["budget"], drawn=False)
    def call(k):
        return sub.call("train", X, y, leaves(harness_params(seed, p["sizes"])), p["lr"], k, p["activation"])

    def read(result, k):
        trained = list(train_result(result, k, "(params, losses)")[0])
        if [tuple(getattr(q, "shape", ())) for q in trained] != shapes:
            raise ApiError(f"train() returned parameters of shapes {[tuple(getattr(q, 'shape', ())) for q in trained]} "
                           f"after {k} steps; expected {shapes}")
        return flatten(expect_tensor(q, f"train()'s parameter {i} after {k} steps", dtype="float", finite=False)
                       for i, q in enumerate(trained))

    def gradient(w, _k):
        params = leaves_of(w, shapes)
        return flatten(torch.autograd.grad(_own_loss(_own_mlp_forward(X, params, p["activation"]), y), params))

    with own_network(sub):
        got = weights_of(call, probes, read)
    follows_descent({**got, p["budget"]: w_end}, flatten(harness_params(seed, p["sizes"])),
                    gradient, lambda want: 1e-5 * (1 + float(np.abs(want).max())),
                    f"on convergence's problem (seed {seed}, lr {p['lr']:g}; the parameters flattened)", p["lr"],
                    ("exercise-5 convergence", seed, p["n"], tuple(p["sizes"]), p["activation"], p["lr"]))


# ---- families of inputs ---------------------------------------------------------------------------------

def _strided(x):
    """The same values in a non-contiguous layout (a transposed copy, transposed back)."""
    return x.T.contiguous().T if x.dim() == 2 else torch.stack([x, x]).T[:, 0]


def _edge_inputs(gen, shape, edge):
    """|x| in [0.1, 3] with random signs (ReLU's kink never inside a finite difference), or the edge values."""
    x = (0.1 + 2.9 * torch.rand(*shape, generator=gen, dtype=torch.float64)) * torch.sign(
        torch.randn(*shape, generator=gen, dtype=torch.float64))
    if edge == "large":  # beyond 37 and 710, where exp overflows or 1 + exp(-x) rounds to 1: each magnitude
        # with both signs (the first half positive, the rest negative), whatever the seed draws
        n = x.numel()
        magnitudes = torch.tensor([40.0, 800.0, 3.0, 720.0], dtype=torch.float64).repeat(n)[:n]
        signs = torch.where(torch.arange(n) < (n + 1) // 2, 1.0, -1.0).to(torch.float64)
        x = (signs * magnitudes).reshape(shape)
    elif edge == "zeros":
        x.view(-1)[::2] = 0.0
    return x


def mlp_forward_probe(sub, seed, p):
    """mlp_forward's logits (with the harness's layers in place of the submission's) and loss's value,
    against the same network and loss in torch. The first configuration's calls are made one by one
    (an error raises with the student's traceback); the others in one message (graders/batched.py),
    where one that raises is that configuration's failure, in words."""
    gen = torch.Generator().manual_seed(seed)
    forward, cases, later = sub.get("mlp_forward"), [], []
    with own_layers(sub):
        for i, (n, sizes) in enumerate(p["family"]):
            X = torch.randn(n, sizes[0], generator=gen, dtype=torch.float64)
            params = harness_params(seed + i, sizes)
            for activation in ACTIVATIONS:
                name = f"logits, {activation}, sizes {sizes}, n={n}"
                target = _own_mlp_forward(X, params, activation)
                others = {other: _own_mlp_forward(X, params, other) for other in ACTIVATIONS if other != activation}
                args = [X.clone(), [q.clone() for q in params], activation]
                if i == 0:
                    cases.append(_logits_case(name, n, sizes, forward(*args), target, others))
                else:
                    later.append((len(cases), name, n, sizes, [forward, args, {}], (target, others)))
                    cases.append(None)
        replies = call_each(sub, [call for *_, call, _ in later])
    for (k, name, n, sizes, _, (target, others)), (ok, out) in zip(later, replies):
        try:
            if not ok:
                raise ApiError(out)
            cases[k] = _logits_case(name, n, sizes, out, target, others)
        except Exception as e:  # noqa: BLE001
            message = str(e) if isinstance(e, ApiError) and not ok else \
                f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            cases[k] = {"name": name, "error": message}
    cases += _own_functions_cases(sub, seed, gen, p)
    problems = []
    for n in p["loss_n"]:
        z = 3 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 2, (n,), generator=gen).double()
        problems.append((f"loss(logits {n}x1, y ({n},))", z, y))
    # logits past exp's overflow (709.8 in float64) and where 1 + exp(-z) rounds to 1 (z > 37): a loss written
    # as log(1 + exp(z)) - y z is inf there. The harness's Softplus in place of the submission's, so that a
    # Softplus of its own that overflows is its own check's to charge, not this one's (one bug, one deduction).
    z = torch.tensor([[1000.0], [-1000.0], [40.0], [-40.0]], dtype=torch.float64)
    problems.append(("loss(logits +-1000 and +-40, y = 0, 1, 1, 0)", z, torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)))
    with own_layers(sub):
        for name, z, y in problems:  # an inf is measured and judged (a wrong value), not refused as an error
            value = expect_tensor(sub.get("loss")(z.clone(), y.clone()), name, shape=(), dtype="float", finite=False)
            cases.append({"name": name, "shape": [1], "values": [value.item()], "target": [_own_loss(z, y).item()]})
        cases += _loss_grid_cases(sub, seed)
    return {"cases": cases}


def _loss_grid_cases(sub, seed):
    """loss() of one logit at each point of the softplus grid (one message, the harness's Softplus in place of the
    submission's: a loss that calls it is exact below 20, F.softplus's 2e-9 beyond), against -y z + log(1 + e^z)
    computed exactly here: a softplus written inline that switches to its asymptote below 20 shows (blind round 8).
    The spec's case_tolerances hold each case to float64's rounding (to 2e-9 beyond |z| = 20, "|z| > 20")."""
    points = softplus_grid(seed)
    calls = [[sub.get("loss"), [torch.tensor([[z]], dtype=torch.float64), torch.tensor([y], dtype=torch.float64)], {}]
             for z, y in points]
    cases = []
    for (z, y), (ok, out) in zip(points, call_each(sub, calls)):
        name = f"loss on a grid of logits: z = {z:g}, y = {y:g} (n=1" + (", |z| > 20)" if abs(z) > 20 else ")")
        exact = float(torch.logaddexp(torch.tensor(z, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)) - y * z)
        try:
            if not ok:
                raise ApiError(out)
            value = expect_tensor(out, name, shape=(), dtype="float", finite=False)
            cases.append({"name": name, "shape": [1], "values": [value.item()], "target": [exact]})
        except Exception as e:  # noqa: BLE001 - this point's failure, in words
            cases.append({"name": name, "error": str(e) if isinstance(e, ApiError) else f"raised {type(e).__name__}: {e}"})
    return cases


def forward_through(forward, classes, X, params, activations):
    """In the student's process (sub.run_local): mlp_forward(X, params, activation) for each activation,
    with the submission's own Functions (no swap), on leaves that require grad. For each: which of the
    submission's Functions (classes: name -> class) the output's autograd graph goes through (a node of
    a custom Function remembers its class: node._forward_cls), and whether the caller's list `params`
    came back as it was given (same length, same tensors), and whether the graph reaches W1 (a graph cut
    by a detach is the gradient checks' finding, not a layer computed by another op). None for an
    activation whose call raised (the values' cases report that)."""
    out = {}
    for activation in activations:
        leaves_ = [q.detach().clone().requires_grad_(True) for q in params]
        given = list(leaves_)
        try:
            logits_ = forward(X.clone(), given, activation)
        except Exception:  # noqa: BLE001 - the values' cases report the error
            out[activation] = None
            continue
        found, seen, stack, reaches = set(), set(), [getattr(logits_, "grad_fn", None)], False
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            reaches |= getattr(node, "variable", None) is leaves_[0]
            cls = getattr(node, "_forward_cls", None)
            found |= {name for name, c in classes.items()
                      if isinstance(cls, type) and isinstance(c, type) and issubclass(cls, c)}
            stack.extend(f for f, _ in getattr(node, "next_functions", ()))
        out[activation] = {"found": sorted(found), "reaches": reaches, "kept": len(given) == len(leaves_) and
                           all(a is b for a, b in zip(given, leaves_)), "length": len(given)}
    return out


def _own_functions_cases(sub, seed, gen, p):
    """mlp_forward with the submission's own Functions (the values' cases swap in the harness's layers):
    its logits go through Linear and the activation's Function (not torch's tanh, relu, ...), and the
    caller's list params comes back as given (train() calls mlp_forward on the same list at every step).
    One message for every activation."""
    n, sizes = p["own_functions"]
    X = torch.randn(n, sizes[0], generator=gen, dtype=torch.float64)
    params = harness_params(seed + 7, sizes)
    classes = {"Linear": sub.get("Linear"), **{cls: sub.get(cls) for cls in ACTIVATIONS.values()}}
    seen = sub.run_local(forward_through, sub.get("mlp_forward"), classes, X, params, list(ACTIVATIONS))
    cases = []
    for activation, cls in ACTIVATIONS.items():
        name = f"mlp_forward(X, params, '{activation}') with your own Functions, sizes {sizes}: the layers it goes through"
        got = seen.get(activation) if isinstance(seen, dict) else None
        problem = None
        if isinstance(got, dict):
            missing = [c for c in ("Linear", cls) if c not in got.get("found", [])]
            if not got.get("kept", True):
                problem = (f"changed the caller's list params ({len(params)} tensors given, {got.get('length')} there "
                           "after the call, or other tensors): it pops or reassigns entries of the list; read it "
                           "without writing into it (params[0::2], zip(params[0::2], params[1::2])): train() calls "
                           "mlp_forward on the same list at every step, and finds it emptied")
            elif missing and got.get("reaches"):
                problem = (f"the logits' autograd graph has no node of your {' or '.join(missing)}: mlp_forward computes "
                           f"{'the layer' if missing == ['Linear'] else 'that activation'} with torch's own op "
                           f"(torch.{activation}, F.{activation}, X @ W + b ...) instead of calling "
                           f"{' and '.join(m + '.apply' for m in missing)}; the spec's mlp_forward is built from your "
                           "Functions, whose hand-written backward is what the seminar trains with")
        cases.append({"name": name, "error": problem} if problem else
                     {"name": name, "shape": [1], "values": [1.0], "target": [1.0]})
    return cases


def _logits_case(name, n, sizes, out, target, others=None):
    """others: the same network's logits with each other activation: logits that are one of them (and not the
    target) are that network's, said in the case's own hint (the activation picked wrongly, not the layers)."""
    out = expect_tensor(out, name, shape=(n, sizes[-1]), dtype="float")
    values = out.detach().double()
    case = {"name": name, "shape": [n, sizes[-1]], "values": values.reshape(-1).tolist(),
            "target": target.reshape(-1).tolist()}
    if not torch.allclose(values, target, rtol=1e-7, atol=1e-9):
        used = next((other for other, logits in (others or {}).items()
                     if torch.allclose(values, logits, rtol=1e-7, atol=1e-9)), None)
        if used:
            wanted = name.split(", ")[1]
            case["hint"] = (f"These are the logits of the same network with {used} in place of {wanted}: mlp_forward "
                            f"picked the wrong activation for activation={wanted!r}. Likely cause: the name compared "
                            "with `is` (identity, true only for strings Python happened to intern; a name built or "
                            "received at run time is another object), a fall-through default, or a wrong entry in a "
                            "table; compare with == or look the name up in a dict")
    return case


# ---- invariants: arguments, dtypes, the autograd.Function contract, determinism ------------------------

def _contract(watch, where, apply, inputs, names):
    """float32 in, float32 out and float32 gradients; the caller's tensors untouched by forward and
    backward; a saved input modified in place after forward either makes backward refuse (what
    ctx.save_for_backward does) or leaves the gradient as it was (a copy was saved), never silently changes it."""
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = watch.call(where, apply, tuple(xs), names)
    watch.dtype(where, out, inputs[0].dtype)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return
    try:
        grads = torch.autograd.grad(out.sum(), xs, allow_unused=True)
    except Exception as e:  # noqa: BLE001 - raised by the submission's backward
        if "gradient" in str(e) and ("number of" in str(e) or "not a Tensor" in str(e) or "Variable" in str(e)):
            watch.violation(where, f"backward breaks the autograd.Function contract: {str(e).splitlines()[0]} "
                                   "(one gradient per input of forward, None for a non-tensor input)")
        return  # any other failure of backward is for the gradient checks to report
    for name, g in zip(names, grads):
        watch.dtype(where, g, inputs[0].dtype, f"the gradient of {name}")
    # the same call, the first input modified in place (under no_grad) between forward and backward
    xs2 = [x.detach().clone().requires_grad_(True) for x in inputs]
    moved = xs2[0] * 1.0  # a non-leaf, so that it can be modified in place
    out2 = apply(moved, *xs2[1:])
    with torch.no_grad():
        moved.add_(0.5)
    try:
        again = torch.autograd.grad(out2.sum(), xs2, allow_unused=True)
    except Exception:  # noqa: BLE001 - autograd noticed the modification: save_for_backward did its job
        return
    for name, g, g0 in zip(names, again, grads):
        if g is not None and g0 is not None and not torch.allclose(g, g0, rtol=1e-5, atol=1e-6):
            watch.violation(where, f"the gradient of {name} changed when {names[0]} was modified in place after forward, "
                                   "silently: save tensors with ctx.save_for_backward (autograd then checks they are "
                                   "unchanged), not as attributes of ctx")
            return


# float16 and bfloat16 (the CPU has both for every op a layer needs): a tensor made inside without dtype= (torch.zeros(x.shape)
# in max(x, 0) or in log(1 + e^x)) is float32, which float64 inputs promote away and float32 ones equal, so only a
# half-precision input shows it (blind round 9: ReLU's and Softplus's forward returned float32 for bfloat16, float16 inputs)
HALF = (torch.float16, torch.bfloat16)


def half_precision_here(functions, loss, inputs, logits, labels):
    """In the student's process (sub.run_local): each Function of `functions` (name -> class) on its `inputs` (name ->
    float64 tensors) cast to float16 and to bfloat16, and loss(logits, labels) too: per name and dtype, the dtype of the
    output, the dtypes backward itself returns (read through a subclass, before autograd casts them to the inputs'),
    and the largest difference of the output and of the gradients from the same call on the very same values in
    float64 (whose scale is said too); a string for a call that raised in half precision only, None where the
    float64 call raises too (the checks of values report that)."""
    def said(e):
        text = (str(e).strip().splitlines() or [""])[0][:200]
        return f"{type(e).__name__}: {text}" if text else type(e).__name__

    def run(fn, xs, probe=None):
        leaves = [x.detach().clone().requires_grad_(True) for x in xs]
        out = (probe or fn)(*leaves)
        if not isinstance(out, torch.Tensor):
            return None
        grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True) if out.requires_grad else [None] * len(xs)
        return out.detach(), grads

    found = {}
    calls = {name: (lambda *xs, F_=F: F_.apply(*xs), F) for name, F in functions.items()}
    calls["loss"] = (loss, None)
    inputs = dict(inputs, loss=[logits])
    for name, (fn, Function) in calls.items():
        for dtype in HALF:
            key, seen = f"{name} {dtype}", []
            probe = None
            if Function is not None:
                def backward(ctx, *grads, F_=Function):
                    out = F_.backward(ctx, *grads)
                    seen.append([None if g is None else str(g.dtype) if isinstance(g, torch.Tensor) else type(g).__name__
                                 for g in (out if isinstance(out, tuple) else (out,))])
                    return out
                probe_class = type(Function.__name__, (Function,), {"backward": staticmethod(backward)})
                probe = probe_class.apply
            xs = [x.to(dtype) for x in inputs[name]]
            extra = [labels.to(dtype)] if name == "loss" else []
            try:
                exact = run(lambda *a: fn(*a, *[e.double() for e in extra]), [x.double() for x in xs])
            except Exception:  # noqa: BLE001 - see above
                found[key] = None
                continue
            try:
                got = run(lambda *a: (probe or fn)(*a, *extra), xs)
            except Exception as e:  # noqa: BLE001 - the finding, said by the harness
                found[key] = said(e)
                continue
            if got is None or exact is None:
                found[key] = None
                continue
            (out, grads), (out64, grads64) = got, exact
            same = out.shape == out64.shape
            found[key] = {
                "out": str(out.dtype), "returned": seen[0] if seen else None,
                "off": float((out.double() - out64).abs().max()) if same else float("nan"),
                "goff": max([float((g.double() - g64).abs().max()) for g, g64 in zip(grads, grads64)
                             if g is not None and g64 is not None and g.shape == g64.shape] or [0.0]),
                "scale": max([1.0, float(out64.abs().max())] + [float(x.abs().max()) for x in xs]
                             + [float(g64.abs().max()) for g64 in grads64 if g64 is not None])}
    return found


def _half_precision(sub, watch, gen):
    """half_precision_here's findings as violations (one message): float16 and bfloat16 in, the same dtype out, from
    forward and from backward itself; the values the float64 ones to that dtype's precision (8 units of its epsilon at
    the scale of the inputs and outputs: computing in another dtype and casting back is fine, overflowing is not)."""
    inputs = {"Linear": [torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((3, 4), (4, 2), (2,))]}
    inputs.update({cls: [(0.6 + torch.rand(3, 4, generator=gen, dtype=torch.float64))
                         * torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)] for cls in ACTIVATIONS.values()})
    logits_ = torch.randn(4, 1, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    found = sub.run_local(half_precision_here, {name: sub.get(name) for name in inputs}, sub.get("loss"), inputs,
                          logits_, labels)
    if not isinstance(found, dict):
        return
    for name in list(inputs) + ["loss"]:
        names = (["X", "W", "b"] if name == "Linear" else ["logits"] if name == "loss" else ["x"])
        for dtype in HALF:
            short = str(dtype).replace("torch.", "")
            where = (f"{name}.apply on {short} inputs" if name != "loss" else f"loss() on {short} logits and labels")
            watch.probed.append(where)
            got = found.get(f"{name} {dtype}")
            if isinstance(got, str):
                watch.violation(where, f"raised {got}, where the same values in float64 run: a tensor made inside with "
                                       "another dtype meets the inputs (a float32 constant in a matrix product?); make "
                                       "it with the inputs' dtype (torch.zeros_like(x), x.new_zeros(n), dtype=x.dtype)")
                break
            if not isinstance(got, dict):
                continue
            if got.get("out") != str(dtype):
                watch.violation(where, f"forward returns {str(got.get('out')).replace('torch.', '')} for {short} inputs: "
                                       "the dtype must follow the inputs'. A tensor made inside without dtype= is float32 "
                                       "(torch.zeros(x.shape), torch.ones(n), torch.tensor(0.0)), as is a .float() cast: "
                                       "float64 inputs promote it away and float32 ones equal it, so half precision "
                                       "alone shows it. Make it from the input (torch.zeros_like(x), x.clamp(min=0))")
                break
            returned = got.get("returned")
            wrong = next(((i, d) for i, d in enumerate(returned or []) if d not in (None, str(dtype))), None) \
                if isinstance(returned, list) else None
            if wrong is not None:
                i, d = wrong
                which = names[i] if i < len(names) else f"#{i + 1}"
                watch.violation(where, f"backward itself returns the gradient of {which} as "
                                       f"{str(d).replace('torch.', '')} (autograd casts it back to {short} before .grad): "
                                       "the contract is one gradient per input in the input's dtype. Likely cause: a "
                                       "mask or constant made without dtype= (torch.ones(n), torch.tensor(1.0)), or a "
                                       ".float(); make it with .to(grad.dtype), or multiply by the boolean mask itself")
                break
            bound_ = 8 * torch.finfo(dtype).eps * float(got.get("scale", 1.0))
            off, goff = float(got.get("off", 0.0)), float(got.get("goff", 0.0))
            if not (off <= bound_ and goff <= bound_):
                what = "output" if not off <= bound_ else "gradient"
                watch.violation(where, f"its {what} is off the same call's in float64 by {max(off, goff):.3g}, beyond "
                                       f"{short}'s precision ({bound_:.2g} here): part of it overflows or loses its "
                                       f"digits in {short}")
                break


def backward_writes(Function, inputs):
    """In the student's process (sub.run_local): Function.apply on copies of `inputs`, then one backward
    with an incoming gradient of ones; which tensors of the caller's that backward wrote into: forward's
    output (which the next layer holds: a saved output turned into y * (1 - y) in place) and the incoming
    gradient (the layer above's). There, because the harness's copy of the output is a tensor of its own
    graph: a write into the student's output never reaches it. None when the call or backward raised (the
    gradient checks report that)."""
    try:
        xs = [x.detach().clone().requires_grad_(True) for x in inputs]
        out = Function.apply(*xs)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return None
        kept, upstream = out.detach().clone(), torch.ones_like(out)
        torch.autograd.grad(out, xs, grad_outputs=upstream, allow_unused=True)
    except Exception:  # noqa: BLE001
        return None
    changed = out.detach() != kept
    return {"output": float((out.detach() - kept).abs().max()) if bool(changed.any()) else None,
            "upstream": not bool((upstream == 1).all()), "aliased": _output_aliased(Function, inputs),
            "returned": _returned_dtypes(Function, inputs)}


def _returned_dtypes(Function, inputs):
    """The dtypes of what Function.backward itself returns for float32 inputs (a float32 incoming gradient),
    before autograd casts each gradient to its input's dtype (which hides a float64 mask: the values that
    reach .grad agree): read through a subclass whose backward calls the student's and records its result.
    None when the call or backward raised (the gradient checks report that)."""
    seen = []

    def backward(ctx, *grads):
        out = Function.backward(ctx, *grads)
        seen.append([None if g is None else str(g.dtype) if isinstance(g, torch.Tensor) else type(g).__name__
                     for g in (out if isinstance(out, tuple) else (out,))])
        return out
    try:
        probe = type(Function.__name__, (Function,), {"backward": staticmethod(backward)})
        xs = [x.detach().float().requires_grad_(True) for x in inputs]
        torch.autograd.grad(probe.apply(*xs).sum(), xs, allow_unused=True)
    except Exception:  # noqa: BLE001
        return None
    return seen[0] if seen else None


def _output_aliased(Function, inputs):
    """Forward's output modified in place (under no_grad, as the next layer's code may) before backward:
    backward must refuse (a tensor saved with ctx.save_for_backward: autograd checks its version) or give
    the gradient it gave unmodified (an input or a copy saved), never one computed from the changed values
    (the output kept as ctx.y = y, an alias autograd cannot check). The largest change of a gradient, or
    None."""
    try:
        xs = [x.detach().clone().requires_grad_(True) for x in inputs]
        first = torch.autograd.grad(Function.apply(*xs).sum(), xs, allow_unused=True)
        xs = [x.detach().clone().requires_grad_(True) for x in inputs]
        out = Function.apply(*xs)
        with torch.no_grad():
            out.add_(0.5)
    except Exception:  # noqa: BLE001 - a call that raises is the other checks' to report
        return None
    try:
        again = torch.autograd.grad(out.sum(), xs, allow_unused=True)
    except Exception:  # noqa: BLE001 - autograd noticed the modification: save_for_backward did its job
        return None
    changes = [float((g - g0).abs().max()) for g, g0 in zip(again, first) if g is not None and g0 is not None]
    largest = max(changes, default=0.0)
    return largest if largest > 1e-6 * max(1.0, max((float(g.abs().max()) for g in first if g is not None), default=1.0)) else None


def _no_writes_in_backward(sub, watch, where, Function, inputs):
    wrote = sub.run_local(backward_writes, Function, list(inputs))
    if not isinstance(wrote, dict):
        return
    if wrote.get("output") is not None:
        watch.violation(where, f"backward changed forward's output in place (largest change {float(wrote['output']):.3g}): "
                               "the tensor saved with ctx.save_for_backward is the caller's too (the next layer's "
                               "input); compute a derivative such as y * (1 - y) into a new tensor, never with "
                               "y *= ... or y.mul_(...)")
    elif wrote.get("aliased") is not None:
        watch.violation(where, f"forward's output was modified in place after forward (the next layer's code may do "
                               f"so), and backward then gave another gradient (largest change {float(wrote['aliased']):.3g}) "
                               "instead of refusing: it computes from the output kept as an attribute of ctx (ctx.y = y). "
                               "Save tensors with ctx.save_for_backward: autograd then checks they are unchanged")
    elif isinstance(wrote.get("returned"), list) and any(d not in (None, "torch.float32") for d in wrote["returned"]):
        i, dtype = next((i, d) for i, d in enumerate(wrote["returned"]) if d not in (None, "torch.float32"))
        name = (["X", "W", "b"] if len(inputs) == 3 else ["x"])[i] if i < len(inputs) else f"#{i + 1}"
        dtype = dtype.replace("torch.", "")
        watch.violation(where, f"on float32 inputs, backward itself returns the gradient of {name} as {dtype} "
                               "(autograd casts it back to float32 before .grad, so the values agree, but the layer "
                               "computes in another precision, at twice the memory and time in float64): the contract "
                               "is one gradient per input in the input's dtype. Likely cause: a mask or constant made "
                               "with .double() or dtype=torch.float64 (or .float()); make it with .to(grad.dtype), or "
                               "multiply by the boolean mask itself (grad * (x > 0))")
    elif wrote.get("upstream"):
        watch.violation(where, "backward changed the incoming gradient grad_output in place: it is the layer above's "
                               "(and may be shared); build the result in a new tensor (grad_output * mask, or "
                               "grad_output.clone() before a masked assignment)")


def draws_from_generator(init_params, sizes, seed):
    """In the student's process (sub.run_local): init_params called twice with ONE generator, which a
    correct init advances: the second call's weights differ from the first's (None where they cannot be
    read: the form of the result is the other checks' business)."""
    generator = torch.Generator().manual_seed(seed)
    first, second = init_params(list(sizes), generator), init_params(list(sizes), generator)
    try:
        return any(not torch.equal(a, b) for a, b in zip(first[0::2], second[0::2]))
    except Exception:  # noqa: BLE001
        return None


def graph_of_init(init_params, sizes, seed):
    """In the student's process (sub.run_local): for each tensor init_params(sizes, generator) returns, the
    name of its grad_fn, None for a leaf (a tensor's place in an autograd graph does not cross to the
    harness, its values and requires_grad do). None where the result is not a list of tensors (the form
    of the result is the other checks' business)."""
    init = init_params(list(sizes), torch.Generator().manual_seed(seed))
    if not isinstance(init, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in init):
        return None
    return [None if t.grad_fn is None else type(t.grad_fn).__name__ for t in init]


def _graph_findings(sizes, grad_fns):
    """The first tensor of init_params(sizes)'s result that is not a leaf, in words (None if every one is)."""
    for i, name in enumerate(grad_fns or []):
        if name is not None:
            return (f"returned [{i}] ({'W' if i % 2 == 0 else 'b'}{i // 2 + 1}) as a tensor with an autograd graph "
                    f"(grad_fn {name}), not a leaf: it was computed from a tensor created with requires_grad=True "
                    "(torch.randn(..., requires_grad=True) / d_in ** 0.5 is a division's output), so backward() never "
                    "fills its .grad: train(X, y, init_params(...), ...) finds p.grad None, and requires_grad_() cannot "
                    "make it a leaf again. Draw and scale first, then mark the result: (torch.randn(..., "
                    "generator=generator, dtype=torch.float64) / d_in ** 0.5).requires_grad_(), or return plain tensors")
    return None


def class_state_here(classes, inputs):
    """In the student's process (sub.run_local): each Function of `classes` (name -> class) applied once to copies of
    its `inputs` (name -> tensors) that require grad; the names of the class attributes that forward (and one
    backward) left holding a tensor (a tensor, or a tuple, list or dict of them) that were not there before, or
    held another object: state kept on the class itself (Linear.saved = (X, W)), shared by every call."""
    def holds_tensor(v):
        if isinstance(v, torch.Tensor):
            return True
        if isinstance(v, (tuple, list)):
            return any(isinstance(u, torch.Tensor) for u in v)
        return isinstance(v, dict) and any(isinstance(u, torch.Tensor) for u in v.values())
    found = {}
    for name, cls in classes.items():
        try:
            before = {k: id(v) for k, v in vars(cls).items()}
            xs = [x.detach().clone().requires_grad_(True) for x in inputs[name]]
            out = cls.apply(*xs)
            if isinstance(out, torch.Tensor) and out.requires_grad:
                torch.autograd.grad(out.sum(), xs, allow_unused=True)
        except Exception:  # noqa: BLE001 - a call that raises is the other checks' to report
            pass
        kept = sorted(k for k, v in vars(cls).items() if holds_tensor(v) and before.get(k) != id(v))
        if kept:
            found[name] = kept
    return found


def _class_state(sub, watch, gen):
    """class_state_here's findings as violations (one message for the five Functions): a blind red team's Linear
    that kept (X, W) on the class passed every check but this one, whose message said ctx (round 8)."""
    inputs = {"Linear": [torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((3, 4), (4, 2), (2,))]}
    inputs.update({cls: [torch.randn(3, 4, generator=gen, dtype=torch.float64)] for cls in ACTIVATIONS.values()})
    classes = {name: sub.get(name) for name in inputs}
    where = "each Function's forward and backward, once: what they leave on the class"
    watch.probed.append(where)
    found = sub.run_local(class_state_here, classes, inputs)
    if not isinstance(found, dict):
        return
    for name in inputs:
        attrs = found.get(name)
        if isinstance(attrs, list) and attrs and all(isinstance(a, str) for a in attrs):
            watch.violation(f"{name}.forward", f"keeps tensors on the class itself ({', '.join(f'{name}.{a}' for a in attrs)}): "
                                               "one value shared by every call, so in a network the next layer's forward "
                                               "overwrites it before this layer's backward reads it (a 2-layer MLP's "
                                               "backward then uses the last layer's tensors: wrong gradients, or a shape "
                                               "error). Keep what backward needs on ctx: ctx.save_for_backward(...)")


def trained_in_place_here(train, X, y, params, lr, steps, activation):
    """In the student's process (sub.run_local): train() on `params` (a list of leaves), and the indices of the
    parameters it did not update in place: the list's entry replaced by another tensor, or a view taken before
    the call (p.detach(), sharing p's memory) not seeing p's new values (p.data = p.data - lr * p.grad gives p new
    memory). A string (the first line of what it raised) for a call that raised."""
    before = [(q, q.detach()) for q in params]
    try:
        train(X, y, params, lr, steps, activation)
    except Exception as e:  # noqa: BLE001 - the checks of values report a call that raises
        said = (str(e).strip().splitlines() or [""])[0][:200]
        return f"{type(e).__name__}: {said}"
    return [i for i, (q, view) in enumerate(before)
            if i < len(params) and params[i] is q and not torch.equal(view, q.detach())]


def invariants(sub, seed, p):
    gen, watch = torch.Generator().manual_seed(seed), Watch()
    _class_state(sub, watch, gen)
    Linear = sub.get("Linear")
    for dtype in (torch.float32, torch.float64):
        X, W, b = (torch.randn(*s, generator=gen, dtype=dtype) for s in ((3, 4), (4, 2), (2,)))
        _contract(watch, f"Linear on {str(dtype)[6:]} inputs", lambda X, W, b: Linear.apply(X, W, b), (X, W, b),
                  ("X", "W", "b"))
        if dtype == torch.float64:
            _no_writes_in_backward(sub, watch, "Linear's backward", Linear, (X, W, b))
        for cls in ACTIVATIONS.values():
            Function = sub.get(cls)
            # |x| >= 0.6, both signs: away from ReLU's kink even after the +0.5 of _contract
            x = (0.6 + torch.rand(3, 4, generator=gen, dtype=dtype)) * torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=dtype)
            _contract(watch, f"{cls} on {str(dtype)[6:]} inputs", lambda x, F_=Function: F_.apply(x), (x,), ("x",))
            if dtype == torch.float64:
                _no_writes_in_backward(sub, watch, f"{cls}'s backward", Function, (x,))
    _half_precision(sub, watch, gen)
    # each Function's backward twice on one forward (retain_graph=True: two losses sharing a layer) and, for
    # Linear, each input alone requiring grad (in an MLP every W and every hidden X require grad together, so
    # a gradient guarded by another input's ctx.needs_input_grad shows only here): one message each
    X, W, b = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((3, 4), (4, 2), (2,)))
    backward_kept(watch, sub, "Linear (X 3x4, W 4x2), then backward twice on that one forward",
                  _inside(sub, applied, Linear, False), (X, W, b), ("X", "W", "b"),
                  alone=("Linear (X 3x4, W 4x2) with one input alone requiring grad", {
                      "X": "frozen weights, the input itself optimised", "W": "the data need no gradient, as in a "
                      "network's first layer", "b": "the data and the weights frozen"}))
    for cls in ACTIVATIONS.values():
        x = (0.6 + torch.rand(3, 4, generator=gen, dtype=torch.float64)) * torch.tensor([1.0, -1.0, 1.0, -1.0],
                                                                                       dtype=torch.float64)
        backward_kept(watch, sub, f"{cls} (x 3x4), then backward twice on that one forward",
                      _inside(sub, applied, sub.get(cls), False), (x,), ("x",))
    sizes = list(p["sizes"])
    where = f"init_params({sizes}, generator)"
    runs = []
    for global_seed, seed_ in ((0, seed), (1, seed), (0, seed + 1)):
        torch.manual_seed(global_seed)  # a submission drawing from the global generator gets other weights
        args = (list(sizes), torch.Generator().manual_seed(seed_))
        init = watch.call(where, sub.get("init_params"), args, ("sizes", "generator"))
        if args[0] != sizes:
            watch.violation(where, f"modified its argument sizes: {args[0]}")
        if not isinstance(init, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in init):
            return watch.measurement()  # the form of init_params' result is the other checks' business
        runs.append([t.detach() for t in init])
    same = all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    constant = all(bool((W == W.reshape(-1)[0]).all()) for W in runs[0][0::2])  # the symmetry check's business
    other = constant or any(not torch.equal(a, c) for a, c in zip(runs[0], runs[2]))
    if not same:
        watch.violation(where, "two calls with generators of the same seed gave different weights: draw every "
                               "random number from `generator` (torch.randn(..., generator=generator)), not torch's global one")
    elif not other:
        watch.violation(where, "generators of different seeds gave the same weights: the generator is not used")
    elif not constant and sub.run_local(draws_from_generator, sub.get("init_params"), list(sizes), seed) is False:
        # (a generator crosses to the student's process as its seed: the calls sharing one run there)
        watch.violation(where, "two calls with the SAME generator gave the same weights, and the generator did not "
                               "advance: init_params draws from a copy of its own (torch.Generator().manual_seed("
                               "generator.initial_seed())?); draw from `generator` itself, so that the caller's next "
                               "draws (a second network, a data shuffle) follow on from these")
    # init_params takes no tensor whose dtype it could follow: the spec's float64 is the rule, said once
    wrong = [f"[{i}] ({'W' if i % 2 == 0 else 'b'}{i // 2 + 1}) is {str(t.dtype).replace('torch.', '')}"
             for i, t in enumerate(runs[0]) if t.dtype != torch.float64]
    if wrong:
        watch.violation(where, f"returned {', '.join(wrong)}: the spec asks for float64 parameters, and nothing "
                               "passed to init_params carries a dtype, so it must be given (torch.randn(..., "
                               "dtype=torch.float64, generator=generator), torch.zeros(..., dtype=torch.float64))")
    # the parameters are leaves: train() fills their .grad (the spec's flow train(X, y, init_params(...), ...))
    graph = _graph_findings(sizes, sub.run_local(graph_of_init, sub.get("init_params"), list(sizes), seed))
    if graph:
        watch.violation(where, graph)
    X, y = xor_blobs(seed, 16)
    where = "train() (n=16, sizes [2, 4, 1], 3 steps)"
    params = leaves(harness_params(seed, [2, 4, 1]))
    with own_network(sub):
        result = watch.call(where, sub.get("train"), (X, y, params, 0.1, 3, "tanh"), ("X", "y", "params"))
    if isinstance(result, (tuple, list)) and len(result) == 2:
        watch.no_graph(where, list(result[1]), "losses")
        returned = result[0]
        # the spec's train() updates the caller's leaves in place (an optimizer holds them, as torch.optim does)
        if isinstance(returned, (list, tuple)) and len(returned) == len(params) and \
                all(isinstance(t, torch.Tensor) and t.shape == q.shape for t, q in zip(returned, params)) and \
                any(not torch.equal(t.detach(), q.detach()) for t, q in zip(returned, params)):
            watch.violation(where, "the params train() returned are not the caller's, which it left as they were: "
                                   "it rebinds new tensors instead of updating the leaves in place; update them as "
                                   "the spec says (with torch.no_grad(): p -= lr * p.grad), so that whoever holds "
                                   "them (an optimizer, the caller) sees the training")
    # and in the very memory the caller's leaves have: a view taken before the call sees the update (blind round 8's
    # p.data = p.data - lr * p.grad, which gives each leaf new memory, passed the probe above)
    where = "train() (n=16, sizes [2, 4, 1], 3 steps), a view of each parameter taken before the call"
    watch.probed.append(where)
    params = leaves(harness_params(seed, [2, 4, 1]))
    with own_network(sub):
        stale = sub.run_local(trained_in_place_here, sub.get("train"), X, y, params, 0.1, 3, "tanh")
    if isinstance(stale, list) and stale and isinstance(stale[0], int) and 0 <= stale[0] < len(params):
        i = stale[0]
        watch.violation(where, f"after train(), a view of params[{i}] ({_names(params)[i]}) taken before "
                               f"the call (params[{i}].detach(), sharing its memory) does not see its new values: the "
                               "update gave the parameter new memory (p.data = p.data - lr * p.grad, or p.data = new), "
                               "which leaves every view and alias of it stale (a tied weight, an optimizer's state "
                               "keyed on it). Update in place: with torch.no_grad(): p -= lr * p.grad")
    # the signature's defaults (activation='tanh' for both): left out, the function must do what it does with
    # the spec's default given (blind round 7: train() defaulting to 'sigmoid'). Each judged alone: mlp_forward
    # with the harness's layers, train() with the harness's mlp_forward and loss
    Xd = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    with own_layers(sub):
        keeps_defaults(sub, "mlp_forward", lambda: (Xd.clone(), harness_params(seed, [2, 5, 3, 1])),
                       "mlp_forward(X 5x2, params of a 2-5-3-1 network)", watch)
    with own_network(sub):
        keeps_defaults(sub, "train", lambda: (X.clone(), y.clone(), leaves(harness_params(seed, [2, 4, 1])), 0.1, 3),
                       "train() (n=16, sizes [2, 4, 1], lr 0.1, 3 steps)", watch)
    return watch.measurement()


# ---- placement: every Function's forward and hand backward, the loss and the MLP follow the inputs' device ----

# (API name, what is differentiated, in order): each run alone (graders/sandbox/student.py applies the forbid
# rules of the API names a message hands over to all of it)
PLACED = (("Linear", ("X", "W", "b")), ("Sigmoid", ("x",)), ("Tanh", ("x",)), ("ReLU", ("x",)),
          ("Softplus", ("x",)), ("loss", ("logits",)), ("mlp_forward", ("X", "W1", "b1", "W2", "b2")))


def placed_here(obj, name, seed, with_values=False):
    """In the student's process (sub.run_local): the API name `name` of PLACED (`obj`: a Function, whose
    .apply is called, or a function) on float64 inputs on the meta device, then the backward of
    <output, output> / 2 (an incoming gradient of the output's own values: full, neither ones nor expanded)
    to each input that is differentiated, through the student's hand backward; where the output and each
    gradient are, by name (its device, or its type when it is not a tensor). mlp_forward runs with every
    activation, through the student's own Functions. Meta tensors are made there only, so this process
    does not import torch's meta kernels. `with_values`: placement's second run, where the meta one
    stopped at a value read (a mask by boolean indexing, an overflow guard read with .item()): the same on
    a device with values (graders/kinds/elsewhere.py)."""
    with values_run_there(with_values):
        return _placed_here(obj, name, seed)


def _placed_here(obj, name, seed):
    g = torch.Generator().manual_seed(seed)

    def made(*shape):  # |x| in [0.1, 3], both signs: away from ReLU's kink
        x = (0.1 + 2.9 * torch.rand(*shape, generator=g, dtype=torch.float64)) * torch.sign(
            torch.randn(*shape, generator=g, dtype=torch.float64))
        return x.to("meta").requires_grad_(True)
    outputs = {}

    def run(what, fn, inputs, names):
        out = outputs[what] = fn(*inputs)
        if isinstance(out, torch.Tensor) and out.requires_grad:  # (a cut graph is the gradient checks' finding)
            # allow_unused: an input given no gradient is the gradient checks' finding (or the invariants')
            grads = torch.autograd.grad((out * out).sum() / 2, inputs, allow_unused=True)
            outputs.update({f"the gradient of {n} through {what}": gr for n, gr in zip(names, grads) if gr is not None})
    if name == "Linear":
        run("Linear.apply(X, W, b)", obj.apply, [made(4, 3), made(3, 2), made(2)], ["X", "W", "b"])
    elif name == "loss":
        y = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64).to("meta")
        run("loss(logits, y)", lambda z: obj(z, y), [made(4, 1)], ["logits"])
    elif name == "mlp_forward":
        for activation in ACTIVATIONS:
            X = made(4, 2).detach()  # (the data needs no gradient)
            run(f"mlp_forward(X, params, {activation!r})", lambda *ps, a=activation: obj(X, list(ps), a),
                [made(2, 3), made(3), made(3, 1), made(1)], ["W1", "b1", "W2", "b2"])
    else:
        run(f"{name}.apply(x)", obj.apply, [made(4, 3)], ["x"])
    return {what: str(t.device) if isinstance(t, torch.Tensor) else type(t).__name__ for what, t in outputs.items()}



def placement(sub, seed, p):
    measured, running = placed_in_student(sub, [(name, sub.get(name)) for name, _ in PLACED], placed_here, seed)
    if "error" in measured and running:
        measured["error"] += (f", in {running}'s forward or backward" if running[0].isupper() else
                              f", in {running}() or its backward")
    return measured
