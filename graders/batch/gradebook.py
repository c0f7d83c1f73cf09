"""The batch's output folder: an append-only journal (the truth), and the gradebook derived from it.

OUT/journal.jsonl   one JSON record per graded student, appended and fsync'ed as each finishes. A
                    batch killed at any instant (kill -9 included) leaves at worst a torn last line,
                    which is dropped on reopening: that student is graded again, nobody twice.
OUT/batch.json      the batch's settings (exercise, checks, hidden seeds, skip policy), so a resumed run
                    grades the rest of the class exactly as the first part was graded; the exercise's
                    fingerprint (a hash of each file that decides a grade: spec, harness, expected values,
                    data, reference), so a resumed run grades again whoever was graded under an older
                    version of the exercise; and the isolation the children got.
OUT/gradebook.csv   student, points per check, total, max, status, duration, error, graded file and its
                    sha256: a row appended per result, rewritten sorted by student when the batch ends.
                    A text cell that a spreadsheet would take for a formula (it starts with =, +, -, @,
                    a tab or a carriage return) is prefixed with a quote: a student's name or message
                    never runs in the instructor's spreadsheet.
OUT/results.json    every check's full result for every student (rewritten as the batch goes).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from ..report import Report, shown


class BatchMismatch(Exception):
    """OUT already holds a batch graded with other settings."""


class Journal:
    """Append-only JSONL, one line per student; the last line for a student wins."""

    def __init__(self, path: Path, fresh: bool = False):
        self.path = path
        if fresh and path.exists():
            path.unlink()
        self.records: dict[str, dict[str, Any]] = {}
        self.lines: dict[str, str] = {}  # each record as written: results.json reuses it (no re-encoding)
        if path.exists():
            data = path.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]  # a torn last line (killed mid-write) is dropped
            if len(whole) != len(data):
                with open(path, "r+b") as f:
                    f.truncate(len(whole))
            for line in whole.splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                self.records[record["student"]] = record
                self.lines[record["student"]] = line.decode("utf-8", "backslashreplace")
        self._file = open(path, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True)
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[record["student"]] = record
        self.lines[record["student"]] = line

    def close(self) -> None:
        self._file.close()


DEFAULT_SKIPS = "leave-out"
SKIPS_BEFORE_POLICY = "zero"  # batches recorded before the policy existed counted a skip as zero


# Public seeds graded beside the hidden ones: the points rest on the hidden seeds (a student cannot
# prepare for them); one public seed gives a failure its values, hint and pictures, which a hidden seed
# withholds (they would be an answer table for a resubmission graded with the same seeds).
DEFAULT_PUBLIC_SEEDS = 1


def recorded_settings(out: Path) -> dict[str, Any] | None:
    """OUT/batch.json as recorded (None where OUT holds no batch)."""
    path = out / "batch.json"
    return json.loads(path.read_text()) if path.exists() else None


# The exercise as it was when the batch graded it (graders/batch/run.py's exercise_fingerprint): one value,
# and each file's hash, so a resumed run can say what changed.
FINGERPRINT_KEYS = ("exercise_fingerprint", "exercise_files")


def settle_settings(out: Path, settings: dict[str, Any], regrade: bool, drawn: bool,
                    keep_seeds: bool = False) -> dict[str, Any]:
    """The batch's settings: those recorded in OUT (a resumed run), else `settings`, now recorded.

    A resumed run that drew its hidden seeds reuses the recorded ones, and one that did not choose a skip
    policy (settings["skips"] None) the recorded one; explicit settings that differ from the recorded
    ones are refused rather than mixing two gradings in one gradebook. The exercise's fingerprint (in
    `settings`, when the caller gives one) is the current one: where the exercise changed since the batch
    recorded it, everyone is graded again (cli/grade.py), so the checks may change with it. `regrade`
    (start over) with `keep_seeds`: the recorded hidden seeds are kept, not drawn anew."""
    path = out / "batch.json"
    recorded = recorded_settings(out)
    if recorded is not None and not regrade:
        recorded.setdefault("skips", SKIPS_BEFORE_POLICY)
        mine = dict(settings, hidden_seeds=recorded["hidden_seeds"]) if drawn else dict(settings)
        if mine.get("skips") is None:
            mine["skips"] = recorded["skips"]
        recorded.setdefault("public_seeds", None)  # a batch from before the choice graded every public seed
        if mine.get("public_seeds") is None:
            mine["public_seeds"] = recorded["public_seeds"]
        fingerprint = settings.get("exercise_fingerprint")
        changed = fingerprint is not None and recorded.get("exercise_fingerprint") not in (None, fingerprint)
        for key in ("exercise", "checks", "hidden_seeds", "skips", "public_seeds"):
            if key == "checks" and changed:  # everyone is graded again under the new exercise
                continue
            if recorded.get(key) != mine.get(key):
                raise BatchMismatch(f"{out} holds a batch graded with {key} = {recorded.get(key)}, not "
                                    f"{mine.get(key)}: pass --regrade to start over, or choose another --out")
        if fingerprint is not None and recorded.get("exercise_fingerprint") != fingerprint:
            recorded.update({k: settings[k] for k in FINGERPRINT_KEYS if k in settings})
            if changed:
                recorded.update(checks=settings["checks"], max_score=settings["max_score"])
            _atomic_write(path, json.dumps(recorded, indent=1) + "\n")
        return recorded
    if recorded is not None and keep_seeds:
        settings = dict(settings, hidden_seeds=recorded["hidden_seeds"])
    settings = dict(settings, skips=settings.get("skips") or DEFAULT_SKIPS)
    if settings.get("public_seeds") is None:
        settings["public_seeds"] = DEFAULT_PUBLIC_SEEDS
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(settings, indent=1) + "\n")
    return settings


def record_isolation(out: Path, isolation: list[str]) -> None:
    """Add to OUT/batch.json what confinement the children reported (see graders/sandbox/confine.py)."""
    path = out / "batch.json"
    recorded = json.loads(path.read_text())
    recorded["isolation"] = list(isolation)
    _atomic_write(path, json.dumps(recorded, indent=1) + "\n")


def csv_header(checks: list[str]) -> list[str]:
    return ["student", *checks, "total", "max", "status", "duration_s", "error", "graded_file", "sha256", "submission_sha256",
            "note"]


def csv_row(record: dict[str, Any], checks: list[str]) -> list[Any]:
    """One row; a skipped check that the policy leaves out of the maximum shows as empty, not 0."""
    report = Report.from_json(record)
    points = {c.name: ("" if not c.counted else _num(c.points)) for c in report.checks}
    error = str(record.get("error") or "")  # as recorded: the batch's own words for an unusable row
    return [safe_cell(record["student"]), *[points.get(c, _num(0.0)) for c in checks], _num(report.score),
            _num(report.max_score), report.status, f"{record['duration_s']:.2f}",
            safe_cell(error.splitlines()[0] if error else ""),
            safe_cell(record.get("graded_file") or ""), record.get("sha256") or "",
            # every file of the submission (names and contents): a folder's other files decide grades too
            record.get("content_hash") or "",
            safe_cell(str(record.get("note") or ""))]  # for the instructor: a name shared with another entry


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate (OWASP's advice for CSV injection: a leading quote),
    and that `cat gradebook.csv` cannot turn into terminal commands (control characters escaped)."""
    return "'" + terminal_safe(text) if text.startswith(FORMULA_PREFIXES) else terminal_safe(text)


