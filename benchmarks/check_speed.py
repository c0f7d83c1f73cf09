"""How long `dldiy check EXERCISE reference/EXERCISE` takes, against `python -c "import torch"`.

Both run alternately in the same run, so a busy machine slows both alike; the best wall time of N
rounds is compared. (CPU time is not: the sandboxed child runs in its own PID namespace, whose
processes' CPU time getrusage does not see.) The budget (issue 17): the torch import plus 1.0 s
for every exercise, on an idle machine, best of 5. A loaded machine slows the checks' many
round trips between processes far more than one import: say the load beside the figures.

    python benchmarks/check_speed.py [EXERCISE ...] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = 1.0


def measure(cmd: list[str]) -> float:
    """Wall seconds of one run of `cmd`."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("exercises", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from dldiy.graders.course.exercise import exercise_ids

    torch_cmd = [sys.executable, "-c", "import torch"]
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'exercise':<12} {'import torch':>13} {'dldiy check':>12} {'overhead':>9} {'budget':>7}  verdict")
    all_ok = True
    for ex in args.exercises or exercise_ids():
        check_cmd = [sys.executable, "-m", "dldiy.cli", "check", ex, f"reference/{ex}"]
        torch_runs, check_runs = [], []
        for _ in range(args.repeat):
            torch_runs.append(measure(torch_cmd))
            check_runs.append(measure(check_cmd))
        tw, cw = min(torch_runs), min(check_runs)
        budget = BUDGET_S
        ok = cw - tw <= budget
        all_ok &= ok
        print(f"{ex:<12} {tw:>12.2f}s {cw:>11.2f}s {cw - tw:>8.2f}s {budget:>6.1f}s  {'ok' if ok else 'OVER BUDGET'}")
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
