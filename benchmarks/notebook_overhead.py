"""What a notebook submission costs over the same code as a .py file (target: at most 0.5 s).

Checks exercise-1's reference as logreg.py and as a notebook holding the same code (one cell per
top-level statement, plus a `%matplotlib inline` line to take the magic-skipping path), alternating
the two, and prints the medians of wall time and of the child's CPU time (steadier when the machine
is shared) and their differences, measured in this one run. Then the load step
alone (read + execute the file, in this process) for both, which is where the two paths differ.

    .venv/bin/python benchmarks/notebook_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import ast
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = 0.5


def as_notebook(source: str) -> dict:
    """The .py's code as a notebook: a cell per top-level statement (as students split their work)."""
    lines = source.splitlines()
    cells = ["%matplotlib inline"]
    for node in ast.parse(source).body:
        cells.append("\n".join(lines[node.lineno - 1: node.end_lineno]))
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": c}
                      for c in cells]}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from dldiy.graders.assess import assess
    from dldiy.graders.course.exercise import load_exercise

    exercise = load_exercise("exercise-1")
    source = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        py = Path(tmp) / "py" / "logreg.py"
        nb = Path(tmp) / "nb" / "logreg.ipynb"
        py.parent.mkdir()
        nb.parent.mkdir()
        py.write_text(source)
        nb.write_text(json.dumps(as_notebook(source)))

        times: dict[str, list[float]] = {"py": [], "ipynb": []}
        cpu: dict[str, list[float]] = {"py": [], "ipynb": []}  # the child's CPU time: robust to a busy machine
        for _ in range(args.rounds):
            for name, path in (("py", py), ("ipynb", nb)):
                started, cpu0 = time.perf_counter(), _children_cpu()
                report = assess(exercise, path)
                times[name].append(time.perf_counter() - started)
                cpu[name].append(_children_cpu() - cpu0)
                assert report.load_error is None and report.exit_code == 0, report.to_json()
        py_s, nb_s = statistics.median(times["py"]), statistics.median(times["ipynb"])
        diffs = [n - p for p, n in zip(times["py"], times["ipynb"])]
        print(f"dldiy check exercise-1, {args.rounds} rounds alternating (all {len(exercise.checks)} checks, "
              f"a fresh child each):")
        print(f"  .py     median {py_s:.3f} s   (runs: {', '.join(f'{t:.2f}' for t in times['py'])})")
        print(f"  .ipynb  median {nb_s:.3f} s   (runs: {', '.join(f'{t:.2f}' for t in times['ipynb'])})")
        print(f"  notebook overhead: {nb_s - py_s:+.3f} s (difference of medians; per round "
              f"{', '.join(f'{d:+.2f}' for d in diffs)}); budget {BUDGET_S} s")
        cpu_py, cpu_nb = statistics.median(cpu["py"]), statistics.median(cpu["ipynb"])
        print(f"  child CPU time, median: .py {cpu_py:.3f} s, .ipynb {cpu_nb:.3f} s, "
              f"difference {cpu_nb - cpu_py:+.3f} s")

        # The load step alone, where the paths differ (torch imported first, as in the child).
        import torch  # noqa: F401

        from dldiy.graders.sandbox.submission import load

        for name, path in (("py", py), ("ipynb", nb)):
            started = time.perf_counter()
            for _ in range(50):
                load(path)
            print(f"  load {name:6s} {(time.perf_counter() - started) / 50 * 1000:.2f} ms per submission (in-process)")
    return 0 if cpu_nb - cpu_py <= BUDGET_S else 1  # CPU time: wall time swings by seconds on a shared machine


if __name__ == "__main__":
    sys.exit(main())
