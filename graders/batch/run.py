"""Grade a class: one task per student, run on local threads or a Dask cluster, results as they finish.

Each task calls `assess` (its own sandboxed child per submission) and returns a plain-JSON record, so a
Dask worker can run it and ship it back. The expectations for hidden seeds are measured ONCE per batch
from the reference, here in the trusted parent, and handed to the judging side of each task; the
children only ever receive seeds, never expected values.
"""

from __future__ import annotations

import dataclasses

import functools
import os
import secrets
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator

from ..assess import assess, measure_reference
from ..sandbox.runner import keeping_out
from ..sandbox.submission import SubmissionError, locate
from ..course.folders import reference_path
from .discover import Found
from ..course.exercise import Exercise, load_exercise_dir
from ..report import SKIP_POLICIES, Report

__all__ = ["SKIP_POLICIES", "grade_one", "run_local", "run_cluster", "batch_expectations", "draw_hidden_seeds"]
from ..sandbox.forkserver import shared


def draw_hidden_seeds(count: int, public: tuple[int, ...]) -> tuple[int, ...]:
    """`count` distinct seeds in [1000, 10^6), none of them public, from the OS's randomness."""
    rng = secrets.SystemRandom()
    seeds: list[int] = []
    while len(seeds) < count:
        s = rng.randrange(1000, 1_000_000)
        if s not in public and s not in seeds:
            seeds.append(s)
    return tuple(sorted(seeds))


class ReferenceFailed(RuntimeError):
    """The reference fails at a hidden seed: the instructor's to fix, before anyone is graded."""


def batch_expectations(exercise: Exercise, hidden: tuple[int, ...], checks: list[str]) -> dict[str, dict[str, Any]]:
    """Recorded public expectations plus the reference's live measurements at the hidden seeds."""
    expected = {name: dict(per_seed) for name, per_seed in exercise.expected().items()}
    if not hidden:
        return expected
    chosen = [exercise.check(c) for c in checks]
    live, problems = measure_reference(exercise, reference_path(exercise.id), seeds=hidden, checks=chosen,
                                       server=shared(), hidden=hidden)
    if problems:
        raise ReferenceFailed("the reference fails at the hidden seeds (fix it before grading):\n  "
                           + "\n  ".join(problems))
    for name, per_seed in live.items():
        expected.setdefault(name, {}).update(per_seed)
    return expected


@functools.lru_cache(maxsize=None)
def _exercise(folder: str) -> Exercise:
    return load_exercise_dir(Path(folder))




def submission_of(found: Found) -> dict[str, Any]:
    """What a task needs to know of one student's submission, as plain JSON (it travels to Dask workers)."""
    return {"student": found.student, "path": _str(found.path), "error": found.error,
            "graded_file": _str(found.graded), "sha256": found.sha256, "content_hash": found.content_hash,
            "note": found.note, "keep_out": list(found.keep_out)}


def load_timeout_for(exercise: Exercise) -> float:
    """How long a student's submission may take to load: 10 times what the reference takes, plus 2 s,
    never under LOAD_TIMEOUT_FLOOR_S nor over the spec's limit. One submission hanging at import then
    costs its worker seconds, not the minute a fixed limit would."""
    from ..sandbox.runner import run_child

    if exercise.load_timeout is not None:  # the spec or --load-timeout said: theirs to decide
        return float(exercise.load_timeout)
    cap = exercise.limits().startup_s
    outcome = run_child(exercise, locate(reference_path(exercise.id), exercise.entry), [],
                        cwd=reference_path(exercise.id), server=shared(), load_only=True)
    if outcome.load_s is None or outcome.load_error:
        return cap
    return min(cap, max(LOAD_TIMEOUT_FLOOR_S, 10 * outcome.load_s + 2.0))


LOAD_TIMEOUT_FLOOR_S = 5.0


