"""The harness process: trusted code that probes submissions living in other processes.

Protocol with the parent: the parent writes the start request, one JSON line on stdin,
    {"exercise_dir": str, "exercise_id": str, "api": {name: {...}}, "load": {...}, "cpu": int | None}
then one JSON line per submission (a job), for as long as it keeps this process:
    {"entry": str, "sandbox": {...}, "load_timeout": float, "tasks": [{"check": str, "seed": int}, ...],
     "checks": {name: {"probe": str, "params": {...}, "timeout": float}}}
the parent's checks, the only ones this process runs (it reads no spec.toml). For each job it writes
JSON lines to the file descriptor named in argv[1], each one of graders/sandbox/messages.py's types
(written by `run`'s emit), the last one `done`. End of file on stdin ends it.

This process runs the exercise's harness: it builds the data, runs the training drivers and finite
differences, and measures. Each submission runs in a separate, confined process
(graders/sandbox/student.py) that can only answer calls with plain data; it never sees this process's
result channel, the exercise folder, or any expected value. Those processes are forked by a zygote
that this process forked at its start, before it read any job: none inherits a hidden seed or another
student's work. A call that overruns the check's timeout gets the student's stack dumped (where it
hung), the process killed, and a fresh one for the next check; after one timeout the later checks get
a shorter budget, that check's other seeds are not run (it has failed), and the replacement refuses to
run the submission's function that did not finish (student.refuse_hung; HungEarlier here), so a
submission that hangs does not spend a timeout on every task.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from . import messages
from .messages import Message

if TYPE_CHECKING:
    from ..course.exercise import Exercise

LATER_TIMEOUT_FRACTION = 0.25  # of a check's timeout, once the submission has timed out once
MIN_LATER_TIMEOUT_S = 2.0


def _pin_threads() -> None:
    # One thread per process: on these tiny problems torch's pool only fights the other children.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (a forked worker)
        pass
    from . import nosympy

    # sympy stays out of check's harness and its students as out of grade's fork server: the placement
    # check's first meta op imported it in the student's process, 0.3-0.7 s of every `dldiy check`
    nosympy.defer()
    from .torchfast import skip_dynamo

    skip_dynamo()  # inherited by the student's process, forked from this one


class StudentProcess:
    """One running student process and the harness's end of its conversation."""

    def __init__(self, request: dict[str, Any], load_timeout: float, zygote: Any = None,
                 output_fd: int | None = None):
        """`zygote`: the harness's (graders/sandbox/student.py); without one (a test, a benchmark), one of
        its own, closed with it. `output_fd`: where the student's prints go (default: nowhere)."""
        from . import wire
        from .endpoint import Endpoint
        from .student import Zygote

        self.request = request
        self.pid: int
        self.dump_fd: int
        self.status_fd: int
        self.namespace_init: bool  # the zygote's word (trusted), not the student's report
        self._own_zygote = Zygote() if zygote is None else None
        out = os.open(os.devnull, os.O_WRONLY) if output_fd is None else output_fd
        try:
            self.pid, sock, self.dump_fd, self.status_fd, self.namespace_init = \
                (zygote or self._own_zygote).fork_student(request, out)
        finally:
            if output_fd is None:
                os.close(out)
        self.endpoint = Endpoint(sock, "harness")
        self.exit_code: int | None = None
        self.hung_frames: list[tuple[str, str, str]] = []  # (file, line, function) of those frames, innermost first
        self.endpoint.deadline = time.monotonic() + load_timeout
        self.sandbox: list[str] = []
        try:
            header, _ = self.endpoint.reader.read(self.endpoint.deadline)
            if header.get("op") == "confined":  # sent before any of the student's code ran: its own words
                raw = header.get("sandbox")
                self.sandbox = [str(s)[:300] for s in raw][:50] if isinstance(raw, list) else []
                header, _ = self.endpoint.reader.read(self.endpoint.deadline)
        except wire.Timeout:
            where = self.where_it_hangs()
            self.kill()
            raise LoadFailed(f"the submission did not finish loading within {load_timeout:g} s"
                             + (f" ({where})" if where else " (an endless loop or a blocking call at import?)"))
        except (wire.PeerGone, wire.WireError, OSError):
            why = self.death()  # (before kill(): the zygote reports the status it exited with)
            self.kill()
            raise LoadFailed(f"the process exited ({why}) while loading the submission: "
                             "does it call sys.exit() or os._exit() at import?")
        if header.get("op") == "load_error":
            self.kill()
            raise LoadFailed(str(header.get("message", "the submission could not be loaded"))[:20_000])
        if header.get("op") != "loaded":
            self.kill()
            raise LoadFailed("the submission's process sent something else than its loading report")
        self.skipped = [str(s)[:500] for s in header.get("skipped", [])][:200] if isinstance(header.get("skipped"), list) else []
        self.endpoint.deadline = None

    def where_it_hangs(self) -> str:
        """Ask the student's process for its stack (faulthandler on SIGUSR1) and name its own frames."""
        try:
            os.killpg(self.pid, signal.SIGUSR1)
        except OSError:
            return ""
        text, deadline = b"", time.monotonic() + 0.5
        while time.monotonic() < deadline and len(text) < 65536:
            ready, _, _ = select.select([self.dump_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(self.dump_fd, 65536)
            if not chunk:
                break
            text += chunk
            if b"\n\n" in text or text.count(b"File") >= 1 and text.endswith(b"\n") and b"most recent" in text:
                time.sleep(0.05)
        dump = text.decode("utf-8", "replace")
        self.hung_frames = _student_frames(dump, self.request["entry"])
        return _student_frame(dump, self.request["entry"])

    def kill(self) -> None:
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        spec = self.request.get("sandbox") or {}
        for cgroup in spec.get("cgroups") or ([spec["cgroup"]] if spec.get("cgroup") else []):
            _kill_members_only(Path(cgroup))
        for close in (self.endpoint.sock.close, lambda: os.close(self.dump_fd), lambda: os.close(self.status_fd)):
            try:
                close()
            except OSError:
                pass
        if self._own_zygote is not None:
            self._own_zygote.close()
            self._own_zygote = None

    def _read_status(self, wait_s: float) -> None:
        """The exit status the zygote writes when it reaps the process (it is the zygote's child)."""
        if self.exit_code is not None:
            return
        ready, _, _ = select.select([self.status_fd], [], [], wait_s)
        if ready:
            try:
                text = os.read(self.status_fd, 32)
                self.exit_code = int(text) if text else None
            except (OSError, ValueError):
                pass

    def death(self) -> str:
        self._read_status(2.0)  # a peer that closed its socket but lives on is not waited for forever
        from .runner import _death
        from .confine import Limits

        spec = self.request.get("sandbox") or {}
        known = {f.name for f in dataclasses.fields(Limits)} - {"hide"}
        limits = Limits(**{k: v for k, v in spec.items() if k in known})
        from .confine import oom_kills

        groups = spec.get("cgroups") or ([spec["cgroup"]] if spec.get("cgroup") else [])
        if limits.memory_bytes and oom_kills([Path(g) for g in groups]):  # the kernel's own count, not a guess
            return (f"killed by its memory limit: its processes together held more than {limits.memory_bytes} bytes "
                    "(the sandbox's memory cgroup; tmpfs files and shared memory count)")
        return _death(self.exit_code, limits)


class LoadFailed(Exception):
    pass


def _kill_members_only(path: Path) -> None:
    """SIGKILL every process of the student's cgroup (the runner removes the cgroup itself)."""
    try:
        for pid in (path / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    except OSError:
        pass


def _student_frames(dump: str, entry: str) -> list[tuple[str, str, str]]:
    """(file, line, function) of each frame of the student's own files in a faulthandler dump, innermost first."""
    root = str(Path(entry).resolve().parent)
    frames = []
    for line in dump.splitlines():  # most recent call first
        line = line.strip()
        if not line.startswith("File "):
            continue
        try:
            path = line.split('"')[1]
            rest = line.split('"')[2]
            lineno = rest.split("line")[1].split()[0]
            func = rest.split(" in ", 1)[1].strip() if " in " in rest else "?"
        except IndexError:
            continue
        if path.startswith(root):
            frames.append((path[len(root):].lstrip("/"), lineno, func))
    return frames


def _student_frame(dump: str, entry: str) -> str:
    """The innermost frame of the student's own files in a faulthandler dump, in words."""
    frames = _student_frames(dump, entry)
    return f"it was running {frames[0][0]} line {frames[0][1]}, in {frames[0][2]}" if frames else ""


def serve_jobs(start: dict[str, Any], emit: Callable[[Message], None], jobs: Iterator[bytes]) -> None:
    """Load the exercise's harness, fork the zygote, then serve each job (a submission) read from `jobs`
    until they end. The exercise's API, its checks and the loader's settings are the parent's
    (graders/sandbox/runner.py): this process reads no spec.toml, only the exercise's harness.py."""
    from .runner import _CappedDrain
    from .student import Zygote
    from .submission import compiled, installation_folders, load_module_from

    exercise = _parents_exercise(start)
    name = f"_dldiy_harness_{exercise.id.replace('-', '_')}"
    try:
        compiled(exercise.harness_path, remember=True)  # once per worker (a fork server's already did)
    except (OSError, SyntaxError, ValueError):
        pass  # loading it below raises the same error, where it is reported
    # what the harness imports, before the zygote is forked, but not the harness itself: the students'
    # processes forked from the zygote must not find its exact loss and gradient (endpoint.Local)
    _import_what_it_imports(exercise.harness_path)
    # and what every student's process imports itself (student.run: 4 ms each when left to it)
    import resource  # noqa: F401 - confine's rlimits

    import dldiy.incheck  # noqa: F401
    import gc

    # torch's ~165,000 objects out of the collector's reach, in this process and the student's forked
    # from its zygote: a full collection walks them all (0.1-0.3 s), and the probes' many small tensors
    # and messages set one off again and again
    gc.freeze()
    # what a student's process resolves before it loads (submission.import_only_what_was_handed_in),
    # resolved once here for all of them
    installation_folders()
    # now, before any job: what it forks holds nothing of any submission
    zygote = Zygote(pid_namespaces=bool(start.get("pid_namespaces")))
    _cap_own_memory()  # after the zygote's fork: the students' processes get limits of their own
    fresh = GlobalState()
    try:
        for line in jobs:
            if not line.strip():
                continue
            fresh.restore()  # each submission's probes start from the same global state, as in a new process
            # and from a harness module of their own: its module-level state (exercise-3 keeps the
            # model it trained per seed; a cache of a student's objects) never reaches the next one
            harness = load_module_from(exercise.harness_path, name)
            # What the job's student processes print: a pipe drained here with a cap (a flood is read
            # and dropped, never kept, and never blocks the student), sent with `done`.
            read_fd, write_fd = os.pipe()
            drain = _CappedDrain(os.fdopen(read_fd, "rb", buffering=0), int(start.get("output_bytes", 65536)))
            drain.start()
            served = False
            try:
                serve_one(exercise, harness, zygote, json.loads(line), start.get("load"), emit, write_fd)
                served = True
            finally:
                os.close(write_fd)  # the students are gone: the drain reads end of file
                drain.join(timeout=1.0)
                if served:  # else no `done`: this process ends, and the parent reads this job's end as its death
                    emit(messages.done(drain.text()))
    finally:
        zygote.close()


def _import_what_it_imports(path: Path) -> None:
    """The modules a harness file imports at its top level (torch's, numpy's, dldiy's), imported here
    without running the file. A name that does not import is left for the file's own load to report."""
    import ast
    import importlib

    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return
    for node in tree.body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001
                pass


HARNESS_DATA_HEADROOM = 2 << 30  # the harness's own needs beyond what one student may hold (~0.3 GB used)


def _cap_own_memory() -> None:
    """A soft RLIMIT_DATA on this harness process: a student's memory limit plus headroom. The harness
    runs with no cgroup of its own and decodes what students' processes send it (replies, inputs of a
    lent function kept for a backward pass: bridge.GRAPH_BYTES_KEPT); whatever gets past those caps
    then fails an allocation here (that submission's check errors; the worker is replaced) instead of
    taking the grader's machine (red team A02: 7.6 GB held by one harness). Not where a GPU's device nodes
    exist: CUDA's driver maps private memory of its own in the harness (parity), unmeasured here."""
    import resource

    from .confine import Limits
    from .mounts import device_names

    student = Limits().memory_bytes
    if not student or any(name.startswith("nvidia") for name in device_names()):
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = student + HARNESS_DATA_HEADROOM
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))


class GlobalState:
    """What a probe may change in this process beyond its own objects, taken at the worker's start and
    put back before every job: the random generators (torch's, numpy's, Python's: a probe that seeds
    the global generator to see whether a submission draws from it), torch's default dtype, grad mode,
    determinism flag and TF32 switches (the parity check turns TF32 off and determinism on). One
    submission's probes then measure as they would in a fresh process, whatever ran before them (a
    test compares the two)."""

    def __init__(self) -> None:
        import random

        import numpy as np
        import torch

        self.torch_rng, self.numpy_rng, self.python_rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
        self.dtype, self.grad = torch.get_default_dtype(), torch.is_grad_enabled()
        self.deterministic = torch.are_deterministic_algorithms_enabled()
        self.tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)

    def restore(self) -> None:
        import random

        import numpy as np
        import torch

        torch.set_rng_state(self.torch_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)
        torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(self.grad)
        if torch.are_deterministic_algorithms_enabled() != self.deterministic:  # (setting it costs ~0.9 s)
            torch.use_deterministic_algorithms(self.deterministic)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.tf32


