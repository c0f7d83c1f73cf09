"""No student can stop the batch, borrow a classmate's work through a link, or hijack what the
instructor reads; and the instructor's workflow (resume after a resubmission, --regrade STUDENT, the
skip policy, the graded file's hash, the isolation) holds. Real zip files, real notebooks, real
`dldiy grade` subprocesses."""

from __future__ import annotations

import base64
import csv
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, run_dldiy

from dldiy.graders.batch.discover import MAX_JSON_DEPTH, UnsafeArchive, discover, extract_zip, json_depth
from dldiy.graders.batch.export import feedback_markdown, gradescope_results
from dldiy.graders.batch.gradebook import csv_row, safe_cell

REFERENCE_DIR = REPO / "reference" / "exercise-1"
REFERENCE = (REFERENCE_DIR / "logreg.py").read_text()
ANSI = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"  # set the title, clear the screen, turn red


def notebook(source: str) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                  "source": source}]})


# --- hostile archives: each refused with a reason, before it costs anything ------------------------

def corrupt_deflate(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("logreg.py", REFERENCE * 20)
    data = bytearray(path.read_bytes())
    start = 30 + len("logreg.py")  # the compressed stream follows the local header
    data[start:start + 64] = b"\xff" * 64  # not a valid deflate block
    path.write_bytes(bytes(data))
    return path


def long_name(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("logreg.py", REFERENCE)
        zf.writestr("a" * 300 + ".py", "x = 1")
    return path


def file_folder_clash(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("utils", "x = 1")
        zf.writestr("utils/logreg.py", REFERENCE)
    return path


def many_entries(path: Path, entries: int, claimed: int | None = None) -> Path:
    """A zip whose central directory really lists `entries` entries (all naming one local member, the
    cheapest way to build it), with zip64 end records, as zipfile itself writes them beyond 65535; the
    end records say `claimed` entries (default: the truth)."""
    name = b"a"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0,
                          0, 0) + name
    directory = central * entries
    offset = len(local)
    claimed = entries if claimed is None else claimed
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, claimed, claimed, len(directory), offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(local + directory + end64 + locator + end)
    return path


@pytest.mark.parametrize("make, reason", [
    (corrupt_deflate, "not a readable zip archive"),
    (long_name, "longer than the file system allows"),
    (file_folder_clash, "as both a file and a folder"),
])
def test_a_broken_zip_is_refused_with_its_reason_and_leaves_nothing(tmp_path, make, reason):
    archive = make(tmp_path / "s.zip")
    with pytest.raises(UnsafeArchive, match=reason):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_huge_central_directory_is_refused_from_its_end_record(tmp_path):
    archive = many_entries(tmp_path / "many.zip", 100_000)
    with zipfile.ZipFile(archive) as zf:  # a real archive: zipfile reads every entry of it
        assert len(zf.infolist()) == 100_000
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchive, match="holds 100000 files, more than the cap of 500"):
            extract_zip(archive, tmp_path / "dest")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak} bytes: the directory was parsed before the count was checked"


def test_end_records_that_claim_a_million_entries_or_lie_about_the_count_are_refused(tmp_path):
    with pytest.raises(UnsafeArchive, match="holds 1000000 files, more than the cap of 500"):
        extract_zip(many_entries(tmp_path / "claims.zip", 10, claimed=1_000_000), tmp_path / "d1")
    with pytest.raises(UnsafeArchive, match="directory is 4700000 bytes, too large for 500 files"):
        extract_zip(many_entries(tmp_path / "lies.zip", 100_000, claimed=10), tmp_path / "d2")


