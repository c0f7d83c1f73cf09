"""`dldiy check EXERCISE [PATH]`: run every check on one submission and show what each found."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dldiy.graders.assess import assess
from dldiy.graders.exercise import load_exercise

from .report import print_report


@click.command("check")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--only", "only", multiple=True, metavar="CHECK", help="Run only this check (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
def check_command(exercise_id: str, path: Path | None, only: tuple[str, ...], as_json: bool) -> None:
    """Check your work on EXERCISE (default PATH: ./EXERCISE, where `dldiy start` puts it).

    Exit status: 0 when every check that ran passed, 1 when one failed, 2 when the submission could
    not be run (missing, does not load, crashes, hangs, returns the wrong shape).
    """
    exercise = load_exercise(exercise_id)
    if path is None:
        path = Path(exercise.id) if Path(exercise.id).exists() else Path(".")
    checks = [exercise.check(name) for name in only] or None
    report = assess(exercise, path, checks=checks, extra_seeds=exercise.check_seeds)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    elif report.load_error:
        click.echo(f"dldiy: {report.load_error}", err=True)
    else:
        print_report(report)
    sys.exit(report.exit_code)
