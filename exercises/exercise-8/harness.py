"""exercise-8 probes: convolutions and max-pooling by hand, then a small CNN on the 8x8 digits.

Every input and initialisation is built here from the seed; torch's own ops (F.conv2d, F.max_pool2d
and their autograd) give the targets of the agreement checks.
"""

import functools
import gzip
import importlib.util
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dldiy.graders.api import ApiError, expect_history, expect_tensor
from dldiy.graders.api import built_inside as _inside
from dldiy.graders.batched import bound, function_blocks
from dldiy.graders.data import seeded_once
from dldiy.graders.kinds.invariants import (Watch, backward_kept, same_first_step, fresh_from_leftover_grads, reordered,
                                           takes_every_step, trains_in_place)
from dldiy.graders.sandbox.endpoint import RemoteError
from dldiy.graders.kinds.parity import measure_parity
from dldiy.graders.kinds.first_loss import short_run
from dldiy.graders.kinds.placement import Placed, measure_placement, values_run, values_run_there


# ---- data -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)  # read once per process, not once per seed: every use indexes a copy out of it
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 digits shipped inside scikit-learn, pixels scaled to [0, 1], without importing
    sklearn (its import alone costs about a second): the same file sklearn.datasets.load_digits reads."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as sklearn_digits  # the slow, documented way

        d = sklearn_digits()
        return d.data / 16.0, d.target.astype(np.int64)
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",")
    return raw[:, :-1] / 16.0, raw[:, -1].astype(np.int64)


def _digits_split(seed: int, n_train: int):
    X, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(X))
    X = torch.tensor(X[order], dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y[order])
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _init_params(seed: int, channels: int, dtype=torch.float32, device="cpu") -> dict:
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for conv and linear layers."""
    rng = np.random.default_rng(seed + 10_000)
    def u(shape, fan_in):
        bound = 1 / np.sqrt(fan_in)
        return torch.tensor(rng.uniform(-bound, bound, shape), dtype=dtype, device=device).requires_grad_(True)
    flat = channels * 4 * 4
    return {"conv_w": u((channels, 1, 3, 3), 9), "conv_b": u((channels,), 9),
            "fc_w": u((10, flat), flat), "fc_b": u((10,), flat)}


# ---- the harness's own ops (torch's autograd; no F.conv2d, which the spec forbids in the code calling them) --

def own_conv2d(x, weight, bias, stride=1, padding=0):
    """The cross-correlation as one product with F.unfold's columns, differentiated by autograd."""
    N, _, H, W = x.shape
    K, C, kh, kw = weight.shape
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, Ho*Wo)
    return (weight.reshape(K, -1) @ cols).reshape(N, K, Ho, Wo) + bias.reshape(1, K, 1, 1)


def own_max_pool2d(x):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).amax(dim=(3, 5))


def own_cnn_forward(params, x):
    h = own_max_pool2d(torch.relu(own_conv2d(x, params["conv_w"], params["conv_b"], 1, 1)))
    return h.flatten(1) @ params["fc_w"].t() + params["fc_b"]




def harness_cnn_forward():
    return own_cnn_forward


def _train(sub, seed, p, steps, leftover=False):
    """train() judged on its own: the cnn_forward it calls is the harness's (a wrong conv2d costs the
    conv checks, not train()'s). `leftover`: every parameter arrives with a .grad already (seeded), as an
    earlier backward leaves it."""
    Xtr, ytr, Xte, yte = _digits_split(seed, p["n_train"])
    Xtr = Xtr * p["scale"] if p.get("scale") else Xtr  # images that many times brighter: logits that much larger
    dtype = getattr(torch, p.get("dtype", "float32"))  # a float64 run: the whole training in float64
    # in a seeded order of the keys, not the docstring's: a train() that reads the dict by its order is seen
    params = reordered(_init_params(seed, p["channels"], dtype), seed)
    Xtr = Xtr.to(dtype)
    if leftover:
        gen = torch.Generator().manual_seed(seed + 20_000)
        for q in params.values():
            q.grad = torch.randn(q.shape, generator=gen, dtype=q.dtype)
    with sub.replaced("cnn_forward", _inside(sub, harness_cnn_forward)):
        result = sub.call("train", params, Xtr, ytr, p["lr"], steps, p["batch_size"])
    if not isinstance(result, tuple) or len(result) != 2:
        raise ApiError("train() must return (params, losses)")
    params, losses = result
    losses = expect_history(losses, steps)
    return params, losses, Xte, yte


# ---- agreement with torch ---------------------------------------------------------------------------