def serve_one(exercise: Exercise, harness: Any, zygote: Any, request: dict[str, Any], load: Any,
              emit: Callable[[Message], None], out_fd: int) -> None:
    """One submission (`request`, its job): start its process from the zygote, loading it with the
    loader's settings `load`, its prints to `out_fd`; run every task's probe, report each result."""
    from ..api import ApiError
    from .endpoint import RemoteError
    from .forbid import scan, watched, with_aliases
    from ..kinds.invariants import Violation
    from .remote import HungEarlier, RemoteSubmission
    from . import wire

    forbid = with_aliases({name: list(entry.forbid) for name, entry in exercise.api.items() if entry.forbid})
    findings = scan(Path(request["entry"]), forbid)
    student_request = {"entry": request["entry"], "sandbox": request.get("sandbox"),
                       "forbid": watched(Path(request["entry"]), forbid), "load": load}
    load_timeout = float(request.get("load_timeout", 60.0))
    student: StudentProcess | None
    try:
        student = StudentProcess(student_request, load_timeout, zygote, out_fd)
    except LoadFailed as e:
        emit(messages.load_error(str(e)))
        return
    emit(messages.loaded(student.skipped, student.sandbox, student.namespace_init))
    once = student.endpoint.once  # probes run once per submission (RemoteSubmission.first_time), in any of its processes
    timed_out = False
    overran: dict[str, str] = {}  # check -> its timeout's message: the check has failed, its other seeds are not run
    checks: dict[str, dict[str, Any]] = request.get("checks") or {}
    for task in request["tasks"]:
        name, seed = str(task["check"]), int(task["seed"])
        given = checks[name]  # the parent sends every check it asks for (runner._one_child)
        probe, params, timeout = str(given["probe"]), given["params"], float(given["timeout"])
        if name in overran:  # one seed's timeout fails the check: waiting out its other seeds tells nothing more
            emit(messages.failed(name, seed, messages.error("timeout", f"not run: {overran[name]}")))
            continue
        # The harness may hand the student's process its own version of a name (a stand-in: a gradient for
        # train()'s loop, a layer for mlp_forward), which the submission may keep and answer with later
        # (integrity round 7b). A process that holds stand-ins serves a task only where the task hands over the
        # same names or more (what it holds then gives nothing the task does not); the parent orders the tasks so
        # that this is the common case (runner.in_stand_in_order), and a task that turns out to hand over fewer
        # is run again in a fresh process, its measurement from the first run discarded.
        for attempt in range(2):
            held: set[str] = set(student.endpoint.stand_ins) if student is not None else set()
            predicted = task.get("stand_ins")  # the parent's word: what the check handed over when it last ran
            if student is not None and held and isinstance(predicted, list) and not held <= set(predicted):
                student.kill()
                student, held = None, set()
            once_before = set(once)
            reply: Message
            if student is None:
                try:  # a replacement, from the zygote: it holds nothing of this job
                    student = StudentProcess(student_request, load_timeout, zygote, out_fd)
                except LoadFailed as e:
                    reply = messages.failed(name, seed, messages.error("load", str(e)))
                    break
                student.endpoint.once = once
            if timed_out:
                timeout = max(MIN_LATER_TIMEOUT_S, LATER_TIMEOUT_FRACTION * timeout)
            started = time.monotonic()
            student.endpoint.deadline = started + timeout
            sub = RemoteSubmission(student.endpoint, exercise, findings)
            try:
                reply = messages.measured(name, seed, getattr(harness, probe)(sub, seed, params))
            except RemoteError as e:  # first: a student's OSError arrives as a RemoteError that is an OSError too
                if e.kind == "forbidden":  # the run-time guard: a rule broken, judged like the static scan
                    reply = messages.measured(name, seed, {"violation": e.message})
                else:
                    reply = messages.failed(name, seed, messages.error(
                        "api" if e.kind == "api" else "raised", e.message, e.traceback))
            except wire.Timeout:
                where = student.where_it_hangs()
                # The function that did not finish is the outermost of the submission's own on the stack (the
                # innermost is only where it happened to be: a helper that the looping caller calls).
                outermost = student.hung_frames[-1] if student.hung_frames else None
                if outermost is not None:  # the replacement refuses to run the function that holds that line again
                    file, line, _ = outermost
                    student_request["hung_sites"] = [*student_request.get("hung_sites", []), [
                        file, line, f"{name} at seed {seed}, after {timeout:g} s: {where}"]]
                student.kill()
                student, timed_out = None, True
                overran[name] = f"this check did not finish within {timeout:g} s at seed {seed}"
                reply = messages.failed(name, seed, messages.error("timeout", (
                    f"did not finish within {timeout:g} s in check {name!r} at seed {seed}"
                    + (f": {where}" if where else " (an endless loop, or far too slow?)"))))
            except HungEarlier as e:  # the student's process refused at once (refuse_hung): it is not stuck
                reply = messages.failed(name, seed, messages.error("timeout", e.message))
            except (wire.PeerGone, OSError):
                why = student.death()
                student.kill()
                student = None
                reply = messages.failed(name, seed, messages.error("died", (
                    f"the process exited ({why}) during this check: sys.exit(), os._exit(), a crash, "
                    "or a resource limit?")))
            except wire.WireError as e:
                student.kill()
                student = None
                reply = messages.failed(name, seed, messages.error(
                    "protocol", f"the submission's process broke the protocol: it sent {e}"))
            except ApiError as e:
                reply = messages.failed(name, seed, messages.error("api", str(e)))
            except Violation as v:  # a rule of the API broken (an argument changed in place): that check fails
                reply = messages.measured(name, seed, {"violation": str(v)})
            except Exception as e:  # noqa: BLE001 - a value the harness could not use
                reply = messages.failed(name, seed, messages.error("api", (
                    f"the harness could not use what the submission returned ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:300] if str(e) else ''}{_harness_line(e, exercise)})")))
            finally:
                if student is not None:
                    student.endpoint.deadline = None
            if student is None:
                break
            handed = set(student.endpoint.task_stand_ins)
            student.endpoint.task_stand_ins.clear()
            if not held <= handed and attempt == 0:
                student.kill()  # it held more than this task handed over: its measurement may be the harness's
                student = None
                once.clear()
                once.update(once_before)
                continue
            if handed:
                reply["handed"] = sorted(handed)
            # how long the task ran, of its timeout: one near its limit is a grade a busier machine may change
            reply["seconds"], reply["timeout"] = round(time.monotonic() - started, 3), float(timeout)
            break
        emit(reply)
    if student is not None:
        student.kill()




