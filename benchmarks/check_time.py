"""How long `dldiy check EXERCISE reference/EXERCISE` takes next to a bare `import torch`.

    .venv/bin/python benchmarks/check_time.py exercise-3 [ROUNDS]

The budget of an exercise is the torch import plus a few seconds (exercise-3: 3 s). The two commands
run alternately, so a busy machine slows both alike; wall time and CPU time (the process and its
children) are printed as medians.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def measure(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    exercise = sys.argv[1] if len(sys.argv) > 1 else "exercise-3"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    commands = {"import torch": [sys.executable, "-c", "import torch"],
                f"dldiy check {exercise}": [str(BIN / "dldiy"), "check", exercise, f"reference/{exercise}"]}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(measure(cmd))
    for name, values in times.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        print(f"{name:28s} wall median {statistics.median(walls):.2f} s (min {min(walls):.2f}), "
              f"cpu median {statistics.median(cpus):.2f} s")
    torch_wall, check_wall = (statistics.median(w for w, _ in v) for v in times.values())
    print(f"check - import torch: {check_wall - torch_wall:+.2f} s wall (median of {rounds})")


if __name__ == "__main__":
    main()
