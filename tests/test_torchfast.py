"""graders/sandbox/torchfast.py changes how torch runs in the processes that run student code, never what
it computes: each shortcut is checked against torch's own behaviour, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_an_unprofiled_record_function_is_skipped_and_a_profiled_one_still_recorded():
    lines = _run("""
        import torch
        from dldiy.graders.sandbox.torchfast import skip_dynamo
        from torch.autograd import profiler
        skip_dynamo()
        skip_dynamo()  # twice: wrapped once
        p = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.SGD([p], lr=0.5, momentum=0.9)
        for _ in range(2):
            p.grad = torch.full((3,), 2.0)
            opt.step()
        # torch's step all the same: 1 - 0.5 * 2 = 0, then 0 - 0.5 * (0.9 * 2 + 2) = -1.9
        print(torch.allclose(p.detach(), torch.full((3,), -1.9)))
        with profiler.record_function("outside any profiler") as region:
            pass
        print(hasattr(region, "record") and region.record is not None)  # no op was dispatched for it
        with torch.profiler.profile() as prof:
            opt.step()
            with profiler.record_function("mine"):
                torch.ones(2) * 2
        names = {e.name for e in prof.events()}
        print("Optimizer.step#SGD.step" in names, "mine" in names)
    """)
    assert lines[-3:] == ["True", "False", "True True"], lines


# Code the placement check runs on the meta device: device mistakes students make, value reads (inconclusive
# on meta), and correct code of the exercises' kinds (losses, matrix products, convolutions, a backward).
PLACEMENT_FAMILY = '''
import torch, torch.nn.functional as F
def T(d, *s, dt=torch.float32): return torch.ones(*s, dtype=dt, device=d)
CASES = {
 "cat with a CPU column": lambda d: {"o": torch.cat([T(d, 4, 2), torch.ones(4, 1)], 1)},
 "cat, the column on the device": lambda d: {"o": torch.cat([T(d, 4, 2), -torch.ones(4, 1, device=d)], 1)},
 "matrix-vector with a CPU vector": lambda d: {"o": T(d, 4, 2) @ torch.ones(2)},
 "times a 0-dim CPU tensor": lambda d: {"o": T(d, 4) * torch.tensor(2.0)},
 "plus a CPU vector": lambda d: {"o": T(d, 4) + torch.ones(4)},
 "plus a 1-element CPU tensor": lambda d: {"o": T(d, 4) + torch.ones(1)},
 "in place, a CPU operand": lambda d: {"o": T(d, 4).add_(torch.ones(4))},
 "a boolean mask": lambda d: {"o": T(d, 4)[T(d, 4) > 0]},
 "where": lambda d: {"o": torch.where(T(d, 4) > 0, T(d, 4), 0.0)},
 "item": lambda d: {"o": T(d, 4).sum().item()},
 "an all() guard": lambda d: {"o": T(d, 4) if (T(d, 4) > 0).all() else -T(d, 4)},
 "tolist": lambda d: {"o": torch.tensor(T(d, 4).tolist())},
 "numpy": lambda d: {"o": T(d, 4).numpy()},
 "cpu()": lambda d: {"o": T(d, 4).cpu()},
 "to cpu after a product": lambda d: {"o": torch.mm(T(d, 2, 2), T(d, 2, 2)).to("cpu")},
 "logsigmoid, clamp, softplus, logaddexp": lambda d: {"o": F.logsigmoid(T(d, 4)).clamp(min=0) + F.softplus(T(d, 4))
                                                     + torch.logaddexp(torch.zeros_like(T(d, 4)), -T(d, 4))},
 "cross-entropy": lambda d: {"o": F.cross_entropy(T(d, 4, 3), torch.zeros(4, dtype=torch.long, device=d))},
 "cross-entropy, CPU targets": lambda d: {"o": F.cross_entropy(T(d, 4, 3), torch.zeros(4, dtype=torch.long))},
 "indexing with CPU indices": lambda d: {"o": T(d, 4, 3)[torch.arange(4), torch.zeros(4, dtype=torch.long)]},
 "gather, scatter, one_hot": lambda d: {"o": T(d, 4, 3).gather(1, torch.zeros(4, 1, dtype=torch.long, device=d))
                                         + torch.zeros(4, 3, device=d).scatter(1, torch.zeros(4, 1, dtype=torch.long, device=d), 1.0)[:, :1]
                                         + F.one_hot(torch.zeros(4, dtype=torch.long, device=d), 3)[:, :1]},
 "plus a CPU identity": lambda d: {"o": T(d, 3, 3) + torch.eye(3)},
 "solve": lambda d: {"o": torch.linalg.solve(T(d, 3, 3) + torch.eye(3, device=d), T(d, 3))},
 "solve with a CPU right-hand side": lambda d: {"o": torch.linalg.solve(T(d, 3, 3), torch.ones(3))},
 "times a CPU arange": lambda d: {"o": T(d, 4) * torch.arange(4)},
 "float64 and float32": lambda d: {"o": T(d, 4, dt=torch.float64) + T(d, 4) / 4 - 2 * T(d, 4)},
 "convolution, pooling, unfold, pad": lambda d: {
     "o": F.max_pool2d(F.conv2d(F.pad(T(d, 1, 1, 5, 5), (1, 1, 1, 1)), T(d, 2, 1, 3, 3)), 2).sum() + F.unfold(T(d, 1, 1, 5, 5), 3).sum()},
 "convolution with CPU weights": lambda d: {"o": F.conv2d(T(d, 1, 1, 5, 5), torch.ones(2, 1, 3, 3))},
 "nonzero": lambda d: {"o": torch.nonzero(T(d, 4))},
 "accuracy": lambda d: {"o": (T(d, 4, 3).argmax(1) == torch.zeros(4, device=d)).float().mean()},
 "sort, topk, cumsum, flip, std": lambda d: {"o": torch.sort(T(d, 5)).values.cumsum(0).flip(0) + T(d, 6).topk(5).values + T(d, 5).std()},
 "einsum, bmm, addmm, outer": lambda d: {
     "o": torch.einsum("ij,j->i", T(d, 4, 3), T(d, 3)).sum() + torch.bmm(T(d, 2, 3, 4), T(d, 2, 4, 5)).sum()
     + torch.addmm(T(d, 3), T(d, 2, 4), T(d, 4, 3)).sum() + torch.outer(T(d, 3), T(d, 3)).sum()},
 "outer with a CPU vector": lambda d: {"o": torch.outer(T(d, 3), torch.ones(3))},
 "a CPU buffer copied into": lambda d: {"o": torch.zeros(4).copy_(T(d, 4))},
 "a slice set from CPU": lambda d: (lambda z: (z.__setitem__(slice(0, 2), torch.ones(2)), {"o": z})[1])(T(d, 4)),
 "noise without device=": lambda d: {"o": T(d, 4) + torch.randn(4)},
 "noise like the input": lambda d: {"o": T(d, 4) + torch.randn_like(T(d, 4))},
 "softmax, logsumexp, norm, mse, bce": lambda d: {"o": (F.softmax(T(d, 4, 3), 1) + torch.logsumexp(T(d, 4, 3), 1, keepdim=True)).sum()
                                                  + torch.linalg.norm(T(d, 3)) + F.mse_loss(T(d, 4), T(d, 4))
                                                  + F.binary_cross_entropy_with_logits(T(d, 4), T(d, 4))},
 "a backward pass": lambda d: (lambda w: ((torch.tanh(T(d, 4, 3) @ w) ** 2).mean().backward(), {"o": w.grad})[1])(
     torch.ones(3, device=d, requires_grad=True)),
 "a backward pass, a CPU constant": lambda d: (lambda w: ((T(d, 4, 3) @ w + torch.ones(4)).sum().backward(), {"o": w.grad})[1])(
     torch.ones(3, device=d, requires_grad=True)),
}
'''


def _placement_verdicts(family: Path, native: bool) -> list[str]:
    """[case, verdict, where an error was raised (the case's line)] per case, in a fresh interpreter."""
    return _run(f"""
        import importlib.util, json, sys
        from dldiy.graders.kinds.placement import measure_placement
        from dldiy.graders.sandbox.torchfast import native_meta_kernels
        {"assert native_meta_kernels() > 300" if native else ""}
        spec = importlib.util.spec_from_file_location("family", {str(family)!r})
        family = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(family)
        for name, run in family.CASES.items():
            m = measure_placement(run, values=False)  # (the meta device alone: what this test compares)
            kind = ("pass" if all(v == "meta" for v in m["outputs"].values()) else "stray") if "outputs" in m \\
                else "error" if "error" in m else "inconclusive"
            print(json.dumps([name, kind, m["error"].rsplit(" (at ", 1)[-1] if "error" in m else None]))
    """)


def test_native_meta_kernels_leave_every_placement_verdict_as_torchs_python_ones_give_it(tmp_path):
    """The placement check on torch's C++ meta kernels (native_meta_kernels) judges a family of device
    mistakes, value reads and correct code as it does on torch's Python meta functions: pass, stray
    output, device error (named at the same line) or inconclusive, case by case, but for an in-place op
    with a CPU operand, which C++ refuses as a GPU does. (The words of a device error may differ: C++ says
    "Expected all tensors to be on the same device".)"""
    import json

    family = tmp_path / "family.py"
    family.write_text(PLACEMENT_FAMILY)
    python, native = ([json.loads(line) for line in _placement_verdicts(family, flag)] for flag in (False, True))
    assert len(python) == PLACEMENT_FAMILY.count("lambda d:")
    # one difference, where C++ is the faithful one: an in-place op with a CPU operand raises on a GPU
    # (TensorIterator: "Expected all tensors to be on the same device"); torch's Python meta function for
    # add_ checks shapes only
    stricter = "in place, a CPU operand"
    assert [row for row in python if row[0] == stricter] == [[stricter, "pass", None]]
    assert [row for row in native if row[0] == stricter] == [[stricter, "error", "family.py:11)"]]
    assert [row for row in native if row[0] != stricter] == [row for row in python if row[0] != stricter]
    kinds = {kind for _, kind, _ in python}
    assert kinds == {"pass", "stray", "error", "inconclusive"}, kinds  # the family reaches every verdict
    assert python[0] == ["cat with a CPU column", "error", "family.py:5)"], python[0]


def test_native_meta_kernels_put_elementwise_ops_back_on_cpp_and_keep_python_where_cpp_checks_no_device():
    lines = _run("""
        import torch
        from dldiy.graders.sandbox.torchfast import native_meta_kernels
        def python_meta(name):
            line = [l for l in torch._C._dispatch_dump(name).splitlines() if l.startswith("Meta:")][0]
            return ".py:" in line  # registered from Python; torch's own C++ kernels are registered in .cpp files
        names = ("aten::logaddexp", "aten::mul.Tensor", "aten::div.Tensor", "aten::sum.dim_IntList", "aten::cat", "aten::mm")
        print([python_meta(n) for n in names])
        changed = native_meta_kernels()
        print(changed > 300, native_meta_kernels())  # once per process
        print([python_meta(n) for n in names])
        x = torch.ones(4, device="meta")
        print(torch.logaddexp(x, -x).device, torch.ops.aten.mul.Tensor.py_kernels.keys() == {torch._C.DispatchKey.Meta})
    """)
    assert lines == ["[True, True, True, True, True, True]", "True 0", "[False, False, False, False, True, True]",
                     "meta True"], lines
