"""Starting a harness process (graders/sandbox/child.py): one interface, two ways.

A `Spawner` starts one harness process and returns the `Started` child the runner watches and kills.
`Fresh` starts a fresh interpreter (`python -m dldiy.graders.sandbox.child`: torch imported anew,
seconds); `ForkServer` (graders/sandbox/forkserver.py) forks one from a warm process that imported
torch once (milliseconds). The runner takes either; it and the fork server import only this module,
never each other.

What the harness process needs to start the student's process (`start`) travels first; the tasks,
with any hidden seed, and the checks' parameters (`later`) follow on its stdin, read only after the
student's process was forked, so they are never in the memory the student's process inherits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Protocol

from . import confine


class Started:
    """A running harness process: a Popen (fresh interpreter) or a pid forked by the fork server."""

    def __init__(self, pid: int, proc: subprocess.Popen | None = None):
        self.pid, self.proc, self.code = pid, proc, None

    def exit_code(self) -> int | None:
        if self.proc is not None:
            try:
                return self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                return None
        return self.code

    def kill(self) -> None:
        """Kill the child and everything it started in its process group."""
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
    def start(self, start: dict, later: bytes, channel_fd: int, output_fd: int, cwd: Path,
              env: dict[str, str]) -> Started:
        """Start a harness process serving `start` (then `later` on its stdin) that writes its results
        to `channel_fd` and its output to `output_fd`, in `cwd` with `env` where it starts anew."""
        ...


class Fresh:
    """A fresh interpreter per harness process: no server to start, seconds per child."""

    def start(self, start: dict, later: bytes, channel_fd: int, output_fd: int, cwd: Path,
              env: dict[str, str]) -> Started:
        proc = subprocess.Popen([sys.executable, "-m", "dldiy.graders.sandbox.child", str(channel_fd)],
                                stdin=subprocess.PIPE, stdout=output_fd, stderr=output_fd,
                                pass_fds=(channel_fd,), cwd=cwd, env=env, start_new_session=True)
        try:
            proc.stdin.write(json.dumps(start).encode() + b"\n" + later)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        return Started(proc.pid, proc)


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


def write_all(fd: int, data: bytes) -> None:
    """Write `data` to a pipe from a thread (it may exceed the pipe's buffer) and close it."""
    def write() -> None:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError:
            pass

    threading.Thread(target=write, daemon=True).start()


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
