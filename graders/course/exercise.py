"""Exercise specs: `exercises/<id>/spec.toml` read into plain, frozen data.

An exercise folder holds `spec.toml` (what the student implements and how it is checked),
`harness.py` (the probes that measure a submission, run in the child), `template/` (the student's
starting files), `expected.json` (the reference's measurements at the public seeds, written by
`dldiy record`) and, optionally, `data/` (files the submission reads, shipped instead of downloaded).
The exercises are those of the active course (graders/course/folders.py): dldiy's own, or an instructor's.

Keys for a notebook course (all optional; docs/own-course.md):
    load = "definitions"          # or "all": which statements of each code cell run at load
    load_tags = ["graded"]        # only cells carrying one of these tags run
    skip_tags = ["slow"]          # cells carrying one of these never run at load
    cells = { train = { contains = "for epoch in" } }   # cells the harness runs itself (layers.run_cell)
    data = "data"                 # where exercises/<id>/data/ appears in the submission's working copy
    requirements = ["matplotlib>=3.5"]  # what the notebooks import (checked before grading)
    load_timeout = 30             # seconds to load a submission; `timeout` per check; memory = "2GiB"
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..kinds import check_kind

if TYPE_CHECKING:
    from .requirements import Unmet

EXERCISES_DIR = Path(__file__).resolve().parent.parent.parent / "exercises"  # the built-in course
if not EXERCISES_DIR.is_dir():  # installed wheel: exercises are package data beside graders/
    import dldiy.exercises as _pkg

    EXERCISES_DIR = Path(_pkg.__file__).resolve().parent

DEFAULT_TIMEOUT_S = 30.0
LOAD_MODES = ("definitions", "all")
_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
          "kb": 10**3, "mb": 10**6, "gb": 10**9}
# Command-line overrides of the spec's limits (`dldiy --load-timeout 5 grade ...`), for this process.
_OVERRIDES: dict[str, float | int] = {}
# Keys of a [[checks]] table that the framework reads; every other key is a parameter for the
# check kind's judge or the harness probe (tolerances, targets, sizes).
_CHECK_KEYS = {"name", "kind", "probe", "points", "seeds", "hint", "timeout", "title", "check_seeds"}


class SpecError(Exception):
    """A spec, or a name given on the command line, that does not make sense."""


# Every key a spec may hold, by where it goes. An unknown key is refused when the spec is read (an
# instructor's `forbid = [...]` at the top level, where it means nothing, was ignored without a word and
# a student who called the forbidden function kept full marks; a typo `timout = 5` would be too).
TOP_KEYS = {"id": "the exercise's id", "title": "its title", "summary": "a paragraph for `dldiy list`",
            "entry": "the file a student hands in", "seeds": "the public seeds",
            "timeout": "seconds per check and seed", "api": "the [api.NAME] tables",
            "checks": "the [[checks]] tables", "start": '"template" or "bugged"', "load": '"definitions" or "all"',
            "load_tags": "tags of the cells to load", "skip_tags": "tags of the cells never loaded",
            "cells": "the cells a harness runs ([cells])", "data": "the name of exercises/<id>/data/ in the copy",
            "requirements": "what the submissions import", "load_timeout": "seconds to load a submission",
            "memory": "the memory a submission may use", "check_seeds": "seeds `dldiy check` also runs",
            "mutation": "the [mutation] table of `dldiy mutate`", "handout": "the [handout] table of a bug hunt"}
API_KEYS = ("signature", "doc", "shape", "dtype", "forbid", "mutates")
TABLE_KEYS = {"mutation": ("files", "threshold"), "handout": ("crash_bugs", "silent_bugs", "samples")}
_BELONGS = {**{k: "an [api.NAME] table (NAME: the function it is about, e.g. [api.layer_norm])" for k in API_KEYS},
            **{k: "a [[checks]] table" for k in ("name", "kind", "probe", "points", "hint")},
            "tag": "a [cells] selector (cells = { train = { tag = \"train\" } })",
            "contains": "a [cells] selector (cells = { train = { contains = \"for epoch\" } })",
            **{k: f"the [{table}] table" for table, keys in TABLE_KEYS.items() for k in keys}}


def _unknown_keys(where: str, table: dict[str, Any], known: "list[str] | tuple[str, ...]", place: str) -> None:
    """SpecError naming the first key of `table` that `place` does not allow: where it belongs instead, or
    the closest key allowed there."""
    for key in table:
        if key in known:
            continue
        if key in _BELONGS:
            raise SpecError(f"{where}: {key!r} is not a key of {place}: it belongs in {_BELONGS[key]} "
                            "(docs/own-course.md)")
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        elsewhere = difflib.get_close_matches(key, list(_BELONGS), n=1, cutoff=0.75)
        hint = (f" (did you mean {close[0]!r}?)" if close else
                f" (did you mean {elsewhere[0]!r}? it belongs in {_BELONGS[elsewhere[0]]})" if elsewhere else "")
        raise SpecError(f"{where}: unknown key {key!r} in {place}{hint}; the keys there: {', '.join(known)}")


# What torch.autograd.grad and Tensor.backward call: a list that forbids those forbids these too (red team,
# round 5: the engine's own run_backward, called directly, computed a "by hand" gradient that no name in
# the list matched; so did functorch's grad by its private path)
AUTOGRAD_FAMILY = ("torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward")
AUTOGRAD_ENGINE = ("torch.autograd.Variable._execution_engine.run_backward", "torch._C._ImperativeEngine",
                   *(f"torch._functorch.eager_transforms.{name}" for name in
                     ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize")))


def with_engine(forbid: tuple[str, ...]) -> tuple[str, ...]:
    """`forbid` with the autograd engine's entry points where it forbids autograd's public ones."""
    if not any(name in forbid for name in AUTOGRAD_FAMILY):
        return forbid
    return forbid + tuple(e for e in AUTOGRAD_ENGINE if e not in forbid)


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

    def defaults(self) -> list[tuple[str, Any]]:
        """The parameters the signature gives a default, in order, with their values (`signature_defaults`)."""
        return signature_defaults(self.signature)

    def returns(self) -> list[str]:
        """The names of the signature's results (`returns_names`)."""
        return returns_names(self.signature)


