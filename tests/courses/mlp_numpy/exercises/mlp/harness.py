"""mlp probes: the notebook's layer classes, called on data built here, measured with graders/layers.py."""

import numpy as np

from dldiy.graders.layers import as_array, gradcheck_layer, run_cells, set_params
from dldiy.graders.trained import predict

GRADS = {"Linear": {"W": "dW", "b": "db"}}
LOSS = {"SoftmaxCrossEntropy"}
CENTRES = 2.5 * np.array([[0, 1], [-0.866, -0.5], [0.866, -0.5]])  # data/blobs.csv's blobs (spread 0.8)
MODEL = {"Linear": (("W", "b"), lambda x, W, b: x @ W + b), "ReLU": ((), lambda x: np.maximum(x, 0))}


def _layer(sub, name, rng):
    """The student's layer, with parameters (if any) drawn here; and an input batch and labels."""
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    if name != "Linear":
        return sub.get(name)(), {}, x, y
    layer, params = sub.get("Linear")(3, 4), {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    set_params(layer, params)
    return layer, params, x, y


def _expected(name, params, x, y):
    if name in MODEL:  # the layer's formula on the parameters drawn here
        return MODEL[name][1](x, *(params[k] for k in MODEL[name][0]))
    logp = x - x.max(1, keepdims=True) - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))
    return np.array(-logp[np.arange(len(y)), y].mean())


def _case(name, values, target):
    return {"name": name, "shape": list(target.shape), "values": values.ravel().tolist(),
            "target": target.ravel().tolist()}


def forward(sub, seed, p):
    name = p["layer"]
    layer, params, x, y = _layer(sub, name, np.random.default_rng(seed))
    target = _expected(name, params, x, y)
    out = layer.forward(x.copy(), y) if name in LOSS else layer.forward(x.copy())
    return {"cases": [_case(f"{name}.forward", as_array(out, f"{name}.forward", shape=target.shape), target)]}


def backward(sub, seed, p):
    name = p["layer"]
    layer, _, x, y = _layer(sub, name, np.random.default_rng(seed))
    return gradcheck_layer(layer, x, name=name, args=(y,) if name in LOSS else (), grads=GRADS.get(name),
                           loss=name in LOSS, seed=seed)


def step(sub, seed, p):
    rng = np.random.default_rng(seed)
    layer, params, _, _ = _layer(sub, "Linear", rng)
    grads = {"dW": rng.standard_normal((3, 4)), "db": rng.standard_normal(4)}
    set_params(layer, grads)
    layer.step(p["lr"])
    return {"cases": [_case(f"Linear.{k} after step({p['lr']})", as_array(getattr(layer, k), f"Linear.{k}",
                                                                        shape=v.shape), v - p["lr"] * grads["d" + k])
                      for k, v in params.items()]}


def training(sub, seed, p):  # the trained W and b, by the harness's formulas, on held-out points drawn here
    got = run_cells(sub, ["data", "train"], inputs={"n_epochs": p["epochs"]}, read=["model", "losses"], seed=seed)
    y, noise = np.repeat(np.arange(3), 100), np.random.default_rng([seed, 7]).standard_normal((300, 2))
    accuracy = float((predict(got["model"], MODEL, CENTRES[y] + 0.8 * noise).argmax(axis=1) == y).mean())
    losses = as_array(got["losses"], "losses", finite=False).ravel()
    return {"accuracy": accuracy, "losses": losses[:: max(1, len(losses) // 10)].tolist(), "steps": p["epochs"]}