def default_jobs() -> int:
    """Submissions graded at once by default: one more than the CPUs. Each submission's harness and
    student processes share one CPU and take turns; while the parent files one submission and
    prepares the next (its working copy, cgroups, journal line), that CPU would idle without a third.
    Measured on 2 cores, 120 exercise-1 submissions: 14.1 s with 2 jobs, 11.4 s with 3."""
    return (os.cpu_count() or 1) + 1


def grade_one(exercise_folder: str, submission: dict[str, Any], checks: list[str], hidden: tuple[int, ...],
              expected: Mapping[str, dict[str, Any]], skips: str = "leave-out",
              load_timeout: float | None = None, public: int | None = None) -> dict[str, Any]:
    """One student's record (plain JSON). Never raises: whatever goes wrong is the student's error row.

    A record is the submission's Report in its one JSON form (graders/report.py) beside what the batch
    knows of it: the student, the file graded and its sha256, the hash of the whole submission (resume
    compares it), the skip policy. `skips` is the instructor's policy for checks that could not run
    here (a GPU parity check on a CPU grader): "leave-out" takes their points out of the maximum,
    "zero" counts them as 0. `public`: how many public seeds run beside the hidden ones (None: all)."""
    started = time.monotonic()
    exercise = _exercise(exercise_folder)
    path, error = submission.get("path"), submission.get("error")
    meta = {"student": submission["student"], "graded_file": submission.get("graded_file"),
            "sha256": submission.get("sha256"), "content_hash": submission.get("content_hash"), "skips": skips}
    if submission.get("note"):
        meta["note"] = submission["note"]  # for the instructor: e.g. a name another entry also had
    unusable = Report(exercise.id, path or "", [], error or "nothing to grade",
                      declared_max=sum(exercise.check(c).points for c in checks))
    record: dict[str, Any] = {**meta, **unusable.to_json()}
    if path is not None and error is None:
        try:
            limits = exercise.limits()
            if load_timeout is not None:
                limits = dataclasses.replace(limits, startup_s=load_timeout)
            # the class's folder and the batch's output are never exposed to a sandbox (nor a folder
            # holding them: the grader's cwd or a PYTHONPATH entry may be one)
            with keeping_out(submission.get("keep_out") or ()):
                report = assess(exercise, Path(path), checks=[exercise.check(c) for c in checks],
                                hidden_seeds=hidden, expected=expected, server=shared(), limits=limits,
                                public_seeds=public)
            report.output = report.output[:4000]
            report.apply_skip_policy(skips)
            record = {**meta, **report.to_json()}
        except SubmissionError as e:  # the submission's fault (a missing entry file, a malformed notebook):
            unusable.load_error = str(e) or type(e).__name__  # its words, never a traceback of ours
            record = {**meta, **unusable.to_json()}
        except Exception as e:  # anything unforeseen
            unusable.load_error = str(e).splitlines()[0] if str(e) else type(e).__name__
            record = {**meta, **unusable.to_json(), "traceback": traceback.format_exc(limit=3)}
    record["submission"] = path  # None when there was nothing to grade
    record["duration_s"] = round(time.monotonic() - started, 3)
    return record


class PendingExpectations(Mapping):
    """The batch's expectations while the reference is still measured at the hidden seeds.

    The children of the first submissions run meanwhile (they only ever receive seeds); judging one (the
    judge's first read of this mapping) waits for the reference. The values stay in the parent."""

    def __init__(self, future: "Future[dict[str, dict[str, Any]]]"):
        self._future = future

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self._future.result()[key]

    def __iter__(self):
        return iter(self._future.result())

    def __len__(self) -> int:
        return len(self._future.result())


