"""`dldiy start EXERCISE [DIR]`: write the student's starting files.

Most exercises start from their template/. An exercise whose spec says `start = "bugged"` starts from
a bugged copy of its reference, a different one per student id (`--student ID`, graders/course/handout.py):
it needs reference/ and buggy/, so the instructor runs it in the course checkout and hands the
folders out; a student's install holds neither.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from dldiy.graders.course.exercise import Exercise, load_exercise


@click.command("start")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.option("--student", metavar="ID", help="Hand out the bugged copy for this student id (exercises that "
              "start from bugged code; run by the instructor in the course checkout).")
def start_command(exercise_id: str, directory: Path | None, force: bool, student: str | None) -> None:
    """Write EXERCISE's starting files into DIR (default: ./EXERCISE)."""
    exercise = load_exercise(exercise_id)
    directory = directory or Path(exercise.id)
    with tempfile.TemporaryDirectory(prefix="dldiy-start-") as scratch:
        source = _bugged_copy(exercise, student, Path(scratch)) if student or exercise.start == "bugged" \
            else exercise.template_dir
        _write(exercise, source, directory, force)


def _bugged_copy(exercise: Exercise, student: str | None, scratch: Path) -> Path:
    """The reference with this student's bugs applied (graders/course/handout.py), built in `scratch`."""
    from dldiy.graders.course.folders import buggy_variants, reference_path
    from dldiy.graders.course.handout import build, choose, handout_counts, read_files

    if exercise.start != "bugged":
        raise click.ClickException(f"{exercise.id} starts from a template, the same for everyone: "
                                   "run it without --student")
    if not student:
        raise click.ClickException(f"{exercise.id} starts from a bugged project, a different one for each student: "
                                   f"your instructor hands it out (`dldiy start {exercise.id} --student ID DIR`, "
                                   "run in the course checkout)")
    crash, silent, _ = handout_counts(exercise.extra)
    reference = reference_path(exercise.id)
    bugs = choose(exercise.id, student, buggy_variants(exercise.id), read_files(reference), crash, silent)
    return build(reference, bugs, scratch / "handout")


def _write(exercise: Exercise, source: Path, directory: Path, force: bool) -> None:
    files = [p for p in sorted(source.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    targets = [(src, directory / src.relative_to(source)) for src in files]
    existing = [str(t) for _, t in targets if t.exists()]
    if existing and not force:
        raise click.ClickException(f"{', '.join(existing)} already exists; your work is kept "
                                   f"(use --force to overwrite it)")
    for src, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    from dldiy.graders.course.release import copy_data

    data = copy_data(exercise, directory)  # the files the notebook's data cell reads, as grading has them
    click.echo(f"{exercise.id}: {exercise.title}")
    for _, target in targets:
        click.echo(f"  wrote {target}")
    if data:
        click.echo(f"  wrote {directory / data}/ (the exercise's data)")
    where = "" if directory == Path(exercise.id) else f" {directory}"
    click.echo(f"When ready: dldiy check {exercise.id}{where}")
