"""attention probes."""

import numpy as np
import torch

from dldiy.graders.layers import as_array, run_cells, set_params

D = 4  # d_model of the probes
T = 5  # sequence length


def _cases(items):
    cases = []
    for what, part in items:
        values = as_array(part, what, finite=False)
        cases.append({"name": what, "shape": list(values.shape), "values": values.ravel().tolist()})
    return {"cases": cases}


def _weights(seed):
    g = torch.Generator().manual_seed(seed)
    return {f"{n}.{w}": torch.randn(*((D, D) if w == "weight" else (D,)), generator=g, dtype=torch.float64)
            for n in "qkv" for w in ("weight", "bias")}


def _attention(sub, seed):
    layer = sub.get("SelfAttention")(D)
    layer = layer.double()
    layer.load_state_dict(_weights(seed))
    return layer


def _masks(seed):
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool)).expand(2, T, T)
    pad = torch.ones(2, T, T, dtype=torch.bool)
    pad[1, :, 3:] = False  # the second sequence has two padding tokens at the end
    return {"none": None, "causal": causal, "padding": pad}


def attention_forward(sub, seed, p):
    g = torch.Generator().manual_seed(seed + 1000)
    x = torch.randn(2, T, D, generator=g, dtype=torch.float64)
    layer = _attention(sub, seed)
    items = []
    for name, mask in _masks(seed).items():
        out = layer(x) if mask is None else layer(x, mask=mask)
        items.append((f"forward, mask {name}", out.detach().numpy()))
    return _cases(items)


def attention_backward(sub, seed, p):
    g = torch.Generator().manual_seed(seed + 2000)
    x = torch.randn(2, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(2, T, D, generator=g, dtype=torch.float64)
    layer = _attention(sub, seed)
    # a parameter's .grad does not come back through the handle, and each read of layer.q.weight is a
    # new mirror: read them once, before the forward, and ask autograd
    wq, wk = layer.q.weight, layer.k.weight
    out = layer(x, mask=_masks(seed)["causal"])
    gx, gq, gk = torch.autograd.grad((out * up).sum(), [x, wq, wk])
    return _cases([("d/dx", gx.numpy()), ("d/dq.weight", gq.numpy()), ("d/dk.weight", gk.numpy())])


def optimizer_steps(sub, seed, p):
    g = torch.Generator().manual_seed(seed + 3000)
    w = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    opt = sub.get("NesterovSGD")([w, b], lr=0.1, momentum=0.9)
    items = []
    for step in range(4):
        opt.zero_grad()
        loss = ((A @ w + b) ** 2).sum()
        loss.backward()
        opt.step()
        items.append((f"w after step {step + 1}", w.detach().numpy().copy()))
        items.append((f"b after step {step + 1}", b.detach().numpy().copy()))
    # two parameter groups, the second with its own lr and momentum
    w2 = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b2 = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    opt = sub.get("NesterovSGD")([{"params": [w2]}, {"params": [b2], "lr": 0.02, "momentum": 0.5}], lr=0.1)
    for step in range(3):
        opt.zero_grad()
        ((A @ w2 + b2) ** 2).sum().backward()
        opt.step()
    items.append(("two groups: w", w2.detach().numpy().copy()))
    items.append(("two groups: b (lr 0.02, momentum 0.5)", b2.detach().numpy().copy()))
    return _cases(items)


def _held_out_r2(attn_state, head_state, seed):
    """R^2 of the trained model on sequences drawn here, computed from the trained weights with
    torch's own attention (never the student's forward)."""
    g = torch.Generator().manual_seed(seed + 4000)
    d = attn_state["q.weight"].shape[0]
    X = torch.randn(512, 6, d, generator=g)
    y = X[:, :, 0].mean(dim=1, keepdim=True)
    lin = torch.nn.functional.linear
    q, k, v = (lin(X, attn_state[f"{n}.weight"], attn_state[f"{n}.bias"]) for n in "qkv")
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    h = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=causal)
    pred = lin(h[:, -1], head_state["weight"], head_state["bias"])
    r2 = 1 - float(((pred - y) ** 2).mean() / y.var())
    return r2 if np.isfinite(r2) else 0.0


def training(sub, seed, p):
    got = run_cells(sub, ["data", "train"], inputs={"n_epochs": 150}, read=["attn", "head", "losses"], seed=seed)
    attn = {k: torch.as_tensor(v).detach().float() for k, v in got["attn"].state_dict().items()}
    head = {k: torch.as_tensor(v).detach().float() for k, v in got["head"].state_dict().items()}
    return {"r2": _held_out_r2(attn, head, seed),
            "losses": as_array(got["losses"], "losses", finite=False).tolist(), "steps": 150}
