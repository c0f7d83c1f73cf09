"""Grade a synthetic class of exercise-1 with `dldiy grade`, and the same class with `nbgrader autograde`.

    python benchmarks/grade_class.py --n 60     # dldiy and nbgrader on the same 60 submissions
    python benchmarks/grade_class.py --n 200    # dldiy alone (--nbgrader to add it: slow)

The class mixes reference copies with bugged variants (buggy/exercise-1/ when present, else edits of
the reference made here). dldiy grades all N with hidden seeds 7 and 123 and grade's defaults (one
public seed beside them, --jobs one more than the CPUs: the real batch setting);
nbgrader autogrades the SAME N submissions as notebooks (none extrapolated), each test cell checking
what dldiy's gradcheck, first-loss and convergence check at the public seeds. By default nbgrader runs
when N <= 60.
Prints: grade's start-up on its own line (its own figure: to the first submission's child), submissions
per second, CPU seconds per submission of the whole process tree (a cpuacct cgroup, sandboxed students
included), the peak memory of one grading process (ru_maxrss of the children), the throughput ratio,
and the machine's load (on a shared machine, compare ratios taken in one run).
Issue 17's targets: >= 25/s at 200, >= 15/s at 60, >= 40x nbgrader at 60, <= 313 MB.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
from dldiy.graders import data as data_module  # noqa: E402  # the harness's data, for the notebooks' tests
from dldiy.graders.batch.run import default_jobs  # noqa: E402

REFERENCE = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
# Student mistakes from the bug-patterns catalogue, as edits of the reference (used when buggy/ is absent).
EDITS = {
    "sign": ("return -(torch.sigmoid(-u) * t) @ Xt", "return (torch.sigmoid(-u) * t) @ Xt"),
    "sum-not-mean": ("@ Xt / X.shape[0]", "@ Xt"),
    "labels-01": ("t = 2 * y.to(X.dtype) - 1\n    u = t * (Xt", "t = y.to(X.dtype)\n    u = t * (Xt"),
    "unstable": ("torch.logaddexp(torch.zeros_like(u), -u)", "torch.log(1 + torch.exp(-u))"),
}


# The bugs of buggy/exercise-1/ this class mixes in: the nine that were whole copies when the figures
# were measured (buggy/ now holds only patches; the same class keeps the figures comparable).
CLASS_BUGS = ("bias-column-on-cpu", "bias-trick-inconsistent", "gradient-ascent", "gradient-sign", "labels-01",
              "lr-ignored", "missing-mean", "sum-not-mean", "unstable-log")


def variants() -> list[str]:
    """Submission sources: the reference, then each bugged variant (its bug.diff applied to the reference)."""
    from dldiy.graders.course.patch import apply_to_files

    buggy = [REPO / "buggy" / "exercise-1" / bug / "bug.diff" for bug in CLASS_BUGS]
    if all(p.is_file() for p in buggy):
        return [REFERENCE] + [apply_to_files({"logreg.py": REFERENCE}, p.read_text())["logreg.py"] for p in buggy]
    return [REFERENCE] + [REFERENCE.replace(old, new) for old, new in EDITS.values()]


def make_class(folder: Path, n: int) -> list[str]:
    """n students; every other one hands in the reference, the rest cycle through the variants."""
    sources = variants()
    folder.mkdir(parents=True)
    students = []
    for i in range(n):
        source = sources[0] if i % 2 == 0 else sources[1 + (i // 2) % (len(sources) - 1)]
        student = f"s{i:03d}"
        (folder / f"{student}.py").write_text(source)
        students.append(student)
    return students


def cpu_seconds() -> float:
    """CPU time (user + system) of every process this script has waited for, grandchildren included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class TreeCpu:
    """CPU seconds of a command's whole process tree, sandboxed student processes included: the command
    starts in a cpuacct cgroup of its own (cgroup v1; the sandbox moves its children into pids and memory
    cgroups only, other hierarchies, so they stay counted here). getrusage cannot see them: each is
    reaped by the init of its own PID namespace. Where no cpuacct hierarchy is writable, `seconds` is None."""

    def __init__(self, name: str):
        self.path: Path | None = CPUACCT / f"dldiy-bench-{os.getpid()}-{name}"
        self.system_share: float | None = None
        try:
            self.path.mkdir()
        except OSError:
            self.path = None

    def enter(self) -> None:
        """In the child, before exec (subprocess's preexec_fn): join the cgroup."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float | None:
        if self.path is None:
            return None
        try:
            # user and system apart: the kernel's share (forks, namespaces, mounts, exits) is its own target
            ticks = dict(line.split() for line in (self.path / "cpuacct.stat").read_text().splitlines())
            total = int(ticks["user"]) + int(ticks["system"])
            self.system_share = int(ticks["system"]) / total if total else None
            return int((self.path / "cpuacct.usage").read_text()) / 1e9
        finally:
            try:
                self.path.rmdir()
            except OSError:
                pass


def run_dldiy(class_dir: Path, out: Path, jobs: int) -> tuple[float, str, float | None, float | None]:
    """Wall seconds of `dldiy grade` on the class, the start-up line it printed, the CPU seconds of its
    whole process tree and the kernel's share of them (None where no cpuacct cgroup can be made)."""
    meter = TreeCpu("dldiy")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dldiy.cli", "grade", "exercise-1", str(class_dir), "--out",
                           str(out), "--hidden-seeds", "7,123", "--jobs", str(jobs)], check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=meter.enter)
    startup = next((line for line in done.stderr.splitlines() if line.startswith("start-up:")), "start-up: ?")
    return time.perf_counter() - start, startup, meter.seconds(), meter.system_share


