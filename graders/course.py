"""The course: where its exercises/, reference/ and buggy/ live (the last two never shipped to students).

dldiy finds the course the way pytest finds its root: `--course DIR` (which sets $DLDIY_COURSE), else a
`dldiy.toml` in the current folder or one above it, else the nine built-in exercises (their reference/
and buggy/ in the checkout dldiy runs from). A `dldiy.toml` marks an instructor's own course, kept
outside dldiy's package, with exercises/, reference/ and buggy/ beside it (fixed names: the sandbox
hides <root>/reference and <root>/buggy from every submission):

    [course]
    title = "My course"

$DLDIY_COURSE without a dldiy.toml keeps its older meaning: a checkout holding the built-in exercises'
reference/ (and buggy/), the exercises themselves staying dldiy's own.

`reference/<exercise-id>/` is the reference submission; `buggy/<exercise-id>/<bug-id>/` a bugged
variant with a `manifest.toml` (description, the checks that must catch it, the bug-patterns entry).
Both are plain submissions, loaded like a student's work. A variant can instead be a patch against the
reference (manifest `patch = "bug.diff"`, built by graders/handout.py), and a bug that crashes names
the file (and line) its error message must point at (`crashes_at = "model/net.py:21"`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

MARKER = "dldiy.toml"
BUILTIN_ROOT = Path(__file__).resolve().parent.parent


class CourseError(Exception):
    pass


@dataclass(frozen=True)
class Course:
    root: Path
    exercises: Path | None  # None: dldiy's built-in exercises
    reference: Path
    buggy: Path
    title: str = ""


def find_marker(start: Path) -> Path | None:
    """The nearest folder at or above `start` holding a dldiy.toml."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / MARKER).is_file():
            return folder
    return None


def use_course(folder: Path) -> Course:
    """Make `folder` (which must hold a dldiy.toml) the course of this process and of the processes it starts."""
    folder = Path(folder).resolve()
    if not (folder / MARKER).is_file():
        raise CourseError(f"{folder} is not a course: it has no {MARKER} (see docs/own-course.md)")
    os.environ["DLDIY_COURSE"] = str(folder)
    return current()


def current() -> Course:
    """The active course: $DLDIY_COURSE, else the nearest dldiy.toml from the working folder, else built-in."""
    env = os.environ.get("DLDIY_COURSE")
    root = Path(env).resolve() if env else find_marker(Path.cwd())
    if root is not None and (root / MARKER).is_file():
        return _read(root)
    if root is not None and (root / "reference").is_dir():  # a checkout of the built-in course's reference/
        return Course(root, None, root / "reference", root / "buggy")
    return Course(BUILTIN_ROOT, None, BUILTIN_ROOT / "reference", BUILTIN_ROOT / "buggy")


def _read(root: Path) -> Course:
    try:
        raw = tomllib.loads((root / MARKER).read_text()).get("course", {})
    except tomllib.TOMLDecodeError as e:
        raise CourseError(f"{root / MARKER}: {e}") from None
    return Course(root, root / "exercises", root / "reference", root / "buggy", str(raw.get("title", "")))


def course_root() -> Path:
    """The folder holding reference/ and buggy/ (the course root, for the leak scan and the sandbox)."""
    course = current()
    if course.reference.is_dir():
        return course.root
    raise CourseError("the reference solutions are not installed with dldiy (by design): run this from a "
                      "checkout of the course repository (pip install -e .), from a course folder (with a "
                      f"{MARKER}), or set DLDIY_COURSE to one")


def reference_path(exercise_id: str) -> Path:
    course_root()
    path = current().reference / exercise_id
    if not path.is_dir():
        raise CourseError(f"no reference for {exercise_id} at {path}")
    return path


@dataclass(frozen=True)
class BuggyVariant:
    exercise: str
    id: str
    path: Path
    description: str
    caught_by: tuple[str, ...]
    pattern: str = ""
    requires: str = ""  # "cuda": the bug shows only on that accelerator (validate skips it elsewhere)
    patch: Path | None = None  # a diff against the reference, instead of a full copy in `path`
    crashes_at: str = ""  # "file" or "file:line" that the submission's error must name


def buggy_variants(exercise_id: str) -> list[BuggyVariant]:
    folder = current().buggy / exercise_id
    if not folder.is_dir():
        return []
    variants = []
    for path in sorted(p for p in folder.iterdir() if (p / "manifest.toml").is_file()):
        raw = tomllib.loads((path / "manifest.toml").read_text())
        variants.append(BuggyVariant(exercise_id, path.name, path, raw["description"],
                                     tuple(raw.get("caught_by", ())), str(raw.get("pattern", "")),
                                     str(raw.get("requires", "")),
                                     path / raw["patch"] if "patch" in raw else None,
                                     str(raw.get("crashes_at", ""))))
    return variants
