"""contract: properties a submission must have, each stated and tested by the harness against the
submission's own behaviour (not against the reference's numbers), such as the contract of a base
class it extends: `step(closure)` returns the closure's loss, a generator of parameters works, the
same run with `zero_grad(set_to_none=False)` gives the same trajectory, a state without autograd graph.

The measurement is {"checked": [what was tested, in words], "violations": [messages]}: the harness
writes each violation as the student reads it (what was done, what was expected, what was measured,
a likely cause). It passes when there is none, and fails naming the first (and how many more).
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

from ..course.exercise import Check
from ..verdict import Verdict, charged_elsewhere

NEEDS_REFERENCE = False


class Properties:
    """Child side: the harness tests each property with a callable that returns None (it holds) or what
    went wrong, in words; an exception raised by the student's code is what went wrong, reported with
    the line of the student's file it came from. `result()` is the measurement."""

    def __init__(self, entry: str):
        self.entry = entry
        self.checked: list[str] = []
        self.violations: list[str] = []

    def test(self, what: str, prop: Callable[[], str | None]) -> None:
        from ..api import ApiError

        self.checked.append(what)
        try:
            problem = prop()
        except ApiError as e:
            problem = str(e)
        except Exception as e:  # noqa: BLE001 - the student's code raised: that is the finding
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith(self.entry)]
            where = f" ({self.entry}, line {frames[-1].lineno})" if frames else ""
            problem = f"raised {type(e).__name__}: {e}{where}"
        if problem:
            self.violations.append(f"{what}: {problem}")

    def result(self) -> dict[str, list[str]]:
        return {"checked": self.checked, "violations": self.violations}


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    checked = [str(c) for c in measured.get("checked", [])]
    violations = [str(v) for v in measured.get("violations", [])]
    # One bug, one deduction: the properties of ONE part whose own check failed (the spec's charged_by:
    # exercise-6's "Momentum(...)" properties -> check momentum) are said in a note, not charged again.
    charged_by = check.params.get("charged_by") or {}
    parts = [next((part for part in charged_by if v.startswith(f"{part}(")), None) for v in violations]
    owners = dict(zip(violations, charged_elsewhere(charged_by, check.params.get("failed_checks") or (), parts)))
    charged = [v for v in violations if owners[v] is None]
    excused = [v for v in violations if owners[v] is not None]
    whose = ", ".join(sorted({str(owners[v]) for v in excused}))
    note = (f" (note: {len(excused)} propert{'y' if len(excused) == 1 else 'ies'} of a part whose own check fails "
            f"({whose}) fail{'s' if len(excused) == 1 else ''} too, not charged again: {excused[0]})") if excused else ""
    if charged:
        more = f" ({len(charged) - 1} more propert{'y' if len(charged) == 2 else 'ies'} fail as well)" \
            if len(charged) > 1 else ""
        # a property's own words say what is wrong and why: the check's fixed hint only where the student's
        # code raised (the words are then the exception's, not a diagnosis)
        return Verdict.failed(charged[0] + more + note, violations=len(charged),
                              diagnosed=": raised " not in charged[0])
    if not checked:
        return Verdict.failed("nothing was checked: the probe measured no property")
    holding = len(checked) - len(excused)
    if excused:
        return Verdict.passed(f"{holding} of {len(checked)} properties hold{note}")
    return Verdict.passed(f"{len(checked)} properties hold, from {checked[0]!r} to {checked[-1]!r}"
                          if len(checked) > 1 else f"1 property holds: {checked[0]}")
