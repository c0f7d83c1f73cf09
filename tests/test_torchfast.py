"""graders/sandbox/torchfast.py changes how torch runs in the processes that run student code, never what
it computes: each shortcut is checked against torch's own behaviour, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
