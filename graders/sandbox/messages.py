"""The JSON lines the harness process (graders/sandbox/child.py) writes to the parent (graders/sandbox/runner.py).

One type per line, the one function each side uses: the child builds its lines with `loaded`,
`load_error`, `measured`, `failed` and writes them with `encode`; the parent reads every line with
`parse`, which returns a typed message or None for anything else (a line that is not JSON, an
unknown type, a field of the wrong type). The error shape (`ErrorInfo`) is also what the parent
records for a task the child never answered (a timeout, a death, a submission that did not load).

    {"type": "loaded", "skipped": [str, ...], "sandbox": [str, ...], "pid_namespace": bool}   once, after the submission loaded
    {"type": "load_error", "message": str}                            instead, if it could not be
    {"type": "result", "check": str, "seed": int, "measurement": ...}
    {"type": "result", "check": str, "seed": int, "error": {"kind": str, "message": str, "traceback": str}}
    {"type": "done", "output": str}   after the submission's last line: what its process printed
"""

from __future__ import annotations

import json
from typing import Any, Callable, Literal, NotRequired, TypedDict, Union

# raised: the student's code raised; api: it broke the exercise's API or returned something unusable;
# load: the submission did not load; timeout, died, protocol: its process hung, ended, or talked nonsense.
ErrorKind = Literal["raised", "api", "load", "timeout", "died", "protocol"]
ERROR_KINDS: frozenset[str] = frozenset(ErrorKind.__args__)  # type: ignore[attr-defined]


class ErrorInfo(TypedDict):
    kind: ErrorKind
    message: str
    traceback: str  # the student's own frames, "" when there is none


class TaskResult(TypedDict, total=False):
    """What one (check, seed) produced, as the judge reads it: exactly one of the two keys."""

    measurement: Any
    error: ErrorInfo


class Loaded(TypedDict):
    type: Literal["loaded"]
    skipped: list[str]
    sandbox: list[str]  # the student's process's own report of its confinement (for the record)
    # the zygote's word, through the harness: the student's process is its PID namespace's init, so that
    # nothing it starts outlives it (the parent then needs no sweep for strays)
    pid_namespace: bool


class LoadError(TypedDict):
    type: Literal["load_error"]
    message: str


class Result(TypedDict):
    type: Literal["result"]
    check: str
    seed: int
    measurement: NotRequired[Any]
    error: NotRequired[ErrorInfo]
    seconds: NotRequired[float]
    timeout: NotRequired[float]
    # the names the task's probe handed the student's process as the harness's own (stand-ins), which the
    # parent orders later jobs' tasks by (runner.in_stand_in_order)
    handed: NotRequired[list[str]]


class Done(TypedDict):
    type: Literal["done"]
    output: str


Message = Union[Loaded, LoadError, Result, Done]


# -- the child's side ---------------------------------------------------------------------------------

def error(kind: ErrorKind, message: str, traceback: str = "") -> ErrorInfo:
    # str(): a line the parent's parser refused would leave its task waiting for the backstop timeout
    return {"kind": kind, "message": str(message), "traceback": str(traceback or "")}


def loaded(skipped: list[str], sandbox: list[str], pid_namespace: bool = False) -> Loaded:
    return {"type": "loaded", "skipped": list(skipped), "sandbox": list(sandbox), "pid_namespace": pid_namespace}


def load_error(message: str) -> LoadError:
    return {"type": "load_error", "message": message}


def measured(check: str, seed: int, measurement: Any) -> Result:
    return {"type": "result", "check": check, "seed": seed, "measurement": measurement}


def failed(check: str, seed: int, info: ErrorInfo) -> Result:
    return {"type": "result", "check": check, "seed": seed, "error": info}


def done(output: str) -> Done:
    return {"type": "done", "output": str(output)}


def encode(message: Message, default: Callable[[Any], Any] | None = None) -> str:
    """One line of JSON (no newline): `default` turns a value json cannot write into plain data."""
    return json.dumps(message, default=default)


# -- the parent's side --------------------------------------------------------------------------------

def parse(line: bytes | str) -> Message | None:
    """The message on `line`, checked field by field; None for anything that is not one of ours."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    kind = raw.get("type")
    if kind == "loaded":
        return loaded(_strings(raw.get("skipped")), _strings(raw.get("sandbox")), raw.get("pid_namespace") is True)
    if kind == "load_error":
        message = raw.get("message")
        return load_error(message if isinstance(message, str) else "the submission could not be loaded")
    if kind == "done":
        output = raw.get("output")
        return done(output if isinstance(output, str) else "")
    if kind == "result":
        check, seed = raw.get("check"), raw.get("seed")
        if not isinstance(check, str) or not isinstance(seed, int) or isinstance(seed, bool):
            return None
        if ("measurement" in raw) == ("error" in raw):
            return None
        result: Result | None
        if "measurement" in raw:
            result = measured(check, seed, raw["measurement"])
        else:
            info = parse_error(raw["error"])
            result = None if info is None else failed(check, seed, info)
        if result is not None and isinstance(raw.get("handed"), list):
            result["handed"] = _strings(raw["handed"])
        if result is not None:
            for key in ("seconds", "timeout"):  # (how long the task ran, of its timeout: a note near the limit)
                value = raw.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                    result[key] = float(value)  # type: ignore[literal-required]
        return result
    return None


def parse_error(raw: Any) -> ErrorInfo | None:
    if not isinstance(raw, dict) or raw.get("kind") not in ERROR_KINDS:
        return None
    message, traceback = raw.get("message", ""), raw.get("traceback", "")
    if not isinstance(message, str) or not isinstance(traceback, str):
        return None
    return error(raw["kind"], message, traceback)


def task_result(message: Result) -> TaskResult:
    """A result line as the judge reads it (check and seed are the key it is filed under)."""
    if "error" in message:
        return {"error": message["error"]}
    return {"measurement": message.get("measurement")}


def _strings(value: Any) -> list[str]:
    return [str(s) for s in value] if isinstance(value, list) else []
