"""Pictures: what the judge keeps to draw (never a hidden seed's), the PNGs matplotlib makes of it
(headless, imported only when drawing), the terminal's sparkline, and `dldiy check --plots DIR`.
Progress: which check is running, on a terminal, fed by the runner as each result arrives."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, run_dldiy
from dldiy.graders import plots
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.judge import judge
from dldiy.graders.sandbox.runner import Outcome

PNG = b"\x89PNG\r\n\x1a\n"


def test_importing_plots_and_judging_do_not_import_matplotlib():
    code = ("import sys; from dldiy.graders import plots, judge; from dldiy.graders import render; "
            "print('matplotlib' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.stdout.strip() == "False", run.stderr


def test_drawing_is_headless_and_leaves_the_callers_backend_alone():
    code = ("import matplotlib; before = matplotlib.get_backend(); from dldiy.graders import plots; "
            "png = plots.draw({'curve': {'steps': [0, 1, 2], 'losses': [3.0, 2.0, 1.0], 'reference': None}}); "
            "print(png[:4] == b'\\x89PNG', matplotlib.get_backend() == before, 'matplotlib.pyplot' in __import__('sys').modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "agg"})
    assert run.stdout.split() == ["True", "True", "False"], run.stderr


def test_plot_data_per_kind_and_a_png_for_each():
    first = plots.plot_data("first_loss", {"steps": [0, 1, 2], "losses": [1.3, 2.6, 3.9], "n": 100},
                            {"steps": [0, 1, 2], "losses": [1.3, 0.45, 0.27]})
    assert first == {"curve": {"steps": [0, 1, 2], "losses": [1.3, 2.6, 3.9], "reference": [1.3, 0.45, 0.27]}}
    grads = plots.plot_data("gradcheck", {"blocks": [{"name": "w", "shape": [900],
                                                      "analytic": [0.1] * 900, "numeric": [0.2] * 900}]}, None)
    assert len(grads["gradcheck"][0]["analytic"]) == plots.MAX_ENTRIES  # a picture, not an archive
    boundary = {"w": [1.0, -1.0, 0.5], "points": [[0, 0], [1, 2], [2, 1], [3, 3]], "labels": [0, 1, 0, 1],
                "bias": -1.0}
    conv = plots.plot_data("convergence", {"accuracy": 0.5, "steps": 100, "losses": [1.0, "nan", None],
                                           "boundary": boundary},
                           {"losses": [1.0, 0.5, 0.1], "boundary": dict(boundary, w=[0.0, 1.0, 0.0])})
    assert conv["curve"]["steps"] == [0, 33, 67] and conv["boundary"]["reference"] == [0.0, 1.0, 0.0]
    filters = plots.plot_data("convergence", {"accuracy": 0.9, "steps": 10, "losses": [2.0, 1.0],
                                              "filters": [[[[0.1] * 3] * 3]] * 4},
                              {"filters": [[[[0.2] * 3] * 3]] * 4})
    assert filters["filters"]["reference"] is not None
    assert plots.plot_data("placement", {"outputs": []}, None) is None
    assert plots.plot_data("first_loss", None, None) is None
    for data in (first, grads, conv, filters):
        png = plots.draw(data, "a title")
        assert png.startswith(PNG) and len(png) > 5000


def test_sparkline_reads_the_curve():
    assert plots.sparkline([8, 4, 2, 1]) == "█▄▂▁"  # linear: log scale only beyond a factor 10
    assert plots.sparkline([1, 2, 3, float("nan")])[-1] == "!"
    assert plots.sparkline(list(range(100)), width=24).__len__() == 24
    assert plots.sparkline([None, "nan"]) == "!!"


def _outcome(results):
    outcome = Outcome()
    outcome.results = results
    return outcome


def test_the_judge_keeps_plot_data_of_a_public_seed_and_never_of_a_hidden_one():
    exercise = load_exercise("exercise-1")
    check = exercise.check("first-loss")
    public = exercise.expected()["first-loss"]
    right = {s: {"measurement": m} for s, m in public.items()}
    hidden_truth = {"steps": [0, 1, 2, 5, 10], "losses": [0.7, 0.5, 0.4, 0.3, 0.2], "n": 100}
    wrong_at_hidden = {"steps": hidden_truth["steps"], "losses": [9.0] * 5, "n": 100}
    results = {("first-loss", int(s)): r for s, r in right.items()}
    results[("first-loss", 777)] = {"measurement": wrong_at_hidden}
    expected = {"first-loss": dict(public, **{"777": hidden_truth})}
    report = judge(exercise, [check], _outcome(results), "x", expected, hidden=frozenset({777}))
    (result,) = report.checks
    assert result.status == "fail" and "values withheld" in result.message
    assert "plot" not in result.details and "9.0" not in json.dumps(result.details)
    results[("first-loss", 777)] = {"measurement": hidden_truth}
    report = judge(exercise, [check], _outcome(results), "x", expected, hidden=frozenset({777}))
    (result,) = report.checks
    assert result.status == "pass" and result.details["seed"] != 777
    assert result.details["plot"]["curve"]["reference"] == public[str(result.details["seed"])]["losses"]


@pytest.fixture(scope="module")
def bugged_check(tmp_path_factory, bugged):
    out = tmp_path_factory.mktemp("plots")
    result = run_dldiy("check", "exercise-1", str(bugged("exercise-1", "gradient-sign")),
                       "--plots", str(out / "png"))
    return result, out / "png"


def test_check_plots_writes_a_png_per_check_with_a_picture(bugged_check):
    result, folder = bugged_check
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["convergence.png", "first-loss.png", "gradcheck.png"]
    assert all(p.read_bytes().startswith(PNG) for p in folder.iterdir())
    assert "pictures: " in result.stdout and "gradcheck.png" in result.stdout


def test_the_terminal_report_shows_the_loss_curves_as_sparklines(bugged_check):
    result, _ = bugged_check
    line = next(line for line in result.stdout.splitlines() if line.startswith("convergence loss curve"))
    yours, reference = line.split("yours ")[1].split("  reference ")
    assert reference[0] == "█" and reference[-1] == "▁"  # the reference's loss falls
    # one bug, one deduction: train() ran with the grader's gradient, so the sign bug leaves its curve alone
    assert yours == reference and set(yours) <= set("▁▂▃▄▅▆▇█")


# -- progress ------------------------------------------------------------------------------------------

def test_assess_reports_each_result_and_the_check_that_runs_next():
    from dldiy.graders.assess import assess

    exercise = load_exercise("exercise-1")
    seen = []
    report = assess(exercise, REPO / "reference" / "exercise-1",
                    checks=[exercise.check("gradcheck"), exercise.check("stability")],
                    on_progress=lambda done, total, running: seen.append(
                        (done, total, None if running is None else (running.check, running.seed))))
    assert report.score == 4.0
    assert seen == [(1, 6, ("gradcheck", 42)), (2, 6, ("gradcheck", 2019)), (3, 6, ("stability", 1)),
                    (4, 6, ("stability", 42)), (5, 6, ("stability", 2019)), (6, 6, None)]


def test_check_on_a_terminal_shows_which_check_is_running(tmp_path):
    """In a pseudo-terminal, `dldiy check` (several seconds) shows a transient status naming the check."""
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dldiy.cli", "check", "exercise-1", str(REPO / "reference" / "exercise-1"),
                             "--only", "first-loss", "--only", "convergence"], cwd=REPO, stdin=follower,
                            stdout=follower, stderr=follower, env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    # which task the status names depends on the spinner's refresh against the checks' speed: any will do
    assert re.search(r"running (first-loss|convergence) \(seed \d+\), \d+/\d+ done", text), text[-2000:]
    assert "Total: 5/5" in text


def test_check_without_a_terminal_prints_no_status_line():
    result = run_dldiy("check", "exercise-1", str(REPO / "reference" / "exercise-1"), "--only", "gradcheck")
    assert "running" not in result.stdout + result.stderr and result.returncode == 0


def test_a_tampered_measurement_draws_a_bounded_picture_or_none_and_never_crashes():
    """The measurement comes from the child, where student code runs: sizes are capped, names made
    plain (no mathtext), and a picture that cannot be drawn is left out."""
    huge = plots.plot_data("convergence", {"accuracy": 1.0, "steps": "x", "losses": [1.0] * 10**6,
                                           "boundary": {"w": [1, 2, 3, 4, 5], "points": [[0, 0, 0]] * 10**5,
                                                        "labels": [0] * 10**5},
                                           "filters": [[0.0] * 100] * 1000}, None)
    assert len(huge["curve"]["losses"]) == plots.MAX_POINTS and len(huge["boundary"]["points"]) == plots.MAX_POINTS
    assert huge["boundary"]["w"] == [1, 2, 3] and "filters" not in huge
    named = plots.plot_data("gradcheck", {"blocks": [{"name": "$\\frac{a}{$" * 20, "analytic": [1], "numeric": [1]}]},
                            None)
    assert "$" not in named["gradcheck"][0]["name"] and len(named["gradcheck"][0]["name"]) <= 40
    assert plots.plot_data("gradcheck", {"blocks": [{"analytic": 3}]}, None) is None
    garbage = {"name": "convergence", "status": "fail", "details": {"seed": 1, "plot": {"filters": {"student": [[["x"]]]}}}}
    good = {"name": "first-loss", "status": "fail",
            "details": {"seed": 1, "plot": {"curve": {"steps": [0, 1], "losses": [1.0, 2.0], "reference": None}}}}
    assert [name for name, _, _ in plots.pictures([garbage, good])] == ["first-loss"]


def test_gradcheck_panels_keep_their_text_apart_and_inside_the_picture():
    """Three gradient blocks with names as long as plot_data keeps (exercise 8's 'gradient of conv2d x
    (stride 1, padding 0, kernel 2x...'): no panel's title runs into its neighbour's, no label of a
    circled entry runs off the picture, and the circles are in the legend only where there are some."""
    name = "conv2d weight (stride 1, padding 0, kern"
    assert len(plots._name(name * 2)) == len(name) == 40
    bad = {"name": name, "analytic": [0.1, 0.2, -0.3, 5.0], "numeric": [0.1, 0.2, 0.3, -5.0]}  # two wrong entries
    good = {"name": name, "analytic": [0.1, 0.2, 0.3], "numeric": [0.1, 0.2, 0.3]}
    fig = plots.figure({"gradcheck": [bad, good, bad]}, "gradcheck: fail (seed 0)")
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    for left, right in zip(titles, titles[1:]):
        assert left.x1 < right.x0, (left, right)
    texts = [t for ax in fig.axes for t in ax.texts] + [ax.title for ax in fig.axes]
    assert len(texts) == 2 + 2 + 3
    for t in texts:
        box = t.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1, (t.get_text(), box)
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert ["worst entries (rel. error)" in labels for labels in legends] == [True, False, True]
