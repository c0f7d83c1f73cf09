"""The check kinds: one module per kind, and their registry.

A check kind is a module `graders/kinds/<kind>.py` that satisfies `CheckKind` (below): `judge(measured,
expected, check) -> Verdict` runs in the parent (plain data in, no torch) and `NEEDS_REFERENCE` says
whether `expected` comes from the reference's measurement. Beside its judge a kind keeps the measuring
helpers harnesses call in the harness process (`gradcheck.numeric_gradient`, `invariants.Watch`,
`parity.measure_parity`, ...): the measurement and the judgement of one property live in one file.

Kinds are listed in `KINDS`, an explicit registry as pytest's plugins are: a new kind is a module plus
one line here, and a spec naming anything else (`kind = "judge"`, a typo) is refused when the spec is
read, with the kinds that exist.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..course.exercise import Check
    from ..verdict import Verdict


@runtime_checkable
class CheckKind(Protocol):
    """The contract of a check kind's module (checked for every registered kind by tests/test_check_kinds.py)."""

    NEEDS_REFERENCE: bool  # True: `expected` is the reference's measurement at the same seed

    def judge(self, measured: Any, expected: Any, check: "Check") -> "Verdict":
        """One measurement (plain data from the harness process) -> a verdict a student can act on."""
        ...


# Optional beside judge(): `compact(measurement) -> dict`, the part of the reference's measurement that
# judge() and the kind's pictures read; expected.json and the batch keep only that (judge.compact_expectation).


KINDS: tuple[str, ...] = (
    "agreement",    # the submission's outputs equal the reference's over a family of inputs
    "contract",     # the API a student subclasses or implements, exercised call by call
    "convergence",  # training reaches a target (accuracy, loss) within a budget
    "coverage",     # the harness reached every case it meant to probe
    "divergence",   # a learning rate too large is noticed, not silently producing nan
    "first_loss",   # seeded first-loss values and a short trajectory against the reference's
    "gradcheck",    # hand gradients against finite differences
    "invariants",   # arguments untouched, dtypes followed, no graph kept, seeds followed
    "parity",       # the same numbers on CPU and on a GPU
    "placement",    # every tensor on the device its inputs are on
    "stability",    # no overflow or nan at extreme inputs
    "symmetry",     # a symmetry of the task is respected (e.g. relabelled classes)
    "termination",  # a loop stops when it should
)


def check_kind(kind: str) -> ModuleType:
    """The module implementing a registered check kind, or KeyError naming the kinds that exist."""
    if kind not in KINDS:
        raise KeyError(f"unknown check kind {kind!r} (the kinds: {', '.join(KINDS)})")
    return importlib.import_module(f"{__name__}.{kind}")
