"""Assess one submission: measure it in a child, judge it here. Used by check, validate, record, grade."""

from __future__ import annotations

import dataclasses
import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .course.exercise import Check, Exercise
from .judge import SEED_FREE_KINDS, UNFIT, compact_expectation, judge, judge_one, tasks_for
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
               on_progress: Callable[[int, int, Task | None], None] | None = None,
               processes: int = 1) -> Assessment:
    """Run `checks` (default: all) on the submission at `path` and judge them against `expected`
    (default: the recorded public expectations). Raises SubmissionError if `path` holds no submission.
    The child works in a copy of `cwd` (default: `path` itself, a folder or a lone file), confined by
    `limits`, started by `server` (a fork server; default: a fresh interpreter; graders/sandbox/spawn.py). `extra_seeds`
    (check's `exercise.check_seeds`) run beside the public seeds, judged against their recorded values.
    `on_progress(done, total, running)` is called as each (check, seed) result arrives, with the task
    that runs next (None after the last): for a progress line. A check given in `checks` runs as
    given (its probe, params and timeout reach the harness), even where it differs from the spec's.
    `public_seeds`: with hidden seeds, run only the first that many public seeds beside them (grade's
    choice: the points rest on the hidden seeds; a public one gives the feedback its values and pictures).
    `processes` (check's: the CPUs it may use): without hidden seeds, the seeds are shared out among up
    to that many students' processes run side by side (`split_by_seed`), each with a harness of its own."""
    entry = locate(Path(path), exercise.entry)
    if cwd is None:
        cwd = Path(path) if Path(path).is_dir() else entry
    checks = list(checks or exercise.checks)
    exercise = with_checks(exercise, checks)
    public = public_seeds_run(exercise.seeds, tuple(hidden_seeds), public_seeds)
    seeds = list(dict.fromkeys(public + list(extra_seeds) + list(hidden_seeds)))
    tasks = tasks_for(exercise, checks, seeds, tuple(hidden_seeds))
    # Not with hidden seeds: a hidden seed's tasks must come after every visible one in ONE process
    # (tasks_for), and grade already runs one submission per CPU.
    groups = split_by_seed(tasks, processes if not hidden_seeds else 1)
    hooks = _progress_hooks(groups, on_progress)
    outcome = merged([o for o in _side_by_side([
        functools.partial(run_child, exercise, entry, group, cwd=cwd, limits=limits, server=server, on_result=hook,
                          hidden=tuple(hidden_seeds))
        for group, hook in zip(groups, hooks)])], (limits or exercise.limits()).output_bytes)
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


def split_by_seed(tasks: list[Task], processes: int) -> list[list[Task]]:
    """`tasks` shared out among at most `processes` groups, a seed's tasks all in one group (a harness
    keeps what it built at a seed for the next check at that seed: exercise-3's trained model), each
    group in the tasks' order. Seeds go, most tasks first, to the group with the fewest tasks so far;
    the first group holds the first seed. One group when there is one seed or one process."""
    seeds = list(dict.fromkeys(t.seed for t in tasks))
    if processes < 2 or len(seeds) < 2:
        return [list(tasks)]
    count = {s: sum(t.seed == s for t in tasks) for s in seeds}
    groups: list[set[int]] = [set() for _ in range(min(processes, len(seeds)))]
    load = [0] * len(groups)
    for seed in [seeds[0], *sorted(seeds[1:], key=lambda s: -count[s])]:  # (sorted is stable: ties in order)
        k = load.index(min(load))
        groups[k].add(seed)
        load[k] += count[seed]
    return [[t for t in tasks if t.seed in group] for group in groups]


def _side_by_side(runs: list[Callable[[], Outcome]]) -> list[Outcome]:
    """Each run's outcome, the runs on threads of their own when there are several (each waits on its
    students' processes: the threads only relay)."""
    if len(runs) == 1:
        return [runs[0]()]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(runs)) as pool:
        return list(pool.map(lambda run: run(), runs))