def _parameters_text(signature: str) -> str:
    """What lies between a function signature's outer parentheses (balanced: a default may be a tuple)."""
    start = signature.find("(")
    if start < 0:
        return ""
    depth = 0
    for i in range(start, len(signature)):
        depth += {"(": 1, ")": -1}.get(signature[i], 0)
        if depth == 0:
            return signature[start + 1:i]
    return ""


def signature_defaults(signature: str) -> list[tuple[str, Any]]:
    """`train(X, y, params, lr, steps, activation='tanh') -> ...` -> [("activation", "tanh")]: the
    parameters a function's signature in the spec gives a default, in order, their values as literals.
    A class's signature ("class GD(...): __init__(...)", whose defaults a check of its own judges), one
    that does not parse or a default that is not a literal: none."""
    import ast

    if signature.lstrip().startswith("class "):
        return []
    try:
        args = ast.parse(f"def _({_parameters_text(signature)}): pass").body[0].args  # type: ignore[attr-defined]
        positional = args.posonlyargs + args.args
        found = list(zip([a.arg for a in positional[len(positional) - len(args.defaults):]],
                         [ast.literal_eval(d) for d in args.defaults]))
    except (SyntaxError, ValueError):
        return []
    return found


def returns_names(signature: str) -> list[str]:
    """`f(...) -> (params, losses)` -> ["params", "losses"]; `f(...) -> Tensor` -> ["Tensor"]; anything but
    names (a list of them, several arrows): []."""
    after = signature.partition("->")[2].strip()
    if after.startswith("(") and after.endswith(")"):
        after = after[1:-1]
    names = [part.strip() for part in after.split(",")]
    return names if all(name.isidentifier() for name in names) else []


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
    # False (spec `check_seeds = false`): `dldiy check` runs this check at the public seeds only, not at
    # the exercise's check_seeds; for a check too slow to repeat within check's time budget.
    check_seeds: bool = True

    @property
    def needs_reference(self) -> bool:
        # `record_reference = true` in a check's spec: its reference measurement is recorded too, for
        # pictures (the reference's loss curve, decision boundary or filters beside the student's).
        # `against_reference = true` (a gradcheck of a course's own layers): the reference's hand gradient at the
        # same inputs is the exact one the student's is held to (graders/kinds/gradcheck.py).
        return (bool(check_kind(self.kind).NEEDS_REFERENCE) or bool(self.params.get("record_reference"))
                or bool(self.params.get("against_reference")))


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
    load: str = ""  # "definitions" or "all": a notebook's failing cell is left out; "": the first one stops loading
    load_tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    cells: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {"tag": t} or {"contains": s}
    data: str = "data"  # the name of exercises/<id>/data/ in the working copy
    requirements: tuple[str, ...] = ()
    load_timeout: float | None = None  # None: the sandbox's default
    memory: int | None = None  # bytes; None: the sandbox's default

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def limits(self):
        """The sandbox limits for this exercise's children (graders/sandbox/confine.py), the spec's where it set them."""
        from ..sandbox.confine import Limits

        changes: dict[str, Any] = {}
        if self.load_timeout is not None:
            changes["startup_s"] = self.load_timeout
        if self.memory is not None:
            changes["memory_bytes"] = self.memory
        return Limits(**changes)

    def load_settings(self) -> dict[str, Any]:
        """What the loader (graders/sandbox/submission.py, in the child) needs: plain data."""
        return {"mode": self.load, "load_tags": list(self.load_tags), "skip_tags": list(self.skip_tags),
                "cells": self.cells, "data": self.data if self.data_dir.is_dir() else "",
                "data_dir": str(self.data_dir)}

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

    def recorded_stand_ins(self) -> dict[str, list[str]]:
        """{check: the names its probe handed the reference's process as the harness's own} as `dldiy record`
        saw them (graders/sandbox/runner.in_stand_in_order orders tasks by them from the first submission)."""
        if not self.expected_path.exists():
            return {}
        recorded = json.loads(self.expected_path.read_text()).get("stand_ins")
        return {str(c): [str(n) for n in names] for c, names in recorded.items()
                if isinstance(names, list)} if isinstance(recorded, dict) else {}

    @property
    def check_seeds(self) -> tuple[int, ...]:
        """Fixed seeds beyond the public ones that `dldiy check` also runs (spec `check_seeds`; recorded
        in expected.json like the public ones): a bug that shows on one seed in ten is seen before grading."""
        return tuple(s for s in self.extra.get("check_seeds", ()) if s not in self.seeds)

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def exercises_dir() -> Path:
    """The active course's exercises/ (graders/course/folders.py): an instructor's own, or dldiy's built-in ones."""
    from .folders import current

    return current().exercises or EXERCISES_DIR


