"""The notebook's `check("exercise-1")` in a real Jupyter kernel that already imported torch (budget 2 s).

    python benchmarks/notebook_check.py [--repeat 5] [--exercise exercise-1]

Starts an ipykernel through jupyter_client, runs exercise-1's reference as the student's cell (it
imports torch), then times `check(...)` inside the kernel (perf_counter around the call, so the
kernel's messaging is not counted) `--repeat` times, the best and the median printed. The load of the
machine is printed too: on a shared machine the figure is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = 2.0
ENTRY = {"exercise-1": "logreg.py"}


def run_cell(client, code: str, timeout: float = 300.0) -> str:
    """Execute `code`; its stdout (the timing line), or raise with the kernel's error."""
    msg_id = client.execute(code)
    out = []
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            out.append(content["text"])
        elif kind == "error":
            raise RuntimeError("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--exercise", default="exercise-1")
    args = parser.parse_args()
    from jupyter_client.manager import start_new_kernel

    source = (REPO / "reference" / args.exercise / ENTRY.get(args.exercise, "logreg.py")).read_text()
    km, client = start_new_kernel(kernel_name="python3", cwd=str(REPO))
    try:
        run_cell(client, source)  # the student's cell: imports torch, defines the functions
        run_cell(client, "import sys, time\nassert 'torch' in sys.modules\nfrom dldiy import check")
        seconds = []
        for _ in range(args.repeat):
            line = run_cell(client, f"_t = time.perf_counter(); _r = check({args.exercise!r}, plots=False); "
                                    f"print('SECONDS', time.perf_counter() - _t)")
            seconds.append(float(line.rsplit("SECONDS", 1)[1]))
        best, median = min(seconds), statistics.median(seconds)
        print(f"notebook check({args.exercise!r}) in a kernel with torch imported: best {best:.2f} s, "
              f"median {median:.2f} s of {len(seconds)} (budget {BUDGET_S:.1f} s: "
              f"{'ok' if best <= BUDGET_S else 'OVER BUDGET'}; the machine's load: {os.getloadavg()[0]:.1f})")
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    sys.exit(0 if best <= BUDGET_S else 1)


if __name__ == "__main__":
    main()
