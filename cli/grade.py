"""`dldiy grade EXERCISE SUBMISSIONS --out DIR`: grade a whole class, in parallel, resumably.

Every mistake an instructor can make on the command line (a missing folder, an --out that cannot be
written, an --nbgrader course that does not exist, a --cluster where no scheduler listens, an unknown
student to --regrade) is one line on stderr and exit status 2, found before the batch starts.
What students wrote (their names, messages quoting their code) reaches the terminal with control
characters shown as escapes and rich markup inert.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from dldiy.graders.batch.run import (SKIP_POLICIES, ReferenceFailed, batch_expectations, default_jobs, draw_hidden_seeds,
                                     exercise_fingerprint, fingerprint_of, load_timeout_for, run_cluster, run_local,
                                     scheduler_unreachable, to_grade, what_changed)
from dldiy.graders.batch.discover import Found, discover
from dldiy.graders.course.exercise import load_exercise, require
from dldiy.graders.report import Report
from dldiy.graders.sandbox.forkserver import start_shared_early
from dldiy.graders.batch.export import file_stem, nbgrader_notebook_name, write_feedback, write_gradescope, write_nbgrader
from dldiy.graders.batch.gradebook import (BatchMismatch, Gradebook, Journal, record_isolation, recorded_settings,
                                           settle_settings, terminal_safe)

REGRADE_ALL = "\0all"  # what a bare --regrade stands for (no student name can hold a NUL byte)
PROGRESS_EVERY_S = 2.0


def fail(message: str) -> NoReturn:
    """The user's mistake: one line, exit status 2."""
    click.echo(f"dldiy grade: {terminal_safe(message)}", err=True)
    sys.exit(2)


def shown(text: str) -> str:
    """Student text for rich's console.print: control characters escaped, markup inert."""
    return escape(terminal_safe(text))