def _tensor(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def _case(name, measured, target):
    try:  # a wrong shape or dtype is this configuration's failure, in words
        measured = expect_tensor(measured, name, shape=tuple(target.shape), dtype="float")
    except ApiError as e:
        return {"name": name, "error": str(e).removeprefix(name + " ")}
    return {"name": name, "shape": list(target.shape), "values": measured.detach().reshape(-1).tolist(),
            "target": target.detach().reshape(-1).tolist()}


def _with_grads(fn, inputs, cotangent):
    """fn(*inputs) and the gradients of <fn(*inputs), cotangent> with respect to each input."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(cotangent.shape):
        return out, [None] * len(inputs)  # _case reports the wrong shape
    if not out.requires_grad:
        raise ApiError("the output does not require grad: is the result built with torch.autograd.Function.apply?")
    # <out, cotangent> as a scalar: an explicit grad_outputs makes torch import sympy (0.3-0.9 s)
    return out, torch.autograd.grad((out * cotangent).sum(), inputs, allow_unused=True)


def _first_line(e):
    return str(e).splitlines()[0] if str(e) else ""


def _strided(x):
    """The same values in a non-contiguous layout (height and width transposed in memory)."""
    return x.transpose(-1, -2).contiguous().transpose(-1, -2)


def harness_strided(x):
    return _strided(x.detach().clone())


def harness_channels_last(x):
    """The same values with the channels innermost in memory (torch.channels_last, the layout vision
    pipelines use): x.view(N * C, ...) cannot merge N and C there."""
    return x.detach().clone().contiguous(memory_format=torch.channels_last)


# layouts built in the submission's process (a layout does not survive a copy to another process)
LAYOUTS = (("height and width transposed in memory", harness_strided), ("channels last in memory", harness_channels_last))


def _laid_out_there(sub, config, call, target, inputs):
    """Output cases of `call` on `inputs` laid out, where the submission runs, in each of LAYOUTS."""
    cases = []
    for layout, build in LAYOUTS:
        name = f"{config}, {layout}: output (laid out where the submission runs)"
        try:
            cases.append(_case(name, call(*(_inside(sub, build, x) for x in inputs)), target))
        except Exception as e:  # noqa: BLE001 - this configuration's failure, in words
            cases.append({"name": name, "error": f"raised {type(e).__name__}: {_first_line(e)}"})
    return cases


# A non-contiguous upstream gradient: the output used through a transposed view downstream, so that
# autograd hands backward grad_output.transpose(-1, -2) of a contiguous tensor (a layout a copy to
# another process does not keep: built where the submission runs). Probes of non-contiguous inputs
# never reach backward's grad_output: a grad_output.view(...) passed them all (red team, round 12).
UPSTREAM = "non-contiguous upstream gradient (the output used through a transposed view downstream)"


def transposed_upstream_here(fn, inputs, cotangent):
    """In the student's process (sub.run_local): the gradients of <fn(*inputs), cotangent> w.r.t. each
    input, taken as (out.transpose(-1, -2) * r).sum() with r the transposed cotangent laid out
    contiguously, so that fn's backward receives the cotangent's values as a transposed (non-contiguous)
    view. A list (None for an unused input), None when the forward gave nothing to differentiate (the
    other cases report it), or the error's first line when backward raised."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    try:
        out = fn(*leaves)
    except Exception:  # noqa: BLE001 - the forward's failure is the plain cases' to report
        return None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(cotangent.shape) or not out.requires_grad:
        return None
    r = cotangent.transpose(-1, -2).contiguous()
    try:
        grads = torch.autograd.grad((out.transpose(-1, -2) * r).sum(), leaves, allow_unused=True)
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
    return [None if g is None else g.detach() for g in grads]


def _upstream_cases(sub, config, fn, target_fn, inputs, input_names, gen):
    """Cases for fn's gradients when its backward receives a non-contiguous upstream gradient (a
    transposed view), against torch's target_fn's gradients for the same cotangent's values."""
    with torch.no_grad():
        cotangent = _tensor(gen, *target_fn(*inputs).shape)
    _, targets = _with_grads(target_fn, inputs, cotangent)
    got = sub.run_local(transposed_upstream_here, fn, list(inputs), cotangent)
    name = f"{config}, {UPSTREAM}"
    if got is None:  # the forward's failure, which the plain cases of this configuration report first
        return [{"name": f"{name}: {what}'s gradient", "error": "the forward gave no output to differentiate"}
                for what in input_names]
    if isinstance(got, str):  # the same error for every input: the first one's case says it
        return [{"name": f"{name}: {what}'s gradient", "error": (
            f"backward raised {got[:300].rstrip('.')}; no gradient came back, where the same gradient laid out "
            "contiguously gives one: grad_output can arrive in any memory layout (here a transposed view, as out.transpose(2, 3) "
            "downstream hands back), where view() cannot merge its dimensions (a grad_output.view(...)?)")}
                for what in input_names]
    if not isinstance(got, list) or len(got) != len(inputs):
        raise ApiError(f"{name}: the gradients came back malformed")
    cases = []
    for what, g, t in zip(input_names, got, targets):
        if g is None:
            cases.append({"name": f"{name}: {what}'s gradient", "error": "backward returned no gradient for it"})
            continue
        cases.append(_case(f"{name}: {what}'s gradient", g, t))
    return cases


def _agreement(name, fn, target_fn, inputs, input_names, gen, first=True):
    """Cases for fn's output and its gradients against torch's target_fn, on the same inputs. A
    configuration other than the first that raises is that configuration's failure, in words."""
    with torch.no_grad():
        cotangent = _tensor(gen, *target_fn(*inputs).shape)
    target, target_grads = _with_grads(target_fn, inputs, cotangent)
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    try:  # forward and backward apart: an error in backward is not the output's
        got = fn(*leaves)
    except Exception as e:  # noqa: BLE001
        if first:
            raise
        return [{"name": f"{name}: output", "error": f"raised {type(e).__name__}: {_first_line(e)}"}]
    cases = [_case(f"{name}: output", got, target)]
    if "error" in cases[0]:
        return cases  # a wrong output shape: no gradient to compare
    if not got.requires_grad:
        detached = "the output does not require grad: is the result built with torch.autograd.Function.apply?"
        if first:
            raise ApiError(detached)
        return cases + [{"name": f"{name}: gradient of {what}", "error": detached} for what in input_names]
    try:
        got_grads = torch.autograd.grad((got * cotangent).sum(), leaves, allow_unused=True)
    except Exception as e:  # noqa: BLE001
        if first:
            raise
        # judged after the output's case: read only when the forward ran and agreed. Autograd's "invalid gradient
        # at index i" names the input whose gradient backward got wrong: said first, under that input's name
        # (a bias gradient squeezed to 0-dim: blind red team, round 7)
        found = re.search(r"invalid gradient at index (\d+)", str(e))
        index = int(found.group(1)) if found else -1
        if 0 <= index < len(input_names):
            blamed = input_names[index]
            return cases + [{"name": f"{name}: gradient of {what}", "error": (
                f"the gradient backward returned for {blamed} (index {index}) has the wrong shape or dtype, so autograd "
                f"raised and no gradient came back{'' if what == blamed else f' (for {what} either)'}, while the output "
                f"agrees: {_first_line(e)}")} for what in input_names]
        return cases + [{"name": f"{name}: gradient of {what}", "error": f"backward raised {type(e).__name__}, so no "
                         f"gradient ({' or '.join(input_names)}) came back, while the output agrees: {_first_line(e)}"}
                        for what in input_names]
    for what, g, t in zip(input_names, got_grads, target_grads):
        if g is None:
            cases.append({"name": f"{name}: gradient of {what}", "error": "backward returned no gradient for it"})
            continue
        cases.append(_case(f"{name}: gradient of {what}", g, t))
    return cases


def conv_agreement(sub, seed, p):
    """Output and the three gradients of the hand conv2d against F.conv2d, per configuration."""
    conv2d = sub.get("conv2d")
    cases = []
    strided = set(p.get("strided", []))
    for i, (N, C, H, W, K, kh, kw, stride, padding) in enumerate(p["grid"]):
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        inputs = (_tensor(gen, N, C, H, W), _tensor(gen, K, C, kh, kw), _tensor(gen, K))
        config = f"x {N}x{C}x{H}x{W}, weight {K}x{C}x{kh}x{kw}, stride {stride}, padding {padding}" + \
            (f" (a {kh}x{kw} kernel: kh != kw)" if kh != kw else "")
        if i in strided:
            inputs = (_strided(inputs[0]), _strided(inputs[1]), inputs[2])
            config += ", non-contiguous x and weight"
            x, w, b = inputs
            cases += _laid_out_there(sub, config, lambda x, w: conv2d(x, w, b, stride, padding),
                                     F.conv2d(x, w, b, stride=stride, padding=padding), (x, w))
        cases += _agreement(config, lambda x, w, b: conv2d(x, w, b, stride, padding),
                            lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
                            inputs, ("x", "weight", "bias"), gen, first=i == 0)
    for N, C, H, W, K, kh, kw in p.get("defaults_grid", []):  # conv2d(x, weight, bias): the signature's defaults
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        inputs = (_tensor(gen, N, C, H, W), _tensor(gen, K, C, kh, kw), _tensor(gen, K))
        config = f"x {N}x{C}x{H}x{W}, weight {K}x{C}x{kh}x{kw}, stride and padding not given (defaults 1 and 0)"
        cases += _agreement(config, lambda x, w, b: conv2d(x, w, b), F.conv2d, inputs, ("x", "weight", "bias"), gen,
                            first=False)
    # backward given a non-contiguous upstream gradient (after every plain case: a wrong formula is said there first)
    for i in p.get("transposed_gradient", []):
        N, C, H, W, K, kh, kw, stride, padding = p["grid"][i]
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        inputs = (_tensor(gen, N, C, H, W), _tensor(gen, K, C, kh, kw), _tensor(gen, K))
        cases += _upstream_cases(sub, f"x {N}x{C}x{H}x{W}, weight {K}x{C}x{kh}x{kw}, stride {stride}, padding {padding}",
                                 _inside(sub, bound, conv2d, [stride, padding], {}),
                                 lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), inputs,
                                 ("x", "weight", "bias"), gen)
    return {"cases": cases}


