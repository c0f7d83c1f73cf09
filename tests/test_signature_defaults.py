"""A signature default that differs from the spec's (blind round 7: exercise-5's train() defaulting to 'sigmoid'
where the spec says activation='tanh' kept full marks, every check passing the activation explicitly).

Every API function whose spec signature gives defaults is probed with them left out: by invariants'
keeps_defaults (exercise-5), or by its exercise's own check (exercise-4's hinge, exercise-8's conv-agreement,
exercise-6's defaults for the optimizers' __init__). Each has a bugged variant that changes the default, so
that `dldiy validate` proves the probe; a new exercise with defaults needs one too."""

from __future__ import annotations

import re

import pytest

from conftest import REPO
from dldiy.graders.course.exercise import exercise_ids, load_exercise, returns_names, signature_defaults


def test_signature_defaults_read_literals_in_order_and_skip_classes():
    assert signature_defaults("train(X, y, params, lr, steps, activation='tanh') -> (params, losses)") == [
        ("activation", "tanh")]
    assert signature_defaults("conv2d(x, weight, bias, stride=1, padding=0) -> Tensor") == [("stride", 1), ("padding", 0)]
    assert signature_defaults("f(a, b=(0.9, 0.999)) -> x") == [("b", (0.9, 0.999))]
    assert signature_defaults("loss(X, y, w) -> Tensor") == []
    assert signature_defaults("class GD(torch.optim.Optimizer): __init__(self, params, lr=1e-3)") == []
    assert signature_defaults("f(a, b=some_name) -> x") == []  # not a literal: nothing probed
    assert returns_names("train(X, y, params, lr, steps) -> (params, losses)") == ["params", "losses"]
    assert returns_names("init_params(sizes, generator) -> [W1, b1, W2, b2, ...]") == []


def _with_defaults() -> list[tuple[str, str, list]]:
    found = []
    for exercise_id in exercise_ids():
        for name, entry in load_exercise(exercise_id).api.items():
            if entry.defaults():
                found.append((exercise_id, name, entry.defaults()))
    return found


def test_the_course_signatures_with_defaults_are_the_known_ones():
    assert {(e, n): d for e, n, d in _with_defaults()} == {
        ("exercise-4", "multiclass_hinge"): [("margin", 1.0)],
        ("exercise-5", "mlp_forward"): [("activation", "tanh")],
        ("exercise-5", "train"): [("activation", "tanh")],
        ("exercise-8", "conv2d"): [("stride", 1), ("padding", 0)],
    }


@pytest.mark.parametrize("exercise_id, name, defaults", _with_defaults())
def test_every_function_with_defaults_has_a_bugged_variant_that_changes_one(exercise_id, name, defaults):
    """The category's variants: a bug.diff of buggy/<exercise>/ that rewrites `def name(...)` with another default."""
    variants = []
    for diff in sorted((REPO / "buggy" / exercise_id).glob("*/bug.diff")):
        text = diff.read_text()
        removed = re.search(rf"^-\s*def {name}\((.*)\):", text, re.M)
        added = re.search(rf"^\+\s*def {name}\((.*)\):", text, re.M)
        if removed and added and signature_defaults(f"{name}({added[1]})") != defaults:
            variants.append(diff.parent.name)
    assert variants, f"{exercise_id}: no bugged variant changes a default of {name}() ({defaults})"
