"""A trained model judged by the harness's own formulas: `predict`.

A training check runs the notebook's own training cell (graders/layers.py's `run_cells`) and reads the
`model` it leaves behind. That object is the student's: its `forward` can answer anything (a red team's
`model = [Oracle(X_train, y_train)]`, a lookup table of the data in the sandbox, scored 1.0 without any
training). `predict` reads `model` as a list of the layer classes the exercise grades, by class name,
takes each layer's trained parameters (validated) and computes the predictions here, with the formulas
the harness gives: what is judged is the trained weights of the graded classes, on the harness's data.
Pair it with held-out data the harness draws (never the data shipped in `data/`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .api import ApiError
from .layers import as_array

Formula = tuple[Sequence[str], Callable[..., Any]]  # (parameter attributes, f(x, *parameters))


def predict(model: Any, layers: Mapping[str, Formula], x: np.ndarray, what: str = "model") -> np.ndarray:
    """The output of `model` (a list of the student's layer objects) on `x`, computed by `layers`:
    {"Linear": (("W", "b"), lambda x, W, b: x @ W + b), "ReLU": ((), lambda x: np.maximum(x, 0))}.
    A layer of another class, a parameter that is not an array of numbers, or shapes that do not chain
    are an ApiError naming the layer; a diverged model's NaN parameters are a measurement."""
    kinds = list(layers)
    graded = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    if not isinstance(model, (list, tuple)):
        raise ApiError(f"{what} is {_kind(model)}; expected the list of layers the training cell builds "
                       f"(made of {graded})")
    out = np.array(x, dtype=np.float64)
    for i, layer in enumerate(model):
        kind = _kind(layer)
        if kind not in layers:
            raise ApiError(f"{what}[{i}] is {kind}; the training check judges a model made of the "
                           f"{graded} layers you wrote (their trained parameters), so {what} must "
                           "hold only those")
        names, formula = layers[kind]
        params = [as_array(getattr(layer, name, None), f"{what}[{i}].{name}", finite=False) for name in names]
        try:
            out = np.asarray(formula(out, *params), dtype=np.float64)
        except ValueError:
            shapes = ", ".join(f"{name} {p.shape}" for name, p in zip(names, params))
            raise ApiError(f"{what}[{i}] ({kind}, {shapes}) cannot take the output of the layers before it, "
                           f"of shape {out.shape}") from None
    return out


def _kind(value: Any) -> str:
    """The class name of a value from the student's process (a handle) or of a plain one."""
    return getattr(value, "type_name", None) or type(value).__name__
