"""Confinement of a submission's child: resource limits, namespaces, a private working copy.

Two halves. The parent (trusted) prepares: `workdir()` copies the submission into a fresh temporary
folder (links kept as links, so a link to reference/ copies nothing), `Cgroup` caps the process
count, `sweep()` kills whatever is left at the end. The child applies `confine(spec)` to itself
before it executes a line of student code:

* rlimits: CPU seconds (SIGKILL at the limit), data size (a memory bomb gets MemoryError),
  file size, no core dumps, and when not root the process count (RLIMIT_NPROC counts every process
  of the real uid, so the cap is "what this uid runs now + `processes`"; root is exempt from it by
  the kernel, hence the cgroup);
* namespaces, where the OS allows (root, or unprivileged user namespaces): a new network namespace
  (loopback only, down: no network), a new PID namespace (the child is its init: when it dies the
  kernel kills everything it started, setsid() or not), and a new mount namespace where reference/,
  buggy/ and any `hide` path are covered by empty read-only mounts, the whole tree is read-only, and
  /tmp, /var/tmp, /dev/shm are fresh small tmpfs: only the working copy is writable;
* no capabilities left (bounding set emptied, no_new_privs), so it cannot undo any of this.

Each step is best effort and reported: `confine` returns the list of what applied, which the child
sends to the parent ("sandbox" in the loaded message).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

GiB, MiB = 1 << 30, 1 << 20
MARKER_VAR = "DLDIY_SANDBOX"  # every child carries a unique value: sweep() finds strays by it


@dataclass(frozen=True)
class Limits:
    """What one submission's child may use. Wall-clock timeouts are per check, in the spec."""

    cpu_s: int = 120  # CPU seconds for the whole child (every check together)
    # RLIMIT_DATA: heap and private writable mappings, what a memory bomb grows. Not RLIMIT_AS: that
    # also counts code, shared libraries and reservations (torch's import alone maps ~0.65 GiB of
    # address space for 0.25 GiB of data; CUDA reserves tens of GiB it never touches). 4 GiB leaves
    # room for real work and stops a bomb long before the machine swaps. None: no cap.
    memory_bytes: int | None = 4 * GiB
    processes: int = 64  # processes and threads, the child included
    file_bytes: int = 64 * MiB  # largest file it may write
    tmp_bytes: int = 64 * MiB  # size of its private /tmp
    output_bytes: int = 64 * 1024  # stdout+stderr kept; the rest is drained and dropped
    startup_s: float = 60.0  # wall clock to start and execute the submission once
    network: bool = False
    hide: tuple[str, ...] = ()  # extra paths the child must not see (e.g. cached hidden-seed expectations)
    namespaces: bool = True  # False: rlimits only (what a non-Linux machine gets anyway)

    def spec(self, workdir: Path, marker: str, cgroup: str | None, expose: tuple[Path, ...] = ()) -> dict:
        """The plain dict the child needs (it travels in the JSON request); `expose`: folders it must
        still read even if they sit under /tmp (the exercise's)."""
        return dict(asdict(self), hide=[str(p) for p in (*default_hidden(), *self.hide)], workdir=str(workdir),
                    marker=marker, cgroup=cgroup, expose=[str(p) for p in expose])


def default_hidden() -> list[Path]:
    """The course's reference/ and buggy/ folders, when this checkout has them."""
    try:
        from .course import course_root

        root = course_root()
    except Exception:  # noqa: BLE001 - an installed wheel has no reference/: nothing to hide
        return []
    return [p for p in (root / "reference", root / "buggy") if p.exists()]


# ---------------------------------------------------------------------------------------------------
# Parent side


def new_marker() -> str:
    return uuid.uuid4().hex


def workdir(root: Path, entry: Path) -> tuple[Path, Path]:
    """Copy the submission (`root`: its folder, or the file itself) into a fresh temporary folder.
    Returns (folder, entry inside it). Symbolic links stay links: the trusted parent never follows
    one, so a link to the reference copies a dangling name, not the reference."""
    root, entry = Path(root).absolute(), Path(entry).absolute()
    folder = Path(tempfile.mkdtemp(prefix="dldiy-"))
    os.chmod(folder, 0o755)
    if root.is_dir() and entry.is_relative_to(root):
        shutil.copytree(root, folder / "work", symlinks=True)
        return folder / "work", folder / "work" / entry.relative_to(root)
    (folder / "work").mkdir()
    shutil.copy2(entry, folder / "work" / entry.name, follow_symlinks=False)
    return folder / "work", folder / "work" / entry.name


