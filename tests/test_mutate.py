"""dldiy mutate: the operators make valid, distinct mutants of every kind the issue names, and the runner
classifies real mutants of exercise-1 as killed, equivalent or timed out."""

import json
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, run_dldiy

from dldiy.graders.course.exercise import load_exercise, load_exercise_dir
from dldiy.graders.mutation.analysis import OPERATORS, mutants_of, run_mutation

SNIPPET = '''
import torch

def step(model, opt, X, y, lr=0.5):
    """Docstrings are not mutated: 1 + 2."""
    opt.zero_grad()
    model.train()
    out = model(X).softmax(dim=1)
    loss = torch.nn.functional.nll_loss(out.log(), y, reduction="mean")
    loss.backward()
    opt.step()
    w = out.sum(dim=0, keepdim=True).mean()
    w.add_(1)
    w.mul_(2).add_(1)  # a chained in-place call: nothing to rebind
    w -= lr * 2
    if loss < 0.5 and w >= 1:
        return -loss
    return torch.maximum(w, out)

if __name__ == "__main__":
    step(1, 2, 3, 4)
'''


def test_every_required_operator_appears_and_every_mutant_compiles():
    mutants = mutants_of(SNIPPET, "snippet.py")
    assert {m.operator for m in mutants} == set(OPERATORS)
    removed = {m.description for m in mutants if m.operator == "call-removed"}
    assert {"`opt.zero_grad()` -> `pass`", "`opt.step()` -> `pass`", "`model.train()` -> `pass`"} <= removed
    assert any("dim=0" in m.description and "dim=1" in m.description for m in mutants if m.operator == "dim")
    assert any("`w -= lr * 2` -> `w = w - lr * 2`" == m.description for m in mutants)
    assert any("`w.add_(1)` -> `w = w.add(1)`" == m.description for m in mutants)
    assert any("0.5` -> `1.0" in m.description for m in mutants)
    assert any("reduction='sum'" in m.source for m in mutants if m.operator == "reduction")
    for m in mutants:
        compile(m.source, m.file, "exec")
        assert m.source != SNIPPET
        assert "1 + 2" in m.source and 'step(1, 2, 3, 4)' in m.source  # docstring and __main__ untouched
    assert len({m.source for m in mutants}) == len(mutants)
    assert len({m.id for m in mutants}) == len(mutants)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["a + b", "a * 2", "-a", "a < b", "f(a, b)", "x.mean(dim=0)", "0.25", "a / 3"]),
                min_size=1, max_size=4))
def test_mutants_of_arbitrary_expressions_are_valid_python(exprs):
    source = "def f(a, b, x):\n" + "".join(f"    v{i} = {e}\n" for i, e in enumerate(exprs)) + "    return v0\n"
    for m in mutants_of(source, "f.py"):
        compile(m.source, "f.py", "exec")
        assert m.diff(source).startswith("--- reference/f.py")


@pytest.mark.slow
def test_exercise_1_mutants_are_killed_or_reviewed_equivalent():
    exercise = load_exercise("exercise-1")
    report = run_mutation(exercise, REPO / "reference" / "exercise-1", jobs=2)
    assert len(report.results) >= 30
    assert report.count("survived") == 0 and report.count("probably-equivalent") == 0
    assert report.count("equivalent") >= 1 and all(r.reason for r in report.results if r.status == "equivalent")
    assert report.kill_rate >= report.threshold >= 0.9
    assert {"gradcheck", "first_loss", "stability"} <= set(report.by_kind())


@pytest.mark.slow
def test_a_hanging_mutant_is_a_timeout_and_an_unreviewed_equivalent_is_flagged(tmp_path):
    folder = tmp_path / "exercise-1"
    shutil.copytree(REPO / "exercises" / "exercise-1", folder)
    (folder / "equivalents.toml").unlink()
    reference = tmp_path / "reference"
    reference.mkdir()
    # A `while` loop whose comparison mutant never ends, and a detach() that changes nothing.
    code = (REPO / "reference/exercise-1/logreg.py").read_text().replace(
        "    for _ in range(steps):\n", "    k = 0\n    while k < steps:\n        k += 1\n")
    (reference / "logreg.py").write_text(code)
    exercise = load_exercise_dir(folder)
    report = run_mutation(exercise, reference, jobs=2, timeout=3)
    by_id = {r.mutant.description: r for r in report.results}
    assert by_id["`k += 1` -> `k -= 1`"].status == "timeout"
    assert any(r.status == "probably-equivalent" and r.mutant.operator == "detach" for r in report.results)


def test_cli_json_reports_rate_kinds_and_survivor_diffs():
    result = run_dldiy("mutate", "exercise-1", "--limit", "8", "--json")
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    assert report["mutants"] == 8 and report["kill_rate"] >= 0.9
    assert set(report) >= {"killed", "survived", "equivalent", "killed_by_kind", "duration_s", "survivors"}
