"""Options every command takes, before or after its name: the course, and the limits of the spec.

`dldiy --course DIR grade ...` and `dldiy grade --course DIR ...` are the same. They take effect as
they are parsed (eagerly, before the command reads a spec), so each command only calls load_exercise.
"""

from __future__ import annotations

from pathlib import Path

import click


def _course(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        from dldiy.graders.course.folders import CourseError, use_course

        try:
            use_course(value)
        except CourseError as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from None


def _limit(key: str):
    def apply(ctx: click.Context, param: click.Parameter, value) -> None:
        if value is not None:
            from dldiy.graders.course.exercise import override_limits

            try:
                override_limits(**{key: value})
            except ValueError as e:
                raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    return apply


def shared_options() -> list[click.Option]:
    """Fresh Option objects (a click parameter belongs to one command)."""
    return [
        click.Option(["--course"], type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="DIR",
                     expose_value=False, is_eager=True, callback=_course,
                     help="The course folder (holding dldiy.toml); default: the nearest dldiy.toml at or "
                          "above the current folder, else dldiy's built-in exercises."),
        click.Option(["--load-timeout"], type=float, metavar="S", expose_value=False, is_eager=True,
                     callback=_limit("load_timeout"), help="Seconds to load a submission (overrides the spec)."),
        click.Option(["--check-timeout"], type=float, metavar="S", expose_value=False, is_eager=True,
                     callback=_limit("timeout"), help="Seconds per check and seed (overrides the spec)."),
        click.Option(["--memory"], metavar="SIZE", expose_value=False, is_eager=True, callback=_limit("memory"),
                     help="Memory per submission, e.g. 2GiB (overrides the spec)."),
    ]
