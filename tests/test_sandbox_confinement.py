"""The confined child sees only what is the student's, runs unprivileged, writes to a capped tmpfs,
shares one memory limit with everything it starts, and a killed run's leftovers are cleaned.

Each test starts a real interpreter that calls `sandbox.confine(spec)` exactly as the grading child
does, then runs an attack; it prints what it got, and the test reads it. These need root (or
unprivileged user namespaces) and, for memory, a cgroup: where the machine gives neither, the test
says so and is skipped, never passed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO, run_dldiy
from dldiy.graders.sandbox import confine as sandbox
from dldiy.graders.sandbox.confine import MiB, Limits

DRIVER = """
import json, os, sys
spec, code = json.loads(sys.argv[1]), sys.argv[2]
from dldiy.graders.sandbox import confine as sandbox
state = sandbox.confine(spec)
print("SANDBOX " + json.dumps({"applied": state.applied, "missing": state.missing}), flush=True)
exec(code)
"""


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, work: Path):
        self.proc, self.work, self.out = proc, work, proc.stdout
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SANDBOX ")), None)
        report = json.loads(line[len("SANDBOX "):]) if line else {"applied": [], "missing": []}
        self.applied, self.missing = report["applied"], report["missing"]

    def has(self, what: str) -> bool:
        return any(what in line for line in self.applied)


@pytest.fixture
def confined(tmp_path):
    """confined(code, limits=..., expose=(), cgroup=True) -> Run: `code` runs after confine() in a fresh
    interpreter, with a one-file submission (logreg.py) as its working copy."""
    cleanups = []

    def run(code: str, limits: Limits | None = None, expose=(), cgroup: bool = True, timeout: float = 120,
            cpu: int | None = None) -> Run:
        limits = Limits() if limits is None else limits
        student = tmp_path / f"student-{uuid.uuid4().hex[:6]}"
        student.mkdir()
        (student / "logreg.py").write_text("OWN = 'mine'\n")
        work, _ = sandbox.workdir(student, student / "logreg.py")
        group = sandbox.Cgroup(limits.processes, cpu=cpu) if cgroup else None
        marker = sandbox.new_marker()
        cleanups.append((work, group, marker))
        spec = limits.spec(work, marker, group, expose=tuple(expose))
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(spec), textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
        result = Run(proc, work)
        result.oom_kills = group.oom_kills() if group is not None else 0
        if not result.has("allow-listed root"):
            pytest.skip(f"no mount namespace here (best effort): {result.missing} {proc.stderr[-2000:]}")
        return result

    yield run
    for work, group, marker in cleanups:
        if group is not None:
            group.kill_all()
        sandbox.sweep(marker)
        sandbox.remove_workdir(work)


def test_the_sandbox_shows_only_what_is_the_students(confined, tmp_path):
    neighbour = tmp_path / "classmate"
    neighbour.mkdir()
    (neighbour / "logreg.py").write_text("PASSING = True\n")
    planted = Path("/tmp") / f"dldiy-test-secret-{uuid.uuid4().hex}"
    planted.write_text("root only")
    planted.chmod(0o600)
    at_home = Path.home() / f"dldiy-test-notes-{uuid.uuid4().hex}"  # world-readable, in a home folder
    at_home.write_text("private notes")
    host_socket = socket.socket(socket.AF_UNIX)
    host_socket.bind(str(tmp_path / "host.sock"))
    host_socket.listen(1)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0dldiy-test-{uuid.uuid4().hex}")
    abstract.listen(1)
    attempts = {
        "checkout .git": f"open({str(REPO / '.git' / 'HEAD')!r}).read()",
        "reference/": f"os.listdir({str(REPO / 'reference')!r})",
        "buggy/": f"os.listdir({str(REPO / 'buggy')!r})",
        "tests/ of the checkout": f"os.listdir({str(REPO / 'tests')!r})",
        "the checkout's root": f"open({str(REPO / 'pyproject.toml')!r}).read()",
        "a classmate's folder": f"open({str(neighbour / 'logreg.py')!r}).read()",
        "beside the working copy": "[p for p in os.listdir(os.path.dirname(os.getcwd())) if p != 'work'] or 1/0",
        "a home folder": f"open({str(at_home)!r}).read()",
        "/home": "os.listdir('/home')",
        "a 0600 file in the host's /tmp": f"open({str(planted)!r}).read()",
        "a unix socket": f"socket.socket(socket.AF_UNIX).connect({str(tmp_path / 'host.sock')!r})",
        "an abstract unix socket": f"socket.socket(socket.AF_UNIX).connect({abstract.getsockname()!r})",
        "/run": "os.listdir('/run')",
        "/dev/loop0": "open('/dev/loop0', 'rb').read(1)",
        "/dev/vda or zram0": "[open(p, 'rb') for p in ('/dev/vda', '/dev/zram0') if os.path.exists(p)] or 1/0",
        "/sys": "os.listdir('/sys/fs/cgroup')",
        "equivalents.toml": ("import dldiy.graders.course.exercise as e; "
                             "open(e.EXERCISES_DIR / 'exercise-1' / 'equivalents.toml').read() or 1/0"),
    }
    code = "import os, socket, json\nout = {}\n"
    for name, attempt in attempts.items():
        code += f"try:\n    {attempt}\n    out[{name!r}] = 'READ'\nexcept Exception as e:\n    out[{name!r}] = type(e).__name__\n"
    code += textwrap.dedent("""
        import torch, torch.distributions                          # lazy submodule imports read site-packages
        out["torch"] = float(torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor(0.0)))
        out["own file"] = open("logreg.py").read()
        open("written.txt", "w").write("ok")                      # its working copy is writable
        out["devices"] = [len(open("/dev/urandom", "rb").read(8)), open("/dev/null", "w").write("x")]
        print("OUT " + json.dumps(out))
    """)
    try:
        run = confined(code)
    finally:
        planted.unlink()
        at_home.unlink()
        host_socket.close()
        abstract.close()
    out = json.loads(next(ln[4:] for ln in run.out.splitlines() if ln.startswith("OUT ")))
    leaked = {name: how for name, how in out.items() if how == "READ"}
    assert not leaked, f"readable from the sandbox: {leaked}"
    assert set(attempts) <= set(out)
    assert out["own file"] == "OWN = 'mine'\n" and out["devices"] == [8, 1] and abs(out["torch"] + 0.9189) < 1e-3
    assert run.has("allow-listed root (pivot_root") and run.has("instructor/hidden file")
    assert run.has("own /proc") and run.has("minimal /dev")
    assert not (run.work / "written.txt").exists()  # written to its tmpfs, not to the parent's copy


def test_system_v_ipc_made_inside_is_gone_with_it_and_never_on_the_host(confined):
    """No IPC namespace let a message queue or a 512 MB shared segment outlive the grade (a channel to the
    next student, memory held outside every cgroup): the sandbox now has its own."""
    key = 0x5EED0000 + os.getpid() % 0xFFFF
    run = confined(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        q = libc.msgget({key}, 0o1000 | 0o666)
        print('QUEUE', q >= 0)
    """)
    assert run.has("ipc namespace"), run.out
    assert "QUEUE True" in run.out, run.out + run.proc.stderr  # made, inside
    with open("/proc/sysvipc/msg") as host:
        assert f" {key} " not in host.read()


