"""exercise-3 probes. The student's project is loaded from its folder (main.py imports its own
packages); the probes call main.py's documented entry points, train(), evaluate() and test_set(),
and return plain numbers. Unlike other exercises the data and the initialisation come from the
project itself: what is checked is that the whole pipeline reproduces the reference's numbers.
"""

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from dldiy.graders.api import ApiError, expect_tensor
from dldiy.graders.kinds.invariants import Violation, keeps_rules
from dldiy.graders.sandbox.endpoint import RemoteError
from dldiy.graders.verdict import first_departure

_TRAINED: dict[tuple[int, int], tuple[nn.Module, list[float]]] = {}
_WATCHED: dict[tuple[int, int], dict] = {}  # train_watched's account of each shared training


def _train(sub, seed: int, steps: int) -> tuple[nn.Module, list[float]]:
    return _checked_training(sub.call("train", seed, steps), steps)


def _checked_training(result, steps: int) -> tuple[nn.Module, list[float]]:
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ApiError(f"train(seed, steps) returned {type(result).__name__}; expected a pair (model, losses)")
    model, losses = result
    mro = model.introspect().get("mro", []) if hasattr(model, "introspect") else []
    if "torch.nn.modules.module.Module" not in mro:
        raise ApiError(f"train() returned a {getattr(model, 'type_name', type(model).__name__)} as its model; "
                       "expected a torch.nn.Module")
    losses = [float(v) for v in losses]
    if len(losses) != steps:
        raise ApiError(f"train() returned {len(losses)} losses for steps={steps}; expected one per minibatch")
    return model, losses


def _trained(sub, seed: int, steps: int) -> tuple[nn.Module, list[float]]:
    """A model trained once per (seed, steps) and shared by the checks that only read it. It is trained
    watched (train_watched): what the contract of train() needs to know comes back with it."""
    if (seed, steps) not in _TRAINED:
        result, watched = sub.run_local(train_watched, sub.get("train"), seed, steps)
        _WATCHED[seed, steps] = watched
        _TRAINED[seed, steps] = _checked_training(result, steps)
    model, losses = _TRAINED[seed, steps]
    model.train()  # as train() leaves it, whatever an earlier probe did
    return model, losses


def train_watched(train, seed: int, steps: int) -> tuple[object, dict]:
    """In the student's process (sub.run_local): train(seed, steps), watching each training step. Before
    every forward pass of an outermost module with parameters, with gradients on (in either mode: a model
    an evaluate() left in eval mode still trains), its parameters are copied; the copies whose output a
    backward() then reaches are the steps' (one per minibatch: a forward for logging or for an evaluation
    is not one). Returns (what train() returned, {"steps": how many steps were seen, "earlier": the step
    k whose parameters the returned model's equal exactly while later steps had moved on from them, or
    None}): a model handed back as it was before step k, not after the last step, was selected (by a
    held-out accuracy: early stopping). Nothing here draws a random number or touches the student's
    graph (the copies are detached), and any optimizer is watched alike (torch's, the project's own)."""
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    copies: list[torch.Tensor] = []
    inputs: dict[int, torch.Tensor] = {}  # the first steps' images, as the model received them
    reached: set[int] = set()
    open_calls: list[int | None] = []

    def flat(module: nn.Module) -> torch.Tensor | None:
        params = [q.detach().reshape(-1) for q in module.parameters()]
        return torch.cat([q.to("cpu", torch.float64) for q in params]) if params else None

    def before(module, args):
        kept = None
        if not open_calls and torch.is_grad_enabled():
            values = flat(module)
            if values is not None:
                copies.append(values)
                kept = len(copies) - 1
                if len(inputs) < 3 and args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
                    inputs[kept] = args[0].detach().to("cpu", torch.float64).clone()
        open_calls.append(kept)

    def after(module, args, output):
        kept = open_calls.pop() if open_calls else None
        if kept is not None and isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad, k=kept: reached.add(k))

    handles = [register_module_forward_pre_hook(before), register_module_forward_hook(after, always_call=True)]
    try:
        result = train(seed, steps)
    finally:
        for handle in handles:
            handle.remove()
    steps_seen = sorted(reached)
    earlier = None
    model = result[0] if isinstance(result, tuple) and len(result) == 2 else None
    returned = flat(model) if isinstance(model, nn.Module) else None
    if returned is not None:
        same = [i for i, k in enumerate(steps_seen)
                if copies[k].shape == returned.shape and torch.equal(copies[k], returned)]
        # a step after the last equal one moved the parameters on: the training went on from there,
        # and the model handed back is not the one it ended with (all equal: training never moved them)
        if same and any(not torch.equal(copies[k], returned) for k in steps_seen[same[-1] + 1:]):
            earlier = same[-1]
    # the returned model is exactly what the LAST step's forward used, and training did move the parameters
    # before it: that step's gradient was never applied (optimizer.step() before backward(), at the top of the
    # loop: every loss is right, the last update is lost)
    unapplied = bool(returned is not None and steps_seen and earlier is None
                     and copies[steps_seen[-1]].shape == returned.shape and torch.equal(copies[steps_seen[-1]], returned)
                     and any(not torch.equal(copies[k], returned) for k in steps_seen))
    # a loss kept as a tensor of the graph (losses.append(loss) without .item()): every step's graph alive
    history = result[1] if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], (list, tuple)) else []
    graph = next((k for k, v in enumerate(history) if isinstance(v, torch.Tensor) and v.requires_grad), None)
    # a loss kept as anything but a number (a detached 0-dim tensor): train()'s annotation says list[float]
    typed = not_numbers(history, [f"losses[{k}]" for k in range(len(history))])
    # the images of the first step, as the model received them: how the project normalises its training images
    # (evaluation's test_set() case: the held-out images must be normalised the same way)
    first_input = inputs.get(steps_seen[0]) if steps_seen else None
    return result, {"steps": len(steps_seen), "earlier": earlier, "graph": graph, "unapplied": unapplied,
                    "first_input": first_input, "typed": typed}


def not_numbers(values, names) -> str | None:
    """The first of `values` (a sequence, each named by `names`) that is not a Python number (int or float, not
    bool: what `float` annotates), in words with its type: "(float, Tensor): its accuracy is a torch.Tensor (0-dim,
    float32)"; None where every one is a number. Read where the values were made (a tensor crosses as a tensor)."""
    values = list(values)
    for name, value in zip(names, values):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            continue
        what = f"a {type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")
        if isinstance(value, torch.Tensor):
            what = (f"a torch.Tensor ({value.dim()}-dim, {str(value.dtype).replace('torch.', '')}"
                    f"{', on ' + str(value.device) if value.device.type != 'cpu' else ''})")
        kinds = ", ".join(type(v).__name__ for v in values)
        return f"({kinds}): its {name} is {what}" if len(values) <= 4 else f"{name} as {what}"
    return None


def _test_set(sub) -> tuple[torch.Tensor, torch.Tensor]:
    result = sub.call("test_set")
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ApiError(f"test_set() returned {type(result).__name__}; expected a pair (images, labels)")
    images = expect_tensor(result[0], "test_set() (its images)", dtype="float")
    labels = expect_tensor(result[1], "test_set() (its labels)", shape=(len(images),), dtype="int")
    return images, labels


