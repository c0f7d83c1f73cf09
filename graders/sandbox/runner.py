"""Parent side: run a submission's probes through a harness process, with a timeout on every check.

A harness process (graders/sandbox/child.py, a *worker*) runs in a scrubbed environment with torch
pinned to one thread and serves one submission after another: each job is a line on its stdin, each
answer JSON lines on a separate pipe ending in `done` (so nothing a submission prints can pass for
one). The submission itself runs in a process the worker's zygote forks, in a temporary copy of the
submission as its working directory, confined with the limits of graders/sandbox/confine.py; what it
prints is drained with a size cap in the worker and comes back with `done`. After each job, the
submission's cgroup and any process carrying its marker are killed, and the worker goes back to the
pool (`Workers`). A check whose harness overruns its timeout (the worker enforces each call's timeout
on the student itself first) gets the worker killed, is recorded as a timeout, and the remaining checks
go on with a fresh worker. A worker that dies is treated the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import dataclasses
import json
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import messages, confine as sandbox
from ..course.exercise import Exercise
from .messages import TaskResult
from .confine import Limits
from .spawn import CPUS, Fresh, Spawner, child_env

OUTPUT_CAP_BYTES = Limits().output_bytes
STARTUP_TIMEOUT_S = Limits().startup_s  # python + torch import + executing the submission once
# The harness process enforces each check's timeout on the student's process itself (and says where
# it hung); the parent waits this much longer before it kills the harness process as a backstop.
GRACE_S = 5.0



@dataclass(frozen=True)
class Task:
    check: str
    seed: int


@dataclass
class Outcome:
    """Everything the child reported: measurements or errors per (check, seed), and what it printed."""

    results: dict[tuple[str, int], TaskResult] = field(default_factory=dict)
    load_error: str | None = None
    skipped: list[str] = field(default_factory=list)
    sandbox: list[str] = field(default_factory=list)  # the confinement the child reported
    output: str = ""
    duration_s: float = 0.0
    load_s: float | None = None  # wall time from start to the submission's 'loaded' (a reference's sets timeouts)
    # (check, seed) -> (seconds the task ran, its timeout), as the harness said: a task near its limit is noted
    timings: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)


class _CappedDrain(threading.Thread):
    """Reads a pipe to its end, keeping only the first `cap` bytes."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap, self.kept, self.dropped = stream, cap, 0, 0
        self.chunks: list[bytes] = []

    def run(self) -> None:
        while chunk := self.stream.read(1 << 20):
            room = self.cap - self.kept
            if room > 0:
                self.chunks.append(chunk[:room])
                self.kept += len(chunk[:room])
            self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        text = b"".join(self.chunks).decode("utf-8", "replace")
        return text + (f"\n[... {self.dropped} more bytes of output dropped]" if self.dropped else "")


def run_child(exercise: Exercise, entry: Path, tasks: list[Task], *, cwd: Path | None = None,
              limits: Limits | None = None, server: Spawner | None = None, load_only: bool = False,
              on_result: Callable[[Task], None] | None = None, hidden: tuple[int, ...] = ()) -> Outcome:
    """Measure `tasks` on the submission at `entry`, in as many children as timeouts and crashes need.

    `cwd` is the submission's root (default: the entry's folder): a folder is copied whole, a file
    alone, into a fresh working directory that is the child's cwd; the original is never touched.
    Each child is confined by `limits` (graders/sandbox/confine.py; default: the exercise's). `server`
    starts the children (graders/sandbox/spawn.py): a running ForkServer forks them from a warm process
    that has already imported torch; the default starts a fresh interpreter for each. `on_result(task)` is called as each task's
    result (or error) arrives, for progress displays. `hidden`: the run's hidden seeds, whose tasks stay after
    every visible one (judge.tasks_for) in whatever order the tasks are measured (in_stand_in_order)."""
    limits = limits or exercise.limits()
    spawner = server if server is not None else Fresh()
    outcome = Outcome()
    started = time.monotonic()
    if exercise.id not in _SEEDED:  # what `dldiy record` saw the reference's checks hand over, until measured here
        _SEEDED.add(exercise.id)
        for check, names in exercise.recorded_stand_ins().items():
            STAND_INS.setdefault((exercise.id, check), frozenset(names))
    pending = in_stand_in_order(exercise.id, tasks, hidden)
    outputs: list[str] = []
    spawner.compile([exercise.harness_path])
    root = Path(cwd) if cwd is not None else Path(entry).parent
    too_large = sandbox.oversized(root, Path(entry), limits.work_bytes) if limits.namespaces else None
    if too_large is not None:  # said before any copy: the parent's disk never holds it, the child never starts
        for t in pending:
            outcome.results[(t.check, t.seed)] = {"error": messages.error("load", too_large, "")}
        outcome.load_error = too_large
        outcome.duration_s = time.monotonic() - started
        return outcome
    work, work_entry = sandbox.workdir(root, Path(entry))
    try:
        if load_only:  # no task: start, load, report how long loading took (Outcome.load_s)
            _one_child(exercise, work_entry, [], outcome, work, outputs, limits, spawner)
        while pending:
            progressed = _one_child(exercise, work_entry, pending, outcome, work, outputs, limits, spawner,
                                    on_result)
            if outcome.load_error is not None or not progressed:
                break
    finally:
        sandbox.remove_workdir(work)
    if outcome.load_error is not None:
        first, _, rest = outcome.load_error.partition("\n")  # a notebook cell's traceback follows line 1
        for t in pending:
            outcome.results[(t.check, t.seed)] = {"error": messages.error("load", first, rest)}
    outcome.output = "".join(outputs)[: limits.output_bytes + 200]
    outcome.duration_s = time.monotonic() - started
    return outcome


