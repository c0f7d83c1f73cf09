"""exercise-3 probes. The student's project is loaded from its folder (main.py imports its own
packages); the probes call main.py's documented entry points, train(), evaluate() and test_set(),
and return plain numbers. Unlike other exercises the data and the initialisation come from the
project itself: what is checked is that the whole pipeline reproduces the reference's numbers.
"""

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from dldiy.graders.api import ApiError, expect_tensor
from dldiy.graders.kinds.invariants import Violation, keeps_rules
from dldiy.graders.sandbox.endpoint import RemoteError

_TRAINED: dict[tuple[int, int], tuple[nn.Module, list[float]]] = {}


def _train(sub, seed: int, steps: int) -> tuple[nn.Module, list[float]]:
    result = sub.call("train", seed, steps)
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
    """A model trained once per (seed, steps) and shared by the checks that only read it."""
    if (seed, steps) not in _TRAINED:
        _TRAINED[seed, steps] = _train(sub, seed, steps)
    model, losses = _TRAINED[seed, steps]
    model.train()  # as train() leaves it, whatever an earlier probe did
    return model, losses


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
    steps = p["steps"]
    _, losses = _train(sub, seed, max(steps) + 1)
    return {"steps": steps, "losses": [losses[k] for k in steps], "n": p["n"]}


def convergence(sub, seed, p):
    model, losses = _trained(sub, seed, p["budget"])
    images, labels = _test_set(sub)
    accuracy = (_scores_in_eval_mode(model, images).argmax(dim=1) == labels).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)]}


@keeps_rules
def evaluation(sub, seed, p):
    """Differences that are zero for a correct evaluate(): against itself, and against the model
    evaluated here in eval mode (loss = mean cross-entropy, accuracy = argmax agreement); the mode
    evaluate() leaves the model in; and a summary of the held-out split test_set() hands out."""
    model, _ = _trained(sub, seed, p["budget"])
    images, labels = _test_set(sub)
    before = sub.run_local(module_settings, model)
    first = [float(v) for v in sub.call("evaluate", model, images, labels)]
    second = [float(v) for v in sub.call("evaluate", model, images, labels)]
    if len(first) != 2:
        raise ApiError(f"evaluate() returned {len(first)} values; expected (loss, accuracy)")
    left_training = float(not model.training)  # 0 when evaluate() hands the model back in training mode
    after = sub.run_local(module_settings, model)
    # a dropout's p set to 0 instead of model.eval(): the numbers are right, but training goes on without dropout
    for (name, kind, _, p_before), (_, _, _, p_after) in zip(before, after):
        if p_before != p_after:
            raise Violation(f"evaluate() changed layer {name or 'model'!r} ({kind}): its p went from {p_before:g} to "
                            f"{p_after:g}, and stays so when training goes on. Switch dropout off for the evaluation "
                            "with model.eval(), and hand the model back with model.train()")
    scores = _scores_in_eval_mode(model, images)
    own = [F.cross_entropy(scores, labels).item(), (scores.argmax(dim=1) == labels).double().mean().item()]
    return {"cases": [
        {"name": "second evaluate() minus the first, same model and images (loss, accuracy)",
         "shape": [2], "values": [second[0] - first[0], second[1] - first[1]]},
        {"name": "evaluate() minus the model's own numbers in eval mode (loss, accuracy)",
         "shape": [2], "values": [first[0] - own[0], first[1] - own[1]]},
        {"name": "after evaluate(), 1 if the model is left in eval mode (training goes on in training mode)",
         "shape": [1], "values": [left_training]},
        *held_out_summary(images, labels, p["classes"]),
    ]}


def module_settings(model: nn.Module) -> list[list]:
    """[name, class, training, p] of every submodule (p: a dropout's probability, None for other layers),
    in the student's process (sub.run_local): what evaluate() must hand back as it found it."""
    rows = []
    for name, module in model.named_modules():
        p = getattr(module, "p", None)
        rows.append([name, type(module).__name__, bool(module.training),
                     float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else None])
    return rows


def held_out_summary(images: torch.Tensor, labels: torch.Tensor, classes: int) -> list[dict]:
    """What test_set() hands out, summarised: its size, the count of each label, and the sum and the
    sum of squares of its images (normalised as the reference normalises them)."""
    images = images.double()
    counts = torch.bincount(labels.reshape(-1), minlength=classes).double().tolist()[:classes]
    return [
        {"name": "test_set(): number of images", "shape": [1], "values": [float(len(images))]},
        {"name": "test_set(): images of each label 0..9", "shape": [classes], "values": counts},
        {"name": "test_set(): sum and sum of squares of the pixels", "shape": [2],
         "values": [images.sum().item(), (images ** 2).sum().item()]},
    ]


# A printed number, its decimals and exponent: "2.31", "95.29", "1e-3", "2.3051e+00".
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.(\d*))?(?:[eE]([-+]?\d+))?")


def printed_numbers(text: str) -> list[tuple[float, float]]:
    """Every number in `text` with the rounding its printed digits allow (half a unit of its last digit)."""
    out = []
    for m in _NUMBER.finditer(text):
        value = float(m.group(0))
        decimals, exponent = len(m.group(1) or ""), int(m.group(2) or 0)
        out.append((value, 0.5 * 10.0 ** (exponent - decimals) + 1e-9 * abs(value)))
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
