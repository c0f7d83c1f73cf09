"""`dldiy check EXERCISE [PATH]`: run every check on one submission and show what each found."""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dldiy.graders.assess import assess
from dldiy.graders.course.exercise import load_exercise

from dldiy.graders.render import print_report, write_pictures
from dldiy.graders.sandbox.forkserver import shared
from dldiy.graders.sandbox.spawn import check_processes


@click.command("check")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--only", "only", multiple=True, metavar="CHECK", help="Run only this check (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write an SVG per check with a picture (loss curves, gradients, boundaries) into DIR.")
def check_command(exercise_id: str, path: Path | None, only: tuple[str, ...], as_json: bool,
                  plots_dir: Path | None) -> None:
    """Check your work on EXERCISE (default PATH: ./EXERCISE, where `dldiy start` puts it).

    PATH is what `dldiy grade` takes as one student's submission: a .py file, a notebook, a folder, or a
    zip of one of these (unpacked with grade's rules).

    Exit status: 0 when every check that ran passed, 1 when one failed, 2 when the submission could
    not be run (missing, does not load, crashes, hangs, returns the wrong shape).
    """
    exercise = load_exercise(exercise_id)
    if path is None:
        path = Path(exercise.id) if Path(exercise.id).exists() else Path(".")
    checks = [exercise.check(name) for name in only] or None
    beside = unchecked_notebook(path, exercise.entry, exercise.id)
    if beside is not None:
        click.echo(f"dldiy: note: checking {exercise.entry}; {beside.name} beside it, saved after it, is not "
                   f"checked, nor graded: work in {exercise.entry}, or check the notebook with `dldiy check "
                   f"{exercise.id} {beside}`", err=True)
    with tempfile.TemporaryDirectory(prefix="dldiy-check-") as scratch:
        given = path
        if path.suffix == ".zip" and not path.is_dir():
            path = unpacked(path, exercise.entry, Path(scratch))
        status = StatusLine(Console(stderr=True)) if not as_json else None
        try:
            report = assess(exercise, path, checks=checks, on_progress=status, extra_seeds=exercise.check_seeds,
                            server=shared(), processes=check_processes())
        finally:
            if status is not None:
                status.close()
    if given != path:  # a zip: named as given, not by the scratch folder it was unpacked into
        report.submission = str(given)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    elif report.load_error:
        click.echo(f"dldiy: {report.load_error}", err=True)
    else:
        print_report(report)
    if plots_dir is not None and not report.load_error:
        written = write_pictures(report, plots_dir)
        if not as_json:
            click.echo(f"pictures: {', '.join(str(p) for p in written) or 'none for these checks'}")
    sys.exit(report.exit_code)


def unchecked_notebook(path: Path, entry: str, exercise_id: str) -> Path | None:
    """The notebook of a .py exercise's folder that the check will not read, when it was saved after the
    .py file (more than a second after: a bundle unpacks both at once): the student may be working in it.
    `dldiy check` and `grade` read the entry file of a folder, never a notebook beside it."""
    if not entry.endswith(".py") or not path.is_dir() or not (path / entry).is_file():
        return None
    for name in dict.fromkeys((f"{Path(entry).stem}.ipynb", f"{exercise_id}.ipynb")):
        notebook = path / name
        try:
            if notebook.is_file() and notebook.stat().st_mtime > (path / entry).stat().st_mtime + 1.0:
                return notebook
        except OSError:
            continue
    return None


def unpacked(archive: Path, entry: str, scratch: Path) -> Path:
    """A zip of one submission, unpacked under `scratch` as `dldiy grade` unpacks a student's zip (the
    same caps, no link, no member outside it): the folder to check. A zip it refuses: one line, exit 2."""
    from dldiy.graders.batch.discover import one_submission

    if not archive.is_file():
        raise click.ClickException(f"{archive} does not exist") if not archive.exists() else \
            click.ClickException(f"{archive} is not a regular file")
    found = one_submission(archive, entry, scratch)
    if found.error is not None or found.path is None:
        click.echo(f"dldiy: {found.error or archive.name + ' could not be unpacked'}", err=True)
        sys.exit(2)
    return Path(found.path)


class StatusLine:
    """Which check is running, as a transient rich status on a terminal, once the run has taken more
    than half a second (a quick run shows nothing). Fed by assess()'s on_progress as results arrive."""

    DELAY_S = 0.5

    def __init__(self, console: Console):
        self.console, self.started = console, time.monotonic()
        self.text = "loading the submission"
        self.status: Any = None  # a rich Status once shown
        self.lock = threading.Lock()
        self.timer = threading.Timer(self.DELAY_S, self._show) if console.is_terminal else None
        if self.timer is not None:
            self.timer.daemon = True
            self.timer.start()

    def __call__(self, done: int, total: int, running) -> None:
        what = f"running [bold]{running.check}[/] (seed {running.seed})" if running is not None else "judging"
        self.text = f"{what}, {done}/{total} done"
        self._show()

    def _show(self) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        with self.lock:
            if self.timer is None or time.monotonic() - self.started < self.DELAY_S:
                return
            # A rich Live of a spinner, redrawn at each change: the checks can finish faster than its
            # periodic refresh (18 tasks in under 80 ms), and a status that skips them names nothing.
            if self.status is None:
                self.status = Live(Spinner("dots", self.text), console=self.console, transient=True,
                                   refresh_per_second=12.5)
                self.status.start(refresh=True)
            else:
                self.status.update(Spinner("dots", self.text), refresh=True)

    def close(self) -> None:
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if self.status is not None:
                self.status.stop()
