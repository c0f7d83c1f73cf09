"""Exercise specs: `exercises/<id>/spec.toml` read into plain, frozen data.

An exercise folder holds `spec.toml` (what the student implements and how it is checked),
`harness.py` (the probes that measure a submission, run in the child), `template/` (the student's
starting files) and `expected.json` (the reference's measurements at the public seeds, written by
`dldiy record`).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import check_kind

EXERCISES_DIR = Path(__file__).resolve().parent.parent / "exercises"
if not EXERCISES_DIR.is_dir():  # installed wheel: exercises are package data beside graders/
    import dldiy.exercises as _pkg

    EXERCISES_DIR = Path(_pkg.__file__).resolve().parent

DEFAULT_TIMEOUT_S = 30.0
# Keys of a [[checks]] table that the framework reads; every other key is a parameter for the
# check kind's judge or the harness probe (tolerances, targets, sizes).
_CHECK_KEYS = {"name", "kind", "probe", "points", "seeds", "hint", "timeout", "title"}


class SpecError(Exception):
    """A spec, or a name given on the command line, that does not make sense."""


@dataclass(frozen=True)
class ApiEntry:
    """One name the student implements: signature and doc for messages, shape/dtype for validation."""

    name: str
    signature: str
    doc: str = ""
    shape: str | None = None  # e.g. "(d+1,)", evaluated against the dims a probe passes
    dtype: str | None = None  # "float" or "int"
    # Functions the student must not use inside this one ("by hand", "never by inverting H"): caught by
    # a static scan in the trusted harness process and a guard in the student's process.
    forbid: tuple[str, ...] = ()
    mutates: bool = False  # True: this name changes its arguments in place by design (an optimizer's step)


@dataclass(frozen=True)
class Check:
    name: str
    kind: str
    probe: str
    points: float
    title: str = ""
    hint: str = ""
    seeds: tuple[int, ...] | None = None  # None: the run's seeds (public, plus hidden when grading)
    timeout: float = DEFAULT_TIMEOUT_S
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_reference(self) -> bool:
        return bool(check_kind(self.kind).NEEDS_REFERENCE)


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    folder: Path
    entry: str  # the file a student hands in, e.g. "logreg.py"
    seeds: tuple[int, ...]
    checks: tuple[Check, ...]
    api: dict[str, ApiEntry]
    summary: str = ""
    start: str = "template"  # what `dldiy start` gives: the template, or bugged code to fix
    extra: dict[str, Any] = field(default_factory=dict)  # exercise-specific spec tables

    @property
    def harness_path(self) -> Path:
        return self.folder / "harness.py"

    @property
    def template_dir(self) -> Path:
        return self.folder / "template"

    @property
    def expected_path(self) -> Path:
        return self.folder / "expected.json"

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise SpecError(f"{self.id} has no check {name!r}{did_you_mean(name, [c.name for c in self.checks])}; "
                        f"its checks: {', '.join(c.name for c in self.checks)}")

    def expected(self) -> dict[str, dict[str, Any]]:
        """The recorded reference measurements: {check: {seed: measurement}} (empty if not recorded)."""
        if not self.expected_path.exists():
            return {}
        return json.loads(self.expected_path.read_text())["checks"]

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def exercise_ids() -> list[str]:
    ids = [p.name for p in EXERCISES_DIR.iterdir() if (p / "spec.toml").is_file()]
    return sorted(ids, key=lambda s: (len(s), s))  # exercise-2 before exercise-10


def load_exercise(exercise_id: str) -> Exercise:
    """Read one spec; an unknown id raises SpecError with a did-you-mean."""
    folder = EXERCISES_DIR / exercise_id
    if not exercise_id or os.sep in exercise_id or not (folder / "spec.toml").is_file():
        ids = exercise_ids()
        guess = did_you_mean(exercise_id, ids)
        if not guess and exercise_id.isdigit() and f"exercise-{exercise_id}" in ids:
            guess = f" (did you mean 'exercise-{exercise_id}'?)"
        raise SpecError(f"unknown exercise {exercise_id!r}{guess}; known: {', '.join(ids)}")
    return load_exercise_dir(folder)


def load_exercise_dir(folder: Path) -> Exercise:
    """Read the spec in `folder` (an exercise of the course, or a test's hand-made one)."""
    return _parse(folder, tomllib.loads((folder / "spec.toml").read_text()))


def _parse(folder: Path, raw: dict[str, Any]) -> Exercise:
    where = f"{folder.name}/spec.toml"
    try:
        api = {name: ApiEntry(name=name, **entry) for name, entry in raw.get("api", {}).items()}
        checks = []
        for c in raw["checks"]:
            kind = c["kind"]
            check_kind(kind)  # fails early on a typo in the spec
            checks.append(Check(
                name=c["name"], kind=kind, probe=c.get("probe", c["name"].replace("-", "_")), points=float(c["points"]),
                title=c.get("title", ""), hint=c.get("hint", "").strip(),
                seeds=tuple(c["seeds"]) if "seeds" in c else None,
                timeout=float(c.get("timeout", raw.get("timeout", DEFAULT_TIMEOUT_S))),
                params={k: v for k, v in c.items() if k not in _CHECK_KEYS}))
        known = {"id", "title", "summary", "entry", "seeds", "timeout", "api", "checks", "start"}
        return Exercise(
            id=raw["id"], title=raw["title"], folder=folder, entry=raw["entry"],
            seeds=tuple(raw.get("seeds", (1, 42, 2019))), checks=tuple(checks), api=api,
            summary=raw.get("summary", "").strip(), start=raw.get("start", "template"),
            extra={k: v for k, v in raw.items() if k not in known})
    except (KeyError, TypeError) as e:
        raise SpecError(f"{where}: malformed spec ({type(e).__name__}: {e})") from None