# (exercise, check) -> the names its probe last handed the student's process as the harness's own (the
# harness says so with each result): the order of later tasks
STAND_INS: dict[tuple[str, str], frozenset[str]] = {}
_SEEDED: set[str] = set()  # the exercises whose recorded stand-ins were read into STAND_INS


def measure_stand_ins_afresh(exercise_id: str) -> None:
    """Forget what this process knows of the exercise's stand-ins and never read the recorded ones (`dldiy
    record`, which writes them anew: a harness that changed must not keep an old file's word)."""
    _SEEDED.add(exercise_id)
    for key in [k for k in STAND_INS if k[0] == exercise_id]:
        del STAND_INS[key]


def in_stand_in_order(exercise_id: str, tasks: list[Task], hidden: tuple[int, ...] = ()) -> list[Task]:
    """`tasks`, the visible ones still before every hidden one (judge.tasks_for: what a student may see must
    not follow what it saw at a hidden seed), and within each, those whose check hands over no stand-in
    first, then checks not seen yet, then those that hand over stand-ins, fewest names first. A student's
    process that holds the harness's own version of a name serves only tasks that hand over the same names
    or more (graders/sandbox/child.py's serve_one): in this order it serves a segment to its end, where the
    spec's order (exercise-1: first-loss's stand-ins before stability and placement) needed fresh processes;
    a graded submission's hidden segment starts in a fresh one. Stable, so a check's seeds keep their order;
    results are filed by (check, seed), and reports follow the spec's order whatever the order of measuring."""
    def key(task: Task) -> tuple[bool, int, int, tuple[str, ...]]:
        known = STAND_INS.get((exercise_id, task.check))
        if known is None:
            return (task.seed in hidden, 1, 0, ())
        return (task.seed in hidden, 2 if known else 0, len(known), tuple(sorted(known)))
    return sorted(tasks, key=key)


def _interpreter_paths() -> tuple[Path, ...]:
    """The interpreter's installation and dldiy's package folders that lie under /tmp (a virtual
    environment, or an editable checkout, may live there, and the sandbox replaces /tmp by a fresh
    tmpfs): the child must still import what it has not imported yet. Only what importing Python and
    dldiy needs: sys.prefix and sys.base_prefix, the sys.path folders inside them or named
    site-packages/dist-packages, dldiy's own package folders. Never '' or the grader's working folder
    (`python -m dldiy.cli` from a class's folder puts it first on sys.path), never another sys.path
    folder (a PYTHONPATH entry is the child's own to ask for, under the same refusals: `refused_paths`),
    never the checkout's root (reference/ stays hidden).
    Resolved once per sys.path (each submission of a batch asked: 2 ms of the parent's ~8)."""
    return _interpreter_paths_of(sys.prefix, tuple(sys.path), _cwd())


def _cwd() -> str:
    try:
        return os.path.realpath(os.getcwd())
    except OSError:  # a working folder removed meanwhile
        return ""


