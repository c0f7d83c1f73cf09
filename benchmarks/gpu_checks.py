"""The device checks on a machine with a GPU: parity and placement of every reference on real CUDA, and
the bugged variants that only a GPU exposes, each through the real `dldiy check` (sandbox included).

    python benchmarks/gpu_checks.py [--out DIR]

(with dldiy installed; on a machine that cannot install it, give the checkout's `dldiy/` its three
sub-packages and put the checkout on the path: `ln -s ../cli ../graders ../exercises dldiy/;
PYTHONPATH=$PWD python3 benchmarks/gpu_checks.py`, as the device run of README.md did)

Then the same through `dldiy grade`: per GPU-only bug, a class of three reference copies and two
copies of the bug, graded with --jobs 2, so that each harness process serves several submissions
one after another (parity leaves TF32 off and determinism on in it: the next submission must not
see that, graders/sandbox/child.py's GlobalState).

Prints one line per (submission, check): status, points and message, the device torch reports, and
the wall time; writes the same as JSON to DIR/gpu_checks.json when --out is given. Exit status 1 when a
reference does not pass parity and placement, or a GPU-only bug is not caught by the check its manifest
names. Without a GPU every parity check is skipped, and the script says so (no skip counts as a pass).
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
# Bugs a CPU machine cannot expose (manifest `requires = "cuda"`), and placement bugs as controls: one the
# meta device sees, one that only the second run with values sees (train() reads its losses), and an
# optimizer's state left on the CPU (exercise-6, whose parity check had never met a GPU).
GPU_BUGS = (("exercise-8", "tf32-in-forward"), ("exercise-1", "bias-column-on-cpu"),
            ("exercise-2", "train-w0-copied-through-tolist"), ("exercise-6", "buffers-on-cpu"))


def check(exercise: str, path: Path, only: tuple[str, ...]) -> tuple[dict, float]:
    """`dldiy check EXERCISE PATH --json --only ...`: the report and the wall seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dldiy.cli", "check", exercise, str(path), "--json",
                           *[a for name in only for a in ("--only", name)]],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    try:
        return json.loads(done.stdout), seconds
    except ValueError:
        return {"error": (done.stdout + done.stderr)[-2000:], "checks": []}, seconds


def grade_class(exercise: str, bug: str, caught_by: tuple[str, ...], only: tuple[str, ...], tmp: Path) -> bool:
    """`dldiy grade` of three reference copies and two of the bug; True when every reference passes
    every device check and every bug fails one its manifest names."""
    import shutil

    from dldiy.graders.course.bugs import build_bugged

    folder = tmp / f"class-{exercise}"
    for k in range(3):
        shutil.copytree(REPO / "reference" / exercise, folder / f"ref{k}")
    for k in range(2):
        build_bugged(exercise, bug, folder / f"bug{k}")
    out = tmp / f"out-{exercise}"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dldiy.cli", "grade", exercise, str(folder), "--out", str(out),
                           "--hidden-seeds", "7,123", "--jobs", "2", *[a for c in only for a in ("--only", c)]],
                          cwd=REPO, capture_output=True, text=True, timeout=400)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(f"grade {exercise}: exit {done.returncode}: {done.stderr[-500:]}")
        return False
    ok = True
    for record in json.loads((out / "results.json").read_text())["students"]:
        statuses = {c["name"]: c["status"] for c in record["checks"]}
        expected = (all(s == "pass" for s in statuses.values()) if record["student"].startswith("ref")
                    else any(statuses.get(c) == "fail" for c in caught_by))
        ok &= expected
        print(f"grade {exercise:<11} {record['student']:<5} {statuses}  {'ok' if expected else 'NOT AS EXPECTED'}")
    print(f"grade {exercise}: 5 submissions in {seconds:.1f} s, --jobs 2")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    sys.path.insert(0, str(REPO))
    from dldiy.graders.course.bugs import build_bugged, variant
    from dldiy.graders.course.exercise import exercise_ids, load_exercise

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(f"torch {torch.__version__}, CUDA available: {gpu or 'no'}")
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        device_checks = {ex: tuple(c.name for c in load_exercise(ex).checks if c.kind in ("parity", "placement"))
                         for ex in exercise_ids()}
        runs = [(ex, REPO / "reference" / ex, only, None) for ex, only in device_checks.items() if only]
        for ex, bug in GPU_BUGS:
            folder = build_bugged(ex, bug, Path(tmp) / bug)
            runs.append((ex, folder, device_checks[ex], variant(ex, bug).caught_by))
        for ex, path, only, caught_by in runs:
            report, seconds = check(ex, path, only)
            name = path.name if caught_by is not None else "reference"
            if report.get("error") and not report["checks"]:
                print(f"{ex:<12} {name:<22} ERROR {report['error'][-300:]}")
                ok = False
                continue
            for c in report["checks"]:
                print(f"{ex:<12} {name:<22} {c['name']:<10} {c['status']:<5} {c['points']:g}/{c['max_points']:g}"
                      f"  {seconds:5.1f} s  {c['message'][:160]}")
                rows.append({"exercise": ex, "submission": name, "check": c["name"], "status": c["status"],
                             "message": c["message"], "seconds": round(seconds, 2)})
                if caught_by is None and c["status"] != "pass":
                    ok = False
                if caught_by is not None and c["name"] in caught_by and c["status"] != "fail":
                    ok = False
        if gpu:  # the class runs only where parity can (without a GPU it would say nothing new)
            for ex, bug in GPU_BUGS:
                ok &= grade_class(ex, bug, variant(ex, bug).caught_by, device_checks[ex], Path(tmp))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_checks.json").write_text(json.dumps({"gpu": gpu, "torch": torch.__version__,
                                                               "rows": rows}, indent=1))
    print("all as expected" if ok else "NOT as expected")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
