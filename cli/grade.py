"""`dldiy grade EXERCISE SUBMISSIONS --out DIR`: grade a whole class, in parallel, resumably."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dldiy.graders.batch import batch_expectations, draw_hidden_seeds, run_cluster, run_local
from dldiy.graders.discover import discover
from dldiy.graders.exercise import load_exercise
from dldiy.graders.export import write_feedback, write_gradescope, write_nbgrader
from dldiy.graders.gradebook import BatchMismatch, Gradebook, Journal, settle_settings


def _seeds(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(sorted({int(s) for s in text.replace(" ", "").split(",") if s}))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers") from None


@click.command("grade")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("submissions", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the gradebook, the journal and the feedback.")
@click.option("-j", "--jobs", type=int, default=os.cpu_count() or 1, show_default=True,
              help="Submissions graded at once (each in its own child process).")
@click.option("--hidden-seeds", "hidden_seeds", metavar="S1,S2", help="Instructor-only seeds added to the public ones.")
@click.option("--hidden", "hidden_count", type=int, default=2, show_default=True,
              help="Without --hidden-seeds: draw this many hidden seeds now (recorded in OUT/batch.json).")
@click.option("--only", "only", multiple=True, metavar="CHECK", help="Grade only this check (repeatable).")
@click.option("--regrade", is_flag=True, help="Grade everyone again instead of resuming.")
@click.option("--format", "fmt", type=click.Choice(["csv", "gradescope"]), default="csv", show_default=True,
              help="gradescope: also write Gradescope's results.json per student.")
@click.option("--nbgrader", "course_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the scores into COURSE_DIR/gradebook.db (nbgrader).")
@click.option("--assignment", help="Assignment name (nbgrader layout and gradebook); default: EXERCISE.")
@click.option("--cluster", metavar="ADDRESS", help="Run the tasks on this Dask scheduler instead of locally.")
def grade_command(exercise_id: str, submissions: Path, out: Path, jobs: int, hidden_seeds: str | None,
                  hidden_count: int, only: tuple[str, ...], regrade: bool, fmt: str, course_dir: Path | None,
                  assignment: str | None, cluster: str | None) -> None:
    """Grade every student's submission of EXERCISE found in SUBMISSIONS (a folder of files, folders or
    zips, an nbgrader course's submitted/ folder, or one zip of them all). Killed, the same command
    resumes where it stopped."""
    exercise = load_exercise(exercise_id)
    assignment = assignment or exercise.id
    checks = [exercise.check(name).name for name in only] or [c.name for c in exercise.checks]
    explicit = _seeds(hidden_seeds)
    hidden = explicit if explicit is not None else draw_hidden_seeds(hidden_count, exercise.seeds)
    settings = {"exercise": exercise.id, "checks": checks, "hidden_seeds": list(hidden),
                "max_score": sum(exercise.check(c).points for c in checks)}
    console, err = Console(), Console(stderr=True)
    try:
        settings = settle_settings(out, settings, regrade, drawn=explicit is None)
        found = discover(submissions, exercise.entry, assignment, out / "unpacked")
    except (BatchMismatch, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    hidden = tuple(settings["hidden_seeds"])
    book = Gradebook(out, settings, Journal(out / "journal.jsonl", fresh=regrade))
    todo = [f for f in found if f.student not in book.journal.records]
    if len(todo) < len(found):
        err.print(f"resuming: {len(found) - len(todo)} of {len(found)} already graded in {out}")
    try:
        expected = batch_expectations(exercise, hidden, checks) if todo else {}
    except RuntimeError as e:  # the reference fails at a hidden seed: the instructor's to fix
        raise click.ClickException(str(e)) from None
    records = (run_cluster(cluster, exercise, todo, checks, hidden, expected) if cluster
               else run_local(exercise, todo, checks, hidden, expected, jobs))
    columns = (TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err) as progress:
            bar = progress.add_task("grading", total=len(todo), last="")
            for record in records:
                book.add(record)
                write_feedback(out / "feedback", record, exercise.title)
                progress.update(bar, advance=1, last=f"{record['student']}: {record['score']:g}")
    finally:
        book.close()
    graded = [book.journal.records[f.student] for f in found if f.student in book.journal.records]
    for record in graded:  # resumed runs: feedback of the first part is there too
        if not (out / "feedback" / f"{record['student']}.md").exists():
            write_feedback(out / "feedback", record, exercise.title)
    if fmt == "gradescope":
        write_gradescope(out, graded)
    if course_dir is not None:
        write_nbgrader(course_dir, assignment, nbgrader_notebook_name(course_dir, assignment, exercise.id), graded,
                       [(c, exercise.check(c).points) for c in checks])
    print_summary(console, graded, settings, out)
    if hidden:
        console.print(f"hidden seeds: {', '.join(map(str, hidden))} (recorded in {out / 'batch.json'})")


def nbgrader_notebook_name(course_dir: Path, assignment: str, exercise_id: str) -> str:
    """The assignment's notebook in nbgrader's gradebook: the one notebook of source/<assignment>/, or
    the name `dldiy release --nbgrader` gives it (the exercise's id)."""
    found = sorted((Path(course_dir) / "source" / assignment).glob("*.ipynb"))
    return found[0].stem if len(found) == 1 else exercise_id


def print_summary(console: Console, records: list[dict], settings: dict, out: Path) -> None:
    """Score histogram, the checks failed most often, and the submissions that errored."""
    top = settings["max_score"] or 1.0
    bins = Counter(min(9, int(10 * r["score"] / top)) for r in records)
    console.print(f"[bold]{len(records)} submission(s) graded[/]; gradebook: {out / 'gradebook.csv'}")
    width = max(bins.values(), default=1)
    for b in range(10):
        label = f"{b * top / 10:>5.3g} - {(b + 1) * top / 10:<5.3g}"
        console.print(f"  {label} {'#' * round(30 * bins[b] / width):<30} {bins[b]}")
    failing = Counter(c["name"] for r in records for c in r["checks"] if c["status"] in ("fail", "error"))
    if failing:
        console.print("most common failing checks: " + ", ".join(f"{n} ({k})" for n, k in failing.most_common(5)))
    errored = [r for r in records if r["status"] == "error"]
    if errored:
        console.print(f"[bold red]{len(errored)} submission(s) errored:[/]")
        for r in errored:
            console.print(f"  {escape(r['student'])}: {escape(r['error'].splitlines()[0] if r['error'] else '?')}")
