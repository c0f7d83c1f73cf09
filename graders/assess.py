"""Assess one submission: measure it in a child, judge it here. Used by check, validate, record, grade."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .course.exercise import Check, Exercise
from .judge import compact_expectation, judge, tasks_for
from .report import Report
from .sandbox.runner import Outcome, Task, run_child
from .sandbox.confine import Limits
from .sandbox.submission import locate

if TYPE_CHECKING:
    from .sandbox.spawn import Spawner


@dataclass
class Assessment:
    """A report and the raw outcome it was judged from: what every (check, seed) measured or why it
    errored (mutation analysis compares a mutant's measurements with the reference's)."""

    report: Report
    outcome: Outcome


def assess(exercise: Exercise, path: Path, **options: Any) -> Report:
    """The report of `assessment(exercise, path, **options)`: what check, validate, record, grade use."""
    return assessment(exercise, path, **options).report


def assessment(exercise: Exercise, path: Path, *, checks: list[Check] | None = None,
               hidden_seeds: tuple[int, ...] = (), expected: Mapping[str, dict[str, Any]] | None = None,
               cwd: Path | None = None, limits: Limits | None = None, server: Spawner | None = None,
               extra_seeds: tuple[int, ...] = (), public_seeds: int | None = None,
               on_progress: Callable[[int, int, Task | None], None] | None = None) -> Assessment:
    """Run `checks` (default: all) on the submission at `path` and judge them against `expected`
    (default: the recorded public expectations). Raises SubmissionError if `path` holds no submission.
    The child works in a copy of `cwd` (default: `path` itself, a folder or a lone file), confined by
    `limits`, started by `server` (a fork server; default: a fresh interpreter; graders/sandbox/spawn.py). `extra_seeds`
    (check's `exercise.check_seeds`) run beside the public seeds, judged against their recorded values.
    `on_progress(done, total, running)` is called as each (check, seed) result arrives, with the task
    that runs next (None after the last): for a progress line. A check given in `checks` runs as
    given (its probe, params and timeout reach the harness), even where it differs from the spec's.
    `public_seeds`: with hidden seeds, run only the first that many public seeds beside them (grade's
    choice: the points rest on the hidden seeds; a public one gives the feedback its values and pictures)."""
    entry = locate(Path(path), exercise.entry)
    if cwd is None:
        cwd = Path(path) if Path(path).is_dir() else entry
    checks = list(checks or exercise.checks)
    exercise = with_checks(exercise, checks)
    public = public_seeds_run(exercise.seeds, tuple(hidden_seeds), public_seeds)
    seeds = list(dict.fromkeys(public + list(extra_seeds) + list(hidden_seeds)))
    tasks = tasks_for(exercise, checks, seeds, tuple(hidden_seeds))
    outcome = run_child(exercise, entry, tasks, cwd=cwd, limits=limits, server=server,
                        on_result=_progress_hook(tasks, on_progress))
    report = judge(exercise, checks, outcome, str(path), exercise.expected() if expected is None else expected,
                   frozenset(hidden_seeds))
    return Assessment(report, outcome)


def public_seeds_run(public: tuple[int, ...], hidden: tuple[int, ...], count: int | None) -> list[int]:
    """The public seeds that run: the first `count` beside hidden seeds (grade's choice; None: all of
    them), every one without hidden seeds (a run with none at all has nothing else to rest on)."""
    return list(public)[:count] if hidden and count is not None else list(public)


def with_checks(exercise: Exercise, checks: list[Check]) -> Exercise:
    """`exercise` whose checks of the same names are `checks` (the child runs the parent's checks:
    graders/sandbox/runner.py sends each one's probe, params and timeout)."""
    if all(c in exercise.checks for c in checks):
        return exercise
    given = {c.name: c for c in checks}
    merged = tuple(given.pop(c.name, c) for c in exercise.checks) + tuple(given.values())
    return dataclasses.replace(exercise, checks=merged)


def _progress_hook(tasks: list[Task], on_progress) -> Callable[[Task], None] | None:
    """Tasks run in order: after the k-th result, task k runs (its result arrives next)."""
    if on_progress is None:
        return None
    done = [0]

    def hook(_task: Task) -> None:
        done[0] += 1
        on_progress(done[0], len(tasks), tasks[done[0]] if done[0] < len(tasks) else None)
    return hook


def measure_reference(exercise: Exercise, reference: Path, seeds: tuple[int, ...] | None = None,
                      checks: list[Check] | None = None, *, limits: Limits | None = None,
                      server: Spawner | None = None, hidden: tuple[int, ...] = (),
                      on_progress: Callable[[int, int, Task | None], None] | None = None,
                      ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The reference's measurements for the checks that compare against it: {check: {seed: m}}, each
    cut to what its kind's judge reads (judge.compact_expectation), recorded or measured live alike.
    Returns them with the problems met (a reference that errors is the instructor's to fix).
    `hidden`: the grading run's hidden seeds (checks with seeds of their own run at the first too)."""
    needing = [c for c in (checks or exercise.checks) if c.needs_reference]
    exercise = with_checks(exercise, needing)
    seeds = tuple(seeds or exercise.seeds)
    tasks = tasks_for(exercise, needing, list(seeds), hidden)
    outcome = run_child(exercise, locate(reference, exercise.entry), tasks, cwd=reference, limits=limits,
                        server=server, on_result=_progress_hook(tasks, on_progress))
    expected: dict[str, dict[str, Any]] = {}
    problems = [f"reference: {outcome.load_error}"] if outcome.load_error else []
    for (check, seed), result in outcome.results.items():
        if "error" in result:
            problems.append(f"reference, {check} at seed {seed}: {result['error']['message']}")
        else:
            kind = exercise.check(check).kind
            expected.setdefault(check, {})[str(seed)] = compact_expectation(kind, result["measurement"])
    return expected, problems
