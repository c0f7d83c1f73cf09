"""`dldiy mutate [EXERCISE...]`: how many plausible bugs do the checks catch, and which do they miss?"""

from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Table

from dldiy.graders.course.folders import reference_path
from dldiy.graders.course.exercise import exercise_ids, load_exercise
from dldiy.graders.mutation.analysis import (DEFAULT_TIMEOUT_S, MutationReport, mutants_of, iter_files,
                                             mutation_settings, run_mutation)


@click.command("mutate")
@click.argument("exercise_ids", metavar="[EXERCISE]...", nargs=-1)
@click.option("-j", "--jobs", type=int, default=os.cpu_count() or 1, show_default=True, help="Mutants at once.")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT_S, show_default=True,
              help="Seconds per check and seed before a mutant counts as hanging.")
@click.option("--limit", type=int, default=None, help="Run only the first N mutants (a quick look).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
def mutate_command(exercise_ids: tuple[str, ...], jobs: int, timeout: float, limit: int | None,
                   as_json: bool) -> None:
    """Mutate EXERCISE's reference (default: every exercise) and run each mutant through the checks.

    Exit status 1 when an exercise's kill rate (over mutants not reviewed as equivalent) is below the
    threshold in its spec.
    """
    console = Console(stderr=as_json, width=None if sys.stdout.isatty() else 160)
    reports = []
    for exercise_id in exercise_ids or tuple(all_ids()):
        exercise = load_exercise(exercise_id)
        reference = reference_path(exercise.id)
        patterns, _ = mutation_settings(exercise)
        total = sum(len(mutants_of(p.read_text(), str(p.relative_to(reference))))
                    for p in iter_files(reference, patterns))
        total = min(total, limit) if limit else total
        with Progress(TextColumn(f"{exercise.id} mutants"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("", total=total)
            report = run_mutation(exercise, reference, jobs=jobs, timeout=timeout, limit=limit,
                                  progress=lambda _: bar.advance(task))
        reports.append(report)
        if not as_json:
            print_report(report, console)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=1))
    elif len(reports) > 1:
        console.print(summary_table(reports))
    sys.exit(0 if all(r.kill_rate >= r.threshold for r in reports) else 1)


def summary_table(reports: list[MutationReport]) -> Table:
    table = Table(title="mutation analysis")
    for col in ("exercise", "mutants", "killed", "timeout", "survived", "probably equiv.", "equivalent",
                "kill rate", "threshold", "time"):
        table.add_column(col, justify="left" if col == "exercise" else "right")
    for r in reports:
        ok = r.kill_rate >= r.threshold
        table.add_row(r.exercise, str(len(r.results)), str(r.count("killed")), str(r.count("timeout")),
                      str(r.count("survived")), str(r.count("probably-equivalent")), str(r.count("equivalent")),
                      f"[{'green' if ok else 'red'}]{r.kill_rate:.1%}[/]", f"{r.threshold:.0%}",
                      f"{r.duration_s:.0f}s")
    return table


def print_report(report: MutationReport, console: Console) -> None:
    console.print(summary_table([report]))
    kinds = report.by_kind()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    console.print(f"checks that killed them, by kind (a mutant counts once for each kind that caught it): {counts}")
    for r in report.survivors():
        label = "probably equivalent (same measurements on every probe)" if r.status == "probably-equivalent" \
            else "SURVIVED: no check caught it"
        console.print(f"\n[bold]{escape(r.mutant.id)}[/]  {label}")
        console.print(Syntax(r.mutant.diff(report.originals[r.mutant.file]), "diff", theme="ansi_dark"))
    reviewed = [r for r in report.results if r.status == "equivalent"]
    if reviewed:
        console.print(f"{len(reviewed)} reviewed equivalent(s) not counted (exercises/{report.exercise}/equivalents.toml)")


def all_ids() -> list[str]:
    return exercise_ids()
