"""What a graded record becomes for the outside world: a student's feedback (Markdown and HTML),
Gradescope's results.json, and grades in an nbgrader gradebook.

The messages are the judge's own, the very ones `dldiy check` prints; for hidden seeds the judge
already withholds the values, so nothing here can leak them.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import sys
import sysconfig
from pathlib import Path
from typing import Any, Iterator

from ..report import CheckResult, Report, shown

STATUS_WORD = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skipped"}


def fence(text: str, info: str = "text") -> list[str]:
    """`text` as a fenced Markdown block it cannot close: the fence is longer than any run of backticks
    in it (CommonMark closes a fence only with at least as many backticks as opened it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return [bar + info, text, bar]


def code_span(text: str) -> str:
    """`text` as inline code that it cannot end early (same rule: a longer backtick string), on one line."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    bar = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{bar}{pad}{text}{pad}{bar}"


def _points(c: CheckResult) -> str:
    if not c.counted:
        return f"not counted (out of {c.max_points:g})"
    return f"{c.points:g}/{c.max_points:g}"


def feedback_markdown(record: dict[str, Any], exercise_title: str) -> str:
    """Every text that came from the student (name, messages quoting their code, tracebacks, file
    names) sits in a code span or a fence it cannot close, so it cannot add headings, links or HTML."""
    report = Report.from_json(record).shown()  # control characters (ESC, OSC titles) shown escaped
    lines = [f"# {exercise_title}", "", f"Student: {code_span(shown(record['student']))}", "",
             f"**Total: {report.score:g}/{report.max_score:g}**", ""]
    if record.get("graded_file"):
        lines += [f"Graded file: {code_span(shown(Path(record['graded_file']).name))} "
                  f"(sha256 {code_span(shown(record.get('sha256') or '?'))})", ""]
    if record.get("note"):
        lines += [f"Note: {code_span(shown(str(record['note'])))}", ""]
    if not report.checks:
        lines += ["Your submission could not be graded:", "", *fence(_error(record, report)), ""]
        return "\n".join(lines)
    lines += ["| check | status | points |", "|---|---|---|"]
    lines += [f"| {c.name} | {STATUS_WORD[c.status]} | {_points(c)} |" for c in report.checks]
    lines.append("")
    if any(not c.counted for c in report.checks):
        lines += ["Skipped checks could not run on the grading machine; their points are left out of the "
                  "maximum.", ""]
    for c in report.checks:
        lines += [f"## {c.name}: {STATUS_WORD[c.status]}", ""]
        if c.title:
            lines += [f"*{c.title}*", ""]
        lines += [*fence(c.message), ""]
        if c.traceback_to_show:
            lines += ["Your code's traceback:", "", *fence(c.traceback_to_show), ""]
    if report.skipped_lines:
        lines += ["Not executed at load:", "", *fence("\n".join(report.skipped_lines)), ""]
    return "\n".join(lines)


def _error(record: dict[str, Any], report: Report) -> str:
    """Why the submission is unusable, as the batch recorded it (its own words for a missing file)."""
    return shown(str(record.get("error") or report.error))


def feedback_html(record: dict[str, Any], exercise_title: str, *, graded_at: str | None = None,
                  pictures: str = "failing") -> str:
    """The student's feedback page, self-contained: the total, a table of the checks, then per check
    its title, status, message (the judge's own: a hidden seed's values are already withheld), the
    traceback of the student's own code, and the picture of what was measured (an SVG embedded as a
    data URI in an <img>, which never runs a script the document might hold; no external file); the
    lines not executed; which file was graded, when, by which dldiy. Every piece of student text
    (names, messages, tracebacks, skipped lines) is escaped.

    `pictures`: "failing" (default) draws the checks that did not pass, where a student looks and
    where the picture explains something (a picture of a pass adds 5-40 KB to the page and tells
    little). "all" draws every check, "none" none."""
    import base64
    from datetime import datetime, timezone

    from dldiy import __version__

    def e(text: str) -> str:  # escaped for HTML, control characters (ESC, OSC titles) shown escaped
        return html.escape(shown(text))

    report = Report.from_json(record).shown()
    colour = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#cf222e", "skip": "#9a6700"}
    when = graded_at or record.get("graded_at") or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    drawn: dict[str, tuple[str, bytes]] = {}
    chosen = [c for c in report.checks if pictures == "all" or (pictures == "failing" and c.status != "pass")]
    if chosen:
        drawn = _pictures([c.to_json() for c in chosen])
    rows = "".join(
        f"<tr><td><a href='#check-{e(c.name)}'>{e(c.name)}</a></td><td>{e(c.title)}</td>"
        f"<td class='status' style='color:{colour[c.status]}'>{STATUS_WORD[c.status]}</td>"
        f"<td class='points'>{c.points:g}/{c.max_points:g}</td></tr>" for c in report.checks)
    sections = []
    for c in report.checks:
        part = [f"<section id='check-{e(c.name)}'><h2>{e(c.name)}: "
                f"<span style='color:{colour[c.status]}'>{STATUS_WORD[c.status]}</span> "
                f"<small>({c.points:g}/{c.max_points:g})</small></h2>"]
        if c.title:
            part.append(f"<p class='title'><i>{e(c.title)}</i></p>")
        part.append(f"<pre class='message'>{e(c.message)}</pre>")
        if c.traceback_to_show:
            part.append(f"<p>Your code's traceback:</p><pre class='traceback'>{e(c.traceback_to_show)}</pre>")
        if c.name in drawn:
            title, svg = drawn[c.name]
            part.append(f"<figure><img alt='{e(title)}' src='data:image/svg+xml;base64,"
                        f"{base64.b64encode(svg).decode('ascii')}'><figcaption>{e(title)}</figcaption></figure>")
        sections.append("".join(part) + "</section>")
    if report.checks:
        body = (f"<table><tr><th>check</th><th>what it checks</th><th>status</th><th>points</th></tr>{rows}</table>"
                + "".join(sections))
    else:
        body = f"<p class='error'>Your submission could not be graded: {e(_error(record, report))}</p>"
    if report.skipped_lines:
        body += ("<p class='skipped'><b>Not executed at load:</b> "
                 + e("; ".join(report.skipped_lines)) + "</p>")
    if record.get("note"):
        body += f"<p class='note'><b>Note:</b> {e(str(record['note']))}</p>"
    graded = record.get("submission") or record["student"]
    footer = (f"<footer>Graded file: <code>{e(str(graded))}</code> &middot; graded {e(when)} &middot; "
              f"dldiy {e(__version__)}</footer>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(exercise_title)}: "
            f"{e(record['student'])}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}"
            "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
            "table{border-collapse:collapse}pre{white-space:pre-wrap;background:#f6f8fa;padding:6px}"
            "img{max-width:100%}footer{margin-top:2em;color:#555;font-size:90%}h2{font-size:1.15em}</style>"
            f"</head><body><h1>{e(exercise_title)}</h1><p>Student: <code>{e(record['student'])}</code></p>"
            f"<p class='total'><b>Total: {report.score:g}/{report.max_score:g}</b></p>{body}{footer}"
            "</body></html>\n")


# A picture is a pure function of the check's name, status, seed and plot data: students whose wrong
# answers measured the same numbers (the same bug, at the same seeds) get the same SVG, drawn once. Drawing
# costs ~1 ms a picture now (graders/plots.py); the key's hash costs ~0.05 ms, so the cache still pays.
_PICTURE_CACHE: dict[str, tuple[str, bytes]] = {}
PICTURE_CACHE_SIZE = 256  # 5-40 KB each


def _picture_key(check: dict[str, Any]) -> str:
    import hashlib

    details = check.get("details") or {}
    what = [check.get("name"), check.get("status"), details.get("seed"), details.get("plot")]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=repr).encode()).hexdigest()


def _pictures(checks: list[dict[str, Any]]) -> dict[str, tuple[str, bytes]]:
    """{check name: (title, SVG)} for these checks' pictures, from the cache where it has them."""
    from ..plots import pictures as draw_pictures

    keys = {c["name"]: _picture_key(c) for c in checks}
    missing = [c for c in checks if keys[c["name"]] not in _PICTURE_CACHE]
    drawn: dict[str, tuple[str, bytes]] = {}
    for name, title, svg in draw_pictures(missing) if missing else []:
        drawn[name] = (title, svg)
        while _PICTURE_CACHE and len(_PICTURE_CACHE) >= PICTURE_CACHE_SIZE:
            _PICTURE_CACHE.pop(next(iter(_PICTURE_CACHE)))  # the oldest
        if PICTURE_CACHE_SIZE > 0:
            _PICTURE_CACHE[keys[name]] = (title, svg)
    return {c["name"]: drawn.get(c["name"]) or _PICTURE_CACHE[keys[c["name"]]] for c in checks
            if c["name"] in drawn or keys[c["name"]] in _PICTURE_CACHE}


