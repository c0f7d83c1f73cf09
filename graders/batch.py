"""Grade a class: one task per student, run on local threads or a Dask cluster, results as they finish.

Each task calls `assess` (its own sandboxed child per submission) and returns a plain-JSON record, so a
Dask worker can run it and ship it back. The expectations for hidden seeds are measured ONCE per batch
from the reference, here in the trusted parent, and handed to the judging side of each task; the
children only ever receive seeds, never expected values.
"""

from __future__ import annotations

import functools
import secrets
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterator

from .assess import assess, measure_reference
from .course import reference_path
from .discover import Found
from .exercise import Exercise, load_exercise_dir
from .forkserver import shared


def draw_hidden_seeds(count: int, public: tuple[int, ...]) -> tuple[int, ...]:
    """`count` distinct seeds in [1000, 10^6), none of them public, from the OS's randomness."""
    rng = secrets.SystemRandom()
    seeds: list[int] = []
    while len(seeds) < count:
        s = rng.randrange(1000, 1_000_000)
        if s not in public and s not in seeds:
            seeds.append(s)
    return tuple(sorted(seeds))


def batch_expectations(exercise: Exercise, hidden: tuple[int, ...], checks: list[str]) -> dict[str, dict[str, Any]]:
    """Recorded public expectations plus the reference's live measurements at the hidden seeds."""
    expected = {name: dict(per_seed) for name, per_seed in exercise.expected().items()}
    if not hidden:
        return expected
    chosen = [exercise.check(c) for c in checks]
    live, problems = measure_reference(exercise, reference_path(exercise.id), seeds=hidden, checks=chosen,
                                       server=shared(), hidden=hidden)
    if problems:
        raise RuntimeError("the reference fails at the hidden seeds (fix it before grading):\n  "
                           + "\n  ".join(problems))
    for name, per_seed in live.items():
        expected.setdefault(name, {}).update(per_seed)
    return expected


@functools.lru_cache(maxsize=None)
def _exercise(folder: str) -> Exercise:
    return load_exercise_dir(Path(folder))


def grade_one(exercise_folder: str, student: str, path: str | None, error: str | None, checks: list[str],
              hidden: tuple[int, ...], expected: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One student's record (plain JSON). Never raises: whatever goes wrong is the student's error row."""
    started = time.monotonic()
    exercise = _exercise(exercise_folder)
    record: dict[str, Any] = {"student": student, "submission": path, "status": "error", "score": 0.0,
                              "max_score": sum(exercise.check(c).points for c in checks), "error": error or "",
                              "checks": [], "output": "", "skipped_lines": []}
    if path is not None and error is None:
        try:
            report = assess(exercise, Path(path), checks=[exercise.check(c) for c in checks], hidden_seeds=hidden,
                            expected=expected, server=shared())
            record.update(_from_report(report))
        except Exception as e:  # a missing entry file (SubmissionError), or anything unforeseen
            record["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
            record["traceback"] = traceback.format_exc(limit=3)
    record["duration_s"] = round(time.monotonic() - started, 3)
    return record


def _from_report(report) -> dict[str, Any]:
    statuses = {c.status for c in report.checks}
    status = "error" if report.load_error or "error" in statuses else "fail" if "fail" in statuses else "pass"
    first_error = next((c for c in report.checks if c.status == "error"), None)
    error = report.load_error or (f"{first_error.name}: {first_error.message.splitlines()[0]}" if first_error else "")
    checks = [{"name": c.name, "kind": c.kind, "title": c.title, "status": c.status, "points": c.points,
               "max_points": c.max_points, "message": c.message, "details": c.details}
              for c in report.checks]
    return {"status": status, "score": report.score, "max_score": report.max_score, "error": error,
            "checks": checks, "output": report.output[:4000], "skipped_lines": report.skipped_lines}


def run_local(exercise: Exercise, todo: list[Found], checks: list[str], hidden: tuple[int, ...],
              expected: dict, jobs: int) -> Iterator[dict[str, Any]]:
    """Records in the order they finish; `jobs` submissions at once (each in its own child process)."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(grade_one, str(exercise.folder), f.student, _str(f.path), f.error, checks,
                               hidden, expected) for f in todo]
        for future in as_completed(futures):
            yield future.result()


def run_cluster(address: str, exercise: Exercise, todo: list[Found], checks: list[str],
                hidden: tuple[int, ...], expected: dict) -> Iterator[dict[str, Any]]:
    """The same tasks on a Dask distributed cluster: each worker calls `grade_one`, so each submission
    still runs in its own sandboxed child on that worker. Paths must be visible to the workers
    (a shared file system). A task lost with its worker becomes that student's error row."""
    from distributed import Client, as_completed as dask_completed

    with Client(address) as client:
        expected_future = client.scatter(expected, broadcast=True)
        futures = {client.submit(grade_one, str(exercise.folder), f.student, _str(f.path), f.error, checks,
                                 hidden, expected_future, pure=False, retries=0): f for f in todo}
        for future in dask_completed(futures):
            found = futures[future]
            try:
                yield future.result()
            except Exception as e:
                yield {**grade_one(str(exercise.folder), found.student, None, f"lost on the cluster: {e}",
                                   checks, hidden, {}), "submission": _str(found.path)}


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
