"""How long `dldiy check EXERCISE reference/EXERCISE` takes, against `python -c "import torch"`.

Both are timed in the same run, alternating, best of N, so the ratio holds on a busy machine too.
The issue's budget: a check costs at most the torch import plus 1.5 s (3 s for exercise-3).

    python benchmarks/check_speed.py [EXERCISE ...] [--repeat 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = {"exercise-3": 3.0}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("exercises", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from dldiy.graders.exercise import exercise_ids

    exercises = args.exercises or exercise_ids()
    torch_cmd = [sys.executable, "-c", "import torch"]
    print(f"{'exercise':<12} {'import torch':>13} {'dldiy check':>12} {'overhead':>9} {'budget':>7}  verdict")
    worst_ok = True
    for ex in exercises:
        check_cmd = [sys.executable, "-m", "dldiy.cli", "check", ex, f"reference/{ex}"]
        torch_times, check_times = [], []
        for _ in range(args.repeat):
            torch_times.append(timed(torch_cmd))
            check_times.append(timed(check_cmd))
        t, c = min(torch_times), min(check_times)
        budget = BUDGET_S.get(ex, 1.5)
        ok = c - t <= budget
        worst_ok &= ok
        print(f"{ex:<12} {t:>12.2f}s {c:>11.2f}s {c - t:>8.2f}s {budget:>6.1f}s  {'ok' if ok else 'OVER BUDGET'}")
    sys.exit(0 if worst_ok else 1)


if __name__ == "__main__":
    main()