def file_stem(student: str) -> str:
    """The student's name as a file name: itself with control characters shown escaped (an ESC or an
    OSC title in a file name reaches every `ls`), "/" escaped, or when too long for one (a 255-byte
    folder name plus ".html" is not a valid name), its start and a hash, so a long name cannot stop the
    batch. (Student ids from discover are already shown escaped: for them, the same name.)"""
    from .gradebook import terminal_safe

    safe = terminal_safe(student).replace("/", "\\x2f")
    safe = "_" + safe if safe in (".", "..") or safe.startswith("-") else safe
    raw = student.encode("utf-8", "surrogatepass")
    if len(safe.encode()) <= 200:
        return safe
    import hashlib

    return safe.encode()[:150].decode("utf-8", "ignore") + "-" + hashlib.sha256(raw).hexdigest()[:12]


def write_feedback(folder: Path, record: dict[str, Any], exercise_title: str, pictures: str = "failing") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_stem(record["student"])
    # a message may carry a lone surrogate (JSON allows "\\udcff"): shown escaped, never an exception
    (folder / f"{stem}.md").write_text(feedback_markdown(record, exercise_title), encoding="utf-8",
                                       errors="backslashreplace")
    (folder / f"{stem}.html").write_text(feedback_html(record, exercise_title, pictures=pictures), encoding="utf-8",
                                         errors="backslashreplace")