def exercise_ids() -> list[str]:
    folder = exercises_dir()
    if not folder.is_dir():
        raise SpecError(f"the course has no exercises folder at {folder}")
    ids = [p.name for p in folder.iterdir() if (p / "spec.toml").is_file()]
    return sorted(ids, key=lambda s: (len(s), s))  # exercise-2 before exercise-10


def load_exercise(exercise_id: str) -> Exercise:
    """Read one spec; an unknown id raises SpecError with a did-you-mean."""
    folder = exercises_dir() / exercise_id
    if not exercise_id or os.sep in exercise_id or not (folder / "spec.toml").is_file():
        ids = exercise_ids()
        guess = did_you_mean(exercise_id, ids)
        if not guess and exercise_id.isdigit() and f"exercise-{exercise_id}" in ids:
            guess = f" (did you mean 'exercise-{exercise_id}'?)"
        raise SpecError(f"unknown exercise {exercise_id!r}{guess}; known: {', '.join(ids)}{_where_looked()}")
    return load_exercise_dir(folder)


def _where_looked() -> str:
    """Which course an unknown exercise was looked for in, and how to name another: an instructor's
    exercise asked for outside its course folder otherwise reads as a typo."""
    from .folders import MARKER, current

    course = current()
    if course.exercises is not None:
        return f" (the exercises of the course at {course.root}, found through its {MARKER})"
    env = os.environ.get("DLDIY_COURSE")
    looked = (f"DLDIY_COURSE={env} has no {MARKER}" if env else
              f"no {MARKER} in {Path.cwd()} or a folder above it")
    return (f" (dldiy's built-in exercises: {looked}. For your own course, run this in its folder, the one "
            f"holding {MARKER}, or below it, or pass --course DIR; see docs/own-course.md)")


