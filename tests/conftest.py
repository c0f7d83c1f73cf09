"""Shared test helpers: the real CLI in a real subprocess, and tiny hand-made submissions."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_dldiy(*args: str, cwd: Path | None = None, timeout: float = 300,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """`dldiy ARGS` as a user types it (through this interpreter, so the test venv's install is used)."""
    return subprocess.run([sys.executable, "-m", "dldiy.cli", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def chromium() -> str:
    """The headless browser the page and picture tests render in, or the test is skipped and says why."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed here (Debian: apt-get install -y chromium); "
                    ".ci/run installs it so CI runs this test")
    return found


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium, headless, on a local page: `--dump-dom` prints the DOM once its scripts ran,
    `--screenshot=FILE` takes a picture of it."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--force-device-scale-factor=1",
         f"--user-data-dir={profile}", *args, page.as_uri()], capture_output=True, text=True, timeout=120)


def one_fast_rest_slow(values: list, ids=None) -> list:
    """Parameters for a test whose every case is a full check of a correct-but-different solution: the
    first case stays in the default loop, the others are marked slow (`pytest -m slow`, CI's second
    step), where `dldiy validate` over every exercise (test_validate.py) runs each of them once more."""
    names = ids(values) if callable(ids) else [None] * len(values)
    return [pytest.param(v, id=name, marks=() if i == 0 else pytest.mark.slow)
            for i, (v, name) in enumerate(zip(values, names))]


@pytest.fixture(scope="session")
def dldiy_once():
    """dldiy_once(*args) -> run_dldiy(*args), run once per session for the same arguments: a read-only
    command whose output several tests read (the full check of a reference) costs one real run."""
    results: dict[tuple[str, ...], subprocess.CompletedProcess] = {}

    def run(*args: str) -> subprocess.CompletedProcess:
        if args not in results:
            results[args] = run_dldiy(*args)
        return results[args]

    return run


@pytest.fixture
def write_submission(tmp_path):
    """write_submission(code, name="logreg.py") -> path of a one-file submission in a fresh folder."""

    def write(code: str, name: str = "logreg.py") -> Path:
        folder = tmp_path / f"sub{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        path = folder / name
        path.write_text(textwrap.dedent(code))
        return path

    return write


@pytest.fixture(scope="session")
def fork_server():
    """One warm fork server for the whole session: a child forked from it costs milliseconds, a fresh
    interpreter that imports torch seconds (graders/sandbox/forkserver.py)."""
    from dldiy.graders.sandbox.forkserver import ForkServer

    with ForkServer() as server:
        yield server


@pytest.fixture(scope="module")
def check_json(fork_server):
    """check_json(exercise_id, path, *only, course=None) -> (report JSON, exit status): what `dldiy check
    [--course COURSE] EXERCISE PATH --json [--only CHECK ...]` prints and exits with, assessed in-process by
    the same calls cli/check.py makes (graders/assess.py), with children forked from the session's server.
    Each exercise is loaded once per module. The real command keeps its own tests (test_smoke_cli.py and
    one per exercise)."""
    from dldiy.graders.assess import assess
    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.sandbox.spawn import check_processes

    loaded: dict = {}

    def check(exercise_id: str, path, *only: str, course: Path | None = None) -> tuple[dict, int]:
        with pytest.MonkeyPatch.context() as patch:
            if course is not None:  # as --course does (graders/course/folders.py's use_course): the sandbox hides its reference/
                patch.setenv("DLDIY_COURSE", str(Path(course).resolve()))
            key = (course, exercise_id)
            exercise = loaded.get(key) or loaded.setdefault(key, load_exercise(exercise_id))
            checks = [exercise.check(name) for name in only] or None
            report = assess(exercise, Path(path), checks=checks, extra_seeds=exercise.check_seeds, server=fork_server,
                            processes=check_processes())
        return json.loads(json.dumps(report.to_json())), report.exit_code  # exactly what --json prints

    return check


@pytest.fixture(scope="session")
def bugged(tmp_path_factory):
    """bugged(exercise, name) -> a fresh folder holding the reference with buggy/<exercise>/<name>/bug.diff
    applied (graders/course/bugs.py, as validate builds it): a test runs the bug, it never reads buggy/ files.
    Session-scoped so that module-scoped fixtures can use it too; every call builds a new folder."""
    from dldiy.graders.course.bugs import build_bugged

    def build(exercise: str, name: str) -> Path:
        return build_bugged(exercise, name, tmp_path_factory.mktemp(f"{exercise}-{name}") / name)

    return build


def gradebook(tmp_path, exercise: str, submissions: dict[str, str], name: str) -> dict[str, dict[str, str]]:
    """`dldiy grade EXERCISE` on a class of `submissions` (student -> the code of its file `name`) with hidden seeds
    4242 and 777, one job: the gradebook's rows by student (the integrity rounds' attacks beside honest classmates)."""
    klass = tmp_path / "class"
    for student, code in submissions.items():
        (klass / student).mkdir(parents=True)
        (klass / student / name).write_text(code)
    result = run_dldiy("grade", exercise, str(klass), "--out", str(tmp_path / "book"), "--hidden-seeds", "4242,777",
                       "-j", "1")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    with open(tmp_path / "book" / "gradebook.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}
