"""What confinement costs per child: confine() now vs the sandbox of an earlier commit, measured here.

    python benchmarks/sandbox_cost.py [-n 20] [--before 63a7128] [--no-torch]

Like the fork server, a warm process (torch imported) forks one child per sample; the child times
`confine(spec)` (namespaces, the root it builds, cgroups, rlimits, uid) and sends the wall time back;
the CPU time of the whole child (confine, then its exit and the namespace's teardown) is what the
parent's getrusage(RUSAGE_CHILDREN) gains for its children. The parent's own side (working copy, cgroups, their
removal) is timed apart. Samples of the two versions alternate, so a busy machine slows both alike;
prints medians (and the 90th percentile of the wall time) of `n` samples each.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_version(rev: str | None):
    """This checkout's graders/sandbox/confine.py, or the one of commit `rev` as a sibling module (before
    the relayout of issue 12 it was sandbox.py at the top of graders/, beside flat siblings)."""
    if rev is None:
        from dldiy.graders.sandbox import confine

        return confine
    # (the path of then is spelt in parts: it names the old place on purpose)
    places = {"graders/sandbox/confine.py": "dldiy.graders.sandbox", "/".join(("graders", "sandbox.py")): "dldiy.graders"}
    for path in places:
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True)
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(f"commit {rev} has no sandbox module at {' nor '.join(places)}")
    package = places[path]
    if package == "dldiy.graders":  # its siblings, by their names of then
        from dldiy.graders.course import folders
        from dldiy.graders.sandbox import mounts

        sys.modules.setdefault(".".join(("dldiy.graders", "sandbox_fs")), mounts)
        sys.modules.setdefault("dldiy.graders._course_then", folders)
        shown.stdout = shown.stdout.replace("from .course import", "from ._course_then import")
    name = f"{package}._sandbox_{rev}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = package
    sys.modules[name] = module
    exec(compile(shown.stdout, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def sample(sandbox, submission: Path) -> tuple[float, float, float]:
    """(wall seconds the child spent in confine(), CPU seconds of the whole child, wall seconds the
    parent spent preparing and cleaning)."""
    started = time.perf_counter()
    work, _ = sandbox.workdir(submission, submission / "logreg.py")
    group = sandbox.Cgroup(64)
    spec = sandbox.Limits().spec(work, sandbox.new_marker(), str(group.path) if group.path else None)
    prepared = time.perf_counter() - started
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.chdir(work)
        t0 = time.perf_counter()
        try:
            sandbox.confine(spec)
            os.write(write_fd, f"{time.perf_counter() - t0}\n".encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as channel:
        seconds = float(channel.readline() or "nan")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.waitpid(pid, 0)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    started = time.perf_counter()
    group.kill_all()
    sandbox.remove_workdir(work)
    return seconds, cpu, prepared + time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--before", default="63a7128", help="commit whose sandbox module is the baseline")
    parser.add_argument("--no-torch", action="store_true", help="fork from a process without torch")
    args = parser.parse_args()
    if not args.no_torch:
        import torch  # noqa: F401 - a fork server's children are forked from a process that has it

    submission = Path(tempfile.mkdtemp(prefix="dldiy-bench-"))
    (submission / "logreg.py").write_text("def loss(X, y, w):\n    return 0\n")
    versions = {f"before ({args.before})": load_version(args.before), "after (this checkout)": load_version(None)}
    figures: dict[str, list[tuple[float, float, float]]] = {label: [] for label in versions}
    for _ in range(args.n):
        for label, sandbox in versions.items():
            figures[label].append(sample(sandbox, submission))
    print(f"{'version':<22} {'confine() wall':>15} {'p90':>8} {'child CPU':>10} {'parent side':>12}"
          f"   (n={args.n}, uid {os.getuid()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    for label, rows in figures.items():
        wall = sorted(r[0] for r in rows)
        print(f"{label:<22} {statistics.median(wall) * 1e3:>12.1f} ms {wall[int(0.9 * (len(wall) - 1))] * 1e3:>5.1f} ms"
              f" {statistics.median(r[1] for r in rows) * 1e3:>7.1f} ms {statistics.median(r[2] for r in rows) * 1e3:>9.1f} ms")
    (submission / "logreg.py").unlink()
    submission.rmdir()


if __name__ == "__main__":
    main()
