"""The child process: load one submission, run the requested probes, stream plain measurements.

Protocol: the parent writes one JSON request on stdin,
    {"exercise_dir": str, "entry": str, "tasks": [{"check": str, "seed": int}, ...]}
and reads JSON lines from the file descriptor named in argv[1]:
    {"type": "loaded", "skipped": [...], "sandbox": [...]}   once, after the submission was executed
    {"type": "exit", "code": int}                    last, when a PID namespace's init has exited
    {"type": "load_error", "message": str}           instead, if it could not be
    {"type": "result", "check": str, "seed": int, "measurement": {...}}
    {"type": "result", "check": str, "seed": int, "error": {"kind": str, "message": str, "traceback": str}}
With a "sandbox" key (graders/sandbox.py's Limits.spec), the child confines itself before it loads
anything of the student's. Only numbers and strings cross: the child never sends a verdict and never pickles. Whatever the
submission prints goes to stdout/stderr, which the parent captures apart from this channel.
"""

from __future__ import annotations

import json
import os
import sys


def _pin_threads() -> None:
    # One thread per child: on these tiny problems torch's pool only fights the other children.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (a forked worker)
        pass


def serve(request: dict, emit, sandbox: list[str] | None = None) -> None:
    """Load the submission and measure each task, reporting through `emit(dict)`."""
    from pathlib import Path

    from .api import ApiError, Submission
    from .exercise import load_exercise_dir
    from .submission import SubmissionError, describe, load, load_module_from, trimmed_traceback

    exercise = load_exercise_dir(Path(request["exercise_dir"]))
    harness = load_module_from(exercise.harness_path, f"_dldiy_harness_{exercise.id.replace('-', '_')}")
    try:
        loaded = load(Path(request["entry"]), exercise.load_settings())
    except SubmissionError as e:
        emit({"type": "load_error", "message": str(e)})
        return
    emit({"type": "loaded", "skipped": loaded.skipped, "sandbox": sandbox or []})
    sub = Submission(loaded, exercise)
    for task in request["tasks"]:
        check = exercise.check(task["check"])
        reply = {"type": "result", "check": check.name, "seed": task["seed"]}
        try:
            reply["measurement"] = getattr(harness, check.probe)(sub, task["seed"], check.params)
        except ApiError as e:
            reply["error"] = {"kind": "api", "message": str(e), "traceback": ""}
        except SubmissionError as e:
            reply["error"] = {"kind": "load", "message": str(e), "traceback": ""}
        except BaseException as e:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from student code too
            reply["error"] = {"kind": "raised", "message": describe(e, loaded),
                              "traceback": trimmed_traceback(e, loaded)}
        emit(reply)


def _json_default(value):
    from .api import to_plain

    plain = to_plain(value)
    if plain is value:
        raise TypeError(f"cannot send {type(value).__name__} to the parent")
    return plain


def run(request: dict, channel_fd: int) -> None:
    """Confine this process (if asked), then serve `request`, writing JSON lines to `channel_fd`."""
    channel = os.fdopen(channel_fd, "w", buffering=1)

    def emit(message: dict) -> None:
        channel.write(json.dumps(message, default=_json_default) + "\n")
        channel.flush()

    sandbox = None
    if request.get("sandbox"):
        from .sandbox import confine

        state = confine(request["sandbox"], report_exit=lambda code: emit({"type": "exit", "code": code}))
        sandbox = state.applied + [f"not applied: {m}" for m in state.missing]
    _pin_threads()
    serve(request, emit, sandbox)
    channel.close()


def main() -> None:
    fd = int(sys.argv[1])
    sys.argv = ["dldiy-child"]  # nothing about the parent's paths stays visible to the submission
    run(json.loads(sys.stdin.read()), fd)


if __name__ == "__main__":
    main()