def pool_agreement(sub, seed, p):
    """Output and input gradient of the hand 2x2 max-pooling against F.max_pool2d(x, 2)."""
    max_pool2d = sub.get("max_pool2d")
    cases = []
    strided, negative = set(p.get("strided", [])), set(p.get("negative", []))
    for i, (N, C, H, W) in enumerate(p["grid"]):
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        x, config = _tensor(gen, N, C, H, W), f"x {N}x{C}x{H}x{W}"
        if i in negative:  # a running max started at 0 never sees these
            x, config = -x.abs() - 1, config + ", every entry negative"
        if i in strided:
            x, config = _strided(x), config + ", non-contiguous"
        cases += _agreement(config, max_pool2d, lambda x: F.max_pool2d(x, 2), (x,), ("x",), gen, first=i == 0)
        if i in strided:
            cases += _laid_out_there(sub, config, max_pool2d, F.max_pool2d(x, 2), (x,))
    cases += _ties(max_pool2d)
    # backward given a non-contiguous upstream gradient (after every plain case: a wrong routing is said there first)
    for i in p.get("transposed_gradient", []):
        N, C, H, W = p["grid"][i]
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        cases += _upstream_cases(sub, f"x {N}x{C}x{H}x{W}", max_pool2d, lambda x: F.max_pool2d(x, 2),
                                 (_tensor(gen, N, C, H, W),), ("x",), gen)
    # entries far below any starting "minus infinity" (a running max from -1e9, -1e30 or float32's lowest): one
    # channel each at -1e10, -1e30 and -1e300 times (|x| + 1); torch, and a max over each window, return them
    for N, C, H, W in p.get("far_below", []):
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        scale = torch.tensor([10.0, 30.0, 300.0], dtype=torch.float64)[torch.arange(C) % 3].reshape(1, C, 1, 1)
        x = -(_tensor(gen, N, C, H, W).abs() + 1) * 10 ** scale
        cases += _agreement(f"x {N}x{C}x{H}x{W}, entries far below any starting sentinel (-1e10, -1e30 and -1e300 "
                            "times 1 to 4, a channel each)", max_pool2d, lambda x: F.max_pool2d(x, 2), (x,), ("x",),
                            gen, first=False)
    # magnitudes far apart inside one window: the maximum a plain number, the three others -1e8 to -1e20 times 1 to 4;
    # a maximum is a selection, exact at any magnitude, where max(a, b) = (a + b + |a - b|) / 2 cancels (0 for 1
    # beside -1e20: blind red team, round 9)
    for N, C, H, W in p.get("far_apart", []):
        gen = torch.Generator().manual_seed(seed * 1000 + len(cases))
        cases += _agreement(f"x {N}x{C}x{H}x{W}, {FAR_APART}", max_pool2d, lambda x: F.max_pool2d(x, 2),
                            (_far_apart(gen, N, C, H, W),), ("x",), gen, first=False)
    cases.append(_nan_windows(max_pool2d, torch.Generator().manual_seed(seed * 1000 + len(cases))))
    return {"cases": cases}


FAR_APART = "magnitudes far apart in each window (its maximum between -3 and 3, the other three -1e8 to -1e20)"


