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
import sys
import sysconfig
from pathlib import Path
from typing import Any, Iterator

STATUS_WORD = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skipped"}


def feedback_markdown(record: dict[str, Any], exercise_title: str) -> str:
    lines = [f"# {exercise_title}", "", f"Student: `{record['student']}`", "",
             f"**Total: {record['score']:g}/{record['max_score']:g}**", ""]
    if not record["checks"]:
        lines += [f"Your submission could not be graded: {record['error']}", ""]
        return "\n".join(lines)
    lines += ["| check | status | points |", "|---|---|---|"]
    lines += [f"| {c['name']} | {STATUS_WORD[c['status']]} | {c['points']:g}/{c['max_points']:g} |"
              for c in record["checks"]]
    lines.append("")
    for c in record["checks"]:
        lines += [f"## {c['name']}: {STATUS_WORD[c['status']]}", ""]
        if c["title"]:
            lines += [f"*{c['title']}*", ""]
        lines += ["```text", c["message"], "```", ""]
        tb = c["details"].get("traceback")
        if c["status"] == "error" and tb and "\n" in tb:
            lines += ["Your code's traceback:", "", "```text", tb, "```", ""]
    if record["skipped_lines"]:
        lines += ["Not executed (IPython magics and shell lines): " + "; ".join(record["skipped_lines"]), ""]
    return "\n".join(lines)


def feedback_html(record: dict[str, Any], exercise_title: str) -> str:
    e = html.escape
    colour = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#cf222e", "skip": "#9a6700"}
    rows = "".join(
        f"<tr><td>{e(c['name'])}</td><td style='color:{colour[c['status']]}'>{STATUS_WORD[c['status']]}</td>"
        f"<td>{c['points']:g}/{c['max_points']:g}</td><td><pre>{e(c['message'])}</pre>"
        + (f"<pre>{e(c['details']['traceback'])}</pre>" if c["status"] == "error"
           and "\n" in c["details"].get("traceback", "") else "") + "</td></tr>"
        for c in record["checks"])
    body = (f"<table><tr><th>check</th><th>status</th><th>points</th><th>message</th></tr>{rows}</table>"
            if record["checks"] else f"<p>Your submission could not be graded: {e(record['error'])}</p>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(exercise_title)}</title>"
            "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
            "table{border-collapse:collapse}pre{margin:0;white-space:pre-wrap}</style></head><body>"
            f"<h1>{e(exercise_title)}</h1><p>Student: <code>{e(record['student'])}</code></p>"
            f"<p><b>Total: {record['score']:g}/{record['max_score']:g}</b></p>{body}</body></html>\n")


def write_feedback(folder: Path, record: dict[str, Any], exercise_title: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record['student']}.md").write_text(feedback_markdown(record, exercise_title), encoding="utf-8")
    (folder / f"{record['student']}.html").write_text(feedback_html(record, exercise_title), encoding="utf-8")


def gradescope_results(record: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's autograder contract (gradescope-autograders.readthedocs.io, "specs"): a top-level
    score and output, and tests[] with name, score, max_score, status, output and visibility."""
    tests = [{"name": c["title"] and f"{c['name']}: {c['title']}" or c["name"], "number": str(i),
              "score": c["points"], "max_score": c["max_points"],
              "status": "passed" if c["status"] == "pass" else "failed",
              "output": c["message"], "visibility": "visible"} for i, c in enumerate(record["checks"], 1)]
    output = f"Total: {record['score']:g}/{record['max_score']:g}"
    if record["error"]:
        output += f"\n{record['error']}"
    return {"score": record["score"], "execution_time": round(record["duration_s"], 2), "output": output,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def write_gradescope(out: Path, records: list[dict[str, Any]]) -> None:
    """OUT/gradescope/<student>/results.json; and OUT/results.json when the batch is one submission (the
    autograder case: `dldiy grade EX /autograder/submission --format gradescope --out /autograder/results`)."""
    for record in records:
        folder = out / "gradescope" / record["student"]
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
    one auto-graded code cell `dldiy-<check>` per check in notebook `notebook` of `assignment`, and each
    student's points as that cell's auto_score."""
    from nbgrader.api import Gradebook, Grade, MissingEntry

    with nbgrader_tools(), Gradebook(f"sqlite:///{Path(course_dir).resolve() / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(assignment)
        gb.update_or_create_notebook(notebook, assignment)
        cells = {name: gb.update_or_create_grade_cell(f"dldiy-{name}", notebook, assignment, max_score=points,
                                                      cell_type="code") for name, points in checks}
        for record in records:
            gb.update_or_create_student(record["student"])
            gb.update_or_create_submission(assignment, record["student"])
            submitted = gb.find_submission_notebook(notebook, assignment, record["student"])
            points = {c["name"]: c["points"] for c in record["checks"]}
            for name, cell in cells.items():
                try:
                    grade = gb.find_grade(cell.name, notebook, assignment, record["student"])
                except MissingEntry:  # a submission nbgrader made before these cells existed
                    grade = Grade(cell_id=cell.id, notebook=submitted)
                    gb.db.add(grade)
                grade.auto_score = float(points.get(name, 0.0))
                grade.needs_manual_grade = False
            gb.db.commit()
