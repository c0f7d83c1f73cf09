"""The correct-but-different solutions of an exercise: `alternatives/<exercise-id>/<name>/`.

Each holds a `manifest.toml` (`description`, `patch = "alt.diff"`, and `inconclusive = ["placement"]` where a
check cannot tell for this solution and says so: a skip, never a pass) and a unified diff against
reference/<exercise-id>/, built like a patch bug (graders/course/handout.py's `build`); or, simpler for an
instructor's own course, the solution's files themselves (`alternatives/lse/loops/logsumexp.py`, a notebook
under any name: what a student hands in), with a manifest without `patch`, or none. `dldiy validate`
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
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        where = f"alternatives/{exercise_id}/{path.name}"
        raw = tomllib.loads((path / "manifest.toml").read_text()) if (path / "manifest.toml").is_file() else {}
        files = [f for f in path.iterdir() if f.suffix in (".py", ".ipynb") and f.is_file()]
        if "patch" in raw:
            if "description" not in raw:
                raise CourseError(f"{where}/manifest.toml needs `description` beside `patch`")
            found.append(BuggyVariant(exercise_id, path.name, path, raw["description"], (), patch=path / raw["patch"],
                                      inconclusive=tuple(raw.get("inconclusive", ()))))
        elif files:  # the solution's own files: the folder is graded as a student's would be
            found.append(BuggyVariant(exercise_id, path.name, path, str(raw.get("description", "")), (), patch=path,
                                      inconclusive=tuple(raw.get("inconclusive", ())), whole=True))
        else:
            raise CourseError(f"{where} holds neither the solution's files (a .py file or a notebook, as a student "
                              "hands in) nor a manifest.toml with `description` and `patch` (a diff of the reference)")
    return found
