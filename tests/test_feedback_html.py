"""`dldiy grade`'s HTML feedback: complete (titles, not-executed lines, graded file, date, version,
pictures), student text escaped, hidden values withheld; and rendered by a real headless browser."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import browse
from dldiy import __version__
from dldiy.graders.batch.export import feedback_html, feedback_markdown

HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def synthetic_record() -> dict:
    """A record as the batch writes it, with student text everywhere it can reach."""
    return {
        "student": f"eve{HOSTILE}", "submission": f"/class/eve/{HOSTILE}.ipynb", "status": "fail",
        "score": 3.0, "max_score": 10.0, "error": "", "output": "", "duration_s": 1.0,
        "skipped_lines": ["cell 1, line 1: %matplotlib inline", f"cell 2, line 3: !{HOSTILE}"],
        "checks": [
            {"name": "gradcheck", "kind": "gradcheck", "title": "hand gradient vs central finite differences",
             "status": "pass", "points": 3.0, "max_points": 3.0, "message": "max rel. error 1e-10 (seeds 1, 42, 2019)",
             "details": {"seed": 1, "plot": {"gradcheck": [{"name": "w", "analytic": [0.1, 0.2, -0.3],
                                                            "numeric": [0.1, 0.2, -0.3]}]}}},
            {"name": "first-loss", "kind": "first_loss", "title": "first loss and losses at steps 1, 2",
             "status": "fail", "points": 0.0, "max_points": 3.0, "details": {},
             "message": "fails at a hidden seed (values withheld); it passes the public seeds, so check what "
                        "your code assumes about the data or hard-codes"},
            {"name": "convergence", "kind": "convergence", "title": ">= 99% accuracy in 100 steps",
             "status": "error", "points": 0.0, "max_points": 4.0, "message": f"cell 3 raised {HOSTILE}",
             "details": {"traceback": f'File "work.ipynb[cell 3]", line 2\n    {HOSTILE}\nValueError'}},
        ],
    }


def test_the_page_has_what_the_markdown_has_and_more():
    record = synthetic_record()
    page = feedback_html(record, "Exercise 1: logistic regression", graded_at="2026-11-25 16:00 UTC",
                         pictures="all")
    markdown = feedback_markdown(record, "Exercise 1: logistic regression")
    for c in record["checks"]:  # titles, which the Markdown has, and every check's own section
        assert html.escape(c["title"]) in page and c["title"] in markdown
        assert f"id='check-{c['name']}'" in page
    assert "Not executed at load" in page and "%matplotlib inline" in page
    assert "graded 2026-11-25 16:00 UTC" in page and f"dldiy {__version__}" in page
    assert "Graded file: <code>/class/eve/" in page
    (picture,) = pictures(page)  # gradcheck's, embedded
    assert "gradient of w" in "".join(picture.itertext())
    assert "Your code's traceback" in page
    # By default only the checks that did not pass get a picture (a passing check's says little).
    assert "<img" not in feedback_html(record, "Exercise 1", graded_at="today")


def pictures(page: str) -> list[ET.Element]:
    """The pictures embedded in a page: each an <img> whose data URI holds an SVG document, parsed."""
    found = re.findall(r"<img alt='[^']*' src='data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)'>", page)
    assert len(found) == page.count("<img"), "an <img> that is not an embedded SVG"
    return [ET.fromstring(base64.b64decode(data)) for data in found]


HIDDEN_SEED = 918273
STEPS = [0, 1, 2, 5, 10]
RIGHT = {"steps": STEPS, "losses": [0.693147, 0.6012, 0.5311, 0.4203, 0.3107], "n": 100}  # at public seed 1
EXPECTED_THERE = {"steps": STEPS, "losses": [0.123457, 0.1111, 0.1002, 0.0903, 0.0801], "n": 100}
MEASURED_THERE = {"steps": STEPS, "losses": [9.876543, 8.765432, 7.654321, 6.543219, 5.432198], "n": 100}


def judged_record(hidden: bool) -> dict:
    """A record as grade_one builds it (its fields, then Report.to_json()) from what the child measured
    for first-loss: right at public seed 1, wrong at seed HIDDEN_SEED, which is hidden when `hidden`;
    the judge's own verdicts, so no text of the page is written here."""
    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.judge import judge
    from dldiy.graders.sandbox.runner import Outcome

    exercise = load_exercise("exercise-1")
    outcome = Outcome(results={("first-loss", 1): {"measurement": RIGHT},
                               ("first-loss", HIDDEN_SEED): {"measurement": MEASURED_THERE}})
    expected = {"first-loss": {"1": RIGHT, str(HIDDEN_SEED): EXPECTED_THERE}}
    report = judge(exercise, [exercise.check("first-loss")], outcome, "/class/carol/work.ipynb", expected,
                   hidden=frozenset({HIDDEN_SEED}) if hidden else frozenset())
    return {"student": "carol", "graded_file": "/class/carol/work.ipynb", **report.to_json()}