def run_local(exercise: Exercise, todo: list[Found], checks: list[str], hidden: tuple[int, ...],
              expected: "dict | Callable[[], dict]", jobs: int, skips: str = "leave-out",
              load_timeout: float | None = None, public: int | None = None) -> Iterator[dict[str, Any]]:
    """Records in the order they finish; `jobs` submissions at once (each in its own child process).

    `expected` may be a function that measures it (batch_expectations): it then runs on a thread of its
    own beside the class, and the first record is yielded only once it returned; if it raises (the
    reference fails at a hidden seed), nobody's record is yielded, the tasks not started are cancelled,
    and its exception is raised here."""
    reference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dldiy-reference")
    values: Mapping[str, dict[str, Any]]
    if callable(expected):
        measured = reference.submit(expected)
        values = PendingExpectations(measured)
    else:
        measured = Future()
        measured.set_result(expected)
        values = expected
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(grade_one, str(exercise.folder), submission_of(f), checks, hidden, values, skips,
                               load_timeout, public) for f in todo]
        measured.result()  # the reference's failure stops the batch before any record is kept
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        reference.shutdown(wait=True)


def run_cluster(address: str, exercise: Exercise, todo: list[Found], checks: list[str],
                hidden: tuple[int, ...], expected: dict, skips: str = "leave-out",
                load_timeout: float | None = None, public: int | None = None) -> Iterator[dict[str, Any]]:
    """The same tasks on a Dask distributed cluster: each worker calls `grade_one`, so each submission
    still runs in its own sandboxed child on that worker. Paths must be visible to the workers
    (a shared file system). A task lost with its worker becomes that student's error row."""
    from distributed import Client, as_completed as dask_completed

    with Client(address, timeout=30) as client:
        expected_future = client.scatter(expected, broadcast=True)
        futures = {client.submit(grade_one, str(exercise.folder), submission_of(f), checks, hidden,
                                 expected_future, skips, load_timeout, public, pure=False, retries=0): f for f in todo}
        for future in dask_completed(futures):
            found = futures[future]
            try:
                yield future.result()
            except Exception as e:
                lost = {**submission_of(found), "path": None, "error": f"lost on the cluster: {e}"}
                yield {**grade_one(str(exercise.folder), lost, checks, hidden, {}, skips),
                       "submission": _str(found.path)}


