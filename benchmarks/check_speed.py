"""How long `dldiy check EXERCISE reference/EXERCISE` takes, against `python -c "import torch"`.

Both run alternately in the same run, so a busy machine slows both alike. Printed: the best wall
time of N rounds and the median CPU time (the process and its children), whose difference is the
check's own cost. The issues' budget: the torch import plus 1.5 s (exercise-3: plus 3 s).

    python benchmarks/check_speed.py [EXERCISE ...] [--repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = {"exercise-3": 3.0}


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and everything it started)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=False, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("exercises", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from dldiy.graders.exercise import exercise_ids

    torch_cmd = [sys.executable, "-c", "import torch"]
    print(f"{'exercise':<12} {'import torch':>18} {'dldiy check':>18} {'overhead':>16} {'budget':>7}  verdict")
    print(f"{'':<12} {'wall / cpu':>18} {'wall / cpu':>18} {'wall / cpu':>16}")
    all_ok = True
    for ex in args.exercises or exercise_ids():
        check_cmd = [sys.executable, "-m", "dldiy.cli", "check", ex, f"reference/{ex}"]
        torch_runs, check_runs = [], []
        for _ in range(args.repeat):
            torch_runs.append(measure(torch_cmd))
            check_runs.append(measure(check_cmd))
        tw, cw = min(w for w, _ in torch_runs), min(w for w, _ in check_runs)
        tc, cc = statistics.median(c for _, c in torch_runs), statistics.median(c for _, c in check_runs)
        budget = BUDGET_S.get(ex, 1.5)
        ok = cw - tw <= budget
        all_ok &= ok
        print(f"{ex:<12} {tw:>8.2f}s /{tc:>6.2f}s {cw:>8.2f}s /{cc:>6.2f}s {cw - tw:>6.2f}s /{cc - tc:>6.2f}s "
              f"{budget:>6.1f}s  {'ok' if ok else 'OVER BUDGET'}")
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
