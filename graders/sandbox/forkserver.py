"""A warm process that has imported torch once and forks one fresh child per submission.

Starting Python and importing torch costs ~1.3 s; fork() of a process that already did costs a few
milliseconds. The server imports torch, numpy and dldiy's graders with every thread pool pinned to
one thread *before* torch starts any (fork() copies only the calling thread, so a pool thread's
lock held at fork time would deadlock the child). Its only torch ops are placement.warm_up's forward
pass on the meta device (no data, no gradient: a backward would start autograd's device threads where
CUDA is available, and no forked child could run autograd after that).

Protocol (a SOCK_SEQPACKET socket pair, one message per datagram):
    parent -> server: the child's JSON request (graders/sandbox/child.py's), with two file descriptors
                      attached: the result channel's write end and the output pipe's write end
    server -> parent: the forked child's pid, as ASCII
The forked child starts its own session, points stdout/stderr at the output pipe, and runs
`child.run` exactly as a fresh interpreter would, so the JSON-lines protocol is the same.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from .spawn import Started, child_env, fork_running, name_process, reap_ended

MAX_REQUEST = 1 << 20
# Modules torch imports lazily on first use, paid once here instead of by every child where sympy cannot be
# deferred (graders/sandbox/nosympy.py): the meta device (the placement check) pulls in sympy; not
# torch._dynamo, which graders/sandbox/torchfast.py keeps out of every child (it was ~1 s of this server's
# start). Imports only, no torch op.
WARM_IMPORTS = ("torch.fx.experimental.symbolic_shapes",)
# Imported by every harness process on its first probe (the seeded data: numpy.random; autograd across
# the two processes: bridge), ~10 ms each time when left to the child. Imports only.
CHILD_IMPORTS = ("numpy.random", "secrets", "dldiy.graders.sandbox.bridge")


class ForkServer:
    """`with ForkServer() as server: run_child(..., server=server)`: a `Spawner` (graders/sandbox/spawn.py)
    that callers may share across threads (each spawn is one request under a lock). `warm=False` skips
    WARM_IMPORTS (a faster start when no check uses the meta device)."""

    def __init__(self, startup_timeout: float = 60.0, warm: bool = True):
        self._lock = threading.Lock()
        self._compiled: set[str] = set()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._proc = subprocess.Popen([sys.executable, "-m", "dldiy.graders.sandbox.forkserver", str(theirs.fileno()),
                                       "warm" if warm else "cold"],
                                      pass_fds=(theirs.fileno(),), env=child_env(), cwd="/",
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        global _starting
        _starting = self  # while it imports: a caller that stops now can end it (abandon_start)
        try:
            ours.settimeout(startup_timeout)
            try:
                ready = ours.recv(16)
            except OSError:
                ready = b""
            if ready != b"ready":
                self.close()
                raise RuntimeError("the fork server did not start")
            ours.settimeout(None)
        finally:
            _starting = None

    def start(self, start: dict, channel_fd: int, output_fd: int, env: dict[str, str]) -> Started:
        """The Spawner's call (`env` is the server's own, set when it started)."""
        jobs_r, jobs_w = os.pipe()
        try:
            pid = self.spawn(start, channel_fd, output_fd, jobs_r)
        except BaseException:
            os.close(jobs_w)
            raise
        finally:
            os.close(jobs_r)
        return Started(pid, os.fdopen(jobs_w, "wb"))

    def compile(self, paths: list[Path]) -> None:
        """Have the server compile these trusted files (exercise harnesses) once, so that every child
        forked from now on loads them without parsing (graders/sandbox/submission.compiled)."""
        wanted = [str(p) for p in paths if str(p) not in self._compiled]
        if not wanted:
            return
        with self._lock:
            try:
                self._sock.send(json.dumps({"compile": wanted}).encode())
                self._sock.recv(64)
            except OSError:
                return
        self._compiled.update(wanted)

    def spawn(self, request: dict, channel_fd: int, output_fd: int, input_fd: int) -> int:
        """Fork a child serving `request` (the part that starts it; the rest arrives on `input_fd`,
        which becomes its stdin); returns its pid (the leader of its own process group)."""
        data = json.dumps(request).encode()
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large for the fork server")
        with self._lock:
            try:
                socket.send_fds(self._sock, [data], [channel_fd, output_fd, input_fd])
                reply = self._sock.recv(64)
            except OSError:
                reply = b""
        if not reply:
            raise RuntimeError("the fork server has exited")
        return int(reply)

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> "ForkServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: ForkServer | None = None
_starting: ForkServer | None = None
_shared_lock = threading.Lock()


def abandon_start() -> None:
    """End a server still importing (its constructor, on another thread, then raises): a command that
    stops before its batch starts does not wait seconds for a server it will not use."""
    server = _starting
    if server is not None:
        try:
            server._proc.kill()
        except OSError:
            pass


def shared() -> ForkServer:
    """This process's one warm server, started on first use and closed at exit: batch commands
    (grade, validate, mutate) share it across their threads instead of each paying a start."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = ForkServer()
            atexit.register(_shared.close)
        return _shared


