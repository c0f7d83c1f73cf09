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
variant: a `manifest.toml` (description, the checks that must catch it, the bug-patterns entry,
`patch = "bug.diff"`) and that `bug.diff`, a patch against the reference (graders/course/bugs.py writes
and builds it, graders/course/patch.py applies it). Built, it is a plain submission, loaded like a student's
work. A bug that crashes names the file (and line) its error message must point at
(`crashes_at = "model/net.py:21"`). There is no other kind of variant: a whole copy of a submission
in buggy/ drifts silently from its reference, so it is refused, loudly, with its folder named.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "dldiy.toml"
BUILTIN_ROOT = Path(__file__).resolve().parent.parent.parent


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
    crashes_at: str = ""  # "file" or "file:line" that the submission's error must name
    patch: Path = field(kw_only=True)  # the bug: a diff against the reference (graders/course/patch.py)
    # an alternative's checks that cannot tell for it and say inconclusive (a skip, never a pass): e.g.
    # placement, for an op the meta device has no kernel for
    inconclusive: tuple[str, ...] = field(default=(), kw_only=True)
    whole: bool = field(default=False, kw_only=True)  # an alternative given as its files (`path`), not a patch


def require_finished(variant: BuggyVariant) -> None:
    """CourseError unless the manifest says what the bug is and how it must show: a skeleton from
    `dldiy bug new` (TODO description, empty caught_by) would be validated as a correct submission."""
    where = f"buggy/{variant.exercise}/{variant.id}/manifest.toml"
    if variant.description.startswith("TODO"):
        raise CourseError(f"{where}: the description is still the skeleton's TODO (say the mistake in one line)")
    if not variant.caught_by and not variant.crashes_at:
        raise CourseError(f"{where}: neither caught_by (the checks that must fail) nor crashes_at (the file:line "
                          "every check's error must name): fill one in")


def buggy_variants(exercise_id: str) -> list[BuggyVariant]:
    """The bugged variants of buggy/<exercise_id>/; CourseError naming any folder that is not one."""
    folder = current().buggy / exercise_id
    if not folder.is_dir():
        return []
    variants = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"):
        variants.append(_variant(exercise_id, path))
    return variants


ALLOWED = {"manifest.toml", "bug.diff"}


def _variant(exercise_id: str, path: Path) -> BuggyVariant:
    where = f"buggy/{exercise_id}/{path.name}"
    if not (path / "manifest.toml").is_file():
        raise CourseError(f"{where}: no manifest.toml (a bugged variant is manifest.toml + bug.diff)")
    try:
        raw = tomllib.loads((path / "manifest.toml").read_text())
    except tomllib.TOMLDecodeError as e:
        raise CourseError(f"{where}/manifest.toml: {e}") from None
    diff = raw.get("patch")
    others = sorted(p.name for p in path.iterdir() if p.name not in ALLOWED | {str(diff)} and p.name != "__pycache__")
    if diff is None or others:
        raise CourseError(f"{where} is a whole copy of a submission ({', '.join(others) or 'its manifest has no patch'}), "
                          "not a patch: it would drift silently from the reference. Make it a bug.diff: "
                          f"dldiy bug new {exercise_id} NAME --from {where}, then delete the folder")
    if not (path / diff).is_file():
        raise CourseError(f"{where}: its manifest names patch = {diff!r}, which is not there")
    if "description" not in raw:
        raise CourseError(f"{where}/manifest.toml: no description")
    return BuggyVariant(exercise_id, path.name, path, str(raw["description"]), tuple(raw.get("caught_by", ())),
                        str(raw.get("pattern", "")), str(raw.get("requires", "")), str(raw.get("crashes_at", "")),
                        patch=path / diff)
