"""What `dldiy validate` checks, as data: one `Row` per submission (reference, bugged variant,
alternative, handout) and its problems, the corpus figures and their table, and whether this
machine can expose a bug at all (`missing`). The verb is cli/validate.py."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dldiy.graders.course.folders import BuggyVariant, buggy_variants, reference_path
from dldiy.graders.course.exercise import Exercise, exercise_ids
from dldiy.graders.course.handout import build, choose, handout_counts, read_files
from dldiy.graders.report import Report


@dataclass
class Row:
    exercise: Exercise
    name: str
    must_fail: tuple[str, ...]  # empty for the reference: everything must pass
    crashes_at: tuple[str, ...] = ()  # "file" or "file:line": every check errors, naming one of them
    bugs: str = ""  # a handout's bugs, listed under the table
    report: Report | None = None
    not_here: str | None = None  # why this machine cannot validate the variant (it needs an accelerator)
    alternative: bool = False  # a correct-but-different solution: full marks, like the reference
    reference: Report | None = None  # the reference's report, for the skips an alternative may share
    inconclusive: tuple[str, ...] = ()  # an alternative's checks that may skip as inconclusive (its manifest)

    def problems(self) -> list[str]:
        if self.not_here:
            return []
        status = {c.name: c for c in self.report.checks}
        if self.alternative:
            theirs = {c.name: c.status for c in self.reference.checks} if self.reference else {}
            return [f"{self.exercise.id}/{self.name}: a correct solution loses {c.max_points - c.points:g} point(s) "
                    f"in {c.name} ({c.status}): {c.message.splitlines()[0] if c.message else ''}"
                    for c in self.report.checks
                    if c.status != "pass" and not (c.status == "skip" and (theirs.get(c.name) == "skip"
                                                                          or c.name in self.inconclusive))]
        if self.crashes_at:
            return [f"{self.exercise.id}/{self.name}: must crash naming {' or '.join(self.crashes_at)} but {c.name} is {c.status}: "
                    f"{c.message.splitlines()[0]}" for c in self.report.checks
                    if c.status != "skip" and not (c.status == "error" and names_place(c.message, self.crashes_at))]
        if not self.must_fail:
            return [f"{self.exercise.id}/{self.name}: {c.name} is {c.status}: {c.message}" for c in self.report.checks
                    if c.status not in ("pass", "skip", "error")]
        out: list[str] = []
        for name in self.must_fail:
            c = status.get(name)
            if c is None:
                out.append(f"{self.exercise.id}/{self.name}: its manifest names {name!r}, which {self.exercise.id} does not have")
            elif c.status not in ("fail", "error"):
                out.append(f"{self.exercise.id}/{self.name}: must fail {name} but it is {c.status}: {c.message.splitlines()[0]}")
        return out

    def errored(self) -> list[str]:
        """Checks that ERRORED (status "error": the probe raised, the harness or the submission at that check,
        and nothing was measured) where the row expects a measurement: the reference, an alternative, a bugged
        variant that does not crash. Not a verdict on the manifest (problems() leaves them out): said as such,
        with what raised, so that an instructor reads a harness's mistake as one, not as a bug gone uncaught."""
        return [line for line, _ in self._errors()]

    def blocking_errors(self) -> list[str]:
        """The errored() checks that leave the row unvalidated (validate exits 1): every one of the reference's, an
        alternative's or a handout's, and a bugged variant's where its manifest names the check. One beyond a
        variant's manifest (its bug makes another check's probe raise: one bug charged twice) is listed, not fatal."""
        return [line for line, blocking in self._errors() if blocking]

    def _errors(self) -> list[tuple[str, bool]]:
        if self.not_here or self.crashes_at or self.report is None:
            return []
        return [(f"{self.exercise.id}/{self.name}: {c.name} errored"
                 + (" (its manifest names it: it must fail, measured)" if c.name in self.must_fail
                    else " (beyond its manifest: one bug, one deduction?)" if self.must_fail else "")
                 + f": {c.message.splitlines()[0] if c.message else '(no message)'}",
                 not self.must_fail or c.name in self.must_fail)
                for c in self.report.checks if c.status == "error"]


    def also_charged(self) -> list[str]:
        """Checks a bugged variant fails beyond those its manifest names: not a mismatch, but one bug
        charged more than once is worth a look (one bug, one deduction), or the manifest is short."""
        if self.not_here or self.alternative or not self.must_fail or self.report is None:
            return []
        return [f"{c.name} ({c.status}, -{c.max_points - c.points:g})" for c in self.report.checks
                if c.status == "fail" and c.name not in self.must_fail]  # an error is errored()'s


