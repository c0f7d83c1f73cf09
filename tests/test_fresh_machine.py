"""What a fresh machine shows: nothing is found through an activated venv or a hand-made PATH.

`.venv/bin/dldiy grade --nbgrader` without activating the venv must write nbgrader's gradebook: nbgrader's
Gradebook runs its `alembic` tool by name through PATH, and dldiy puts its own interpreter's scripts
folder there for that call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from dldiy.graders.batch.export import nbgrader_environ, tool_folders


def dldiy_script() -> list[str]:
    """The installed `dldiy` script next to this interpreter, as an instructor types `.venv/bin/dldiy`."""
    script = Path(sys.executable).parent / "dldiy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dldiy.cli"]


def test_nbgrader_environ_puts_this_interpreters_scripts_first_once():
    folder = str(Path(sys.executable).parent)
    env = nbgrader_environ({"PATH": f"/usr/bin:{folder}:/bin", "OTHER": "kept"})
    assert env["OTHER"] == "kept"
    parts = env["PATH"].split(os.pathsep)
    assert parts[: len(tool_folders())] == tool_folders() and folder in tool_folders()
    assert parts.count(folder) == 1 and parts[-2:] == ["/usr/bin", "/bin"]
    assert shutil.which("alembic", path=env["PATH"]), "nbgrader's alembic lies in this interpreter's scripts folder"


def test_grade_writes_the_nbgrader_gradebook_without_an_activated_venv(tmp_path):
    bare = tmp_path / "bin"  # a PATH that holds nothing at all: no venv, no alembic of the machine's
    bare.mkdir()
    assert shutil.which("alembic", path=str(bare)) is None
    klass, course = tmp_path / "class", tmp_path / "course"
    klass.mkdir()
    course.mkdir()
    shutil.copy(REPO / "reference/exercise-1/logreg.py", klass / "alice.py")
    (klass / "bob.py").write_text((REPO / "reference/exercise-1/logreg.py").read_text()
                                  .replace("-u).mean()", "-u).sum()"))  # a loss summed: first-loss fails
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": str(bare), "PYTHONNOUSERSITE": "1"}
    graded = subprocess.run([*dldiy_script(), "grade", "exercise-1", str(klass), "--out", str(tmp_path / "out"),
                             "--only", "first-loss", "--hidden", "0", "--jobs", "2", "--nbgrader", str(course)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "Traceback" not in graded.stderr

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {student: {g.name: g.auto_score for g in gb.find_submission_notebook("exercise-1", "exercise-1", student).grades}
                  for student in ("alice", "bob")}
    assert scores == {"alice": {"first-loss": 3.0}, "bob": {"first-loss": 0.0}}


def readme_commands() -> dict[str, str]:
    """The Quick start's two commands: the main job's and the tests'."""
    text = (REPO / "README.md").read_text()
    quick = text[text.index("## Quick start"):text.index("\n## ", text.index("## Quick start") + 1)]
    blocks = [b.split("\n", 1)[1].strip() for b in quick.split("```")[1::2] if b.startswith("bash")]
    assert len(blocks) == 2 and all("\n" not in b for b in blocks), blocks
    return {"main": blocks[0], "tests": blocks[1]}


def test_ci_runs_the_readmes_tests_command_word_for_word_in_a_bare_environment():
    ci = (REPO / ".ci" / "run").read_text()
    commands = readme_commands()
    assert commands["tests"] in ci
    assert commands["tests"].startswith(commands["main"].rsplit(" && ", 1)[0] + " && ")  # the same set-up
    assert "pip install torch==2.13.0" in commands["tests"]  # pinned: never an unpinned, CUDA-pulling torch
    run_line = next(line for line in ci.splitlines() if line.lstrip().startswith("env -i "))
    assert 'PATH="$only_python:/usr/bin:/bin"' in run_line and "PYTHONNOUSERSITE=1" in run_line
    assert "$PATH" not in ci  # never the caller's PATH