@pytest.mark.parametrize("hidden", [True, False], ids=["hidden-seed", "public-seed"])
def test_a_failure_at_a_hidden_seed_is_on_the_page_without_its_values(hidden):
    """The page of a failure at a hidden seed says that it failed and that the values are withheld, and
    shows neither the seed, nor the losses measured or expected there, nor a picture of them. The same
    failure at a public seed shows all of them: what the hidden case must not."""
    page = feedback_html(judged_record(hidden), "Exercise 1", graded_at="today", pictures="all")
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "first-loss: FAIL (0/3)" in text
    secrets = [str(HIDDEN_SEED), "9.87654", "0.123457"]
    if hidden:
        assert "fails at a hidden seed (values withheld)" in text, text
        assert [s for s in secrets if s in page] == [] and pictures(page) == []
    else:
        assert "values withheld" not in text
        assert [s for s in secrets if s in text] == secrets and len(pictures(page)) == 1


def test_every_piece_of_student_text_is_escaped():
    page = feedback_html(synthetic_record(), "Exercise 1", graded_at="today")
    assert "<script" not in page and "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert page.count(html.escape(HOSTILE)) == 6  # name, title, file, message, traceback, skipped line


def test_an_ungradable_submission_gets_a_page_too():
    record = dict(synthetic_record(), checks=[], error=f"submission refused: {HOSTILE}", skipped_lines=[])
    page = feedback_html(record, "Exercise 1", graded_at="today")
    assert "could not be graded: submission refused: &lt;script&gt;" in page and "<script" not in page


# -- in a real browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded_page(tmp_path_factory, bugged) -> Path:
    """The feedback page of a real graded submission (the gradient-sign bug, as a notebook with a shell
    line), through the batch's own grade_one with a hidden seed."""
    import json

    from dldiy.graders.batch.run import batch_expectations, grade_one
    from dldiy.graders.course.exercise import load_exercise

    folder = tmp_path_factory.mktemp("feedback")
    code = (bugged("exercise-1", "gradient-sign") / "logreg.py").read_text()
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "id": "a",
         "source": f"!echo '{HOSTILE}'\n" + code}]}
    (folder / "work.ipynb").write_text(json.dumps(notebook))
    exercise = load_exercise("exercise-1")
    checks = [c.name for c in exercise.checks]
    record = grade_one(str(exercise.folder), {"student": "bob", "path": str(folder / "work.ipynb"), "error": None,
                                              "graded_file": str(folder / "work.ipynb")},
                       checks, (4242,), batch_expectations(exercise, (4242,), checks))
    page = folder / "bob.html"
    page.write_text(feedback_html(record, exercise.title, graded_at="2026-11-25 16:00 UTC"), encoding="utf-8")
    return page


def test_a_real_browser_renders_the_feedback_page(graded_page, tmp_path):
    shot = tmp_path / "feedback.png"
    run = browse(graded_page, tmp_path / "profile-1", "--hide-scrollbars", "--window-size=1100,2400",
                 f"--screenshot={shot}")
    assert shot.is_file(), run.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1100, 2400)
    assert len(png) > 30_000  # a page with text and a picture, not a blank one

    dom = browse(graded_page, tmp_path / "profile-2", "--dump-dom").stdout
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    assert "Total: 6.5/" in text  # the sign bug costs gradcheck only (one bug, one deduction)
    assert "gradcheck: FAIL (0/3)" in text and "hand gradient vs central finite differences of loss()" in text
    assert "a sign error" in text
    assert "Not executed at load: cell 1, line 1: !echo" in text
    assert f"dldiy {__version__}" in text and "graded 2026-11-25 16:00 UTC" in text
    assert "Graded file: " in text and "work.ipynb" in text
    # pictures only for checks that did not pass: the sign bug fails gradcheck alone
    assert len(re.findall(r"<img[^>]+src=\"data:image/svg\+xml;base64,", dom)) == 1
    assert "<script" not in dom.split("<body", 1)[1]  # the student's text stayed text
    assert "pwned" not in re.search(r"<title>(.*?)</title>", dom).group(1)

    # The picture itself, as the browser drew it: decoded (a natural size: the SVG's own), and in the
    # screenshot the blue of the gradient entries and the red of the rings round the worst ones.
    (image,) = measure_images(graded_page, tmp_path)
    assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] == 340, image
    counts = colour_counts(shot, image, {"blue": (0x09, 0x69, 0xDA), "red": (0xCF, 0x22, 0x2E)})
    assert counts["blue"] > 40 and counts["red"] > 40, counts  # a few entries, rings, and the legend's