def gradescope_results(record: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's autograder contract (gradescope-autograders.readthedocs.io/en/latest/specs/): a
    top-level score (it overrides the tests' total), output, and tests[] with name, score, max_score,
    status ("passed" or "failed", optional), output and visibility.

    A check skipped on this machine is never "failed": under the "leave-out" policy it is a test with
    no max_score and no status (Gradescope shows it without points, and it leaves the maximum); under
    "zero" it keeps its max_score, scores 0 and says why in its output."""
    report = Report.from_json(record)
    tests: list[dict[str, Any]] = []
    for i, c in enumerate(report.checks, 1):
        test: dict[str, Any] = {"name": c.title and f"{c.name}: {c.title}" or c.name, "number": str(i),
                                "score": c.points, "output": c.message, "visibility": "visible"}
        if c.status == "skip" and not c.counted:
            test["output"] = f"skipped, not counted: {c.message}"
        else:
            test["max_score"] = c.max_points
            test["status"] = "passed" if c.status == "pass" else "failed"
            if c.status == "skip":
                test["output"] = f"skipped, counted as 0 by the course's policy: {c.message}"
        tests.append(test)
    output = f"Total: {report.score:g}/{report.max_score:g}"
    if record.get("graded_file"):
        output += f"\nGraded file: {Path(record['graded_file']).name} (sha256 {record.get('sha256')})"
    if record.get("error"):
        output += f"\n{record['error']}"
    return {"score": report.score, "execution_time": round(record["duration_s"], 2), "output": output,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"graded_file": record.get("graded_file"), "sha256": record.get("sha256"),
                           "submission_sha256": record.get("content_hash"),
                           "skips": record.get("skips")}}


def write_gradescope(out: Path, records: list[dict[str, Any]]) -> None:
    """OUT/gradescope/<student>/results.json; and OUT/results.json when the batch is one submission (the
    autograder case: `dldiy grade EX /autograder/submission --format gradescope --out /autograder/results`)."""
    for record in records:
        folder = out / "gradescope" / file_stem(record["student"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(gradescope_results(record), indent=1) + "\n")
    if len(records) == 1:
        (out / "results.json").write_text(json.dumps(gradescope_results(records[0]), indent=1) + "\n")


def tool_folders() -> list[str]:
    """Where this interpreter's console scripts live (a venv's bin/, whether activated or not)."""
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return [f for i, f in enumerate(folders) if f and f not in folders[:i]]


def nbgrader_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's) with this interpreter's scripts folder first on PATH.

    nbgrader runs some of its tools by name through PATH (its Gradebook runs `alembic`), so
    `.venv/bin/dldiy grade --nbgrader` without an activated venv would not find them. Pass the result
    as `env=` to an nbgrader subprocess (`python -m nbgrader autograde ...`)."""
    env = dict(os.environ if environ is None else environ)
    rest = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p not in tool_folders()]
    env["PATH"] = os.pathsep.join(tool_folders() + rest)
    return env


