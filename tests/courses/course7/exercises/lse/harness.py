"""lse probes (scaffolded by `dldiy new`: check the inputs, then add checks).

The arguments were guessed from their names (3x3 matrices, 3-vectors, labels in 0..2, small
integers): where a guess does not fit your code, `dldiy validate` says so; give them your shapes."""

import numpy as np

from dldiy.graders.api import built_inside
from dldiy.graders.layers import as_array


def _cases(name, out):
    """A function's output as agreement cases, each part of a returned tuple its own case, compared with
    the reference's values at the same seed (expected.json, written by `dldiy record`)."""
    parts = list(out) if isinstance(out, (tuple, list)) and any(hasattr(o, "shape") or isinstance(o, (list, tuple))
                                                                 for o in out) else [out]
    cases = []
    for i, part in enumerate(parts):
        what = name if len(parts) == 1 else f"{name}[{i}]"
        values = as_array(part, what, finite=False)
        cases.append({"name": what, "shape": list(values.shape), "values": values.ravel().tolist()})
    return {"cases": cases}


def logsumexp_agrees(sub, seed, p):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((4, 5)) * 1000.0  # large logits: a naive exp overflows
    small = rng.standard_normal((4, 5))
    out = {}
    for name, args in {"large, axis=-1": (z,), "large, axis=0": (z, 0), "small, axis=1": (small, 1)}.items():
        out[name] = as_array(sub.call("logsumexp", *args), f"logsumexp({name})", finite=False)
    return {"cases": [{"name": k, "shape": list(v.shape), "values": v.ravel().tolist()} for k, v in out.items()]}


def own_logsumexp():
    def logsumexp(z, axis=-1):
        z = np.asarray(z, dtype=float)
        top = z.max(axis=axis)
        return top + np.log(np.exp(z - np.expand_dims(top, axis)).sum(axis=axis))
    return logsumexp


def smoothed_cross_entropy_agrees(sub, seed, p):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((6, 4)) * 50.0
    y = rng.integers(0, 4, 6)
    cases = []
    with sub.replaced("logsumexp", built_inside(sub, own_logsumexp)):
        for s in (0.0, 0.1, 0.3):
            v = as_array(sub.call("smoothed_cross_entropy", logits, y, s), f"smoothing={s}", finite=False)
            cases.append({"name": f"smoothing={s}", "shape": list(v.shape), "values": v.ravel().tolist()})
        big = as_array(sub.call("smoothed_cross_entropy", logits * 40.0, y, 0.2), "logits of 1e3", finite=False)
        cases.append({"name": "logits of 1e3, smoothing=0.2", "shape": list(big.shape), "values": big.ravel().tolist()})
    return {"cases": cases}