def test_kernel_keyrings_and_other_surfaces_are_refused_by_a_seccomp_filter(confined):
    """uid 65534's user keyring outlived a grade (red team A6: a key written by one submission was read by a
    later batch's): add_key, request_key and keyctl, and perf_event_open, userfaultfd, bpf and io_uring,
    answer EPERM; every other call (torch's included: the other tests) is allowed."""
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the filter's syscall numbers are x86_64's")
    run = confined("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        for name, nr, args in (("add_key", 248, (b"user", b"k", b"v", 1, -4)), ("keyctl", 250, (0, -4, 0)),
                               ("perf_event_open", 298, (0, 0, -1, -1, 0))):
            result = libc.syscall(nr, *args)
            print("CALL", name, result, ctypes.get_errno())
        print("GETPID", os.getpid() > 0)
    """)
    assert run.has("seccomp filter"), run.out
    for name in ("add_key", "keyctl", "perf_event_open"):
        assert f"CALL {name} -1 1" in run.out, run.out + run.proc.stderr  # EPERM
    assert "GETPID True" in run.out


def test_home_is_the_working_copy(confined):
    """What the student's code writes under ~ (a library's cache, a saved model) lands in its own working
    copy, whichever process forked it (the harness's process serves many students and keeps its own HOME)."""
    run = confined("print('HOME', os.path.expanduser('~') == os.getcwd(), os.path.expanduser('~'))")
    assert "HOME True" in run.out, run.out + run.proc.stderr


def test_it_runs_as_an_unprivileged_uid_that_cannot_read_root_only_files_even_if_exposed(confined, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("not root: the user namespace maps only the caller's uid")
    exposed = tmp_path / "exposed"
    exposed.mkdir()
    (exposed / "secret").write_text("root only")
    (exposed / "secret").chmod(0o600)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(exposed / "root.sock"))
    server.listen(1)
    os.chmod(exposed / "root.sock", 0o600)
    code = """
        import os, socket
        print("IDS", os.getuid(), os.geteuid(), os.getgid(), os.getgroups())
        print("LISTED", sorted(os.listdir(%r)))
        for what, attempt in (("file", lambda: open(%r).read()),
                              ("socket", lambda: socket.socket(socket.AF_UNIX).connect(%r)),
                              ("setuid", lambda: os.setuid(0))):
            try:
                attempt()
                print("GOT", what)
            except OSError as e:
                print("DENIED", what, type(e).__name__)
        open("mine.txt", "w").write("its working copy is its own")
        print("OWNER", os.stat("mine.txt").st_uid)
    """ % (str(exposed), str(exposed / "secret"), str(exposed / "root.sock"))
    try:
        run = confined(code, expose=(exposed,))
    finally:
        server.close()
    assert "IDS 65534 65534 65534 []" in run.out, run.out + run.proc.stderr
    assert "LISTED ['root.sock', 'secret']" in run.out  # exposed, yet out of reach:
    assert "DENIED file PermissionError" in run.out
    assert "DENIED socket PermissionError" in run.out
    assert "DENIED setuid PermissionError" in run.out
    assert "OWNER 65534" in run.out and "GOT" not in run.out
    assert run.has("uid/gid 65534")


def test_writing_a_gigabyte_through_the_working_copy_fills_its_tmpfs_not_the_disk(confined):
    code = """
        import errno, os
        written = 0
        try:
            for i in range(256):                  # 1 GiB in 4 MiB files (each under the file-size cap)
                with open(f"fill-{i}.bin", "wb") as f:
                    f.write(b"x" * (4 << 20))
                written += 4 << 20
        except OSError as e:
            print("STOPPED", errno.errorcode[e.errno], written >> 20)
        else:
            print("WROTE", written >> 20)
    """
    run = confined(code, limits=Limits(work_bytes=32 * MiB))
    assert "STOPPED ENOSPC" in run.out, run.out + run.proc.stderr
    assert int(run.out.split("STOPPED ENOSPC ")[1].split()[0]) <= 32
    assert sorted(p.name for p in run.work.iterdir()) == ["logreg.py"]  # the parent's copy is untouched
    assert run.has("working copy on its own tmpfs of 33554432 bytes")


SHARED_MAPPING = """
    import mmap
    size = 1 << 30
    m = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)   # not counted by RLIMIT_DATA
    for offset in range(0, size, 16 << 20):
        m[offset:offset + (16 << 20)] = b"x" * (16 << 20)
    print("TOUCHED all of it", flush=True)
"""
FORKED_TREE = """
    import os, time
    children = []
    for _ in range(3):                          # each far below the per-process RLIMIT_DATA
        pid = os.fork()
        if pid == 0:
            hoard = b"\\x01" * (220 << 20)
            time.sleep(1.5)                     # holds it while the others grow
            os._exit(0)
        children.append(pid)
    finished = sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0 for pid in children)
    print(f"FINISHED {finished} of 3", flush=True)
"""


@pytest.mark.parametrize("attack, done", [(SHARED_MAPPING, "TOUCHED all of it"), (FORKED_TREE, "FINISHED 3 of 3")],
                         ids=["1GiB-shared-mapping", "3-processes-of-220MiB"])
def test_one_memory_limit_holds_for_the_whole_tree_shared_memory_included(confined, attack, done):
    limits = Limits(memory_bytes=512 * MiB)
    run = confined(attack, limits=limits)
    if not run.has("memory cgroup"):
        pytest.skip(f"no memory cgroup on this machine (the fallback is per process): {run.missing}")
    assert done not in run.out, run.out
    assert run.proc.returncode != 0 or "FINISHED" in run.out  # the OOM killer stopped it (or one child)
    assert run.oom_kills >= 1  # what the parent reads to explain the SIGKILL
    # the same attack without the cgroup: the per-process fallback does not stop it, and says so
    fallback = confined(attack, limits=limits, cgroup=False)
    assert any("memory cgroup" in m and "RLIMIT_DATA per process" in m for m in fallback.missing)
    assert done in fallback.out, fallback.out + fallback.proc.stderr


RUNNER = """
import json, subprocess, sys, time
from pathlib import Path
from dldiy.graders.sandbox import confine as sandbox
src = Path(sys.argv[1])
work, entry = sandbox.workdir(src, src / "logreg.py")
group = sandbox.Cgroup(64)
spec = sandbox.Limits().spec(work, sandbox.new_marker(), group)
child = subprocess.Popen([sys.executable, "-c", sys.argv[2], json.dumps(spec), "import time; time.sleep(300)"],
                         start_new_session=True, stdout=subprocess.DEVNULL)
print(json.dumps({"work": str(work), "cgroups": [str(p) for p in group.paths], "child": child.pid}), flush=True)
time.sleep(300)
"""


def test_the_tree_stays_on_its_harness_cpu_whatever_affinity_it_asks_for(confined):
    """Red team, round 5: 61 processes, each in a session of its own and each widening its affinity to
    every CPU, starved the CPU where a classmate was graded (honest submissions timed out). In its
    cpuset, no process of the tree, forked or not, runs anywhere but the CPU its harness is pinned to;
    in its cpu cgroup the whole tree is scheduled as one."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: nowhere to escape to")
    run = confined("""
        import os
        every = set(range(os.cpu_count()))
        os.sched_setaffinity(0, every)
        print("AFFINITY", sorted(os.sched_getaffinity(0)), flush=True)
        pid = os.fork()
        if pid == 0:
            os.setsid()  # a session of its own: the kernel's autogroup would give it a share of its own
            os.sched_setaffinity(0, every)
            print("CHILD", sorted(os.sched_getaffinity(0)), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
    """, cpu=1)
    if not run.has("cpuset"):
        pytest.skip(f"no cpuset cgroup here: {run.missing}")
    assert "AFFINITY [1]" in run.out and "CHILD [1]" in run.out, run.out + run.proc.stderr
    assert run.has("cpu cgroup: the whole process tree scheduled as one")


DELEGATED = """
import json, os, sys
from pathlib import Path
Path(sys.argv[1], "cgroup.procs").write_text(str(os.getpid()))  # started in a delegated cgroup of its own
from dldiy.graders.sandbox import confine as sandbox
group = sandbox.Cgroup(64, cpu=0)
second = sandbox.Cgroup(64, cpu=0)  # the next student's: beside the first, not one level deeper
own = Path("/proc/self/cgroup").read_text().strip().split(":", 2)[2]
files = {name: (p / name).read_text().strip() for p in group.paths
         for name in ("pids.max", "cpu.max", "cpuset.cpus", "memory.max") if (p / name).exists()}
print(json.dumps({"paths": [str(p) for p in group.paths + second.paths], "own": own, "files": files}), flush=True)
group.kill_all()
second.kill_all()
"""


def _v2_own() -> Path | None:
    """A v2 cgroup whose children can have pids: this process's own (the root cgroup, or one
    delegated with no other process in it), else the nearest ancestor where the grader would put its
    children's (which enables them); else None."""
    mount = sandbox._cgroup2_mount()
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    own = next((ln.split(":", 2)[2] for ln in lines if ln.split(":")[1] == ""), None)
    if mount is None or own is None:
        return None
    path = mount / own.lstrip("/")
    if not sandbox._v2_root(path):
        # It holds this process: enabling pids here is no probe. The kernel lets a threaded controller
        # through where processes are, and every child made then is "domain invalid" (a process moved
        # into one: EOPNOTSUPP; the H100 run of 2026-11-27). A room beside it, as the grader finds.
        return sandbox._v2_beside(path)
    try:
        (path / "cgroup.subtree_control").write_text("+pids")
    except OSError:
        return None
    return path


@pytest.mark.parametrize("alone", [True, False], ids=["only-ours-inside", "shared-with-another-process"])
def test_a_delegated_v2_cgroup_hands_its_controllers_down_to_the_childrens(alone):
    """cgroup v2 (the GPU machines of 2026-11-27 have only v2): a v2 cgroup that holds processes cannot
    enable a controller for its children, so a grader started in a delegated cgroup (systemd-run
    --scope -p Delegate=yes, a container's cgroup) had no pids, memory or cpu limit for its students.
    It now moves its own processes into a leaf and enables them; a cgroup shared with a process that is
    not ours is left alone, and the children's cgroups go beside it (the GPU machine's case: every
    command runs in a cgroup beside the machine's agent)."""
    own = _v2_own()
    if own is None or "pids" not in (own / "cgroup.subtree_control").read_text().split():
        pytest.skip("no v2 cgroup here whose children can have pids (this machine's controllers are v1)")
    delegated = own / f"test-delegated-{uuid.uuid4().hex[:8]}"
    delegated.mkdir()
    for name in sandbox.V2_CONTROLLERS:  # what a delegation hands over, as far as we have it
        try:
            (own / "cgroup.subtree_control").write_text(f"+{name}")
        except OSError:
            pass
    other = None if alone else subprocess.Popen(["sleep", "60"])
    try:
        if other is not None:
            (delegated / "cgroup.procs").write_text(str(other.pid))
        done = subprocess.run([sys.executable, "-c", DELEGATED, str(delegated)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout)
        if alone:
            assert got["own"].endswith("-grader") and Path(got["own"]).parent.name == delegated.name, got
            assert [Path(p).parent for p in got["paths"]] == [delegated, delegated], got
            assert got["files"]["pids.max"] == "64", got
            offered = (own / "cgroup.subtree_control").read_text().split()
            if "cpu" in offered:
                quota, period = got["files"]["cpu.max"].split()
                assert quota == period, got  # one CPU per period
            if "cpuset" in offered:
                assert got["files"]["cpuset.cpus"] == "0", got
            if "memory" in offered:
                assert "memory.max" in got["files"], got
        else:  # another process in it: not ours to move; the children's cgroups go beside it, with their limits
            assert Path(got["own"]).name == delegated.name, got  # nothing moved
            assert [Path(p).parent for p in got["paths"]] == [own, own], got
            assert got["files"]["pids.max"] == "64", got
            assert (delegated / "cgroup.procs").read_text().split() == [str(other.pid)]
    finally:
        if other is not None:
            other.kill()
            other.wait()
        for _ in range(50):  # the dead grader's leaf, then the delegated cgroup (empty once its members left)
            try:
                for leaf in delegated.iterdir():
                    if leaf.is_dir():
                        leaf.rmdir()
                delegated.rmdir()
                break
            except OSError:
                time.sleep(0.02)
    assert not delegated.exists()


def _model_cgroup(path: Path, procs: list[int], root: bool = False, enabled: str = "") -> Path:
    """A folder with a v2 cgroup's interface files (this machine's controllers may all be v1)."""
    path.mkdir(parents=True)
    (path / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
    (path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (path / "cgroup.subtree_control").write_text(enabled)
    if not root:
        (path / "cgroup.type").write_text("domain\n")
    return path


def test_v2_controllers_are_never_enabled_where_processes_are_but_beside_them(tmp_path):
    """On the GPU machine of 2026-11-27, the grader's own v2 cgroup held the machine's agent too. The
    kernel let it enable pids, cpu and cpuset there (threaded controllers), and every child cgroup
    made then was "domain invalid": no student could join one (EOPNOTSUPP), and the batch ran with no
    cgroup at all. A cgroup that holds processes not ours is left alone, and the children's cgroups go
    to the nearest ancestor without processes; the root cgroup (exempt from the rule) is used as it is."""
    root = _model_cgroup(tmp_path / "root", procs=[os.getpid(), 1], root=True)
    parent = _model_cgroup(root / "process_api", procs=[], enabled="memory\n")
    own = _model_cgroup(parent / "command", procs=[1, os.getpid()])  # pid 1: not ours to move
    assert sandbox._v2_base(own) == parent
    assert (own / "cgroup.subtree_control").read_text() == ""  # untouched
    assert not any(p.name.startswith("dldiy-") for p in own.iterdir())  # nothing moved
    assert sandbox._v2_base(root) == root  # processes in the root are allowed
    crowded = _model_cgroup(tmp_path / "other" / "scope", procs=[1])
    (tmp_path / "other" / "cgroup.procs").write_text("1\n")  # an ancestor with processes is no room either
    (tmp_path / "other" / "cgroup.type").write_text("domain\n")
    assert sandbox._v2_base(crowded) is None


def test_the_graders_own_leaf_is_never_made_a_base_of_its_own(tmp_path):
    """On the H100 of 2026-11-27, in a delegated v2 cgroup: the first Cgroup() moved the grader into
    its leaf dldiy-OWNER-grader, and the next, reading /proc/self/cgroup again, took that leaf as the
    delegated cgroup and moved it one level deeper (every student's cgroup one level deeper than the
    one before). A leaf of that name is ours already: the base is the cgroup it was made in."""
    delegated = _model_cgroup(tmp_path / "delegated", procs=[], enabled="pids memory\n")
    leaf = _model_cgroup(delegated / f"dldiy-{sandbox._owner()}-{sandbox._V2_LEAF}", procs=[os.getpid()])
    assert sandbox._v2_base(leaf) == delegated
    assert not any(p.is_dir() for p in leaf.iterdir())  # nothing moved deeper


def test_a_killed_runs_working_copy_and_cgroups_are_removed_at_the_next_start(tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    (student / "logreg.py").write_text("SOLUTION = 'copied from the reference'\n")
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(student), DRIVER], stdout=subprocess.PIPE, text=True)
    try:
        left = json.loads(runner.stdout.readline())
        time.sleep(1.0)  # the child joins its cgroups and confines itself
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    folder = Path(left["work"]).parent
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700  # private even while left over
    if not left["cgroups"]:
        pytest.skip("no cgroup could be created here")
    assert all(Path(p).is_dir() for p in left["cgroups"])
    removed = sandbox.clean_stale()  # what the next batch does first
    assert str(folder) in removed and not folder.exists()
    assert set(left["cgroups"]) <= set(removed)
    assert not any(Path(p).exists() for p in left["cgroups"])  # its members were killed, then it went
    deadline = time.monotonic() + 3
    while _alive(left["child"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(left["child"])


def test_clean_stale_keeps_what_a_live_run_owns(tmp_path):
    work, _ = sandbox.workdir(tmp_path, tmp_path)
    group = sandbox.Cgroup(8)
    try:
        removed = sandbox.clean_stale()
        assert str(work.parent) not in removed and work.is_dir()
        assert not any(str(p) in removed for p in group.paths) and all(p.is_dir() for p in group.paths)
    finally:
        group.kill_all()
        sandbox.remove_workdir(work)


def test_leftovers_of_the_earlier_naming_go_once_older_than_any_run():
    old, young = (Path(tempfile.mkdtemp(prefix="dldiy-")) for _ in range(2))  # the earlier releases' names
    for folder in (old, young):
        (folder / "work").mkdir()
        (folder / "work" / "logreg.py").write_text("a copy of the reference\n")
    stale = time.time() - sandbox.LEGACY_AGE_S - 60
    os.utime(old, (stale, stale))
    try:
        removed = sandbox.clean_stale()
        assert str(old) in removed and not old.exists()
        assert str(young) not in removed and young.exists()
    finally:
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(young, ignore_errors=True)


def test_a_virtual_environment_under_tmp_keeps_working(tmp_path):
    """A venv (a CI's fresh clone) under /tmp, which the sandbox replaces by its own tmpfs: the
    interpreter still imports torch lazily from it after confine()."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = next((venv / "lib").glob("python3*/site-packages"))
    outer = [p for p in sys.path if p.endswith("site-packages")]  # torch and dldiy's editable finder
    (site / "outer.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in outer))
    student = tmp_path / "student"
    student.mkdir()
    (student / "logreg.py").write_text("")
    work, _ = sandbox.workdir(student, student / "logreg.py")
    marker = sandbox.new_marker()
    spec = Limits().spec(work, marker, None)
    code = "import sys, torch.distributions; print('PREFIX', sys.prefix, float(torch.ones(2).sum()))"
    try:
        proc = subprocess.run([str(venv / "bin" / "python"), "-c", DRIVER, json.dumps(spec), code],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    finally:
        sandbox.sweep(marker)
        sandbox.remove_workdir(work)
    assert f"PREFIX {venv} 2.0" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_without_a_cgroup_the_fallback_is_reported(confined):
    run = confined("print('ran')", cgroup=False)
    assert "ran" in run.out
    assert any(m.startswith("memory cgroup") for m in run.missing)
    assert any(m.startswith("pids cgroup") for m in run.missing)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"



def test_a_folder_others_cannot_enter_is_not_bound_whole_but_what_is_below_it_is(tmp_path, monkeypatch):
    """The grader's cwd is on sys.path; a pytest or mkdtemp cwd is 0700. Bound whole, it would hide a
    --target install below it from the dropped uid (a lazy `import dldiy.graders.sandbox.bridge` failed)."""
    from dldiy.graders.sandbox import mounts as sandbox_fs

    private = tmp_path / "private"
    (private / "site" / "pkg").mkdir(parents=True)
    private.chmod(0o700)
    paths, inner, root = sandbox_fs.trusted()
    monkeypatch.setattr(sandbox_fs, "trusted", lambda: ((*paths, str(private), str(private / "site")), inner, root))
    spec = {"hide": [], "workdir": str(tmp_path / "work"), "expose": []}
    chosen, _, _ = sandbox_fs.plan(spec, drop_uid=True)
    assert str(private) not in chosen and str(private / "site") in chosen
    chosen, _, _ = sandbox_fs.plan(spec, drop_uid=False)  # the caller's own uid can enter it: one bind
    assert str(private) in chosen and str(private / "site") not in chosen


STEAL = '''
import os, sys
COURSE = {course!r}
_binds = [line.split()[4] for line in open("/proc/self/mountinfo")]
_found = []
# every folder bound under /tmp (the model: red team's A01), walked; not the Python installation, which a
# fresh clone's CI has under /tmp too: walking torch's 20 000 files overran the 5 s load limit under load
_python = tuple(os.path.realpath(p) + "/" for p in (sys.prefix, sys.base_prefix))
for _root in _binds:
    if _root.startswith(("/tmp/", "/var/tmp/", "/dev/shm/")) and "dldiy-" not in _root \
            and not (_root + "/").startswith(_python):
        for _folder, _dirs, _files in os.walk(_root):
            _found += [os.path.join(_folder, f) for f in _files
                       if f in ("honest.py", "batch.json", "journal.jsonl", "results.json")]
for _path in (COURSE, COURSE + "/class/honest.py", COURSE + "/out/batch.json", COURSE + "/out/journal.jsonl"):
    if os.path.exists(_path):
        _found.append(_path)
print("A01 FOUND", sorted(set(_found)), "MOUNTS", [b for b in _binds if COURSE in b], flush=True)
'''


def test_a_grade_run_from_the_class_folder_exposes_neither_the_class_nor_the_output(tmp_path):
    """Red team A01: `python -m dldiy.cli grade` run from a folder holding the class and OUT (and that
    folder on PYTHONPATH) put it on sys.path, and the sandbox bound it read-only: a submission ran a
    classmate's file and read OUT/batch.json (the hidden seeds). Only the interpreter's installation,
    site-packages and dldiy's folders are exposed; the grader's cwd, and any folder holding the class
    or OUT, are refused, and the sandbox lines say so."""
    from conftest import run_dldiy

    course = tmp_path / "course"
    (course / "class").mkdir(parents=True)
    course.chmod(0o755)  # enterable by the sandbox's uid: nothing but the refusal keeps it out
    reference = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
    (course / "class" / "honest.py").write_text(reference)
    (course / "class" / "thief.py").write_text(STEAL.format(course=str(course)) + reference)
    # The course first; what was on the path stays (a machine where dldiy runs from its checkout).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(course), os.environ.get("PYTHONPATH")]))}
    result = run_dldiy("grade", "exercise-1", "class", "--out", "out", "--hidden-seeds", "7",
                       "--only", "first-loss", "--jobs", "2", cwd=course, env=env)
    assert result.returncode == 0, result.stderr
    records = {r["student"]: r for r in map(json.loads, (course / "out" / "journal.jsonl").read_text().splitlines())}
    thief = records["thief"]
    assert "A01 FOUND [] MOUNTS []" in thief["output"], json.dumps(thief)[:3000]
    assert thief["score"] == records["honest"]["score"] > 0, json.dumps(thief)[:3000]
    refusal = next((line for line in thief["sandbox"] if line.startswith("not exposed")), "")
    assert str(course) in refusal, thief["sandbox"]  # the PYTHONPATH entry, refused and said so


def test_a_death_says_what_killed_it_the_memory_limit_or_an_exit_code_the_program_chose(write_submission):
    """Red team A17/A22: a memory cgroup's kill and a program's own os._exit(137) were both reported as
    "killed by SIGKILL: most likely its CPU-time limit". The memory cgroup's own count says the first;
    a status over 128 says it may be the program's own code."""
    reference = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
    # shared anonymous memory: past RLIMIT_DATA (private memory only), so the memory cgroup is what kills
    hog = write_submission(reference.replace("def gradient(X, y, w):\n", "def gradient(X, y, w):\n"
                                             "    import mmap\n    m = mmap.mmap(-1, 3 << 30)\n"
                                             "    for i in range(0, len(m), 4096):\n        m[i] = 1\n", 1))
    chosen = write_submission(reference.replace("def gradient(X, y, w):\n", "def gradient(X, y, w):\n"
                                                "    import os\n    os._exit(137)\n", 1))
    probe = sandbox.Cgroup(8)  # where no memory cgroup can be made, nothing kills the hog (and that is reported)
    has_memory = any(sandbox._memory_files(p) for p in probe.paths)
    probe.kill_all()
    cases = [(hog, "killed by its memory limit")] if has_memory else []
    for path, said in cases + [(chosen, "exit status 137, which is 128 + SIGKILL")]:
        done = run_dldiy("check", "exercise-1", str(path), "--only", "gradcheck", "--memory", "768MiB", "--json")
        report = json.loads(done.stdout)
        message = report["checks"][0]["message"]
        assert report["checks"][0]["status"] == "error" and said in message, message
        if path is hog:
            assert "CPU-time" not in message
    if not has_memory:
        pytest.skip("no memory cgroup here: only the exit status the program chose was tested")


def test_a_submission_larger_than_its_working_copy_is_said_before_anything_is_copied(tmp_path):
    """A folder holding a 300 MB dataset beside the code (sparse here: st_size is what is measured) was copied to the
    parent's disk and the child, out of room in its 256 MiB tmpfs, exited (70) "while loading" with no reason given.
    It is now that student's load error, in words, naming the largest file, and no working copy is made; a folder
    that fits is measured as it was."""
    folder = tmp_path / "student"
    folder.mkdir()
    shutil.copy(REPO / "reference" / "exercise-1" / "logreg.py", folder / "logreg.py")
    with open(folder / "digits.bin", "wb") as f:
        f.truncate(300 * MiB)
    assert sandbox.oversized(folder, folder / "logreg.py", 256 * MiB) is not None
    assert sandbox.oversized(folder, folder / "logreg.py", 512 * MiB) is None
    assert sandbox.oversized(folder, folder / "logreg.py", 256 * MiB).startswith("the submission holds more than 256 MiB")
    result = run_dldiy("check", "exercise-1", str(folder))
    said = result.stdout + result.stderr
    assert "holds more than 256 MiB" in said and "digits.bin (300 MiB)" in said, said
    assert "exited" not in said, said
