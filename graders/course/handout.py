"""Bugged handouts: the reference with a set of patch bugs applied, chosen from a student's id.

Instructor side (needs reference/ and buggy/, so it runs in the course checkout, never from a
student's install). Each bug of an exercise is a patch against its reference (manifest key `patch`);
a bug that crashes says where (`crashes_at`), a silent one which checks catch it (`caught_by`).
A student's set is k crash bugs and m silent bugs: the bugs are ranked by sha256(exercise, id, bug)
and taken in that order, each one only if its patch still applies on top of those taken before
(two patches touching the same lines never combine). The same id always gives the same set;
another id almost always a different one; grading needs no record of it, since every check
compares with the reference.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .folders import BuggyVariant, CourseError
from .patch import PatchError, apply, apply_to_files

_IGNORED = ("__pycache__", "*.pyc", ".ipynb_checkpoints")


def read_files(folder: Path) -> dict[str, str]:
    """The text files of a submission folder, {relative POSIX path: text}."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def build(reference: Path, bugs: list[BuggyVariant], dest: Path) -> Path:
    """Copy `reference` to `dest` (which must not exist) and apply each bug's patch, in order."""
    shutil.copytree(reference, dest, ignore=shutil.ignore_patterns(*_IGNORED))
    for bug in bugs:
        try:
            apply(dest, bug.patch.read_text())
        except PatchError as e:
            raise CourseError(f"buggy/{bug.exercise}/{bug.id}: {e}") from None
    return dest


def rank(exercise_id: str, student_id: str, bug_id: str) -> str:
    """The bug's place in this student's order: a hash, so it is the same on every machine and run."""
    return hashlib.sha256(f"{exercise_id}\0{student_id}\0{bug_id}".encode()).hexdigest()


def choose(exercise_id: str, student_id: str, bugs: list[BuggyVariant], reference_files: dict[str, str],
           crash: int, silent: int) -> list[BuggyVariant]:
    """`crash` bugs that crash and `silent` bugs that do not, whose patches apply together, in the
    order to apply them. Raises CourseError when the catalogue cannot supply that many."""
    want = {True: crash, False: silent}
    files, picked = dict(reference_files), []
    for bug in sorted(bugs, key=lambda b: rank(exercise_id, student_id, b.id)):
        is_crash = bool(bug.crashes_at)
        if want[is_crash] == 0:
            continue
        try:
            files = apply_to_files(files, bug.patch.read_text())
        except PatchError:
            continue  # conflicts with a bug already taken
        picked.append(bug)
        want[is_crash] -= 1
    if any(want.values()):
        raise CourseError(f"{exercise_id}: the catalogue has too few compatible patch bugs for {crash} crash and "
                          f"{silent} silent bug(s) (student {student_id!r})")
    return picked


def handout_counts(extra: dict) -> tuple[int, int, int]:
    """(crash bugs, silent bugs, validation samples) from a spec's [handout] table."""
    table = extra.get("handout", {})
    return int(table.get("crash_bugs", 0)), int(table.get("silent_bugs", 0)), int(table.get("samples", 0))