def _far_apart(gen, N, C, H, W):
    """x (N, C, H, W) whose 2x2 window k holds its maximum, a number between -3 and 3, at place k % 4 (each
    place in turn), and three entries of -(1 to 4) x 10^(8, 12, 16 or 20) (by window, in turn)."""
    windows = -(_tensor(gen, N, C, H // 2, W // 2, 4).abs() + 1)
    k = torch.arange(N * C * (H // 2) * (W // 2)).reshape(N, C, H // 2, W // 2)
    windows = windows * 10.0 ** (8 + 4 * (k % 4)).unsqueeze(-1).double()
    top = (_tensor(gen, N, C, H // 2, W // 2).clamp(-3, 3)).unsqueeze(-1)
    windows = windows.scatter(-1, (k % 4).unsqueeze(-1), top)
    return windows.reshape(N, C, H // 2, W // 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(N, C, H, W).contiguous()


def _nan_windows(max_pool2d, gen):
    """A NaN in six of eight windows, at each of the four places of a window: F.max_pool2d (and torch.max,
    amax) give NaN for those windows, a pairwise torch.where(b > a, b, a) keeps a number wherever the NaN is not its
    window's first entry (blind red team, round 8). The output only: which entry a NaN's gradient goes to, the spec
    does not say."""
    x = _tensor(gen, 1, 2, 4, 4)
    # (channel, row, column): at the places (0, 0), (1, 1), (0, 0), (1, 1), (0, 1) and (1, 0) of their windows
    for c, i, j in ((0, 0, 0), (0, 1, 3), (1, 2, 0), (1, 3, 3), (0, 2, 1), (1, 1, 2)):
        x[0, c, i, j] = float("nan")
    name = "x 1x2x4x4 holding a NaN in 6 of its 8 windows (at each place of a window): outputs that are NaN (1) or numbers (0)"
    want = F.max_pool2d(x, 2).isnan().double()
    try:
        with torch.no_grad():
            got = expect_tensor(max_pool2d(x), "max_pool2d(x)", shape=tuple(want.shape), dtype="float", finite=False)
    except Exception as e:  # noqa: BLE001 - this case's failure, in words
        return {"name": name, "error": f"raised {type(e).__name__}: {_first_line(e)}"}
    return {"name": name, "shape": list(want.shape), "values": got.detach().isnan().double().reshape(-1).tolist(),
            "target": want.reshape(-1).tolist()}


def _ties(max_pool2d):
    """Every window holds tied maxima (two, or four zeros, as a ReLU before the pooling leaves them): torch
    routes the gradient to one of them, another tied maximum is as right (the spec's "its window's
    argmax"), so what is compared is what any right routing gives: each window passes on its output's
    gradient (1) exactly once, nothing to a non-maximum, and all of it to ONE entry (not shared among the
    tied maxima: a mask divided by the number of ties pays each a part, which sums to 1 as well)."""
    x = torch.tensor([[3.0, 3.0, -1.0, 2.0], [1.0, 0.0, 2.0, -5.0], [0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 1.0, 4.0]],
                     dtype=torch.float64).reshape(1, 1, 4, 4)
    name = "x 1x1x4x4 with tied maxima in each window"
    try:
        xs = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(max_pool2d(xs).sum(), xs)
    except Exception as e:  # noqa: BLE001
        return [{"name": f"{name}: gradient", "error": f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}]
    g = expect_tensor(g, f"{name}: gradient", shape=(1, 1, 4, 4)).detach().double().reshape(2, 2, 2, 2).permute(0, 2, 1, 3).reshape(4, 4)
    windows = x.reshape(2, 2, 2, 2).permute(0, 2, 1, 3).reshape(4, 4)
    off_max = (g * (windows != windows.amax(dim=1, keepdim=True))).abs().sum(dim=1)
    return [{"name": f"{name}: gradient passed on by each window (once: 1)", "shape": [4], "values": g.sum(dim=1).tolist(),
             "target": [1.0] * 4},
            {"name": f"{name}: gradient sent to non-maxima, per window", "shape": [4], "values": off_max.tolist(),
             "target": [0.0] * 4},
            {"name": f"{name}: entries given a part of the gradient, per window (one of the tied maxima: 1)",
             "shape": [4], "values": (g != 0).sum(dim=1).double().tolist(), "target": [1.0] * 4}]


def gradcheck(sub, seed, p):
    """Jacobians through the hand backward against central differences of the hand forward (float64),
    one message per configuration (graders/batched.py): the points and the differences are the harness's."""
    conv2d, max_pool2d = sub.get("conv2d"), sub.get("max_pool2d")
    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for i, (N, C, H, W, K, kh, kw, stride, padding) in enumerate(p["conv_grid"]):
        config = f"stride {stride}, padding {padding}, kernel {kh}x{kw}"
        inputs = (_tensor(gen, N, C, H, W), _tensor(gen, K, C, kh, kw), _tensor(gen, K))
        names = [f"conv2d {n} ({config})" for n in ("x", "weight", "bias")]
        try:
            blocks += function_blocks(sub, _inside(sub, bound, conv2d, [stride, padding], {}), inputs, names,
                                      exact=lambda x, w, b, s=stride, q=padding: F.conv2d(x, w, b, stride=s, padding=q))
        except Exception as e:  # noqa: BLE001 - a configuration other than the first: its failure, in words
            if i == 0:
                raise
            where = _which_raised(sub, conv2d, inputs, stride, padding)
            if where == "forward":
                # a forward that raises at this stride and padding is conv-agreement's finding (its grid holds
                # them): one bug, one deduction; this check judges backward wherever the forward runs
                continue
            blocks.append({"name": names[0], "raised_in": where, "error": (
                "backward (the forward runs on these inputs)" + f" raised {type(e).__name__}: {_first_line(e)}")})
    for N, C, H, W in p["pool_grid"]:
        # positive entries: every window's maximum is positive, so a forward wrong on all-negative windows (a
        # running max started at 0) is pool-agreement's finding alone (its all-negative row), not this one's too
        blocks += function_blocks(sub, max_pool2d, (_tensor(gen, N, C, H, W).abs() + 0.1,),
                                  [f"max_pool2d x ({N}x{C}x{H}x{W})"], exact=lambda x: F.max_pool2d(x, 2))
    return {"blocks": blocks}


def _which_raised(sub, conv2d, inputs, stride, padding):
    """After conv2d failed under gradcheck: "backward" when its forward alone runs on these inputs, else
    "forward" (an error in backward is not the output's, nor one in forward the hand gradient's)."""
    try:
        sub.run_local(_forward_only, _inside(sub, bound, conv2d, [stride, padding], {}), list(inputs))
    except Exception:  # noqa: BLE001 - the forward raises too
        return "forward"
    return "backward"


def _forward_only(fn, inputs):
    with torch.no_grad():
        fn(*inputs)
    return None


def equivariance(sub, seed, p):
    """conv(shift(x)) - shift'(conv(x)) on an image whose content sits away from the borders, where
    shift' moves by (dy, dx) / stride. A convolution is translation-equivariant: every entry is 0."""
    conv2d = sub.get("conv2d")
    gen = torch.Generator().manual_seed(seed)
    size, margin = p["size"], p["margin"]
    x = torch.zeros(1, 2, size, size, dtype=torch.float64)
    x[..., margin:size - margin, margin:size - margin] = _tensor(gen, 1, 2, size - 2 * margin, size - 2 * margin)
    w, b = _tensor(gen, 3, 2, 3, 3), _tensor(gen, 3)
    cases = []
    for dy, dx, stride in p["shifts"]:
        with torch.no_grad():
            out = expect_tensor(conv2d(x, w, b, stride, 1), "conv2d(x)", dtype="float")
            shifted = expect_tensor(conv2d(torch.roll(x, (dy, dx), (2, 3)), w, b, stride, 1), "conv2d(shift(x))",
                                    shape=tuple(out.shape), dtype="float")
        residual = shifted - torch.roll(out, (dy // stride, dx // stride), (2, 3))
        cases.append({"name": f"shift by ({dy}, {dx}), stride {stride}: conv(shift(x)) - shift(conv(x))",
                      "shape": list(residual.shape), "values": residual.reshape(-1).tolist()})
    return {"cases": cases}


# ---- the CNN on digits ------------------------------------------------------------------------------

def first_loss(sub, seed, p):
    steps = p["steps"]
    _, losses, _, _ = _train(sub, seed, p, max(steps) + 1)
    runs = [short_run(lambda: _train(sub, seed, {**p, **run}, run["steps"])[1],
                       f"{run['n_train']} training images" + (f" {run['scale']:g} times brighter" if run.get("scale") else "")
                       + (f", {run['dtype']} images and parameters" if run.get("dtype") else "")
                       + f" and batch_size {run['batch_size']}" + (f", lr = {run['lr']:g}" if "lr" in run else "")
                       + (f" ({run['why']})" if run.get("why") else ""))
            for run in p.get("runs", [])]
    # 16 examples, all of them every batch (batch k holds rows (k * n + i) mod n): each step sees the same loss
    takes_every_step(lambda lr, count: _train(sub, seed, {**p, "lr": lr, "n_train": 16, "batch_size": 16}, count), once_for=sub)
    fresh_from_leftover_grads(lambda leftover: _train(sub, seed, {**p, **_LEFTOVER_RUN}, 2, leftover)[:2])
    if sub.first_time("trains-in-place"):  # once per student's process: the contract, not the seed's values
        Xtr, ytr, _, _ = _digits_split(seed, _LEFTOVER_RUN["n_train"])
        with sub.replaced("cnn_forward", _inside(sub, harness_cnn_forward)):
            trains_in_place(sub, (_init_params(seed, p["channels"]), Xtr, ytr, p["lr"], 2, _LEFTOVER_RUN["batch_size"]))
    return {"steps": steps, "losses": [losses[k] for k in steps], "n": p["batch_size"], "runs": runs}


# first-loss's run from parameters that arrive with a leftover .grad: 2 steps (the first update shows in losses[1]
# and in the weights returned)
_LEFTOVER_RUN = {"n_train": 24, "batch_size": 8}


def convergence(sub, seed, p):
    params, losses, Xte, yte = _train(sub, seed, p, p["budget"])
    if not isinstance(params, dict) or set(params) != {"conv_w", "conv_b", "fc_w", "fc_b"}:
        raise ApiError("train() must return (params, losses), params the dict it was given")
    with torch.no_grad():  # the test accuracy, computed here (trusted) from the trained parameters
        logits = own_cnn_forward({k: expect_tensor(v, f"train()'s params[{k!r}]", dtype="float").detach()
                                  for k, v in params.items()}, Xte)
    accuracy = (logits.argmax(1) == yte).double().mean().item()
    try:  # only for the picture of the learned filters: never a reason to fail the check
        filters = expect_tensor(params["conv_w"], "conv_w", dtype="float").detach().double().tolist()
    except Exception:  # noqa: BLE001
        filters = None
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)],
            "filters": filters}


def _device_run(sub, seed):
    def run(device):
        X, y, _, _ = _digits_split(seed, 16)
        X, y = X.to(device), y.to(device)
        params = _init_params(seed, 4, device=device)
        logits = sub.get("cnn_forward")(params, X)
        loss = F.cross_entropy(logits, y)
        # allow_unused: a parameter the backward gives no gradient is the gradient checks' finding (or the
        # invariants'), not a device problem
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return {"logits": logits, **{f"gradient of {k}": g for k, g in zip(params, grads) if g is not None}}
    return run


def devices_on(cnn_forward, X, y, params, device, with_values=False):
    """_device_run's forward and backward, run where the submission runs (sub.run_local) on inputs
    moved to `device` there: on `meta`, ops go through torch's Python meta registrations, whose first
    use imports torch's symbolic shapes and sympy (0.3-0.5 s), so only that process pays it. What
    comes back is where each output is (its device, or its type when it is not a tensor).
    `with_values`: placement's second run, where the meta one stopped at a value read (a guard's
    `float(x.max())`): the same on a device with values (graders/kinds/elsewhere.py)."""
    with values_run_there(with_values):
        return _devices_on(cnn_forward, X, y, params, device)


def _devices_on(cnn_forward, X, y, params, device):
    X, y = X.to(device), y.to(device)
    params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
    leaves = dict(params)  # taken before the call: a key cnn_forward adds to the dict is cnn-forward's finding
    logits = cnn_forward(params, X)
    # allow_unused: a parameter the backward gives no gradient (a needs_input_grad mix-up) is the invariants'
    # finding, not a device problem
    grads = torch.autograd.grad(F.cross_entropy(logits, y), list(leaves.values()), allow_unused=True)
    outputs = {"logits": logits, **{f"gradient of {k}": g for k, g in zip(leaves, grads) if g is not None}}
    return {k: str(v.device) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in outputs.items()}



def placement(sub, seed, p):
    X, y, _, _ = _digits_split(seed, 16)
    params = {k: v.detach() for k, v in _init_params(seed, 4).items()}

    def run(device):
        # (measure_placement's second run, with values, is passed on to the student's process)
        placed = sub.run_local(devices_on, sub.get("cnn_forward"), X, y, params, device, values_run())
        if not isinstance(placed, dict) or "logits" not in placed or \
                not set(placed) <= {"logits", *(f"gradient of {k}" for k in params)}:
            raise ApiError("the placement probe got a malformed reply")
        return {k: Placed(v) for k, v in placed.items()}
    return measure_placement(run)


def parity(sub, seed, p):
    return measure_parity(_device_run(sub, seed))


# ---- cnn_forward on its own, built from the student's ops ----------------------------------------------

# The ops put in place of the student's are the harness's, each made slightly *wrong* on purpose
# (an affine change of its output) in one of two runs: if the logits follow the change, cnn_forward
# built them from the op it was given, on the graph the gradients then follow; if they equal the
# unchanged CNN's, it computed them some other way (torch's conv, or a decoy call beside the graph).
# Values only cross: this works the same whether the submission runs here or in its own process.

def _marked_conv2d(x, weight, bias, stride=1, padding=0):
    return 1.5 * own_conv2d(x, weight, bias, stride, padding) + 0.25


def _marked_max_pool2d(x):
    # a positive scale only: it commutes with ReLU as max pooling does, so a CNN that pools before its
    # ReLU (the same function) is judged the same; an offset would not commute
    return 1.25 * own_max_pool2d(x)


class _Apply:
    """An object with .apply, like an autograd.Function: cnn_forward may call Conv2dFunction.apply."""

    def __init__(self, fn):
        self.apply = fn


def harness_op(name, marked):
    """The harness's op under the submission's name `name`, marked (changed on purpose) or not."""
    conv, pool = (_marked_conv2d, _marked_max_pool2d) if marked else (own_conv2d, own_max_pool2d)
    return {"conv2d": conv, "Conv2dFunction": _Apply(conv), "max_pool2d": pool, "MaxPool2dFunction": _Apply(pool)}[name]


def _cnn(params, x, conv, pool):
    h = pool(torch.relu(conv(x, params["conv_w"], params["conv_b"], 1, 1)))
    return h.flatten(1) @ params["fc_w"].t() + params["fc_b"]


def cnn_forward_probe(sub, seed, p):
    """cnn_forward with the harness's conv and pooling standing in for the submission's (under the
    names conv2d / Conv2dFunction and max_pool2d / MaxPool2dFunction), the conv marked in one run and
    the pooling in the other: its logits and gradients against the harness's CNN with the same ops."""
    X, y, _, _ = _digits_split(seed, p["n"])
    X = X.double()
    # the dict in a seeded order of its keys, not the docstring's: a cnn_forward that reads it by its order
    # (conv_w, conv_b, fc_w, fc_b = params.values()) is seen (blind red team, round 8)
    base = reordered({k: v.detach().double() for k, v in _init_params(seed, p["channels"]).items()}, seed)
    cases = []
    for marked, words in (("conv", "conv2d"), ("pool", "max_pool2d")):
        conv_marked, pool_marked = marked == "conv", marked == "pool"
        ops = {"conv2d": conv_marked, "Conv2dFunction": conv_marked, "max_pool2d": pool_marked,
               "MaxPool2dFunction": pool_marked}
        params = {k: v.clone().requires_grad_(True) for k, v in base.items()}
        with _Ops(sub, ops):
            try:
                logits = expect_tensor(sub.call("cnn_forward", params, X), "cnn_forward(params, x)",
                                       shape=(len(X), 10), dtype="float")
            except RemoteError as e:
                said = _in_order_of_keys(sub, e, base, X)
                if said is None:
                    raise
                return {"cases": [{"name": f"logits, with your {words} replaced by the harness's", "error": said}]}
            grads = torch.autograd.grad(F.cross_entropy(logits, y), list(params.values()), allow_unused=True) \
                if logits.requires_grad else [None] * len(params)
        conv = _marked_conv2d if conv_marked else own_conv2d
        pool = _marked_max_pool2d if pool_marked else own_max_pool2d
        own = {k: v.clone().requires_grad_(True) for k, v in base.items()}
        target = _cnn(own, X, conv, pool)
        target_grads = torch.autograd.grad(F.cross_entropy(target, y), list(own.values()))
        got = logits.detach().double()
        name = f"logits, with your {words} replaced by the harness's"
        if not torch.allclose(got, target.detach(), rtol=1e-6, atol=1e-8) and \
                torch.allclose(got, _cnn(base, X, own_conv2d, own_max_pool2d), rtol=1e-6, atol=1e-8):
            cases.append({"name": name, "error": f"cnn_forward did not use the {words} it was given: its logits are "
                                                 f"those of a CNN built from another {words} (torch's, or a call beside "
                                                 "the graph). Build the CNN from your own conv2d and max_pool2d, by name."})
            continue
        cases.append({"name": name, "shape": list(target.shape), "values": got.reshape(-1).tolist(),
                      "target": target.detach().reshape(-1).tolist()})
        for pname, g, t in zip(params, grads, target_grads):
            gname = f"gradient of {pname}, with your {words} replaced by the harness's"
            if g is None:
                cases.append({"name": gname, "error": "no gradient reaches it from the logits"})
                continue
            cases.append({"name": gname, "shape": list(t.shape), "values": g.double().reshape(-1).tolist(),
                          "target": t.reshape(-1).tolist()})
    # one image (N = 1): a .squeeze() before flatten(1) drops the batch dimension there (red team, round 7)
    name = "logits of a batch of one image (N = 1), with the harness's conv2d and max_pool2d"
    x1 = X[:1].clone()
    target = _cnn(base, x1, own_conv2d, own_max_pool2d)
    try:
        with _Ops(sub, dict.fromkeys(("conv2d", "Conv2dFunction", "max_pool2d", "MaxPool2dFunction"), False)):
            got = expect_tensor(sub.call("cnn_forward", base, x1), "cnn_forward(params, x) for one image",
                                shape=(1, 10), dtype="float")
        cases.append({"name": name, "shape": [1, 10], "values": got.detach().double().reshape(-1).tolist(),
                      "target": target.reshape(-1).tolist()})
    except (RemoteError, ApiError) as e:  # this case's finding (a batch dimension assumed)
        said = (e.message if isinstance(e, RemoteError) else str(e)).splitlines()
        cases.append({"name": name, "error": f"raised {said[0][:300] if said else type(e).__name__} (a .squeeze() "
                                             "that also drops the batch dimension of a single image?)"})
    cases += _other_channels(sub, seed, X[:4], p["channels"] - 1)
    cases += _relu_at_zero(sub, base, X[:3], y[:4])
    return {"cases": cases}


RELU_AT_ZERO = "ReLU's input exactly 0"


def _relu_at_zero(sub, base, X, y):
    """The gradients where ReLU's input is exactly 0: conv_b = 0 and a blank image beside three digits (whose
    borders are blank too), with the harness's conv2d and max_pool2d: every all-zero 3x3 patch gives a
    pre-activation of exactly 0, where ReLU'(0) = 0 (torch.relu, F.relu, x * (x > 0)); h.clamp(min=0) passes the
    gradient there whole, torch.maximum(h, 0) half of it (blind red team, round 9: the forward is the same, and
    every other probe's pre-activations are never exactly 0). A forward that raises here fails these cases; one
    that disagrees fails the cases above first."""
    x = torch.cat([X, torch.zeros_like(X[:1])])
    zeroed = {k: (torch.zeros_like(v) if k == "conv_b" else v) for k, v in base.items()}
    own = {k: v.clone().requires_grad_(True) for k, v in zeroed.items()}
    target_grads = torch.autograd.grad(F.cross_entropy(_cnn(own, x, own_conv2d, own_max_pool2d), y), list(own.values()))
    names = [f"gradient of {k} where {RELU_AT_ZERO} (conv_b = 0, three digits and a blank image), with the harness's "
             "conv2d and max_pool2d" for k in own]
    params = {k: v.clone().requires_grad_(True) for k, v in zeroed.items()}
    try:
        with _Ops(sub, dict.fromkeys(("conv2d", "Conv2dFunction", "max_pool2d", "MaxPool2dFunction"), False)):
            logits = expect_tensor(sub.call("cnn_forward", params, x), "cnn_forward(params, x)", shape=(len(x), 10),
                                   dtype="float")
            if not logits.requires_grad:
                raise ApiError("its logits do not require grad")
            grads = torch.autograd.grad(F.cross_entropy(logits, y), list(params.values()), allow_unused=True)
    except (RemoteError, ApiError) as e:
        said = (e.message if isinstance(e, RemoteError) else str(e)).splitlines()
        return [{"name": name, "error": f"raised {said[0][:300] if said else type(e).__name__}"} for name in names]
    hint = ("ReLU's derivative at exactly 0 is 0, as torch.relu, F.relu and x * (x > 0) have it: h.clamp(min=0) (or "
            "clamp_min) passes the whole gradient where h is exactly 0, torch.maximum(h, zeros) or (h + |h|) / 2 "
            "half of it. With conv_b = 0, every blank 3x3 patch (an image's empty border) gives exactly 0 there: "
            "write the ReLU as torch.relu(h).")
    cases = []
    for name, g, t in zip(names, grads, target_grads):
        if g is None:
            cases.append({"name": name, "error": "no gradient reaches it from the logits"})
            continue
        cases.append({"name": name, "shape": list(t.shape), "values": g.double().reshape(-1).tolist(),
                      "target": t.reshape(-1).tolist(), "hint": hint})
    return cases


def _in_order_of_keys(sub, e, params, X):
    """After cnn_forward raised `e` on `params` (the keys in a seeded order): where the same dict in the docstring's
    order runs, the order is the cause, said in words; else None (`e` is the finding)."""
    in_order = {k: params[k].detach().clone() for k in ("conv_w", "conv_b", "fc_w", "fc_b") if k in params}
    try:
        sub.call("cnn_forward", in_order, X[:2])
    except Exception:  # noqa: BLE001 - it raises in any order: e is the finding
        return None
    said = (e.message.splitlines() or [type(e).__name__])[0][:300]
    return (f"cnn_forward(params, x) raised {said} on a params dict whose keys come in another order "
            f"({', '.join(params)}), and runs on the same dict in the docstring's order: read params by its keys "
            "(params[\"conv_w\"], ...), never by their order (conv_w, conv_b, ... = params.values())")


def _other_channels(sub, seed, X, channels):
    """cnn_forward's logits with another number of channels than every other probe's (the docstring leaves it
    free: a flatten written for 4 channels, reshape(-1, 64), escaped every check: blind red team, round 8), with
    the harness's ops in place of the student's, and the params dict after the call: the same keys, holding the
    same tensors (a key added, a cached fc_w.T, is the caller's dict changed: train() then loops over it)."""
    params = reordered({k: v.detach().double() for k, v in _init_params(seed + 1, channels).items()}, seed + 1)
    target = _cnn(params, X, own_conv2d, own_max_pool2d)
    fc = tuple(params["fc_w"].shape)
    name = f"logits with {channels} conv channels (conv_w {channels}x1x3x3, fc_w {fc[0]}x{fc[1]}), with the harness's conv2d and max_pool2d"
    kept = f"the params dict after cnn_forward(params, x) ({channels} channels): the same {len(params)} keys, holding the same tensors"
    try:
        with _Ops(sub, dict.fromkeys(("conv2d", "Conv2dFunction", "max_pool2d", "MaxPool2dFunction"), False)):
            got = sub.run_local(dict_kept_here, sub.get("cnn_forward"), params, X)
    except (RemoteError, ApiError) as e:  # this case's finding (a size written out)
        said = (e.message if isinstance(e, RemoteError) else str(e)).splitlines()
        return [{"name": name, "error": f"raised {said[0][:300] if said else type(e).__name__} (a size written out "
                                        "for 4 channels, such as reshape(-1, 64)?)"}]
    if not isinstance(got, dict):
        raise ApiError("cnn_forward's run came back malformed")
    cases = [_case(name, got.get("logits"), target)]
    keys, same = got.get("keys"), got.get("same")
    if keys != list(params) or same is not True:
        added = [k for k in keys or [] if k not in params]
        gone = [k for k in params if k not in (keys or [])]
        cases.append({"name": kept, "error": (
            f"cnn_forward added {', '.join(map(repr, added))} to the caller's params dict" if added else
            f"cnn_forward removed {', '.join(map(repr, gone))} from the caller's params dict" if gone else
            "cnn_forward put other tensors in the caller's params dict") + ": an argument changed; train() then loops "
            "over the changed dict (p -= lr * p.grad meets what was added). Keep what you compute in local names."})
    else:
        cases.append({"name": kept, "shape": [1], "values": [0.0], "target": [0.0], "against": "the keys given"})
    return cases


def dict_kept_here(cnn_forward, params, x) -> dict:
    """In the student's process (sub.run_local), under no_grad: cnn_forward(params, x)'s logits, the keys of
    params after the call and whether each key given still holds the tensor it held."""
    before = dict(params)
    with torch.no_grad():
        logits = cnn_forward(params, x)
    same = all(k in params and params[k] is v for k, v in before.items())
    return {"logits": logits.detach() if isinstance(logits, torch.Tensor) else logits,
            "keys": [str(k) for k in params], "same": same}


class _Ops:
    """The four op names of the submission replaced at once by the harness's (Submission.replaced, nested)."""

    def __init__(self, sub, marked):
        self.sub, self.marked, self.stack = sub, marked, []

    def __enter__(self):
        for name, is_marked in self.marked.items():
            cm = self.sub.replaced(name, _inside(self.sub, harness_op, name, is_marked))
            cm.__enter__()
            self.stack.append(cm)

    def __exit__(self, *exc):
        while self.stack:
            self.stack.pop().__exit__(*exc)
        return False


# ---- invariants -------------------------------------------------------------------------------------------

def _contract(watch, where, fn, inputs, names):
    """float32 in, float32 out and gradients; inputs untouched; backward's contract (a gradient per
    input, None for stride and padding) kept."""
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = watch.call(where, fn, tuple(xs), names)
    watch.dtype(where, out, inputs[0].dtype)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return None
    try:
        grads = torch.autograd.grad(out.sum(), xs, allow_unused=True)
    except Exception as e:  # noqa: BLE001 - raised by the submission's backward
        if "gradient" in str(e) and ("number of" in str(e) or "not a Tensor" in str(e) or "Variable" in str(e)):
            watch.violation(where, f"backward breaks the autograd.Function contract: {str(e).splitlines()[0]} "
                                   "(one gradient per input of forward, None for stride and padding)")
        return None
    for name, g in zip(names, grads):
        watch.dtype(where, g, inputs[0].dtype, f"the gradient of {name}")
    return grads


def _interleaved(watch, where, fn, first, second):
    """fn on `first`, then on `second`, then the backward of the first call only, against the first call's
    backward alone: a backward that reads state another call's forward overwrote (kept on the class or a
    global instead of ctx) gives the first call another gradient, or fails. A network with two pooling
    layers runs two forwards before either backward."""
    alone = [x.detach().clone().requires_grad_(True) for x in first]
    try:
        want = torch.autograd.grad(fn(*alone).sum(), alone, allow_unused=True)
    except Exception:  # noqa: BLE001 - a backward that fails alone is the gradient checks' to report
        return
    xs = [x.detach().clone().requires_grad_(True) for x in first]
    ys = [y.detach().clone().requires_grad_(True) for y in second]
    watch.probed.append(where)
    try:
        out = fn(*xs)
        fn(*ys)
        got = torch.autograd.grad(out.sum(), xs, allow_unused=True)
        same = all((g is None) == (w is None) and (g is None or (g.shape == w.shape and torch.equal(g, w)))
                   for g, w in zip(got, want))
        why = "gave the first call another gradient"
    except Exception as e:  # noqa: BLE001 - the submission's backward failed on the interleaving
        same, why = False, f"made the first call's backward fail ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    if not same:
        watch.violation(where, f"a second call before the first one's backward {why}: backward reads state the second "
                               "forward overwrote. Keep what backward needs on ctx (ctx.save_for_backward, ctx.<name>), "
                               "never on the class, the module or a global: a network with two such layers runs both "
                               "forwards before either backward")


def invariants(sub, seed, p):
    gen, watch = torch.Generator().manual_seed(seed), Watch()
    conv2d, max_pool2d = sub.get("conv2d"), sub.get("max_pool2d")
    for dtype in (torch.float32, torch.float64):
        x, w, b = (_tensor(gen, *s).to(dtype) for s in ((1, 2, 5, 6), (3, 2, 3, 3), (3,)))
        _contract(watch, f"conv2d on a {str(dtype)[6:]} batch of 1 (x 1x2x5x6, stride 2, padding 1)",
                  lambda x, w, b: conv2d(x, w, b, 2, 1), (x, w, b), ("x", "weight", "bias"))
        _contract(watch, f"max_pool2d on a {str(dtype)[6:]} batch of 1 (x 1x2x4x6)", max_pool2d,
                  (_tensor(gen, 1, 2, 4, 6).to(dtype),), ("x",))
    _interleaved(watch, "max_pool2d twice (x 1x2x4x6, then 2x1x6x4), then the first one's backward", max_pool2d,
                 (_tensor(gen, 1, 2, 4, 6),), (_tensor(gen, 2, 1, 6, 4),))
    _interleaved(watch, "conv2d twice (x 1x2x5x6, then 2x2x4x4, other weights), then the first one's backward",
                 lambda x, w, b: conv2d(x, w, b, 1, 0),
                 tuple(_tensor(gen, *s) for s in ((1, 2, 5, 6), (3, 2, 3, 3), (3,))),
                 tuple(_tensor(gen, *s) for s in ((2, 2, 4, 4), (3, 2, 2, 2), (3,))))
    backward_kept(watch, sub, "conv2d (x 2x2x5x6, stride 2, padding 1), then backward twice on that one forward",
                   _inside(sub, bound, conv2d, [2, 1], {}),
                   tuple(_tensor(gen, *s) for s in ((2, 2, 5, 6), (3, 2, 3, 3), (3,))), ("x", "weight", "bias"),
                   alone=("conv2d (x 2x2x5x6, stride 2, padding 1) with one input alone requiring grad", {
                       "x": "frozen weights, the input itself optimised",
                       "weight": "images need no gradient, as in a network's first layer",
                       "bias": "images and weights frozen"}))
    backward_kept(watch, sub, "max_pool2d (x 2x2x4x6), then backward twice on that one forward", max_pool2d,
                   (_tensor(gen, 2, 2, 4, 6),), ("x",))
    run = _INVARIANTS_RUN
    Xtr, ytr, _, _ = _digits_split(seed, run["n"])
    where = f"train() (n={run['n']}, batch_size {run['batch_size']}, {run['steps']} steps)"
    settings = (run["lr"], run["steps"], run["batch_size"])
    with sub.replaced("cnn_forward", _inside(sub, harness_cnn_forward)):
        given = _init_params(seed, 2)
        result = watch.call(where, sub.get("train"), (given, Xtr, ytr, *settings), ("params", "X", "y"))
        if isinstance(result, tuple) and len(result) == 2:
            watch.no_graph(where, list(result[1]), "losses")
            # the spec's train() updates the caller's tensors in place (mutates = true: SGD's p -= lr * p.grad)
            returned = result[0]
            if isinstance(returned, dict) and set(returned) == set(given) and \
                    all(isinstance(v, torch.Tensor) and v.shape == given[k].shape for k, v in returned.items()) and \
                    any(not torch.equal(v.detach(), given[k].detach()) for k, v in returned.items()):
                watch.violation(where, "the params train() returned are not the caller's, which it left as they were: "
                                       "it rebinds new tensors (params[k] = (p - lr * p.grad).detach()...) instead of "
                                       "updating the caller's in place; update them as SGD does, with torch.no_grad(): "
                                       "p -= lr * p.grad")
            # The same run with the images x30 (gradient norms past 5 or 10): plain SGD steps still, never
            # clipped or rescaled; judged only where the run at the normal scale takes plain SGD steps
            # (a wrong train() is first-loss's to charge).
            if _plain_sgd_gap(result[0], seed, 1) <= 1e-4:
                big = watch.call(where + ", images x30", sub.get("train"), (_init_params(seed, 2), 30 * Xtr, ytr, *settings),
                                 ("params", "X", "y"))
                gap = _plain_sgd_gap(big[0], seed, 30) if isinstance(big, tuple) and len(big) == 2 else 0.0
                if gap > 1e-4:
                    watch.violation(where + ", images x30", f"train() takes plain SGD steps on the digits as given, but not "
                                    f"on the same images x30, where the gradient is large: its weights are {gap:.2g} "
                                    "(relative) away from plain SGD's. Something clips or rescales the step (a "
                                    "clip_grad_norm_ habit?): the spec's train() is plain SGD, p -= lr * p.grad")
    if isinstance(result, tuple) and len(result) == 2:
        _own_model_in_train(watch, sub, seed, result, Xtr, ytr, settings)
    return watch.measurement()


_CARRIED = ("your cnn_forward, conv2d and max_pool2d agree with torch where their own checks call them, so something is "
            "carried from one call or one training step to the next (a value cached in a global or on a class, a copy of "
            "the weights the in-place updates never reach, a graph kept from an earlier step): every step must run on the "
            "weights as updated and on its own batch only")


def _own_model_in_train(watch, sub, seed, given, X, y, settings):
    """Every other run of train() puts the harness's cnn_forward in place of the student's (one bug, one
    deduction), so a CNN that breaks only across training steps was never run (a blind red team, round 4:
    "no check runs the student's train() with the student's own model"). invariants' run again with nothing
    replaced: the same losses and weights as with the harness's cnn_forward (`given`, that run's result) are
    due. The student's train() is compared with itself, so its own mistakes stay first-loss's; where the
    student's CNN does not give the exact loss and gradients at the run's first step, its own checks charge it
    and nothing is said here; where one of them fails anyway, the spec's charged_by makes this a note."""
    where = (f"cnn_forward(params, x) inside your own train(), with your own conv2d and max_pool2d "
             f"(n={len(X)}, batch_size {settings[2]}, {settings[1]} steps)")
    want_losses = [float(v) for v in given[1]] if isinstance(given[1], (list, tuple)) else None
    want = {k: v.detach().clone() for k, v in given[0].items() if isinstance(v, torch.Tensor)} \
        if isinstance(given[0], dict) else {}
    if want_losses is None or len(want_losses) != settings[1] or not want or not _first_step_exact(sub, seed, X, y, settings):
        return
    watch.probed.append(where)
    try:
        result = sub.call("train", _init_params(seed, 2), X, y, *settings)
    except NotImplementedError:
        return  # a part not written yet: its own check says so
    except RemoteError as e:
        said = (e.message.splitlines() or ["an error"])[0].split(". ")[0][:300]
        watch.violation(where, f"raised {said}, where with the harness's cnn_forward in its place it runs: " + _CARRIED)
        return
    if not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[1], (list, tuple)) \
            or len(result[1]) != len(want_losses):
        return  # the form of train()'s result is first-loss's to judge
    losses = [float(v) for v in result[1]]
    k = next((k for k, (a, b) in enumerate(zip(losses, want_losses)) if abs(a - b) > 1e-4 * abs(b) + 1e-6), None)
    returned = result[0] if isinstance(result[0], dict) else {}
    moved = next((name for name, w in want.items() if isinstance(returned.get(name), torch.Tensor)
                  and returned[name].shape == w.shape and float((returned[name].detach().double() - w.double()).abs().max())
                  > 1e-4 * (float(w.abs().max()) or 1.0)), None)
    if (k is None and moved is None) or not _deterministic(sub, seed, X, y, settings, want_losses):
        return  # the same run, or a train() that does not repeat its own run (random batches: first-loss's)
    if k is not None:
        watch.violation(where, f"gave losses {[round(v, 6) for v in losses]} where with the harness's cnn_forward in its "
                               f"place it gives {[round(v, 6) for v in want_losses]} (from step {k} on): " + _CARRIED)
    else:
        watch.violation(where, f"gave the losses it gives with the harness's cnn_forward in its place, but other "
                               f"weights ({moved}) after its last update: " + _CARRIED)


def _deterministic(sub, seed, X, y, settings, losses) -> bool:
    """Whether the student's train(), with the harness's cnn_forward in place, gives `losses` again (asked only
    where its run with its own CNN differed: a train() that draws random batches differs from itself)."""
    try:
        with sub.replaced("cnn_forward", _inside(sub, harness_cnn_forward)):
            again = sub.call("train", _init_params(seed, 2), X, y, *settings)
        return [float(v) for v in again[1]] == losses
    except (RemoteError, TypeError, IndexError, ValueError):
        return False


def _first_step_exact(sub, seed, X, y, settings) -> bool:
    """Whether the student's cnn_forward gives, on the first batch of invariants' train() run and from its
    initial weights, the loss and the gradients the harness's CNN gives."""
    xb, yb = X[:settings[2]], y[:settings[2]]
    params = _init_params(seed, 2)
    try:
        got = sub.run_local(first_step_here, sub.get("cnn_forward"), params, xb, yb)
    except Exception:  # noqa: BLE001 - the CNN's own checks report it
        return False
    loss = F.cross_entropy(own_cnn_forward(params, xb), yb)
    want = torch.autograd.grad(loss, list(params.values()))
    return same_first_step(got, loss, want)


def first_step_here(cnn_forward, params, xb, yb):
    """In the student's process (sub.run_local): the mean cross-entropy of cnn_forward(params, xb) against yb,
    on copies of params, and its gradients (None where none reaches a weight); None where the logits cannot
    be compared (a wrong shape, no graph: cnn-forward's)."""
    mine = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    leaves = list(mine.values())  # taken before the call: a key cnn_forward adds to the dict is cnn-forward's finding
    logits = cnn_forward(mine, xb)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(xb), 10) or not logits.requires_grad:
        return None
    loss = F.cross_entropy(logits, yb)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return {"loss": float(loss), "grads": [None if g is None else g.detach() for g in grads]}


# invariants' train() run: the same settings for the submission's run and plain SGD's (_plain_sgd)
_INVARIANTS_RUN = {"n": 24, "lr": 0.1, "steps": 2, "batch_size": 8}


@seeded_once
def _plain_sgd(seed, p):
    """invariants' train() run (_INVARIANTS_RUN, the digits x p["scale"]) as plain SGD here, with the
    harness's forward (batch k: rows (k*batch_size + i) mod n): once per (seed, scale)."""
    run = _INVARIANTS_RUN
    X, y, _, _ = _digits_split(seed, run["n"])
    X = p["scale"] * X
    params = {k: v.detach().clone().requires_grad_(True) for k, v in _init_params(seed, 2).items()}
    for k in range(run["steps"]):
        idx = (torch.arange(run["batch_size"]) + k * run["batch_size"]) % len(X)
        grads = torch.autograd.grad(F.cross_entropy(own_cnn_forward(params, X[idx]), y[idx]), list(params.values()))
        with torch.no_grad():
            for q, g in zip(params.values(), grads):
                q -= run["lr"] * g
    return {k: v.detach() for k, v in params.items()}


def _plain_sgd_gap(returned, seed, scale) -> float:
    """The largest relative difference between the params train() returned and plain SGD's (_plain_sgd)
    from the same start, or inf when unusable."""
    params = _plain_sgd(seed, {"scale": scale})
    if not isinstance(returned, dict) or set(returned) != set(params):
        return float("inf")
    gap = 0.0
    for name, want in params.items():
        got = returned[name]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return float("inf")
        scale = float(want.detach().abs().max()) or 1.0
        gap = max(gap, float((got.detach().double() - want.detach().double()).abs().max()) / scale)
    return gap