def remove_workdir(work: Path) -> None:
    shutil.rmtree(Path(work).parent, ignore_errors=True)


class Cgroup:
    """A pids cgroup of its own (v1 `pids` hierarchy or v2), when this process may create one.
    It caps processes even for root, and lists every member for the final kill."""

    def __init__(self, processes: int):
        self.path: Path | None = None
        for base in _cgroup_bases():
            path = base / f"dldiy-{uuid.uuid4().hex[:12]}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(processes))
                self.path = path
                return
            except OSError:
                try:
                    path.rmdir()
                except OSError:
                    pass

    def kill_all(self) -> None:
        """Kill every member; remove the cgroup once they are gone (in the background: exiting
        processes leave it a few milliseconds after SIGKILL, no need to wait for that)."""
        if self.path is None:
            return
        path, self.path = self.path, None
        if not _kill_members(path):
            _PENDING.add(path)
            threading.Thread(target=_remove_later, args=(path,), daemon=True).start()


def _kill_members(path: Path) -> bool:
    """SIGKILL every process in the cgroup at `path`, then try to remove it; True once removed."""
    try:
        for pid in (path / "cgroup.procs").read_text().split():
            _kill(int(pid))
        path.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


_PENDING: set[Path] = set()  # cgroups whose members were still exiting


def _remove_later(path: Path, tries: int = 100) -> None:
    for _ in range(tries):
        time.sleep(0.02)
        if _kill_members(path):
            _PENDING.discard(path)
            return


@atexit.register
def _remove_pending() -> None:
    """A process that exits right after its last grade must not leave empty cgroups behind."""
    deadline = time.monotonic() + 2
    while _PENDING and time.monotonic() < deadline:
        for path in list(_PENDING):
            if _kill_members(path):
                _PENDING.discard(path)
        time.sleep(0.02)


def _cgroup_bases() -> list[Path]:
    bases = [Path("/sys/fs/cgroup/pids")]  # v1
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
                bases.append(own)  # v2: a child of our own cgroup, when delegated to us
    except OSError:
        pass
    return [b for b in bases if (b / "cgroup.procs").exists()]


def sweep(marker: str) -> int:
    """Kill every process of ours whose environment carries `marker` (a stray that left the process
    group with setsid() when no PID namespace was available). Returns how many."""
    needle = f"{MARKER_VAR}={marker}".encode()
    killed = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read():
                    killed += _kill(int(name))
        except OSError:
            continue
    return killed


def _kill(pid: int) -> int:
    try:
        os.kill(pid, signal.SIGKILL)
        return 1
    except OSError:
        return 0


# ---------------------------------------------------------------------------------------------------
# Child side

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
SYS_MOUNT_SETATTR, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, 0x8000, 1


@dataclass
class Confined:
    applied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def confine(spec: dict, report_exit=None) -> Confined:
    """Apply `spec` (Limits.spec) to this process. With a PID namespace this forks: the caller
    continues as the namespace's init, while the original process waits, calls
    `report_exit(code)` and exits with the same code."""
    state = Confined()
    os.environ[MARKER_VAR] = spec["marker"]
    _join_cgroup(spec.get("cgroup"), state)
    nproc_cap = _nproc_cap(spec["processes"]) if hasattr(os, "geteuid") and os.geteuid() != 0 else None
    if spec.get("namespaces", True) and _libc() is not None:
        _namespaces(spec, state, report_exit)
    _rlimits(spec, nproc_cap, state)
    _drop_privileges(state)
    os.chdir(spec["workdir"])
    return state


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    except OSError:
        return None


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _join_cgroup(path: str | None, state: Confined) -> None:
    if not path:
        state.missing.append("cgroup (none could be created: RLIMIT_NPROC only, when not root)")
        return
    try:
        Path(path, "cgroup.procs").write_text(str(os.getpid()))
        state.applied.append(f"cgroup pids.max={Path(path, 'pids.max').read_text().strip()}")
    except OSError as e:
        state.missing.append(f"cgroup ({e.strerror})")


def _nproc_cap(processes: int) -> int | None:
    """RLIMIT_NPROC counts all processes and threads of the real uid: allow `processes` more
    (None where /proc cannot tell how many it runs now)."""
    if not os.path.isdir("/proc/self/task"):
        return None
    uid, used = os.getuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    used += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return used + processes


