"""Time per submission: a fork server's child vs a fresh interpreter, measured in one run.

    python benchmarks/forkserver.py [-n 8] [--exercise exercise-1]

Grades copies of the exercise's reference with every check, one at a time (latency) and then with
one worker per core (throughput), both ways, with the full sandbox on; then once more through the
fork server with namespaces off, to show what the confinement costs. Figures are ratios of runs
made here, one after the other, so a loaded machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dldiy.graders.assess import assess
from dldiy.graders.course.folders import reference_path
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.sandbox.forkserver import ForkServer
from dldiy.graders.sandbox.confine import Limits


def submissions(exercise_id: str, n: int) -> list[Path]:
    root = Path(tempfile.mkdtemp(prefix="dldiy-bench-"))
    for i in range(n):
        shutil.copytree(reference_path(exercise_id), root / f"student{i:03d}")
    return sorted(root.iterdir())


def timed(exercise, paths, workers, **kwargs) -> tuple[list[float], float]:
    def one(path):
        started = time.monotonic()
        report = assess(exercise, path, **kwargs)
        assert report.load_error is None and all(c.status in ("pass", "skip") for c in report.checks), report
        return time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        each = list(pool.map(one, paths))
    return each, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=8, help="submissions per configuration")
    parser.add_argument("--exercise", default="exercise-1")
    args = parser.parse_args()
    exercise = load_exercise(args.exercise)
    paths = submissions(args.exercise, args.n)
    cores = os.cpu_count() or 1
    try:
        started = time.monotonic()
        server = ForkServer()
        server_start = time.monotonic() - started
        with server:
            rows = {}
            for workers in (1, cores):
                rows[("fresh", workers)] = timed(exercise, paths, workers)
                rows[("fork", workers)] = timed(exercise, paths, workers, server=server)
            rows[("fork, no namespaces", 1)] = timed(exercise, paths, 1, server=server,
                                                     limits=Limits(namespaces=False))
    finally:
        shutil.rmtree(paths[0].parent, ignore_errors=True)
    print(f"{args.exercise}: {args.n} copies of the reference, every check, full sandbox; {cores} core(s)")
    print(f"fork server start (torch + warm imports, once per batch): {server_start:.2f} s")
    for (how, workers), (each, total) in rows.items():
        print(f"  {how:22s} workers={workers}: median {statistics.median(each):.3f} s/submission, "
              f"{args.n / total:.2f} submissions/s")
    for workers in (1, cores):
        fresh, fork = rows[("fresh", workers)], rows[("fork", workers)]
        print(f"fork server vs fresh interpreter, workers={workers}: "
              f"{statistics.median(fresh[0]) / statistics.median(fork[0]):.1f}x lower latency, "
              f"{fresh[1] / fork[1]:.1f}x the throughput")
    plain = rows[("fork, no namespaces", 1)][0]
    print(f"cost of the namespaces (fork server, 1 worker): "
          f"{statistics.median(rows[('fork', 1)][0]) / statistics.median(plain):.2f}x the time without them")


if __name__ == "__main__":
    main()
