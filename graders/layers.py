"""Harness helpers for a course's own layer classes: objects with `forward` / `backward` / `step`.

Many courses have students write layers as stateful objects (numpy or torch, no autograd):

    class Linear:
        def forward(self, x): ...          # caches what backward needs
        def backward(self, grad_out): ...  # returns grad_in, stores self.dW, self.db
        def step(self, lr): ...            # W -= lr * dW

These helpers only call the student's methods, read and set the attributes the spec names, and pass
numpy arrays or torch tensors in and out (a student's object may be a proxy in another process): every
value that comes back is validated here (`as_array`) before it is measured.

- `gradcheck_layer`: the layer's backward (grad_in and its parameter gradients) against central
  finite differences of its forward, contracted with one fixed random upstream gradient; the blocks
  the "gradcheck" check kind judges. With the check's `against_reference = true` (what `dldiy new`
  writes), each block is also held to the reference's hand gradient at the same inputs: set the
  layer's parameters from the seed (`set_params`) so that the student's and the reference's agree.
- `run_cells`: run the notebook's own cells that the spec names (its training loop), with seeded
  random generators and the harness's data bound, and read the variables they leave behind.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .api import ApiError
from .kinds.gradcheck import term_scale
from .sandbox.submission import CELL_RUNNER

EPS = 1e-6


def as_array(value: Any, what: str, shape: Sequence[int] | None = None, finite: bool = True) -> np.ndarray:
    """`value` (a numpy array, a torch tensor or a number) as float64 numpy, or an ApiError saying why not."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy()
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ApiError(f"{what} returned {type(value).__name__}; expected an array of numbers") from None
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise ApiError(f"{what} has shape {tuple(array.shape)}; expected {tuple(shape)}")
    if finite and not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ApiError(f"{what} is {array[bad] if bad else array} at index {bad} for finite inputs")
    return array


def converter(framework: str) -> Callable[[np.ndarray], Any]:
    """How the harness's float64 arrays are handed to the layer: as numpy arrays, or torch tensors."""
    if framework == "numpy":
        return lambda a: np.array(a, dtype=np.float64)
    if framework == "torch":
        import torch

        return lambda a: torch.tensor(a, dtype=torch.float64)
    raise ValueError(f"framework {framework!r}: expected 'numpy' or 'torch'")


def gradcheck_layer(layer: Any, x: np.ndarray, *, name: str, args: tuple = (), grads: dict[str, str] | None = None,
                    loss: bool = False, framework: str = "numpy", seed: int = 0, eps: float = EPS) -> dict[str, Any]:
    """Blocks for the "gradcheck" kind: d<v, forward(x)>/d(x and each parameter), through the layer's
    backward (analytic) and by central differences of its forward (numeric).

    `grads` maps a parameter attribute to its gradient attribute ({"W": "dW", "b": "db"}, as the
    student's or the spec's names go). A loss layer (`loss=True`, forward(x, *args) a scalar) is
    differentiated as is, its backward called without an upstream gradient."""
    conv, grads = converter(framework), dict(grads or {})
    x = np.array(x, dtype=np.float64)
    out = as_array(layer.forward(conv(x), *args), f"{name}.forward(x)")
    if loss and out.size != 1:
        raise ApiError(f"{name}.forward(x, ...) returned shape {out.shape}; expected a scalar loss")
    v = np.ones(()) if loss else np.random.default_rng(seed).standard_normal(out.shape)
    grad_in = layer.backward() if loss else layer.backward(conv(v))
    analytic = {"x": as_array(grad_in, f"{name}.backward()", shape=x.shape)}
    params = {p: as_array(getattr(layer, p), f"{name}.{p}") for p in grads}
    for p, g in grads.items():
        analytic[p] = as_array(getattr(layer, g, None), f"{name}.{g} (the gradient of {p}) after backward",
                               shape=params[p].shape)

    def objective(x_now: np.ndarray) -> float:
        return float(np.sum(v * as_array(layer.forward(conv(x_now), *args), f"{name}.forward(x)")))

    numeric = {"x": _central(objective, x, eps)}
    for p, base in params.items():
        def perturbed(value: np.ndarray, p: str = p) -> float:
            setattr(layer, p, conv(value))
            return objective(x)
        try:
            numeric[p] = _central(perturbed, base, eps)
        finally:
            setattr(layer, p, conv(base))
    # the same forward at the same point, after backward() and the calls at nearby points: a forward that
    # keeps state between calls (answers otherwise once backward ran) makes finite differences measure
    # something else than the layer (integrity round 14)
    again = as_array(layer.forward(conv(x), *args), f"{name}.forward(x)", finite=False)
    if again.shape != out.shape or not np.allclose(again, out, rtol=1e-12, atol=1e-300, equal_nan=True):
        raise ApiError(f"{name}.forward(x) gave other values the second time, at the same x and parameters (after "
                       f"backward() and calls at nearby points): a layer's forward must depend on its input and "
                       "parameters only, not on the calls before it")
    labels = {"x": f"{name} input"} | {p: f"{name}.{p}" for p in grads}
    # the size of each gradient's terms: the floor under which a reference's gradient is rounding (against_reference)
    at = {"x": x} | params
    return {"blocks": [{"name": labels[k], "shape": list(numeric[k].shape), "analytic": analytic[k].ravel().tolist(),
                        "numeric": numeric[k].ravel().tolist(), "scale": term_scale(v, out, at[k])} for k in numeric]}


def _central(f: Callable[[np.ndarray], float], at: np.ndarray, eps: float) -> np.ndarray:
    at = np.array(at, dtype=np.float64)
    grad = np.zeros_like(at)
    for j in np.ndindex(at.shape):
        saved = at[j]
        at[j] = saved + eps
        plus = f(at.copy())
        at[j] = saved - eps
        minus = f(at.copy())
        at[j] = saved
        grad[j] = (plus - minus) / (2 * eps)
    return grad


def set_params(layer: Any, values: dict[str, np.ndarray], framework: str = "numpy") -> None:
    """Give the layer the harness's parameter values (so what it computes is determined by trusted data)."""
    conv = converter(framework)
    for attribute, value in values.items():
        setattr(layer, attribute, conv(np.array(value, dtype=np.float64)))


def run_cells(sub: Any, cells: Sequence[str], *, inputs: dict[str, Any] | None = None, read: Sequence[str] = (),
              seed: int = 0) -> dict[str, Any]:
    """Run the notebook's cells that the spec's `cells` table names, in order, in its namespace with
    `inputs` bound (the harness's seeded data, a smaller epoch count) and numpy/torch/random seeded with
    `seed`; return the variables named in `read` as the cells left them (validate them before use).
    The notebook's namespace is restored afterwards."""
    return sub.call(CELL_RUNNER, list(cells), dict(inputs or {}), list(read), int(seed))


def forward_all(layers: Sequence[Any], x: np.ndarray, framework: str = "numpy", what: str = "the model") -> np.ndarray:
    """Chain the student's layers' forward on the harness's data (e.g. a trained model's predictions)."""
    out: Any = converter(framework)(x)
    for layer in layers:
        out = layer.forward(out)
    return as_array(out, f"{what}'s output", finite=False)  # a diverged model's nan is a measurement
