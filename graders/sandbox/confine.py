"""Confinement of a submission's child: resource limits, namespaces, a root that holds only its own.

Two halves. The parent (trusted) prepares: `workdir()` copies the submission into a private (0700)
temporary folder (links kept as links, special files skipped, so a link to reference/ copies
nothing), `Cgroup` makes a pids and a memory cgroup, `sweep()` kills whatever is left at the end,
and `clean_stale()` removes the working copies and cgroups a killed run left behind (their names
carry the owner's pid and start time, so a dead owner is told from a live one). The child applies
`confine(spec)` to itself before it executes a line of student code:

* cgroups: pids.max (caps processes even for root) and one memory limit for the whole process
  tree, shared memory and tmpfs pages included (v1 memory.limit_in_bytes + memsw, or v2 memory.max
  + memory.swap.max=0), and the whole tree scheduled as one process of one CPU at most, on its
  harness's CPU (v1 cpu + cpuset, or v2 cpu.max + cpuset.cpus). Without a memory cgroup the fallback
  is RLIMIT_DATA per process, reported as missing: a tree of processes or a shared mapping can then
  exceed it;
* rlimits: CPU seconds (SIGKILL at the limit), data size per process (a single memory bomb gets a
  MemoryError before the cgroup's OOM killer), file size, no core dumps, and when not root the
  process count (RLIMIT_NPROC);
* namespaces, where the OS allows (root, or unprivileged user namespaces): network (loopback only,
  down), PID (the child is its init: when it dies everything it started dies), and mount: an
  allow-listed root built by graders/sandbox/mounts.py (system folders, the Python installation, dldiy's
  package folders without instructor files, the exercise, a minimal /dev, its own /proc, private
  /tmp, the working copy on a size-capped tmpfs), made the root by pivot_root;
* an unprivileged uid (65534) when started as root, no capabilities (bounding set emptied,
  no_new_privs): root-only files and sockets are out of reach even if exposed, and nothing of this
  can be undone. Under a user namespace (not root) the caller's own uid is the only one mapped.

Each step is best effort and reported: `confine` returns what applied and what is missing, which
the child sends to the parent ("sandbox" in the loaded message).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import stat
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import mounts as sandbox_fs
from .mounts import NOBODY, Root

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
    tmp_bytes: int = 64 * MiB  # size of each private tmpfs: /tmp, /var/tmp, /dev/shm
    work_bytes: int = 256 * MiB  # size of the tmpfs holding its working copy (its own files included)
    output_bytes: int = 64 * 1024  # stdout+stderr kept; the rest is drained and dropped
    startup_s: float = 60.0  # wall clock to start and execute the submission once
    network: bool = False
    hide: tuple[str, ...] = ()  # extra paths the child must not see (e.g. cached hidden-seed expectations)
    namespaces: bool = True  # False: rlimits only (what a non-Linux machine gets anyway)

    def spec(self, workdir: Path, marker: str, cgroup: "str | Cgroup | None",
             expose: tuple[Path, ...] = ()) -> dict:
        """The plain dict the child needs (it travels in the JSON request). `cgroup`: a `Cgroup` or
        its `path` (its memory sibling is found from it); `expose`: folders besides the Python
        installation and dldiy's packages it must read (the exercise's), bound read-only."""
        paths = cgroup.paths if isinstance(cgroup, Cgroup) else _GROUPS.get(str(cgroup), [cgroup] if cgroup else [])
        return dict(asdict(self), hide=[str(p) for p in (*default_hidden(), *self.hide)], workdir=str(workdir),
                    marker=marker, cgroup=str(paths[0]) if paths else None, cgroups=[str(p) for p in paths],
                    expose=[str(p) for p in expose])


def default_hidden() -> list[Path]:
    """The course's reference/, buggy/ and alternatives/ folders (solutions all), when this checkout has them."""
    try:
        from ..course.folders import course_root

        root = course_root()
    except Exception:  # noqa: BLE001 - an installed wheel has no reference/: nothing to hide
        return []
    return [p for p in (root / "reference", root / "buggy", root / "alternatives") if p.exists()]