def test_a_real_browser_draws_the_loss_curves_where_the_svg_puts_them(tmp_path):
    """The failing first-loss of a public seed: its picture, in a real browser, is red where the SVG puts
    the student's losses and green where it puts the reference's (the pixels at the markers' centres)."""
    page = tmp_path / "carol.html"
    page.write_text(feedback_html(judged_record(hidden=False), "Exercise 1", graded_at="today"), encoding="utf-8")
    (svg,) = pictures(page.read_text())
    shot = tmp_path / "carol.png"
    run = browse(page, tmp_path / "profile-1", "--hide-scrollbars", "--window-size=1100,1400", f"--screenshot={shot}")
    assert shot.is_file(), run.stderr[-2000:]
    (image,) = measure_images(page, tmp_path)
    assert image["complete"] and (image["naturalWidth"], image["naturalHeight"]) == (420, 340), image
    from PIL import Image

    pixels = Image.open(shot).convert("RGB")
    scale = image["width"] / image["naturalWidth"]
    for fill, colour in (("#cf222e", (0xCF, 0x22, 0x2E)), ("#1a7f37", (0x1A, 0x7F, 0x37))):
        (markers, _legend) = [p.get("d") for p in svg.iter("{http://www.w3.org/2000/svg}path") if p.get("fill") == fill]
        # circles: M x-r y a...; squares: M x-r y-r h...
        centres = [(float(x) + 2.5, float(y) + (2.5 if shape == "h" else 0))
                   for x, y, shape in re.findall(r"M(-?[\d.]+) (-?[\d.]+)([ah])", markers)]
        assert len(centres) == 5  # steps 0, 1, 2, 5, 10
        for x, y in centres:
            seen = pixels.getpixel((round(image["left"] + x * scale), round(image["top"] + y * scale)))
            assert all(abs(a - b) < 40 for a, b in zip(seen, colour)), (fill, x, y, seen)


def measure_images(page: Path, tmp_path: Path) -> list[dict]:
    """Each <img> of the page as a real browser loaded it: complete, natural size, place on the page."""
    measured = tmp_path / f"measured-{page.name}"
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", (
        "<pre id='measure'></pre><script>window.addEventListener('load', () => {"
        "document.getElementById('measure').textContent = JSON.stringify([...document.images].map(i => {"
        "const r = i.getBoundingClientRect(); return {complete: i.complete, naturalWidth: i.naturalWidth,"
        " naturalHeight: i.naturalHeight, left: r.left, top: r.top, width: r.width}; }));});</script></body>")),
        encoding="utf-8")
    run = browse(measured, tmp_path / "profile-measure", "--window-size=1100,2400", "--dump-dom")
    found = re.search(r"<pre id=\"measure\">(.*?)</pre>", run.stdout, re.S)
    assert found and found.group(1), run.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def colour_counts(shot: Path, image: dict, colours: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """How many pixels of the screenshot, within the image's place, are close to each colour."""
    from PIL import Image

    left, top = round(image["left"]), round(image["top"])
    box = (left, top, left + round(image["width"]), top + round(image["width"] * 340 / image["naturalWidth"]))
    crop = Image.open(shot).convert("RGB").crop(box)
    pixels = [crop.getpixel((x, y)) for x in range(crop.width) for y in range(crop.height)]
    return {name: sum(all(abs(a - b) < 40 for a, b in zip(p, c)) for p in pixels) for name, c in colours.items()}