def _namespaces(spec: dict, state: Confined, report_exit) -> None:
    libc = _libc()
    flags = CLONE_NEWNS | CLONE_NEWPID | (0 if spec["network"] else CLONE_NEWNET)
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        state.missing.append(f"namespaces ({os.strerror(ctypes.get_errno())}): network, mounts and strays "
                             "are best effort (process group kill and marker sweep)")
        return
    if flags & CLONE_NEWUSER:  # be root inside, mapped to ourselves outside
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    _become_init(report_exit)
    state.applied.append("pid namespace (its init: everything it starts dies with it)")
    if not spec["network"]:
        state.applied.append("network namespace (no network)")
    try:
        _mounts(libc, spec, state)
    except OSError as e:
        state.missing.append(f"mount confinement ({e})")


def _become_init(report_exit) -> None:
    """Fork into the new PID namespace; the original process only relays the exit status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    if report_exit is not None:
        try:
            report_exit(code)
        except Exception:  # noqa: BLE001 - the parent stopped listening
            pass
    os._exit(code if code >= 0 else 128 - code)


def _mounts(libc, spec: dict, state: Confined) -> None:
    def mount(source, target, fstype, flags, data=None):
        _check(libc.mount(source and source.encode(), str(target).encode(), fstype and fstype.encode(),
                          ctypes.c_ulong(flags), data and data.encode()), f"mount {target}")

    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do here leaks to the host
    work = spec["workdir"]
    work_fd = os.open(work, os.O_PATH | os.O_DIRECTORY)
    # trusted folders the child reads (the exercise's harness and spec) may sit under /tmp too
    # (outermost first, and none inside another: binding a parent after its child was re-created
    # inside the fresh tmpfs would find the path existing and skip it)
    outermost = []
    for p in sorted(spec.get("expose", []), key=len):
        if os.path.exists(p) and not any(p == q or p.startswith(q.rstrip("/") + "/") for q in outermost):
            outermost.append(p)
    exposed = [(p, os.open(p, os.O_PATH)) for p in outermost]
    hidden = 0
    for path in spec["hide"]:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555")
            hidden += 1
        elif os.path.exists(path):
            mount("/dev/null", path, None, MS_BIND)
            hidden += 1
    state.applied.append(f"{hidden} path(s) hidden (reference/, buggy/, ...)")
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        state.applied.append("own /proc (the host's processes are invisible)")
    except OSError as e:
        state.missing.append(f"own /proc ({e.strerror})")
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if libc.syscall(SYS_MOUNT_SETATTR, -100, b"/", AT_RECURSIVE, attr, ctypes.sizeof(attr)) == 0:
        state.applied.append("read-only file system except its working copy and a private /tmp")
        for tmp in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(tmp):
                mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmp_bytes']},mode=1777")
        for path, fd in exposed:
            if not os.path.exists(path):  # it was under one of those fresh tmpfs
                os.makedirs(path, exist_ok=True)
                mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.makedirs(work, exist_ok=True)
        mount(f"/proc/self/fd/{work_fd}", work, None, MS_BIND)
        mount(None, work, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
    else:
        state.missing.append(f"read-only file system (mount_setattr: {os.strerror(ctypes.get_errno())})")
    for _, fd in [(work, work_fd), *exposed]:
        os.close(fd)


def _rlimits(spec: dict, nproc_cap: int | None, state: Confined) -> None:
    try:
        import resource
    except ImportError:
        state.missing.append("rlimits (no resource module)")
        return
    # soft == hard: SIGKILL at the limit (a PID namespace's init ignores SIGXCPU's default action)
    wanted = [("RLIMIT_CPU", spec["cpu_s"], spec["cpu_s"]), ("RLIMIT_CORE", 0, 0),
              ("RLIMIT_FSIZE", spec["file_bytes"], spec["file_bytes"])]
    if spec["memory_bytes"]:
        wanted.append(("RLIMIT_DATA", spec["memory_bytes"], spec["memory_bytes"]))
    if nproc_cap is not None:
        wanted.append(("RLIMIT_NPROC", nproc_cap, nproc_cap))
    for name, soft, hard in wanted:
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
            state.applied.append(f"{name}={soft}")
        except (ValueError, OSError, AttributeError) as e:
            state.missing.append(f"{name} ({e})")


def _drop_privileges(state: Confined) -> None:
    """Empty the capability bounding set and forbid regaining privileges (setuid binaries, exec as
    root): what confine() set up cannot be undone by the code that runs next."""
    libc = _libc()
    if libc is None:
        return
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = 40
    dropped = all(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0 for cap in range(last + 1))
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # capset(version 3, this process) with every set empty
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) == 0 and (dropped or os.geteuid() != 0):
        state.applied.append("no capabilities, no_new_privs")
    else:
        state.missing.append("capability drop (not permitted here)")