# ---------------------------------------------------------------------------------------------------
# Parent side


def new_marker() -> str:
    return uuid.uuid4().hex


def workdir(root: Path, entry: Path) -> tuple[Path, Path]:
    """Copy the submission (`root`: its folder, or the file itself) into a fresh private (0700)
    temporary folder, named after this process so that `clean_stale` can remove it if we are
    killed. Returns (folder, entry inside it). Symbolic links stay links: the trusted parent never
    follows one, so a link to the reference copies a dangling name, not the reference; a FIFO or a
    device node is skipped (reading one would block or read the device)."""
    clean_stale_once()
    root, entry = Path(root).absolute(), Path(entry).absolute()
    folder = Path(tempfile.mkdtemp(prefix=f"dldiy-{_owner()}-"))  # 0700: other users see nothing
    if root.is_dir() and entry.is_relative_to(root):
        shutil.copytree(root, folder / "work", symlinks=True, copy_function=_copy_regular)
        return folder / "work", folder / "work" / entry.relative_to(root)
    (folder / "work").mkdir()
    _copy_regular(entry, folder / "work" / entry.name)
    return folder / "work", folder / "work" / entry.name


PAGE = 4096  # a tmpfs holds a file in whole pages
WORK_INODES = 60_000  # of the working copy's tmpfs's 65536 (graders/sandbox/mounts.py), some left for what it writes


