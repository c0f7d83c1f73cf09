"""Parent side: measurements + expectations -> a report. Nothing the child sent is taken as a verdict."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from .kinds import check_kind
from . import plots
from .course.exercise import Check, Exercise
from .sandbox.messages import TaskResult
from .report import CheckResult, Report
from .sandbox.runner import Outcome, Task
from .verdict import Verdict

_RANK = {"pass": 0, "skip": 1, "fail": 2, "error": 3}

__all__ = ["CheckResult", "Report", "judge", "tasks_for", "compact_expectation", "SEED_FREE_KINDS"]


# Kinds whose verdict is a property of the code on devices, not a value an answer table could hold.
SEED_FREE_KINDS = frozenset({"placement", "parity"})
# An expectation {UNFIT: message} at a hidden seed: the reference itself fails the check there
# (assess.measure_reference), so that seed says nothing of the submission for that check
UNFIT = "reference_fails_here"


def tasks_for(exercise: Exercise, checks: list[Check], seeds: list[int], hidden: tuple[int, ...] = ()) -> list[Task]:
    """A check with its own `seeds` runs at those; the others at the run's (public + hidden) seeds.
    When grading (`hidden` drawn), a check with its own seeds also runs at the first hidden seed, so
    no point rests only on inputs a student can know in advance (an answer table, shipped weights).
    A check with `check_seeds = false` leaves out the exercise's check_seeds (hidden seeds it keeps)."""
    tasks = []
    for c in checks:
        if c.seeds is None:
            chosen = [s for s in seeds if c.check_seeds or s not in exercise.check_seeds or s in hidden]
        else:
            chosen = list(c.seeds)
            if hidden and c.kind not in SEED_FREE_KINDS and hidden[0] not in chosen:
                chosen.append(hidden[0])
        tasks += [Task(c.name, s) for s in chosen]
    # Every task whose result a student may see (its message, its picture) runs before any task at a
    # hidden seed: the student's process serves a job's tasks in order, and whatever it saw at a hidden
    # seed (data drawn from it) could otherwise leave in a later visible message (red team: w0 seen at
    # the hidden seeds, raised from the placement check at seed 0, gave the seeds back offline).
    return sorted(tasks, key=lambda t: t.seed in hidden)  # (stable: the checks' order otherwise)


def judge(exercise: Exercise, checks: list[Check], outcome: Outcome, submission: str,
          expected: Mapping[str, dict[str, Any]], hidden: frozenset[int] = frozenset()) -> Report:
    results: dict[str, CheckResult] = {}
    # a check whose values defer to another (its base_check), whose parts other checks charge (its
    # charged_by), or whose diagnosis defers to another's (its see_first), is judged after the others, whatever
    # the spec's order
    for check in sorted(checks, key=lambda c: bool(c.params.get("base_check") or c.params.get("charged_by")
                                                    or c.params.get("see_first")
                                                    or _reads_other_checks(c))):
        base = check.params.get("base_check")
        if base and base in results and results[base].status == "pass":
            # the check its values defer to passed: a wrong base value is then this check's to charge (a
            # loss() right inside train() only, which first-loss reads, and wrong when called itself)
            check = dataclasses.replace(check, params={**check.params, "base_check_passed": True})
        if check.params.get("charged_by") or check.params.get("see_first"):
            # one bug, one deduction: a part of this check (exercise-6's Momentum run of rosenbrock) whose own
            # check failed is said in a note, not charged again (graders/kinds/convergence.py)
            # only a check that ran and measured something wrong: not one that raised (NotImplementedError, a
            # missing name) nor one whose part did nothing at all (agreement's `degenerate`): a stub is no bug
            failed = sorted(name for name, r in results.items() if r.status == "fail" and not r.details.get("degenerate"))
            # and, of a check charged per function (agreement's parts), the functions it charged
            parts = {name: list(results[name].details.get("parts_failed") or ()) for name in failed}
            check = dataclasses.replace(check, params={**check.params, "failed_checks": failed, "failed_parts": parts})
        if _reads_other_checks(check):
            # a kind that must know what the other checks charged, in their words (placement: whether a failure on
            # the CPU that its probe met is charged by a check of values already, or by none but itself)
            check = dataclasses.replace(check, params={**check.params, "other_failures": {
                name: r.message for name, r in results.items() if r.status in ("fail", "error")}})
        per_seed = sorted((seed, r) for (name, seed), r in outcome.results.items() if name == check.name)
        mine = expected.get(check.name, {})
        unfit = {seed for seed, _ in per_seed if isinstance(mine.get(str(seed)), dict) and UNFIT in mine[str(seed)]}
        verdicts = [(seed, judge_one(check, seed, r, mine.get(str(seed)))) for seed, r in per_seed if seed not in unfit]
        result = _combine(check, verdicts, hidden) if verdicts or not unfit else CheckResult(
            check.name, check.kind, "skip", 0.0, check.points,
            "inconclusive: at every seed graded the reference itself misses this check's target", check.title)
        _note_near_timeout(result, [(seed, outcome.timings.get((check.name, seed))) for seed, _ in per_seed], hidden)
        seed = result.details.get("seed")  # absent when the worst seed is hidden: nothing is drawn
        if seed is not None and seed not in hidden:
            data = plots.plot_data(check.kind, outcome.results.get((check.name, seed), {}).get("measurement"),
                                   expected.get(check.name, {}).get(str(seed)))
            if data is not None:
                result.details["plot"] = _finite(data)
        results[check.name] = result
    return Report(exercise.id, submission, [results[c.name] for c in checks], outcome.load_error, outcome.skipped,
                  outcome.output, outcome.duration_s, outcome.sandbox)