def merged(outcomes: list[Outcome], output_bytes: int) -> Outcome:
    """One outcome from those of processes that each ran some seeds of the same submission: every
    result; the first load error (each process loads the same file); the confinement the first reported;
    what they printed, in turn, each without the lines it begins with alike the first's (what the
    submission prints as it loads, shown once)."""
    if len(outcomes) == 1:
        return outcomes[0]
    first = outcomes[0]
    out = Outcome(skipped=first.skipped, sandbox=first.sandbox)
    for o in outcomes:
        out.results.update(o.results)
        out.timings.update(o.timings)
    out.load_error = next((o.load_error for o in outcomes if o.load_error is not None), None)
    out.output = "".join([first.output, *(_after_common_lines(first.output, o.output) for o in outcomes[1:])]
                         )[: output_bytes + 200]
    out.duration_s = max(o.duration_s for o in outcomes)
    loads = [o.load_s for o in outcomes if o.load_s is not None]
    out.load_s = max(loads) if loads else None
    return out


def _after_common_lines(first: str, other: str) -> str:
    """`other` without the whole lines it begins with that `first` begins with too."""
    kept = other.splitlines(keepends=True)
    for a, b in zip(first.splitlines(keepends=True), other.splitlines(keepends=True)):
        if a != b:
            break
        kept.pop(0)
    return "".join(kept)


def _progress_hooks(groups: list[list[Task]], on_progress) -> list[Callable[[Task], None] | None]:
    """One hook per group. A group's tasks run in order: after its k-th result, its task k runs (its
    result arrives next). Each call counts every group's results and names a task still running: this
    group's next, else another group's (None once all are done)."""
    if on_progress is None:
        return [None] * len(groups)
    total = sum(map(len, groups))
    lock = threading.Lock()
    done = [0]
    running: list[Task | None] = [group[0] if group else None for group in groups]

    def hook_of(k: int) -> Callable[[Task], None]:
        group, finished = groups[k], [0]

        def hook(_task: Task) -> None:
            with lock:
                done[0] += 1
                finished[0] += 1
                running[k] = group[finished[0]] if finished[0] < len(group) else None
                on_progress(done[0], total, running[k] or next((t for t in running if t is not None), None))
        return hook
    return [hook_of(k) for k in range(len(groups))]


def measure_reference(exercise: Exercise, reference: Path, seeds: tuple[int, ...] | None = None,
                      checks: list[Check] | None = None, *, limits: Limits | None = None,
                      server: Spawner | None = None, hidden: tuple[int, ...] = (),
                      on_progress: Callable[[int, int, Task | None], None] | None = None,
                      ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The reference's measurements for the checks that compare against it: {check: {seed: m}}, each
    cut to what its kind's judge reads (judge.compact_expectation), recorded or measured live alike.
    Returns them with the problems met (a reference that errors is the instructor's to fix).
    `hidden`: the grading run's hidden seeds (checks with seeds of their own run at the first too).
    With hidden seeds, the checks judged without the reference (a target: convergence's accuracy) run
    too, and where the reference itself misses one at a hidden seed, that (check, seed) is recorded as
    {UNFIT: its verdict}: a seed drawn at random can be one where the task is harder than the target
    allows (exercise-8's reference reaches 84% at one seed in 40, against 90%), and a student must not
    lose the points there (graders/judge.py leaves such a seed out of that check)."""
    needing = [c for c in (checks or exercise.checks)
               if c.needs_reference or (hidden and c.kind not in SEED_FREE_KINDS and c.seeds is None)]
    exercise = with_checks(exercise, needing)
    seeds = tuple(seeds or exercise.seeds)
    tasks = tasks_for(exercise, needing, list(seeds), hidden)
    outcome = run_child(exercise, locate(reference, exercise.entry), tasks, cwd=reference, limits=limits, hidden=hidden,
                        server=server, on_result=_progress_hooks([tasks], on_progress)[0])
    expected: dict[str, dict[str, Any]] = {}
    problems = [f"reference: {outcome.load_error}"] if outcome.load_error else []
    for (check, seed), result in outcome.results.items():
        chosen = exercise.check(check)
        if not chosen.needs_reference:  # run only to know whether this hidden seed is fit for the check
            # an error here (a timeout on a loaded grader) leaves the seed out of that check, never stops the batch
            verdict = judge_one(chosen, seed, result, None)
            if seed in hidden and verdict.status in ("fail", "error"):
                expected.setdefault(check, {})[str(seed)] = {UNFIT: verdict.message}
        elif "error" in result:
            problems.append(f"reference, {check} at seed {seed}: {result['error']['message']}")
        else:
            expected.setdefault(check, {})[str(seed)] = compact_expectation(chosen.kind, result["measurement"])
    return expected, problems