def _site_folder(path: Path, prefixes: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(p) for p in prefixes) or any(
        part in ("site-packages", "dist-packages") for part in path.parts)


@functools.lru_cache(maxsize=4)
def _interpreter_paths_of(prefix: str, path: tuple[str, ...], cwd: str = "") -> tuple[Path, ...]:
    import dldiy

    own = {Path(dldiy.__file__).parent.resolve(), Path(__file__).parent.parent.resolve()}  # an editable install maps these by path
    prefixes = tuple(Path(p).resolve() for p in {prefix, sys.base_prefix, sys.exec_prefix} if p)
    entries = {Path(p).resolve() for p in path if p and p not in (".", os.curdir) and Path(p).is_dir()}
    entries = {p for p in entries if str(p) != cwd and p not in prefixes and _site_folder(p, prefixes)}
    paths = {p for p in (*prefixes, *entries, *own) if p.is_dir()}
    return tuple(sorted(p for p in paths if any(p.is_relative_to(t) for t in ("/tmp", "/var/tmp", "/dev/shm"))))


# Folders no sandbox may expose, nor any folder holding one (set per submission by the batch: the
# class's folder, the output folder; graders/batch/run.py). A context variable: each thread grading a
# submission sets its own.
KEEP_OUT: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("dldiy_keep_out", default=())


@contextlib.contextmanager
def keeping_out(paths) -> Iterator[None]:
    """Within this block, the sandboxes started from this thread refuse to expose `paths` or any
    folder holding one (and cover them where a bound folder holds them)."""
    token = KEEP_OUT.set(tuple(dict.fromkeys((*KEEP_OUT.get(), *(str(p) for p in paths if p)))))
    try:
        yield
    finally:
        KEEP_OUT.reset(token)


def refused_paths() -> list[str]:
    """What the child must refuse to expose (a candidate equal to one, or holding one): the folders kept
    out by the batch (`keeping_out`), and the grader's working folder unless it is the interpreter's
    own installation or inside it (a PYTHONPATH entry, or the cwd on the child's sys.path, would otherwise bring a
    class folder or an output folder into every sandbox)."""
    from .mounts import dldiy_paths, inside

    cwd = _cwd()
    installation = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix) if p]
    keep = [os.path.realpath(p) for p in KEEP_OUT.get()]
    if cwd and cwd != "/" and not any(inside(cwd, p) for p in (*installation, *dldiy_paths())):
        keep.append(cwd)
    return list(dict.fromkeys(keep))


class Worker:
    """A running harness process (graders/sandbox/child.py) for one exercise, kept between submissions:
    its channel's reader, its own output's drain, the CPU it is pinned to."""

    def __init__(self, spawner: Spawner, start: dict, key: tuple, limits: Limits):
        self.key, self.cpu = key, CPUS.take()
        read_fd, write_fd = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.child = spawner.start(dict(start, cpu=self.cpu), write_fd, out_w, child_env())
        except BaseException:
            CPUS.give_back(self.cpu)
            os.close(read_fd)
            os.close(out_r)
            raise
        finally:
            os.close(write_fd)
            os.close(out_w)
        self.read_fd = read_fd
        self.reader = _LineReader(read_fd)
        # its own prints (a harness's traceback under DLDIY_DEBUG); the students' come with each job
        self.drain = _CappedDrain(os.fdopen(out_r, "rb", buffering=0), limits.output_bytes)
        self.drain.start()

    def idle(self) -> bool:
        """Alive and silent, as a worker between jobs is: its channel neither ended nor holds a line."""
        try:
            return not select.select([self.read_fd], [], [], 0)[0]
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        self.child.kill()
        CPUS.give_back(self.cpu)
        try:
            os.close(self.read_fd)
        except OSError:
            pass
        self.drain.join(timeout=5)


