"""What a student will hit: one line, exit code 2, never our traceback. Real CLI, real child processes."""

import re
import shutil

import pytest
from pathlib import Path

from conftest import REPO, run_dldiy

from dldiy.graders.assess import assess
from dldiy.graders.course.exercise import load_exercise_dir

REFERENCE = (REPO / "reference/exercise-1/logreg.py").read_text()


def assert_one_line_exit_2(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_exercise_suggests_the_right_one():
    assert_one_line_exit_2(run_dldiy("check", "exercize-1"), "unknown exercise", "did you mean 'exercise-1'")
    assert_one_line_exit_2(run_dldiy("check", "1"), "did you mean 'exercise-1'")


def test_missing_file(tmp_path):
    assert_one_line_exit_2(run_dldiy("check", "exercise-1", str(tmp_path / "nope.py")), "no such file")
    assert_one_line_exit_2(run_dldiy("check", "exercise-1", str(tmp_path)), "has no logreg.py", "dldiy start")


def test_unknown_check_name():
    assert_one_line_exit_2(run_dldiy("check", "exercise-1", "reference/exercise-1", "--only", "gradchek"),
                           "did you mean 'gradcheck'")


def test_syntax_error_names_file_and_line(write_submission):
    path = write_submission(REFERENCE.replace("def train(X, y, w0, lr, steps):", "def train(X, y, w0, lr, steps)"))
    assert_one_line_exit_2(run_dldiy("check", "exercise-1", str(path)), "logreg.py:", "SyntaxError")


def test_missing_function_names_the_expected_signature(write_submission, check_json):
    path = write_submission(REFERENCE.replace("def gradient(", "def grad("))
    report, exit_code = check_json("exercise-1", path, "gradcheck")
    assert exit_code == 2
    (check,) = report["checks"]
    assert check["status"] == "error" and "does not define `gradient`" in check["message"]
    assert "gradient(X, y, w)" in check["message"]


def test_a_raising_function_shows_only_the_students_frames(write_submission):
    path = write_submission(REFERENCE.replace("    Xt = add_bias(X)\n", "    Xt = add_bias(X)\n    1 / 0\n", 1))
    result = run_dldiy("check", "exercise-1", str(path), "--only", "gradcheck")
    assert result.returncode == 2
    out = result.stdout
    assert "ZeroDivisionError" in out and "logreg.py:" in out and "in gradient" in out
    assert "harness.py" not in out and "dldiy" not in out.replace("dldiy check", "") and "site-packages" not in out


@pytest.mark.parametrize("raised", ["OSError('disk full')", "PermissionError(13, 'Permission denied', 'w.npy')",
                                    "ConnectionError('no network')"])
def test_an_os_error_from_the_students_code_is_their_error_not_a_dead_process(write_submission, check_json, raised):
    """A student's OSError crosses as an error that is an OSError too: it must be reported as what their
    code raised, in about a second, never mistaken for a dead peer (which used to wait on a live one)."""
    path = write_submission(REFERENCE.replace("    Xt = add_bias(X)\n", f"    Xt = add_bias(X)\n    raise {raised}\n", 1))
    check = check_json("exercise-1", path, "gradcheck")[0]["checks"][0]
    assert check["status"] == "error", check
    assert raised.split("(")[0] in check["message"] and "logreg.py:" in check["message"], check
    assert "did not finish" not in check["message"] and "exited" not in check["message"], check


def test_wrong_shape_is_reported_with_both_shapes(write_submission, check_json):
    path = write_submission(REFERENCE.replace("    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]",
                                              "    return (-(torch.sigmoid(-u) * t) @ Xt / X.shape[0])[:, None]"))
    report, exit_code = check_json("exercise-1", path, "gradcheck")
    (check,) = report["checks"]
    assert exit_code == 2 and check["status"] == "error"
    assert "shape (4, 1)" in check["message"] and "expected (4,)" in check["message"]


def test_nan_output_is_reported(write_submission, check_json):
    path = write_submission(REFERENCE.replace("    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]",
                                              "    return -(torch.sigmoid(-u) * t) @ Xt / 0.0 * 0.0"))
    report, exit_code = check_json("exercise-1", path, "gradcheck")
    (check,) = report["checks"]
    assert exit_code == 2 and check["status"] == "error" and "nan" in check["message"]


def _with_timeout(tmp_path: Path, exercise_id: str, seconds: float):
    """A copy of a built-in exercise whose checks time out after `seconds` (its spec's one timeout)."""
    folder = tmp_path / "exercise"
    shutil.copytree(REPO / "exercises" / exercise_id, folder)
    spec = folder / "spec.toml"
    text = spec.read_text()
    assert len(re.findall(r"^timeout = \d+$", text, flags=re.M)) == 1
    spec.write_text(re.sub(r"^timeout = \d+$", f"timeout = {seconds:g}", text, flags=re.M))
    return load_exercise_dir(folder)


def test_a_hanging_check_times_out_and_the_others_still_run(tmp_path, write_submission, fork_server):
    exercise = _with_timeout(tmp_path, "exercise-1", 2)
    path = write_submission(REFERENCE.replace("def train(X, y, w0, lr, steps):\n",
                                              "def train(X, y, w0, lr, steps):\n    while True:\n        pass\n"))
    report = assess(exercise, path, checks=[exercise.check("first-loss"), exercise.check("gradcheck")],
                    server=fork_server)  # as grade runs it: a kill and a fresh child forked from the warm server
    status = {c.name: c for c in report.checks}
    assert status["first-loss"].status == "error" and "did not finish within 2 s" in status["first-loss"].message
    assert status["gradcheck"].status == "pass"  # measured in a fresh child after the kill
    assert report.exit_code == 2


def test_a_function_that_hung_is_not_called_again_and_costs_only_its_own_checks(tmp_path, write_submission,
                                                                                  fork_server):
    """gradient() loops forever: gradcheck (the first to call it) waits its timeout out; every later call of
    gradient() is refused at once, naming where it hung, instead of each check waiting its own timeout out
    (check's 9 seeds x 4 checks took 70 s at a 1 s timeout). train() is judged with the grader's gradient,
    so first-loss and convergence keep their points, with a note. In gradcheck's batch loss() was asked
    too: only the function on the student's stack is taken for the one that hung."""
    exercise = _with_timeout(tmp_path, "exercise-1", 1)
    path = write_submission(REFERENCE.replace("def gradient(X, y, w):\n",
                                              "def gradient(X, y, w):\n    while True:\n        pass\n"))
    names = ["gradcheck", "first-loss", "convergence", "stability", "placement"]
    report = assess(exercise, path, checks=[exercise.check(n) for n in names], server=fork_server,
                    extra_seeds=exercise.check_seeds)
    status = {c.name: c for c in report.checks}
    assert status["gradcheck"].status == "error" and "did not finish within 1 s" in status["gradcheck"].message
    assert "in gradient" in status["gradcheck"].message  # the student's line, by the stack
    assert status["first-loss"].status == "pass" and "yours was not run again: gradient() did not finish in an " \
        "earlier check (gradcheck at seed 1" in status["first-loss"].message, status["first-loss"].message
    assert status["convergence"].status == "pass"
    for later in ("stability", "placement"):
        assert status[later].status == "error", status[later].message
        assert "gradient() did not finish in an earlier check (gradcheck at seed" in status[later].message
        assert "not called again" in status[later].message and "loss()" not in status[later].message


def test_a_check_that_timed_out_at_one_seed_is_not_run_at_its_others(tmp_path, write_submission, fork_server):
    """One seed's timeout fails the check: its other seeds are not waited out (exercise-6's optimizers, a
    step() that never returns, took 162 s of `dldiy check` at a 1 s timeout). The step prints on entry:
    it is entered once, at the first seed, not at each of the others."""
    exercise = _with_timeout(tmp_path, "exercise-6", 1)
    source = (REPO / "reference/exercise-6/optim.py").read_text()
    head = "    def step(self, closure=None):\n"
    assert head in source
    path = write_submission(source.replace(head, head + "        print('STEP ENTERED', flush=True)\n"
                                           "        while True:\n            pass\n", 1), name="optim.py")
    report = assess(exercise, path, checks=[exercise.check("gd"), exercise.check("momentum")], server=fork_server)
    gd, momentum = report.checks
    assert gd.status == "error" and "did not finish within 1 s" in gd.message, gd.message
    # the step that hung (a method, decorated: @torch.no_grad()) is refused in the next check's process
    assert momentum.status == "error" and "_FirstOrder.step() did not finish in an earlier check (gd at seed 1" \
        in momentum.message and "not called again" in momentum.message, momentum.message
    assert len(exercise.seeds) >= 3 and report.output.count("STEP ENTERED") == 1, report.output


def test_what_is_refused_after_a_timeout_is_the_function_that_did_not_finish_not_the_helper_it_was_in(
        tmp_path, write_submission, fork_server):
    """train() loops forever, calling loss() and gradient(), which call add_bias(): the stack at the timeout
    may end in any of them; the one that did not finish is train(), the outermost. loss() and gradient()
    stay callable: stability and placement keep their points (one bug, one deduction)."""
    exercise = _with_timeout(tmp_path, "exercise-1", 1)
    assert "    for _ in range(steps):\n" in REFERENCE
    path = write_submission(REFERENCE.replace("    for _ in range(steps):\n", "    while True:\n"))
    names = ["first-loss", "convergence", "stability", "placement"]
    report = assess(exercise, path, checks=[exercise.check(n) for n in names], server=fork_server)
    status = {c.name: c for c in report.checks}
    assert status["first-loss"].status == "error" and "did not finish within 1 s" in status["first-loss"].message
    assert status["convergence"].status == "error" and \
        "train() did not finish in an earlier check (first-loss at seed" in status["convergence"].message
    assert status["stability"].status == "pass" and status["placement"].status == "pass", report.checks


def test_start_writes_the_template_and_keeps_existing_work(tmp_path):
    result = run_dldiy("start", "exercise-1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    target = tmp_path / "exercise-1" / "logreg.py"
    assert "NotImplementedError" in target.read_text()
    target.write_text("# my work\n")
    again = run_dldiy("start", "exercise-1", cwd=tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert target.read_text() == "# my work\n"
    assert run_dldiy("start", "exercise-1", "--force", cwd=tmp_path).returncode == 0


def test_the_template_fails_with_not_implemented_naming_the_task(tmp_path, check_json):
    assert run_dldiy("start", "exercise-1", cwd=tmp_path).returncode == 0
    report, exit_code = check_json("exercise-1", tmp_path / "exercise-1", "gradcheck")
    (check,) = report["checks"]
    assert exit_code == 2
    assert "NotImplementedError" in check["message"] and "implement gradient" in check["message"]


def test_list_shows_every_exercise():
    result = run_dldiy("list")
    assert result.returncode == 0 and "exercise-1" in result.stdout and "gradcheck" in result.stdout


def test_check_defaults_to_where_start_puts_the_work(tmp_path):
    (tmp_path / "exercise-1").mkdir()
    (tmp_path / "exercise-1" / "logreg.py").write_text(REFERENCE)
    result = run_dldiy("check", "exercise-1", "--only", "first-loss", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "first-loss" in result.stdout and "3/3" in result.stdout


# --- `dldiy grade`: every mistake an instructor can make is one line, exit 2, before the batch -------

def _class(tmp_path: Path) -> Path:
    subs = tmp_path / "subs"
    subs.mkdir(parents=True, exist_ok=True)
    (subs / "alice.py").write_text(REFERENCE)
    return subs


def _nothing_graded(out: Path) -> bool:
    return not (out / "journal.jsonl").exists() and not (out / "gradebook.csv").exists()


def _untouched(out: Path) -> bool:
    return not out.exists()


def test_grade_missing_submissions_folder(tmp_path):
    out = tmp_path / "out"
    result = run_dldiy("grade", "exercise-1", str(tmp_path / "nope"), "--out", str(out))
    assert_one_line_exit_2(result, "no such file or folder", "nope")
    assert _untouched(out)


def test_grade_missing_nbgrader_course(tmp_path):
    out = tmp_path / "out"
    result = run_dldiy("grade", "exercise-1", str(_class(tmp_path)), "--out", str(out),
                       "--nbgrader", str(tmp_path / "no-course"))
    assert_one_line_exit_2(result, "--nbgrader", "no such course folder")
    assert _untouched(out)


def test_grade_cluster_where_no_scheduler_listens(tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    result = run_dldiy("grade", "exercise-1", str(_class(tmp_path)), "--out", str(out),
                       "--cluster", f"tcp://127.0.0.1:{port}")
    assert_one_line_exit_2(result, "--cluster", f"no scheduler answers at tcp://127.0.0.1:{port}")
    assert _untouched(out)
    assert_one_line_exit_2(run_dldiy("grade", "exercise-1", str(_class(tmp_path)), "--out", str(out),
                                     "--cluster", "tcp://nowhere"), "--cluster", "no host:port")


def test_grade_unwritable_out(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_dldiy("grade", "exercise-1", str(_class(tmp_path)), "--out", str(blocker / "out"))
    assert_one_line_exit_2(result, "--out", "cannot be written")
    result = run_dldiy("grade", "exercise-1", str(_class(tmp_path)), "--out", str(blocker))
    assert_one_line_exit_2(result, "--out", "is a file, not a folder")
    subs = _class(tmp_path)
    assert_one_line_exit_2(run_dldiy("grade", "exercise-1", str(subs), "--out", str(subs)),
                           "--out", "is the submissions folder itself")
    assert _nothing_graded(subs)


def test_grade_usage_errors_are_one_line(tmp_path):
    subs = _class(tmp_path)
    out = tmp_path / "out"
    assert_one_line_exit_2(run_dldiy("grade", "exercise-1", str(subs)), "--out")  # click's own: missing option
    assert_one_line_exit_2(run_dldiy("grade", "exercise-1", str(subs), "--out", str(out), "--skips", "maybe"),
                           "--skips", "leave-out or zero")
    assert_one_line_exit_2(run_dldiy("grade", "exercise-1", str(subs), "--out", str(out), "--hidden-seeds", "x"),
                           "--hidden-seeds")
    assert_one_line_exit_2(run_dldiy("grade", "exercize-1", str(subs), "--out", str(out)), "did you mean")
    assert _nothing_graded(out)


WEDGE = '''
import json, os, stat, struct, time

def _wedge():
    """Flood the socket to the harness with bogus requests and never read: each gets a reply, the
    harness's socket buffer fills, and its write blocks."""
    fd = next(fd for fd in range(3, 64) if _is_socket(fd))
    frame = json.dumps({"op": "x"}).encode()
    data = (struct.pack(">I", len(frame)) + frame) * 40000
    os.set_blocking(fd, False)
    sent, t0 = 0, time.time()
    while sent < len(data) and time.time() - t0 < 10:
        try:
            sent += os.write(fd, data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(3600)

def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
'''


def test_a_submission_that_floods_the_harness_and_never_reads_costs_one_timeout(tmp_path, write_submission,
                                                                               fork_server):
    """The harness's writes are bounded by the check's deadline as its reads are (red team A14: blocked in
    sendall, only the parent's backstop of timeout + 5 s ended it, and for every task: 251 s)."""
    exercise = _with_timeout(tmp_path, "exercise-1", 2)
    path = write_submission(WEDGE + REFERENCE.replace("def gradient(X, y, w):\n", "def gradient(X, y, w):\n    _wedge()\n"))
    report = assess(exercise, path, checks=[exercise.check("gradcheck"), exercise.check("first-loss")],
                    server=fork_server)
    status = {c.name: c for c in report.checks}
    # the harness's own timeout (2 s, with where it hung), not the parent's backstop (7 s)
    assert status["gradcheck"].status == "error" and "did not finish within 2 s" in status["gradcheck"].message, \
        status["gradcheck"].message
    assert status["first-loss"].status == "pass"  # train() runs with the grader's gradient, in a fresh child


def test_a_report_reaches_the_terminal_with_its_control_characters_escaped():
    """Red team A15: ESC/OSC sequences in a notebook's magic lines, a message or a traceback reach
    `dldiy check`'s terminal (and the feedback files) shown escaped, never raw."""
    import io

    from rich.console import Console

    from dldiy.graders.render import print_report
    from dldiy.graders.report import CheckResult, Report, shown

    osc = "\x1b]0;pwned\x07\x1b[2J"
    report = Report("exercise-1", f"nb{osc}.ipynb", [CheckResult(
        "first-loss", "first_loss", "error", 0, 3, f"boom {osc}", details={"traceback": f"line 1\nline 2 {osc}"})],
        skipped_lines=[f"cell 1, line 1: !echo {osc}"])
    buffer = io.StringIO()
    print_report(report, Console(file=buffer, width=200, force_terminal=False))
    printed = buffer.getvalue()
    assert "\x1b" not in printed and "\x07" not in printed and "\\x1b]0;pwned\\x07" in printed
    assert shown("a\tb\nc\u202ed\udcff") == "a\tb\nc\\u202ed\\udcff"  # tabs and newlines kept
    assert report.checks[0].message == f"boom {osc}"  # the report itself is not changed
