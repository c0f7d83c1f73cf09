"""Pictures: what the judge keeps to draw (never a hidden seed's), the SVGs drawn of it by hand (valid
XML, finite coordinates, escaped text, no matplotlib), the terminal's sparkline, and `dldiy check --plots
DIR`. Progress: which check is running, on a terminal, fed by the runner as each result arrives."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, browse, run_dldiy
from dldiy.graders import plots
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.judge import judge
from dldiy.graders.sandbox.runner import Outcome

SVG = "{http://www.w3.org/2000/svg}"
BOUNDARY = {"w": [1.0, -1.0, 0.5], "points": [[0, 0], [1, 2], [2, 1], [3, 3]], "labels": [0, 1, 0, 1], "bias": -1.0}
EVERY_KIND = {  # one picture of each kind of panel, as plot_data keeps them
    "curve": {"curve": {"steps": [0, 1, 2, 5, 10], "losses": [0.69, 0.6, 0.53, 0.42, 0.31],
                        "reference": [0.69, 0.5, 0.4, 0.3, 0.2]}},
    "gradcheck": {"gradcheck": [{"name": "w", "analytic": [0.1, -0.2, 0.3], "numeric": [0.1, 0.2, 0.3]},
                                {"name": "b", "analytic": [1.0], "numeric": [1.0]}]},
    "boundary": {"boundary": dict(BOUNDARY, reference=[0.0, 1.0, 0.0])},
    "filters": {"filters": {"student": [[[[0.1, -0.2], [0.3, 0.4]]]] * 3, "reference": [[[[-0.5, 0.2], [0.1, 0.0]]]] * 3}},
}


def parse(svg: bytes) -> ET.Element:
    """The picture as XML: it must parse, and be an SVG root sized as its viewBox."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_drawing_imports_no_plotting_library():
    """Every kind of picture drawn in a fresh interpreter imports neither matplotlib nor numpy; judging
    and the terminal's report import no matplotlib either."""
    code = ("import sys, json; from dldiy.graders import plots; "
            f"[plots.draw(d, 'a title') for d in json.loads({json.dumps(json.dumps(list(EVERY_KIND.values())))})]; "
            "print('matplotlib' in sys.modules, 'numpy' in sys.modules); from dldiy.graders import judge, render; "
            "print('matplotlib' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.stdout.split() == ["False", "False", "False"], run.stderr


def test_plot_data_per_kind_and_an_svg_for_each():
    first = plots.plot_data("first_loss", {"steps": [0, 1, 2], "losses": [1.3, 2.6, 3.9], "n": 100},
                            {"steps": [0, 1, 2], "losses": [1.3, 0.45, 0.27]})
    assert first == {"curve": {"steps": [0, 1, 2], "losses": [1.3, 2.6, 3.9], "reference": [1.3, 0.45, 0.27]}}
    grads = plots.plot_data("gradcheck", {"blocks": [{"name": "w", "shape": [900],
                                                      "analytic": [0.1] * 900, "numeric": [0.2] * 900}]}, None)
    assert len(grads["gradcheck"][0]["analytic"]) == plots.MAX_ENTRIES  # a picture, not an archive
    conv = plots.plot_data("convergence", {"accuracy": 0.5, "steps": 100, "losses": [1.0, "nan", None],
                                           "boundary": BOUNDARY},
                           {"losses": [1.0, 0.5, 0.1], "boundary": dict(BOUNDARY, w=[0.0, 1.0, 0.0])})
    assert conv["curve"]["steps"] == [0, 33, 67] and conv["boundary"]["reference"] == [0.0, 1.0, 0.0]
    filters = plots.plot_data("convergence", {"accuracy": 0.9, "steps": 10, "losses": [2.0, 1.0],
                                              "filters": [[[[0.1] * 3] * 3]] * 4},
                              {"filters": [[[[0.2] * 3] * 3]] * 4})
    assert filters["filters"]["reference"] is not None
    assert plots.plot_data("placement", {"outputs": []}, None) is None
    assert plots.plot_data("first_loss", None, None) is None
    # the panels, side by side and in figure()'s order of before: curve, gradient blocks, boundaries, filters
    panels = {id(first): ["loss curve"], id(grads): ["gradient of w"],
              id(conv): ["loss curve", "your decision boundary", "the reference's decision boundary"],
              id(filters): ["loss curve", "conv filters after training"]}
    for data in (first, grads, conv, filters):
        svg = plots.draw(data, "a title")
        root = parse(svg)
        assert svg.startswith(b"<svg ") and svg.decode("utf-8")
        groups = root.findall(f"{SVG}g")
        assert root.get("width") == str(420 * len(groups)) and root.get("height") == "340"
        assert len(groups) == len(panels[id(data)])
        assert all(title in texts(g) for g, title in zip(groups, panels[id(data)])), [texts(g) for g in groups]
        assert texts(root)[0] == "a title"
        # nothing outside the document: no link, script, style sheet or font to fetch
        assert not re.search(rb"href|url\(|<script|<style|@import|<image|<foreignObject", svg)
        assert svg.count(b"http") == 1  # the SVG namespace's name, never fetched


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
                       "--plots", str(out / "pictures"))
    return result, out / "pictures"


