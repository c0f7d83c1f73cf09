"""Starting a harness process (graders/sandbox/child.py): one interface, two ways.

A `Spawner` starts one harness process and returns the `Started` child the runner feeds and kills.
`Fresh` starts a fresh interpreter (`python -m dldiy.graders.sandbox.child`: torch imported anew,
seconds); `ForkServer` (graders/sandbox/forkserver.py) forks one from a warm process that imported
torch once (milliseconds). The runner takes either; it and the fork server import only this module,
never each other.

What the harness process needs to start (`start`: the exercise, its API, the loader's settings)
travels first; each submission's job (its entry, sandbox, tasks with any hidden seed, the checks'
parameters) follows as one line on `Started.jobs`, its stdin, which stays open for the next one.
The harness forks its zygote (graders/sandbox/student.py) before it reads any job, so that no
student's process inherits one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Callable, Iterator, Protocol

from . import confine


class Started:
    """A running harness process: a Popen (fresh interpreter) or a pid forked by the fork server, and
    `jobs`, its stdin: one JSON line per submission (graders/sandbox/child.py)."""

    def __init__(self, pid: int, jobs: IO[bytes], proc: subprocess.Popen | None = None):
        self.pid, self.jobs, self.proc, self.code = pid, jobs, proc, None

    def send_job(self, job: dict) -> bool:
        """Hand it one submission's job; False if it is gone (its stdin closed)."""
        try:
            self.jobs.write(json.dumps(job).encode() + b"\n")
            self.jobs.flush()
            return True
        except (OSError, ValueError):
            return False

    def exit_code(self) -> int | None:
        if self.proc is not None:
            try:
                return self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                return None
        return self.code

    def kill(self) -> None:
        """Kill the child and everything it started in its process group."""
        try:
            self.jobs.close()
        except OSError:
            pass
        for kill in (os.killpg, os.kill):  # kill(pid) too: it may not have called setsid yet
            try:
                kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


class Spawner(Protocol):
    def start(self, start: dict, channel_fd: int, output_fd: int, env: dict[str, str]) -> Started:
        """Start a harness process serving `start` (then the jobs sent to `Started.jobs`) that writes
        its results to `channel_fd` and its own output to `output_fd`, with `env` where it starts anew."""
        ...

    def compile(self, paths: list[Path]) -> None:
        """Trusted files (exercise harnesses) the harness processes started from now on will load."""
        ...


class Fresh:
    """A fresh interpreter per harness process: no server to start, seconds per child. Every Fresh is
    the same spawner (equal, one hash): a worker it started serves any caller's next job."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fresh)

    def __hash__(self) -> int:
        return hash(Fresh)

    def compile(self, paths: list[Path]) -> None:
        pass  # a fresh interpreter compiles what it loads

    def start(self, start: dict, channel_fd: int, output_fd: int, env: dict[str, str]) -> Started:
        proc = subprocess.Popen([sys.executable, "-m", "dldiy.graders.sandbox.child", str(channel_fd)],
                                stdin=subprocess.PIPE, stdout=output_fd, stderr=output_fd,
                                pass_fds=(channel_fd,), cwd="/", env=env, start_new_session=True)
        started = Started(proc.pid, proc.stdin, proc)  # type: ignore[arg-type]
        started.send_job(start)  # the first line is the start request
        return started


class CpuSlots:
    """Which CPU each running harness process (and the student's process it forks) is pinned to.

    The two processes of one submission take turns: every call is a message one way and a reply the
    other, and a wake-up on another CPU costs an inter-processor interrupt (on a virtual machine, an
    exit to the hypervisor). Pinned to the same CPU, a round trip costs 63 us instead of 162 us here
    (benchmarks/rpc_roundtrip.py under taskset); each pair goes to the CPU with the fewest pairs, ties
    from the CPU this process runs on: separate `dldiy check`s (parallel tests, a student's two
    terminals) each counted from CPU 0 and all pinned their pair there, four of them to one core on a
    16-core machine (the GPU run of 2026-11-26: correct solutions timed out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: dict[int, int] = {}

    def take(self) -> int | None:
        """The CPU for a new pair (None: one CPU, or no affinity API); `give_back` it when the pair ends."""
        cpus = _allowed_cpus()
        if len(cpus) < 2:
            return None
        here = _running_on()
        start = cpus.index(here) if here in cpus else 0
        with self._lock:
            cpu = min(cpus, key=lambda c: (self._pairs.get(c, 0), (cpus.index(c) - start) % len(cpus)))
            self._pairs[cpu] = self._pairs.get(cpu, 0) + 1
        return cpu

    def give_back(self, cpu: int | None) -> None:
        if cpu is not None:
            with self._lock:
                self._pairs[cpu] -= 1


def _running_on() -> int | None:
    """The CPU this process last ran on (/proc/self/stat's field 39), where the scheduler put it."""
    try:
        with open("/proc/self/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


def _allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


CPUS = CpuSlots()


def check_processes() -> int:
    """How many students' processes one `dldiy check` runs side by side (assess.split_by_seed): one per
    CPU it may use (a harness and its student take turns on one), at most 4: each costs a fork and a load."""
    return max(1, min(4, len(_allowed_cpus())))


def pin_to(cpu: object) -> None:
    """Pin this process (and whatever it forks) to `cpu`, the harness process's first act."""
    if isinstance(cpu, int) and not isinstance(cpu, bool):
        try:
            os.sched_setaffinity(0, {cpu})
        except (AttributeError, OSError, ValueError):
            pass  # a CPU taken away meanwhile (a container's cpuset): run anywhere


def child_env() -> dict[str, str]:
    """A scrubbed environment: no tokens or credentials of the caller reach student code, and no path
    into the course checkout (PATH entries inside it and VIRTUAL_ENV are dropped: the child runs
    sys.executable, which finds its packages without them)."""
    keep = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "PYTORCH_ENABLE_MPS_FALLBACK",
            "PYTHONPATH", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    hidden = [str(p.parent) for p in confine.default_hidden()]
    if "PATH" in env:
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                      if p and not any(p.startswith(h) for h in hidden))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", CUBLAS_WORKSPACE_CONFIG=":4096:8",
               HOME=os.environ.get("DLDIY_CHILD_HOME", "/tmp"))
    return env


def reap_ended() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of every child that has ended, reaped without blocking (a SIGCHLD handler's loop)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def name_process(role: str) -> None:
    """Show `role` as this process's name (`ps`, `top`, `perf`'s comm): which of grade's processes is
    which, for an instructor watching a batch and for a profile split by role. Best effort."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(role[:15])
    except OSError:
        pass


def fork_running(body: Callable[[], None]) -> int:
    """Fork; the child runs `body()` and exits (status 70 if it raised, its traceback shown under
    DLDIY_DEBUG), never returning into the caller's code. The parent gets the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        body()
    except BaseException:  # noqa: BLE001 - whatever happens, the child never returns into the caller
        code = 70
        if os.environ.get("DLDIY_DEBUG"):
            import traceback

            traceback.print_exc()
    finally:
        os._exit(code)