class _OneLineErrors(click.Command):
    """Click's own usage errors (a missing argument, a bad value) as one line and exit status 2 too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            fail(f"{e.format_message()} (see dldiy grade --help)")


def _seeds(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(sorted({int(s) for s in text.replace(" ", "").split(",") if s}))
    except ValueError:
        fail(f"--hidden-seeds {text!r} is not a comma-separated list of integers")


def _regrade_choice(values: tuple[str, ...]) -> tuple[bool, set[str]]:
    """(everyone, only these students) from `--regrade` (bare), `--regrade alice --regrade bob`, or
    `--regrade alice,bob`."""
    everyone = REGRADE_ALL in values
    names = {n.strip() for v in values if v != REGRADE_ALL for n in v.split(",") if n.strip()}
    if everyone and names:
        fail("--regrade takes student names, or nothing to grade everyone again; not both")
    return everyone, names


def check_inputs(submissions: Path, out: Path, course_dir: Path | None, cluster: str | None) -> None:
    """Everything the instructor gave that can be checked before the batch starts."""
    if not submissions.exists():
        fail(f"no such file or folder: {submissions}")
    if not (submissions.is_dir() or (submissions.is_file() and submissions.suffix == ".zip")):
        fail(f"{submissions} is not a folder or a zip of submissions")
    if submissions.is_dir() and os.path.realpath(out) == os.path.realpath(submissions):
        fail(f"--out {out} is the submissions folder itself: choose another folder (inside it is fine)")
    if course_dir is not None:
        if not course_dir.is_dir():
            fail(f"--nbgrader {course_dir}: no such course folder (the folder holding nbgrader's gradebook.db)")
        try:
            import nbgrader.api  # noqa: F401
        except ImportError:
            fail("--nbgrader needs nbgrader: pip install 'dldiy[instructor]'")
        _check_writable(course_dir, "--nbgrader")
    if cluster is not None:
        why = scheduler_unreachable(cluster)
        if why:
            fail(f"--cluster: {why}")
    _check_writable(out, "--out")  # last: a mistake found above leaves no empty --out behind


def _check_writable(folder: Path, option: str) -> None:
    if folder.exists() and not folder.is_dir():
        fail(f"{option} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        fail(f"{option} {folder} cannot be written ({e.strerror or e})")


@click.command("grade", cls=_OneLineErrors)
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("submissions", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Folder for the gradebook, the journal and the feedback (never discovered as a student).")
@click.option("-j", "--jobs", type=int, default=default_jobs(), show_default=True,
              help="Submissions graded at once (each in its own sandboxed process; default: one more "
                   "than the CPUs).")
@click.option("--hidden-seeds", "hidden_seeds", metavar="S1,S2",
              help="Instructor-only seeds, the ones the points rest on (default: --hidden of them, drawn now).")
@click.option("--hidden", "hidden_count", type=int, default=2, show_default=True,
              help="Without --hidden-seeds: draw this many hidden seeds now (recorded in OUT/batch.json). A "
                   "resumed batch, and a bare --regrade, keep the batch's seeds unless --hidden is given.")
@click.option("--public-seeds", "public_count", type=click.IntRange(min=0), metavar="N",
              help="How many of the exercise's public seeds to grade besides the hidden ones (default 1: "
                   "the points rest on the hidden seeds; a failure at a public seed is shown with its values "
                   "and pictures, which hidden seeds withhold). Ignored without hidden seeds.")
@click.option("--only", "only", multiple=True, metavar="CHECK", help="Grade only this check (repeatable).")
@click.option("--regrade", "regrade", multiple=True, is_flag=False, flag_value=REGRADE_ALL, default=(),
              metavar="[STUDENT,...]",
              help="Alone: grade everyone again instead of resuming (with the batch's hidden seeds, unless "
                   "--hidden N or --hidden-seeds says otherwise). With names (repeatable, or a comma-separated "
                   "list): grade only those students again, keeping the others' grades. (Whoever was graded "
                   "under an older version of the exercise, or changed their submission, is graded again "
                   "without it.)")
@click.option("--skips", "skips", metavar="|".join(SKIP_POLICIES),
              help="A check that cannot run on this machine (a GPU check on a CPU grader): leave-out takes "
                   "its points out of the maximum, zero counts them as 0. Default: the batch's recorded "
                   "policy, else leave-out.")
@click.option("--format", "fmt", metavar="csv|gradescope", default="csv", show_default=True,
              help="gradescope: also write Gradescope's results.json per student.")
@click.option("--nbgrader", "course_dir", type=click.Path(path_type=Path), metavar="COURSE_DIR",
              help="Also write the scores into COURSE_DIR/gradebook.db (nbgrader).")
@click.option("--assignment", help="Assignment name (nbgrader layout and gradebook); default: EXERCISE.")
@click.option("--cluster", metavar="ADDRESS", help="Run the tasks on this Dask scheduler instead of locally.")
@click.option("--pictures", type=click.Choice(["failing", "all", "none"]), default="failing", show_default=True,
              help="Pictures in the HTML feedback: of the checks that did not pass, of every check, or none. "
                   "A picture (an SVG in the page) costs about 1 ms of CPU, drawn once per distinct failure.")
def grade_command(exercise_id: str, submissions: Path, out: Path, jobs: int, hidden_seeds: str | None,
                  hidden_count: int, public_count: int | None, only: tuple[str, ...], regrade: tuple[str, ...], skips: str | None, fmt: str,
                  course_dir: Path | None, assignment: str | None, cluster: str | None, pictures: str) -> None:
    """Grade every student's submission of EXERCISE found in SUBMISSIONS (a folder of files, folders or
    zips, an nbgrader course's submitted/ folder, or one zip of them all). Killed, the same command
    resumes where it stopped, and grades again whoever changed their submission since, and everyone
    when the exercise changed (its spec, harness, expected values, data or reference)."""
    started = time.monotonic()
    exercise = load_exercise(exercise_id)
    if skips is not None and skips not in SKIP_POLICIES:
        fail(f"--skips {skips!r}: choose {' or '.join(SKIP_POLICIES)}")
    if fmt not in ("csv", "gradescope"):
        fail(f"--format {fmt!r}: choose csv or gradescope")
    everyone, chosen = _regrade_choice(regrade)
    check_inputs(submissions, out, course_dir, cluster)
    require(exercise)  # one line naming what to install, before any child starts
    if cluster is None:
        start_shared_early()  # (started already by the command line's parser, cli/__init__.py, as a rule)
    assignment = assignment or exercise.id
    checks = [exercise.check(name).name for name in only] or [c.name for c in exercise.checks]
    explicit = _seeds(hidden_seeds)
    hidden = explicit if explicit is not None else draw_hidden_seeds(hidden_count, exercise.seeds)
    files = exercise_fingerprint(exercise)
    fingerprint = fingerprint_of(files)
    settings = {"exercise": exercise.id, "checks": checks, "hidden_seeds": list(hidden),
                "max_score": sum(exercise.check(c).points for c in checks), "skips": skips,
                "public_seeds": public_count, "exercise_fingerprint": fingerprint, "exercise_files": files}
    console, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    asked_count = click.get_current_context().get_parameter_source("hidden_count") == click.core.ParameterSource.COMMANDLINE
    keep_seeds = everyone and explicit is None and not asked_count  # a bare --regrade keeps the batch's seeds
    try:
        before = recorded_settings(out)
        settings = settle_settings(out, settings, everyone, drawn=explicit is None, keep_seeds=keep_seeds)
        found = discover(submissions, exercise.entry, assignment, out / "unpacked", exclude=(out,))
    except (BatchMismatch, FileNotFoundError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"{out}: {e}")
    hidden, skips, public = tuple(settings["hidden_seeds"]), settings["skips"], settings["public_seeds"]
    unknown = sorted(chosen - {f.student for f in found})
    if unknown:
        fail(f"--regrade: no submission for {', '.join(map(repr, unknown))} in {submissions}")
    book = Gradebook(out, settings, Journal(out / "journal.jsonl", fresh=everyone))
    graded_under = None if before is None or everyone else before.get("exercise_fingerprint")
    say_seeds(err, before, settings, everyone)
    todo = plan(found, book.journal.records, chosen, err, fingerprint, graded_under,
                what_changed((before or {}).get("exercise_files") or {}, files))
    fresh: list[dict[str, Any]] = []
    try:
        if cluster:
            expected = batch_expectations(exercise, hidden, checks) if todo else {}
            load_timeout = load_timeout_for(exercise)  # from the reference's own load time
            records = run_cluster(cluster, exercise, todo, checks, hidden, expected, skips, load_timeout, public)
        else:  # the reference at the hidden seeds runs beside the first submissions (judged once it is done)
            load_timeout = load_timeout_for(exercise) if todo else None
            measure: "dict | Callable[[], dict]" = (lambda: batch_expectations(exercise, hidden, checks)) if todo else {}
            records = run_local(exercise, todo, checks, hidden, measure, jobs, skips, load_timeout, public)
        if todo:
            err.print(f"start-up: {time.monotonic() - started:.2f} s (to the first submission's child; the "
                      "reference at the hidden seeds runs beside the class)", highlight=False)
        for record in with_progress(records, len(todo), err):
            record["exercise_fingerprint"] = fingerprint  # the version of the exercise it was graded under
            book.add(record)
            write_feedback(out / "feedback", record, exercise.title, pictures)
            fresh.append(record)
    except ReferenceFailed as e:  # the reference fails at a hidden seed: the instructor's to fix
        fail(str(e).replace("\n", " "))
    finally:
        book.close()
    graded = [book.journal.records[f.student] for f in found if f.student in book.journal.records]
    for record in graded:  # resumed runs: feedback of the first part is there too
        if not (out / "feedback" / f"{file_stem(record['student'])}.md").exists():
            write_feedback(out / "feedback", record, exercise.title, pictures)
    if fmt == "gradescope":
        write_gradescope(out, graded)
    if course_dir is not None:
        try:
            write_nbgrader(course_dir, assignment, nbgrader_notebook_name(course_dir, assignment, exercise.id), graded,
                           [(c, exercise.check(c).points) for c in checks])
        except Exception as e:  # noqa: BLE001 - nbgrader's own failure: the grades are safe in OUT
            fail(f"--nbgrader {course_dir}: nbgrader could not record the grades ({type(e).__name__}: "
                 f"{str(e).splitlines()[0] if str(e) else ''}); they are in {out / 'gradebook.csv'}, "
                 "rerun the same command to retry")
    report_isolation(err, out, fresh or graded)
    print_summary(console, graded, settings, out)
    if hidden:
        console.print(f"hidden seeds: {', '.join(map(str, hidden))} (recorded in {out / 'batch.json'})")


def say_seeds(err: Console, before: dict | None, settings: dict, everyone: bool) -> None:
    """What a bare --regrade does with the batch's hidden seeds: kept, or drawn anew (the grades of the
    whole class then rest on other seeds: said, never silent)."""
    if not everyone or before is None:
        return
    old, new = before.get("hidden_seeds") or [], settings["hidden_seeds"]
    if old == new:
        if new:
            err.print(f"grading everyone again with the batch's hidden seeds {', '.join(map(str, new))} "
                      "(--hidden N draws new ones, --hidden-seeds S1,S2 names them)", highlight=False)
    else:
        err.print(f"grading everyone again with new hidden seeds {', '.join(map(str, new)) or '(none)'}; the batch "
                  f"had {', '.join(map(str, old)) or 'none'}", highlight=False)


def plan(found: list[Found], journal: dict[str, dict], chosen: set[str], err: Console,
         fingerprint: str | None = None, graded_under: str | None = None, changes: list[str] | None = None) -> list[Found]:
    """Who to grade now (graders/batch/run.py's to_grade), said on stderr. `fingerprint`: the exercise's
    now; `graded_under`: the batch's recorded one; `changes`: what differs between them, file by file."""
    todo, changed, resumed, outdated = to_grade(found, journal, chosen, fingerprint, graded_under)
    if outdated:
        why = "; ".join(changes or []) or "its files differ from those the batch recorded"
        err.print(f"the exercise changed since this batch graded it ({shown(why)}): grading again the "
                  f"{outdated} submission(s) graded under the old version, with the batch's hidden seeds",
                  highlight=False)
    elif journal and graded_under is None and fingerprint is not None and not any(
            "exercise_fingerprint" in r for r in journal.values()):
        err.print("note: this batch was graded before dldiy recorded the exercise's fingerprint; its grades are "
                  "kept. If the exercise changed since (spec, harness, expected values, data, reference), pass "
                  "--regrade", highlight=False)
    for f, before in changed:
        err.print(f"{shown(f.student)}: submission changed since it was graded (content hash "
                  f"{before[:12]} -> {str(f.content_hash)[:12]}): grading again", highlight=False)
    if resumed:
        err.print(f"resuming: {resumed} of {len(found)} already graded", highlight=False)
    if chosen:
        err.print(f"grading again: {', '.join(shown(s) for s in sorted(chosen))}", highlight=False)
    return todo


def with_progress(records: Iterable[dict[str, Any]], total: int, err: Console) -> Iterator[dict[str, Any]]:
    """The records, unchanged, while showing progress: a rich bar on a terminal; elsewhere (a log, CI,
    a pipe) a plain line every PROGRESS_EVERY_S seconds or every 10% of the class, and at the end."""
    if err.is_terminal:
        columns = (TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[last]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=err) as progress:
            bar = progress.add_task("grading", total=total, last="")
            for record in records:
                yield record
                progress.update(bar, advance=1, last=f"{shown(record['student'])}: {record['score']:g}")
        return
    print(f"grading {total} submission(s)", file=sys.stderr, flush=True)
    started = last_time = time.monotonic()
    done, last_done, step = 0, 0, max(1, total // 10)
    for record in records:
        yield record
        done += 1
        now = time.monotonic()
        if done == total or now - last_time >= PROGRESS_EVERY_S or done - last_done >= step:
            rate = done / max(now - started, 1e-9)
            print(f"graded {done}/{total} ({rate:.1f}/s)", file=sys.stderr, flush=True)
            last_time, last_done = now, done


def report_isolation(err: Console, out: Path, records: list[dict[str, Any]]) -> None:
    """Print and record in OUT/batch.json the confinement the children reported; warn when some of it
    could not be applied on this machine (best effort)."""
    isolation = next((r["sandbox"] for r in records if r.get("sandbox")), None)
    if isolation is None:
        return
    record_isolation(out, isolation)
    applied = [s for s in isolation if not s.startswith("not applied")]
    missing = [s.removeprefix("not applied:").strip() for s in isolation if s.startswith("not applied")]
    err.print("isolation of the children: " + escape("; ".join(applied) or "none"), highlight=False)
    if missing:
        err.print("[bold yellow]warning:[/] isolation is best effort on this machine; not applied: "
                  + escape("; ".join(missing)), highlight=False)


def print_summary(console: Console, records: list[dict], settings: dict, out: Path) -> None:
    """Score histogram, the checks failed most often, and the submissions that errored."""
    reports = [Report.from_json(r) for r in records]  # the records read as the one result model
    bins = Counter(min(9, int(10 * r.score / (r.max_score or 1.0))) for r in reports)
    console.print(f"[bold]{len(records)} submission(s) graded[/]; gradebook: {escape(str(out / 'gradebook.csv'))}")
    width = max(bins.values(), default=1)
    for b in range(10):  # fractions of each student's maximum (a skipped check may leave it)
        label = f"{10 * b:>3}% - {10 * (b + 1):>3}%"
        console.print(f"  {label} {'#' * round(30 * bins[b] / width):<30} {bins[b]}")
    failing = Counter(c.name for r in reports for c in r.checks if c.status in ("fail", "error"))
    if failing:
        console.print("most common failing checks: " + ", ".join(f"{n} ({k})" for n, k in failing.most_common(5)))
    skipped = Counter(c.name for r in reports for c in r.checks if c.status == "skip")
    if skipped:
        how = "left out of the maximum" if settings.get("skips") == "leave-out" else "counted as 0"
        console.print(f"skipped on this machine ({how}): " + ", ".join(f"{n} ({k})" for n, k in skipped.items()))
    near = [(record["student"], c.name, c.details["near_timeout"]) for record, r in zip(records, reports)
            for c in r.checks if isinstance(c.details.get("near_timeout"), dict)]
    if near:  # (course8 trial: one notebook's training check passed, timed out and passed again, at 60 s)
        console.print(Text("near their timeout (a busier machine may change these grades): " + ", ".join(
            f"{terminal_safe(student)} {name} ({t.get('seconds', 0):.0f} of {t.get('timeout', 0):g} s)"
            for student, name, t in near[:10]) + (f" and {len(near) - 10} more" if len(near) > 10 else "")))
    errored = [(record, r) for record, r in zip(records, reports) if r.status == "error"]
    if errored:
        console.print(f"[bold red]{len(errored)} submission(s) errored:[/]")
        for record, r in errored:
            error = record.get("error") or r.error  # as recorded: the batch's own words for an unusable row
            console.print(Text(f"  {terminal_safe(record['student'])}: "
                               f"{terminal_safe(error.splitlines()[0] if error else '?')}"))
