"""`dldiy bug new|show`: write and read the bugged variants of buggy/<exercise>/<bug>/ (graders/course/bugs.py).

    dldiy bug new EXERCISE NAME --from EDITED   the edit (a file or folder of the reference) as bug.diff,
                                                 with a manifest skeleton to fill in
    dldiy bug show EXERCISE NAME [--apply DIR]  the manifest and the diff; --apply writes the bugged copy
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.syntax import Syntax

from dldiy.graders.course import bugs

from .options import shared_options


@click.group("bug")
def bug_command() -> None:
    """Write (new) and read (show) the bugged variants of buggy/: a manifest and a patch each."""


@bug_command.command("new")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("name")
@click.option("--from", "edited", required=True, type=click.Path(exists=True, path_type=Path),
              help="A file or folder of the reference, edited to hold the bug.")
def new(exercise_id: str, name: str, edited: Path) -> None:
    """Store the edit EDITED of EXERCISE's reference as the bug NAME (bug.diff + manifest skeleton)."""
    notes: list[str] = []
    folder = bugs.new_bug(exercise_id, name, edited, notes)
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {folder / bugs.DIFF} and {folder / bugs.MANIFEST}: fill in description and caught_by, "
               f"then run `dldiy validate {exercise_id}`")


@bug_command.command("show")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("name")
@click.option("--apply", "dest", type=click.Path(exists=False, path_type=Path), default=None,
              help="Write the reference with this bug applied to DIR (which must not exist).")
def show(exercise_id: str, name: str, dest: Path | None) -> None:
    """Print the manifest and the diff of bug NAME of EXERCISE; --apply DIR writes the bugged copy."""
    variant = bugs.variant(exercise_id, name)
    built = bugs.build_bugged(exercise_id, name, dest) if dest is not None else None
    for text, lexer in (((variant.path / bugs.MANIFEST).read_text(), "toml"), (variant.patch.read_text(), "diff")):
        if sys.stdout.isatty():
            Console().print(Syntax(text, lexer))
        else:  # piped: the text as it is, so `dldiy bug show ... > x.diff` keeps a valid diff at the end
            click.echo(text, nl=False)
    if built is not None:
        click.echo(f"wrote {built}")


for _command in (new, show):  # --course and the limits after the subcommand's name too
    _command.params.extend(shared_options())