def terminal_safe(text: str) -> str:
    """`text` on one line, every control character shown escaped (report.shown without newlines and tabs)."""
    return shown(text, lines=False)


def _num(x: float) -> str:
    return f"{x:g}"


class Gradebook:
    """The CSV and JSON views of the journal, kept current as records arrive."""

    def __init__(self, out: Path, settings: dict[str, Any], journal: Journal, json_every_s: float = 5.0):
        self.out, self.settings, self.journal = out, settings, journal
        self.checks = settings["checks"]
        self.json_every_s, self._json_written = json_every_s, 0.0
        self.finish()  # what a previous, interrupted run graded is in the files from the start
        self._csv = open(out / "gradebook.csv", "a", newline="", encoding="utf-8", errors="backslashreplace")

    def add(self, record: dict[str, Any]) -> None:
        """Journal first (the truth), then the derived views."""
        self.journal.append(record)
        csv.writer(self._csv).writerow(csv_row(record, self.checks))
        self._csv.flush()
        if time.monotonic() - self._json_written > self.json_every_s:
            self._write_json()

    def sorted_records(self) -> list[dict[str, Any]]:
        return [self.journal.records[s] for s in sorted(self.journal.records)]

    def finish(self) -> None:
        """Rewrite both views from the journal, sorted by student (no duplicate, none missing)."""
        tmp = self.out / "gradebook.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
            writer = csv.writer(f)
            writer.writerow(csv_header(self.checks))
            writer.writerows(csv_row(r, self.checks) for r in self.sorted_records())
        os.replace(tmp, self.out / "gradebook.csv")
        self._write_json()

    def _write_json(self) -> None:
        # Each student's record as the journal wrote it, one per line: encoding the whole class again
        # (json's indent= path is pure Python) cost ~1 s per rewrite at 60 students, every 5 s, on the
        # parent's thread; joining the journal's lines costs milliseconds.
        head = json.dumps(self.settings, indent=1)  # "{\n ...\n}"
        students = ",\n".join(self.journal.lines[s] for s in sorted(self.journal.records))
        text = head[:-2] + ',\n "students": [\n' + students + "\n ]\n}\n"
        _atomic_write(self.out / "results.json", text)
        self._json_written = time.monotonic()

    def close(self) -> None:
        self._csv.close()
        self.finish()
        self.journal.close()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
