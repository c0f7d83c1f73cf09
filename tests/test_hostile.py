"""Hostile submissions of exercise-1: each runs in the real, confined child and gets a failing row
with a clear reason, and the runner returns so a batch goes on.

A tiny copy of exercise-1 (public seed 1 only, 2 s per check) keeps every timeout short; most tests
fork from one warm ForkServer, a few go through a fresh interpreter to cover that path too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO
from dldiy.graders.assess import assess, measure_reference
from dldiy.graders.course.exercise import load_exercise_dir
from dldiy.graders.sandbox.forkserver import ForkServer
from dldiy.graders.sandbox.confine import Cgroup, GiB, Limits

REFERENCE = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
FAST = Limits(startup_s=30, cpu_s=10, memory_bytes=2 * GiB)


@pytest.fixture(scope="module")
def exercise(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ex") / "exercise-1"
    shutil.copytree(REPO / "exercises" / "exercise-1", folder)
    spec = (folder / "spec.toml").read_text()
    spec = spec.replace("seeds = [1, 42, 2019]", "seeds = [1]").replace("timeout = 20", "timeout = 2")
    (folder / "spec.toml").write_text(spec)
    return load_exercise_dir(folder)


@pytest.fixture(scope="module")
def server():
    with ForkServer(warm=False) as s:  # no placement check here: skip its imports
        yield s


@pytest.fixture
def grade(exercise, server, tmp_path):
    """grade(code, checks=[...], fresh=False, **assess_kwargs) -> (report, {check: CheckResult}, seconds)."""

    def run(code: str, checks: tuple[str, ...] = ("gradcheck",), fresh: bool = False, name: str = "logreg.py",
            limits: Limits = FAST, timeout: float | None = None, **kwargs):
        ex = exercise if timeout is None else dataclasses.replace(
            exercise, checks=tuple(dataclasses.replace(c, timeout=timeout) for c in exercise.checks))
        folder = tmp_path / uuid.uuid4().hex[:8]
        folder.mkdir()
        if isinstance(code, bytes):
            (folder / name).write_bytes(code)
        else:
            (folder / name).write_text(textwrap.dedent(code))
        started = time.monotonic()
        report = assess(ex, folder, checks=[ex.check(c) for c in checks], limits=limits,
                        server=None if fresh else server, **kwargs)
        return report, {c.name: c for c in report.checks}, time.monotonic() - started

    return run


def with_reference(prefix: str = "", suffix: str = "") -> str:
    return textwrap.dedent(prefix) + REFERENCE + textwrap.dedent(suffix)


def confined(report, what: str) -> bool:
    return any(what in line and not line.startswith("not applied") for line in report.sandbox)


def test_the_reference_passes_in_the_sandbox_and_the_child_reports_its_confinement(grade):
    report, checks, _ = grade(REFERENCE, checks=("gradcheck", "first-loss"))
    assert [c.status for c in report.checks] == ["pass", "pass"]
    assert any(line.startswith("RLIMIT_DATA") for line in report.sandbox), report.sandbox


# --- time ------------------------------------------------------------------------------------------

def test_an_infinite_loop_times_out_and_the_next_check_still_runs(grade):
    code = with_reference(suffix="""
        _gradient = gradient
        def gradient(X, y, w):
            while X.shape[0] == 20:  # gradcheck's size: first-loss (n = 100) is unharmed
                pass
            return _gradient(X, y, w)
    """)
    report, checks, seconds = grade(code, checks=("gradcheck", "first-loss"))
    assert checks["gradcheck"].status == "error"
    assert "did not finish within 2 s" in checks["gradcheck"].message
    assert checks["first-loss"].status == "pass"  # a fresh child took over
    assert seconds < 10


def test_a_long_sleep_at_import_hits_the_startup_timeout(grade):
    report, checks, seconds = grade("import time\ntime.sleep(3600)\n", limits=Limits(startup_s=1.5))
    assert report.load_error and "did not finish loading within 1.5 s" in report.load_error
    assert checks["gradcheck"].status == "error" and seconds < 8


def test_cpu_time_limit_kills_a_busy_child_before_the_wall_clock(exercise, server, tmp_path):
    code = with_reference(suffix="""
        def gradient(X, y, w):
            while True:
                pass
    """)
    (tmp_path / "logreg.py").write_text(code)
    slow = load_exercise_dir(exercise.folder)
    object.__setattr__(slow.check("gradcheck"), "timeout", 30.0)
    report = assess(slow, tmp_path, checks=[slow.check("gradcheck")], server=server,
                    limits=Limits(cpu_s=1, startup_s=5))
    message = report.checks[0].message
    assert report.checks[0].status == "error"
    assert "CPU-time limit (1 s" in message, message
    assert report.duration_s < 10


# --- memory, processes, output -----------------------------------------------------------------------

def test_a_memory_bomb_gets_memory_error_not_the_machine(grade):
    code = with_reference(suffix="""
        def gradient(X, y, w):
            hoard = []
            while True:
                hoard.append(b"x" * (64 << 20))  # touched, not just reserved
    """)
    # (a wall-clock margin for filling ~0.8 GB on a busy machine: the limit, not the clock, must stop it)
    report, checks, seconds = grade(code, limits=Limits(memory_bytes=GiB, startup_s=30), timeout=8)
    assert checks["gradcheck"].status == "error"
    assert "MemoryError" in checks["gradcheck"].message
    assert seconds < 10


def test_a_torch_allocation_bomb_fails_cleanly(grade):
    code = with_reference(suffix="""
        def gradient(X, y, w):
            return torch.empty(1 << 36)  # 256 GiB of float32
    """)
    report, checks, _ = grade(code)
    assert checks["gradcheck"].status == "error"
    assert "allocate" in checks["gradcheck"].message.lower(), checks["gradcheck"].message


def _parents() -> dict[int, int]:
    parent = {}
    for name in os.listdir("/proc"):
        try:
            if name.isdigit():
                parent[int(name)] = int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return parent


def strays(root: int) -> list[int]:
    """Every live process below `root` but the idle harness processes the batch keeps for its next
    submission and their zygotes (graders/sandbox/runner.py's Workers): a student's process that
    survived is a zygote's child, so it is found."""
    from dldiy.graders.sandbox.runner import WORKERS

    parent, idle = _parents(), set(WORKERS.idle_pids())
    kept = idle | {pid for pid, p in parent.items() if p in idle}
    return [pid for pid in descendants(root, parent) if pid not in kept]


def descendants(root: int, parent: dict[int, int] | None = None) -> list[int]:
    """Every live process below `root` (by walking each process's parent chain)."""
    parent = _parents() if parent is None else parent
    found = []
    for pid in parent:
        p = parent.get(pid)
        while p and p != root:
            p = parent.get(p)
        if p == root:
            found.append(pid)
    return found


def test_a_fork_bomb_is_capped_and_nothing_of_it_survives(grade, server):
    code = with_reference(suffix="""
        import os
        def gradient(X, y, w):
            while True:
                os.fork()
    """)
    report, checks, seconds = grade(code)
    assert checks["gradcheck"].status == "error"
    # (or its copies, each going on from fork() inside the call, answered on the same channel: a malformed reply)
    assert re.search(r"BlockingIOError|Resource temporarily unavailable|did not finish|malformed reply",
                     checks["gradcheck"].message)
    deadline = time.monotonic() + 3
    while strays(server._proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert strays(server._proc.pid) == []  # every forked copy is gone
    assert seconds < 10


def test_the_students_first_line_already_runs_inside_its_cgroups(grade):
    # Where the harness moves the student's process into its cgroups from outside (the process is its
    # PID namespace's init), the student's code must not start before the move: its first line, at
    # import, already counts against the pids and memory limits.
    code = with_reference(prefix="""
        for line in open("/proc/self/cgroup"):
            print("CGROUP", line.strip())
    """)
    probe = Cgroup(1)  # what this host lets us make, independently of what the child reported
    try:
        has_pids = any((p / "pids.max").exists() for p in probe.paths)
        has_memory = any((p / "memory.limit_in_bytes").exists() or (p / "memory.max").exists() for p in probe.paths)
    finally:
        probe.kill_all()
    if not has_pids:
        pytest.skip("no pids cgroup can be made here (best effort)")
    report, checks, _ = grade(code)
    assert checks["gradcheck"].status == "pass"
    assert confined(report, "cgroup pids.max"), report.sandbox
    lines = [line.split(" ", 1)[1] for line in report.output.splitlines() if line.startswith("CGROUP ")]

    def member_of(controller: str) -> list[str]:  # its v1 hierarchy's line, else the v2 one
        return [line for line in lines if controller in line.split(":")[1].split(",")] \
            or [line for line in lines if line.split(":")[1] == ""]

    assert all("/dldiy-" in line for line in member_of("pids")), lines
    if has_memory:
        assert all("/dldiy-" in line for line in member_of("memory")), lines


def test_a_gigabyte_printed_to_stdout_is_drained_with_a_cap_quickly(grade):
    code = with_reference(prefix="""
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(1024):
            sys.stdout.write(chunk)
    """)
    report, checks, seconds = grade(code)
    assert checks["gradcheck"].status == "pass"  # printing is allowed; it is just not kept
    assert len(report.output) < FAST.output_bytes + 300
    assert re.search(r"\[\.\.\. \d+ more bytes of output dropped\]", report.output)
    assert seconds < 8


# --- exits and exceptions ----------------------------------------------------------------------------

@pytest.mark.parametrize("fresh", [False, True], ids=["forkserver", "fresh-interpreter"])
def test_os_exit_at_import_is_a_load_error(grade, fresh):
    report, checks, _ = grade("import os\nos._exit(0)\n", fresh=fresh)
    assert report.load_error and "exited (code 0) while loading" in report.load_error
    assert checks["gradcheck"].status == "error"


def test_sys_exit_at_import_is_a_load_error(grade):
    report, checks, _ = grade("import sys\nsys.exit(0)\n")
    assert report.load_error and "sys.exit(0) was called" in report.load_error


@pytest.mark.parametrize("exception", ["SystemExit(3)", "KeyboardInterrupt()"])
def test_system_exit_and_keyboard_interrupt_inside_a_graded_function(grade, exception):
    code = with_reference(suffix=f"""
        _gradient = gradient
        def gradient(X, y, w):
            if X.shape[0] == 20:  # gradcheck's size: first-loss (n = 100) is unharmed
                raise {exception}
            return _gradient(X, y, w)
    """)
    report, checks, _ = grade(code, checks=("gradcheck", "first-loss"))
    assert checks["gradcheck"].status == "error"
    assert exception.split("(")[0] in checks["gradcheck"].message
    assert checks["first-loss"].status == "pass"


# --- files, network, the reference --------------------------------------------------------------------

def test_files_written_outside_its_directory_are_refused_or_vanish(grade, tmp_path):
    token = uuid.uuid4().hex
    targets = [REPO / f"pwned-{token}", Path("/tmp") / f"pwned-{token}", tmp_path / f"pwned-{token}"]
    code = with_reference(prefix=f"""
        import os
        refused = []
        for target in {[str(t) for t in targets]!r}:
            try:
                with open(target, "w") as f:
                    f.write("pwned")
            except OSError as e:
                refused.append(type(e).__name__)
        open("inside.txt", "w").write("fine")  # its own working directory stays writable
        print("REFUSED", refused)
    """)
    report, checks, _ = grade(code)
    assert checks["gradcheck"].status == "pass"
    if not confined(report, "read-only file system"):
        pytest.skip(f"no mount namespace here: writes are only as confined as the uid allows ({report.sandbox})")
    # the checkout: refused (a read-only file system; or, for a checkout under /tmp, a root-owned folder
    # of the sandbox's private /tmp, where the unprivileged uid may not write); /tmp: its private tmpfs
    # takes the write, which then vanishes; the test's own folder: not even visible under that /tmp
    assert re.search(r"REFUSED \['(OSError|PermissionError)', 'FileNotFoundError'\]", report.output), report.output
    assert not any(t.exists() for t in targets), "a write escaped the sandbox"


def test_no_network(grade):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    code = with_reference(prefix=f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
            print("NETWORK: reached the host")
        except OSError as e:
            print("NETWORK: refused", type(e).__name__)
    """)
    try:
        report, checks, _ = grade(code)
    finally:
        listener.close()
    if not confined(report, "network namespace"):
        pytest.skip(f"no network namespace here (best effort): {report.sandbox}")
    assert "NETWORK: refused" in report.output


def test_the_child_cannot_read_the_reference_nor_find_it_in_its_cwd_env_or_argv(grade):
    code = """
        import os, sys, pathlib
        import dldiy
        root = pathlib.Path(dldiy.__file__).resolve().parent.parent   # the checkout, by the editable install
        seen = {"cwd": os.getcwd(), "argv": " ".join(sys.argv),
                "env": " ".join(f"{k}={v}" for k, v in os.environ.items())}
        for what, text in seen.items():
            print("LEAK" if ("reference" in text or str(root) in text) else "CLEAN", what)
        try:
            source = (root / "reference" / "exercise-1" / "logreg.py").read_text()
            exec(source)                     # a copy of the reference: would pass everything
            print("STOLE the reference")
        except OSError as e:
            print("NO reference:", type(e).__name__)
            def loss(X, y, w): return (X.sum() * 0 + 1.0).to(X.dtype)
            def gradient(X, y, w): return w * 0 + 1
    """
    report, checks, _ = grade(code)
    assert "LEAK" not in report.output, report.output
    assert report.output.count("CLEAN") == 3
    if not confined(report, "hidden"):
        pytest.skip(f"no mount namespace here: reference/ stays readable by path (best effort): {report.sandbox}")
    assert "NO reference" in report.output and "STOLE" not in report.output
    assert checks["gradcheck"].status == "fail", checks["gradcheck"].message  # it gained nothing


def test_hidden_seed_expectations_cached_on_disk_can_be_hidden_too(grade, tmp_path):
    secret = tmp_path / "cache" / "expected-hidden.json"
    secret.parent.mkdir()
    secret.write_text('{"first-loss": {"7": "SECRET-VALUES"}}')
    code = with_reference(prefix=f"""
        for path in ({str(secret)!r}, {str(secret.parent)!r} + "/expected-hidden.json"):
            try:
                print("READ", repr(open(path).read()))
            except OSError as e:
                print("DENIED", type(e).__name__)
    """)
    report, checks, _ = grade(code, limits=Limits(hide=(str(secret),), startup_s=30))
    assert checks["gradcheck"].status == "pass"
    if not confined(report, "hidden"):
        pytest.skip(f"no mount namespace here (best effort): {report.sandbox}")
    # an empty file where it is bound over, or no file at all under the private /tmp
    assert "SECRET" not in report.output and report.output.count("READ ''") + report.output.count("DENIED") == 2


@pytest.mark.parametrize("fresh", [False, True], ids=["forkserver", "fresh-interpreter"])
def test_a_classmates_folder_and_the_batch_output_are_out_of_reach(grade, tmp_path, fresh):
    classmate = tmp_path / "classmate"
    classmate.mkdir()
    (classmate / "logreg.py").write_text(REFERENCE)
    out = tmp_path / "OUT"
    out.mkdir()
    (out / "batch.json").write_text('{"hidden_seeds": [7]}')
    code = with_reference(prefix=f"""
        import os
        for path in ({str(classmate / "logreg.py")!r}, {str(out / "batch.json")!r}):
            try:
                open(path).read()
                print("READ", path)
            except OSError as e:
                print("DENIED", type(e).__name__)
        print("UID", os.getuid())
    """)
    report, checks, _ = grade(code, fresh=fresh)
    assert checks["gradcheck"].status == "pass"
    if not confined(report, "allow-listed root"):
        pytest.skip(f"no mount namespace here (best effort): {report.sandbox}")
    assert "READ" not in report.output and report.output.count("DENIED FileNotFoundError") == 2, report.output
    if os.geteuid() == 0:  # started as root: the student's code runs as nobody
        assert "UID 65534" in report.output and confined(report, "uid/gid 65534")
    probe = Cgroup(1)
    try:
        memory_cgroup = any((p / "memory.limit_in_bytes").exists() or (p / "memory.max").exists() for p in probe.paths)
    finally:
        probe.kill_all()
    if memory_cgroup:  # the runner's cgroup path reaches the child with its memory sibling
        assert confined(report, f"memory cgroup: {FAST.memory_bytes} bytes for the whole process tree"), report.sandbox


def test_the_fork_server_forks_from_a_single_thread(server):
    # fork() copies only the calling thread: a torch pool thread alive at fork time could leave a
    # lock held forever in every child
    assert len(os.listdir(f"/proc/{server._proc.pid}/task")) == 1


def test_a_link_to_the_reference_copies_nothing(grade, tmp_path, exercise, server):
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "logreg.py").symlink_to(REPO / "reference" / "exercise-1" / "logreg.py")
    report = assess(exercise, folder, checks=[exercise.check("gradcheck")], server=server, limits=FAST)
    if not confined(report, "hidden") and report.load_error is None:
        pytest.skip("no mount namespace here: a link to a readable reference works (best effort)")
    assert report.load_error is not None and report.checks[0].status == "error"


# --- faking results ---------------------------------------------------------------------------------

WRONG_SIGN = REFERENCE.replace("return -(torch.sigmoid(-u) * t) @ Xt", "return (torch.sigmoid(-u) * t) @ Xt")


def test_monkeypatching_torch_numpy_and_dldiy_comparisons_changes_no_verdict(grade):
    code = textwrap.dedent("""
        import numpy, torch, torch.testing
        import dldiy.graders.kinds.gradcheck, dldiy.graders.judge, dldiy.graders.verdict
        torch.allclose = numpy.allclose = lambda *a, **k: True
        torch.testing.assert_close = lambda *a, **k: None
        torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
        dldiy.graders.kinds.gradcheck.judge = lambda *a, **k: dldiy.graders.verdict.Verdict.passed("ok")
        dldiy.graders.judge.judge = lambda *a, **k: None
    """) + WRONG_SIGN
    report, checks, _ = grade(code, checks=("gradcheck", "first-loss"))
    assert checks["gradcheck"].status == "fail"  # judged in the parent, which never imported torch
    assert checks["first-loss"].status == "pass"  # train() runs with the grader's gradient: one bug, one deduction


def test_faking_the_measurements_with_public_values_fools_no_seed(grade, exercise, server):
    """A submission that patches the harness to return the recorded public expectations used to pass
    the public seed: the harness no longer runs in the student's process, so it fools none."""
    code = """
        import json, sys, pathlib
        public = json.loads(pathlib.Path(sys.modules["dldiy.graders.course.exercise"].EXERCISES_DIR,
                                         "exercise-1", "expected.json").read_text())["checks"]
        for name, module in list(sys.modules.items()):
            if name.startswith("_dldiy_harness_") or name.endswith("harness"):
                module.first_loss = lambda sub, seed, p: public["first-loss"]["1"]
        import torch
        def loss(X, y, w): return torch.tensor(0.0, dtype=X.dtype)
        def gradient(X, y, w): return torch.zeros_like(w)
        def train(X, y, w0, lr, steps): return w0, [0.0] * steps
    """
    expected, problems = measure_reference(exercise, REPO / "reference" / "exercise-1", seeds=(1, 7),
                                           server=server)
    assert not problems
    public_only, checks, _ = grade(code, checks=("first-loss",), expected=expected)
    assert checks["first-loss"].status == "fail"
    report, checks, _ = grade(code, checks=("first-loss",), hidden_seeds=(7,), expected=expected)
    assert checks["first-loss"].status == "fail"


def test_printing_imitation_result_lines_changes_nothing(grade):
    fake = {"type": "result", "check": "gradcheck", "seed": 1,
            "measurement": {"blocks": [{"name": "w", "analytic": [0.0], "numeric": [0.0]}]}}
    code = WRONG_SIGN + textwrap.dedent(f"""
        import sys, json
        for line in ({json.dumps({"type": "loaded", "skipped": []})!r}, {json.dumps(fake)!r}):
            print(line)
            print(line, file=sys.stderr)
    """)
    report, checks, _ = grade(code)
    assert '"type": "result"' in report.output  # it did print them ...
    assert checks["gradcheck"].status == "fail"  # ... on stdout, which is not the result channel


def test_returned_objects_whose_eq_is_always_true(grade):
    code = REFERENCE + textwrap.dedent("""
        class Liar(float):
            def __eq__(self, other): return True
            __hash__ = float.__hash__
        class Agreeable:
            def __eq__(self, other): return True
        def train(X, y, w0, lr, steps): return w0, [Liar(123.0)] * steps
        def loss(X, y, w): return Agreeable()
    """)
    report, checks, _ = grade(code, checks=("gradcheck", "first-loss"))
    assert checks["first-loss"].status == "fail"  # the numbers were compared in the parent
    # gradcheck differentiates the spec's loss (one bug, one deduction): the loss that is no number is noted there
    assert checks["gradcheck"].status == "pass" and "your loss() differs" in checks["gradcheck"].message


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')"])
def test_nan_and_inf(grade, value):
    code = REFERENCE + f"\ndef gradient(X, y, w):\n    return w * {value}\n"
    report, checks, _ = grade(code)
    assert checks["gradcheck"].status == "error"
    assert re.search(r"nan|inf|finite", checks["gradcheck"].message, re.I), checks["gradcheck"].message


def test_wrong_shapes(grade):
    code = REFERENCE + "\ndef gradient(X, y, w):\n    return w[:-1] * 0\n"
    report, checks, _ = grade(code)
    assert checks["gradcheck"].status == "error"
    assert "shape" in checks["gradcheck"].message


# --- strays, malformed files ----------------------------------------------------------------------------

def processes_with(token: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and token.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                found.append(int(name))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("fresh", [False, True], ids=["forkserver", "fresh-interpreter"])
def test_background_processes_are_killed_at_the_end(grade, fresh):
    token = f"dldiy-stray-{uuid.uuid4().hex}"
    code = with_reference(prefix=f"""
        import os, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "{token}"])
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "{token}"], start_new_session=True)
        if os.fork() == 0:                      # a double-forked daemon in its own session
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", "{token}"])
            os._exit(0)
    """)
    report, checks, _ = grade(code, fresh=fresh)
    assert checks["gradcheck"].status == "pass"
    deadline = time.monotonic() + 3
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token) == []


@pytest.mark.parametrize("content, name, expected", [
    ("def loss(X, y, w)\n    return 0\n", "logreg.py", "SyntaxError"),
    (b"\x00\xff\xfe garbage \x00", "logreg.py", "SyntaxError"),
    ('{"cells": [ this is not json', "logreg.ipynb", "not a readable notebook"),
])
def test_malformed_files(grade, content, name, expected):
    """A bad .py fails to load in the child; a notebook that is not JSON is refused before any child
    starts (locate() reads it): either way one line says what is wrong, and nothing crashes."""
    from dldiy.graders.sandbox.submission import SubmissionError

    try:
        report, checks, _ = grade(content, name=name)
    except SubmissionError as refused:
        assert name.endswith(".ipynb") and expected in str(refused) and "\n" not in str(refused)
        return
    assert report.load_error and expected in report.load_error, report.load_error
    assert checks["gradcheck"].status == "error"


def test_a_lone_file_is_graded_without_its_neighbours(exercise, server, tmp_path):
    """In a folder of per-student files, one student's child sees only its own file."""
    (tmp_path / "bob.py").write_text(REFERENCE)
    (tmp_path / "alice.py").write_text("import os\nprint('CWD HOLDS', sorted(os.listdir('.')))\n" + REFERENCE)
    report = assess(exercise, tmp_path / "alice.py", checks=[exercise.check("gradcheck")], server=server,
                    limits=FAST)
    assert "CWD HOLDS ['alice.py']" in report.output
    assert report.checks[0].status == "pass"


def test_no_harness_code_is_in_reach_at_import_nor_on_disk(grade, exercise):
    """Red team, round 5: the harness was loaded in the zygote, and a submission answered gradient() and
    loss() with the harness's own (sys.modules['_dldiy_harness_exercise_1']._spec_gradient) for 9.5 of 10.
    At import now: no harness module, no compiled harness code (the fork server's cache), no harness.py
    to read; gradcheck, which runs before any training loop lends the harness's gradient, fails."""
    code = """
        import gc, sys, pathlib
        import dldiy.graders.sandbox.submission as submission
        from dldiy.graders.sandbox.endpoint import Local
        gc.unfreeze()
        found = [n for n in sys.modules if n.startswith(("_dldiy_harness_", "_dldiy_local_"))]
        found += [f"compiled {k}" for k in submission._COMPILED] + [f"local {k}" for k in Local._modules]
        found += [f"function {f.__qualname__}" for f in gc.get_objects()
                  if type(f).__name__ == "function" and "harness" in f.__code__.co_filename]
        import dldiy
        try:
            readable = "_spec_gradient" in pathlib.Path(dldiy.__file__).resolve().parent.parent.joinpath(
                "exercises", "exercise-1", "harness.py").read_text()
        except OSError:
            readable = False
        for pyc in pathlib.Path(EXERCISE).glob("__pycache__/harness*.pyc"):  # a run without PYTHONDONTWRITEBYTECODE
            try:
                readable = readable or b"_spec_gradient" in pyc.read_bytes()
            except OSError:
                pass
        print("FOUND", found, "READABLE", readable)
        def _spec():
            for name, m in list(sys.modules.items()):
                if hasattr(m, "_spec_gradient"):
                    return m
            raise RuntimeError("no harness")
        def loss(X, y, w): return _spec()._spec_loss(X, y, w)
        def gradient(X, y, w): return _spec()._spec_gradient(X, y, w)
    """
    import importlib.util
    import py_compile

    harness = Path(exercise.folder) / "harness.py"
    py_compile.compile(str(harness), cfile=importlib.util.cache_from_source(str(harness)))  # bytecode beside it
    report, checks, _ = grade(code.replace("EXERCISE", repr(str(exercise.folder))))
    assert "FOUND [] READABLE" in report.output, report.output
    if confined(report, "hidden"):  # harness.py covered where there is a mount namespace
        assert "READABLE False" in report.output, report.output
    assert checks["gradcheck"].status in ("fail", "error"), checks["gradcheck"].message


def test_the_harness_code_a_training_loop_borrows_holds_no_loss_and_is_not_importable(grade):
    """Integrity round 7b: first-loss swaps the harness's gradient in for train()'s loop, and the whole harness
    file crossed with it: a loss() that answered with `_spec_loss` once it had arrived (`import
    _dldiy_local_0`, or endpoint.Local's cache) passed first-loss, which measures loss() through train()'s
    history, with a loss of its own that sums (9.5 of 9.5; honest: 6.5). Only the factory and what it
    reaches cross now, and the module leaves sys.modules once built."""
    code = with_reference(suffix="""
        import importlib
        _own_loss = loss

        def _harness():
            found = []
            for n in range(8):
                try:
                    found.append(importlib.import_module(f"_dldiy_local_{n}"))
                except ImportError:
                    pass
            from dldiy.graders.sandbox.endpoint import Local
            found += list(Local._modules.values())
            return [m for m in found if hasattr(m, "_spec_loss")]

        def loss(X, y, w):
            got = _harness()
            if got:
                print("USED THE HARNESS'S LOSS")
                return got[0]._spec_loss(X, y, w)
            return _own_loss(X, y, w) * len(X)  # sums instead of averaging
        """)
    report, checks, _ = grade(code, checks=("first-loss",))
    assert "USED THE HARNESS'S LOSS" not in report.output, report.output
    assert checks["first-loss"].status == "fail", checks["first-loss"].message


def test_a_stand_in_kept_by_the_submission_never_answers_a_later_check(grade):
    """Integrity round 7b: train() kept the gradient and loss the harness swapped in for its loop (plain
    names, no reflection), and gradient() and loss() answered with them from then on: the placement
    check, run after first-loss and convergence in the same process, passed with a bias column made on
    the CPU (0.5 point over the honest bug). A process that was handed a stand-in is retired after its
    task (child.serve_one): the next task's process never saw it."""
    bug = REFERENCE.replace("-torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)",
                            "-torch.ones(X.shape[0], 1, dtype=X.dtype)")
    assert bug != REFERENCE
    code = bug + textwrap.dedent("""
        _kept = {}
        _OWN = (loss, gradient, train)

        def loss(X, y, w):
            return _kept.get("loss", _OWN[0])(X, y, w)

        def gradient(X, y, w):
            if "gradient" in _kept:
                print("USED A KEPT STAND-IN")
            return _kept.get("gradient", _OWN[1])(X, y, w)

        def train(X, y, w0, lr, steps):
            if gradient is not _MINE[0]:  # the module's name, as the harness set it for this call
                _kept["gradient"] = gradient
            return _OWN[2](X, y, w0, lr, steps)

        _MINE = (gradient,)
        """)
    report, checks, _ = grade(code, checks=("first-loss", "placement"))
    assert checks["first-loss"].status == "pass", checks["first-loss"].message
    assert "USED A KEPT STAND-IN" not in report.output, report.output
    assert checks["placement"].status == "fail", checks["placement"].message


def test_tasks_are_measured_stand_ins_last_and_visible_before_hidden():
    """The order a submission's tasks are measured in (runner.in_stand_in_order): within the visible tasks and
    within the hidden ones, checks that hand the student's process no stand-in first, unseen checks next,
    those that do last (fewest names first), each check's seeds in their order; and never a hidden seed's
    task before a visible one, whatever the stand-ins (a visible message must not follow what the process
    saw at a hidden seed: judge.tasks_for)."""
    from dldiy.graders.sandbox import runner
    from dldiy.graders.sandbox.runner import Task, in_stand_in_order

    saved = dict(runner.STAND_INS)
    try:
        runner.STAND_INS.clear()
        runner.STAND_INS.update({("ex", "first-loss"): frozenset({"gradient"}),
                                 ("ex", "convergence"): frozenset({"gradient", "loss"}),
                                 ("ex", "stability"): frozenset(), ("ex", "gradcheck"): frozenset()})
        tasks = [Task(c, s) for s in (1, 7, 123) for c in ("gradcheck", "first-loss", "convergence", "stability",
                                                           "unseen")]
        tasks = sorted(tasks, key=lambda t: t.seed in (7, 123))  # as judge.tasks_for hands them over
        order = [(t.check, t.seed) for t in in_stand_in_order("ex", tasks, hidden=(7, 123))]
        assert order == [("gradcheck", 1), ("stability", 1), ("unseen", 1), ("first-loss", 1), ("convergence", 1),
                         ("gradcheck", 7), ("stability", 7), ("gradcheck", 123), ("stability", 123),
                         ("unseen", 7), ("unseen", 123), ("first-loss", 7), ("first-loss", 123),
                         ("convergence", 7), ("convergence", 123)]
    finally:
        runner.STAND_INS.clear()
        runner.STAND_INS.update(saved)
