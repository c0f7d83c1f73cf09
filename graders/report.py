"""The one result model: a submission's `Report` of `CheckResult`s, and its one JSON form.

`dldiy check --json` prints `Report.to_json()`; a batch record (the journal, results.json) is that
same JSON with the batch's fields beside it (student, graded file, sha256, skip policy); feedback
files, Gradescope's results.json, nbgrader's gradebook and the gradebook CSV read a record back with
`Report.from_json`; the notebook's `Result` (dldiy/incheck.py) wraps a Report. The rule that turns
checks into a submission's status, and the one that says when a traceback is shown, live here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .verdict import Status

STATUSES: tuple[Status, ...] = ("pass", "fail", "error", "skip")
EXIT_CODES = {"pass": 0, "fail": 1, "error": 2}  # `dldiy check`'s exit status for a report's status


_NOT_SHOWN = re.compile(r"[^\n\t\x20-\x7e]")  # what may need escaping: anything not plain ASCII text


def shown(text: str, lines: bool = True) -> str:
    """`text` as it may reach a terminal or a file an instructor opens: every control or invisible
    formatting character (ESC and its sequences, OSC titles, CR, bells, C1 codes, bidi overrides, lone
    surrogates) shown as its escape, e.g. \\x1b, so it cannot move the cursor, recolour, hide or rewrite
    what is shown; printable Unicode kept, and newlines and tabs with `lines` (a message's own layout)."""
    if not _NOT_SHOWN.search(text):
        return text
    kept = "\n\t" if lines else ""
    return "".join(ch if ch.isprintable() or ch in kept else ascii(ch)[1:-1] for ch in text)


@dataclass
class CheckResult:
    name: str
    kind: str
    status: Status
    points: float
    max_points: float
    message: str
    title: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    counted: bool = True  # False: a skipped check the batch's policy leaves out of the maximum

    @property
    def traceback_to_show(self) -> str:
        """The student's own traceback, shown under the message of an error; "" when there is none
        worth showing (a one-line traceback only repeats the message)."""
        tb = self.details.get("traceback")
        return tb if self.status == "error" and isinstance(tb, str) and "\n" in tb else ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "title": self.title, "status": self.status,
                "points": self.points, "max_points": self.max_points, "message": self.message,
                "details": self.details, "counted": self.counted}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CheckResult":
        status = data["status"]
        if status not in STATUSES:
            raise ValueError(f"unknown check status {status!r}")
        return cls(str(data["name"]), str(data.get("kind", "")), status, float(data["points"]),
                   float(data["max_points"]), str(data.get("message", "")), str(data.get("title") or ""),
                   dict(data.get("details") or {}), data.get("counted") is not False)


@dataclass
class Report:
    exercise: str
    submission: str
    checks: list[CheckResult]
    load_error: str | None = None  # the submission could not be found, loaded or run at all
    skipped_lines: list[str] = field(default_factory=list)
    output: str = ""
    duration_s: float = 0.0
    sandbox: list[str] = field(default_factory=list)  # the confinement its child reported
    declared_max: float | None = None  # the maximum when no check ran: the points the checks asked for

    @property
    def score(self) -> float:
        return sum(c.points for c in self.checks if c.counted)

    @property
    def max_score(self) -> float:
        if not self.checks and self.declared_max is not None:
            return self.declared_max
        return sum(c.max_points for c in self.checks if c.counted)

    @property
    def status(self) -> str:
        """"error" when the submission was unusable or a check errored, else "fail" when one failed,
        else "pass" (skips do not count against it)."""
        statuses = {c.status for c in self.checks}
        return "error" if self.load_error or "error" in statuses else "fail" if "fail" in statuses else "pass"

    @property
    def exit_code(self) -> int:
        """0 when every check that ran passed, 1 when one failed, 2 when the submission was unusable."""
        return EXIT_CODES[self.status]

    @property
    def error(self) -> str:
        """What made it unusable, in one line where a check says it: for a gradebook's error column."""
        if self.load_error:
            return self.load_error
        first = next((c for c in self.checks if c.status == "error"), None)
        return f"{first.name}: {(first.message.splitlines() or [''])[0]}" if first else ""

    def shown(self) -> "Report":
        """A copy with every text a submission can shape (messages quoting it, its traceback, the
        lines not executed, its load error, its output, its name) passed through `shown`."""
        def details(c: CheckResult) -> dict[str, Any]:
            tb = c.details.get("traceback")
            return {**c.details, "traceback": shown(tb)} if isinstance(tb, str) else c.details

        checks = [dataclasses.replace(c, name=shown(c.name), message=shown(c.message), title=shown(c.title),
                                      details=details(c)) for c in self.checks]
        return dataclasses.replace(self, submission=shown(self.submission), checks=checks,
                                   load_error=None if self.load_error is None else shown(self.load_error),
                                   skipped_lines=[shown(s) for s in self.skipped_lines], output=shown(self.output))

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"{self.exercise} has no check {name!r} in this result")

    def apply_skip_policy(self, skips: str) -> None:
        """Under "leave-out", a skipped check's points leave the maximum; under "zero" it counts as 0."""
        if skips not in SKIP_POLICIES:
            raise ValueError(f"unknown skip policy {skips!r} (one of {', '.join(SKIP_POLICIES)})")
        for c in self.checks:
            c.counted = not (c.status == "skip" and skips == "leave-out")

    def to_json(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "submission": self.submission, "status": self.status,
                "score": self.score, "max_score": self.max_score, "error": self.error,
                "load_error": self.load_error, "skipped_lines": list(self.skipped_lines), "output": self.output,
                "duration_s": self.duration_s, "sandbox": list(self.sandbox),
                "checks": [c.to_json() for c in self.checks]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Report":
        """A report back from its JSON, or from a batch record (which has the same fields and more).
        The status, score and error are recomputed from the checks, never taken as written."""
        checks = [CheckResult.from_json(c) for c in data.get("checks") or []]
        load_error = data.get("load_error")
        if load_error is None and not checks and data.get("error"):  # a record of an unusable submission
            load_error = str(data["error"])
        return cls(str(data.get("exercise") or ""), str(data.get("submission") or ""), checks, load_error,
                   [str(s) for s in data.get("skipped_lines") or []], str(data.get("output") or ""),
                   float(data.get("duration_s") or 0.0), [str(s) for s in data.get("sandbox") or []],
                   None if checks else float(data.get("max_score") or 0.0))


SKIP_POLICIES = ("leave-out", "zero")
