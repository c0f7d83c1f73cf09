"""Microseconds per round trip between the harness and the student's process, and fingerprints per call.

    python benchmarks/rpc_roundtrip.py [--calls 2000] [--repeat 3]

A real student process (graders/sandbox/student.py, forked as `dldiy check` forks it, no sandbox) loads a tiny
module; the harness side calls it through graders/sandbox/remote.py as harnesses do. Cases:

* `no tensor`: `nothing()` returns None (the floor: two frames, two context switches);
* `3 small tensors`: `add3(a, b, c)` with three float64 tensors of 10 entries, returns a fresh tensor;
* `50 live mirrors`: `nothing()` while 50 tensors passed earlier (10 entries each, 25 with a .grad)
  are still held by the harness, so both sides track them;
* `50 mirrors, one p.data write`: the harness writes one of them through `p.data` between calls (the
  version counter does not see it) and the student's function returns that mirror's sum: the sync must
  carry the change every time (checked, not only timed).

Per call: wall time, CPU time of both processes together (each reads its own process_time: the
figure a loaded machine distorts least), and the calls of `Endpoint._fingerprint` on both sides (the
student's process counts its own and reports them). Best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODULE = textwrap.dedent("""
    import torch
    from dldiy.graders.sandbox import endpoint as _endpoint

    def nothing():
        return None

    def add3(a, b, c):
        return a + b + c

    def first_sum(xs):
        return float(xs[0].sum())

    def counters():
        import time
        return [_endpoint.FINGERPRINTS[0], time.process_time()]
""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch

    from dldiy.graders.sandbox import endpoint
    from dldiy.graders.sandbox.child import StudentProcess, _pin_threads

    _pin_threads()
    counter = [0]
    endpoint.FINGERPRINTS = counter  # type: ignore[attr-defined]  # read by the student's copy too
    original = endpoint.Endpoint._fingerprint

    def counted(self, t):
        counter[0] += 1
        return original(self, t)

    endpoint.Endpoint._fingerprint = counted  # type: ignore[method-assign]
    folder = Path(tempfile.mkdtemp(prefix="dldiy-rpc-"))
    (folder / "tiny.py").write_text(MODULE)
    student = StudentProcess({"entry": str(folder / "tiny.py"), "sandbox": None, "forbid": {}}, 60)
    from dldiy.graders.sandbox.remote import RemoteSubmission

    class _Exercise:
        api: dict = {}

    sub = RemoteSubmission(student.endpoint, _Exercise())
    nothing, add3, first_sum, remote = (sub.get(n) for n in ("nothing", "add3", "first_sum", "counters"))
    gen = torch.Generator().manual_seed(0)
    small = [torch.randn(10, dtype=torch.float64, generator=gen) for _ in range(3)]
    live: list[torch.Tensor] = []

    def case(label: str, fn, check=None) -> None:
        best, cpu, prints = float("inf"), float("inf"), 0.0
        for _ in range(args.repeat):
            here, (there, there_cpu) = counter[0], remote()
            here_cpu, start = time.process_time(), time.perf_counter()
            for i in range(args.calls):
                out = fn(i)
                if check is not None:
                    check(i, out)
            elapsed, used = time.perf_counter() - start, time.process_time() - here_cpu
            then, then_cpu = remote()
            prints = (counter[0] - here + then - there) / args.calls
            best, cpu = min(best, elapsed), min(cpu, used + then_cpu - there_cpu)
        print(f"{label:<30} {best / args.calls * 1e6:>8.1f} us wall {cpu / args.calls * 1e6:>8.1f} us CPU "
              f"{prints:>7.1f} fingerprints  per call")

    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"{args.calls} calls, best of {args.repeat}")
    case("no tensor", lambda i: nothing())
    case("3 small tensors", lambda i: add3(*small))
    for k in range(50):
        t = torch.randn(10, dtype=torch.float64, generator=gen, requires_grad=k % 2 == 0)
        if k % 2 == 0:
            t.grad = torch.randn(10, dtype=torch.float64, generator=gen)
        live.append(t)
    with torch.no_grad():
        first_sum(live)  # mirrored on both sides from now on
        case("50 live mirrors", lambda i: nothing())

        def write(i: int) -> float:
            live[0].data[0] = float(i)  # p.data: no version bump on live[0]
            return first_sum(live[:1])

        def sums_match(i: int, out: float) -> None:
            if out != float(live[0].sum()):
                raise SystemExit(f"the student's process missed a p.data write at call {i}: {out} != "
                                 f"{float(live[0].sum())}")

        case("50 mirrors, one p.data write", write, sums_match)
    student.kill()


if __name__ == "__main__":
    main()
