"""`dldiy validate [EXERCISE...]`: CI mode.

Every reference passes every check (against the recorded expectations, which proves they still match
a fresh recomputation); every bugged variant fails (status "fail", not a crash) each check its
manifest names, and a variant whose manifest says `crashes_at` errors in every check with a message
naming that file (and line). Patch variants (manifest `patch`) are built into a temporary folder from
the reference; an exercise with a [handout] table also gets the handouts of ids sample-1..N, as
handed out (crashing where a crash bug says) and with their crash bugs left out (caught as their
silent bugs say). The correct-but-different solutions of alternatives/<exercise-id>/ (graders/corpus.py)
must get full marks: every check passes, or is skipped where the reference's is too (no GPU here).
Every submission runs at the public seeds and the spec's check_seeds, as `dldiy check` does.
Prints a submission x check matrix and, per exercise, bugs caught / corpus and alternatives at full
marks; `--table docs/corpus.md` writes those figures there (rows of exercises not validated in this
run are kept). Exits 1 on any mismatch.
A variant whose manifest says `requires = "cuda"` (a bug only that accelerator exposes) is not run on a
machine without one: it is listed as not validated here, with the reason, and neither passes nor fails.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from dldiy.graders.assess import assess
from dldiy.graders.forkserver import shared
from dldiy.graders.corpus import alternatives
from dldiy.graders.course import BuggyVariant, buggy_variants, reference_path, require_finished
from dldiy.graders.exercise import Exercise, exercise_ids, load_exercise, require
from dldiy.graders.handout import build, choose, handout_counts, read_files
from dldiy.graders.report import Report

MARK = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "error": "[bold red]ERR[/]", "skip": "[yellow]skip[/]"}


@dataclass
class Row:
    exercise: Exercise
    name: str
    must_fail: tuple[str, ...]  # empty for the reference: everything must pass
    crashes_at: tuple[str, ...] = ()  # "file" or "file:line": every check errors, naming one of them
    bugs: str = ""  # a handout's bugs, listed under the table
    report: Report | None = None
    not_here: str | None = None  # why this machine cannot validate the variant (it needs an accelerator)
    alternative: bool = False  # a correct-but-different solution: full marks, like the reference
    reference: Report | None = None  # the reference's report, for the skips an alternative may share

    def problems(self) -> list[str]:
        if self.not_here:
            return []
        status = {c.name: c for c in self.report.checks}
        if self.alternative:
            theirs = {c.name: c.status for c in self.reference.checks} if self.reference else {}
            return [f"{self.exercise.id}/{self.name}: a correct solution loses {c.max_points - c.points:g} point(s) "
                    f"in {c.name} ({c.status}): {c.message.splitlines()[0] if c.message else ''}"
                    for c in self.report.checks
                    if c.status != "pass" and not (c.status == "skip" and theirs.get(c.name) == "skip")]
        if self.crashes_at:
            return [f"{self.exercise.id}/{self.name}: must crash naming {' or '.join(self.crashes_at)} but {c.name} is {c.status}: "
                    f"{c.message.splitlines()[0]}" for c in self.report.checks
                    if c.status != "skip" and not (c.status == "error" and names_place(c.message, self.crashes_at))]
        if not self.must_fail:
            return [f"{self.exercise.id}/{self.name}: {c.name} is {c.status}: {c.message}" for c in self.report.checks
                    if c.status not in ("pass", "skip")]
        out = []
        for name in self.must_fail:
            c = status.get(name)
            if c is None:
                out.append(f"{self.exercise.id}/{self.name}: its manifest names {name!r}, which {self.exercise.id} does not have")
            elif c.status != "fail":
                out.append(f"{self.exercise.id}/{self.name}: must fail {name} but it is {c.status}: {c.message.splitlines()[0]}")
        return out


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
            rows.append((Row(ex, f"alternative {a.id}", (), alternative=True),
                         build(reference_path(ex.id), [a], Path(scratch.name) / ex.id / "alternatives" / a.id)))
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
    problems = []
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
            found = row.problems()
            problems += found
            table.add_row(row.name, *cells, "[red]NO[/]" if found else "[green]yes[/]")
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
    unvalidated = [row for row, _ in rows if row.not_here]
    for row in unvalidated:
        console.print(f"[yellow]not validated on this machine:[/] {row.exercise.id}/{row.name}: {row.not_here}")
    if problems:
        console.print("[bold red]Mismatches:[/]")
        for p in problems:
            console.print(f"  {p}", markup=False, soft_wrap=True)
        sys.exit(1)
    n_bugs = sum(1 for row, _ in rows if (row.must_fail or row.crashes_at) and not row.not_here)
    console.print(f"[bold green]validate: {len(exercises)} exercise(s), {len(exercises)} reference(s) pass, "
                  f"{n_bugs} bugged variant(s) caught as their manifests say, "
                  f"{sum(row.alternative for row, _ in rows)} alternative(s) at full marks[/]"
                  + (f"; [yellow]{len(unvalidated)} not validated on this machine[/]" if unvalidated else ""))


@dataclass
class Figures:
    """One exercise's line of docs/corpus.md."""

    exercise: str
    bugs: int
    caught: int
    alternatives: int
    full_marks: int
    false_failures: int  # checks that take points from the reference or a correct alternative

    def cells(self) -> list[str]:
        return [self.exercise, f"{self.caught}/{self.bugs}", f"{self.full_marks}/{self.alternatives}",
                str(self.false_failures)]


