"""A class of 60 with one submission hanging at import, against the same class without it.

    python benchmarks/hang_at_import.py [--n 60] [--jobs 2]

Both classes are graded by `dldiy grade exercise-1` with hidden seeds, in alternation, in one run.
The load timeout is derived from the reference's own load time (graders/batch/run.py, load_timeout_for), so
the hanging student costs its worker seconds; the budget (issue 13) is 15 s more at most.
Prints both wall times, the difference, and the hanging student's message.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
HANG = "import time\nwhile True:\n    time.sleep(1)\n"


def grade(folder: Path, out: Path, jobs: int) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "dldiy.cli", "grade", "exercise-1", str(folder), "--out", str(out),
                    "--jobs", str(jobs), "--hidden-seeds", "7,123"], check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        classes = {}
        for name in ("clean", "one-hangs"):
            folder = Path(tmp) / name
            folder.mkdir()
            for i in range(args.n):
                (folder / f"s{i:03d}.py").write_text(HANG if (name == "one-hangs" and i == args.n // 2) else REFERENCE)
            classes[name] = folder
        times: dict[str, list[float]] = {"clean": [], "one-hangs": []}
        for attempt in range(2):
            for name, folder in classes.items():
                times[name].append(grade(folder, Path(tmp) / f"out-{name}-{attempt}", args.jobs))
        clean, hanging = min(times["clean"]), min(times["one-hangs"])
        print(f"class of {args.n}, --jobs {args.jobs}: clean {clean:.1f} s, one hanging at import {hanging:.1f} s "
              f"(best of 2 each): +{hanging - clean:.1f} s (budget: +15 s)")
        records = json.loads((Path(tmp) / "out-one-hangs-1" / "results.json").read_text())
        stuck = [r for r in records["students"] if r.get("student") == f"s{args.n // 2:03d}"]
        if stuck:
            row = stuck[0]
            print(f"the hanging student's row: {row.get('error') or row['checks'][0]['message']}")


if __name__ == "__main__":
    main()
