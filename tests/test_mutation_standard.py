"""The mutation standard of issue 8, cheaply: every exercise declares what `dldiy mutate` mutates and a
kill-rate threshold of at least 0.90, and every reviewed equivalent still names a mutant the generator
makes (an id that no longer matches, after a reference edit shifted its line, would silently stop
being left out and must be re-reviewed). The full kill-rate runs take minutes per exercise (1 to 6 on
the 2-core machine): CI runs them with DLDIY_MUTATION=1 (one exercise per job: `-k exercise-N`), or
runs `dldiy mutate EXERCISE`, whose exit status enforces the same threshold."""

import os
import tomllib

import pytest

from conftest import REPO

from dldiy.graders.exercise import exercise_ids, load_exercise
from dldiy.graders.mutate import iter_files, mutants_of, mutation_settings, reviewed_equivalents, run_mutation

EXERCISES = exercise_ids()


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_spec_declares_files_and_a_threshold_of_at_least_90_percent(exercise_id):
    exercise = load_exercise(exercise_id)
    assert "mutation" in exercise.extra, f"{exercise_id}/spec.toml has no [mutation] table"
    patterns, threshold = mutation_settings(exercise)
    assert threshold >= 0.9
    reference = REPO / "reference" / exercise_id
    for pattern in patterns:
        assert list(reference.glob(pattern)), f"{exercise_id}: [mutation] files {pattern!r} matches nothing"


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_every_reviewed_equivalent_is_a_generated_mutant_with_a_reason(exercise_id):
    exercise = load_exercise(exercise_id)
    path = exercise.folder / "equivalents.toml"
    if not path.exists():
        pytest.skip(f"{exercise_id} has no reviewed equivalents")
    entries = tomllib.loads(path.read_text())["equivalent"]
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), "an equivalent is listed twice"
    assert all(e["reason"].strip() for e in entries)
    reference = REPO / "reference" / exercise_id
    patterns, _ = mutation_settings(exercise)
    generated = {m.id for p in iter_files(reference, patterns)
                 for m in mutants_of(p.read_text(), str(p.relative_to(reference)))}
    stale = sorted(set(reviewed_equivalents(exercise)) - generated)
    assert not stale, f"reviewed equivalents that match no mutant of reference/{exercise_id}: {stale}"


@pytest.mark.skipif(os.environ.get("DLDIY_MUTATION") != "1", reason="minutes per exercise: set DLDIY_MUTATION=1 (CI)")
@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_full_mutation_run_meets_the_threshold(exercise_id):
    exercise = load_exercise(exercise_id)
    report = run_mutation(exercise, REPO / "reference" / exercise_id, jobs=os.cpu_count() or 1)
    survivors = [r.mutant.id for r in report.survivors()]
    assert report.kill_rate >= report.threshold >= 0.9, f"kill rate {report.kill_rate:.3f}; survivors: {survivors}"
    assert all(r.reason for r in report.results if r.status == "equivalent")