@contextlib.contextmanager
def nbgrader_tools() -> Iterator[None]:
    """Within this block, nbgrader's API called in this process finds its tools (see nbgrader_environ)."""
    before = os.environ.get("PATH")
    os.environ["PATH"] = nbgrader_environ()["PATH"]
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def write_nbgrader(course_dir: Path, assignment: str, notebook: str, records: list[dict[str, Any]],
                   checks: list[tuple[str, float]]) -> None:
    """Scores into COURSE_DIR/gradebook.db through nbgrader's own API, so `nbgrader export` shows them:
    one auto-graded code cell per check in notebook `notebook` of `assignment` (the assignment's notebook,
    as `dldiy release --nbgrader` names it), and each student's points as that cell's auto_score. The
    cells are named after the checks, as the grade cells of that notebook are (grade_id = the check's
    name), so `nbgrader autograde` and this write into the same cells: one notebook, one maximum."""
    import warnings

    from nbgrader.api import Gradebook, Grade, MissingEntry

    # nbgrader's own use of SQLAlchemy warns (SAWarning: "... not in session, add operation along
    # 'Student.submissions' will not proceed"), as `nbgrader autograde` does: none is about the grades
    # written here, and the course7 trial read three of them as dldiy's
    with nbgrader_tools(), warnings.catch_warnings(), Gradebook(f"sqlite:///{Path(course_dir).resolve() / 'gradebook.db'}") as gb:
        warnings.filterwarnings("ignore", message=r".* not in session, add operation along ")
        gb.update_or_create_assignment(assignment)
        gb.update_or_create_notebook(notebook, assignment)
        cells = {name: gb.update_or_create_grade_cell(name, notebook, assignment, max_score=points,
                                                      cell_type="code") for name, points in checks}
        for record in records:
            gb.update_or_create_student(record["student"])
            gb.update_or_create_submission(assignment, record["student"])
            submitted = gb.find_submission_notebook(notebook, assignment, record["student"])
            points = {c.name: c.points for c in Report.from_json(record).checks}
            for name, cell in cells.items():
                try:
                    grade = gb.find_grade(cell.name, notebook, assignment, record["student"])
                except MissingEntry:  # a submission nbgrader made before these cells existed
                    grade = Grade(cell_id=cell.id, notebook=submitted)
                    gb.db.add(grade)
                grade.auto_score = float(points.get(name, 0.0))
                grade.needs_manual_grade = False
            gb.db.commit()


def nbgrader_notebook_name(course_dir: Path, assignment: str, exercise_id: str) -> str:
    """The assignment's notebook in nbgrader's gradebook: the one notebook of source/<assignment>/, or
    the name `dldiy release --nbgrader` gives it (the exercise's id)."""
    found = sorted((Path(course_dir) / "source" / assignment).glob("*.ipynb"))
    return found[0].stem if len(found) == 1 else exercise_id
