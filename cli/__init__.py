"""The `dldiy` command: one module per verb (cli/check.py is `dldiy check`, and so on)."""

from __future__ import annotations

import sys

import click

from .check import check_command
from .grade import grade_command
from .list import list_command
from .mutate import mutate_command
from .new import new_command
from .options import shared_options
from .record import record_command
from .release import release_command
from .start import start_command
from .validate import validate_command


class _Group(click.Group):
    """Turns the errors a user can cause into one line and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        from dldiy.graders.course import CourseError
        from dldiy.graders.exercise import SpecError
        from dldiy.graders.submission import SubmissionError

        try:
            return super().invoke(ctx)
        except (SpecError, SubmissionError, CourseError) as e:
            click.echo(f"dldiy: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dldiy")
def main() -> None:
    """Check, grade and hunt bugs in Deep Learning DIY exercises (or in your own course: docs/own-course.md)."""


main.params.extend(shared_options())


COMMANDS = (
    list_command,
    start_command,
    check_command,
    grade_command,
    validate_command,
    record_command,
    mutate_command,
    release_command,
    new_command,
)
for command in COMMANDS:
    command.params.extend(shared_options())
    main.add_command(command)