def scheduler_unreachable(address: str, timeout_s: float = 3.0) -> str | None:
    """Why no Dask scheduler answers at `address` (None when one does), found in `timeout_s` by opening
    a TCP connection (other transports: a short-lived Client): checked before the batch, so a typo costs
    seconds, not a graded class."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):  # inproc://, ucx://, ws://: ask distributed itself
        try:
            from distributed import Client

            Client(address, timeout=timeout_s).close()
        except Exception as e:  # noqa: BLE001 - whatever distributed raises, it means "not there"
            return f"no scheduler answers at {address} ({type(e).__name__}: {str(e)[:200]})"
        return None
    try:
        host, port = parts.hostname, parts.port
    except ValueError as e:
        return f"{address!r} is not a valid address ({e})"
    if not host or not port:
        return f"{address!r} has no host:port (e.g. tcp://10.0.0.5:8786)"
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        return f"no scheduler answers at {address} ({e.strerror or e})"
    return None


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def to_grade(found: list[Found], journal: dict[str, dict], chosen: set[str], fingerprint: str | None = None,
             graded_under: str | None = None) -> tuple[list[Found], list[tuple[Found, str]], int, int]:
    """Who to grade now: everyone not in the journal, whoever was graded under another version of the
    exercise (a record's `exercise_fingerprint` is not `fingerprint`; a record without one was graded
    under `graded_under`, the batch's recorded fingerprint, unknown for a batch from before fingerprints),
    whoever's submission changed since it was graded (its content hash differs: listed with the old
    hash), and the students `chosen` (--regrade).
    Returns (to grade, changed, how many are resumed from the journal, how many are outdated)."""
    todo, changed, resumed, outdated = [], [], 0, 0
    for f in found:
        record = journal.get(f.student)
        if record is None or f.student in chosen:
            todo.append(f)
        elif fingerprint is not None and record.get("exercise_fingerprint", graded_under or fingerprint) != fingerprint:
            todo.append(f)
            outdated += 1
        elif "content_hash" in record and record["content_hash"] != f.content_hash:  # (older journals: unknown)
            todo.append(f)
            changed.append((f, str(record.get("content_hash"))))
        else:
            resumed += 1
    return todo, changed, resumed, outdated


# What decides a grade, besides the submission: the exercise's folder (spec, harness, expected values,
# data, any module the harness imports), but not its template/ (what `dldiy start` hands out) nor the
# reviewed mutation equivalents; and the reference, whose measurements at the hidden seeds are the
# expectations there (but a .py exercise's source.ipynb, which only `dldiy release` reads). Plus the
# limits as the command line may have changed them (timeouts, memory).
_NOT_GRADING = ("template",)
_NOT_GRADING_FILES = ("equivalents.toml",)


def exercise_fingerprint(exercise: Exercise) -> dict[str, str]:
    """{"exercises/<id>/harness.py": sha256, "reference/<id>/...": sha256, ..., "(limits)": sha256}: every
    file that decides a grade (a change to any of them makes a batch's grades stale), each hashed, so a
    resumed batch can say which changed. `fingerprint_of` folds it into one value."""
    import hashlib
    import json

    from ..course.folders import CourseError

    try:
        reference: Path | None = reference_path(exercise.id)
    except CourseError:  # (no reference here: grading says so where it needs one)
        reference = None
    files: dict[str, str] = {}
    for base, label in ((exercise.folder, f"exercises/{exercise.id}/"), (reference, f"reference/{exercise.id}/")):
        if base is None or not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if (not path.is_file() or "__pycache__" in rel.parts or path.suffix == ".pyc"
                    or rel.parts[0] in (".ipynb_checkpoints",)
                    or (label.startswith("exercises/") and (rel.parts[0] in _NOT_GRADING
                                                            or rel.as_posix() in _NOT_GRADING_FILES))
                    # a .py exercise's source notebook is the release's, not the reference that is run
                    or (label.startswith("reference/") and rel.as_posix() == "source.ipynb"
                        and not exercise.entry.endswith(".ipynb"))):
                continue
            files[label + rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    limits = {"load_timeout": exercise.load_timeout, "memory": exercise.memory,
              "timeouts": {c.name: c.timeout for c in exercise.checks}}
    files[LIMITS] = hashlib.sha256(json.dumps(limits, sort_keys=True).encode()).hexdigest()
    files[GRADER] = grader_fingerprint()
    return files


@functools.cache
def grader_fingerprint() -> str:
    """sha256 over dldiy's own grading code (the check kinds, the sandbox, the judge: every .py of
    graders/ but the batch's orchestration and the pictures) and torch's version: an upgrade of either can
    change a grade, so a batch resumed after one regrades rather than mixing two graders in one gradebook."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    try:  # the installed distribution's version: importing torch here would cost the batch's start-up a second
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "?"
    root = Path(__file__).resolve().parent.parent  # graders/
    digest = hashlib.sha256(f"torch {torch_version}\n".encode())
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("batch/") or rel in _NOT_DECIDING_GRADES:
            continue
        digest.update(f"{rel}\0".encode() + path.read_bytes())
    return digest.hexdigest()


# graders/ files that shape what a grade looks like, never what it is.
_NOT_DECIDING_GRADES = frozenset({"plots.py", "render.py"})


LIMITS = "(limits)"  # the pseudo-file of exercise_fingerprint: the spec's limits as the command line left them
GRADER = "(grader)"  # and dldiy's own grading code with torch's version (grader_fingerprint)


def fingerprint_of(files: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in sorted(files.items())).encode()).hexdigest()


def what_changed(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """'harness.py changed', 'data/x.csv added', ... between two exercise_fingerprint results."""
    out = []
    for name in sorted(set(before) | set(now)):
        if before.get(name) == now.get(name):
            continue
        if name == GRADER:
            out.append("dldiy's grading code or torch's version changed (an upgrade)")
        elif name == LIMITS:
            out.append("the limits changed (the spec's timeout, load_timeout or memory, or --check-timeout, "
                       "--load-timeout or --memory)")
        else:
            out.append(f"{name} {'added' if name not in before else 'removed' if name not in now else 'changed'}")
    return out
