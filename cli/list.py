"""`dldiy list`: the exercises, their titles and checks."""

import click
from rich.console import Console
from rich.table import Table

from dldiy.graders.course.exercise import exercise_ids, load_exercise


@click.command("list")
def list_command() -> None:
    """List the exercises, their titles and checks."""
    table = Table(show_lines=True)
    for col in ("exercise", "title", "checks (points)"):
        table.add_column(col)
    for exercise_id in exercise_ids():
        ex = load_exercise(exercise_id)
        checks = ", ".join(f"{c.name} ({c.points:g})" for c in ex.checks)
        table.add_row(ex.id, ex.title, checks)
    Console().print(table)
