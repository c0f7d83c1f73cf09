"""`dldiy release OUTDIR`: the student bundle; `dldiy release --nbgrader COURSE_DIR`: nbgrader's source/.

The bundle holds, per exercise, the starting files (the template, or for a bug-hunting exercise,
a note where a bug hunt is handed out per student), the student notebook (the source notebook with its
solution regions stubbed), and the public expected values; at its top, an installable wheel of dldiy
(wheels/) and a README that says how to install it offline. The bundle of an instructor's own course
(one found through a dldiy.toml) is itself a course: a dldiy.toml and exercises/ (each exercise's spec,
harness, expected values, template and data), so that `dldiy check EXERCISE` run in it checks the
student's notebook. It never holds reference code: before
anything is written, every non-trivial line of every file under reference/ is looked for in it (in a
notebook, its cells; in the wheel, what a student reads), and the release stops if one is found.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from dldiy.graders.course import notebook
from dldiy.graders.course.exercise import exercise_ids, load_exercise
from dldiy.graders.course.folders import course_root, current
from dldiy.graders.course.release import (build_wheel, bundle_readme, function_leaks, leaks, source_notebook,
                                          stage_course, stage_exercise, stage_nbgrader_course)


NBGRADER_CONFIG = """\
# Written by `dldiy release --nbgrader`: nbgrader reads it from the course folder.
c = get_config()
c.CourseDirectory.course_id = "dldiy"
# The locked autograder cell runs every dldiy check once, in a sandboxed child: allow it time.
c.ExecutePreprocessor.timeout = 600
c.Execute.timeout = 600
# dldiy's notebooks follow each solution region with the line that raises NotImplementedError naming the
# task (the solution never reaches it), so nbgrader's stub, one text for every region, is only the comment.
c.ClearSolutions.code_stub = {"python": %r}
""" % notebook.NBGRADER_CODE_STUB


def _no_solution(ex) -> str:
    source = f"reference/{ex.id}/source.ipynb"
    has = (current().reference / ex.id / "source.ipynb").is_file()
    why = (f"{ex.id}'s source notebook, {source}, has no solution region" if has else
           f"{ex.id} has no source notebook ({source}), only its starting files")
    return (f"release --nbgrader stopped: {why}, so nbgrader's copy would hand out the stubs with no solution "
            f"cells to grade against. Write {source}: the solved notebook, with `### BEGIN SOLUTION` / `### END "
            f"SOLUTION` around each part's solution, inside its function (README.md, \"Authoring and release\"), "
            f"or leave {ex.id} out (-e EXERCISE for the others)")


@click.command("release")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--nbgrader", "nbgrader", is_flag=True,
              help="Write nbgrader's source/<exercise>/ notebooks into the course folder OUTDIR instead.")
@click.option("-e", "--exercise", "only", multiple=True, metavar="EXERCISE", help="Only this exercise (repeatable).")
@click.option("--force", is_flag=True, help="Replace what an earlier release wrote.")
def release_command(outdir: Path, nbgrader: bool, only: tuple[str, ...], force: bool) -> None:
    """Build the student bundle in OUTDIR (or, with --nbgrader, nbgrader's source/ in OUTDIR)."""
    exercises = [load_exercise(e) for e in (only or exercise_ids())]
    # An instructor's own course (found through a dldiy.toml); None: dldiy's built-in exercises.
    course = current() if current().exercises is not None else None
    carried: dict[str, list[str]] = {}  # nbgrader: per exercise, the course files beside its notebook
    with tempfile.TemporaryDirectory(prefix="dldiy-release-") as tmp:
        staged = Path(tmp) / "out"
        staged.mkdir()
        for ex in exercises:
            if nbgrader:
                try:
                    nb = notebook.nbgrader_notebook(source_notebook(ex), ex)
                except notebook.SolutionRegionError as error:
                    # one line of why, not a traceback: the source notebook is the instructor's to change
                    raise click.ClickException(
                        f"release --nbgrader stopped: {error}\n(nbgrader replaces a region with one stub for "
                        f"every region, which names no task outside a function; `dldiy release` without "
                        f"--nbgrader takes this notebook as it is, or leave {ex.id} out: -e EXERCISE for the "
                        f"others)") from None
                if ex.start != "bugged" and not any(c.metadata.get("nbgrader", {}).get("solution") for c in nb.cells):
                    raise click.ClickException(_no_solution(ex))
                notebook.write(nb, staged / "source" / ex.id / f"{ex.id}.ipynb")
                if course is not None:
                    # The locked cell runs where nbgrader puts the notebook: the course must be there too.
                    # Staged apart, so the leak scan reads these files and never the source notebook.
                    carried[ex.id] = stage_nbgrader_course(course, ex, Path(tmp) / "course" / ex.id)
            else:
                # an own course's .py exercise: its file only, the one graded (no notebook whose work
                # `dldiy check` and `grade` would ignore); dldiy's own exercises keep theirs (README.md)
                stage_exercise(ex, staged / ex.id, notebook_for_py=course is None)
        if carried:
            found = leaks(Path(tmp) / "course")
            if found:
                raise click.ClickException("release stopped: reference code found in the course files nbgrader "
                                           "would hand out\n  " + "\n  ".join(found[:20]))
            for ex_id in carried:
                shutil.copytree(Path(tmp) / "course" / ex_id, staged / "source" / ex_id, dirs_exist_ok=True)
        if not nbgrader:
            # An instructor's own course travels with its bundle: the wheel holds only dldiy's built-in
            # exercises, and a student's `dldiy check` finds these through the bundle's dldiy.toml.
            if course is not None:
                stage_course(course, exercises, staged)
            wheel = build_wheel(staged / "wheels")
            (staged / "README.md").write_text(bundle_readme(exercises, wheel.name, course))
        found = [] if nbgrader else leaks(staged)  # nbgrader's source/ holds solutions by design
        if found:
            raise click.ClickException("release stopped: reference code found in it\n  " + "\n  ".join(found[:20]))
        if not nbgrader:
            # dldiy's own exercises' harnesses travel in the wheel: said, not refused (their own versions of students'
            # functions, which one bug, one deduction runs the submission with, are known; see docs/own-course.md)
            for shipped in function_leaks(staged, course_root(), wheels=True):
                click.echo(f"warning: the wheel's built-in harness: {shipped}", err=True)
        # Exactly what was staged is written (and announced): nothing else.
        top = staged / "source" if nbgrader else staged
        targets = [outdir.joinpath(*p.relative_to(staged).parts) for p in sorted(top.iterdir())]
        existing = [str(t) for t in targets if t.exists()]
        if existing and not force:
            raise click.ClickException(f"{', '.join(existing)} already exists (use --force to replace it)")
        for target in targets:
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        outdir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, outdir, dirs_exist_ok=True)
    for target in targets:
        click.echo(f"  wrote {target}")
        if nbgrader and target.name in carried:
            click.echo(f"    with {', '.join(carried[target.name])} beside the notebook: the course its check cells "
                       "need (nbgrader hands them out and copies them over each submission it autogrades)")
    if nbgrader:
        config = outdir / "nbgrader_config.py"
        if config.exists() and not force:
            click.echo(f"  kept {config} (yours; --force replaces it)")
            if "ClearSolutions.code_stub" not in config.read_text():
                click.echo(f"  note: it does not set c.ClearSolutions.code_stub = {{\"python\": "
                           f"{notebook.NBGRADER_CODE_STUB!r}}}: nbgrader's own stub will raise an unnamed "
                           f"NotImplementedError before the line that names the task")
        else:
            config.write_text(NBGRADER_CONFIG)
            click.echo(f"  wrote {config}")
        click.echo(f"Next: cd {outdir} && nbgrader generate_assignment EXERCISE")
