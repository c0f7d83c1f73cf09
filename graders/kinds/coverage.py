"""coverage: after one backward pass, every parameter has received a non-zero gradient.

The measurement is {"where": str, "parameters": [{"name", "shape", "grad": None | {"norm", "nonzero",
"size"}}]}, taken by `measure_coverage` right after `loss.backward()`. A parameter fails when
    grad is None                     (autograd never reached it), or
    ||grad|| == 0 or not finite      (it was reached, but nothing flows back), or
    nonzero / size < min_nonzero_fraction   (the spec's parameter, default 0: off).
A loss can look right and the training still "converge" with a layer cut off the graph (a .detach()
or torch.no_grad() in forward, a backward that returns None or zeros for it): only this check sees it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from ..course.exercise import Check
from ..verdict import Verdict, fmt

NEEDS_REFERENCE = False


def measure_coverage(named: Iterable[tuple[str, Any]], where: str) -> dict[str, Any]:
    """Child side: the gradient each named tensor holds (call after backward())."""
    out = []
    for name, p in named:
        g = getattr(p, "grad", None)
        entry: dict[str, Any] = {"name": name, "shape": list(p.shape), "grad": None}
        if g is not None:
            g = g.detach().double()
            entry["grad"] = {"norm": g.norm().item(), "nonzero": int((g != 0).sum().item()), "size": g.numel()}
        out.append(entry)
    return {"where": where, "parameters": out}


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    min_fraction = float(check.params.get("min_nonzero_fraction", 0.0))
    where = measured.get("where", "one backward pass")
    params = measured["parameters"]
    if not params:
        return Verdict.failed(f"after {where}, no parameter was measured")
    missing, zero, sparse = [], [], []
    for p in params:
        g = p["grad"]
        if g is None:
            missing.append(p["name"])
            continue
        norm = math.nan if g["norm"] is None else float(g["norm"])
        if not math.isfinite(norm) or norm == 0.0:
            zero.append(f"{p['name']} (norm {fmt(norm)})")
        elif g["size"] and g["nonzero"] / g["size"] < min_fraction:
            sparse.append(f"{p['name']} ({g['nonzero']} of {g['size']} entries non-zero)")
    if missing:
        return Verdict.failed(
            f"after {where}, {', '.join(missing)} received no gradient at all (.grad is None): autograd never "
            f"reached {'it' if len(missing) == 1 else 'them'}. Something between the parameter and the loss "
            "is cut from the graph: a .detach(), .data, .item() or torch.no_grad() in forward, or a backward "
            "that returns None for that input.", missing=missing)
    if zero:
        return Verdict.failed(
            f"after {where}, the gradient of {', '.join(zero)} is zero or not finite: no signal flows back "
            "(a backward that returns zeros, a mask that is never true, every unit dead).", zero=zero)
    if sparse:
        return Verdict.failed(
            f"after {where}, the gradient of {', '.join(sparse)} is mostly zero (at least "
            f"{fmt(min_fraction)} of the entries should be non-zero): part of the layer gets no signal.",
            sparse=sparse)
    return Verdict.passed(f"all {len(params)} parameters receive a non-zero gradient")
