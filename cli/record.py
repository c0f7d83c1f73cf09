"""`dldiy record EXERCISE...`: measure the reference at the public seeds and write expected.json."""

from __future__ import annotations

import json
from importlib.metadata import version

import click

from dldiy.graders.assess import measure_reference
from dldiy.graders.course import reference_path
from dldiy.graders.exercise import exercise_ids as all_exercise_ids, load_exercise


@click.command("record")
@click.argument("exercise_ids", metavar="[EXERCISE]...", nargs=-1)
def record_command(exercise_ids: tuple[str, ...]) -> None:
    """Recompute the expected values of EXERCISE (default: all) from its reference and write them."""
    for exercise_id in exercise_ids or tuple(all_exercise_ids()):
        exercise = load_exercise(exercise_id)
        seeds = exercise.seeds + exercise.check_seeds  # check runs the extra seeds against these too
        expected, problems = measure_reference(exercise, reference_path(exercise.id), seeds=seeds)
        if problems:
            raise click.ClickException(f"{exercise.id}: not recorded, the reference fails to measure:\n  "
                                       + "\n  ".join(problems))
        payload = {"exercise": exercise.id, "seeds": list(exercise.seeds),
                   "check_seeds": list(exercise.check_seeds), "torch": version("torch"),
                   "checks": expected}
        exercise.expected_path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        click.echo(f"{exercise.id}: recorded {sum(len(v) for v in expected.values())} measurements "
                   f"in {exercise.expected_path}")