class Workers:
    """Idle workers by (spawner, start request): a batch's jobs reuse them instead of starting a harness
    process per submission (each start is a fork of a 250 MB process and its teardown, the harness's
    module and caches built again). At most MAX_IDLE are kept; the oldest goes first."""

    MAX_IDLE = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[Worker] = []

    def take(self, spawner: Spawner, start: dict, limits: Limits) -> Worker:
        key = (spawner, json.dumps(start, sort_keys=True))
        while True:
            with self._lock:
                worker = next((w for w in self._idle if w.key == key), None)
                if worker is None:
                    break
                self._idle.remove(worker)
            if worker.idle():
                return worker
            worker.close()  # gone while idle (killed, out of memory): its channel says so
        return Worker(spawner, start, key, limits)

    def give_back(self, worker: Worker) -> None:
        with self._lock:
            self._idle.append(worker)
            extra = self._idle[:-self.MAX_IDLE] if len(self._idle) > self.MAX_IDLE else []
            del self._idle[:len(extra)]
        for old in extra:
            old.close()

    def idle_pids(self) -> list[int]:
        with self._lock:
            return [worker.child.pid for worker in self._idle]

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


WORKERS = Workers()
atexit.register(WORKERS.close_all)


def _start_request(exercise: Exercise, limits: Limits) -> dict:
    """What a worker needs before any job: the exercise's harness, API and loader's settings (and the
    harness file's stamp, so that an edited harness gets a new worker)."""
    try:
        stat = Path(exercise.harness_path).stat()
        stamp = [stat.st_mtime_ns, stat.st_size]
    except OSError:
        stamp = None
    return {"exercise_dir": str(exercise.folder), "exercise_id": exercise.id, "entry_name": exercise.entry,
            "api": {name: dataclasses.asdict(api) for name, api in exercise.api.items()},
            "load": exercise.load_settings(), "output_bytes": limits.output_bytes, "harness_stamp": stamp,
            "pid_namespaces": limits.namespaces}


def _one_child(exercise, entry, pending, outcome, cwd, outputs, limits, spawner, on_result=None) -> bool:
    """Run `pending` (consumed in place) on one student's process, served by a worker; False if it made
    no progress at all. The worker goes back to the pool only after a clean `done`."""
    startup_timeout = limits.startup_s
    marker = sandbox.new_marker()
    worker = WORKERS.take(spawner, _start_request(exercise, limits), limits)
    try:
        cgroup = sandbox.Cgroup(limits.processes, cpu=worker.cpu)  # on the CPU its harness is pinned to
    except BaseException:
        WORKERS.give_back(worker)
        raise
    job = {"entry": str(entry), "load_timeout": startup_timeout,
           # with the stand-ins each check handed over when it last ran (the child's guess, before it runs one)
           "tasks": [{"check": t.check, "seed": t.seed,
                      **({"stand_ins": sorted(known)} if (known := STAND_INS.get((exercise.id, t.check))) is not None
                         else {})} for t in pending],
           # the parent's view of each check, the only one the child runs (a caller may have changed it)
           "checks": {c.name: {"probe": c.probe, "params": c.params, "timeout": c.timeout}
                      for c in exercise.checks if any(t.check == c.name for t in pending)},
           "sandbox": dict(limits.spec(cwd, marker, str(cgroup.path) if cgroup.path else None,
                                       expose=(Path(exercise.folder).resolve(), *_interpreter_paths())),
                           refuse=refused_paths())}
    child_started = time.monotonic()
    reader, clean = worker.reader, False
    loaded, progressed = False, False
    contained = False  # the student's process was its PID namespace's init (the harness's word)
    timeout = startup_timeout + GRACE_S + (exercise.check(pending[0].check).timeout if pending else 0)
    try:
        sent = worker.child.send_job(job)  # a worker gone meanwhile: its channel ends, read as a death
        while True:
            line = reader.next_line(timeout) if sent else None
            if line is _TIMEOUT:
                where = "while loading" if not loaded else f"in check {pending[0].check!r} at seed {pending[0].seed}"
                if not loaded:
                    outcome.load_error = f"the submission did not finish loading within {startup_timeout:g} s"
                elif pending:
                    task = pending.pop(0)
                    _notify(on_result, task)
                    outcome.results[(task.check, task.seed)] = {"error": messages.error(
                        "timeout", f"did not finish within {timeout:g} s {where} (an endless loop, or far too slow?)")}
                    progressed = True
                return progressed
            if line is None:  # the harness process died
                worker.child.kill()  # (a Popen's exit status is read once it is gone)
                code = worker.child.code if worker.child.code is not None else worker.child.exit_code()
                why = _death(code, limits)
                if not loaded:
                    outcome.load_error = f"the process exited ({why}) while loading the submission: " \
                                         "does it call sys.exit() or os._exit() at import?"
                elif pending:
                    task = pending.pop(0)
                    _notify(on_result, task)
                    outcome.results[(task.check, task.seed)] = {"error": messages.error(
                        "died", f"the process exited ({why}) during this check: "
                                "sys.exit(), os._exit(), a crash, or a resource limit?")}
                    progressed = True
                return progressed
            assert isinstance(line, bytes)
            message = messages.parse(line)  # the one reader of the child's lines
            if message is None:
                continue
            if message["type"] == "done":
                outputs.append(message["output"])
                clean = True
                return progressed
            if message["type"] == "load_error":
                outcome.load_error = message["message"]
                progressed = True
                timeout = GRACE_S
                continue
            if message["type"] == "loaded":
                loaded, contained = True, message["pid_namespace"]
                if outcome.load_s is None:
                    outcome.load_s = time.monotonic() - child_started
                outcome.skipped, outcome.sandbox = message["skipped"], message["sandbox"]
                timeout = exercise.check(pending[0].check).timeout + GRACE_S if pending else GRACE_S
                continue
            if message["type"] == "result" and loaded and pending:
                key = (message["check"], message["seed"])
                if key != (pending[0].check, pending[0].seed):
                    continue  # out of order: not something our child sends; ignore it
                _notify(on_result, pending.pop(0))
                outcome.results[key] = messages.task_result(message)
                if "seconds" in message and "timeout" in message:
                    outcome.timings[key] = (message["seconds"], message["timeout"])
                # (a union: a submission whose probe fails before its swap hands over nothing, and must not
                # reorder its classmates' tasks; the child checks what each task really handed over anyway)
                learnt = (exercise.id, message["check"])
                STAND_INS[learnt] = STAND_INS.get(learnt, frozenset()) | frozenset(message.get("handed", ()))
                progressed = True
                timeout = exercise.check(pending[0].check).timeout + GRACE_S if pending else GRACE_S
    finally:
        if clean:
            WORKERS.give_back(worker)
        else:
            worker.close()
            outputs.append(worker.drain.text())
        cgroup.kill_all()
        if not contained:  # a stray that left with setsid() and outlived its process: none can outlive an init
            sandbox.sweep(marker)