def test_check_plots_writes_an_svg_per_check_with_a_picture(bugged_check):
    result, folder = bugged_check
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["convergence.svg", "first-loss.svg", "gradcheck.svg"]
    for picture in folder.iterdir():
        assert picture.name[:-4] + ": " in texts(parse(picture.read_bytes()))[0]  # its title names the check
    assert "pictures: " in result.stdout and "gradcheck.svg" in result.stdout


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


# -- what the pictures show, read back from the SVG ---------------------------------------------------------

def polylines(root: ET.Element, colour: str) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, xy.split(","))) for xy in line.get("points").split()]
            for line in root.iter(f"{SVG}polyline") if line.get("stroke") == colour]


def lines(root: ET.Element, **attributes: str) -> list[ET.Element]:
    """The <line>s with these attributes, but a legend's (24 pixels, level)."""
    return [line for line in root.iter(f"{SVG}line") if all(line.get(k) == v for k, v in attributes.items())
            and not (line.get("y1") == line.get("y2") and float(line.get("x2")) - float(line.get("x1")) == 24)]


def circle_centres(root: ET.Element, **attributes: str) -> list[tuple[float, float]]:
    """The centres of the circles of the <path>s with these attributes (a marker set is one path of
    'M x-r y a r r 0 1 0 2r 0 ...' circles)."""
    paths = [p.get("d") for p in root.iter(f"{SVG}path") if all(p.get(k) == v for k, v in attributes.items())]
    return [(float(x) + float(r), float(y)) for d in paths
            for x, y, r in re.findall(r"M(-?[\d.]+) (-?[\d.]+)a([\d.]+) ", d)]


@pytest.mark.parametrize("losses, reference, log", [
    ([1.0, 2.0, 20.0], None, False),  # max/min = 20: linear
    ([1.0, 2.0, 21.0], None, True),  # beyond 20: log
    ([1.0, 2.0, 3.0], [30.0], True),  # the reference's values count
    ([1.0, 2.0, 21.0, -1.0], None, False),  # a loss <= 0: linear
    ([1.0, 2.0, 21.0, float("nan")], ["inf"], True),  # non-finite values do not count
])
def test_the_loss_axis_is_logarithmic_beyond_a_factor_20_of_positive_values(losses, reference, log):
    """Read from where the points are: on a log axis 1, 2 and 20 sit log(2) and log(10) apart in height."""
    root = parse(plots.draw({"curve": {"steps": list(range(len(losses))), "losses": losses, "reference": reference}}))
    (yours, *_) = polylines(root, "#cf222e")
    (y1, y2, y3) = [y for _, y in yours[:3]]
    f = math.log if log else (lambda v: v)
    assert (y1 - y2) / (y2 - y3) == pytest.approx((f(2) - f(1)) / (f(losses[2]) - f(2)), rel=0.02)
    assert any(t.find(f"{SVG}tspan") is not None for t in root.iter(f"{SVG}text")) == log  # 10 to the k


