"""Issue 8's standard for exercises 2, 4, 5 and 7: each spec asks for a kill rate of at least 0.90, every
reviewed equivalent still names a mutant that `dldiy mutate` generates (so equivalents.toml cannot rot
when the reference changes), and the checks added for the blind spots the mutants showed do kill them.
The full kill-rate run (`dldiy mutate`) is CI's job; these tests stay within seconds."""

import json

import pytest

from conftest import REPO, run_dldiy

from dldiy.graders.exercise import load_exercise
from dldiy.graders.mutate import iter_files, mutants_of, mutation_settings, reviewed_equivalents

EXERCISES = ["exercise-2", "exercise-4", "exercise-5", "exercise-7"]


def generated_mutants(exercise_id):
    exercise = load_exercise(exercise_id)
    reference = REPO / "reference" / exercise_id
    files, _ = mutation_settings(exercise)
    paths = list(iter_files(reference, files))
    assert paths, f"{exercise_id}: [mutation] files {files} match nothing under {reference}"
    return {m.id: m for p in paths for m in mutants_of(p.read_text(), str(p.relative_to(reference)))}


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_spec_threshold_is_at_least_090_and_names_the_student_files(exercise_id):
    exercise = load_exercise(exercise_id)
    assert "mutation" in exercise.extra, f"{exercise_id}: spec.toml has no [mutation] table"
    files, threshold = mutation_settings(exercise)
    assert threshold >= 0.9
    assert exercise.entry in files


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_every_reviewed_equivalent_is_a_generated_mutant_with_a_reason(exercise_id):
    reviewed = reviewed_equivalents(load_exercise(exercise_id))
    assert reviewed, f"{exercise_id}: no reviewed equivalents (remove this case if the file was emptied on purpose)"
    mutants = generated_mutants(exercise_id)
    stale = sorted(set(reviewed) - set(mutants))
    assert not stale, f"{exercise_id}: equivalents.toml names mutants no longer generated (re-review them): {stale}"
    assert all(len(reason) > 20 for reason in reviewed.values())


# Mutants that survived before a check was added for their blind spot, and the check that now kills them.
MOTIVATING = [
    ("exercise-5", "mlp.py:86:22:arithmetic:arithmetic at this line", "init-scale"),
    ("exercise-5", "mlp.py:86:99:constant:`0.5` -> `0.0`", "init-scale"),
    ("exercise-7", "perceptron.py:12:23:comparison:`add_bias(X) @ w > 0` -> `add_bias(X) @ w >= 0`", "predict-boundary"),
    ("exercise-7", "perceptron.py:26:20:constant:`0` -> `1`", "first-update"),
    ("exercise-7", "perceptron.py:22:15:arithmetic:`y[i] * (Xt[i] @ w)` -> `y[i] / (Xt[i] @ w)`", "first-update"),
]


@pytest.mark.parametrize("exercise_id, mutant_id, check", MOTIVATING)
def test_the_added_checks_kill_the_mutants_that_motivated_them(tmp_path, exercise_id, mutant_id, check):
    mutant = generated_mutants(exercise_id)[mutant_id]
    (tmp_path / mutant.file).write_text(mutant.source)
    result = run_dldiy("check", exercise_id, str(tmp_path / mutant.file), "--only", check, "--json")
    (verdict,) = [c for c in json.loads(result.stdout)["checks"] if c["name"] == check]
    assert verdict["status"] == "fail", verdict