# ---- the nbgrader side: the same submissions as notebooks, tests as autograded cells -------------

TESTS = {
    "gradcheck": """
import numpy as np, torch
for seed in (1, 42, 2019):
    X, y = gaussian_blobs(seed, 20, 2, 3, 4.0, None)
    X, y = torch.tensor(X), torch.tensor(y)
    w = torch.tensor(np.random.default_rng(seed).normal(0, 1, 4))
    g = gradient(X, y, w.clone())
    for i in range(4):
        e = torch.zeros(4, dtype=torch.float64); e[i] = 1e-6
        num = (loss(X, y, w + e) - loss(X, y, w - e)) / 2e-6
        assert abs(g[i] - num) <= 1e-8 + 1e-5 * abs(num), (seed, i, float(g[i]), float(num))
""",
    "first_loss": """
import numpy as np, torch
for seed, want in EXPECTED.items():
    X, y = gaussian_blobs(seed, 100, 2, 2, 4.0, None)
    w0 = torch.tensor(np.random.default_rng(seed + 10_000).normal(0.0, 0.5, 3))
    _, losses = train(torch.tensor(X), torch.tensor(y), w0, FIRST_LOSS_LR, 11)
    got = [float(losses[k]) for k in (0, 1, 2, 5, 10)]
    assert np.allclose(got, want, rtol=1e-6, atol=1e-9), (seed, got, want)
""",
    "convergence": """
import numpy as np, torch
for seed in (1, 42, 2019):
    X, y = gaussian_blobs(seed, 200, 2, 2, 6.0, 0.5)
    X, y = torch.tensor(X), torch.tensor(y)
    w0 = torch.tensor(np.random.default_rng(seed + 10_000).normal(0.0, 0.5, 3))
    w, _ = train(X, y, w0, 0.5, 300)
    scores = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype)], 1) @ w
    assert ((scores >= 0).long() == y).double().mean() >= 0.99
""",
}


def _cell(source: str, grade_id: str, *, solution: bool = False, points: float = 0) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": points > 0, "solution": solution, "locked": not solution,
                                 "grade_id": grade_id, "schema_version": 3, "task": False,
                                 **({"points": points} if points else {})}
    return cell