def _scores_in_eval_mode(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(images)


def first_loss(sub, seed, p):
    """The losses at the spec's steps; and, once per student's process, the project's parts probed alone
    (parts_problems): batches() on small data, Normalize on several channels, SGD against torch.optim.SGD,
    ConvNet built with other arguments. The project's own runs cannot show what these get wrong (one channel,
    1500 images in minibatches of 64, every parameter with a gradient, ConvNet's defaults)."""
    steps = p["steps"]
    _, losses = _train(sub, seed, max(steps) + 1)
    out = {"steps": steps, "losses": [losses[k] for k in steps], "n": p["n"]}
    if sub.first_time("parts"):
        parts = parts_problems(sub)
        if parts:
            out["parts"] = parts
    return out


def parts_problems(sub) -> list[dict]:
    """[{"name", "problem"}] of each of the project's parts that, probed alone, does not do what its
    docstring (or torch's own twin) says; a part main.py does not reach by its handed-out name is skipped."""
    found = []
    for name, probe in (("batches()", batches_problem), ("Scale (data/transforms.py)", scale_problem),
                        ("Normalize (data/transforms.py)", normalize_problem),
                        ("SGD (optimizer/sgd.py)", sgd_problem),
                        ("ConvNet(num_classes, dropout) (model/net.py)", convnet_problem)):
        problem = probe(sub)
        if problem:
            found.append({"name": name, "problem": problem})
    return found


def _handle(sub, name: str):
    """main.py's `name` (a handle) where it is a callable, else None: a project that serves a part another way
    is judged by its trajectory alone."""
    try:
        value = sub.get(name)
    except ApiError:
        return None
    return value if getattr(value, "is_callable", False) else None


# (n, batch_size) for batches(): n a multiple of the batch size, n not one (a partial rest of 6), n equal to the
# batch size, and a batch size above n. The first two keep several minibatches per pass, so that a pass one
# minibatch short cannot cover its n examples by chance (the 8 it misses drawn next: 1 in C(32, 8)).
BATCH_FAMILY = ((32, 8), (30, 8), (8, 8), (5, 8))
BATCH_DEADLINE_S = 2.0  # a batches() that neither yields nor raises (a loop over an empty range spins forever)


class _Spins(BaseException):
    """Raised in the student's process when batches() has neither yielded nor raised by the deadline (a
    BaseException, so that the student's own `except Exception` cannot take it)."""


def draw_batches(batches, family) -> list[dict]:
    """In the student's process (sub.run_local): for each (n, batch_size) of `family`, the first minibatches of
    batches(images, labels, batch_size) over two passes and one more, on n examples whose image holds its own
    index (n, 1, 8, 8) and whose label is that index: [{"labels": [[...] per minibatch], "images": the index
    each minibatch's images hold, or None where they do not hold one, "error": what it raised, or None,
    "spins": whether it neither yielded nor raised within BATCH_DEADLINE_S}]. torch's generator is seeded
    for the draws and put back after them."""
    import signal

    def late(signum, frame):
        raise _Spins()

    out = []
    state = torch.get_rng_state()
    previous = signal.signal(signal.SIGALRM, late)
    try:
        for n, size in family:
            torch.manual_seed(0)
            images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 8, 8).clone()
            labels = torch.arange(n)
            row: dict = {"labels": [], "images": [], "error": None, "spins": False}
            signal.setitimer(signal.ITIMER_REAL, BATCH_DEADLINE_S)
            try:
                stream = iter(batches(images, labels, size))
                for _ in range(2 * max(1, n // size) + 1):
                    x, y = next(stream)
                    row["labels"].append([int(v) for v in torch.as_tensor(y).reshape(-1).tolist()])
                    x = torch.as_tensor(x)
                    same = x.dim() == 4 and bool((x == x[:, :1, :1, :1]).all())
                    row["images"].append([int(v) for v in x[:, 0, 0, 0].tolist()] if same else None)
            except _Spins:
                row["spins"] = True
            except StopIteration:
                row["error"] = "StopIteration"
            except Exception as e:  # noqa: BLE001 - what batches() raised at this configuration is the finding
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            out.append(row)
    finally:
        signal.signal(signal.SIGALRM, previous)
        torch.set_rng_state(state)
    return out


def batches_problem(sub) -> str | None:
    """What batches() gets wrong of its docstring ("endless minibatches; each pass over the data in a new
    random order") on BATCH_FAMILY, in words with its likely cause, else None. A pass of n examples is the
    n // batch_size full minibatches of one random order, together n // batch_size x batch_size distinct
    examples (all of them when batch_size divides n: the reference drops only a partial rest), each image
    with its own label; the next pass another order. Where batch_size > n no minibatch can be filled: an
    error (or an empty stream) is right, a minibatch or a silent spin is not. None too where main.py does
    not hold a batches() (a project that serves its minibatches another way: the trajectory judges it)."""
    batches = _handle(sub, "batches")
    if batches is None:
        return None
    rows = sub.run_local(draw_batches, batches, [list(c) for c in BATCH_FAMILY])
    for (n, size), row in zip(BATCH_FAMILY, rows):
        problem = _batches_row_problem(n, size, row)
        if problem:
            return problem
    return None


def _batches_row_problem(n: int, size: int, row: dict) -> str | None:
    call = f"batches() on {n} examples with batch_size={size}"
    if size > n:
        if row["spins"]:
            return (f"{call} neither yielded nor raised in {BATCH_DEADLINE_S:g} s: with fewer examples than one "
                    "minibatch holds, its loop spins forever without yielding (the reference raises a ValueError "
                    "when n < batch_size)")
        if row["labels"]:
            return (f"{call} yielded a minibatch of {len(row['labels'][0])}: no full minibatch can be made of "
                    f"{n} examples, and a pass yields full minibatches only (raise an error when n < batch_size)")
        return None
    per_pass = n // size
    if row["spins"] and not row["labels"]:
        return (f"{call} neither yielded nor raised in {BATCH_DEADLINE_S:g} s, where a pass is "
                f"{per_pass} minibatch{'es' if per_pass > 1 else ''}: its loop over the starts of the minibatches "
                "is empty and the endless loop around it spins"
                + (" (n == batch_size: range(0, n - batch_size, batch_size) is empty; the last start that fills "
                   "a minibatch is n - batch_size, so the range must stop at n - batch_size + 1)" if n == size else ""))
    drawn = row["labels"]
    if row["error"] or row["spins"]:
        what = row["error"] or f"neither yielded nor raised in {BATCH_DEADLINE_S:g} s"
        return (f"{call} yielded {len(drawn)} minibatch(es), then {what}: it must yield minibatches endlessly, "
                "each pass over the data in a new random order")
    for k, labels in enumerate(drawn):
        if len(labels) != size:
            return (f"{call}: minibatch {k} holds {len(labels)} examples, expected {size}: every minibatch is "
                    f"full, and a pass ends with its last full minibatch ({per_pass} of {size} here; the "
                    f"rest, {n - per_pass * size} examples, waits for another pass in a new order)")
        if row["images"][k] is None:
            return (f"{call}: the images of minibatch {k} are not the examples' own (each image handed in holds its "
                    "example's index in every pixel): a minibatch is images[order[start:start + batch_size]], "
                    "unchanged")
        if row["images"][k] != labels:
            return (f"{call}: the images of minibatch {k} are not those of its labels: images and labels must be "
                    "taken with the same order (images[order], labels[order])")
    seen: set[int] = set()
    for k, labels in enumerate(drawn[:per_pass]):
        if seen & set(labels) or len(set(labels)) != len(labels):
            short = (f"a pass ended after {k} minibatch{'es' if k > 1 else ''} (the first {k * size} examples "
                     f"drawn are distinct, and minibatch {k} repeats some of them), where the {n} examples fill "
                     f"{per_pass}")
            cause = (": the last full minibatch of each pass is lost when n is a multiple of the batch size. "
                     "The last start that fills a minibatch is n - batch_size: range(0, n - batch_size + 1, "
                     "batch_size) reaches it, range(0, n - batch_size, batch_size) stops one short"
                     if k == per_pass - 1 and n % size == 0 else
                     ": a pass must yield every full minibatch of its order")
            return f"{call}: {short}{cause}"
        seen |= set(labels)
    passes = [sum(drawn[j * per_pass:(j + 1) * per_pass], []) for j in range(2)]
    if len(set(passes[1])) != len(passes[1]):
        return (f"{call}: the second pass over the data (minibatches {per_pass} to {2 * per_pass - 1}) repeats "
                "examples: each pass draws one new order of all the examples and cuts it into minibatches")
    if per_pass > 1 and passes[1] == passes[0]:
        return (f"{call}: the second pass yields the examples in the first pass's order: each pass over the data "
                "draws a new random order (torch.randperm(n) inside the endless loop, not once before it)")
    return None


# --- Normalize probed alone: torchvision's semantics on images the project never has ------------------------------

# (shape (n, C, H, W), dtype, channels-last memory (a non-contiguous input), mean, std, given as): one channel on a
# non-square image; two channels with W == C (a (C,) mean broadcast against the width gives wrong values, not an
# error); a batch of one in float64 with three; three channels in a permuted view, the statistics as lists. Means
# and stds of few bits, stds powers of two: (x - m) / s, x / s - m / s and (x - m) * (1 / s) round alike.
NORMALIZE_FAMILY = (
    ((2, 1, 3, 5), "float32", False, (0.5,), (2.0,), "tuple"),
    ((3, 2, 5, 2), "float32", False, (0.5, -1.25), (2.0, 0.5), "tuple"),
    ((1, 3, 2, 3), "float64", False, (0.5, -1.25, 2.0), (2.0, 0.5, 4.0), "tuple"),
    ((2, 3, 4, 6), "float32", True, (0.25, 1.5, -0.75), (0.25, 8.0, 1.0), "list"),
)


def normalize_inputs() -> list[dict]:
    """NORMALIZE_FAMILY's cases with their images, seeded: {"base": (n, H, W, C) where channels-last, else (n, C, H,
    W), "channels_last", "mean", "std", "as"}. The images as Normalize receives them: normalize_images(case)."""
    generator = torch.Generator().manual_seed(3)
    cases = []
    for shape, dtype, channels_last, mean, std, given in NORMALIZE_FAMILY:
        n, c, h, w = shape
        stored = (n, h, w, c) if channels_last else shape
        base = (3 * torch.randn(stored, generator=generator, dtype=torch.float64)).to(getattr(torch, dtype))
        cases.append({"base": base, "channels_last": channels_last, "mean": list(mean), "std": list(std), "as": given})
    return cases


def normalize_images(case: dict) -> torch.Tensor:
    return case["base"].permute(0, 3, 1, 2) if case["channels_last"] else case["base"]


def normalize_here(normalize, cases: list[dict]) -> list[dict]:
    """In the student's process (sub.run_local): Normalize(mean, std)(images) for each case, the statistics given
    as the case says (a tuple, as data/digits.py does, or a list): {"output": a copy of what it returned (or None
    where no tensor), "type", "error": what it raised or None, "wrote": whether the images given changed}."""
    out = []
    for case in cases:
        images = normalize_images({**case, "base": case["base"].clone()})  # written into, it changes no case
        kept = images.clone()
        mean, std = (tuple(case["mean"]), tuple(case["std"])) if case["as"] == "tuple" else (case["mean"], case["std"])
        row: dict = {"output": None, "type": None, "error": None, "wrote": False}
        try:
            result = normalize(mean, std)(images)
            row["type"] = type(result).__name__
            if isinstance(result, torch.Tensor):
                row["output"] = result.detach().clone().contiguous()
        except Exception as e:  # noqa: BLE001 - what Normalize raised on this case is the finding
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        row["wrote"] = not torch.equal(images, kept)
        out.append(row)
    return out


def find_normalize(load_splits, name: str = "Normalize"):
    """In the student's process (sub.run_local): the class `name` (Normalize, Scale) the project's load_splits() reads
    (the module of load_splits, else data.transforms), or None."""
    import sys

    for where in (getattr(load_splits, "__globals__", None), vars(sys.modules.get("data.transforms") or sys)):
        found = where.get(name) if isinstance(where, dict) else None
        if isinstance(found, type):
            return found
    return None


# Scale(max_value) on images whose largest pixel is not max_value (the digits' largest is 16, MAX_INTENSITY: there
# a division by the images' own maximum gives the same numbers): (max_value, the pixels' largest value)
SCALE_FAMILY = ((16.0, 8.0), (255.0, 100.0), (16.0, 16.0))


def scale_here(scale, family: list) -> list:
    """In the student's process (sub.run_local): Scale(max_value)(images) for each (max_value, top) of `family`, on
    seeded integer pixels in [0, top] (n = 3, one channel, 4x4; top itself among them): [images, output or None,
    error or None] per case."""
    generator = torch.Generator().manual_seed(4)
    out = []
    for max_value, top in family:
        images = torch.randint(0, int(top) + 1, (3, 1, 4, 4), generator=generator).float()
        images[0, 0, 0, 0] = top
        try:
            result = scale(max_value)(images.clone())
            out.append([images, result.detach().clone() if isinstance(result, torch.Tensor) else None, None])
        except Exception as e:  # noqa: BLE001 - what Scale raised on this case is the finding
            out.append([images, None, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"])
    return out


def scale_problem(sub) -> str | None:
    """What Scale gets wrong of its docstring (x <- x / max_value) on SCALE_FAMILY, in words with its likely cause,
    else None. The project scales the digits, whose largest pixel is MAX_INTENSITY itself, so only other images
    can tell max_value from the data's own maximum (blind round 9)."""
    load_splits = _handle(sub, "load_splits")
    if load_splits is None:
        return None
    scale = sub.run_local(find_normalize, load_splits, "Scale")
    if not getattr(scale, "is_callable", False):
        return None
    rows = sub.run_local(scale_here, scale, [list(c) for c in SCALE_FAMILY])
    if not isinstance(rows, list) or len(rows) != len(SCALE_FAMILY):
        raise ApiError("Scale: the cases came back malformed")
    for (max_value, top), row in zip(SCALE_FAMILY, rows):
        images, got, error = row
        call = f"Scale({max_value:g}) on images (3, 1, 4, 4) whose largest pixel is {top:g}"
        if error:
            return f"{call} raised {error}"
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(images.shape):
            return f"{call} returned {type(got).__name__ if got is None else tuple(got.shape)}; expected a tensor {tuple(images.shape)}"
        want = images.double() / max_value
        if torch.allclose(got.double(), want, rtol=4 * torch.finfo(torch.float32).eps, atol=0.0):
            continue
        i = tuple(int(k) for k in ((got.double() - want).abs() > 4 * torch.finfo(torch.float32).eps * want.abs())
                  .nonzero()[0].tolist())
        cause = (": it divides by the images' own maximum, not by max_value (the same on the digits, whose largest "
                 "pixel is 16, and wrong on any other images: a batch, another data set): divide by self.max_value"
                 if torch.allclose(got.double(), images.double() / top, rtol=1e-6, atol=0.0) else
                 ": x <- x / max_value, the max_value it was built with")
        return (f"{call}: out{list(i)} is {got.double()[i].item():.6g}, expected {images[i].item():g} / {max_value:g} = "
                f"{want[i].item():.6g}{cause}")
    return None


def normalize_problem(sub) -> str | None:
    """What Normalize gets wrong of its docstring (x[:, c] <- (x[:, c] - mean[c]) / std[c], a new tensor, the
    images given left as they are) on NORMALIZE_FAMILY, in words with its likely cause, else None. Expected
    values are torchvision's (its Normalize, inplace=False), computed here in float64 and rounded to the images'
    dtype; a few units of that dtype's rounding are allowed."""
    load_splits = _handle(sub, "load_splits")
    if load_splits is None:
        return None
    normalize = sub.run_local(find_normalize, load_splits)
    if not getattr(normalize, "is_callable", False):
        return None
    cases = normalize_inputs()
    rows = sub.run_local(normalize_here, normalize, cases)
    for case, row in zip(cases, rows):
        problem = _normalize_row_problem(case, row)
        if problem:
            return problem
    return None


def _normalize_row_problem(case: dict, row: dict) -> str | None:
    images = normalize_images(case)
    n, c, h, w = images.shape
    mean, std = case["mean"], case["std"]
    call = (f"Normalize(mean={tuple(mean)}, std={tuple(std)}) on images ({n}, {c}, {h}, {w}) of "
            f"{str(images.dtype).replace('torch.', '')}{' (a non-contiguous view)' if case['channels_last'] else ''}")
    if row["error"]:
        cause = (" Likely the statistics as (C,) tensors broadcast against the last axis, the width, which fails "
                 f"where the width ({w}) is not the number of channels: view them as (1, C, 1, 1) (or loop over "
                 "images[:, c])" if c > 1 and w != c and ("size of tensor" in row["error"] or "broadcast" in row["error"])
                 else "")
        return f"{call} raised {row['error']}.{cause}"
    got = row["output"]
    if not isinstance(got, torch.Tensor):
        return f"{call} returned {row['type']}; expected a tensor of the images' shape"
    if tuple(got.shape) != (n, c, h, w) or got.dtype != images.dtype:
        return (f"{call} returned a tensor {tuple(got.shape)} of {str(got.dtype).replace('torch.', '')}; expected the "
                f"images' shape ({n}, {c}, {h}, {w}) and dtype ({str(images.dtype).replace('torch.', '')})")
    x = images.double()
    m = torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    want = ((x - m) / s).to(images.dtype).double()
    tol = 4 * torch.finfo(images.dtype).eps * want.abs().clamp(min=1.0)
    bad = (got.double() - want).abs() > tol
    if bool(bad.any()):
        i = [int(k) for k in bad.nonzero()[0].tolist()]
        where = f"[{', '.join(map(str, i))}]"
        said = (f"{call}: out{where} is {got.double()[tuple(i)].item():.6g}, expected {want[tuple(i)].item():.6g} "
                f"(x{where} = {x[tuple(i)].item():.6g}, channel {i[1]}: (x - {mean[i[1]]:g}) / {std[i[1]]:g})")
        return said + _normalize_cause(x, got.double(), mean, std)
    if row["wrote"]:
        return (f"{call} returned the right values but wrote them into the images it was given (they changed after the "
                "call): the docstring asks for a new tensor, the images given left as they are (as torchvision's "
                "Normalize does): start from a copy (out = images.clone()) or compute out of place")
    return None


def _normalize_cause(x: torch.Tensor, got: torch.Tensor, mean: list[float], std: list[float]) -> str:
    """The likely cause of wrong values, read from what they equal: every channel's statistics applied to the whole
    batch in turn, or the statistics broadcast against the width."""
    c = x.shape[1]
    every = x.clone()
    for m, s in zip(mean, std):
        every = (every - m) / s
    if c > 1 and torch.allclose(got, every, rtol=1e-5, atol=1e-6):
        return (". Every channel's mean and std were applied to the whole batch, one after the other: the loop over "
                "the channels must change channel c only, out[:, c] = (out[:, c] - mean[c]) / std[c]")
    if c > 1 and x.shape[3] == c:
        width = (x - torch.tensor(mean, dtype=x.dtype)) / torch.tensor(std, dtype=x.dtype)
        if torch.allclose(got, width, rtol=1e-5, atol=1e-6):
            return (". The statistics, as (C,) tensors, were broadcast against the last axis (the width, here equal "
                    "to the number of channels), not the channels: view them as (1, C, 1, 1)")
    return ". Each channel c must become (x[:, c] - mean[c]) / std[c], with its own mean and std"


# --- SGD probed alone, against torch.optim.SGD ----------------------------------------------------------------------

# Each run: the hyper-parameters, whether the parameters come as a generator (model.parameters() is one), and a
# script. "grads": every p.grad set to a fresh tensor (None: p.grad = None, a parameter backward() did not reach);
# "accumulate": added onto p.grad in place, as a second backward() without zero_grad() does (None: left as it is);
# "zero_grad": the student's own; "step"; "new": a new optimizer built over the same parameters (its state fresh, as
# torch.optim.SGD's is). In a "grads" entry, "-" is a .grad None and "0" a gradient of zeros. After zero_grad() every
# parameter gets a gradient before the next step (torch's set_to_none=True and set_to_none=False then agree, and both
# are correct zero_grad()s). A run's "shapes" (default SGD_SHAPES) are its parameters', in order.
SGD_RUNS = (
    {"lr": 0.1, "momentum": 0.9, "generator": True,
     "script": [("grads", "abc"), ("step",), ("accumulate", "abc"), ("step",), ("zero_grad",), ("grads", "a-c"),
                ("step",), ("accumulate", "ab-"), ("step",), ("zero_grad",), ("accumulate", "abc"), ("step",)]},
    {"lr": 0.05, "momentum": 0.0, "generator": False,
     "script": [("grads", "abc"), ("step",), ("grads", "-bc"), ("step",), ("accumulate", "abc"), ("step",)]},
    {"lr": 0.3, "momentum": 0.5, "generator": False,
     "script": [("grads", "-bc"), ("step",), ("grads", "ab-"), ("step",), ("accumulate", "abc"), ("step",)]},
    # blind round 9: two parameters of one shape (state keyed by p.shape shares one buffer), a gradient of zeros that
    # momentum still moves (a step skipped where `not p.grad.any()`), and a new optimizer over the same parameters
    # (a buffer stored on the parameter itself, p.momentum_buffer, carries over to it)
    {"lr": 0.1, "momentum": 0.9, "generator": False, "shapes": {"a": (2, 2), "b": (2, 2), "c": (3,)},
     "script": [("grads", "abc"), ("step",), ("grads", "a0c"), ("step",), ("new",), ("grads", "abc"), ("step",)]},
)
SGD_SHAPES = {"a": (3, 2), "b": (4,), "c": (2, 2)}
SGD_RTOL, SGD_ATOL = 1e-10, 1e-12  # float64: lr folded into the buffer, or p.sub_(lr * b), rounds ~1e-16 apart


def sgd_inputs() -> list[dict]:
    """SGD_RUNS with their values, seeded: the parameters' start and each script entry's gradients (float64)."""
    generator = torch.Generator().manual_seed(5)

    def draw(shape):
        return torch.randn(shape, generator=generator, dtype=torch.float64)
    runs = []
    for run in SGD_RUNS:
        shapes = run.get("shapes", SGD_SHAPES)
        script = []
        for entry in run["script"]:
            op = entry[0]
            if op in ("grads", "accumulate"):
                script.append({"op": op, "values": [None if k == "-" else torch.zeros(shape, dtype=torch.float64)
                                                    if k == "0" else draw(shape) for k, shape in zip(entry[1], shapes.values())]})
            else:
                script.append({"op": op})
        runs.append({"lr": run["lr"], "momentum": run["momentum"], "generator": run["generator"],
                     "shapes": {key: list(shape) for key, shape in shapes.items()},
                     "start": [draw(shape) for shape in shapes.values()], "script": script})
    return runs


def sgd_here(make, run: dict, zeroed: list | None = None) -> dict:
    """One run of an SGD class (the student's, in its process; torch.optim.SGD, here) on its own leaves: the
    rows of parameters (row 0: the start; one row per step, flattened), and what zero_grad() left in each .grad
    ("none", "zeros" or "other"). With `zeroed` (the student's run's), zero_grad() is not called but its result
    reproduced: the twin then sees the gradients the student's optimizer saw."""
    params = [v.clone().requires_grad_() for v in run["start"]]

    def flat():
        return torch.cat([q.detach().reshape(-1) for q in params]).tolist()
    out: dict = {"rows": [flat()], "zeroed": [], "error": None}
    at = -1  # the script's entry being run (-1: the constructor)
    try:
        opt = make((q for q in params) if run["generator"] else params, lr=run["lr"], momentum=run["momentum"])
        cleared = 0
        for entry in run["script"]:
            at += 1
            op = entry["op"]
            if op == "new":
                opt = make((q for q in params) if run["generator"] else params, lr=run["lr"], momentum=run["momentum"])
            elif op == "grads":
                for q, v in zip(params, entry["values"]):
                    q.grad = None if v is None else v.clone()
            elif op == "accumulate":
                for q, v in zip(params, entry["values"]):
                    if v is not None:
                        if q.grad is None:
                            q.grad = v.clone()
                        else:
                            q.grad.add_(v)
            elif op == "zero_grad":
                if zeroed is None:
                    opt.zero_grad()
                    out["zeroed"].append(["none" if q.grad is None else "zeros" if not bool(q.grad.any()) else "other"
                                          for q in params])
                else:
                    for q, state in zip(params, zeroed[cleared]):
                        q.grad = None if state == "none" else torch.zeros_like(q) if q.grad is None else q.grad.zero_()
                cleared += 1
            else:
                opt.step()
                out["rows"].append(flat())
    except Exception as e:  # noqa: BLE001 - what the optimizer raised in this run is the finding
        out["error"] = [at, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"]
    return out


def sgd_problem(sub) -> str | None:
    """What the project's SGD does differently from torch.optim.SGD with the same lr and momentum (its docstring:
    "as torch.optim.SGD, no dampening, no Nesterov") on SGD_RUNS, in words with its likely cause, else None."""
    make = _handle(sub, "SGD")
    if make is None:
        return None
    runs = sgd_inputs()
    results = sub.run_local(sgd_runs_here, make, runs)
    if not isinstance(results, list) or len(results) != len(runs):
        raise ApiError("SGD: the runs came back malformed")
    for run, got in zip(runs, results):
        problem = _sgd_run_problem(run, got)
        if problem:
            return problem
    return None


def sgd_runs_here(make, runs: list[dict]) -> list[dict]:
    """In the student's process (sub.run_local): sgd_here for each run, in one message."""
    return [sgd_here(make, run) for run in runs]


def _sgd_step_words(run: dict, step: int) -> str:
    """What happened to the gradients just before step `step` (counted from 0) of a run's script, in words."""
    said = []
    for entry in _script_before(run, step):
        if entry["op"] == "zero_grad":
            said.append("zero_grad()")
            continue
        if entry["op"] == "new":
            said.append("a new SGD built over the same parameters (its momentum buffers fresh, as torch.optim.SGD's are)")
            continue
        none = [name for name, v in zip(run["shapes"], entry["values"]) if v is None]
        zeros = [name for name, v in zip(run["shapes"], entry["values"]) if v is not None and not bool(v.any())]
        if entry["op"] == "grads":
            said.append("gradients set" + (f" ({', '.join(none)}: .grad None)" if none else "")
                        + (f" ({', '.join(zeros)}: a gradient of zeros)" if zeros else ""))
        else:
            said.append("gradients added in place onto the .grad there (a backward() without zero_grad())"
                        + (f" ({', '.join(none)} left as it was)" if none else ""))
    return ", then ".join(said) or "nothing"


def _sgd_run_problem(run: dict, got) -> str | None:
    shapes = {key: tuple(shape) for key, shape in run["shapes"].items()}
    names = [f"{key}{list(index) if len(shape) > 1 else [index[0]]}" for key, shape in shapes.items()
             for index in (list(_unravel(i, shape)) for i in range(math.prod(shape)))]
    label = (f"SGD({'a generator of ' if run['generator'] else ''}parameters "
             + ", ".join(f"{key} {shape}" for key, shape in shapes.items())
             + f", lr={run['lr']}, momentum={run['momentum']})")
    if not isinstance(got, dict) or not isinstance(got.get("rows"), list):
        raise ApiError("SGD: a run came back malformed")
    if got.get("error"):
        k, error = got["error"]
        what = "built" if k < 0 else f"at {run['script'][k]['op']}() after {_sgd_step_words(run, _steps_before(run, k))}"
        return (f"{label} raised {error} {what}; torch.optim.SGD with the same hyper-parameters runs it (a "
                "parameter whose .grad is None is skipped)")
    for states in got.get("zeroed") or []:
        if "other" in states:
            which = list(run["shapes"])[states.index("other")]
            return (f"after {label}.zero_grad(), {which}.grad still holds a nonzero gradient: zero_grad() must set every "
                    "parameter's .grad to None (or to zeros)")
    twin = sgd_here(torch.optim.SGD, run, zeroed=got.get("zeroed") or [])
    rows, want = got["rows"], twin["rows"]
    if len(rows) != len(want) or any(len(row) != len(names) for row in rows):
        raise ApiError("SGD: a run came back malformed")
    found = first_departure(rows, want, rtol=SGD_RTOL, atol=SGD_ATOL)
    if found is None:
        return None
    row, entry = found
    step = row - 1  # row 0 is the start, row k + 1 what step k left
    a, b = rows[row][entry], want[row][entry]
    return (f"{label} departs from torch.optim.SGD with the same hyper-parameters at its step {step} (counted from 0): "
            f"after it {names[entry]} is {a:.10g} instead of {b:.10g} (relative difference "
            f"{abs(a - b) / max(abs(b), 1e-300):.2g}). Before that step: {_sgd_step_words(run, step)}"
            + _sgd_cause(run, rows, step, got.get("zeroed") or []))


def _sgd_cause(run: dict, rows, step: int, zeroed: list) -> str:
    """The likely cause of a departure at `step`, where the rows up to that step's are a known mistake's
    (_Mistaken run the same way), else the update rule in words."""
    for mistake, cause in (
            ("break", ". The parameters after the first whose .grad is None did not move: step() stops at a parameter "
                      "without a gradient (`break` where `continue` belongs): skip that one parameter, update the rest"),
            ("alias", ". The gradients were added in place onto those of the previous step (a second backward() "
                      "without zero_grad()), and the momentum buffer changed with them: the buffer is p.grad itself, "
                      "not a copy (buf = p.grad at the first step): store p.grad.clone() (torch.optim.SGD does)"),
            ("shape", ". Two parameters of the same shape share one momentum buffer: the optimizer's state is keyed by "
                      "something they have in common (tuple(p.shape)) instead of by the parameter itself "
                      "(self.state[p], one buffer per parameter)"),
            ("zero", ". A parameter whose gradient is all zeros was skipped (`if not p.grad.any(): continue`): its "
                     "momentum buffer still moves it, b <- momentum * b + 0, p <- p - lr * b; skip only a .grad "
                     "that is None"),
            ("inherit", ". A new SGD over the same parameters went on with the momentum of the one before: the buffer "
                        "is kept on the parameter (p.momentum_buffer = ...) or anywhere outside the optimizer, where "
                        "it belongs in the optimizer's own state (self.state[p]), fresh in every new optimizer")):
        mistaken = sgd_here(lambda params, lr, momentum, m=mistake: _Mistaken(params, lr, momentum, m), run,
                            zeroed=zeroed)
        if first_departure(rows[:step + 2], mistaken["rows"][:step + 2], rtol=SGD_RTOL, atol=SGD_ATOL) is None:
            return cause
    return (". The update differs from torch.optim.SGD's heavy ball: b <- g at a parameter's first step, then "
            "b <- momentum * b + g; p <- p - lr * b (with momentum 0, p <- p - lr * g); a parameter whose .grad "
            "is None is skipped, its buffer kept")


class _Mistaken:
    """torch.optim.SGD's heavy ball with one known mistake, to name a departure's cause: "break" (the loop stops at
    a parameter whose .grad is None), "alias" (the buffer is p.grad itself at a parameter's first step), "shape" (the
    state keyed by the parameter's shape), "zero" (a gradient of zeros skipped) or "inherit" (the buffer kept on the
    parameter, where a new optimizer over it finds it)."""

    def __init__(self, params, lr: float, momentum: float, mistake: str):
        self.params, self.lr, self.momentum, self.mistake = list(params), lr, momentum, mistake
        self.buffers: dict = {}

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None or (self.mistake == "zero" and not bool(p.grad.any())):
                if self.mistake == "break":
                    break
                continue
            direction = p.grad
            if self.momentum != 0.0:
                # "inherit": the buffer kept on the parameter itself, where the next optimizer over it finds it
                buffers = p.__dict__.setdefault("_mistaken_buffers", {}) if self.mistake == "inherit" else self.buffers
                key = tuple(p.shape) if self.mistake == "shape" else i
                if key not in buffers:
                    buffers[key] = direction if self.mistake == "alias" else direction.clone()
                else:
                    buffers[key].mul_(self.momentum).add_(direction)
                direction = buffers[key]
            p.add_(direction, alpha=-self.lr)


def _steps_before(run: dict, k: int) -> int:
    """How many steps the script takes before its entry k."""
    return sum(entry["op"] == "step" for entry in run["script"][:k])


def _script_before(run: dict, step: int) -> list[dict]:
    """The script's entries between step `step - 1` and step `step`."""
    seen, entries = 0, []
    for entry in run["script"]:
        if entry["op"] == "step":
            if seen == step:
                return entries
            seen, entries = seen + 1, []
        else:
            entries.append(entry)
    return entries


def _unravel(i: int, shape) -> tuple[int, ...]:
    out = []
    for size in reversed(shape):
        out.append(i % size)
        i //= size
    return tuple(reversed(out))


# --- ConvNet built with arguments the project never passes ------------------------------------------------------------

# (num_classes, dropout): values no default or constant of the project holds (10 classes, p = 0.25)
CONVNET_BUILT = ((13, 0.4375), (3, 0.125))


def convnet_here(convnet, built: list) -> list[dict]:
    """In the student's process (sub.run_local): for each (k, p), ConvNet(num_classes=k, dropout=p) on 16 seeded
    images: {"shape": its scores' shape in eval mode, "stable": two eval forwards equal, "p": the dropout
    probability the last nn.Linear's input shows in training mode (kept features scaled by 1 / (1 - p); None where
    no nn.Linear or nothing kept to read), "layers": every dropout layer's p, "error"}. torch's generator put back."""
    state = torch.get_rng_state()
    out = []
    try:
        for k, p in built:
            row: dict = {"shape": None, "stable": True, "p": None, "layers": [], "error": None}
            torch.manual_seed(0)
            try:
                model = convnet(num_classes=k, dropout=p)
                row["layers"] = [_dropout_p(m) for m in model.modules() if _dropout_p(m) is not None]
                linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
                seen: list[torch.Tensor] = []
                handle = linears[-1].register_forward_pre_hook(
                    lambda module, args: seen.append(args[0].detach().clone())) if linears else None
                images = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
                try:
                    with torch.no_grad():
                        model.eval()
                        first, second = model(images), model(images)
                        model.train()
                        model(images)
                finally:
                    if handle is not None:
                        handle.remove()
                row["shape"] = list(first.shape)
                row["stable"] = bool(torch.equal(first, second))
                if len(seen) == 3 and seen[0].shape == seen[2].shape:
                    kept = (seen[0] != 0) & (seen[2] != 0)
                    if bool(kept.any()):
                        ratio = (seen[2][kept] / seen[0][kept]).double().median().item()
                        row["p"] = 1.0 - 1.0 / ratio if ratio > 0 else None
            except Exception as e:  # noqa: BLE001 - what the constructor or forward raised is the finding
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            out.append(row)
    finally:
        torch.set_rng_state(state)
    return out


def convnet_problem(sub) -> str | None:
    """Whether ConvNet's constructor arguments take effect: num_classes scores per image, dropout's p in training
    mode (read from the features the last linear layer receives; each dropout layer's p where none is read). A
    dropout left on in eval mode is evaluation's finding (one bug, one deduction): its p is not judged here."""
    convnet = _handle(sub, "ConvNet")
    if convnet is None:
        return None
    return convnet_rows_problem(sub.run_local(convnet_here, convnet, [list(c) for c in CONVNET_BUILT]))


def convnet_rows_problem(rows: list[dict]) -> str | None:
    """convnet_problem's judgement of convnet_here's rows (CONVNET_BUILT's order)."""
    for (k, p), row in zip(CONVNET_BUILT, rows):
        call = f"ConvNet(num_classes={k}, dropout={p})"
        if row["error"]:
            return f"{call} raised {row['error']}"
        if row["shape"] != [16, k]:
            return (f"{call} gives scores of shape {tuple(row['shape'])} for 16 images, expected (16, {k}): the "
                    "constructor does not pass num_classes on to the last layer (a number of classes written in)")
        if not row["stable"]:
            continue
        measured = row["p"]
        if measured is None:
            off = [q for q in row["layers"] if abs(q - p) > 1e-6]
            measured = off[0] if off else None
        if measured is not None and abs(measured - p) > 1e-4:
            return (f"{call} drops features with p = {measured:.4g} in training mode (the kept ones scaled by "
                    f"1 / (1 - p) = {1 / (1 - measured):.4g}), not with p = {p}: the constructor does not pass its "
                    "dropout on (nn.Dropout(0.25) or F.dropout(x, 0.25) written in; nn.Dropout(dropout) and "
                    "self.dropout in forward)")
    return None


def convergence(sub, seed, p):
    """The test accuracy of the model train(seed, budget) returns, and train()'s contract: that model is
    the one its last step left (train_watched), not one kept from an earlier step."""
    model, losses = _trained(sub, seed, p["budget"])
    returned_earlier(seed, p["budget"])
    contract = (int(p.get("contract_seed", seed)), int(p.get("contract_steps", p["budget"])))
    if contract != (seed, p["budget"]):  # a training where the last step is not the best on test_set()
        _trained(sub, *contract)
        returned_earlier(*contract)
    # The accuracy of what training left in the parameters, computed here by the project's ConvNet on
    # them: not by the model's own forward, which a student's process could answer with anything (a
    # nearest-neighbour lookup of the training images in eval mode scored a broken training at 85%;
    # integrity round 14). A forward bug is first-loss's; this check measures the training.
    # On the held-out split the harness reads itself (held_out_set): test_set() is the submission's answer,
    # and its labels were the ones the accuracy was counted against (integrity round 8: a test_set() labelling
    # the held-out images with what a fixed, untrained model predicts scored accuracy 1 after a training that
    # diverged). Its images are mapped as train() fed its own (training_map), so that a normalisation wrong for
    # train and test alike is first-loss's alone, as before; a wrong test_set() is evaluation's alone.
    images, labels = held_out_set(_WATCHED[seed, p["budget"]].get("first_input"))
    # A model that is not the handed-out ConvNet fails here, never skips: an inconclusive convergence took its
    # points out of the maximum, and which parameters come back is the student's process's answer (integrity
    # round 7: one unused nn.Parameter beside a training that never learns turned 2/8 into 2/6). The project's
    # ConvNet, fixed, always fits; a model of another shape is a change first-loss sees only when it is used.
    parameters = sub.run_local(parameters_of, model)
    unfit = convnet_mismatch(parameters)
    if unfit:
        return {"violation": f"the model train() returns does not hold the project's ConvNet parameters ({unfit}), "
                             "so what its training learned cannot be measured: the accuracy is the harness's ConvNet's "
                             "on the parameters training left, and the project's model (model/net.py) is the one to "
                             "train, with no parameter added, removed or reshaped (an unused one included)"}
    accuracy = (convnet_scores(parameters, images).argmax(dim=1) == labels).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)]}


# The project's ConvNet (model/net.py of the handout): its parameters' shapes in the order a module registers
# them (conv1, conv2, fc: names are the student's, an nn.Sequential says 0.weight), None for the classes' count.
CONVNET = ((8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (None, 16 * 2 * 2), (None,))


def parameters_of(model: nn.Module) -> list[torch.Tensor]:
    """In the student's process (sub.run_local): the model's parameters in order, detached copies (plain data)."""
    return [p.detach().clone() for p in model.parameters()]


def convnet_mismatch(parameters) -> str | None:
    """What keeps `parameters` from being ConvNet's (a missing, extra or misshapen one), else None."""
    if not isinstance(parameters, list) or not all(isinstance(p, torch.Tensor) for p in parameters):
        return f"parameters came back as {type(parameters).__name__}"
    shapes = [tuple(p.shape) for p in parameters]
    want = [tuple("k" if w is None else w for w in shape) for shape in CONVNET]
    fits = len(shapes) == len(CONVNET) and all(
        len(got) == len(shape) and all(w is None or g == w for g, w in zip(got, shape)) for got, shape in zip(shapes, CONVNET))
    if not fits or shapes[4][0] != shapes[5][0] or not all(p.is_floating_point() for p in parameters):
        return f"parameters of shapes {shapes}, expected {want}"
    return None


def convnet_scores(parameters: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """ConvNet's forward in eval mode (dropout is the identity there), here in the harness, on `parameters`
    (CONVNET's order): conv 3x3 pad 1 -> relu -> max-pool 2, twice, -> flatten -> linear."""
    w1, b1, w2, b2, w3, b3 = parameters
    with torch.no_grad():
        x = images.to(w1.dtype)
        for weight, bias in ((w1, b1), (w2, b2)):
            x = F.max_pool2d(F.relu(F.conv2d(x, weight, bias, padding=1)), 2)
        return F.linear(x.flatten(1), w3, b3)


def returned_earlier(seed: int, steps: int) -> None:
    """A Violation if train(seed, steps), watched (train_watched), returned a model from an earlier step, or
    losses that keep the autograd graph of their step."""
    graph = _WATCHED[seed, steps].get("graph")
    if graph is not None:
        raise Violation(f"train({seed}, {steps})'s losses[{graph}] is a tensor that requires grad: it keeps the autograd "
                        "graph of its step alive, so memory grows with every step (and the losses cannot be saved as "
                        "numbers); record loss.item()")
    if _WATCHED[seed, steps].get("unapplied"):
        raise Violation(
            f"train({seed}, {steps}) returned the model with exactly the parameters its last step's forward pass "
            f"used: the gradient of step {steps - 1} (counted from 0) was never applied, though earlier steps did "
            "move the parameters. Likely optimizer.step() before loss.backward() (at the top of the loop): every "
            "step then applies the previous minibatch's gradient, the losses look right, and the last update is "
            "lost. The order is zero_grad(), forward, backward(), step()")
    typed = _WATCHED[seed, steps].get("typed")
    if typed:
        raise Violation(f"train({seed}, {steps}) returned {typed}, not a float as its annotation `-> tuple[nn.Module, "
                        "list[float]]` says (the losses as numbers): record loss.item(), a Python float")
    made = _WATCHED[seed, steps]["steps"]
    if made > steps:  # (blind round 9: a loop over enumerate(batches()) that breaks after the update of step `steps`)
        raise Violation(
            f"train({seed}, {steps}) recorded {steps} losses but backpropagated {made} minibatches (a training step is a "
            "forward pass whose loss backward() reaches): the model it returns has had more updates than its "
            f"{steps} steps. Likely the loop stops one minibatch late, its test (if step == steps: break) placed after "
            "that minibatch's backward() and step(), or a loop that counts from 0 to steps inclusive: train exactly "
            "`steps` minibatches (for _, (x, y) in zip(range(steps), batches(...)))")
    if made < steps:  # (blind round 7: a loop that breaks once it has recorded the last loss)
        raise Violation(
            f"train({seed}, {steps}) recorded {steps} losses but backpropagated only {made} of them (a training step "
            "is a forward pass whose loss backward() reaches): the model it returns has had fewer updates than its "
            f"{steps} steps. Likely the loop stops as soon as it has recorded the last loss, before that step's "
            "backward() and step(); each of the steps is zero_grad(), forward, backward(), step(), then the next")
    earlier = _WATCHED[seed, steps]["earlier"]
    if earlier is not None:
        raise Violation(
            f"train({seed}, {steps}) returned the model as it was after {earlier} of its {steps} steps, not after "
            f"the last: its parameters equal, exactly, those step {earlier}'s forward pass used (steps counted from "
            "0), and the training went on and changed them. A model kept for its accuracy or loss on held-out data "
            "(early stopping that evaluates on test_set() and restores the best checkpoint) makes the test accuracy "
            "a score the model was picked for, no longer an estimate: train() must return the model after its "
            "last step")


@keeps_rules
def evaluation(sub, seed, p):
    """Differences that are zero for a correct evaluate(): against itself, and against the model
    evaluated here in eval mode (loss = mean cross-entropy, accuracy = argmax agreement); the mode
    evaluate() leaves the model in; and a summary of the held-out split test_set() hands out. The model
    is handed over in training mode with settings no default has (every dropout's p set to UNUSUAL_P, as
    a ConvNet(dropout=0.375) would hold): evaluate() must hand back every layer's mode and settings as it
    found them, which a restore of hard-coded defaults (p = 0.25) does not."""
    model, _ = _trained(sub, seed, p["budget"])
    images, labels = _test_set(sub)
    found = sub.run_local(set_dropout_p, model, UNUSUAL_P)
    before = sub.run_local(module_settings, model)
    returned = sub.call("evaluate", model, images, labels)
    first = [float(v) for v in returned]
    second = [float(v) for v in sub.call("evaluate", model, images, labels)]
    if len(first) != 2:
        raise ApiError(f"evaluate() returned {len(first)} values; expected (loss, accuracy)")
    left_training = float(not model.training)  # 0 when evaluate() hands the model back in training mode
    after = sub.run_local(module_settings, model)
    # the shared model's own p again (not in a `finally`: after a timeout the student's process is gone)
    sub.run_local(set_dropout_p, model, found)
    changed = settings_changed(before, after)
    if changed:
        raise Violation(changed)
    # the model's gradients and parameters as evaluate() found them (blind round 9: model.zero_grad() in evaluate()
    # wipes what a caller's backward() left, evaluating between backward() and step())
    touched = sub.run_local(gradients_after_evaluate, sub.get("evaluate"), model, images[:100].clone(),
                            labels[:100].clone())
    if isinstance(touched, list) and len(touched) == 2:
        raise Violation(f"evaluate() changed the model it was given: {touched[0]}'s {touched[1]}. A caller may evaluate "
                        "between its backward() and its step() (logging during training, gradients accumulated over "
                        "several minibatches): evaluate() must hand the model back as it found it, its gradients "
                        "included: no model.zero_grad() (nor optimizer step) in it; torch.no_grad() alone keeps "
                        "autograd out of the evaluation")
    # test_set() hands out new tensors at every call (blind round 9: load_splits() memoised with functools.lru_cache
    # hands out the same ones, and a caller that writes into its images changes every later test_set())
    if sub.run_local(test_set_written_here, sub.get("test_set")) is True:
        raise Violation("test_set() handed out the very tensors an earlier call had returned: after the caller wrote "
                        "into the images and labels it got (images.zero_(), labels.zero_()), the next test_set() "
                        "returned them as written (zeros). A memoised load_splits() or test_set() (functools.lru_cache, "
                        "a module-level cache of the tensors) hands every caller the same tensors, so one caller's "
                        "in-place change (a normalisation written with -=, a .zero_()) corrupts the held-out set for "
                        "every later one: build new tensors at every call (a cached file read is fine where the tensors "
                        "are made from a copy of it, as torch.from_numpy(table.copy()) does)")
    typed = not_numbers(returned, ("loss", "accuracy"))
    if typed:
        raise Violation(f"evaluate() returned {typed}, not the numbers its annotation `-> tuple[float, float]` promises: "
                        "a tensor is no number to print with a format, compare, average or save as JSON (and a "
                        "tensor of the model keeps its device): .item() gives the float")
    scores = _scores_in_eval_mode(model, images)

    def own(k):
        return [F.cross_entropy(scores[:k], labels[:k]).item(), (scores[:k].argmax(dim=1) == labels[:k]).double().mean().item()]
    # the same on fewer images than the split holds: the first 100, and one (a count or a shape assumed)
    subsets = []
    for k, words in ((100, "the first 100 test images"), (1, "one test image (a batch of one)")):
        name = f"evaluate() on {words} minus the model's own numbers there (loss, accuracy)"
        try:
            got = [float(v) for v in sub.call("evaluate", model, images[:k].clone(), labels[:k].clone())]
            if len(got) != 2:
                raise ApiError(f"returned {len(got)} values; expected (loss, accuracy)")
            subsets.append({"name": name, "shape": [2], "values": [minus(got[0], own(k)[0]), minus(got[1], own(k)[1])],
                            "against": OWN_NUMBERS})
        except (RemoteError, ApiError, TypeError, ValueError) as e:  # this case's finding (a shape assumed)
            said = (e.message if isinstance(e, RemoteError) else f"{type(e).__name__}: {e}").splitlines()
            subsets.append({"name": name, "error": f"raised {said[0][:300] if said else type(e).__name__}"})
    # torch's global switches as evaluate() leaves them, read in the student's process right after it
    # returns (the call protocol restores them after every call, so only there can they be seen): a bare
    # torch.set_grad_enabled(False) leaves autograd off for every later training
    left_switches = sub.run_local(switches_after, sub.get("evaluate"), model, images[:100].clone(), labels[:100].clone())
    # logits in the hundreds (the model's scores x 100): a log of a softmax underflows to log(0) = -inf there,
    # a log-softmax (F.cross_entropy, logsumexp) stays finite. Relative: the loss itself is in the hundreds.
    large = sub.run_local(scaled_scores, model, LARGE_SCALE)
    name = (f"evaluate() on the model's scores x {LARGE_SCALE:g} (logits in the hundreds) minus the cross-entropy "
            "and accuracy there, relative")
    try:
        got = [float(v) for v in sub.call("evaluate", large, images[:100].clone(), labels[:100].clone())]
        big = _scores_in_eval_mode(large, images[:100].clone())
        want = [F.cross_entropy(big, labels[:100]).item(), (big.argmax(dim=1) == labels[:100]).double().mean().item()]
        subsets.append({"name": name, "shape": [2], "values": [relative_minus(g, w) for g, w in zip(got[:2], want)],
                        "against": "0 (the cross-entropy and accuracy of those scores, computed by the grader)"})
    except (RemoteError, ApiError, TypeError, ValueError) as e:
        said = (e.message if isinstance(e, RemoteError) else f"{type(e).__name__}: {e}").splitlines()
        subsets.append({"name": name, "error": f"raised {said[0][:300] if said else type(e).__name__}"})
    # handed over in eval mode (a caller that evaluates between its own evaluations): it must come back
    # so, which an evaluate() ending with a bare model.train() does not (red team, round 7)
    sub.run_local(set_training, model, False)
    sub.call("evaluate", model, images[:100].clone(), labels[:100].clone())
    left_training_from_eval = float(sub.run_local(set_training, model, True))  # 1 when it came back training
    return {"cases": [
        {"name": "second evaluate() minus the first, same model and images (loss, accuracy)",
         "shape": [2], "values": [minus(second[0], first[0]), minus(second[1], first[1])],
         "against": "0 (the same model evaluated twice must give the same numbers)"},
        {"name": "evaluate() minus the model's own numbers in eval mode (loss, accuracy)",
         "shape": [2], "values": [minus(first[0], own(len(labels))[0]), minus(first[1], own(len(labels))[1])],
         "against": OWN_NUMBERS},
        *subsets,
        {"name": "after evaluate(), 1 if the model is left in eval mode (training goes on in training mode)",
         "shape": [1], "values": [left_training]},
        {"name": "after evaluate() of a model handed over in eval mode, 1 if it is left in training mode "
                 "(hand it back in the mode it came in, not always in training mode)",
         "shape": [1], "values": [left_training_from_eval]},
        {"name": "after evaluate(), 1 where it left torch's global switches changed: autograd off (a bare "
                 "torch.set_grad_enabled(False) where a no_grad() block belongs), the default dtype, autograd on "
                 "when the caller had it off (set_grad_enabled(True) at the end instead of restoring what it found), "
                 "torch's random generator reseeded (torch.manual_seed in evaluate(): every draw after it, batches and "
                 "dropout masks, is then the same whatever the run's seed; evaluate() draws no random number)",
         "shape": [4], "values": left_switches},
        *held_out_summary(images, labels, p["classes"], _WATCHED[seed, p["budget"]].get("first_input")),
    ]}


# what the differences of evaluate() and the model's own numbers are compared with (agreement's `against`)
OWN_NUMBERS = "0 (the model's own mean cross-entropy and accuracy in eval mode, computed by the grader)"


def minus(got: float, want: float) -> float:
    """got - want, 0 where both are the same non-finite value: evaluate() giving nan where the model's own
    numbers are nan (a training that diverged: first-loss and convergence charge it) agrees with the model."""
    if got == want or (math.isnan(got) and math.isnan(want)):
        return 0.0
    return got - want


def relative_minus(got: float, want: float) -> float:
    """minus(got, want) relative to want (absolute below 1); inf where got is not finite and want is."""
    difference = minus(got, want)
    if difference == 0.0:
        return 0.0
    return difference / max(1.0, abs(want)) if math.isfinite(difference) and math.isfinite(want) else math.inf


LARGE_SCALE = 100.0  # the trained model's logits (a few units) x 100: hundreds, where exp underflows in float32


class _Scaled(nn.Module):
    """A model's scores times `factor` (built in the student's process by scaled_scores)."""

    def __init__(self, model: nn.Module, factor: float):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, images):
        return self.model(images) * self.factor

    def __getattr__(self, name: str):
        """The wrapped model's attributes as its own (model.dropout.p = 0 in an evaluate() that turns dropout
        off by hand: an AttributeError here took a correct evaluate()'s point, round 13's blind red team)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)


def scaled_scores(model: nn.Module, factor: float) -> nn.Module:
    """In the student's process (sub.run_local): `model` with its scores times `factor`, for evaluate()."""
    return _Scaled(model, factor)


def switches_after(evaluate, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """In the student's process (sub.run_local): evaluate(model, images, labels) with autograd on and the
    default dtype float32, then again with autograd off (a caller inside torch.no_grad()): [1 if autograd is
    off after the first, 1 if the default dtype changed, 1 if autograd is on after the second, 1 if it reseeds
torch's generator]; all put back.
    torch.set_grad_enabled(False) ... set_grad_enabled(True) passes the first and fails the second (round 13's
    blind red team): evaluate() must hand torch's switches back as it found them, whichever they were."""
    dtype = torch.get_default_dtype()
    with torch.enable_grad():
        try:
            evaluate(model, images, labels)
            found = [float(not torch.is_grad_enabled()), float(torch.get_default_dtype() != dtype)]
        finally:
            torch.set_default_dtype(dtype)
    with torch.no_grad():
        evaluate(model, images, labels)
        found.append(float(torch.is_grad_enabled()))
    # Two callers seeded apart (a training going on after a validation): the same random numbers after
    # evaluate() means it reseeded torch's generator (torch.manual_seed inside "for repeatable numbers"), so
    # every later draw (batches, dropout masks) is the same whatever the run's seed. Drawing from the
    # generator (a DataLoader's iterator does) moves it but keeps the seeds apart: not this.
    state = torch.get_rng_state()
    try:
        after = []
        for seed in (2019, 7):
            torch.manual_seed(seed)
            evaluate(model, images, labels)
            after.append(torch.rand(4, dtype=torch.float64))
        found.append(float(torch.equal(after[0], after[1])))
    finally:
        torch.set_rng_state(state)
    return found


# A dropout probability no layer of the project defaults to (ConvNet's 0.25, nn.Dropout's 0.5, 0 for none):
# a model built with it tells an evaluate() that restores what it found from one that restores defaults.
UNUSUAL_P = 0.375


def _dropout_p(module: nn.Module) -> float | None:
    """A dropout layer's probability (torch's dropouts, or a module of the student's named so), else None."""
    p = getattr(module, "p", None)
    dropout = isinstance(module, nn.modules.dropout._DropoutNd) or "dropout" in type(module).__name__.lower()
    return float(p) if dropout and _number(p) and 0 <= p < 1 else None


def set_training(model: nn.Module, mode: bool) -> bool:
    """In the student's process (sub.run_local): the mode the model was in, then model.train(mode)."""
    was = bool(model.training)
    model.train(mode)
    return was


def set_dropout_p(model: nn.Module, p) -> list:
    """In the student's process (sub.run_local): every dropout layer (_dropout_p) gets `p` (a number), or
    its own from `p` (a list, as this returned it); returns what they held before."""
    held, k = [], 0
    for _, module in model.named_modules():
        if _dropout_p(module) is not None:
            held.append(module.p)
            module.p = p[k] if isinstance(p, list) else p
            k += 1
    return held


def module_settings(model: nn.Module) -> list[list]:
    """[name, class, training, settings] of every submodule, settings being its plain attributes (a
    dropout's p and inplace, a layer's sizes; {name: value} of numbers, strings and tuples of them), in
    the student's process (sub.run_local): what evaluate() must hand back as it found it."""
    rows = []
    for name, module in model.named_modules():
        settings = {key: (list(value) if isinstance(value, tuple) else value)
                    for key, value in vars(module).items()
                    if not key.startswith("_") and key != "training" and _plain(value)}
        rows.append([name, type(module).__name__, bool(module.training), settings])
    return rows


def gradients_after_evaluate(evaluate, model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """In the student's process (sub.run_local): evaluate(model, images, labels) with every parameter's .grad set to
    seeded values (as a caller's backward() leaves them), then what of the model it changed: [parameter name, "gradient
    (None now)" or "gradient (other values now)" or "values"], or None where nothing changed or evaluate() raised (the
    evaluation's other cases report that). Every .grad is put back as it was found, torch's generator untouched."""
    named = list(model.named_parameters())
    held = [q.grad for _, q in named]
    generator = torch.Generator().manual_seed(9)
    given = [torch.randn(q.shape, generator=generator, dtype=q.dtype).to(q.device) for _, q in named]
    values = [q.detach().clone() for _, q in named]
    try:
        for (_, q), g in zip(named, given):
            q.grad = g.clone()
        try:
            evaluate(model, images, labels)
        except Exception:  # noqa: BLE001 - a call that raises is the other cases' finding
            return None
        def same(a: torch.Tensor, b: torch.Tensor) -> bool:  # NaN where NaN was is the same (a diverged training)
            return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())
        for (name, q), g, v in zip(named, given, values):
            if q.grad is None:
                return [name, "gradient (None after the call)"]
            if not same(q.grad.detach(), g):
                return [name, "gradient (other values after the call)"]
            if not same(q.detach(), v):
                return [name, "values"]
        return None
    finally:
        for (_, q), g in zip(named, held):
            q.grad = g


def test_set_written_here(test_set) -> bool | None:
    """In the student's process (sub.run_local): test_set() twice, the caller writing zeros into the first call's
    images and labels in between; True where the second call returned them as written (the same tensors, handed out
    again), False where it returned the held-out set as before, None where it could not be told (a call raised, not
    a pair of tensors, tensors that cannot be written). What the first call returned is put back as it was."""
    try:
        first = test_set()
        images, labels = first
        kept = [images.detach().clone(), labels.detach().clone()]
    except Exception:  # noqa: BLE001 - the evaluation's other cases report a test_set() that fails
        return None
    if not (bool(kept[0].any()) or bool(kept[1].any())):
        return None
    try:
        with torch.no_grad():
            images.zero_()
            labels.zero_()
    except Exception:  # noqa: BLE001 - tensors that cannot be written: nothing a caller could change
        return None
    try:
        again = test_set()
        return bool(isinstance(again, (tuple, list)) and len(again) == 2
                    and all(isinstance(t, torch.Tensor) for t in again)
                    and not (bool(again[0].any()) or bool(again[1].any())))
    except Exception:  # noqa: BLE001 - see above
        return None
    finally:
        with torch.no_grad():
            images.copy_(kept[0])
            labels.copy_(kept[1])


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value) -> bool:
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return isinstance(value, (bool, int, float, str))


def settings_changed(before: list[list], after: list[list]) -> str | None:
    """What evaluate() changed in a layer and left so, in words with its likely cause (None: nothing).
    The model's own mode is the measured case "left in eval mode"; here, a layer whose mode no longer
    follows the model's, and any setting (a dropout's p above all) that differs from before the call."""
    model_mode_kept = bool(before and after) and before[0][2] == after[0][2]
    now_rows = {row[0]: row for row in after}
    for name, kind, mode_before, settings_before in before:
        if name not in now_rows:
            continue
        _, _, mode_after, settings_after = now_rows[name]
        layer = f"layer {name!r} ({kind})" if name else f"the model ({kind})"
        for key, value in settings_before.items():
            now = settings_after.get(key, "(deleted)")
            if now == value:
                continue
            if key == "p" and _number(value) and _number(now):
                cause = ("it was set to 0 to switch dropout off and never set back" if now == 0 else
                         f"dropout was switched off through p and then set back to a fixed {now:g} (a default), "
                         "not to the p the model had")
                return (f"evaluate() changed {layer}: its p was {value:g} before the call (a model built with "
                        f"dropout={value:g}) and is {now:g} after it, and training goes on so: {cause}. "
                        "Switch dropout off for the evaluation with model.eval(), and hand the model back with "
                        "model.train(): neither touches p")
            return (f"evaluate() changed {layer}: its {key} was {value!r} before the call and is {now!r} after it. "
                    "evaluate() must leave every layer's settings as it found them")
        if name and mode_before != mode_after and model_mode_kept:
            return (f"evaluate() left {layer} in {'training' if mode_after else 'eval'} mode while the model is "
                    f"back in {'training' if after[0][2] else 'eval'} mode: one layer's mode was switched "
                    "(model.dropout.eval(), or .training set by hand) and not set back. model.eval() and "
                    "model.train() switch every layer together")
    return None


def held_out_summary(images: torch.Tensor, labels: torch.Tensor, classes: int,
                     training: torch.Tensor | None = None) -> list[dict]:
    """What test_set() hands out, summarised: its size, the count of each label, and its images mapped back to
    raw pixels through the map (scaling and normalisation) the project's own training images went through
    (`training`: a minibatch as train() fed it to the model; the spec's map where none was seen), compared with
    the held-out split's raw pixels. One bug, one deduction: the API asks for test images "normalised like the
    training images"; a normalisation wrong for both (statistics of all 1797 images, a scale of 1/255) changes
    train()'s losses, which first-loss charges, and is no finding of test_set()."""
    images = images.double()
    counts = torch.bincount(labels.reshape(-1), minlength=classes).double().tolist()[:classes]
    split = "the reference's held-out split"
    scale, shift, seen = training_map(training)
    raw = _raw_test_pixels()
    back = (images - shift) / scale
    off = (back.reshape(len(back), -1) - raw).abs().max().item() if back.numel() == raw.numel() else math.inf
    where = "the training minibatches train() fed to the model" if seen else "the spec's (train() showed none)"
    return [
        {"name": "test_set(): number of images", "shape": [1], "values": [float(len(images))], "against": split},
        {"name": "test_set(): images of each label 0..9", "shape": [classes], "values": counts, "against": split},
        {"name": "test_set(): its pixels mapped back through the training images' scaling and normalisation, minus "
                 "the held-out split's raw pixels 0..16 (largest |difference|)", "shape": [1],
         "values": [off if math.isfinite(off) else 1e30],
         "against": f"0 (the held-out raw pixels; the training images' map read from {where})"},
    ]


# the spec's map of raw pixels 0..16 to the training images' values (data/digits.py: /16, then MEAN and STD)
SPEC_SCALE, SPEC_SHIFT = 1 / (16.0 * 0.3750), -0.3051 / 0.3750


def training_map(batch: torch.Tensor | None) -> tuple[float, float, bool]:
    """(scale, shift, read) with batch = scale * raw + shift, raw the pixels 0..16: read from a training
    minibatch (its smallest value is a raw 0, every digit's corners are; the smallest gap between its distinct
    values one unit of raw intensity), else the spec's map and False."""
    if not isinstance(batch, torch.Tensor) or batch.numel() < 64 or not torch.isfinite(batch).all():
        return SPEC_SCALE, SPEC_SHIFT, False
    values = torch.unique(batch.double().reshape(-1))
    gaps = values.diff()
    if len(values) < 3 or not bool((gaps > 0).all()):
        return SPEC_SCALE, SPEC_SHIFT, False
    shift, unit = values[0].item(), gaps.min().item()
    units = round((values[-1].item() - shift) / unit)
    if not 1 <= units <= 16:
        return SPEC_SCALE, SPEC_SHIFT, False
    return (values[-1].item() - shift) / units, shift, True


def held_out_set(training: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out split (images (297, 1, 8, 8), labels (297,)), read here from the digits file and mapped as
    the project's training images were (`training`: a minibatch as train() fed it to the model; training_map),
    float32 as load_splits() makes them: what a right test_set() hands out, whatever this one does."""
    scale, shift, _ = training_map(training)
    images = (_raw_test_pixels() * scale + shift).to(torch.float32).reshape(-1, 1, 8, 8)
    return images, _RAW[1]


_RAW: list[torch.Tensor] = []


def _raw_test_pixels() -> torch.Tensor:
    """The held-out split's raw pixels (297, 64), 0..16: the digits file scikit-learn's wheel ships, rows 1500 on
    (and _RAW[1], their labels)."""
    if not _RAW:
        import gzip
        import importlib.util
        from pathlib import Path

        import numpy as np

        found = importlib.util.find_spec("sklearn")
        path = Path(list(found.submodule_search_locations or [])[0]) / "datasets" / "data" / "digits.csv.gz"
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
        _RAW.append(torch.from_numpy(table[1500:, :64].copy()))
        _RAW.append(torch.from_numpy(table[1500:, 64].copy()).long())
    return _RAW[0]


# A printed number, its decimals and exponent: "2.31", "95.29", "1e-3", "2.3051e+00".
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.(\d*))?(?:[eE]([-+]?\d+))?")


def printed_numbers(text: str) -> list[tuple[float, float]]:
    """Every number in `text` that says something of a value, with the rounding its printed digits allow
    (half a unit of its last digit). A number with fewer than two significant digits says too little:
    half a unit of "0e1" is 5, which held every loss under 5 and every accuracy (red team, round 8: full
    marks for printing `done: 0e1`), and "0" or "1" would hold any accuracy below or above a half.
    Two digits take nothing from an honest print: "93%", "0.12", "2.3" and the reference's own
    formats all have them. A number with fewer digits still shows the value it states exactly (tolerance 0):
    an accuracy of exactly 0 printed "0.00%" (an evaluate() whose integer division gives 0 is evaluation's to
    charge, not this check's: one bug, one deduction), never a value it merely rounds."""
    out = []
    for m in _NUMBER.finditer(text):
        value = float(m.group(0))
        decimals, exponent = len(m.group(1) or ""), int(m.group(2) or 0)
        unit = 10.0 ** (exponent - decimals)
        if not math.isfinite(value):
            continue
        if abs(value) < 10 * unit:  # (a zero among them: no digit at all) exactly what it says, no rounding
            out.append((value, 0.0))
            continue
        out.append((value, 0.5 * unit + 1e-9 * abs(value)))
    return out


def shows(numbers: list[tuple[float, float]], value: float, percent: bool = False) -> bool:
    """Whether one of the printed numbers is `value` as printed (or 100 x value, for a percentage)."""
    wanted = [value, 100 * value] if percent else [value]
    return any(abs(x - w) <= tol for x, tol in numbers for w in wanted)


def script(sub, seed, p):
    """main(argv), as `python main.py ARGS` runs it, for each run of the check: it must call
    train(seed, steps) with the arguments' values (defaults seed 1, steps 300), and print, in any
    format and among any other lines, the first loss train() returned and the test loss and accuracy
    of the trained model (as evaluate() returned them on test_set(); a percentage is fine). Judged on
    the student's own numbers, so a bug in train() or evaluate() is charged by their checks, not
    here. train() runs at most p["max_steps"] steps here."""
    sub.get("main")  # a missing main() is an API error before anything runs
    real_train, real_evaluate = sub.get("train"), sub.get("evaluate")
    test_images, test_labels = _test_set(sub)
    checked, violations = [], []
    for run in p["runs"]:
        argv, (want_seed, want_steps) = list(run["argv"]), run["trains"]
        command = " ".join(["python main.py", *argv])

        def prop(argv=argv, want_seed=want_seed, want_steps=want_steps):
            calls, firsts, models, evaluated = [], [], [], []

            def short_train(seed, steps):
                calls.append((seed, steps))
                model, losses = real_train(seed, min(int(steps), p["max_steps"]))
                firsts.append(float(losses[0]))
                models.append(model)
                return model, losses

            def recording_evaluate(model, images, labels):
                result = real_evaluate(model, images, labels)
                on_test = tuple(images.shape) == tuple(test_images.shape) and torch.equal(images, test_images)
                evaluated.append(([float(v) for v in result], on_test, len(images)))
                return result

            try:  # main() runs in the student's process, calling back into the recording versions
                with sub.replaced("train", short_train), sub.replaced("evaluate", recording_evaluate):
                    _, printed = sub.call_printing("main", list(argv))
            except RemoteError as e:
                if e.message.startswith("SystemExit"):
                    return f"main() exited: {e.message}"
                raise
            if len(calls) != 1:
                return f"main() called train() {len(calls)} times; expected once, train({want_seed}, {want_steps})"
            given = [v for v in calls[0] if isinstance(v, (bool, str, float)) or not hasattr(type(v), "__index__")]
            if given:  # "20" from argv unconverted: range("20") raises where the real train() runs
                return (f"main() called train{calls[0]!r}: the seed and the steps must be ints, but it passed "
                        f"{type(given[0]).__name__} {given[0]!r} (argparse's type=int, or int(...))")
            if [float(v) for v in calls[0]] != [want_seed, want_steps]:
                return (f"main() called train{calls[0]}; expected train({want_seed}, {want_steps}): read --seed "
                        "(default 1) and --steps (default 300) and pass them to train(seed, steps) in that order")
            numbers, text = printed_numbers(printed), printed.strip()
            shown = f"; it printed {text[-300:]!r}" if text else "; it printed nothing"
            if not shows(numbers, firsts[0]):
                return f"main() does not print the first loss train() returned ({firsts[0]!r}){shown}"
            on_test = [values for values, test, _ in evaluated if test]
            if not on_test:
                if evaluated:
                    return (f"main() evaluated the model on {evaluated[0][2]} images, not on the {len(test_images)} "
                            "of test_set(): report the test loss and accuracy")
                on_test = [[float(v) for v in real_evaluate(models[0], test_images, test_labels)]]
            loss, accuracy = on_test[-1][:2]
            if not shows(numbers, loss):
                return f"main() does not print the test loss ({loss:.6g}, from evaluate() on test_set()){shown}"
            if not shows(numbers, accuracy, percent=True):
                return (f"main() does not print the test accuracy ({accuracy:.6g}, or {100 * accuracy:.4g}%, from "
                        f"evaluate() on test_set()){shown}")
            return None
        # No try/except around it: an exception raised by the project is a crash, reported as every other
        # check reports it (with its file and line), not a property of main().
        checked.append(f"`{command}`")
        problem = prop()
        if problem:
            violations.append(f"`{command}`: {problem}")
    return {"checked": checked, "violations": violations}
