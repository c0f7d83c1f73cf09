"""Assess one submission: measure it in a child, judge it here. Used by check, validate, record, grade."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .exercise import Check, Exercise
from .judge import Report, judge, tasks_for
from .runner import run_child
from .sandbox import Limits
from .submission import locate

if TYPE_CHECKING:
    from .forkserver import ForkServer


def assess(exercise: Exercise, path: Path, *, checks: list[Check] | None = None,
           hidden_seeds: tuple[int, ...] = (), expected: dict[str, dict[str, Any]] | None = None,
           cwd: Path | None = None, preexec: Callable[[], None] | None = None,
           limits: Limits | None = None, server: ForkServer | None = None,
           extra_seeds: tuple[int, ...] = ()) -> Report:
    """Run `checks` (default: all) on the submission at `path` and judge them against `expected`
    (default: the recorded public expectations). Raises SubmissionError if `path` holds no submission.
    The child works in a copy of `cwd` (default: `path` itself, a folder or a lone file), confined by
    `limits`, forked from `server` when one is given (graders/runner.py's run_child). `extra_seeds`
    (check's `exercise.check_seeds`) run beside the public seeds, judged against their recorded values."""
    entry = locate(Path(path), exercise.entry)
    if cwd is None:
        cwd = Path(path) if Path(path).is_dir() else entry
    checks = list(checks or exercise.checks)
    seeds = list(dict.fromkeys(list(exercise.seeds) + list(extra_seeds) + list(hidden_seeds)))
    outcome = run_child(exercise, entry, tasks_for(exercise, checks, seeds, tuple(hidden_seeds)), cwd=cwd, preexec=preexec,
                        limits=limits, server=server)
    return judge(exercise, checks, outcome, str(path), exercise.expected() if expected is None else expected,
                 frozenset(hidden_seeds))


def measure_reference(exercise: Exercise, reference: Path, seeds: tuple[int, ...] | None = None,
                      checks: list[Check] | None = None, *, limits: Limits | None = None,
                      server: ForkServer | None = None, hidden: tuple[int, ...] = ()
                      ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The reference's measurements for the checks that compare against it: {check: {seed: m}}.
    Returns them with the problems met (a reference that errors is the instructor's to fix).
    `hidden`: the grading run's hidden seeds (checks with seeds of their own run at the first too)."""
    needing = [c for c in (checks or exercise.checks) if c.needs_reference]
    seeds = tuple(seeds or exercise.seeds)
    outcome = run_child(exercise, locate(reference, exercise.entry), tasks_for(exercise, needing, list(seeds), hidden),
                        cwd=reference, limits=limits, server=server)
    expected: dict[str, dict[str, Any]] = {}
    problems = [f"reference: {outcome.load_error}"] if outcome.load_error else []
    for (check, seed), result in outcome.results.items():
        if "error" in result:
            problems.append(f"reference, {check} at seed {seed}: {result['error']['message']}")
        else:
            expected.setdefault(check, {})[str(seed)] = result["measurement"]
    return expected, problems