@dataclass
class Figures:
    """One exercise's line of docs/corpus.md."""

    exercise: str
    bugs: int
    caught: int
    alternatives: int
    full_marks: int
    false_failures: int  # checks that take points from the reference or a correct alternative

    def cells(self) -> list[str]:
        return [self.exercise, f"{self.caught}/{self.bugs}", f"{self.full_marks}/{self.alternatives}",
                str(self.false_failures)]


def corpus_figures(ex: Exercise, rows: list[Row]) -> Figures:
    """Bugs: the bugged variants of buggy/ (not the handouts, which combine them) run here."""
    ran = [r for r in rows if not r.not_here and not r.name.startswith("handout ")]
    bugs = [r for r in ran if r.must_fail or r.crashes_at]
    alts = [r for r in ran if r.alternative]
    correct = [r for r in ran if r.alternative or r.name == "reference"]
    return Figures(ex.id, len(bugs), sum(not r.problems() and not r.blocking_errors() for r in bugs), len(alts),
                   sum(not r.problems() and not r.blocking_errors() for r in alts),
                   sum(len(r.problems()) + len(r.blocking_errors()) for r in correct))


TABLE_HEADER = ["exercise", "bugs caught / corpus", "alternatives at full marks", "false failures"]


TABLE_INTRO = """# The corpus: bugs caught and correct solutions at full marks

Written by `dldiy validate --table docs/corpus.md` (regenerate it after changing a check, a bug or an
alternative; a run on some exercises keeps the other exercises' rows). *Bugs* are the bugged variants of
`buggy/<exercise>/` (each caught when every check its manifest names fails, or it crashes where it says);
*alternatives* are the correct-but-different solutions of `alternatives/<exercise>/`, which must get full
marks; *false failures* counts the checks that take points from the reference or an alternative. Every
submission runs at the public seeds and the spec's `check_seeds`, as `dldiy check` does.
"""


def write_table(path: Path, figures: list[Figures]) -> None:
    """docs/corpus.md with these exercises' rows replaced (or added) and the others kept, in course order."""
    rows: dict[str, list[str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and len(cells) == len(TABLE_HEADER) and cells[0].startswith("exercise-"):
                rows[cells[0]] = cells
    rows.update({f.exercise: f.cells() for f in figures})
    order = sorted(rows, key=lambda s: (len(s), s))
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(rows[e]) + " |" for e in order]
    path.write_text(TABLE_INTRO + "\n" + "\n".join(lines) + "\n")


@functools.cache
def missing(requires: str) -> str | None:
    """Why this machine cannot expose a bug that needs `requires` ("cuda" or "mps"), or None if it can.
    torch is asked in a subprocess: the parent never imports it."""
    if not requires:
        return None
    probes = {"cuda": "torch.cuda.is_available()", "mps": "torch.backends.mps.is_available()"}
    if requires not in probes:
        return f"its manifest requires {requires!r}, which dldiy does not know (known: {', '.join(probes)})"
    done = subprocess.run([sys.executable, "-c", f"import torch; print({probes[requires]})"],
                          capture_output=True, text=True, timeout=120)
    if done.stdout.strip() == "True":
        return None
    return f"requires {requires}; {probes[requires]} is {done.stdout.strip() or 'unknown'} on this machine"


def names_place(message: str, places: tuple[str, ...]) -> bool:
    """Whether `message` points at one of `places`: "file" matches `file:<line>`, "file:line" exactly."""
    for place in places:
        file, _, line = place.partition(":")
        if re.search(rf"(?<![\w./]){re.escape(file)}:{line or '[0-9]+'}(?![0-9])", message):
            return True
    return False


def handout_rows(ex: Exercise, folder: Path) -> list[tuple[Row, Path]]:
    """The handouts of ids sample-1..N, as handed out and with their crash bugs fixed. Line numbers
    shift when two patches touch one file, so a combination is held to the crash bugs' files only."""
    crash, silent, samples = handout_counts(ex.extra)
    if not samples:
        return []
    reference = reference_path(ex.id)
    files, bugs = read_files(reference), buggy_variants(ex.id)
    rows = []
    for i in range(1, samples + 1):
        student = f"sample-{i}"
        chosen = choose(ex.id, student, bugs, files, crash, silent)
        quiet = [b for b in chosen if not b.crashes_at]
        crash_files = tuple(sorted({b.crashes_at.partition(":")[0] for b in chosen if b.crashes_at}))
        caught_by = tuple(sorted({name for b in quiet for name in b.caught_by}))
        if crash_files:
            rows.append((Row(ex, f"handout {student}", (), crash_files, _names(chosen)),
                         build(reference, chosen, folder / student)))
        rows.append((Row(ex, f"handout {student}, crashes fixed", caught_by, (), _names(quiet)),
                     build(reference, quiet, folder / f"{student}-fixed")))
    return rows


def _names(bugs: list[BuggyVariant]) -> str:
    return " + ".join(b.id for b in bugs)


def all_ids() -> list[str]:
    return exercise_ids()
