"""Parent side: run a submission's probes in a child process, with a timeout on every check.

The child (graders/child.py) gets its own process group, a scrubbed environment and torch pinned to
one thread; its stdout/stderr are drained with a size cap so a flood of prints cannot fill memory.
A check that overruns its timeout gets the whole group killed, is recorded as a timeout, and the
remaining checks go on in a fresh child. A child that dies (sys.exit, os._exit, a crash) is treated
the same way.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .exercise import Exercise

STARTUP_TIMEOUT_S = 60.0  # python + torch import + executing the submission once
OUTPUT_CAP_BYTES = 64 * 1024


@dataclass(frozen=True)
class Task:
    check: str
    seed: int


@dataclass
class Outcome:
    """Everything the child reported: measurements or errors per (check, seed), and what it printed."""

    results: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    load_error: str | None = None
    skipped: list[str] = field(default_factory=list)
    output: str = ""
    duration_s: float = 0.0


def child_env() -> dict[str, str]:
    """A scrubbed environment: no tokens or credentials of the caller reach student code."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "CUDA_VISIBLE_DEVICES", "PYTORCH_ENABLE_MPS_FALLBACK",
            "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", CUBLAS_WORKSPACE_CONFIG=":4096:8",
               HOME=os.environ.get("DLDIY_CHILD_HOME", "/tmp"))
    return env


class _CappedDrain(threading.Thread):
    """Reads a pipe to its end, keeping only the first `cap` bytes."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap, self.chunks, self.kept, self.dropped = stream, cap, [], 0, 0

    def run(self) -> None:
        while chunk := self.stream.read(65536):
            room = self.cap - self.kept
            if room > 0:
                self.chunks.append(chunk[:room])
                self.kept += len(chunk[:room])
            self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        text = b"".join(self.chunks).decode("utf-8", "replace")
        return text + (f"\n[... {self.dropped} more bytes of output dropped]" if self.dropped else "")


def run_child(exercise: Exercise, entry: Path, tasks: list[Task], *, cwd: Path | None = None,
              preexec: Callable[[], None] | None = None, startup_timeout: float = STARTUP_TIMEOUT_S,
              output_cap: int = OUTPUT_CAP_BYTES) -> Outcome:
    """Measure `tasks` on the submission at `entry`, in as many children as timeouts and crashes need."""
    outcome = Outcome()
    started = time.monotonic()
    pending = list(tasks)
    outputs = []
    while pending:
        progressed = _one_child(exercise, Path(entry), pending, outcome, cwd or Path(entry).parent,
                                preexec, startup_timeout, output_cap, outputs)
        if outcome.load_error is not None or not progressed:
            break
    if outcome.load_error is not None:
        first, _, rest = outcome.load_error.partition("\n")  # a notebook cell's traceback follows line 1
        for t in pending:
            outcome.results[(t.check, t.seed)] = {"error": {"kind": "load", "message": first,
                                                            "traceback": rest}}
    outcome.output = "".join(outputs)[: output_cap + 200]
    outcome.duration_s = time.monotonic() - started
    return outcome


def _one_child(exercise, entry, pending, outcome, cwd, preexec, startup_timeout, output_cap, outputs) -> bool:
    """Start one child for `pending` (consumed in place); False if it made no progress at all."""
    read_fd, write_fd = os.pipe()
    request = {"exercise_dir": str(exercise.folder), "entry": str(entry.resolve()),
               "tasks": [{"check": t.check, "seed": t.seed} for t in pending]}
    proc = subprocess.Popen([sys.executable, "-m", "dldiy.graders.child", str(write_fd)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            pass_fds=(write_fd,), cwd=cwd, env=child_env(), start_new_session=True,
                            preexec_fn=preexec)
    os.close(write_fd)
    drain = _CappedDrain(proc.stdout, output_cap)
    drain.start()
    try:
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    reader = _LineReader(read_fd)
    loaded, progressed = False, False
    timeout = startup_timeout + (exercise.check(pending[0].check).timeout if pending else 0)
    try:
        while pending:
            line = reader.next_line(timeout)
            if line is _TIMEOUT:
                where = "while loading" if not loaded else f"in check {pending[0].check!r} at seed {pending[0].seed}"
                if not loaded:
                    outcome.load_error = f"the submission did not finish loading within {startup_timeout:g} s"
                else:
                    task = pending.pop(0)
                    outcome.results[(task.check, task.seed)] = {"error": {
                        "kind": "timeout", "traceback": "",
                        "message": f"did not finish within {timeout:g} s {where} (an endless loop, or far too slow?)"}}
                    progressed = True
                return progressed
            if line is None:  # the child died
                code = _reap(proc)
                if not loaded:
                    outcome.load_error = f"the process exited (code {code}) while loading the submission: " \
                                         "does it call sys.exit() or os._exit() at import?"
                else:
                    task = pending.pop(0)
                    outcome.results[(task.check, task.seed)] = {"error": {
                        "kind": "died", "traceback": "",
                        "message": f"the process exited (code {code}) during this check: "
                                   "sys.exit(), os._exit(), a crash, or a memory limit?"}}
                    progressed = True
                return progressed
            message = _parse_line(line)
            if message is None:
                continue
            if message.get("type") == "load_error":
                outcome.load_error = str(message.get("message", "the submission could not be loaded"))
                return True
            if message.get("type") == "loaded":
                loaded = True
                outcome.skipped = [str(s) for s in message.get("skipped", [])]
                timeout = exercise.check(pending[0].check).timeout
                continue
            if message.get("type") == "result" and loaded:
                key = (message.get("check"), message.get("seed"))
                if key != (pending[0].check, pending[0].seed):
                    continue  # out of order: not something our child sends; ignore it
                pending.pop(0)
                outcome.results[key] = {k: message[k] for k in ("measurement", "error") if k in message}
                progressed = True
                if pending:
                    timeout = exercise.check(pending[0].check).timeout
        return progressed
    finally:
        _kill_group(proc)
        os.close(read_fd)
        drain.join(timeout=5)
        outputs.append(drain.text())


_TIMEOUT = object()


class _LineReader:
    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""

    def next_line(self, timeout: float):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return _TIMEOUT
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return _TIMEOUT
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


def _parse_line(line: bytes) -> dict | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _reap(proc: subprocess.Popen) -> int | None:
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child and everything it started in its process group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
