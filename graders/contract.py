"""contract: properties a submission must have, each stated and tested by the harness against the
submission's own behaviour (not against the reference's numbers), such as the contract of a base
class it extends: `step(closure)` returns the closure's loss, a generator of parameters works, the
same run with `zero_grad(set_to_none=False)` gives the same trajectory, a state without autograd graph.

The measurement is {"checked": [what was tested, in words], "violations": [messages]}: the harness
writes each violation as the student reads it (what was done, what was expected, what was measured,
a likely cause). It passes when there is none, and fails naming the first (and how many more).
"""

from __future__ import annotations

from typing import Any

from .exercise import Check
from .verdict import Verdict

NEEDS_REFERENCE = False


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    checked = [str(c) for c in measured.get("checked", [])]
    violations = [str(v) for v in measured.get("violations", [])]
    if violations:
        more = f" ({len(violations) - 1} more propert{'y' if len(violations) == 2 else 'ies'} fail as well)" \
            if len(violations) > 1 else ""
        return Verdict.failed(violations[0] + more, violations=len(violations))
    if not checked:
        return Verdict.failed("nothing was checked: the probe measured no property")
    return Verdict.passed(f"{len(checked)} properties hold, from {checked[0]!r} to {checked[-1]!r}"
                          if len(checked) > 1 else f"1 property holds: {checked[0]}")
