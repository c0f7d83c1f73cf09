"""`dldiy validate [EXERCISE...]`: CI mode.

Every reference passes every check (against the recorded expectations, which proves they still match
a fresh recomputation); every bugged variant fails (status "fail", not a crash) each check its
manifest names. Prints a submission x check matrix; exits 1 on any mismatch.
A variant whose manifest says `requires = "cuda"` (a bug only that accelerator exposes) is not run on a
machine without one: it is listed as not validated here, with the reason, and neither passes nor fails.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import click
from rich.console import Console
from rich.table import Table

from dldiy.graders.assess import assess
from dldiy.graders.course import buggy_variants, reference_path
from dldiy.graders.exercise import Exercise, exercise_ids, load_exercise
from dldiy.graders.judge import Report

MARK = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "error": "[bold red]ERR[/]", "skip": "[yellow]skip[/]"}


@dataclass
class Row:
    exercise: Exercise
    name: str
    must_fail: tuple[str, ...]  # empty for the reference: everything must pass
    report: Report | None = None
    not_here: str | None = None  # why this machine cannot validate the variant (it needs an accelerator)

    def problems(self) -> list[str]:
        if self.not_here:
            return []
        status = {c.name: c for c in self.report.checks}
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
def validate_command(exercise_ids: tuple[str, ...], jobs: int) -> None:
    """Validate EXERCISE (default: all): references pass, bugged variants are caught."""
    exercises = [load_exercise(e) for e in (exercise_ids or all_ids())]
    rows: list[tuple[Row, object]] = []
    for ex in exercises:
        rows.append((Row(ex, "reference", ()), reference_path(ex.id)))
        rows += [(Row(ex, v.id, v.caught_by, not_here=missing(v.requires)), v.path) for v in buggy_variants(ex.id)]
    runnable = [rp for rp in rows if not rp[0].not_here]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for (row, path), report in zip(runnable, pool.map(lambda rp: assess(rp[0].exercise, rp[1]), runnable)):
            row.report = report
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
    unvalidated = [row for row, _ in rows if row.not_here]
    for row in unvalidated:
        console.print(f"[yellow]not validated on this machine:[/] {row.name}: {row.not_here}", markup=True)
    if problems:
        console.print("[bold red]Mismatches:[/]")
        for p in problems:
            console.print(f"  {p}", markup=False, soft_wrap=True)
        sys.exit(1)
    n_bugs = sum(1 for row, _ in rows if row.must_fail and not row.not_here)
    console.print(f"[bold green]validate: {len(exercises)} exercise(s), {len(exercises)} reference(s) pass, "
                  f"{n_bugs} bugged variant(s) caught as their manifests say[/]"
                  + (f"; [yellow]{len(unvalidated)} not validated on this machine[/]" if unvalidated else ""))


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


def all_ids() -> list[str]:
    return exercise_ids()