def test_declared_sizes_are_checked_before_writing(tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("logreg.py", REFERENCE)
        zf.writestr("data.bin", b"\0" * 3_000_000)
    with pytest.raises(UnsafeArchive, match="3.* bytes declared"):
        extract_zip(archive, tmp_path / "dest", max_bytes=1024 * 1024)
    assert not (tmp_path / "dest").exists()


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"cells": [{"source": ["x = [[[1]]]", "\\"]]]\\\\"]}]}') == 4
    assert json_depth(b"[" * 100_000 + b"]" * 100_000) == 100_000
    assert json_depth(b"") == 0
    assert json_depth(b'["a\\') == 1 and json_depth(b'[["unterminated ]]') == 2  # a string open to the end


def test_json_depth_is_linear_on_an_unterminated_string_of_escaped_quotes():
    """Integrity round 14: '"x": "' then escaped quotes and no closing one made every quote a regex start that
    ran to the end and failed (quadratic: 32 KB took 7 s, a 200 KB notebook stalled a class's discovery for
    hours). 4 MB now, in a child given a minute: a regression hangs it and fails here, it does not hang CI."""
    code = ("from dldiy.graders.batch.discover import json_depth\n"
            "print(json_depth(b'{\"cells\": [], \"x\": \"' + b'\\\\\"' * 2_000_000))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr


# --- discovery: every problem is one student's row ---------------------------------------------------

@pytest.fixture
def hostile(tmp_path) -> Path:
    """A class where every student but alice and carol tries something."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.py").write_text(REFERENCE)
    (subs / "carol").mkdir()
    (subs / "carol" / "logreg.ipynb").write_text(notebook(REFERENCE))
    corrupt_deflate(subs / "corrupt.zip")
    long_name(subs / "longname.zip")
    file_folder_clash(subs / "clash.zip")
    many_entries(subs / "million.zip", 100_000)
    with open(subs / "huge.ipynb", "wb") as f:  # 200 MB (sparse: no disk used) behind a valid start
        f.write(notebook(REFERENCE)[:-1].encode() + b", \"pad\": \"")
        f.truncate(200 * 1024 * 1024)
    (subs / "deep").mkdir()
    (subs / "deep" / "logreg.ipynb").write_text(
        notebook(REFERENCE)[:-1] + ', "pad": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (subs / "thief").symlink_to(subs / "carol")  # the whole folder is a link to a classmate's
    (subs / "refthief").mkdir()
    (subs / "refthief" / "logreg.py").symlink_to(REFERENCE_DIR / "logreg.py")  # one file links to reference/
    (subs / "nested").mkdir()
    (subs / "nested" / "inner").symlink_to(REFERENCE_DIR)  # a lone link: descending would follow it
    (subs / "book").mkdir()  # the batch's own --out, inside the class folder
    (subs / "book" / "logreg.py").write_text("x = 1")
    os.mkfifo(subs / "pipe.zip")  # opened, it would block the parent forever
    (subs / "dup.py").write_text(REFERENCE)
    (subs / "dup.ipynb").write_text(notebook(REFERENCE))
    return subs


REASONS = {
    "corrupt": "not a readable zip archive",
    "longname": "longer than the file system allows",
    "clash": "as both a file and a folder",
    "million": "holds 100000 files",
    "huge": "200 MB, more than the cap of",
    "deep": f"levels deep, more than the cap of {MAX_JSON_DEPTH}",
    "thief": "thief is a symbolic link",
    "refthief": "logreg.py is a symbolic link",
    "nested": "inner is a symbolic link",
    "pipe": "not a regular file",
}


def test_discover_turns_every_hostile_entry_into_its_own_error_row(hostile, tmp_path):
    tracemalloc.start()
    try:
        found = {f.student: f for f in discover(hostile, "logreg.py", "exercise-1", tmp_path / "scratch",
                                                exclude=(hostile / "book",))}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, f"discovery held {peak} bytes: something was parsed before its size was checked"
    assert sorted(found) == sorted(["alice", "carol", "dup.py", "dup.ipynb", *REASONS]), \
        "book/ (the --out folder) is not a student"
    for student, reason in REASONS.items():
        assert found[student].error and reason in found[student].error, (student, found[student].error)
    for student in ("dup.py", "dup.ipynb"):  # one stem, two entries: each its own student, flagged
        assert found[student].error is None and "each graded on its own" in found[student].note
    for student in ("alice", "carol"):
        assert found[student].error is None
        assert found[student].graded.name in ("alice.py", "logreg.ipynb")
        assert len(found[student].sha256) == 64 and len(found[student].content_hash) == 64


def test_nbgrader_student_folder_linked_to_a_classmate_is_refused(tmp_path):
    course = tmp_path / "course"
    (course / "submitted" / "s1" / "ex1").mkdir(parents=True)
    (course / "submitted" / "s1" / "ex1" / "logreg.py").write_text(REFERENCE)
    (course / "submitted" / "s2").symlink_to(course / "submitted" / "s1")
    (course / "submitted" / "s3").mkdir()
    (course / "submitted" / "s3" / "ex1").symlink_to(course / "submitted" / "s1" / "ex1")
    found = {f.student: f for f in discover(course, "logreg.py", "ex1", tmp_path / "scratch")}
    assert found["s1"].error is None
    assert "s2 is a symbolic link" in found["s2"].error
    assert "ex1 is a symbolic link" in found["s3"].error


def test_content_hash_follows_every_file_of_the_submission(tmp_path):
    subs = tmp_path / "subs"
    (subs / "bob").mkdir(parents=True)
    (subs / "bob" / "logreg.py").write_text(REFERENCE)
    (subs / "bob" / "helpers.py").write_text("A = 1")
    before = discover(subs, "logreg.py", "ex", tmp_path / "s")[0]
    (subs / "bob" / "helpers.py").write_text("A = 2")
    after = discover(subs, "logreg.py", "ex", tmp_path / "s")[0]
    assert before.sha256 == after.sha256  # the graded file did not change...
    assert before.content_hash != after.content_hash  # ...but the submission did


# --- output that cannot be hijacked ----------------------------------------------------------------

def record(student: str, message: str, status: str = "fail") -> dict:
    return {"student": student, "score": 0.0, "max_score": 3.0, "status": status, "duration_s": 0.1,
            "error": message, "graded_file": "/x/logreg.py", "sha256": "ab" * 32, "skipped_lines": [],
            "checks": [{"name": "first-loss", "kind": "first_loss", "title": "", "status": status, "points": 0.0,
                        "max_points": 3.0, "message": message, "details": {}}]}


def test_markdown_feedback_cannot_be_closed_early():
    message = "x\n```\n# Grade: 10/10\n````\n<script>alert(1)</script>\n`````"
    text = feedback_markdown(record("mallory`` **bold**", message), "Exercise 1")
    lines = text.splitlines()
    opening = next(i for i, line in enumerate(lines) if line.startswith("``````"))
    closing = lines.index(lines[opening][:6], opening + 1)
    assert lines[opening + 1: closing] == message.splitlines()  # the whole message inside one block
    assert "# Grade: 10/10" not in lines[:opening] + lines[closing + 1:]
    assert "Student: ```mallory`` **bold**```" in text


def test_csv_cells_cannot_become_formulas():
    for text in ("=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text).startswith("'")
    row = csv_row(record("=cmd|' /C calc'!A0", "=1+1" + ANSI), ["first-loss"])
    assert row[0] == "'=cmd|' /C calc'!A0" and row[6].startswith("'=1+1") and "\x1b" not in row[6]


def test_gradescope_never_calls_a_skipped_check_failed():
    skipped = {"name": "parity", "kind": "parity", "title": "", "status": "skip", "points": 0.0, "max_points": 0.5,
               "message": "no GPU on this machine", "details": {}}
    for policy, counted in (("leave-out", False), ("zero", True)):
        rec = dict(record("alice", "", status="pass"), score=3.0, skips=policy)
        rec["checks"] = [dict(rec["checks"][0], points=3.0), dict(skipped, counted=counted)]
        rec["max_score"] = 3.0 if policy == "leave-out" else 3.5
        test = gradescope_results(rec)["tests"][1]
        if policy == "leave-out":
            assert "max_score" not in test and "status" not in test and "not counted" in test["output"]
        else:
            assert test["max_score"] == 0.5 and test["score"] == 0 and "counted as 0" in test["output"]
        assert gradescope_results(rec)["score"] == 3.0


# --- the real command on a hostile class -----------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory) -> Path:
    subs = tmp_path_factory.mktemp("hostile") / "subs"
    subs.mkdir()
    (subs / "alice.py").write_text(REFERENCE)
    (subs / "bob.py").write_text(REFERENCE)
    (subs / f"=HYPERLINK(1)[bold red]boom{ANSI}").mkdir()
    (subs / f"=HYPERLINK(1)[bold red]boom{ANSI}" / "logreg.py").write_text(
        REFERENCE + "\nraise ValueError('[bold red]x' + chr(27) + '[2J')\n")  # its message quotes markup
    corrupt_deflate(subs / "corrupt.zip")
    file_folder_clash(subs / "clash.zip")
    many_entries(subs / "million.zip", 100_000)
    long_name(subs / "longname.zip")
    with open(subs / "huge.ipynb", "wb") as f:  # 200 MB, sparse
        f.write(notebook(REFERENCE)[:-1].encode() + b", \"pad\": \"")
        f.truncate(200 * 1024 * 1024)
    (subs / "deep.ipynb").write_text(notebook(REFERENCE)[:-1] + ', "pad": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (subs / "thief").symlink_to(REFERENCE_DIR)
    (subs / "classmate").symlink_to(subs / "alice.py")
    (subs / ("l" * 255)).mkdir()  # the longest name a folder can have: too long for "<name>.html"
    (subs / ("l" * 255) / "logreg.py").write_text(REFERENCE)
    os.mkdir(os.fsencode(subs) + b"/bytes\xff\xfe")  # not UTF-8: no CSV or feedback file could hold it raw
    (subs / os.fsdecode(b"bytes\xff\xfe") / "logreg.py").write_text(
        REFERENCE + "\nraise ValueError('\\udcff lone surrogate')\n")
    return subs


@pytest.fixture(scope="module")
def hostile_batch(hostile_class):
    out = hostile_class / "book"  # inside the class folder: must not be graded as a student
    result = run_dldiy("grade", "exercise-1", str(hostile_class), "--out", str(out), "--hidden-seeds", "7",
                       "--only", "first-loss", "--only", "parity", "--jobs", "2", "--format", "gradescope")
    return result, out


def gradebook(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_no_student_stops_the_batch_and_nothing_escapes_to_the_terminal(hostile_batch):
    result, out = hostile_batch
    assert result.returncode == 0, result.stderr
    book = gradebook(out)
    assert len(book) == 13 and "book" not in book
    assert book["l" * 255]["status"] == "pass" and len(list((out / "feedback").glob("llll*-*.html"))) == 1
    assert (book["alice"]["status"], book["alice"]["first-loss"]) == ("pass", "3")
    for student, reason in {"corrupt": "not a readable zip", "clash": "both a file and a folder",
                            "million": "holds 100000 files", "thief": "symbolic link", "classmate": "symbolic link",
                            "longname": "longer than the file system allows", "huge": "200 MB",
                            "deep": "levels deep"}.items():
        assert book[student]["status"] == "error" and reason in book[student]["error"], book[student]
    hijacker = next(s for s in book if "HYPERLINK" in s)
    assert hijacker.startswith("'=") and "\x1b" not in hijacker and "\\x1b" in hijacker
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert "[bold red]boom\\x1b" in result.stdout  # the markup shown as text, not applied
    assert "ValueError: [bold red]x\\x1b[2J" in result.stdout
    assert "\x1b" not in (out / "gradebook.csv").read_text()
    assert book["bytes\\xff\\xfe"]["status"] == "error" and (out / "feedback" / "bytes\\xff\\xfe.md").is_file()


def test_records_name_the_graded_file_and_its_hash(hostile_batch, hostile_class):
    import hashlib

    _, out = hostile_batch
    alice = gradebook(out)["alice"]
    assert alice["graded_file"] == str(hostile_class / "alice.py")
    assert alice["sha256"] == hashlib.sha256((hostile_class / "alice.py").read_bytes()).hexdigest()
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert all(r["sha256"] and r["graded_file"] for r in journal if r["status"] != "error" or r["checks"])
    assert alice["sha256"] in (out / "feedback" / "alice.md").read_text()
    gradescope = json.loads((out / "gradescope" / "alice" / "results.json").read_text())
    assert gradescope["extra_data"]["sha256"] == alice["sha256"]
    # and the whole submission's hash beside it (a folder's other files decide grades too): the one resume uses
    record = next(r for r in journal if r["student"] == "alice")
    assert alice["submission_sha256"] == record["content_hash"] == gradescope["extra_data"]["submission_sha256"]
    assert len({row["submission_sha256"] for row in gradebook(out).values() if row["submission_sha256"]}) > 1


def test_skip_policy_is_recorded_and_honest(hostile_batch):
    _, out = hostile_batch
    settings = json.loads((out / "batch.json").read_text())
    assert settings["skips"] == "leave-out"
    alice = json.loads((out / "gradescope" / "alice" / "results.json").read_text())
    parity = next(t for t in alice["tests"] if t["name"].startswith("parity"))
    row = gradebook(out)["alice"]
    if "max_score" not in parity:  # skipped here (no GPU): out of the maximum, not "failed"
        assert "status" not in parity and row["parity"] == "" and row["max"] == "3"
    else:  # a GPU grader ran it
        assert parity["status"] == "passed" and row["max"] == "3.5"


def test_isolation_is_printed_and_recorded(hostile_batch):
    result, out = hostile_batch
    isolation = json.loads((out / "batch.json").read_text())["isolation"]
    assert isolation, "the children's confinement must be recorded"
    assert "isolation of the children:" in result.stderr
    best_effort = [s for s in isolation if s.startswith("not applied")]
    assert ("isolation is best effort" in result.stderr) == bool(best_effort)


def test_progress_is_plain_lines_when_not_a_terminal(hostile_batch):
    result, _ = hostile_batch
    lines = [line for line in result.stderr.splitlines() if line.startswith("graded ")]
    assert lines and lines[-1].startswith("graded 13/13 (") and lines[-1].endswith("/s)")
    assert "━" not in result.stderr  # no progress bar characters in a log


def test_resume_regrades_a_changed_submission_and_regrade_names_students(hostile_batch, hostile_class):
    _, out = hostile_batch
    args = ("grade", "exercise-1", str(hostile_class), "--out", str(out), "--only", "first-loss",
            "--only", "parity", "--jobs", "2")

    def graded_times() -> dict[str, int]:
        lines = [json.loads(line)["student"] for line in (out / "journal.jsonl").read_text().splitlines()]
        return {s: lines.count(s) for s in set(lines)}

    before = graded_times()
    (hostile_class / "bob.py").write_text(REFERENCE.replace("return -(torch.sigmoid", "return (torch.sigmoid"))
    resumed = run_dldiy(*args, "--hidden-seeds", "7")
    assert resumed.returncode == 0, resumed.stderr
    assert "bob: submission changed since it was graded" in resumed.stderr
    after = graded_times()
    assert after["bob"] == before["bob"] + 1
    assert {s: n for s, n in after.items() if s != "bob"} == {s: n for s, n in before.items() if s != "bob"}
    assert gradebook(out)["bob"]["sha256"] != gradebook(out)["alice"]["sha256"]

    again = run_dldiy(*args, "--regrade", "alice", "--regrade", "corrupt,clash")
    assert again.returncode == 0, again.stderr
    regraded = graded_times()
    assert sorted(s for s in regraded if regraded[s] != after[s]) == ["alice", "clash", "corrupt"]
    assert json.loads((out / "batch.json").read_text())["hidden_seeds"] == [7]  # the batch's settings kept

    unknown = run_dldiy(*args, "--regrade", "alcie")
    assert unknown.returncode == 2 and "no submission for 'alcie'" in unknown.stderr
    assert graded_times() == regraded

    everyone = run_dldiy(*args, "--hidden-seeds", "7", "--regrade")  # bare: start over, everyone once
    assert everyone.returncode == 0, everyone.stderr
    assert graded_times() == {s: 1 for s in regraded}


def test_a_skip_policy_cannot_change_midway(hostile_batch, hostile_class):
    _, out = hostile_batch
    mixed = run_dldiy("grade", "exercise-1", str(hostile_class), "--out", str(out), "--only", "first-loss",
                      "--only", "parity", "--skips", "zero")
    assert mixed.returncode == 2 and "skips" in mixed.stderr and "--regrade" in mixed.stderr


def test_in_a_zip_of_the_class_a_bad_member_is_its_students_row(tmp_path):
    class_zip = tmp_path / "class.zip"
    with zipfile.ZipFile(class_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("export/alice.py", REFERENCE)
        zf.writestr("export/bob/logreg.py", REFERENCE * 20)
        zf.writestr("export/carol/" + "c" * 300 + ".py", "x = 1")
        zf.writestr("export/carol/logreg.py", REFERENCE)
        zf.writestr("export/dan.py", REFERENCE)
        zf.writestr("export/dan.py/logreg.py", REFERENCE)
    data = bytearray(class_zip.read_bytes())
    with zipfile.ZipFile(class_zip) as zf:
        bob = zf.getinfo("export/bob/logreg.py")
    start = bob.header_offset + 30 + len(bob.filename)
    data[start:start + 64] = b"\xff" * 64  # bob's deflate stream is corrupt
    class_zip.write_bytes(bytes(data))
    found = {f.student: f for f in discover(class_zip, "logreg.py", "ex", tmp_path / "scratch")}
    assert sorted(found) == ["alice", "bob", "carol", "dan"]
    assert found["alice"].error is None and found["alice"].graded.read_text() == REFERENCE
    assert "not a readable zip archive" in found["bob"].error
    assert "longer than the file system allows" in found["carol"].error
    assert "both a file and a folder" in found["dan"].error


def test_links_the_instructor_made_above_the_students_are_fine(tmp_path):
    real = tmp_path / "exchange" / "submitted"
    (real / "s1" / "ex1").mkdir(parents=True)
    (real / "s1" / "ex1" / "logreg.py").write_text(REFERENCE)
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "submitted").symlink_to(real)
    (found,) = discover(tmp_path / "course", "logreg.py", "ex1", tmp_path / "scratch")
    assert found.student == "s1" and found.error is None and found.graded.read_text() == REFERENCE


def test_the_progress_bar_shows_names_as_text():
    import io

    from rich.console import Console

    from dldiy.cli.grade import with_progress

    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    records = [{"student": "[/]x[bold]" + ANSI, "score": 1.0}]
    assert list(with_progress(iter(records), 1, console)) == records  # "[/]" as markup would raise
    shown = console.file.getvalue()
    assert "[/]x[bold]\\x1b]0;pwned\\x07" in shown and "\x1b]0;pwned" not in shown


def test_progress_off_a_terminal_is_a_line_every_tenth_of_the_class_or_every_few_seconds(monkeypatch, capsys):
    """Off a terminal, grade writes a plain line per 10% of the class, or sooner once PROGRESS_EVERY_S
    has passed since the last line, and at the end (never a line per submission of a large class)."""
    import io

    from rich.console import Console

    from dldiy.cli import grade

    console = Console(file=io.StringIO(), force_terminal=False)
    clock = iter(range(0, 10**6)).__next__  # a fake clock that moves on at every call
    monkeypatch.setattr(grade.time, "monotonic", lambda: clock() * 0.001)  # fast: only the 10% rule fires
    records = [{"student": f"s{i}", "score": 1.0} for i in range(25)]
    assert list(grade.with_progress(iter(records), 25, console)) == records
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "grading 25 submission(s)" and console.file.getvalue() == ""
    assert [line.split()[1] for line in lines[1:]] == [f"{k}/25" for k in (*range(2, 25, 2), 25)]

    slow = iter(range(0, 10**6)).__next__
    monkeypatch.setattr(grade.time, "monotonic", lambda: slow() * grade.PROGRESS_EVERY_S)  # slow: every one
    records = [{"student": f"s{i}", "score": 1.0} for i in range(200)]
    list(grade.with_progress(iter(records[:5]), 200, console))
    assert [line.split()[1] for line in capsys.readouterr().err.splitlines()[1:]] == [f"{k}/200" for k in range(1, 6)]


def test_best_effort_isolation_is_warned_and_recorded(tmp_path):
    import io

    from rich.console import Console

    from dldiy.cli.grade import report_isolation

    (tmp_path / "batch.json").write_text(json.dumps({"exercise": "exercise-1"}))
    isolation = ["RLIMIT_CPU=120", "not applied: namespaces (Operation not permitted): network, mounts and strays "
                 "are best effort (process group kill and marker sweep)"]
    console = Console(file=io.StringIO(), width=300)
    report_isolation(console, tmp_path, [{"sandbox": []}, {"sandbox": isolation}])
    printed = console.file.getvalue()
    assert "isolation of the children: RLIMIT_CPU=120" in printed
    assert "warning: isolation is best effort on this machine; not applied: namespaces (Operation" in printed
    assert json.loads((tmp_path / "batch.json").read_text())["isolation"] == isolation


# --- the reference at the hidden seeds runs beside the class, and still stops it when it fails -------

def test_reference_failing_at_hidden_seeds_keeps_no_record(tmp_path: Path) -> None:
    """grade measures the reference at the hidden seeds while the first submissions run (batch.run_local);
    when that measurement fails, nobody's record comes out (none is journaled) and the failure is
    raised to the caller, which stops the batch; the tasks not started are cancelled."""
    from dldiy.graders.batch.run import ReferenceFailed, run_local
    from dldiy.graders.course.exercise import load_exercise

    exercise = load_exercise("exercise-1")
    for name in ("alice", "bob", "carol", "dave"):
        (tmp_path / "class" / name).mkdir(parents=True)
        (tmp_path / "class" / name / "logreg.py").write_text(REFERENCE)
    found = discover(tmp_path / "class", exercise.entry, exercise.id, tmp_path / "scratch")
    assert len(found) == 4

    def failing_reference() -> dict:
        raise ReferenceFailed("the reference fails at the hidden seeds (fix it before grading)")

    yielded = []
    with pytest.raises(ReferenceFailed, match="hidden seeds"):
        for record in run_local(exercise, found, ["gradcheck"], (4242,), failing_reference, jobs=1):
            yielded.append(record)
    assert yielded == []


def test_reference_beside_the_class_judges_with_its_values(tmp_path: Path) -> None:
    """The overlapped path judges each submission against the reference's values at the hidden seed,
    exactly as the measured-first path did: the reference itself passes every hidden-seed result."""
    from dldiy.graders.batch.run import batch_expectations, run_local
    from dldiy.graders.course.exercise import load_exercise

    exercise = load_exercise("exercise-1")
    (tmp_path / "class" / "alice").mkdir(parents=True)
    (tmp_path / "class" / "alice" / "logreg.py").write_text(REFERENCE)
    found = discover(tmp_path / "class", exercise.entry, exercise.id, tmp_path / "scratch")
    hidden, checks = (4242,), ["first-loss"]
    [record] = list(run_local(exercise, found, checks, hidden, lambda: batch_expectations(exercise, hidden, checks),
                              jobs=1))
    assert record["status"] == "pass", record
    assert record["score"] == record["max_score"] > 0


def test_feedback_pictures_drawn_once_per_distinct_measurement() -> None:
    """Two students whose failing check measured the same numbers get the same picture, drawn once; a
    different measurement draws its own; a page never shows another check's picture."""
    import dldiy.graders.batch.export as export

    def record(student: str, losses: list[float]) -> dict:
        plot = {"curve": {"steps": list(range(len(losses))), "losses": losses, "reference": [0.7, 0.5, 0.4]}}
        check = {"name": "first-loss", "kind": "first_loss", "title": "", "status": "fail", "points": 0,
                 "max_points": 3, "message": "differs", "details": {"seed": 1, "plot": plot}}
        return {"student": student, "score": 0, "max_score": 3, "checks": [check], "error": "",
                "skipped_lines": [], "submission": student}

    export._PICTURE_CACHE.clear()
    drawn = []
    import dldiy.graders.plots as plots
    original = plots.pictures
    plots.pictures = lambda checks: (drawn.extend(c["details"]["plot"]["curve"]["losses"][0] for c in checks)
                                     or original(checks))
    try:
        a = export.feedback_html(record("a", [0.9, 0.8, 0.7]), "t", graded_at="now")
        b = export.feedback_html(record("b", [0.9, 0.8, 0.7]), "t", graded_at="now")
        c = export.feedback_html(record("c", [1.9, 1.8, 1.7]), "t", graded_at="now")
    finally:
        plots.pictures = original
    assert drawn == [0.9, 1.9]  # the second identical measurement was not drawn again
    svg = lambda page: base64.b64decode(page.split("data:image/svg+xml;base64,")[1].split("'")[0])  # noqa: E731
    assert svg(a) == svg(b) != svg(c)
    assert ET.fromstring(svg(c)).tag == "{http://www.w3.org/2000/svg}svg"


def test_every_task_a_student_may_see_runs_before_the_hidden_seeds():
    """The student's process serves a job's tasks in order: what it saw at a hidden seed must find no
    visible message after it (red team: w0 seen at the hidden seeds, raised from placement at seed 0)."""
    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.judge import tasks_for

    ex = load_exercise("exercise-1")
    tasks = tasks_for(ex, ex.checks, [1, 7, 123], hidden=(7, 123))
    hidden_from = next(i for i, t in enumerate(tasks) if t.seed in (7, 123))
    assert all(t.seed in (7, 123) for t in tasks[hidden_from:]) and any(t.check == "placement" for t in tasks[:hidden_from])


EXFILTRATE = '''
_seen = []
_train = train
def train(X, y, w0, lr, steps):
    _seen.append(",".join(f"{v:.6f}" for v in w0.tolist()))
    return _train(X, y, w0, lr, steps)
_loss = loss
def loss(X, y, w):
    if X.device.type == "meta":
        raise ValueError("SEEN=" + ";".join(_seen))
    return _loss(X, y, w)
'''


def test_what_a_submission_saw_at_the_hidden_seeds_never_reaches_its_feedback(tmp_path):
    import numpy as np

    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "mallory.py").write_text((REPO / "reference" / "exercise-1" / "logreg.py").read_text()
                                                   + EXFILTRATE)
    result = run_dldiy("grade", "exercise-1", str(tmp_path / "class"), "--out", str(tmp_path / "out"),
                       "--hidden-seeds", "7,123")
    assert result.returncode == 0, result.stderr
    feedback = "".join(p.read_text() for p in (tmp_path / "out" / "feedback").iterdir())
    assert "SEEN=" in feedback  # the attack's message did reach the feedback...
    for seed in (7, 123):  # ...without the first-loss w0 of either hidden seed (drawn from seed + 10000)
        w0 = np.random.default_rng(seed + 10_000).normal(0.0, 0.5, 3)
        assert f"{w0[0]:.6f}" not in feedback, seed


FORGED_ISOLATION = '''
from dldiy.graders.sandbox import student as _s
_send = _s.StudentEndpoint.send
def _forged(self, header, buffers=None):
    if header.get("op") in ("loaded", "confined"):
        header = dict(header, sandbox=["seccomp filter (FORGED)"])
    return _send(self, header, buffers)
_s.StudentEndpoint.send = _forged
'''


def test_the_isolation_recorded_is_the_sandboxs_word_not_the_submissions(tmp_path):
    """The confinement report is sent before any of the submission's code runs: code run at import that
    rewrites the student process's messages cannot change what batch.json and the record say."""
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "mallory.py").write_text(FORGED_ISOLATION + (REPO / "reference" / "exercise-1" / "logreg.py")
                                                   .read_text())
    result = run_dldiy("grade", "exercise-1", str(tmp_path / "class"), "--out", str(tmp_path / "out"),
                       "--hidden-seeds", "7,123")
    assert result.returncode == 0, result.stderr
    batch = (tmp_path / "out" / "batch.json").read_text()
    record = json.loads((tmp_path / "out" / "journal.jsonl").read_text().splitlines()[0])
    assert "FORGED" not in batch and "FORGED" not in json.dumps(record["sandbox"]), record["sandbox"]
    assert any("pid namespace" in line for line in record["sandbox"]) and record["score"] == 9.5