def corpus_figures(ex: Exercise, rows: list[Row]) -> Figures:
    """Bugs: the bugged variants of buggy/ (not the handouts, which combine them) run here."""
    ran = [r for r in rows if not r.not_here and not r.name.startswith("handout ")]
    bugs = [r for r in ran if r.must_fail or r.crashes_at]
    alts = [r for r in ran if r.alternative]
    correct = [r for r in ran if r.alternative or r.name == "reference"]
    return Figures(ex.id, len(bugs), sum(not r.problems() for r in bugs), len(alts),
                   sum(not r.problems() for r in alts), sum(len(r.problems()) for r in correct))


TABLE_HEADER = ["exercise", "bugs caught / corpus", "alternatives at full marks", "false failures"]
TABLE_INTRO = """# The corpus: bugs caught and correct solutions at full marks

Written by `dldiy validate --table docs/corpus.md` (regenerate it after changing a check, a bug or an
alternative; a run on some exercises keeps the other exercises' rows). *Bugs* are the bugged variants of
`buggy/<exercise>/` (each caught when every check its manifest names fails, or it crashes where it says);
*alternatives* are the correct-but-different solutions of `alternatives/<exercise>/`, which must get full
marks; *false failures* counts the checks that take points from the reference or an alternative. Every
submission runs at the public seeds and the spec's `check_seeds`, as `dldiy check` does.
"""


def write_table(path: Path, figures: list[Figures]) -> None:
    """docs/corpus.md with these exercises' rows replaced (or added) and the others kept, in course order."""
    rows: dict[str, list[str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and len(cells) == len(TABLE_HEADER) and cells[0].startswith("exercise-"):
                rows[cells[0]] = cells
    rows.update({f.exercise: f.cells() for f in figures})
    order = sorted(rows, key=lambda s: (len(s), s))
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(rows[e]) + " |" for e in order]
    path.write_text(TABLE_INTRO + "\n" + "\n".join(lines) + "\n")


@functools.cache
def missing(requires: str) -> str | None:
    """Why this machine cannot expose a bug that needs `requires` ("cuda" or "mps"), or None if it can.
    torch is asked in a subprocess: the parent never imports it."""
    if not requires:
        return None
    probes = {"cuda": "torch.cuda.is_available()", "mps": "torch.backends.mps.is_available()"}
    if requires not in probes:
        return f"its manifest requires {requires!r}, which dldiy does not know (known: {', '.join(probes)})"
    done = subprocess.run([sys.executable, "-c", f"import torch; print({probes[requires]})"],
                          capture_output=True, text=True, timeout=120)
    if done.stdout.strip() == "True":
        return None
    return f"requires {requires}; {probes[requires]} is {done.stdout.strip() or 'unknown'} on this machine"


def names_place(message: str, places: tuple[str, ...]) -> bool:
    """Whether `message` points at one of `places`: "file" matches `file:<line>`, "file:line" exactly."""
    for place in places:
        file, _, line = place.partition(":")
        if re.search(rf"(?<![\w./]){re.escape(file)}:{line or '[0-9]+'}(?![0-9])", message):
            return True
    return False


def handout_rows(ex: Exercise, folder: Path) -> list[tuple[Row, Path]]:
    """The handouts of ids sample-1..N, as handed out and with their crash bugs fixed. Line numbers
    shift when two patches touch one file, so a combination is held to the crash bugs' files only."""
    crash, silent, samples = handout_counts(ex.extra)
    if not samples:
        return []
    reference = reference_path(ex.id)
    files, bugs = read_files(reference), buggy_variants(ex.id)
    rows = []
    for i in range(1, samples + 1):
        student = f"sample-{i}"
        chosen = choose(ex.id, student, bugs, files, crash, silent)
        quiet = [b for b in chosen if not b.crashes_at]
        crash_files = tuple(sorted({b.crashes_at.partition(":")[0] for b in chosen if b.crashes_at}))
        caught_by = tuple(sorted({name for b in quiet for name in b.caught_by}))
        if crash_files:
            rows.append((Row(ex, f"handout {student}", (), crash_files, _names(chosen)),
                         build(reference, chosen, folder / student)))
        rows.append((Row(ex, f"handout {student}, crashes fixed", caught_by, (), _names(quiet)),
                     build(reference, quiet, folder / f"{student}-fixed")))
    return rows


def _names(bugs: list[BuggyVariant]) -> str:
    return " + ".join(b.id for b in bugs)


def all_ids() -> list[str]:
    return exercise_ids()
