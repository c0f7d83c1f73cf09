"""The `dldiy` command: one module per verb (cli/check.py is `dldiy check`, and so on).

A command's module is imported only when that command runs (or `--help` describes it): a student's
install holds only the declared dependencies, and `dldiy mutate`'s libcst (an instructor extra) must
not stand between a student and `dldiy check`. A command, or an option of one, whose extra is missing
says in one line which extra to install, with exit status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from .options import shared_options

# name -> (module under dldiy.cli, the click command in it); student commands first, as `--help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("list", "list_command"),
    "start": ("start", "start_command"),
    "check": ("check", "check_command"),
    "grade": ("grade", "grade_command"),
    "validate": ("validate", "validate_command"),
    "record": ("record", "record_command"),
    "mutate": ("mutate", "mutate_command"),  # libcst: the instructor extra
    "release": ("release", "release_command"),
    "new": ("new", "new_command"),
    "bug": ("bug", "bug_command"),
}

# Options that need an extra the command itself does not: (command, parameter name, option) -> (module, extra).
# Checked before the command's body runs, so a batch never starts only to die at its last step.
OPTION_EXTRAS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("grade", "course_dir", "--nbgrader"): ("nbgrader", "instructor"),
    ("grade", "cluster", "--cluster"): ("distributed", "instructor"),
}

# The top-level modules each extra installs (a ModuleNotFoundError naming one is a missing extra).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "instructor": ("nbgrader", "libcst", "distributed"),
}


class MissingExtra(click.ClickException):
    """`what` needs `extra`, which this install lacks: one line, exit status 2."""

    exit_code = 2

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the {extra} extra: pip install 'dldiy[{extra}]'")

    def show(self, file: Any = None) -> None:
        click.echo(f"dldiy: {self.format_message()}", err=True)


def extra_of(error: ModuleNotFoundError) -> str | None:
    """The extra that installs the module `error` misses, or None when it is not one of ours."""
    top = (error.name or "").partition(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def require(module: str, what: str, extra: str) -> None:
    """Raise MissingExtra unless `module` is importable (cheap: finds it, does not import it)."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(what, extra)


def _missing(name: str, extra: str) -> click.Command:
    """Stands in for a command whose module cannot be imported without `extra`."""

    def say(**_: Any) -> None:
        raise MissingExtra(f"dldiy {name}", extra)

    return click.Command(name, callback=say, help=f"(needs the {extra} extra: pip install 'dldiy[{extra}]')",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)])


def _guard_options(name: str, command: click.Command) -> click.Command:
    """Wrap `command`'s callback so that an option whose extra is missing fails before the body runs."""
    guarded = [(param, option, module, extra) for (cmd, param, option), (module, extra) in OPTION_EXTRAS.items()
               if cmd == name]
    if not guarded or command.callback is None:
        return command
    unknown = [param for param, *_ in guarded if param not in {p.name for p in command.params}]
    if unknown:  # a renamed parameter would silently drop the guard
        raise RuntimeError(f"dldiy {name} has no parameter {', '.join(unknown)} (cli/__init__.py OPTION_EXTRAS)")
    body = command.callback

    def callback(**kwargs: Any) -> Any:
        for param, option, module, extra in guarded:
            if kwargs.get(param) is not None:
                require(module, f"dldiy {name} {option}", extra)
        return body(**kwargs)

    command.callback = callback
    return command


_loaded: dict[str, click.Command] = {}


class _Group(click.Group):
    """Loads each command on demand, and turns the errors a user can cause into one line and exit
    code 2, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        if name not in _loaded:  # once: the option guard wraps the command's callback
            _loaded[name] = self._load(name)
        return _loaded[name]

    @staticmethod
    def _load(name: str) -> click.Command:
        module, attribute = COMMANDS[name]
        try:
            found = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as e:
            needed = extra_of(e)
            if needed is None:
                raise
            return _missing(name, needed)
        command = getattr(found, attribute)
        if not getattr(command, "_dldiy_shared", False):  # --course, --load-timeout, ... on every command
            command.params.extend(shared_options())
            command._dldiy_shared = True
        return _guard_options(name, command)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] in ("grade", "check") and not ctx.resilient_parsing and _runs_here(args[1:]):
            # torch's import in the fork server (over a second) overlaps the import of the command's
            # own modules (a third of a second) and the class's discovery: started before either. (check
            # forks a harness process per CPU from it: its seeds run side by side, assess.split_by_seed)
            from dldiy.graders.sandbox.forkserver import start_shared_early

            start_shared_early()
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        from dldiy.graders.course.folders import CourseError
        from dldiy.graders.course.exercise import SpecError
        from dldiy.graders.sandbox.submission import SubmissionError

        try:
            return super().invoke(ctx)
        except (SpecError, SubmissionError, CourseError) as e:
            click.echo(f"dldiy: {e}", err=True)
            sys.exit(2)
        except ModuleNotFoundError as e:  # an extra's module imported deep inside a command
            needed = extra_of(e)
            if needed is None:
                raise
            raise MissingExtra(f"dldiy {ctx.invoked_subcommand}", needed) from None


def _runs_here(args: list[str]) -> bool:
    """The command will grade or check on this machine (not --help, not --cluster): a guess from the raw arguments,
    for an early start only (a wrong guess costs an unused server, ended at exit, or a later start)."""
    return not any(a in ("-h", "--help", "--cluster") or a.startswith("--cluster=") for a in args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dldiy")
def main() -> None:
    """Check, grade and hunt bugs in Deep Learning DIY exercises (or in your own course: docs/own-course.md)."""


main.params.extend(shared_options())