WRONG_LOSS = REFERENCE.replace("torch.logaddexp(torch.zeros_like(u), -u).mean()",
                               "torch.logaddexp(torch.zeros_like(u), -u).sum()")
MAGIC = f"!echo {ANSI}<script>alert(1)</script>\n%time x = 1 {ANSI}\n"


def _raw_notebook(cells: list) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})


@pytest.fixture(scope="module")
def named_class(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """Red team A10, A11, A13, A14, A15 in one class: entries whose names collide, names with raw
    terminal sequences and undecodable bytes, malformed and oversized notebooks, magic-line injection."""
    subs = tmp_path_factory.mktemp("named") / "subs"
    subs.mkdir()
    (subs / "s_honest1.py").write_text(REFERENCE)  # the honest classmate
    with zipfile.ZipFile(subs / "s_honest1.zip", "w") as zf:  # another student's hand-in, same stem (A11)
        zf.writestr("logreg.py", WRONG_LOSS)
    (subs / "s_honest2").mkdir()  # a folder and a notebook under one name
    (subs / "s_honest2" / "logreg.py").write_text(REFERENCE)
    (subs / "s_honest2.ipynb").write_text(notebook(WRONG_LOSS))
    for raw in (b"bad\xff.py", b"bad\xfe.py"):  # differ only in bytes no student id can hold (A10)
        Path(os.fsdecode(os.fsencode(subs) + b"/" + raw)).write_text(REFERENCE)
    (subs / f"title{ANSI}.py").write_text(REFERENCE)  # raw ESC/OSC in a file name (A10)
    (subs / "magic.ipynb").write_text(notebook(MAGIC + REFERENCE))  # ESC/OSC in magic lines (A15)
    (subs / "badsource.ipynb").write_text(_raw_notebook(  # a number in a cell's source list (A13)
        [{"cell_type": "code", "metadata": {}, "source": [REFERENCE, 12345]}]))
    (subs / "empty.ipynb").write_text(_raw_notebook([{}] * 600_000))  # 600 000 empty cells, 3.6 MB (A14)
    out = subs.parent / "out"
    result = run_dldiy("grade", "exercise-1", str(subs), "--out", str(out), "--hidden-seeds", "7",
                       "--only", "first-loss", "--jobs", "2")
    return result, subs, out


def test_entries_sharing_a_name_are_each_graded_as_their_own_student_and_flagged(named_class):
    """A11: `s_honest1.zip` handed in beside a classmate's `s_honest1.py` used to give both one error
    row ("more than one submission"): the honest classmate got 0 for what someone else named a file."""
    result, _, out = named_class
    assert result.returncode == 0, result.stderr
    book = gradebook(out)
    assert (book["s_honest1.py"]["status"], book["s_honest1.py"]["first-loss"]) == ("pass", "3")
    assert book["s_honest1.zip"]["status"] == "fail"
    assert (book["s_honest2 (folder)"]["status"], book["s_honest2.ipynb"]["status"]) == ("pass", "fail")
    assert "s_honest1" not in book and "s_honest2" not in book
    for name in ("s_honest1.py", "s_honest1.zip", "s_honest2 (folder)", "s_honest2.ipynb"):
        assert "graded on its own" in book[name]["note"], book[name]  # flagged for the instructor
    assert "graded on its own" in (out / "feedback" / "s_honest1.py.md").read_text()
    assert "graded on its own" not in book["magic"]["note"]
    # A10: names that differ only in undecodable bytes stay two students, each graded
    assert book["bad\\xff"]["status"] == book["bad\\xfe"]["status"] == "pass"


def test_no_raw_control_character_reaches_the_feedback_its_file_names_or_the_gradebook(named_class):
    """A10/A15: ESC and OSC sequences from a file name and from a notebook's magic lines are shown
    escaped in feedback/*.md and *.html, the feedback's file names, the gradebook and the terminal."""
    result, _, out = named_class
    assert result.returncode == 0, result.stderr
    book = gradebook(out)
    title = next(s for s in book if s.startswith("title"))
    assert title == "title\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m" and book[title]["status"] == "pass"
    names = [p.name for p in (out / "feedback").iterdir()]
    assert f"{title}.md" in names and not any(ch < " " for name in names for ch in name), names
    for page in (out / "feedback").iterdir():
        text = page.read_text(encoding="utf-8", errors="replace")
        assert "\x1b" not in text and "\x07" not in text, page.name
    magic = (out / "feedback" / "magic.md").read_text()
    assert "!echo \\x1b]0;pwned\\x07" in magic and book["magic"]["status"] == "pass"
    assert "<script>" not in (out / "feedback" / "magic.html").read_text()
    assert "\x1b" not in result.stdout + result.stderr and "\x1b" not in (out / "gradebook.csv").read_text()


def test_a_malformed_notebook_is_its_students_error_row_without_a_traceback_of_ours(named_class):
    """A13: a number in a cell's source list raised TypeError inside the trusted parent's notebook
    reader, and the grader's own traceback landed in results.json."""
    result, _, out = named_class
    assert result.returncode == 0, result.stderr
    record = next(r for r in map(json.loads, (out / "journal.jsonl").read_text().splitlines())
                  if r["student"] == "badsource")
    assert record["status"] == "error" and "traceback" not in record
    assert "code cell 1's \"source\" is a list holding int" in record["error"], record["error"]
    assert "Traceback" not in json.dumps(record) and "TypeError" not in json.dumps(record)


def test_a_notebook_of_a_million_empty_cells_is_refused_before_the_parent_parses_it(named_class):
    """A14: a 20 MB notebook of empty cells cost the parent ~300 MB in json.loads' objects: the objects
    and arrays a notebook may hold are capped, counted on its bytes before it is parsed."""
    from dldiy.graders.sandbox.submission import MAX_NOTEBOOK_CONTAINERS, SubmissionError, notebook_cells

    result, subs, out = named_class
    assert result.returncode == 0, result.stderr
    row = gradebook(out)["empty"]
    assert row["status"] == "error" and "JSON objects and arrays" in row["error"], row
    tracemalloc.start()
    try:
        with pytest.raises(SubmissionError, match="more than the cap"):
            notebook_cells(subs / "empty.ipynb")
        assert tracemalloc.get_traced_memory()[1] < 3 * (subs / "empty.ipynb").stat().st_size
    finally:
        tracemalloc.stop()
    assert MAX_NOTEBOOK_CONTAINERS >= 100_000  # a real notebook with its outputs stays far below