def _notify(on_result: Callable[[Task], None] | None, task: Task) -> None:
    """The progress hook: a display's error must never cost a grade."""
    if on_result is not None:
        try:
            on_result(task)
        except Exception:  # noqa: BLE001
            pass


def _death(code: int | None, limits: Limits) -> str:
    """The exit status in words, naming the limit a signal most likely means."""
    if code is None:
        return "exit status unknown"
    signals = {signal.SIGXCPU: f"killed by SIGXCPU: more than {limits.cpu_s} s of CPU time",
               signal.SIGXFSZ: f"killed by SIGXFSZ: wrote a file over {limits.file_bytes} bytes",
               signal.SIGKILL: f"killed by SIGKILL: most likely its CPU-time limit ({limits.cpu_s} s of CPU "
                               "for all checks together), or the machine ran out of memory",
               signal.SIGSEGV: "killed by SIGSEGV: a crash, often memory exhausted inside a library"}
    number = -code if code < 0 else code - 128 if code > 128 else 0
    if number:
        try:
            said = signals.get(signal.Signals(number), f"killed by {signal.Signals(number).name}")
        except ValueError:
            return f"code {code}"
        # a positive status over 128 is a relay's word for a signal, or a code the program chose itself
        return said if code < 0 else f"exit status {code}, which is 128 + {signal.Signals(number).name} ({said}; " \
                                     "or the program's own sys.exit/os._exit code)"
    return f"code {code}"


_TIMEOUT = object()


class _LineReader:
    """Lines from the harness process, each at most LINE_CAP bytes and TOTAL_CAP in all: what it
    sends is trusted code's, but sized by what a submission returned, so it is capped all the same
    (an over-long line ends the child like a death, never a parent that grows without bound)."""

    LINE_CAP = 64 << 20
    TOTAL_CAP = 512 << 20

    def __init__(self, fd: int):
        self.fd, self.buffer, self.total = fd, b"", 0

    def next_line(self, timeout: float):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if len(self.buffer) > self.LINE_CAP or self.total > self.TOTAL_CAP:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return _TIMEOUT
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return _TIMEOUT
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.total += len(chunk)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line
