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
from dldiy.graders.course.folders import current
from dldiy.graders.course.release import (build_wheel, bundle_readme, leaks, source_notebook, stage_course,
                                          stage_exercise)


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


@click.command("release")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--nbgrader", "nbgrader", is_flag=True,
              help="Write nbgrader's source/<exercise>/ notebooks into the course folder OUTDIR instead.")
@click.option("-e", "--exercise", "only", multiple=True, metavar="EXERCISE", help="Only this exercise (repeatable).")
@click.option("--force", is_flag=True, help="Replace what an earlier release wrote.")
def release_command(outdir: Path, nbgrader: bool, only: tuple[str, ...], force: bool) -> None:
    """Build the student bundle in OUTDIR (or, with --nbgrader, nbgrader's source/ in OUTDIR)."""
    exercises = [load_exercise(e) for e in (only or exercise_ids())]
    with tempfile.TemporaryDirectory(prefix="dldiy-release-") as tmp:
        staged = Path(tmp)
        for ex in exercises:
            if nbgrader:
                nb = notebook.nbgrader_notebook(source_notebook(ex), ex)
                notebook.write(nb, staged / "source" / ex.id / f"{ex.id}.ipynb")
            else:
                stage_exercise(ex, staged / ex.id)
        if not nbgrader:
            # An instructor's own course travels with its bundle: the wheel holds only dldiy's built-in
            # exercises, and a student's `dldiy check` finds these through the bundle's dldiy.toml.
            course = current() if current().exercises is not None else None
            if course is not None:
                stage_course(course, exercises, staged)
            wheel = build_wheel(staged / "wheels")
            (staged / "README.md").write_text(bundle_readme(exercises, wheel.name, course))
        found = [] if nbgrader else leaks(staged)  # nbgrader's source/ holds solutions by design
        if found:
            raise click.ClickException("release stopped: reference code found in it\n  " + "\n  ".join(found[:20]))
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