_early: threading.Thread | None = None


def start_shared_early() -> None:
    """Start this process's shared server on a thread now (torch and the warm imports: most of a batch's
    start-up), while the caller imports its own modules and discovers the class; `shared()` waits for it
    where it is first needed. Once per process: a later call does nothing."""
    global _early
    import atexit

    with _shared_lock:
        if _early is not None or _shared is not None:
            return
        _early = threading.Thread(target=_start_quietly, name="dldiy-forkserver-start", daemon=True)
    _early.start()
    atexit.register(_close_early_start, _early)  # a batch stopped early (a usage error) leaves no server


def _close_early_start(thread: threading.Thread) -> None:
    import time

    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:  # it may still be inside Popen: try again
        abandon_start()
        thread.join(timeout=0.05)
    if _shared is not None:
        _shared.close()  # idempotent: shared()'s own atexit hook may have closed it


def _start_quietly() -> None:
    try:
        shared()
    except Exception:  # noqa: BLE001 - the caller's own shared() raises it again, where it can say so
        pass


def _reap_children(signum, frame) -> None:
    for _ in reap_ended():
        pass


def _serve(sock: socket.socket) -> None:
    # Reap each child as it ends: waiting (rather than SIG_IGN, which lets the kernel discard them)
    # adds their CPU time to this server's, and so to whoever waits for the server (benchmarks).
    signal.signal(signal.SIGCHLD, _reap_children)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sock.send(b"ready")
    except OSError:  # the parent is gone (it stopped while this server was importing): nothing to serve
        return
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, 3)
        except OSError:
            return
        if not data:
            return  # the parent closed its end
        if not fds:  # {"compile": [paths]}: trusted files to compile (never run) for every later child
            _compile(data)
            sock.send(b"ok")
            continue
        pid = fork_running(lambda: _child(sock, json.loads(data), fds))  # never returns into this loop
        for fd in fds:
            os.close(fd)
        sock.send(str(pid).encode())


def _compile(data: bytes) -> None:
    from .submission import compiled

    try:
        paths = json.loads(data).get("compile", [])
    except (ValueError, AttributeError):
        return
    from .localcode import warm

    for path in paths if isinstance(paths, list) else []:
        try:
            compiled(Path(str(path)), remember=True)
        except (OSError, SyntaxError, ValueError):  # the child meets the same error and reports it
            pass
        warm(Path(str(path)))  # the statements a Local carries (graders/sandbox/localcode.py), parsed once


def _child(sock: socket.socket, request: dict, fds: list[int]) -> None:
    from .child import run

    sock.close()
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGCHLD else signal.default_int_handler)
    channel_fd, output_fd, input_fd = fds
    os.dup2(input_fd, 0)  # the jobs, read once the zygote is forked (graders/sandbox/child.py)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(input_fd)
    os.close(output_fd)
    sys.argv = ["dldiy-child"]
    name_process("dldiy-harness")
    run(request, channel_fd, iter(sys.stdin.buffer.readline, b""))


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    warm = sys.argv[2:] != ["cold"]
    sys.argv = ["dldiy-forkserver"]
    name_process("dldiy-forksrv")
    from . import child

    child._pin_threads()  # sets the thread env vars, then imports torch: no pool thread starts
    import numpy  # noqa: F401 - warm imports every child would otherwise repeat

    from .. import api, data, layers  # noqa: F401
    from . import confine, endpoint, forbid, nosympy, remote, student, submission, wire  # noqa: F401
    from ..course import exercise  # noqa: F401
    from ..kinds import KINDS, check_kind, invariants  # noqa: F401

    for kind in KINDS:  # the harnesses import the kinds' measuring helpers: once here, not once per child
        check_kind(kind)

    # Not nbformat: children read notebooks with the json module (submission.notebook_cells), and its
    # import (jsonschema's format checkers compile a grammar) cost as much as torch's in this server.
    # sympy stays out (graders/sandbox/nosympy.py): the meta device asks it only trivial questions, and its
    # import was 0.3 s of this server's start and 34 MB of every process forked from it
    deferred = nosympy.defer()
    for name in (*CHILD_IMPORTS, *(WARM_IMPORTS if warm and not deferred else ())):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if warm:  # the meta device's and the CPU's first-use caches, filled once here for every child (~40 ms)
        from ..kinds.placement import warm_up

        try:
            warm_up()
        except Exception:  # noqa: BLE001 - a torch without some meta kernel: each child fills its own
            pass

    _serve(sock)
    # Nothing to clean up (every child runs in a session of its own), and an interpreter's orderly exit
    # with torch loaded took 0.5 s, which the parent waited for at the end of every batch (issue 17)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