def notebook(student_code: str) -> nbformat.NotebookNode:
    expected = json.loads((REPO / "exercises" / "exercise-1" / "expected.json").read_text())["checks"]["first-loss"]
    # the harness's data module whole (gaussian_blobs and its helpers), without its __future__ import
    helpers = "\n".join(line for line in inspect.getsource(data_module).splitlines() if "__future__" not in line)
    table = {int(seed): m["losses"] for seed, m in expected.items()}
    from dldiy.graders.course.exercise import load_exercise

    lr = load_exercise("exercise-1").check("first-loss").params["lr"]  # the spec's, as expected.json's losses
    setup = (f"import numpy as np\nimport torch\ntorch.set_num_threads(1)\n{helpers}\nEXPECTED = {table!r}\n"
             f"FIRST_LOSS_LR = {lr!r}\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [_cell(student_code, "solution", solution=True), _cell(setup, "setup")]
    nb.cells += [_cell(src, name, points=points) for (name, src), points in zip(TESTS.items(), (3, 3, 2))]
    return nb


def run_nbgrader(sources: list[str], work: Path) -> tuple[float, float, list[float]]:
    """Seconds for `nbgrader autograde` on these submissions (after generate_assignment, not timed),
    its CPU seconds, and the scores it gave (so a reader can see it really graded)."""
    course = work / "course"
    (course / "source" / "ex1").mkdir(parents=True)
    nbformat.write(notebook(REFERENCE), course / "source" / "ex1" / "logreg.ipynb")
    (course / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'bench'\n"
                                                "c.ExecutePreprocessor.timeout = 120\n")
    nbg = [sys.executable, "-m", "nbgrader"]
    # nbgrader runs `alembic` by name: the interpreter's bin folder (a venv not activated) goes first on PATH
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    subprocess.run(nbg + ["generate_assignment", "ex1", "--force"], cwd=course, check=True, capture_output=True,
                   env=env)
    released = nbformat.read(course / "release" / "ex1" / "logreg.ipynb", as_version=4)
    for i, source in enumerate(sources):
        nb = nbformat.from_dict(json.loads(nbformat.writes(released)))
        nb.cells[0].source = source
        (course / "submitted" / f"s{i:03d}" / "ex1").mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / f"s{i:03d}" / "ex1" / "logreg.ipynb")
    start, cpu_before, meter = time.perf_counter(), cpu_seconds(), TreeCpu("nbgrader")
    subprocess.run(nbg + ["autograde", "ex1", "--create"], cwd=course, check=True, capture_output=True, env=env,
                   preexec_fn=meter.enter)
    seconds, cpu, tree_cpu = time.perf_counter() - start, cpu_seconds() - cpu_before, meter.seconds()
    cpu = tree_cpu if tree_cpu is not None else cpu
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = [gb.find_submission("ex1", f"s{i:03d}").score for i in range(len(sources))]
    return seconds, cpu, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--nbgrader", action=argparse.BooleanOptionalAction, default=None,
                        help="also autograde the same N with nbgrader (default: when N <= 60)")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="default: grade's own default")
    args = parser.parse_args()
    with_nbgrader = args.nbgrader if args.nbgrader is not None else args.n <= 60
    work = Path(tempfile.mkdtemp(prefix="dldiy-bench-"))
    try:
        students = make_class(work / "class", args.n)
        print(f"class: {args.n} submissions of exercise-1 ({len(variants()) - 1} bugged variants, "
              f"{'from buggy/' if (REPO / 'buggy' / 'exercise-1').is_dir() else 'edits of the reference'}), "
              f"{os.cpu_count()} cores, --jobs {args.jobs}; the machine's load before: {os.getloadavg()[0]:.1f}")
        cpu_before = cpu_seconds()
        seconds, startup, tree_cpu, system_share = run_dldiy(work / "class", work / "out", args.jobs)
        cpu = cpu_seconds() - cpu_before
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rate = args.n / seconds
        with open(work / "out" / "gradebook.csv", newline="") as f:
            rows = list(csv.DictReader(f))  # by column name: the gradebook gained columns at the end
        statuses = [row["status"] for row in rows]
        print(f"dldiy {startup}")
        print(f"dldiy grade: {args.n} in {seconds:.1f} s = {rate:.2f} submissions/s "
              f"({statuses.count('pass')} pass, {statuses.count('fail')} fail, {statuses.count('error')} error); "
              f"peak memory of one grading process {peak_mb:.0f} MB (budget 313 MB)")
        # getrusage never sees the sandboxed student processes (each is reaped by the init of its own PID
        # namespace, not by a process this script waits for); the cpuacct cgroup does. Wall-clock is the
        # measure of throughput; CPU per submission says how far 2 cores could go.
        if tree_cpu is not None:
            print(f"  CPU time {tree_cpu / args.n:.3f} s per submission, the whole process tree (cpuacct cgroup; "
                  f"start-up included): {os.cpu_count()} cores could grade at most "
                  f"{args.n * (os.cpu_count() or 1) / tree_cpu:.1f}/s; the machine's load now: {os.getloadavg()[0]:.1f}")
            if system_share is not None:
                print(f"  of it in the kernel: {100 * system_share:.0f}% (forks, exits, namespaces and mounts)")
        else:
            print(f"  CPU time {cpu / args.n:.3f} s per submission seen by getrusage (start-up included; the "
                  f"sandboxed student processes are not counted); the machine's load now: {os.getloadavg()[0]:.1f}")
        if not with_nbgrader:
            print(f"targets: >= {25 if args.n >= 200 else 15} submissions/s (nbgrader not run: --nbgrader to add it)")
            return
        sources = [(work / "class" / f"{s}.py").read_text() for s in students]
        nb_seconds, nb_cpu, nb_scores = run_nbgrader(sources, work)
        nb_rate = len(sources) / nb_seconds
        dl_scores = [f"{row['total']}/{row['max']}" for row in rows]
        print(f"scores of the first 6: nbgrader {[f'{x:g}/8' for x in nb_scores[:6]]}, "
              f"dldiy {dl_scores[:6]}")
        if nb_scores[0] != 8:  # s000 hands in the reference: anything else means the notebooks did not run
            sys.exit(f"nbgrader gave the reference {nb_scores[0]:g}/8: its notebooks are broken, the timing "
                     "is not a grading's")
        print(f"nbgrader autograde: {len(sources)} in {nb_seconds:.1f} s = {nb_rate:.3f} submissions/s "
              f"(the same {len(sources)} submissions, measured; load now {os.getloadavg()[0]:.1f})")
        print(f"  CPU time {nb_cpu / len(sources):.2f} s per submission")
        print(f"throughput ratio dldiy/nbgrader: {rate / nb_rate:.1f}x wall-clock "
              f"(targets: >= {25 if args.n >= 200 else 15} submissions/s, >= 40x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