# A task that ran more than this share of its timeout: its grade depends on the machine's load (course8 trial: the
# same notebook's training check passed, timed out, then passed again, at 60 s), said in its check's message
NEAR_TIMEOUT = 0.5


def _note_near_timeout(result: CheckResult, timings: list, hidden: frozenset[int]) -> None:
    """A note on a check that did not time out but whose slowest task ran past NEAR_TIMEOUT of its timeout
    (`timings`: (seed, (seconds, timeout) or None))."""
    if result.status not in ("pass", "fail"):
        return
    slow = [(t[0] / t[1], seed, t[0], t[1]) for seed, t in timings
            if isinstance(t, tuple) and len(t) == 2 and t[1] > 0 and t[0] > NEAR_TIMEOUT * t[1]]
    if not slow:
        return
    _, seed, seconds, timeout = max(slow)
    where = "a hidden seed" if seed in hidden else f"seed {seed}"
    result.message += (f" (note: it ran {seconds:.1f} s of its {timeout:g} s timeout at {where}: near the limit, a busier "
                       "machine may time it out; make it faster)")
    result.details["near_timeout"] = {"seconds": seconds, "timeout": timeout}


def _reads_other_checks(check: Check) -> bool:
    """Whether a check's judge reads the other checks' failures: a kind that says so, and a gradcheck held to the
    reference's gradient (whose message blames the forward only where a check of it failed)."""
    return bool(getattr(check_kind(check.kind), "READS_OTHER_CHECKS", False)
                or (check.kind == "gradcheck" and check.params.get("against_reference")))


def compact_expectation(kind: str, measurement: Any) -> Any:
    """The part of a reference's measurement that the kind's judge() and its pictures read: what
    expected.json keeps (issue 12). A kind declares it with `compact(measurement)` beside its judge();
    a kind without one keeps the whole measurement. A measurement of another form is kept as it is."""
    compact = getattr(check_kind(kind), "compact", None)
    if compact is None or not isinstance(measurement, dict):
        return measurement
    try:
        return compact(measurement)
    except (KeyError, TypeError, AttributeError):
        return measurement


