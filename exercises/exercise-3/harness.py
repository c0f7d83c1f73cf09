"""exercise-3 probes. The student's project is loaded from its folder (main.py imports its own
packages); the probes call main.py's documented entry points, train(), evaluate() and test_set(),
and return plain numbers. Unlike other exercises the data and the initialisation come from the
project itself: what is checked is that the whole pipeline reproduces the reference's numbers.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from dldiy.graders.api import ApiError, expect_tensor

_TRAINED: dict[tuple[int, int], tuple[nn.Module, list[float]]] = {}


def _train(sub, seed: int, steps: int) -> tuple[nn.Module, list[float]]:
    result = sub.call("train", seed, steps)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ApiError(f"train(seed, steps) returned {type(result).__name__}; expected a pair (model, losses)")
    model, losses = result
    if not isinstance(model, nn.Module):
        raise ApiError(f"train() returned a {type(model).__name__} as its model; expected a torch.nn.Module")
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
    evaluated here in eval mode (loss = mean cross-entropy, accuracy = argmax agreement)."""
    model, _ = _trained(sub, seed, p["budget"])
    images, labels = _test_set(sub)
    first = [float(v) for v in sub.call("evaluate", model, images, labels)]
    second = [float(v) for v in sub.call("evaluate", model, images, labels)]
    if len(first) != 2:
        raise ApiError(f"evaluate() returned {len(first)} values; expected (loss, accuracy)")
    scores = _scores_in_eval_mode(model, images)
    own = [F.cross_entropy(scores, labels).item(), (scores.argmax(dim=1) == labels).double().mean().item()]
    return {"cases": [
        {"name": "second evaluate() minus the first, same model and images (loss, accuracy)",
         "shape": [2], "values": [second[0] - first[0], second[1] - first[1]]},
        {"name": "evaluate() minus the model's own numbers in eval mode (loss, accuracy)",
         "shape": [2], "values": [first[0] - own[0], first[1] - own[1]]},
    ]}
