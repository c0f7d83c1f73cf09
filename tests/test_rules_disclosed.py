"""Every rule a spec's `forbid` holds is told to the student in the files `dldiy start` hands out.

Blind round 7: exercise-4's template said "Use torch operations" and nothing else, and a correct solution
built on F.l1_loss and F.mse_loss lost five checks to rules it could not have read (a false failure). A rule
is disclosed when the handed-out text names the function (or a name it extends: `max_pool2d` covers
`max_pool2d_with_indices`), or, for a family, says the family: derivatives by hand (autograd, torch.func,
backward()), or never inverting a matrix. Operator-level and structural rules ("aten.*", "operators",
"complex", private modules) come with the family they close."""

from __future__ import annotations

import tomllib

import pytest
from conftest import REPO

EXERCISES = sorted(p.name for p in (REPO / "exercises").iterdir() if (p / "spec.toml").is_file())
AUTOGRAD = ("torch.autograd.", "torch.func.", "torch.Tensor.backward", "torch.nn.grad.")
INVERSES = {"inverse", "inv", "inv_ex", "pinv", "pinverse", "cholesky_inverse", "tensorinv"}


def _handed_out(exercise: str) -> str:
    """The template files `dldiy start` writes; or, where the exercise has a source notebook, the student's
    notebook `dldiy release` makes of it (its solutions stripped): each form must tell the rules itself."""
    folder = REPO / "exercises" / exercise / "template"
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in (".py", ".ipynb", ".md"))


def _notebook_handed_out(exercise: str) -> str:
    import json

    from dldiy.graders.course.notebook import strip_solutions

    source = REPO / "reference" / exercise / "source.ipynb"
    if not source.is_file():
        return ""
    cells = json.loads(source.read_text())["cells"]
    return "\n".join(strip_solutions("".join(c["source"]))[0] for c in cells)


def _spellings(rule: str) -> set[str]:
    """How a text names the function `rule` (never its bare name: exercise-4's own function is called
    l1_loss, which says nothing of F.l1_loss): its dotted name, its last two parts (functional.l1_loss,
    Tensor.softmax, nn.RNNCell), F.NAME for torch.nn.functional's, and the same for a name it extends
    (F.max_pool2d names F.max_pool2d_with_indices too)."""
    parts = rule.split(".")
    names = {rule, ".".join(parts[-2:])}
    if rule.startswith("torch.nn.functional."):
        names.add("F." + parts[-1])
    stems = {n.rsplit("_", k)[0] for n in names for k in (1, 2) if "_" in n.split(".")[-1]}
    return names | {s for s in stems if "." in s and len(s.split(".")[-1]) >= 6}


def _undisclosed(exercise: str, notebook: bool = False) -> list[str]:
    """The API names with a rule on one of torch's functions of which the handed-out text names none: a
    rule is told as a family (F.conv2d's doc names nn.Conv2d and torch.conv2d for the student), so one
    spelling of one of them is enough; derivatives by hand and matrices never inverted are families too."""
    spec = tomllib.loads((REPO / "exercises" / exercise / "spec.toml").read_text())
    text = _notebook_handed_out(exercise) if notebook else _handed_out(exercise)
    if not text:
        return []
    lower = text.lower()
    missing = []
    for name, entry in spec.get("api", {}).items():
        told = []
        for rule in entry.get("forbid", []):
            if rule in ("operators", "complex") or rule.startswith(("aten.", "torch._")) or rule.endswith(".*"):
                continue  # the room behind a door the student is told of, or a structural rule of a family
            short = rule.split(".")[-1]
            if rule.startswith(AUTOGRAD) and any(w in lower for w in ("by hand", "hand backward", "hand-written")):
                continue
            if short in INVERSES and ("invert" in lower or "inverse" in lower):
                continue
            told.append(any(spelling in text for spelling in _spellings(rule)))
        if told and not any(told):
            missing.append(name)
    return missing


@pytest.mark.parametrize("notebook", [False, True], ids=["template", "notebook"])
@pytest.mark.parametrize("exercise", EXERCISES)
def test_every_forbidden_function_is_named_in_what_the_student_is_handed(exercise, notebook):
    assert _undisclosed(exercise, notebook) == [], "API names whose rules the student is never told (say them there)"
