"""The grading machinery.

Parent side (trusted, never imports torch): `exercise` (specs), `runner` (starts the child, enforces
timeouts), `judge` (measurements + expectations -> verdicts), and one module per check kind, whose
`judge()` turns one measurement into a `Verdict`.

Child side (runs next to the untrusted submission): `child` (the entry point), `submission` (the one
loader for references, bugged variants and students' work alike), `api` (calls into the submission and
validates what comes back), and the measuring helpers some check kinds offer to harnesses.

A check kind is a module `graders/<kind>.py` defining `judge(measured, expected, check) -> Verdict`
and `NEEDS_REFERENCE` (whether `expected` comes from the reference's measurement); adding a file adds
a kind, no registry to edit.
"""

import importlib
import importlib.util
from types import ModuleType


def check_kind(kind: str) -> ModuleType:
    """The module implementing a check kind, or KeyError naming the kinds that exist."""
    name = f"{__name__}.{kind}"
    if not kind.isidentifier() or importlib.util.find_spec(name) is None:
        raise KeyError(f"unknown check kind {kind!r}")
    module = importlib.import_module(name)
    if not hasattr(module, "judge"):
        raise KeyError(f"{kind!r} is a grader module, not a check kind (it has no judge())")
    return module
