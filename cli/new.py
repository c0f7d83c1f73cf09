"""`dldiy new EXERCISE --from EMPTY --solution SOLVED`: scaffold an exercise from a notebook pair, or a
pair of Python files.

Writes, in the active course (a dldiy.toml is created in the current folder when there is none):
    exercises/EXERCISE/spec.toml      load mode, requirements, the training-loop cell, one check per layer
                                      class, autograd.Function or function the student writes
    exercises/EXERCISE/harness.py     one probe per check (graders/layers.py, graders/batched.py)
    exercises/EXERCISE/template/      the empty notebook (or .py file), as students get it
    reference/EXERCISE/source.ipynb   the solution, its solution regions marked (what the empty one lacks);
                                      for a .py pair, reference/EXERCISE/<the empty file's name>
The regions are what the leak scan of `dldiy release` protects and what `dldiy mutate` mutates.
The scaffold is a start: read the spec and the harness, run `dldiy validate EXERCISE`, then edit.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import click

from dldiy.graders.course import notebook
from dldiy.graders.course.folders import MARKER, current, find_marker, use_course
from dldiy.graders.course.scaffold import analyse, harness_text, spec_text, title

KINDS = (".ipynb", ".py")


def _read_notebook(path: Path):
    """The notebook at `path`, or one line saying why it cannot be read (never nbformat's traceback)."""
    try:
        return notebook.read(path)
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not a notebook: it is not UTF-8 text") from None
    except Exception as e:  # noqa: BLE001 - nbformat's NotJSONError, a ValidationError, a KeyError of a bad schema
        why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise click.ClickException(f"{path} is not a readable notebook ({type(e).__name__}: {why}); open it in "
                                   "Jupyter and save it again, or give the .ipynb file Jupyter saved") from None


def _read_python(path: Path, solved: bool) -> str:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text") from None
    if solved:  # the reference must run; the empty file may hold stubs that do not parse
        try:
            ast.parse(text, str(path))
        except SyntaxError as e:
            raise click.ClickException(f"{path} does not parse (SyntaxError: {e.msg}, line {e.lineno}): the "
                                       "solution is the reference every check is recorded from") from None
    return text


def _kind(empty: Path, solution: Path) -> str:
    for path in (empty, solution):
        if path.suffix not in KINDS:
            raise click.ClickException(f"{path.name}: dldiy new scaffolds from a pair of notebooks (.ipynb) or a "
                                       "pair of Python files (.py): the empty one students get, and the same "
                                       "one solved")
    if empty.suffix != solution.suffix:
        raise click.ClickException(f"{empty.name} and {solution.name}: give two notebooks or two .py files (the "
                                   "empty one and the same one solved)")
    return empty.suffix


@click.command("new")
@click.argument("exercise_id", metavar="EXERCISE")
@click.option("--from", "empty", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The notebook (or .py file) students get, with its stubs.")
@click.option("--solution", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The same notebook (or .py file), solved.")
@click.option("--force", is_flag=True, help="Overwrite an existing exercise of that name.")
def new_command(exercise_id: str, empty: Path, solution: Path, force: bool) -> None:
    """Scaffold EXERCISE (spec, harness, template, reference) from a notebook pair, or a pair of .py files."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", exercise_id):
        raise click.BadParameter(f"{exercise_id!r}: use letters, digits, '-', '_' or '.'")
    kind = _kind(empty, solution)
    if kind == ".ipynb":
        empty_nb, solution_nb = _read_notebook(empty), _read_notebook(solution)
        marked = notebook.mark_solutions(empty_nb, solution_nb)
        heading = title(solution_nb, exercise_id)
    else:
        empty_text, solution_text = _read_python(empty, False), _read_python(solution, True)
        marked_text = notebook.mark_source(empty_text, solution_text)
        import nbformat.v4 as v4

        marked = v4.new_notebook(cells=[v4.new_code_cell(marked_text)])  # what analyse reads
        heading = _docstring_title(solution_text) or exercise_id
    if not any(notebook.BEGIN in c.source for c in marked.cells if c.cell_type == "code"):
        raise click.ClickException(f"{empty.name} and {solution.name} have the same code: nothing to grade")
    found = analyse(marked)
    course = current()  # (the files are read first: a mistake in them leaves no dldiy.toml behind)
    if course.exercises is None:
        if find_marker(Path.cwd()) is None:
            (Path.cwd() / MARKER).write_text(f"[course]\ntitle = {json.dumps(Path.cwd().name)}  # the title of the "
                                             "students' bundle (dldiy release)\n")
            click.echo(f"  wrote {Path.cwd() / MARKER} (a new course in this folder)")
        course = use_course(find_marker(Path.cwd()))
    folder, reference = course.exercises / exercise_id, course.reference / exercise_id
    if (folder.exists() or reference.exists()) and not force:
        raise click.ClickException(f"{folder} or {reference} already exists (use --force to replace them)")
    for path in (folder, reference):
        shutil.rmtree(path, ignore_errors=True)
    if kind == ".ipynb":
        notebook.write(notebook.without_outputs(empty_nb), folder / "template" / empty.name)
        notebook.write(marked, reference / "source.ipynb")
        written = reference / "source.ipynb"
    else:
        (folder / "template").mkdir(parents=True)
        (folder / "template" / empty.name).write_text(empty_text)
        reference.mkdir(parents=True)
        written = reference / empty.name
        written.write_text(marked_text)
    (folder / "spec.toml").write_text(spec_text(exercise_id, heading, empty.name, found))
    (folder / "harness.py").write_text(harness_text(exercise_id, found))
    for path in ("spec.toml", "harness.py", f"template/{empty.name}"):
        click.echo(f"  wrote {folder / path}")
    click.echo(f"  wrote {written} ({found['regions']} solution region(s))")
    for line in found["downloads"]:
        click.echo(f"  note: the notebook downloads data ({line}): put the files in {folder / 'data'}/")
    guessed = [f["name"] for f in found["functions"] if not f.get("given") or not found["regions"]] + \
        [c["name"] for c in found["layers"] if c.get("function") and (not c.get("given") or not found["regions"])]
    if guessed:
        click.echo(f"  note: the probes call {', '.join(guessed)} with arguments guessed from their names (3x3 "
                   "matrices, 3-vectors, labels in 0..2): give them your shapes in harness.py")
    written_text = (folder / "harness.py").read_text()
    for line in written_text.splitlines():  # (course8 trial: a random tensor passed as a backward's cache)
        if "is no cache)" in line or "TODO (dldiy new)" in line:
            what = line.split("`")[1] if "`" in line else "cache"
            click.echo(f"  note: `{what}` must come from your code, not a guess: "
                       + ("the probe builds it from the forward's output (harness.py)" if "is no cache)" in line else
                          "the probe raises a TODO until you build it (harness.py); `dldiy record` refuses until then"))
    if found["torch_classes"]:  # (course7 trial: "no layer class ..." for both, and no hint where to start)
        named = ", ".join(f"{name} ({base})" for name, base in found["torch_classes"])
        click.echo(f"  note: no check scaffolded for {named}: write an agreement probe for each (its outputs, "
                   "its parameters after a few steps), docs/own-course.md section 5, 'A torch.nn.Module or an "
                   "Optimizer', then `dldiy record`")
    elif "[[checks]]" not in (folder / "spec.toml").read_text():
        click.echo("  note: no layer class, autograd.Function or function with a solution region: write the checks "
                   "(docs/own-course.md, section 5) before `dldiy record`")
    click.echo(f"Next: read the spec and harness, then `dldiy record {exercise_id}`, `dldiy validate {exercise_id}` "
               f"and `dldiy check {exercise_id} {solution}`")


def _docstring_title(source: str) -> str:
    """The first line of a module's docstring: a .py exercise's title."""
    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        return ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""
