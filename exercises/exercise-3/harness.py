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
from dldiy.graders.endpoint import RemoteError

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


def evaluation(sub, seed, p):
    """Differences that are zero for a correct evaluate(): against itself, and against the model
    evaluated here in eval mode (loss = mean cross-entropy, accuracy = argmax agreement); the mode
    evaluate() leaves the model in; and a summary of the held-out split test_set() hands out."""
    model, _ = _trained(sub, seed, p["budget"])
    images, labels = _test_set(sub)
    first = [float(v) for v in sub.call("evaluate", model, images, labels)]
    second = [float(v) for v in sub.call("evaluate", model, images, labels)]
    if len(first) != 2:
        raise ApiError(f"evaluate() returned {len(first)} values; expected (loss, accuracy)")
    left_training = float(not model.training)  # 0 when evaluate() hands the model back in training mode
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


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def script(sub, seed, p):
    """main(argv), as `python main.py ARGS` runs it, for each argv of the check: the (seed, steps) it
    passes to train(), and every number it prints. train() runs at most p["max_steps"] steps here
    (the numbers printed are then those of the shortened run, for the reference as for the student)."""
    real_train = sub.get("train")
    sub.get("main")
    cases = []
    for argv in p["argvs"]:
        calls = []

        def short_train(seed, steps):
            calls.append([float(seed), float(steps)])
            return real_train(seed, min(int(steps), p["max_steps"]))

        try:
            with sub.replaced("train", short_train):
                _, printed_text = sub.call_printing("main", list(argv))
        except RemoteError as e:
            raise ApiError(f"main({argv}) failed: {e.message}") from None
        command = " ".join(["python main.py", *argv])
        printed = [float(v) for v in _NUMBER.findall(printed_text)]
        cases.append({"name": f"`{command}`: the (seed, steps) it trains with", "shape": [len(calls), 2],
                      "values": calls})
        cases.append({"name": f"`{command}`: the numbers it prints", "shape": [len(printed)], "values": printed})
    return {"cases": cases}
