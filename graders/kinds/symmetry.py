"""symmetry: hidden units are not interchangeable copies of each other after training starts.

With equal initial weights (all zeros, or one constant), every unit of a layer computes the same
function, receives the same gradient, and so stays identical forever: a width-h layer behaves as a
single unit. The measurement is
    {"snapshots": [{"name": "after 20 steps", "layers": [{"name": "hidden layer 1",
                                                         "units": [[a_1(x_1), ..., a_1(x_m)], ...]}]}]}
i.e. each hidden unit's activations on the same m probe inputs. Units i and j are identical when
    max_x |a_i(x) - a_j(x)| <= atol + rtol * max_{u,x} |a_u(x)|
and the check fails when any layer of any snapshot holds identical units (`max_identical`, default 0,
is how many units may share another's function before it fails).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..course.exercise import Check
from ..verdict import Verdict, as_array, fmt

NEEDS_REFERENCE = False


def layer_units(name: str, activations: Any) -> dict[str, Any]:
    """Child side: a layer's activations (m inputs, h units) as one list per unit."""
    return {"name": name, "units": activations.detach().double().T.tolist()}


def identical_groups(units: np.ndarray, rtol: float, atol: float) -> list[list[int]]:
    """Groups (of size >= 2) of rows of `units` (h, m) that are equal within the tolerance."""
    tol = atol + rtol * float(np.max(np.abs(units), initial=0.0))
    group = [-1] * len(units)
    groups: list[list[int]] = []
    for i in range(len(units)):
        if group[i] >= 0:
            continue
        members = [i] + [j for j in range(i + 1, len(units))
                         if group[j] < 0 and np.max(np.abs(units[i] - units[j]), initial=0.0) <= tol]
        for j in members:
            group[j] = len(groups)
        groups.append(members)
    return [g for g in groups if len(g) > 1]


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    rtol = float(check.params.get("rtol", 1e-6))
    atol = float(check.params.get("atol", 1e-9))
    allowed = int(check.params.get("max_identical", 0))
    n_layers = 0
    for snap in measured["snapshots"]:
        for layer in snap["layers"]:
            n_layers += 1
            units = np.array([as_array(u) for u in layer["units"]])
            if units.ndim != 2 or len(units) < 2:
                continue
            if not np.isfinite(units).all():
                return Verdict.failed(f"{snap['name']}, {layer['name']}: the activations are not finite")
            groups = identical_groups(units, rtol, atol)
            copies = sum(len(g) - 1 for g in groups)
            if copies > allowed:
                h, m = units.shape
                biggest = max(groups, key=len)
                if len(biggest) == h:
                    what = f"all {h} units compute the same function"
                else:
                    what = (f"{copies + len(groups)} of {h} units are copies of another (units "
                            f"{', '.join(map(str, biggest[:6]))}{'...' if len(biggest) > 6 else ''} are identical)")
                spread = float(np.max(np.abs(units[biggest] - units[biggest[0]]), initial=0.0))
                return Verdict.failed(
                    f"{snap['name']}, {layer['name']}: {what} (largest difference {fmt(spread)} over {m} inputs). "
                    "The symmetry between hidden units is never broken: units that start with equal weights "
                    "receive equal gradients and stay equal, so the layer acts as a single unit. Initialise "
                    "the weights at random (e.g. N(0, 1/d_in)), not with zeros or a constant.",
                    snapshot=snap["name"], layer=layer["name"], identical_units=copies + len(groups))
    return Verdict.passed(f"hidden units are all distinct ({n_layers} layer snapshot(s))")
