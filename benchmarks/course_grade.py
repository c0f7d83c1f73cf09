"""Grade a class of an instructor's own notebook course (tests/courses/mlp_numpy) with `dldiy grade`.

    python benchmarks/course_grade.py [--n 30] [--jobs 2]

The class cycles through the solution, a half-done notebook (one part a comment-only stub) and the
empty notebook as handed out; every notebook has the course's training loop, plot and download cells.
dldiy grades them with two hidden seeds, as a real batch does. Prints the submissions per second
(wall clock of the whole command, the fork server's start and the reference's hidden-seed run
included), the slowest submission, and the scores by kind.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
COURSE = REPO / "tests" / "courses" / "mlp_numpy"
EMPTY, SOLUTION = COURSE / "notebooks" / "mlp.ipynb", COURSE / "notebooks" / "mlp_solution.ipynb"


def make_class(folder: Path, n: int) -> None:
    half = nbformat.read(str(SOLUTION), as_version=4)
    cell = next(c for c in half.cells if c.source.startswith("class SoftmaxCrossEntropy"))
    cell.source = "class SoftmaxCrossEntropy:\n    def forward(self, logits, y):\n        # YOUR CODE HERE\n"
    for i in range(n):
        kind = ("solution", "half", "empty")[i % 3]
        target = folder / f"s{i:03d}-{kind}" / "mlp.ipynb"
        target.parent.mkdir(parents=True)
        if kind == "half":
            nbformat.write(half, str(target))
        else:
            shutil.copy(SOLUTION if kind == "solution" else EMPTY, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dldiy-course-bench-") as tmp:
        make_class(Path(tmp) / "class", args.n)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "dldiy.cli", "grade", "--course", str(COURSE), "mlp",
                               str(Path(tmp) / "class"), "--out", str(Path(tmp) / "out"), "--jobs", str(args.jobs)],
                              capture_output=True, text=True, env=dict(os.environ))
        wall = time.monotonic() - started
        if done.returncode != 0:
            sys.exit(f"dldiy grade failed:\n{done.stderr[-3000:]}")
        with open(Path(tmp) / "out" / "gradebook.csv") as f:
            rows = list(csv.DictReader(f))
    scores = defaultdict(set)
    for row in rows:
        scores[row["student"].split("-")[1]].add(float(row["total"]))
    slowest = max(rows, key=lambda r: float(r["duration_s"]))
    print(f"graded {len(rows)} notebooks with --jobs {args.jobs} in {wall:.1f} s: "
          f"{len(rows) / wall:.2f} submissions/s (target: 1/s or better)")
    print(f"slowest submission: {slowest['student']} {float(slowest['duration_s']):.2f} s; "
          f"scores by kind: " + ", ".join(f"{k} {sorted(v)}" for k, v in sorted(scores.items())))


if __name__ == "__main__":
    main()