def oversized(root: Path, entry: Path, limit_bytes: int) -> str | None:
    """Why the submission at `root` (its folder, or the file `entry` alone, as `workdir` copies it) cannot fit the
    working copy's tmpfs of `limit_bytes`, measured before anything is copied (links not followed, a FIFO or a
    device skipped, as `workdir` does), or None. Without it, a folder holding a dataset or a checkpoint was copied
    to the parent's disk in full and the child, out of room while filling its tmpfs, exited (70) before it could
    say why: "the process exited while loading" (session 17's open item)."""
    root, entry = Path(root).absolute(), Path(entry).absolute()
    used = files = 0
    largest: list[tuple[int, str]] = []
    stack = [root] if root.is_dir() and entry.is_relative_to(root) else []
    if not stack:
        used = -(-os.lstat(entry).st_size // PAGE) * PAGE
    while stack:
        folder = stack.pop()
        try:
            listing = list(os.scandir(folder))
        except OSError:
            continue
        for item in listing:
            files += 1
            try:
                mode = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(mode.st_mode):
                stack.append(Path(item.path))
            elif stat.S_ISREG(mode.st_mode):
                used += -(-mode.st_size // PAGE) * PAGE
                largest = sorted([*largest, (mode.st_size, os.path.relpath(item.path, root))])[-3:]
        if used > limit_bytes or files > WORK_INODES:
            break
    if files > WORK_INODES:
        return (f"the submission folder holds more than {WORK_INODES} files and folders, more than its working copy "
                "can: hand in the code and the few files it reads (not a dataset, a virtual environment or a cache)")
    if used <= limit_bytes:
        return None
    biggest = ", ".join(f"{name} ({size / MiB:.0f} MiB)" for size, name in reversed(largest) if size >= MiB)
    return (f"the submission holds more than {limit_bytes / MiB:.0f} MiB, what its working copy can hold"
            + (f" (the largest: {biggest})" if biggest else "")
            + ": hand in the code and the small files it reads, not datasets, checkpoints or environments")


def _copy_regular(source, target) -> None:
    mode = os.lstat(source).st_mode
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        shutil.copy2(source, target, follow_symlinks=False)


def remove_workdir(work: Path) -> None:
    shutil.rmtree(Path(work).parent, ignore_errors=True)


class Cgroup:
    """The child's cgroups, where this process may create them: a pids cgroup (caps processes even
    for root), a memory cgroup (one limit for the whole tree; the child sets it from its spec), a cpu
    cgroup (the whole tree is one scheduling entity, of one CPU at most) and a cpuset on `cpu` (the
    CPU its harness is pinned to), each a child of this process's own cgroup in its hierarchy (v1),
    or one v2 cgroup with the same four limits (`_v2_base`: where our own v2 cgroup holds other
    processes of ours, we first move them into a leaf, as a delegated subtree must). They list every
    member for the final kill. Their names carry this process's pid and start time.

    The cpu and cpuset groups are there for the classmates graded beside it (red team, round 5): a
    submission that forked 61 processes, each in a session of its own (the kernel's autogroup gives
    each session a share of its own) and each widening its own affinity (a plain sched_setaffinity:
    the harness's pinning is no limit) starved the other CPU, and honest classmates timed out at 40 s
    on checks that take 2. In its cpu group the tree weighs as one process and gets one CPU at most;
    in its cpuset no affinity reaches another CPU."""

    def __init__(self, processes: int, cpu: int | None = None):
        clean_stale_once()
        self.paths: list[Path] = []
        name = f"dldiy-{_owner()}-{uuid.uuid4().hex[:8]}"
        for base, control in _cgroup_bases():
            path = base / name
            try:
                path.mkdir()
                if control == "v2":
                    _limit_v2(path, processes, cpu)
                elif control in ("cpu", "cpuset"):
                    _limit_cpu(path, control, cpu)
                elif (path / "pids.max").exists():
                    (path / "pids.max").write_text(str(processes))
                elif not _memory_files(path):
                    raise OSError("neither a pids nor a memory controller here")
                self.paths.append(path)
            except OSError:
                try:
                    path.rmdir()
                except OSError:
                    pass
        self.path: Path | None = self.paths[0] if self.paths else None
        if self.path is not None:
            _GROUPS[str(self.path)] = list(self.paths)

    def oom_kills(self) -> int:
        """How many of its processes the memory cgroup's limit has killed so far: oom_kills()."""
        return oom_kills(self.paths)

    def kill_all(self) -> None:
        """Kill every member; remove the cgroups once they are gone (in the background: exiting
        processes leave them a few milliseconds after SIGKILL, no need to wait for that)."""
        paths, self.paths, self.path = self.paths, [], None
        if paths:
            _GROUPS.pop(str(paths[0]), None)
        for path in paths:
            if not _kill_members(path):
                _PENDING.add(path)
                threading.Thread(target=_remove_later, args=(path,), daemon=True).start()


def _limit_cpu(path: Path, control: str, cpu: int | None) -> None:
    """A v1 cpu cgroup: CFS quota of one CPU per period; a v1 cpuset: `cpu` alone (None: its parent's
    CPUs), on its parent's memory nodes (a cpuset takes no task before both are set)."""
    if control == "cpu":
        period = int((path / "cpu.cfs_period_us").read_text())
        (path / "cpu.cfs_quota_us").write_text(str(period))
        return
    parent = path.parent
    cpus = str(cpu) if cpu is not None else (parent / "cpuset.effective_cpus").read_text().strip()
    (path / "cpuset.cpus").write_text(cpus)
    (path / "cpuset.mems").write_text((parent / "cpuset.effective_mems").read_text().strip())


def _limit_v2(path: Path, processes: int, cpu: int | None) -> None:
    """A v2 cgroup: pids.max, cpu.max of one CPU per period and cpuset.cpus = `cpu`, as far as its
    parent enabled them (the memory limit is the child's to set: join_cgroups)."""
    if (path / "pids.max").exists():
        (path / "pids.max").write_text(str(processes))
    if (path / "cpu.max").exists():
        period = (path / "cpu.max").read_text().split()[-1]
        (path / "cpu.max").write_text(f"{period} {period}")
    if cpu is not None and (path / "cpuset.cpus").exists():
        (path / "cpuset.cpus").write_text(str(cpu))
    if not (path / "pids.max").exists() and not _memory_files(path):
        raise OSError("neither a pids nor a memory controller here")


def oom_kills(paths: "list[Path] | tuple[Path, ...]") -> int:
    """How many processes the memory limit of these cgroups has killed so far (v1 memory.oom_control or v2
    memory.events): what a SIGKILL meant, read before the cgroups are removed."""
    for path in paths:
        for name in ("memory.oom_control", "memory.events"):
            try:
                fields = dict(line.split() for line in (Path(path) / name).read_text().splitlines())
                return int(fields.get("oom_kill", 0))
            except (OSError, ValueError):
                continue
    return 0


def _memory_files(path: Path) -> tuple[str, ...]:
    """The files that hold a cgroup's memory limit, tightest last: v1 memory then memory+swap (which
    must stay >= memory), or v2 memory.max then memory.swap.max (set to 0)."""
    if (path / "memory.limit_in_bytes").exists():
        return ("memory.limit_in_bytes",) + (("memory.memsw.limit_in_bytes",)
                                             if (path / "memory.memsw.limit_in_bytes").exists() else ())
    if (path / "memory.max").exists():
        return ("memory.max",) + (("memory.swap.max",) if (path / "memory.swap.max").exists() else ())
    return ()


_GROUPS: dict[str, list[Path]] = {}  # a Cgroup's path -> all its cgroups (Limits.spec takes the path)


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


def _cgroup_bases() -> list[tuple[Path, str]]:
    """(folder to create our cgroups in, "pids", "memory", "cpu", "cpuset" or "v2"): our own cgroup in each
    v1 hierarchy we use, and our own v2 cgroup when it offers pids or memory (`_v2_base`)."""
    bases: list[tuple[Path, str]] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, own = line.split(":", 2)
        for control in ("pids", "memory", "cpu", "cpuset"):
            if control in controllers.split(","):
                bases.append((Path(f"/sys/fs/cgroup/{control}") / own.lstrip("/"), control))
        if controllers == "":
            unified = _cgroup2_mount()
            if unified is not None:
                base = _v2_base(unified / own.lstrip("/"))
                if base is not None:
                    bases.append((base, "v2"))
    return [(b, c) for b, c in bases if (b / "cgroup.procs").exists()]


V2_CONTROLLERS = ("pids", "memory", "cpu", "cpuset")
_V2_LEAF = "grader"  # dldiy-OWNER-grader: where our own processes go when our v2 cgroup must hand its controllers down


def _v2_base(own: Path) -> Path | None:
    """The v2 cgroup to create the children's cgroups in: our own cgroup, with pids, memory, cpu and
    cpuset enabled for its children as far as its parent offers them; None when it offers neither
    pids nor memory.

    A v2 cgroup other than the root that holds processes cannot enable a controller for its children
    (the "no internal processes" rule; EBUSY). That is the case of a delegated subtree we were started
    in (`systemd-run --scope -p Delegate=yes dldiy grade ...`, a container's own cgroup): the
    delegatee must move its processes into a leaf first (systemd's and the kernel's cgroup-v2 docs).
    We do that when every process in it is ours (this one and its descendants: the fork server, the
    harness workers), into dldiy-OWNER-grader (removed by clean_stale() once we are dead); a cgroup
    shared with others (a login session's scope) is left as it is, and the children's cgroups go
    beside it where we may (`_v2_beside`; None where we may not)."""
    if _STALE_NAME.match(own.name) and own.name.endswith(f"-{_V2_LEAF}"):
        # The leaf an earlier call made (this process's, or the grader's that started it): the base is
        # the cgroup it was made in, not a leaf inside the leaf (seen on the H100 of 2026-11-27: every
        # Cgroup() one level deeper).
        own = own.parent
    try:
        offered = (own / "cgroup.controllers").read_text().split()
    except OSError:
        return None
    wanted = [c for c in V2_CONTROLLERS if c in offered]
    if "pids" not in wanted and "memory" not in wanted:
        return None
    members = [] if _v2_root(own) else _read_pids(own / "cgroup.procs")
    if members and all(_descends_from_us(pid) for pid in members):
        leaf = own / f"dldiy-{_owner()}-{_V2_LEAF}"
        try:
            leaf.mkdir(exist_ok=True)
            for pid in members:
                (leaf / "cgroup.procs").write_text(str(pid))
            members = _read_pids(own / "cgroup.procs")
        except OSError:
            pass
    # Never enable a controller where processes still are: pids, cpu and cpuset are threaded
    # controllers, which the kernel allows there, and the children made then are "domain invalid":
    # no process can join them (EOPNOTSUPP; seen on the GPU machine of 2026-11-27).
    if not members and _enable_v2(own, wanted):
        return own
    return _v2_beside(own)


def _v2_root(path: Path) -> bool:
    """The root of the v2 hierarchy (exempt from the rule above), which alone has no cgroup.type."""
    return not (path / "cgroup.type").exists()


def _v2_beside(own: Path) -> Path | None:
    """Where our own v2 cgroup is shared with processes not ours (the GPU machines of 2026-11-27 run
    every command in /process_api/ID beside their agent, and that parent enables memory alone), the
    nearest ancestor we may write to that enables pids or memory for its children (we enable there
    what its own parent offers of the four: a controller with no limit set changes nothing for the
    cgroups beside ours): the children's cgroups go there, beside ours. Each still has its own
    limits; they are then outside our own cgroup's accounting, which is why this comes last."""
    for parent in own.parents:
        if not (parent / "cgroup.procs").exists():
            return None  # above the v2 mount
        if not os.access(parent, os.W_OK) or (not _v2_root(parent) and _read_pids(parent / "cgroup.procs")):
            continue
        try:
            offered = (parent / "cgroup.controllers").read_text().split()
        except OSError:
            offered = list(V2_CONTROLLERS)  # the root cgroup has no cgroup.controllers on old kernels
        if _enable_v2(parent, [c for c in V2_CONTROLLERS if c in offered]):
            return parent
    return None


def _enable_v2(own: Path, wanted: list[str]) -> bool:
    """Enable `wanted` for the children of `own` (cgroup.subtree_control), each on its own so that one
    refused (cpuset where its parent lacks it) leaves the others; True when pids or memory is enabled."""
    control = own / "cgroup.subtree_control"
    try:
        enabled = set(control.read_text().split())
    except OSError:
        return False
    for name in wanted:
        if name not in enabled:
            try:
                control.write_text(f"+{name}")
                enabled.add(name)
            except OSError:
                pass
    return "pids" in enabled or "memory" in enabled


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _descends_from_us(pid: int) -> bool:
    """This process, or one it started (its parent chain reaches us)."""
    me = os.getpid()
    for _ in range(64):
        if pid == me:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid <= 1:
            return False
    return False


def _cgroup2_mount() -> Path | None:
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return Path(parts[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------------------------
# Leftovers of a killed run

_STALE_NAME = re.compile(r"dldiy-(\d+)-(\d+)-")
# Names of the earlier releases, which carried no owner (a working copy: mkdtemp's 8 characters; a
# cgroup: 12 hex digits). No single child's lifetime comes near this age: older ones are leftovers.
_LEGACY_NAME = re.compile(r"dldiy-([a-z0-9_]{8}|[0-9a-f]{12})$")
LEGACY_AGE_S = 6 * 3600
_cleaned = False
_clean_lock = threading.Lock()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the
    pid, it names one process for good (pids are reused, start times are not)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]


def _owner() -> str:
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def _owner_dead(path: Path) -> bool:
    match = _STALE_NAME.match(path.name)
    if match is not None:
        return _start_time(int(match.group(1))) != match.group(2)
    if _LEGACY_NAME.match(path.name) is None:
        return False
    try:
        return time.time() - path.stat().st_mtime > LEGACY_AGE_S
    except OSError:
        return False


def clean_stale() -> list[str]:
    """Remove what a killed run left: working copies in the temporary folder and cgroups (their
    stray members killed first) whose owner process is dead. Call it when a batch starts. Only
    names this module makes (dldiy-PID-START-...) are touched, a live owner's kept; those of the
    earlier naming (no owner in it) once older than LEGACY_AGE_S."""
    removed = []
    tmp = Path(tempfile.gettempdir())
    try:
        names = [n for n in os.listdir(tmp) if n.startswith("dldiy-")]
    except OSError:
        names = []
    for name in names:
        path = tmp / name
        if path.is_dir() and not path.is_symlink() and (_STALE_NAME.match(name) or (path / "work").is_dir()) \
                and _owner_dead(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    for base, _ in _cgroup_bases():
        try:
            names = [n for n in os.listdir(base) if n.startswith("dldiy-")]
        except OSError:
            continue
        for name in names:
            if _owner_dead(base / name):
                path = base / name
                for _ in range(50):  # members leave a few milliseconds after SIGKILL
                    if _kill_members(path):
                        break
                    time.sleep(0.01)
                removed.append(str(path))
    return removed


def clean_stale_once() -> None:
    """clean_stale() the first time this process makes a working copy or a cgroup (a few
    milliseconds: one listing of the temporary folder and of each cgroup base)."""
    global _cleaned
    with _clean_lock:
        if not _cleaned:
            _cleaned = True
            clean_stale()


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
CLONE_NEWIPC = 0x08000000
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24


@dataclass
class Confined:
    applied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def confine(spec: dict, report_exit=None, pid_namespace_ready: bool = False,
            joined: Callable[[], tuple[list[str], list[str]]] | None = None) -> Confined:
    """Apply `spec` (Limits.spec) to this process. With a PID namespace this forks: the caller
    continues as the namespace's init, while the original process waits, calls
    `report_exit(code)` and exits with the same code. `pid_namespace_ready`: this process was
    forked as the init of a PID namespace of its own (PidNamespaceForks), so there is nothing to
    fork and no relay left outside. `joined` (only with `pid_namespace_ready`): the harness moves
    this process into its cgroups (join_cgroups) meanwhile; it returns that report, and is waited
    for before confine() returns, so before any of the student's code."""
    state = Confined()
    os.environ[MARKER_VAR] = spec["marker"]
    if joined is not None and not pid_namespace_ready:
        raise ValueError("cgroups joined from outside need a child that forks nothing before: a PID namespace's init")
    if joined is None:
        _join_cgroups(spec, state)
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    outer_uid = os.getuid() if hasattr(os, "getuid") else None
    nproc_cap = None if root else _nproc_cap(spec["processes"])
    mounted = userns = False
    if spec.get("namespaces", True) and _libc() is not None:
        mounted, userns = _namespaces(spec, state, report_exit, drop_uid=root, pid_namespace_ready=pid_namespace_ready)
    if joined is not None:
        applied, missing = joined()
        state.applied += applied
        state.missing += missing
    _rlimits(spec, nproc_cap, state)
    _drop_privileges(state, become_nobody=root and mounted, userns=userns, outer_uid=outer_uid)
    os.chdir(spec["workdir"])
    os.environ["HOME"] = spec["workdir"]  # ~ is its working copy: a cache under ~ stays its own, never the host's
    return state


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    except OSError:
        return None


def _join_cgroups(spec: dict, state: Confined) -> None:
    """Set the memory limit on the memory cgroup (the child still runs trusted code here, before
    any of the student's), then join every cgroup of the spec."""
    applied, missing = join_cgroups(spec, os.getpid())
    state.applied += applied
    state.missing += missing


def join_cgroups(spec: dict, pid: int) -> tuple[list[str], list[str]]:
    """Set the memory limit on the memory cgroup, then move process `pid` into every cgroup of the
    spec: (what applied, what is missing), lines for Confined. The child itself calls it through
    confine(), or, where it is its PID namespace's init from its fork (so nothing it forks escapes the
    move), the harness calls it from outside while the child builds its root (`joined` below): a move
    into a v1 cgroup waits for an RCU grace period, ~9 ms here, that overlaps with the mounts."""
    paths = spec.get("cgroups") or ([spec["cgroup"]] if spec.get("cgroup") else [])
    memory = spec.get("memory_bytes")
    applied: list[str] = []
    missing: list[str] = []
    has_pids = has_memory = False
    for path in map(Path, paths):
        try:
            files = _memory_files(path) if memory else ()
            for name in files:
                (path / name).write_text("0" if name == "memory.swap.max" else str(memory))
            (path / "cgroup.procs").write_text(str(pid))
            if files:
                has_memory = True
                applied.append(f"memory cgroup: {memory} bytes for the whole process tree, shared memory "
                               f"and tmpfs included ({' + '.join(files)})")
            if (path / "pids.max").exists():
                has_pids = True
                applied.append(f"cgroup pids.max={(path / 'pids.max').read_text().strip()}")
            if (path / "cpu.cfs_quota_us").exists() or (path / "cpu.max").exists():
                applied.append("cpu cgroup: the whole process tree scheduled as one, at most one CPU")
            cpus = (path / "cpuset.cpus").read_text().strip() if (path / "cpuset.cpus").exists() else ""
            if cpus:  # (a v2 cpuset left empty inherits every CPU of its parent: no cpuset of ours)
                applied.append(f"cpuset: CPU {cpus} only (no affinity reaches another)")
        except OSError as e:
            missing.append(f"cgroup {path.name} ({e.strerror or e})")
    if not has_pids:
        missing.append("pids cgroup (none could be created: RLIMIT_NPROC only, when not root)")
    if memory and not has_memory:
        missing.append("memory cgroup (none could be created): RLIMIT_DATA per process only; a tree of "
                       "processes or a shared mapping can exceed it")
    return applied, missing


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


def _namespaces(spec: dict, state: Confined, report_exit, drop_uid: bool,
                pid_namespace_ready: bool = False) -> tuple[bool, bool]:
    """(the allow-listed root is in place, a user namespace was needed)."""
    libc = _libc()
    # an IPC namespace of its own: System V shared memory, semaphores and message queues (and POSIX
    # queues) are gone with it, never a channel to the next student nor memory held outside its cgroup
    flags = CLONE_NEWNS | CLONE_NEWIPC | (0 if pid_namespace_ready else CLONE_NEWPID) | \
        (0 if spec["network"] else CLONE_NEWNET)
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        state.missing.append(f"namespaces ({os.strerror(ctypes.get_errno())}): network, mounts and strays "
                             "are best effort (process group kill and marker sweep)")
        return False, False
    if flags & CLONE_NEWUSER:  # be root inside, mapped to ourselves outside
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    if not pid_namespace_ready:
        _become_init(report_exit)
    state.applied.append("pid namespace (its init: everything it starts dies with it)")
    state.applied.append("ipc namespace (System V IPC and POSIX queues of its own, gone with it)")
    if not spec["network"]:
        state.applied.append("network namespace (no network)")
    try:
        state.applied += Root(libc, spec, drop_uid=drop_uid and not flags & CLONE_NEWUSER).build()
        return True, bool(flags & CLONE_NEWUSER)
    except OSError as e:
        raise SandboxError(f"could not build the sandbox's root: {e}") from e


class SandboxError(RuntimeError):
    """The mount namespace was created but its root could not be built: the child must not go on
    with a half-built view of the host."""


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


class PidNamespaceForks:
    """Forks a process as the init of a new PID namespace of its own, as _become_init does, but from
    the process that forks it: unshare(CLONE_NEWPID) makes the caller's next child PID 1 of a new
    namespace, and setns() back to its own namespace lets it do so again for the next one. The child
    then has no relay process outside its namespace: one fork and one exit of a torch-sized process
    fewer per student (issue 17). Needs CAP_SYS_ADMIN over the caller's own PID namespace, that is
    root (a process in a user namespace cannot setns() back into the host's): `create()` returns
    None elsewhere, and confine() then makes the namespace itself."""

    def __init__(self, libc: Any, own: int):
        self.libc, self.own = libc, own

    @classmethod
    def create(cls) -> "PidNamespaceForks | None":
        libc = _libc()
        if libc is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
            return None
        try:
            own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        if libc.unshare(CLONE_NEWPID) != 0 or libc.setns(own, CLONE_NEWPID) != 0:  # allowed here: both, or neither
            os.close(own)
            return None
        return cls(libc, own)

    def fork(self, fork: Callable[[], int]) -> int:
        """`fork()` (a fork_running) with its child as PID 1 of a new PID namespace."""
        if self.libc.unshare(CLONE_NEWPID) != 0:
            raise OSError(ctypes.get_errno(), f"unshare(CLONE_NEWPID): {os.strerror(ctypes.get_errno())}")
        try:
            return fork()
        finally:
            if self.libc.setns(self.own, CLONE_NEWPID) != 0:
                raise OSError(ctypes.get_errno(), f"setns back to its own PID namespace: {os.strerror(ctypes.get_errno())}")


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


def _drop_privileges(state: Confined, become_nobody: bool, userns: bool, outer_uid: int | None) -> None:
    """Empty the capability bounding set (needs CAP_SETPCAP: first), become uid/gid 65534 with no
    supplementary groups when we were root (root-only files and sockets are out of reach even where
    exposed; the working copy was chowned to it), and forbid regaining privileges (setuid
    binaries, exec as root): what confine() set up cannot be undone by the code that runs next."""
    libc = _libc()
    if libc is None:
        return
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = 40
    dropped = all(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0 for cap in range(last + 1))
    if become_nobody:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            state.applied.append(f"uid/gid {NOBODY} (unprivileged), no supplementary groups")
        except OSError as e:
            raise SandboxError(f"could not drop to uid {NOBODY}: {e}") from e
    elif userns:
        state.applied.append(f"uid {outer_uid} (the caller's, unprivileged) outside, 0 inside a user namespace "
                             "that maps no other uid")
    elif os.geteuid() == 0:
        state.missing.append(f"unprivileged uid (no private root to give uid {NOBODY} a working copy of its "
                             "own): runs as root without capabilities")
    else:
        state.applied.append(f"uid {os.getuid()} (the caller's, unprivileged)")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # capset(version 3, this process) with every set empty
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) == 0 and (dropped or os.geteuid() != 0):
        state.applied.append("no capabilities, no_new_privs")
    else:
        state.missing.append("capability drop (not permitted here)")
    _deny_syscalls(libc, state)


# Refused (EPERM) by a seccomp filter: kernel objects that outlive the process or reach beyond its
# namespaces. Keyrings: uid 65534's user keyring outlives a grade, a channel to later submissions (red
# team A6); perf_event_open, userfaultfd, io_uring and bpf: kernel attack surface no exercise needs.
# x86_64 numbers (the filter checks the architecture and leaves other ones alone, said as missing).
DENIED_SYSCALLS = {"add_key": 248, "request_key": 249, "keyctl": 250, "perf_event_open": 298, "userfaultfd": 323,
                   "bpf": 321, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427}
AUDIT_ARCH_X86_64 = 0xC000003E


def _deny_syscalls(libc, state: Confined) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): a BPF program that answers EPERM to DENIED_SYSCALLS (and to
    the x32 ABI's numbers) and allows every other call. Needs no_new_privs (set just before)."""
    import platform

    if platform.machine() != "x86_64":
        state.missing.append(f"seccomp filter (its syscall numbers are x86_64's; this is {platform.machine()})")
        return

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    numbers = list(DENIED_SYSCALLS.values())
    n = len(numbers)
    # 0: arch; 1: not x86_64 -> allow; 2: nr; 3: x32 (nr >= 0x40000000) -> deny; 4..4+n-1: each -> deny;
    # 4+n: allow; 5+n: deny. Jumps count from the next instruction.
    code = [(load, 0, 0, 4), (jeq, 0, 2 + n, AUDIT_ARCH_X86_64), (load, 0, 0, 0), (jge, n + 1, 0, 0x40000000)]
    code += [(jeq, n - i, 0, nr) for i, nr in enumerate(numbers)]
    code += [(ret, 0, 0, allow), (ret, 0, 0, deny)]
    program = (Filter * len(code))(*[Filter(*c) for c in code])
    fprog = Program(len(code), program)
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        state.applied.append("seccomp filter: keyrings, perf_event_open, userfaultfd, bpf and io_uring refused")
    else:
        state.missing.append(f"seccomp filter ({os.strerror(ctypes.get_errno())})")


if sys.platform.startswith("linux"):
    sandbox_fs.trusted()  # once here: a fork server's children inherit it instead of each computing it
    sandbox_fs.device_names()