def judge_one(check: Check, seed: int, result: TaskResult, expected: Any) -> Verdict:
    if "error" in result:
        error = result["error"]
        return Verdict("error", error["message"], {"traceback": error["traceback"]})
    measurement = result.get("measurement")
    if isinstance(measurement, dict) and measurement.get("violation"):  # graders/kinds/invariants.py: a rule broken
        return Verdict.failed(str(measurement["violation"]), diagnosed=True)  # the rule says it: no fixed hint
    kind = check_kind(check.kind)
    if kind.NEEDS_REFERENCE and expected is None:
        return Verdict("error", f"no expected value recorded for seed {seed}: the instructor must run "
                                f"`dldiy record` (this is not the submission's fault)")
    try:
        verdict = kind.judge(measurement, expected, check)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        # A measurement of the wrong form can only come from a submission that tampered with the
        # child; it is judged a failure, never a pass.
        return Verdict("error", f"malformed measurement ({type(e).__name__}: {e})")
    if isinstance(measurement, dict) and measurement.get("note"):  # a dependency's failure: said, not charged
        verdict.message = f"{verdict.message} (note: {measurement['note']})" if verdict.message else f"note: {measurement['note']}"
    return verdict


def _combine(check: Check, verdicts: list[tuple[int, Verdict]], hidden: frozenset[int]) -> CheckResult:
    if not verdicts:
        return CheckResult(check.name, check.kind, "error", 0.0, check.points, "the check did not run",
                           check.title)
    worst_seed, worst = max(verdicts, key=lambda sv: (_RANK[sv[1].status], sv[0] not in hidden))
    public = [s for s, _ in verdicts if s not in hidden]
    if worst.status == "pass":
        where = (f" (seed{'s' if len(public) > 1 else ''} {', '.join(map(str, public))})"
                 if len(verdicts) > 1 and public else "")
        message = (worst.message or "ok") + where
        if hidden and any(s in hidden for s, _ in verdicts):
            message += f" and {sum(s in hidden for s, _ in verdicts)} hidden seed(s)"
    elif worst_seed in hidden:
        message = ("fails at a hidden seed (values withheld); it passes the public seed(s) graded, so check "
                   "what your code assumes about the data or hard-codes")
    else:
        prefix = f"seed {worst_seed}: " if len(verdicts) > 1 or check.seeds is None else ""
        message = prefix + worst.message
        if worst.status == "fail" and check.hint and not worst.details.get("diagnosed"):  # a diagnosis replaces it
            message += f"\nHint: {check.hint}"
    points, lost = (check.points, []) if worst.status == "pass" else _partial_points(check, [v for _, v in verdicts])
    details = {} if worst_seed in hidden else dict(worst.details, seed=worst_seed)
    if lost:  # the functions charged at any seed (a hidden one included: which function, never its values)
        details["parts_failed"] = lost
    return CheckResult(check.name, check.kind, worst.status, points, check.points, message, check.title,
                       _finite(details))


def _partial_points(check: Check, verdicts: list[Verdict]) -> tuple[float, list[str]]:
    """A failed check's points and the functions it charged: 0 and [], except where the check covers several
    functions (agreement's `parts`) and every seed's failure says which failed (`parts_failed`): then the share
    of the functions that failed at no seed, and those that failed at some (one bug, one deduction;
    graders/kinds/agreement.py). An error at any seed takes them all."""
    parts = [str(p) for p in check.params.get("parts") or ()]
    failing = [v for v in verdicts if v.status != "pass"]
    if not parts or any(v.status not in ("fail", "skip") for v in failing) \
            or any(v.status == "fail" and not isinstance(v.details.get("parts_failed"), list) for v in failing):
        return 0.0, []
    lost = {str(p) for v in failing if v.status == "fail" for p in v.details["parts_failed"]}
    return round(check.points * sum(p not in lost for p in parts) / len(parts), 9), [p for p in parts if p in lost]


def _finite(value: Any) -> Any:
    """JSON for the outside world has no nan/inf: spell them out."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        # a plot's points and curves: plain numbers whose sum is finite hold no nan or inf (a sum that
        # overflows only sends them the long way), checked in C instead of one call per number
        if set(map(type, value)) <= _PLAIN_NUMBERS and math.isfinite(sum(value)):
            return list(value)
        return [_finite(v) for v in value]
    return value


_PLAIN_NUMBERS = {float, int}