def load_exercise_dir(folder: Path) -> Exercise:
    """Read the spec in `folder` (an exercise of the course, or a test's hand-made one)."""
    return _parse(folder, tomllib.loads((folder / "spec.toml").read_text()))


def _parse(folder: Path, raw: dict[str, Any]) -> Exercise:
    where = f"{folder.name}/spec.toml"
    if "timeout" in _OVERRIDES:
        raw = dict(raw, timeout=_OVERRIDES["timeout"], checks=[{k: v for k, v in c.items() if k != "timeout"}
                                                            for c in raw.get("checks", [])])
    _validate_keys(where, raw)
    try:
        api = {name: ApiEntry(name=name, **{**entry, "forbid": with_engine(tuple(entry.get("forbid", ())))})
               for name, entry in raw.get("api", {}).items()}
        checks = []
        for c in raw["checks"]:
            kind = c["kind"]
            check_kind(kind)  # fails early on a typo in the spec
            checks.append(Check(
                name=c["name"], kind=kind, probe=c.get("probe", c["name"].replace("-", "_")), points=float(c["points"]),
                title=c.get("title", ""), hint=c.get("hint", "").strip(),
                seeds=tuple(c["seeds"]) if "seeds" in c else None,
                timeout=float(c.get("timeout", raw.get("timeout", DEFAULT_TIMEOUT_S))),
                check_seeds=bool(c.get("check_seeds", True)),
                params={k: v for k, v in c.items() if k not in _CHECK_KEYS}))
        known = {"id", "title", "summary", "entry", "seeds", "timeout", "api", "checks", "start", "load",
                 "load_tags", "skip_tags", "cells", "data", "requirements", "load_timeout", "memory"}  # (the rest: extra)
        load = str(raw.get("load", ""))
        if load and load not in LOAD_MODES:
            raise SpecError(f"{where}: load = {load!r}; expected one of {', '.join(map(repr, LOAD_MODES))}")
        cells = {str(name): _cell_selector(where, name, sel) for name, sel in raw.get("cells", {}).items()}
        requirements = tuple(map(str, raw.get("requirements", ())))
        if requirements:  # packaging's import (30 ms) only for a spec that has requirements
            from .requirements import RequirementError, parse_requirement
        for requirement in requirements:  # a typo (numpy=>1.24) stops here, never reads as "installed"
            try:
                parse_requirement(requirement)
            except RequirementError as e:
                raise SpecError(f"{where}: requirements: {e}") from None
        load_timeout = _OVERRIDES.get("load_timeout", raw.get("load_timeout"))
        memory = _OVERRIDES.get("memory", raw.get("memory"))
        return Exercise(
            id=raw["id"], title=raw["title"], folder=folder, entry=raw["entry"],
            seeds=tuple(raw.get("seeds", (1, 42, 2019))), checks=tuple(checks), api=api,
            summary=raw.get("summary", "").strip(), start=raw.get("start", "template"),
            extra={k: v for k, v in raw.items() if k not in known}, load=load,
            load_tags=tuple(map(str, raw.get("load_tags", ()))), skip_tags=tuple(map(str, raw.get("skip_tags", ()))),
            cells=cells, data=str(raw.get("data", "data")), requirements=requirements,
            load_timeout=None if load_timeout is None else float(load_timeout),
            memory=None if memory is None else parse_bytes(memory))
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(f"{where}: malformed spec ({type(e).__name__}: {e})") from None


