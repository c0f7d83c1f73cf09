"""The correct-but-different solutions of an exercise: `alternatives/<exercise-id>/<name>/`.

Each holds a `manifest.toml` (`description`, `patch = "alt.diff"`, and `inconclusive = ["placement"]` where a
check cannot tell for this solution and says so: a skip, never a pass) and a unified diff against
reference/<exercise-id>/, built like a patch bug (graders/course/handout.py's `build`). `dldiy validate`
runs them: each must get full marks (a correct solution never loses a point). Together with the bugged
variants of buggy/ they make the corpus whose figures docs/corpus.md tabulates.
"""

from __future__ import annotations

import tomllib

from .folders import BuggyVariant, CourseError, course_root


def alternatives(exercise_id: str) -> list[BuggyVariant]:
    """The exercise's alternative solutions, as patch variants that must fail nothing (caught_by empty)."""
    folder = course_root() / "alternatives" / exercise_id
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(p for p in folder.iterdir() if (p / "manifest.toml").is_file()):
        raw = tomllib.loads((path / "manifest.toml").read_text())
        if "patch" not in raw or "description" not in raw:
            raise CourseError(f"alternatives/{exercise_id}/{path.name}/manifest.toml needs `description` and `patch`")
        found.append(BuggyVariant(exercise_id, path.name, path, raw["description"], (), patch=path / raw["patch"],
                                  inconclusive=tuple(raw.get("inconclusive", ()))))
    return found