def _harness_line(e: BaseException, exercise: Exercise) -> str:
    """`; raised at harness.py line 70, in training`: the innermost line of the exercise's harness where a
    probe's own code raised, so that an instructor tells a mistake of the harness from a value the
    submission returned (course6 trial: a RuntimeError of the probe read as the student's fault alone)."""
    import traceback

    harness = str(exercise.harness_path)
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == harness]
    return f"; raised at harness.py line {frames[-1].lineno}, in {frames[-1].name}" if frames else ""


def _parents_exercise(request: dict[str, Any]) -> Exercise:
    """The exercise as far as this process needs it, from the parent's request: its folder (for the
    harness), its id and its API (what the submission's answers are validated against)."""
    from ..course.exercise import ApiEntry, Exercise

    api = {str(name): ApiEntry(**{**entry, "forbid": tuple(entry.get("forbid") or ())})
           for name, entry in (request.get("api") or {}).items()}
    return Exercise(id=str(request["exercise_id"]), title="", folder=Path(request["exercise_dir"]),
                    entry=str(request.get("entry_name", "")), seeds=(), checks=(), api=api)


def _json_default(value):
    from ..api import to_plain

    plain = to_plain(value)
    if plain is value:
        raise TypeError(f"cannot send {type(value).__name__} to the parent")
    return plain


def _read_stdin() -> dict[str, Any]:
    text = sys.stdin.read()
    return json.loads(text) if text.strip() else {}


def run(start: dict, channel_fd: int, jobs: Iterator[bytes]) -> None:
    """Serve `start` and then every job read from `jobs`, writing JSON lines to `channel_fd`."""
    channel = os.fdopen(channel_fd, "w", buffering=1)

    def emit(message: Message) -> None:  # the only writer of the parent's channel
        channel.write(messages.encode(message, _json_default) + "\n")
        channel.flush()

    os.set_inheritable(channel_fd, False)
    from .spawn import pin_to

    pin_to(start.get("cpu"))  # this process and the students', which take turns with it
    _pin_threads()
    serve_jobs(start, emit, jobs)
    channel.close()


def main() -> None:
    fd = int(sys.argv[1])
    sys.argv = ["dldiy-harness"]
    from .spawn import name_process

    name_process("dldiy-harness")
    stdin = sys.stdin.buffer
    run(json.loads(stdin.readline()), fd, iter(stdin.readline, b""))  # the start, then the jobs (spawn.py)


if __name__ == "__main__":
    main()
