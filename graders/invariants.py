"""invariants: properties every probed call must keep, whatever the values (no reference needed).

The measurement is {"probed": [what was called, ...], "violations": [{"where": str, "what": str}, ...]},
gathered by the harness on every call it makes: arguments left unmodified, the output's dtype following
the inputs', no autograd graph kept where none belongs, the same generator seed giving the same result,
an autograd.Function's contract (a gradient per input, in the input's dtype). The first violation fails
the check, named with the call and configuration it happened in; the others are counted.
"""

from __future__ import annotations

from typing import Any

from .exercise import Check
from .verdict import Verdict

NEEDS_REFERENCE = False


def judge(measured: dict[str, Any], expected: Any, check: Check) -> Verdict:
    probed, violations = list(measured.get("probed", [])), list(measured.get("violations", []))
    if not violations:
        return Verdict.passed(f"{len(probed)} call(s) probed, every invariant held")
    first = violations[0]
    more = f" ({len(violations) - 1} more violation(s))" if len(violations) > 1 else ""
    return Verdict.failed(f"{first['where']}: {first['what']}{more}", where=first["where"])


# ---- child side: what a harness uses to gather the measurement (torch imported inside) -------------

class Watch:
    """Calls into the submission that keep a record of every invariant they break."""

    def __init__(self) -> None:
        self.probed: list[str] = []
        self.violations: list[dict[str, str]] = []

    def violation(self, where: str, what: str) -> None:
        self.violations.append({"where": where, "what": what})

    def call(self, where: str, fn: Any, args: tuple, names: tuple[str, ...], **kwargs: Any) -> Any:
        """fn(*args, **kwargs), the tensors among `args` compared with copies kept before the call.
        The caller's own tensors are passed, not clones: a function that writes into its arguments
        (an initial weight, the data) is seen. A call that raises returns None: failing on these
        inputs is for the checks of values to report (one bug, one deduction), not an invariant."""
        import torch

        kept = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
        self.probed.append(where)
        try:
            result = fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - see above
            return None
        for name, arg, before in zip(names, args, kept):
            if before is not None and not _same(arg, before):
                self.violation(where, f"modified its argument {name} in place (the caller's tensor changed); "
                                      "work on a copy (x = x.clone()) or out of place")
        return result

    def dtype(self, where: str, value: Any, wanted: Any, what: str = "the output") -> None:
        """`value` (a tensor) has the inputs' floating dtype: float32 in, float32 out; float64 in, float64 out."""
        import torch

        if isinstance(value, torch.Tensor) and value.dtype != wanted:
            self.violation(where, f"{what} is {str(value.dtype).replace('torch.', '')} for "
                                  f"{str(wanted).replace('torch.', '')} inputs: the dtype must follow the inputs "
                                  "(a tensor created without dtype=, or a .float()/.double() cast?)")

    def no_graph(self, where: str, values: Any, what: str) -> None:
        """None of `values` drags an autograd graph along (a loss history kept as tensors keeps every step's graph)."""
        import torch

        for i, v in enumerate(values):
            if isinstance(v, torch.Tensor) and v.requires_grad:
                self.violation(where, f"{what} [{i}] is a tensor that requires grad: it keeps the autograd graph "
                                      "of its step alive (memory grows every step); record loss.item()")
                return

    def measurement(self) -> dict[str, Any]:
        return {"probed": self.probed, "violations": self.violations}


def _same(after: Any, before: Any) -> bool:
    import torch

    if not isinstance(after, torch.Tensor):
        return False
    after = after.detach()
    return after.shape == before.shape and after.dtype == before.dtype and bool(
        torch.equal(after, before) or (after.is_floating_point() and torch.allclose(after, before, rtol=0, atol=0,
                                                                                      equal_nan=True)))
