"""`dldiy validate [EXERCISE...]`: CI mode.

Every reference passes every check (against the recorded expectations, which proves they still match
a fresh recomputation); every bugged variant fails (status "fail", not a crash) each check its
manifest names, and a variant whose manifest says `crashes_at` errors in every check with a message
naming that file (and line). Patch variants (manifest `patch`) are built into a temporary folder from
the reference; an exercise with a [handout] table also gets the handouts of ids sample-1..N, as
handed out (crashing where a crash bug says) and with their crash bugs left out (caught as their
silent bugs say). The correct-but-different solutions of alternatives/<exercise-id>/ (graders/course/corpus.py)
must get full marks: every check passes, or is skipped where the reference's is too (no GPU here).
Every submission runs at the public seeds and the spec's check_seeds, as `dldiy check` does.
Prints a submission x check matrix and, per exercise, bugs caught / corpus and alternatives at full
marks; `--table docs/corpus.md` writes those figures there (rows of exercises not validated in this
run are kept). Exits 1 on any mismatch, and on any check that ERRORED where a measurement was due (the
reference, an alternative, a check a bugged variant's manifest names): those are listed apart, as "errored"
with what raised, not as a manifest's mismatch; a check that errors beyond a variant's manifest is listed
there too (one bug charged twice), without failing the run.
A variant whose manifest says `requires = "cuda"` (a bug only that accelerator exposes) is not run on a
machine without one: it is listed as not validated here, with the reason, and neither passes nor fails.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dldiy.graders.assess import assess
from dldiy.graders.sandbox.forkserver import shared
from dldiy.graders.course.corpus import alternatives
from dldiy.graders.course.folders import buggy_variants, reference_path, require_finished
from dldiy.graders.course.exercise import load_exercise, require
from dldiy.graders.course.handout import build
from dldiy.graders.course.lint import input_warnings
from dldiy.graders.course.validate import Row, all_ids, corpus_figures, handout_rows, missing, write_table


MARK = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "error": "[bold red]ERR[/]", "skip": "[yellow]skip[/]"}


@click.command("validate")
@click.argument("exercise_ids", metavar="[EXERCISE]...", nargs=-1)
@click.option("-j", "--jobs", type=int, default=os.cpu_count() or 1, show_default=True,
              help="Submissions checked at once.")
@click.option("--table", "table_path", type=click.Path(path_type=Path), default=None,
              help="Write the corpus figures (bugs caught, alternatives at full marks) to this Markdown file.")
def validate_command(exercise_ids: tuple[str, ...], jobs: int, table_path: Path | None) -> None:
    """Validate EXERCISE (default: all): references pass, bugged variants are caught."""
    exercises = [load_exercise(e) for e in (exercise_ids or all_ids())]
    for ex in exercises:
        require(ex)
    rows: list[tuple[Row, object]] = []
    scratch = tempfile.TemporaryDirectory(prefix="dldiy-validate-")
    for ex in exercises:
        rows.append((Row(ex, "reference", ()), reference_path(ex.id)))
        for v in buggy_variants(ex.id):
            require_finished(v)
            path = build(reference_path(ex.id), [v], Path(scratch.name) / ex.id / v.id)
            rows.append((Row(ex, v.id, v.caught_by, (v.crashes_at,) if v.crashes_at else (),
                             not_here=missing(v.requires)), path))
        for a in alternatives(ex.id):
            where = Path(scratch.name) / ex.id / "alternatives" / a.id
            # files given whole are copied out too: the sandbox hides the course's alternatives/ from submissions
            path = shutil.copytree(a.path, where) if a.whole else build(reference_path(ex.id), [a], where)
            rows.append((Row(ex, f"alternative {a.id}", (), alternative=True, inconclusive=a.inconclusive), path))
        rows += handout_rows(ex, Path(scratch.name) / ex.id / "handouts")
    runnable = [rp for rp in rows if not rp[0].not_here]
    server = shared()  # torch imported once; a fork per submission
    with scratch, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for (row, _path), report in zip(runnable, pool.map(
                lambda rp: assess(rp[0].exercise, rp[1], server=server, extra_seeds=rp[0].exercise.check_seeds),
                runnable)):
            row.report = report
    for row, _ in runnable:
        row.reference = next(r.report for r, _ in runnable if r.exercise is row.exercise and r.name == "reference")
    console = Console(width=None if sys.stdout.isatty() else 200)
    problems: list[str] = []
    errored: list[str] = []  # checks that raised instead of measuring: no verdict on a manifest, said apart
    fatal: list[str] = []  # those of them that leave a row unvalidated (Row.blocking_errors)
    for ex in exercises:
        mine = [row for row, _ in rows if row.exercise is ex]
        table = Table(title=f"{ex.id}: {ex.title}  (<FAIL> = a check the manifest says must fail)")
        table.add_column("submission", no_wrap=True)
        for c in ex.checks:
            table.add_column(c.name, no_wrap=True)
        table.add_column("as expected?", no_wrap=True)
        for row in mine:
            if row.not_here:
                table.add_row(row.name, *["[dim]-[/]"] * len(ex.checks), "[yellow]not validated here[/]")
                continue
            cells = []
            for c in row.report.checks:
                mark = MARK[c.status]
                cells.append(f"[bold]<{mark}>[/]" if c.name in row.must_fail else mark)
            found, raised, blocking = row.problems(), row.errored(), row.blocking_errors()
            problems += found
            errored += raised
            fatal += blocking
            table.add_row(row.name, *cells, "[red]NO[/]" if found else "[bold red]ERRORED[/]" if blocking else "[green]yes[/]")
        console.print(table)
        for row in mine:
            if row.bugs:
                console.print(f"  {row.name}: {row.bugs}", markup=False)
    figures = [corpus_figures(ex, [row for row, _ in rows if row.exercise is ex]) for ex in exercises]
    for f in figures:
        console.print(f"{f.exercise}: bugs caught {f.caught}/{f.bugs}, alternatives at full marks "
                      f"{f.full_marks}/{f.alternatives}, false failures {f.false_failures}", markup=False)
    if table_path is not None:
        write_table(table_path, figures)
        console.print(f"corpus table written to {table_path}", markup=False)
    extra = [(row, row.also_charged()) for row, _ in rows]
    extra = [(row, found) for row, found in extra if found]
    if extra:
        console.print("[yellow]Also charged beyond the manifest[/] (one bug, one deduction? or a manifest to complete):")
        for row, found in extra:
            console.print(f"  {row.exercise.id}/{row.name}: {', '.join(found)}", markup=False, soft_wrap=True)
    for ex in exercises:  # a harness input that a named cell overwrites (warned, not failed: the grades are the cell's)
        for warning in input_warnings(ex, reference_path(ex.id)):
            console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    unvalidated = [row for row, _ in rows if row.not_here]
    for row in unvalidated:
        console.print(f"[yellow]not validated on this machine:[/] {row.exercise.id}/{row.name}: {row.not_here}")
    if errored:
        console.print("[bold red]Errored[/] (a check raised instead of measuring: the harness's mistake, or the "
                      "submission's at that check; no verdict on the manifest):")
        for e in errored:
            console.print(f"  {e}", markup=False, soft_wrap=True)
    if problems:
        console.print("[bold red]Mismatches:[/]")
        for p in problems:
            console.print(f"  {p}", markup=False, soft_wrap=True)
    if problems or fatal:
        sys.exit(1)
    n_bugs = sum(1 for row, _ in rows if (row.must_fail or row.crashes_at) and not row.not_here)
    console.print(f"[bold green]validate: {len(exercises)} exercise(s), {len(exercises)} reference(s) pass, "
                  f"{n_bugs} bugged variant(s) caught as their manifests say, "
                  f"{sum(row.alternative for row, _ in rows)} alternative(s) at full marks[/]"
                  + (f"; [yellow]{len(unvalidated)} not validated on this machine[/]" if unvalidated else ""))
