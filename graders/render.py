"""How a report looks on a terminal (rich): `dldiy check` and the notebook's `check()` print it alike.
(Its JSON is Report.to_json, graders/report.py; the feedback files are graders/batch/export.py.)"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .plots import curve_of, sparkline
from .report import Report

STYLE = {"pass": "green", "fail": "red", "error": "bold red", "skip": "yellow"}


def report_table(report: Report) -> Table:
    report = report.shown()  # what the submission shaped, control characters shown escaped
    table = Table(title=f"{report.exercise}: {report.submission}", show_lines=True, expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("message")
    for c in report.checks:
        table.add_row(escape(c.name), f"[{STYLE[c.status]}]{c.status}[/]", f"{c.points:g}/{c.max_points:g}",
                      escape(c.message))
    return table


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    report = report.shown()  # an ESC or OSC sequence in a message or a magic line never reaches the terminal raw
    console.print(report_table(report))
    for c in report.checks:
        curve = curve_of(c.details)
        if curve:
            ref = ((c.details.get("plot") or {}).get("curve") or {}).get("reference")
            line = f"{escape(c.name)} loss curve (seed {c.details.get('seed')}): yours {sparkline(curve)}"
            console.print(line + (f"  reference {sparkline(ref)}" if ref else ""))
    if report.skipped_lines:
        console.print("[yellow]Not executed at load:[/] "
                      + escape("; ".join(report.skipped_lines)))
    for c in report.checks:
        if c.traceback_to_show:
            console.print(f"[bold red]{escape(c.name)}[/]: your code's traceback\n{escape(c.traceback_to_show)}")
    skipped = [c for c in report.checks if c.status == "skip"]
    total = f"Total: {report.score:g}/{report.max_score:g}"
    if skipped:
        total += f" ({sum(c.max_points for c in skipped):g} points skipped: {', '.join(c.name for c in skipped)})"
    console.print(f"[bold]{total}[/]")


def write_pictures(report: Report, folder: Path) -> list[Path]:
    """One SVG per check that has a picture, named after the check: FOLDER/<check>.svg."""
    from .plots import pictures

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, _title, svg in pictures(report.checks):
        target = folder / f"{name}.svg"
        target.write_bytes(svg)
        written.append(target)
    return written