def test_a_loss_that_is_not_finite_is_a_gap_and_a_dotted_line_at_its_first_step():
    root = parse(plots.draw({"curve": {"steps": [0, 10, 20, 30, 40], "losses": [3.0, 2.0, "nan", 1.0, None],
                                       "reference": [3.0, 1.0, 0.5, 0.4, 0.3]}}))
    assert [len(line) for line in polylines(root, "#cf222e")] == [2]  # 3.0 -> 2.0; 1.0 alone is a marker
    assert len(circle_centres(root, fill="#cf222e")) == 3 + 1  # its 3 finite losses, and the legend's
    (mark,) = lines(root, **{"stroke-dasharray": "2 3"})
    ticks = {"".join(t.itertext()): float(t.get("x")) for t in root.iter(f"{SVG}text")}
    assert float(mark.get("x1")) == float(mark.get("x2")) == pytest.approx(ticks["20"], abs=0.2)
    assert "not finite from step 20" in texts(root)


def test_gradcheck_circles_the_worst_entries_by_relative_error():
    """|a - n| / max(1e-8, |a| + |n|) above 1e-6, the 3 largest; an entry that is not finite is not ranked."""
    analytic = [0.1, 0.2, -0.3, 5.0, 1.0, 7.0, 2.0, float("nan")]
    numeric = [0.1, 0.2000001, 0.3, -5.0, 1.1, 7.0 * (1 + 1e-7), 2.5, 1.0]
    assert plots.worst_entries(analytic, numeric) == [2, 3, 6]  # rel 1, 1, 0.11; then [4] 0.048; [1] 2.5e-7
    root = parse(plots.draw({"gradcheck": [{"name": "w", "analytic": analytic, "numeric": numeric}]}))
    entries = circle_centres(root, fill="#0969da")[:-1]  # the last: the legend's
    rings = circle_centres(root, stroke="#cf222e")[:-1]
    assert rings == [entries[i] for i in (2, 3, 6)] and len(entries) == 7
    labels = [t for t in texts(root) if t.startswith("[")]
    assert labels == ["[2] rel 1.0e+00", "[3] rel 1.0e+00", "[6] rel 1.1e-01"]
    legend = [t for t in texts(root) if "worst" in t]
    assert legend == ["worst entries (rel. error)"]
    clean = parse(plots.draw({"gradcheck": [{"name": "w", "analytic": [0.1, 0.2], "numeric": [0.1, 0.2]}]}))
    assert not circle_centres(clean, stroke="#cf222e") and "worst entries (rel. error)" not in texts(clean)


def test_the_hyperplane_is_drawn_across_the_panel_only_when_it_is_defined():
    def hyperplanes(w: list) -> list[ET.Element]:
        root = parse(plots.draw({"boundary": dict(BOUNDARY, w=w)}))
        return lines(root, stroke="#cf222e")

    (line,) = hyperplanes([1.0, -1.0, 0.5])  # y = x - 0.5 (bias -1): across the frame, from edge to edge
    (frame,) = [r for r in parse(plots.draw({"boundary": BOUNDARY})).iter(f"{SVG}rect") if r.get("fill") == "none"]
    left, top = float(frame.get("x")), float(frame.get("y"))
    right, bottom = left + float(frame.get("width")), top + float(frame.get("height"))
    for x, y in ((line.get("x1"), line.get("y1")), (line.get("x2"), line.get("y2"))):
        x, y = float(x), float(y)
        assert left - 0.1 <= x <= right + 0.1 and top - 0.1 <= y <= bottom + 0.1
        assert min(abs(x - left), abs(x - right), abs(y - top), abs(y - bottom)) < 0.1  # on the frame
    assert hyperplanes([1.0, 0.0, 0.5]) == hyperplanes([1.0, "nan", 0.5]) == hyperplanes([1.0, 2.0]) == []
    assert hyperplanes([1e300, 1e-11, 1e300]) or True  # steep, huge: drawn or not, never an error
    texts_of = texts(parse(plots.draw({"boundary": dict(BOUNDARY, points=[[1.0], [2.0]])})))
    assert "your: data not 2-D" in texts_of


