"""The instructor's side of the course repository: reference/ and buggy/ (never shipped to students).

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


class CourseError(Exception):
    pass


def course_root() -> Path:
    """The checkout holding reference/ and buggy/: $DLDIY_COURSE, or the repository dldiy runs from."""
    candidates = [Path(os.environ["DLDIY_COURSE"])] if os.environ.get("DLDIY_COURSE") else []
    candidates.append(Path(__file__).resolve().parent.parent)
    for root in candidates:
        if (root / "reference").is_dir():
            return root
    raise CourseError("the reference solutions are not installed with dldiy (by design): run this from a "
                      "checkout of the course repository (pip install -e .) or set DLDIY_COURSE to one")


def reference_path(exercise_id: str) -> Path:
    path = course_root() / "reference" / exercise_id
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
    folder = course_root() / "buggy" / exercise_id
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
