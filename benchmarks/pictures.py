"""CPU cost of the feedback pictures (graders/plots.py's hand-written SVG), per picture, grading nothing.

The plot data of a failing class, synthesised with realistic sizes (default): a first-loss curve of 100
steps beside the reference's, a gradcheck of 5 blocks of 4-6 entries (3 drawn), a convergence of exercise 1
(its curve, then 200 points with the student's and the reference's boundary) and of exercise 8 (its curve,
then 8 filters 3x3 beside the reference's); or every picture of a graded class's journal (`--journal
OUT/journal.jsonl`, as `dldiy grade` writes it). Each picture is drawn REPEAT times; the CPU time of the
best and the median draw is printed, with the document's size. Where matplotlib is importable, the same
data is also drawn by the matplotlib painter that graders/plots.py had before the SVG (its source read
from git at BEFORE_SVG, run from that string), with matplotlib's import time: the comparison, same run.

    python benchmarks/pictures.py [--journal OUT/journal.jsonl] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
BEFORE_SVG = "c1b2e3d"  # the last commit whose graders/plots.py drew PNGs with matplotlib


def synthetic(seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """(title, plot data) of the four kinds of picture of a failing class, as plot_data keeps them."""
    rng = random.Random(seed)
    steps = list(range(100))

    def curve(rate: float) -> list[float]:
        return [0.7 * (1 - rate) ** k + 0.02 * rng.random() for k in steps]

    def filters() -> list[Any]:
        return [[[[rng.gauss(0, 0.5) for _ in range(3)] for _ in range(3)]] for _ in range(8)]

    points = [[rng.gauss(2 * (i % 2) - 1, 1), rng.gauss(2 * (i % 2) - 1, 1)] for i in range(200)]
    boundary = {"w": [1.0, -0.8, 0.3], "points": [[round(v, 3) for v in p] for p in points],
                "labels": [i % 2 for i in range(200)], "bias": 1.0, "reference": [1.1, 1.0, 0.0]}
    blocks = []
    for b in range(5):
        numeric = [rng.gauss(0, 0.2) for _ in range(4 + b % 3)]
        blocks.append({"name": f"w{b} (n20, d3)", "numeric": numeric,
                       "analytic": [-v if k % 2 else v * (1 + 1e-9) for k, v in enumerate(numeric)]})
    return [
        ("first-loss: fail (seed 1)", {"curve": {"steps": steps, "losses": curve(0.01), "reference": curve(0.05)}}),
        ("gradcheck: fail (seed 1)", {"gradcheck": blocks}),
        ("convergence: fail (seed 1)", {"curve": {"steps": steps, "losses": curve(0.01), "reference": curve(0.05)},
                                        "boundary": boundary}),
        ("convergence: fail (seed 42)", {"curve": {"steps": steps, "losses": curve(0.01), "reference": curve(0.05)},
                                         "filters": {"student": filters(), "reference": filters()}}),
    ]


def from_journal(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(title, plot data) of every check with a picture in a graded class's journal, titled as pictures()."""
    from dldiy.graders.plots import _name

    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for c in record.get("checks") or []:
            details = c.get("details") or {}
            if details.get("plot"):
                seed = f" (seed {details['seed']})" if details.get("seed") is not None else ""
                found.append((f"{_name(c['name'])}: {c['status']}{seed}", details["plot"]))
    return found


def cpu_ms(draw: Callable[[], bytes], repeat: int) -> tuple[float, float, int]:
    """(best, median) CPU milliseconds of `repeat` draws, and the size of what was drawn."""
    times, size = [], 0
    for _ in range(repeat):
        start = time.process_time()
        size = len(draw())
        times.append((time.process_time() - start) * 1000)
    return min(times), statistics.median(times), size


def matplotlib_painter() -> tuple[Any, float] | None:
    """graders/plots.py as it was at BEFORE_SVG (the matplotlib painter), and matplotlib's import in CPU
    seconds; None without matplotlib or git."""
    try:
        start = time.process_time()
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
        imported = time.process_time() - start
    except ImportError:
        return None
    shown = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE_SVG}:graders/plots.py"], capture_output=True,
                           text=True)
    if shown.returncode != 0:
        print(f"(no matplotlib comparison: git show {BEFORE_SVG}:graders/plots.py failed)", file=sys.stderr)
        return None
    module = types.ModuleType("plots_before_svg")
    exec(compile(shown.stdout, f"{BEFORE_SVG}:graders/plots.py", "exec"), module.__dict__)
    return module, imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journal", type=Path, help="a graded class's OUT/journal.jsonl (default: synthesised)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from dldiy.graders import plots

    pictures = from_journal(args.journal) if args.journal else synthetic()
    if not pictures:
        sys.exit(f"no picture in {args.journal}")
    before = matplotlib_painter()
    if before is not None:
        print(f"matplotlib's import: {before[1] * 1000:.0f} ms CPU (once per process)")
    print(f"{'picture':<30} {'panels':>6} {'SVG best':>9} {'median':>7} {'bytes':>7}"
          + (f" {'mpl best':>9} {'median':>7} {'PNG bytes':>9} {'ratio':>6}" if before else ""))
    totals = [0.0, 0.0]
    for title, data in pictures:
        panels = (("curve" in data) + len(data.get("gradcheck", [])[:3]) + ("filters" in data)
                  + (1 + bool(data["boundary"].get("reference")) if "boundary" in data else 0))
        best, median, size = cpu_ms(lambda: plots.draw(data, title), args.repeat)
        line = f"{title[:30]:<30} {panels:>6} {best:>7.2f}ms {median:>5.2f}ms {size:>7}"
        totals[0] += median
        if before is not None:
            old_best, old_median, old_size = cpu_ms(lambda: before[0].draw(data, title), args.repeat)
            line += f" {old_best:>7.1f}ms {old_median:>5.1f}ms {old_size:>9} {old_median / median:>5.0f}x"
            totals[1] += old_median
        print(line)
    print(f"{len(pictures)} pictures, medians summed: SVG {totals[0]:.1f} ms"
          + (f", matplotlib {totals[1]:.0f} ms (+ its import)" if before else ""))


if __name__ == "__main__":
    main()
