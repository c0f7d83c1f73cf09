"""`dldiy new EXERCISE --from EMPTY.ipynb --solution SOL.ipynb`: scaffold an exercise from a notebook pair.

Writes, in the active course (a dldiy.toml is created in the current folder when there is none):
    exercises/EXERCISE/spec.toml      load mode, requirements, the training-loop cell, one check per layer
    exercises/EXERCISE/harness.py     one gradcheck probe per layer class (graders/layers.py)
    exercises/EXERCISE/template/      the empty notebook, as students get it
    reference/EXERCISE/source.ipynb   the solution, its solution regions marked (what the empty one lacks)
The regions are what the leak scan of `dldiy release` protects and what `dldiy mutate` mutates.
The scaffold is a start: read the spec and the harness, run `dldiy validate EXERCISE`, then edit.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click

from dldiy.graders.course import notebook
from dldiy.graders.course.folders import MARKER, current, find_marker, use_course
from dldiy.graders.course.scaffold import analyse, harness_text, spec_text, title

@click.command("new")
@click.argument("exercise_id", metavar="EXERCISE")
@click.option("--from", "empty", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The notebook students get (with its stubs).")
@click.option("--solution", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The same notebook, solved.")
@click.option("--force", is_flag=True, help="Overwrite an existing exercise of that name.")
def new_command(exercise_id: str, empty: Path, solution: Path, force: bool) -> None:
    """Scaffold EXERCISE (spec, harness, template, reference) from a notebook pair."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", exercise_id):
        raise click.BadParameter(f"{exercise_id!r}: use letters, digits, '-', '_' or '.'")
    course = current()
    if course.exercises is None:
        if find_marker(Path.cwd()) is None:
            (Path.cwd() / MARKER).write_text('[course]\ntitle = ""\n')
            click.echo(f"  wrote {Path.cwd() / MARKER} (a new course in this folder)")
        course = use_course(find_marker(Path.cwd()))
    folder, reference = course.exercises / exercise_id, course.reference / exercise_id
    if (folder.exists() or reference.exists()) and not force:
        raise click.ClickException(f"{folder} or {reference} already exists (use --force to replace them)")
    empty_nb, solution_nb = notebook.read(empty), notebook.read(solution)
    marked = notebook.mark_solutions(empty_nb, solution_nb)
    if not any(notebook.BEGIN in c.source for c in marked.cells if c.cell_type == "code"):
        raise click.ClickException(f"{empty.name} and {solution.name} have the same code: nothing to grade")
    found = analyse(marked)
    for path in (folder, reference):
        shutil.rmtree(path, ignore_errors=True)
    notebook.write(notebook.without_outputs(empty_nb), folder / "template" / empty.name)
    notebook.write(marked, reference / "source.ipynb")
    (folder / "spec.toml").write_text(spec_text(exercise_id, title(solution_nb, exercise_id), empty.name, found))
    (folder / "harness.py").write_text(harness_text(exercise_id, found))
    for path in ("spec.toml", "harness.py", f"template/{empty.name}"):
        click.echo(f"  wrote {folder / path}")
    click.echo(f"  wrote {reference / 'source.ipynb'} ({found['regions']} solution region(s))")
    for line in found["downloads"]:
        click.echo(f"  note: the notebook downloads data ({line}): put the files in {folder / 'data'}/")
    click.echo(f"Next: read the spec and harness, then `dldiy validate {exercise_id}` and `dldiy check "
               f"{exercise_id} {solution}`")