HOSTILE_NAME = "</text><script>alert(1)</script><text>&amp;\x00\ud800"


def test_every_text_is_escaped():
    """A block name or a title from a measurement of student code is text in the picture, never markup."""
    svg = plots.draw({"gradcheck": [{"name": HOSTILE_NAME, "analytic": [1.0], "numeric": [2.0]}]}, HOSTILE_NAME)
    root = parse(svg)
    assert {e.tag for e in root.iter()} <= {f"{SVG}{t}" for t in ("svg", "g", "rect", "text", "tspan", "path",
                                                                   "line", "polyline")}
    assert b"<script" not in svg
    # the characters XML cannot hold (NUL, a lone surrogate) are replaced, the rest shown as they are
    assert texts(root)[0].startswith("</text><script>alert(1)</script><text>&amp;")
    assert any(t.startswith("gradient of </text><script>") for t in texts(root))


finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    [1e308, -1e308, 1e-308, -0.0, 0.0, 5e-324, None, "nan", "inf", "-inf"]))
numbers = st.lists(finite_or_not, max_size=50)


def assert_finite_coordinates(svg: bytes) -> None:
    root = parse(svg)
    for element in root.iter():
        for name, value in element.attrib.items():
            assert "nan" not in value.lower() and "inf" not in value.lower(), (element.tag, name, value)


@settings(max_examples=150, deadline=None)
@given(numbers, st.one_of(st.none(), numbers), numbers)
def test_any_numbers_draw_a_valid_picture_with_finite_coordinates(losses, reference, steps):
    assert_finite_coordinates(plots.draw({"curve": {"steps": steps or list(range(len(losses))), "losses": losses,
                                                    "reference": reference}}, "t"))


@settings(max_examples=150, deadline=None)
@given(numbers, numbers, st.lists(st.tuples(finite_or_not, finite_or_not), max_size=50), numbers)
def test_any_gradients_boundaries_and_filters_draw_with_finite_coordinates(analytic, numeric, points, w):
    assert_finite_coordinates(plots.draw({"gradcheck": [{"name": "w", "analytic": analytic, "numeric": numeric}]}))
    boundary = {"points": [list(p) for p in points], "labels": [i % 2 for i in range(len(points))], "w": w[:3],
                "bias": (w or [1.0])[-1], "reference": w[-3:]}
    assert_finite_coordinates(plots.draw({"boundary": boundary}))
    side = max(1, min(3, len(analytic)))
    filters = [[[[(analytic + [0.0] * 9)[i * side + j] for j in range(side)] for i in range(side)]]] * 2
    assert_finite_coordinates(plots.draw({"filters": {"student": filters, "reference": filters[:1]}}))


@pytest.mark.parametrize("data", [
    {"curve": {"steps": [], "losses": [], "reference": []}},
    {"curve": {"steps": [7], "losses": [1e300], "reference": None}},
    {"curve": {"steps": [0, 1, 2], "losses": [2.0, 2.0, 2.0], "reference": [-1e308, 1e308, 0.0]}},
    {"gradcheck": [{"name": "", "analytic": [], "numeric": []}]},
    {"gradcheck": [{"name": "w", "analytic": [0.0] * 5, "numeric": [0.0] * 5}]},
    {"boundary": {"points": [], "labels": [], "w": [], "bias": 1.0, "reference": None}},
    {"boundary": {"points": [[1.0, 1.0]] * 3, "labels": [0, 1, 0], "w": [0.0, 1.0, -1.0], "bias": 1.0}},
    {"filters": {"student": [], "reference": None}},
    {"filters": {"student": [[0.0, 1.0], [2.0, "nan"]], "reference": [[[[float("inf")]]]]}},
], ids=["empty", "one-point", "flat-and-huge", "no-entries", "all-zero", "no-points", "one-place", "no-filters",
        "2-D-and-inf"])
