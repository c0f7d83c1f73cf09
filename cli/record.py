"""`dldiy record EXERCISE...`: measure the reference at the public and check seeds and write expected.json
(what each check kind's judge reads, one line per check and seed)."""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

import click

from dldiy.graders.assess import measure_reference
from dldiy.graders.course.folders import reference_path
from dldiy.graders.course.exercise import exercise_ids as all_exercise_ids, load_exercise
from dldiy.graders.course.lint import input_warnings
from dldiy.graders.judge import tasks_for
from dldiy.graders.sandbox.runner import STAND_INS, measure_stand_ins_afresh, run_child
from dldiy.graders.sandbox.submission import locate


@click.command("record")
@click.argument("exercise_ids", metavar="[EXERCISE]...", nargs=-1)
def record_command(exercise_ids: tuple[str, ...]) -> None:
    """Recompute the expected values of EXERCISE (default: all) from its reference and write them."""
    for exercise_id in exercise_ids or tuple(all_exercise_ids()):
        exercise = load_exercise(exercise_id)
        measure_stand_ins_afresh(exercise.id)
        seeds = exercise.seeds + exercise.check_seeds  # check runs the extra seeds against these too
        expected, problems = measure_reference(exercise, reference_path(exercise.id), seeds=seeds)
        if problems:
            raise click.ClickException(f"{exercise.id}: not recorded, the reference fails to measure:\n  "
                                       + "\n  ".join(problems))
        # every other check once, at the first seed, for the names its probe hands over (measurements unused)
        recorded = {check for ex, check in STAND_INS if ex == exercise.id}
        rest = [c for c in exercise.checks if c.name not in recorded]
        if rest:
            reference = reference_path(exercise.id)
            first = {t.check: t for t in reversed(tasks_for(exercise, rest, [exercise.seeds[0]]))}  # each check's first
            run_child(exercise, locate(reference, exercise.entry), [first[c.name] for c in rest if c.name in first],
                      cwd=reference)
        payload = {"exercise": exercise.id, "seeds": list(exercise.seeds),
                   "check_seeds": list(exercise.check_seeds), "torch": version("torch"),
                   # the names each check's probe handed the reference's process as the harness's own: the
                   # order a submission's tasks are measured in (graders/sandbox/runner.in_stand_in_order)
                   "stand_ins": {check: sorted(names) for (ex, check), names in sorted(STAND_INS.items())
                                 if ex == exercise.id},
                   "checks": expected}
        exercise.expected_path.write_text(dumps_expected(payload))
        click.echo(f"{exercise.id}: recorded {sum(len(v) for v in expected.values())} measurements "
                   f"in {exercise.expected_path}")
        for warning in input_warnings(exercise, reference_path(exercise.id)):
            click.echo(f"warning: {warning}", err=True)


def dumps_expected(payload: dict[str, Any]) -> str:
    """expected.json as one line per check and seed: a diff shows which measurement moved, and the file
    stays a few lines per check (issue 12). Plain JSON: any reader parses it."""
    head = {k: v for k, v in payload.items() if k != "checks"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in sorted(head.items())]
    lines.append(' "checks": {')
    checks = sorted(payload["checks"].items())
    for i, (check, per_seed) in enumerate(checks):
        lines.append(f"  {json.dumps(check)}: {{")
        seeds = sorted(per_seed.items(), key=lambda kv: int(kv[0]))
        lines += [f"   {json.dumps(seed)}: {json.dumps(m, sort_keys=True, separators=(',', ':'))}"
                  + ("," if j < len(seeds) - 1 else "") for j, (seed, m) in enumerate(seeds)]
        lines.append("  }" + ("," if i < len(checks) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"
