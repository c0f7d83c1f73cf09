"""`dldiy start EXERCISE [DIR]`: write the student's starting files."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from dldiy.graders.exercise import load_exercise


@click.command("start")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def start_command(exercise_id: str, directory: Path | None, force: bool) -> None:
    """Write EXERCISE's starting files into DIR (default: ./EXERCISE)."""
    exercise = load_exercise(exercise_id)
    directory = directory or Path(exercise.id)
    files = [p for p in sorted(exercise.template_dir.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    targets = [(src, directory / src.relative_to(exercise.template_dir)) for src in files]
    existing = [str(t) for _, t in targets if t.exists()]
    if existing and not force:
        raise click.ClickException(f"{', '.join(existing)} already exists; your work is kept "
                                   f"(use --force to overwrite it)")
    for src, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    click.echo(f"{exercise.id}: {exercise.title}")
    for _, target in targets:
        click.echo(f"  wrote {target}")
    where = "" if directory == Path(exercise.id) else f" {directory}"
    click.echo(f"When ready: dldiy check {exercise.id}{where}")