def test_degenerate_measurements_draw(data):
    assert_finite_coordinates(plots.draw(data, "t"))


def test_the_pictures_text_stays_inside_and_apart_in_a_real_browser(tmp_path):
    """Rendered by chromium (its own sans-serif): every text of every panel inside the picture, no two
    texts overlapping, no label over a legend. Three gradient blocks with names as long as plot_data keeps
    (exercise 8's 'gradient of conv2d x (stride 1, padding 0, kernel 2x...'), their worst entries near the
    panels' edges; a curve that stops being finite; the boundaries; the filters."""
    name = "conv2d weight (stride 1, padding 0, kern"
    assert len(plots._name(name * 2)) == len(name) == 40
    bad = {"name": name, "analytic": [0.1, 0.2, -0.3, 5.0, 4.9], "numeric": [0.1, 0.2, 0.3, -5.0, -4.9]}
    good = {"name": name, "analytic": [0.1, 0.2, 0.3], "numeric": [0.1, 0.2, 0.3]}
    huge = {"name": "w", "analytic": [1e300, -1e300, 1.0], "numeric": [-1e300, 1e300, 1e-300]}
    steps = list(range(0, 1000, 10))
    figures = [
        ({"gradcheck": [bad, good, huge]}, "gradcheck: fail (seed 0)"),
        ({"curve": {"steps": steps, "losses": [2 * 0.97 ** k for k in range(60)] + ["nan"] * 40,
                    "reference": [2 * 0.9 ** k for k in range(100)]}}, "first-loss: fail (seed 2019)"),
        ({"curve": {"steps": steps, "losses": [123456.789 + k * 1e-3 for k in range(100)], "reference": None},
          "boundary": dict(BOUNDARY, reference=[1.0, 1.0, 0.0]),
          "filters": {"student": [[[[0.1, -0.2], [0.3, 0.4]]]] * 8, "reference": [[[[-0.5, 0.2], [0.1, 0.0]]]] * 8}},
         "convergence: fail (seed 42) " + "x" * 60),
    ]
    page = tmp_path / "pictures.html"
    page.write_text("<!doctype html><html><body style='margin:0'>"
                    + "".join(f"<div>{plots.draw(d, t).decode()}</div>" for d, t in figures)
                    + "<pre id='result'></pre><script>" + MEASURE + "</script></body></html>")
    run = browse(page, tmp_path / "profile", "--dump-dom")
    found = re.search(r"<pre id=\"result\">(.*?)</pre>", run.stdout, re.S)
    assert found and found.group(1), run.stderr[-2000:]
    result = json.loads(html_unescape(found.group(1)))
    assert result["texts"] > 3 * 25 and result["problems"] == [], result


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


# For each inline <svg>: every <text>'s box (as rendered, rotation included) inside the picture; no two
# overlapping by more than a pixel; a text that meets a legend's box lies inside it (its own entries).
MEASURE = """
const problems = []; let count = 0;
const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
                          Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
const inside = (a, b) => a.left >= b.left - 0.5 && a.right <= b.right + 0.5 && a.top >= b.top - 0.5 &&
                         a.bottom <= b.bottom + 0.5;
document.querySelectorAll('svg').forEach((svg, figure) => {
  const frame = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()]);
  const legends = [...svg.querySelectorAll('rect[rx]')].map(r => r.getBoundingClientRect());
  count += texts.length;
  texts.forEach(([text, box], i) => {
    if (!inside(box, frame)) problems.push([figure, 'outside', text]);
    texts.slice(i + 1).forEach(([other, second]) => {
      if (overlap(box, second)) problems.push([figure, 'overlap', text, other]);
    });
    legends.forEach(legend => {
      if (overlap(box, legend) && !inside(box, legend)) problems.push([figure, 'over a legend', text]);
    });
  });
});
document.getElementById('result').textContent = JSON.stringify({texts: count, problems: problems});
"""