def _validate_keys(where: str, raw: dict[str, Any]) -> None:
    """Every key where the spec may hold it, the required ones present (SpecError saying which, not a
    KeyError). A [[checks]] table's other keys are its kind's and probe's parameters, free to name; one
    within a letter or two of a framework key (`timout`, `point`) is taken for a typo of it."""
    _unknown_keys(where, raw, list(TOP_KEYS), "the spec's top level")
    for key in ("id", "title", "entry"):
        if key not in raw:
            raise SpecError(f"{where}: no {key!r} ({TOP_KEYS[key]}) at the spec's top level")
    if not raw.get("checks"):
        raise SpecError(f"{where}: no [[checks]] table: an exercise needs at least one check, with its probe in "
                        "harness.py (docs/own-course.md, section 5)")
    api = raw.get("api", {})
    if not isinstance(api, dict):
        raise SpecError(f"{where}: api must hold [api.NAME] tables, one per function the student writes")
    for name, entry in api.items():
        if not isinstance(entry, dict):
            hint = f": {_BELONGS[name]}" if name in _BELONGS else ""
            raise SpecError(f"{where}: api.{name} is not a table [api.{name}] (the function {name!r}){hint}")
        _unknown_keys(where, entry, API_KEYS, f"[api.{name}]")
        if not isinstance(entry.get("signature"), str):
            raise SpecError(f"{where}: [api.{name}] has no 'signature' (how {name} is called, e.g. signature = "
                            f"\"{name}(x, w) -> Tensor\": its arguments are named by it in the messages)")
    for table, keys in TABLE_KEYS.items():
        if isinstance(raw.get(table), dict):
            _unknown_keys(where, raw[table], keys, f"the [{table}] table")
    for i, check in enumerate(raw["checks"] if isinstance(raw["checks"], list) else [], 1):
        if not isinstance(check, dict):
            continue
        label = f"[[checks]] {check.get('name', f'number {i}')!r}"
        for key in ("name", "kind", "points"):
            if key not in check:
                raise SpecError(f"{where}: {label} has no {key!r}")
        for key in check:
            if key in _CHECK_KEYS:
                continue
            typo = difflib.get_close_matches(key, sorted(_CHECK_KEYS), n=1, cutoff=0.75)
            if typo:
                raise SpecError(f"{where}: {label}: unknown key {key!r} (did you mean {typo[0]!r}?); a check's other "
                                "keys are its kind's and probe's parameters, none of them this close to "
                                f"{typo[0]!r}")


def _cell_selector(where: str, name: str, selector: Any) -> dict[str, str]:
    if isinstance(selector, str):
        selector = {"tag": selector}
    if not isinstance(selector, dict) or len(selector) != 1 or not set(selector) <= {"tag", "contains"}:
        raise SpecError(f"{where}: cells.{name} must be {{ tag = \"...\" }} or {{ contains = \"...\" }}")
    return {k: str(v) for k, v in selector.items()}


def parse_bytes(value: Any) -> int:
    """2147483648, "2GiB", "512MiB", "2G" -> bytes (K/M/G are binary, KB/MB/GB decimal)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("kmgib")
    unit = text[len(number):]
    if unit not in _UNITS or not number:
        raise ValueError(f"{value!r} is not a size (write e.g. 2GiB or 512MiB)")
    return int(float(number) * _UNITS[unit])


def override_limits(*, load_timeout: float | None = None, timeout: float | None = None,
                    memory: str | int | None = None) -> None:
    """The command line's limits win over every spec read afterwards, in this process."""
    for key, value in (("load_timeout", load_timeout), ("timeout", timeout), ("memory", memory)):
        if value is not None:
            _OVERRIDES[key] = parse_bytes(value) if key == "memory" else float(value)


def unmet_requirements(exercise: Exercise) -> "list[Unmet]":
    """The spec's `requirements` that this interpreter (the one the children run) does not meet: not
    installed, or installed at a version outside the requirement's specifiers (graders/course/requirements.py).
    A requirement names a distribution (scikit-learn) or a module (sklearn)."""
    if not exercise.requirements:
        return []
    from .requirements import parse_requirement, unmet

    return unmet([parse_requirement(r) for r in exercise.requirements])


def require(exercise: Exercise) -> None:
    """Stop, in one line, when the exercise needs packages this machine lacks, or has at other versions."""
    import shlex

    problems = unmet_requirements(exercise)
    if not problems:
        return
    install = " ".join(shlex.quote(u.requirement.text) for u in problems)
    if all(u.installed is None for u in problems):
        raise SpecError(f"{exercise.id} needs {', '.join(u.requirement.text for u in problems)}, not installed here "
                        f"(the spec's requirements): pip install {install}")
    raise SpecError(f"{exercise.id}: {'; '.join(u.describe() for u in problems)} (the spec's requirements): "
                    f"pip install {install}")
