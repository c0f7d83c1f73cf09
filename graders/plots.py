"""Pictures of what the checks measured, drawn from the plain measurements the judge already has.

`plot_data` (parent side) keeps, for a check's worst *public* seed, the few numbers a
picture needs: the student's loss curve and the reference's on the same seed (first-loss,
convergence), analytic against numeric gradient entries (gradcheck), the data with the student's and
the reference's hyperplane (exercises 1 and 7), the student's and the reference's conv filters
(exercise 8). It rides in the check's details, so `dldiy grade`'s records carry it to the feedback.

`draw` writes it as a standalone SVG document, by hand: a tiny Axes (data to pixels, ticks, lines,
markers, text) and one painter per kind of panel. No plotting library: matplotlib cost 0.46 CPU-s to
import and 40-190 ms a picture, more than grading a failing student; this costs about a millisecond.
The measurements come from untrusted code: every text is escaped, every coordinate is a finite pixel
(a value that is not finite is a gap), and the document refers to nothing outside itself.
`sparkline` is the terminal's picture of a loss curve.
"""

from __future__ import annotations

import bisect
import html
import math
import re
import sys
from typing import Any

MAX_ENTRIES = 400  # gradient entries kept per block: a picture, not an archive
MAX_POINTS = 1000  # loss values or data points kept
MAX_FILTER_VALUES = 4096
SPARKS = "▁▂▃▄▅▆▇█"


def plot_data(kind: str, measured: Any, expected: Any) -> dict[str, Any] | None:
    """What to draw for one check at one public seed, or None when there is nothing to draw.

    The measurement crossed from the child, where student code ran: it is bounded here (a few hundred
    numbers per picture, names cut to plain short text) and anything of the wrong form draws nothing."""
    try:
        return _plot_data(kind, measured, expected if isinstance(expected, dict) else {})
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _plot_data(kind: str, measured: Any, ref: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(measured, dict):
        return None
    if kind == "first_loss" and "losses" in measured:
        return {"curve": {"steps": _numbers(measured.get("steps") or range(len(measured["losses"]))),
                          "losses": _numbers(measured["losses"]), "reference": _numbers(ref.get("losses"))}}
    if kind == "gradcheck" and measured.get("blocks"):
        return {"gradcheck": [{"name": _name(b.get("name", "")), "analytic": _numbers(b["analytic"], MAX_ENTRIES),
                               "numeric": _numbers(b["numeric"], MAX_ENTRIES)} for b in measured["blocks"][:6]]}
    out: dict[str, Any] = {}
    if kind == "convergence" and measured.get("losses"):
        losses = _numbers(measured["losses"])
        budget = measured.get("steps") if isinstance(measured.get("steps"), int) else len(losses)
        out["curve"] = {"steps": [round(k * budget / len(losses)) for k in range(len(losses))],
                        "losses": losses, "reference": _numbers(ref.get("losses"))}
    if isinstance(measured.get("boundary"), dict):
        b = measured["boundary"]
        # Three decimals are plenty for a scatter plot, and keep a graded record small.
        points = [[round(float(v), 3) for v in p[:2]] for p in list(b["points"])[:MAX_POINTS]]
        out["boundary"] = {"w": _numbers(b["w"], 3), "points": points, "labels": _numbers(b["labels"], len(points)),
                           "bias": float(b.get("bias", 1.0)),
                           "reference": _numbers((ref.get("boundary") or {}).get("w"), 3)}
    if measured.get("filters") is not None and _size(measured["filters"]) <= MAX_FILTER_VALUES:
        reference = ref.get("filters")
        out["filters"] = {"student": measured["filters"],
                          "reference": reference if reference is not None and _size(reference) <= MAX_FILTER_VALUES
                          else None}
    return out or None


def _numbers(values: Any, limit: int = MAX_POINTS) -> list[Any] | None:
    """At most `limit` plain numbers (None and 'nan'-like strings kept as they are: non-finite)."""
    if values is None:
        return None
    return [v if isinstance(v, (int, float)) or v is None else str(v)[:8] for v in list(values)[:limit]]


def _name(value: Any) -> str:
    """A label fit for a title: letters, digits and a little punctuation, 40 characters at most (a
    panel's title holds it whole, and a record keeps no markup of the student's)."""
    return "".join(ch for ch in str(value) if ch.isalnum() or ch in " _-.[],()")[:40]


def _size(value: Any, limit: int = MAX_FILTER_VALUES + 1) -> int:
    """How many numbers a nested list holds, counting no further than `limit`."""
    stack, count = [value], 0
    while stack and count < limit:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
    return count


def sparkline(values: list[Any], width: int = 24) -> str:
    """A loss curve in unicode blocks (log scale when positive); non-finite values as '!'."""
    vals = [_num(v) for v in values]
    if len(vals) > width:
        vals = [vals[round(i * (len(vals) - 1) / (width - 1))] for i in range(width)]
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return "!" * len(vals)
    log = min(finite) > 0 and max(finite) / min(finite) > 10
    f = (lambda v: math.log(v)) if log else (lambda v: v)
    lo, hi = f(min(finite)), f(max(finite))
    span = hi - lo or 1.0
    return "".join(SPARKS[min(7, int((f(v) - lo) / span * 7.999))] if math.isfinite(v) else "!" for v in vals)


def curve_of(details: dict[str, Any]) -> list[float] | None:
    """The student's loss curve in a check's details, if it has one."""
    return ((details.get("plot") or {}).get("curve") or {}).get("losses")


def draw(data: dict[str, Any], title: str = "") -> bytes:
    """One SVG document (UTF-8) of everything `plot_data` kept for a check: one panel per picture, side by
    side, under the title when there is one."""
    panels: list[tuple[Any, Any]] = []  # (painter(axes, payload), payload)
    if "curve" in data:
        panels.append((_curve, data["curve"]))
    for block in data.get("gradcheck", [])[:3]:
        panels.append((_gradcheck, block))
    if "boundary" in data:
        panels.append((_boundary_student, data["boundary"]))
        if data["boundary"].get("reference"):
            panels.append((_boundary_reference, data["boundary"]))
    if "filters" in data:
        panels.append((_filters, data["filters"]))
    width = PANEL_W * max(1, len(panels))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{PANEL_H}" '
           f'viewBox="0 0 {width} {PANEL_H}" font-family="sans-serif" fill="{INK}">',
           f'<rect width="{width}" height="{PANEL_H}" fill="#fff"/>']
    top = 8
    if title:
        size, text = _fit(str(title), 14, width - 20)
        out.append(f'<text x="{width / 2:.1f}" y="22" font-size="{size}" text-anchor="middle">{_esc(text)}</text>')
        top = 32
    for i, (painter, payload) in enumerate(panels):
        out.append("<g>")  # one group per panel (no id, no class: nothing to clash with a page's own)
        painter(_Axes(out, PANEL_W * i, top), payload)
        out.append("</g>")
    out.append("</svg>\n")
    return "".join(out).encode("utf-8")


def pictures(checks: list[Any]) -> list[tuple[str, str, bytes]]:
    """(check name, title, SVG) for each check result (a CheckResult or a record's dict) with a picture; a
    picture that cannot be drawn (a measurement of the wrong form) is left out."""
    out = []
    for c in checks:
        get = c.get if isinstance(c, dict) else lambda k, c=c: getattr(c, k)
        data = (get("details") or {}).get("plot")
        if data:
            title = f"{_name(get('name'))}: {get('status')}" + (f" (seed {get('details').get('seed')})"
                                                                if get("details").get("seed") is not None else "")
            try:
                out.append((get("name"), title, draw(data, title)))
            except Exception:  # noqa: BLE001 - a picture is never worth a crash of the grading
                continue
    return out


# -- the SVG: a tiny Axes, then one painter per kind of panel ---------------------------------------------
# Every number written into the SVG is a pixel computed from finite data mapped into the panel (non-finite
# values are gaps, never coordinates), and every text goes through _esc: titles and block names come from
# measurements of untrusted code. No ids, hrefs, scripts or fonts: pictures can sit side by side inline in
# one notebook, and the page's <img> shows them as they are.

PANEL_W, PANEL_H = 420, 340  # pixels per panel
INK, RED, GREEN, BLUE, OCHRE, GREY = "#24292f", "#cf222e", "#1a7f37", "#0969da", "#9a6700", "#888888"
BIGGEST = sys.float_info.max
# RdBu_r: the diverging map of the filters' heat map, blue (negative) through white to red (positive).
DIVERGING = [(0x05, 0x30, 0x61), (0x21, 0x66, 0xAC), (0x43, 0x93, 0xC3), (0x92, 0xC5, 0xDE), (0xD1, 0xE5, 0xF0),
             (0xF7, 0xF7, 0xF7), (0xFD, 0xDB, 0xC7), (0xF4, 0xA5, 0x82), (0xD6, 0x60, 0x4D), (0xB2, 0x18, 0x2B),
             (0x67, 0x00, 0x1F)]
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return math.nan  # None, or "nan"/"inf" spelled out for JSON


def _esc(text: str) -> str:
    """Text as SVG character data or an attribute value: escaped, and without the characters XML forbids."""
    return html.escape(_NOT_XML.sub("\ufffd", text))


def _width(text: str, size: float) -> float:
    """A text's width in pixels, estimated (a sans-serif averages under 0.6 em a character)."""
    return 0.6 * size * len(text)


def _fit(text: str, size: float, room: float) -> tuple[float, str]:
    """(font size, text) that fit in `room` pixels: a smaller font, down to 8 px, then a cut text."""
    if _width(text, size) > room:
        size = max(8.0, round(room / (0.6 * len(text)), 1))
        if _width(text, size) > room:
            text = text[: max(1, int(room / (0.6 * size)) - 1)] + "…"
    return size, text


def _nonsingular(lo: float, hi: float) -> tuple[float, float]:
    """A range with room in it: one value (or a span lost in rounding) is widened around itself."""
    if hi - lo <= max(1e-9 * max(abs(lo), abs(hi)), 1e-300):
        middle = lo / 2 + hi / 2
        half = abs(middle) * 0.05 if abs(middle) > 1e-290 else 0.5
        return max(middle - half, -BIGGEST), min(middle + half, BIGGEST)
    return lo, hi


def _limits(values: list[float], margin: float = 0.05) -> tuple[float, float]:
    """The finite values' range with `margin` of it added on each side, as an axis shows it; (0, 1) when none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = _nonsingular(min(finite), max(finite))
    pad = hi * margin - lo * margin  # not (hi - lo) * margin: hi - lo overflows for +-1e308
    return max(lo - pad, -BIGGEST), min(hi + pad, BIGGEST)


def _ticks(lo: float, hi: float, bins: int) -> tuple[list[float], float]:
    """Round values within [lo, hi], `bins` + 1 at most, and their step: the smallest step of 1, 2, 2.5 or 5
    times a power of ten that gives no more (matplotlib's MaxNLocator)."""
    raw = hi / bins - lo / bins
    if not 0 < raw < math.inf:
        return [], 1.0  # no range to tick (the limits always have one: a guard, not a case)
    unit = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):  # 10 units > raw always fits
        step = m * unit
        first, last = math.ceil(lo / step), math.floor(hi / step)
        if last - first <= bins:
            break
    return [k * step for k in range(first, last + 1)], step


def _label(v: float, step: float) -> str:
    """A tick's label, as short as its step allows: 0.4, 7.5, 250, 1000.001, 1.2e-5, 1e300."""
    if abs(v) < step * 1e-6:
        return "0"
    exponent, unit = math.floor(math.log10(abs(v))), math.floor(math.log10(step))
    digits = exponent - unit + (2 if round(step / 10.0 ** unit, 6) == 2.5 else 1)  # 7.5 for a step of 2.5
    if 0 <= exponent < 5:
        digits = max(digits, exponent + 1)  # 250, not 2.5e+02
    text = f"{v:.{min(max(digits, 1), 17)}g}"
    return text.replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def _affine(lo: float, hi: float, length: float) -> tuple[float, float, float]:
    """(s, a, k): a value v of the range [lo, hi] is (v / s - a) * k pixels from the axis' start along its
    `length`. Scaled by s first: hi - lo overflows for a range of +-1e308."""
    s = max(abs(lo), abs(hi))
    return s, lo / s, length / (hi / s - lo / s)


def _circles(points: list[tuple[float, float]], r: float) -> str:
    """Path data of one circle per point (one <path> for a whole set: small and fast to write)."""
    arcs = f"a{r} {r} 0 1 0 {2 * r} 0a{r} {r} 0 1 0 {-2 * r} 0"
    return "".join(f"M{x - r:.1f} {y:.1f}{arcs}" for x, y in points)


def _squares(points: list[tuple[float, float]], r: float) -> str:
    return "".join(f"M{x - r:.1f} {y - r:.1f}h{2 * r}v{2 * r}h{-2 * r}z" for x, y in points)


Entry = tuple[str, str, str, str]  # a legend's line: label, colour, dash ("" solid, "none" no line), marker
Box = tuple[float, float, float, float]  # left, top, right, bottom, in pixels


class _Axes:
    """One panel: a frame in pixels, the data ranges mapped onto it (y linear or log10), ticks and labels,
    and the pixels inked so far (which the legend avoids)."""

    def __init__(self, out: list[str], slot: float, top: float) -> None:
        self.out, self.slot = out, slot
        self.top, self.bottom = top + 26, PANEL_H - 46  # room for the panel's title; ticks and x label
        self.left, self.right = slot + 60, slot + PANEL_W - 22
        self.inked: list[tuple[float, float]] = []
        self.keep_clear: list[tuple[float, float]] = []  # what the picture is about (circled entries)
        self.xticks: list[tuple[float, str]] = []
        self.yticks: list[tuple[float, str]] = []
        self.ylog = False
        self.limits((0.0, 1.0), (0.0, 1.0))

    def limits(self, x: tuple[float, float], y: tuple[float, float], ylog: bool = False) -> None:
        """Fix the data ranges (y in log10 units when `ylog`) and their ticks; the frame's left edge moves
        to make room for the widest y tick label."""
        self.x, self.y, self.ylog = x, y, ylog
        # a tick every 33 pixels or more (three times the labels' font, as matplotlib's), and on x fewer
        # when the labels would not fit between them
        self.yticks = self._decades(y) if ylog else self._ticks(y, max(2, int((self.bottom - self.top) / 33)))
        widest = max((_width(label, 11) for _, label in self.yticks), default=0.0)
        self.left = self.slot + 26 + min(widest, 120) + 8
        bins = max(2, int((self.right - self.left) / 33))
        self.xticks = self._ticks(x, bins)
        while bins > 2 and len(self.xticks) > 1 and (self.px(self.xticks[1][0]) - self.px(self.xticks[0][0])
                                                      < max(_width(label, 11) for _, label in self.xticks) + 12):
            bins -= 1
            self.xticks = self._ticks(x, bins)

    @staticmethod
    def _ticks(span: tuple[float, float], count: int) -> list[tuple[float, str]]:
        values, step = _ticks(*span, count)
        return [(v, _label(v, step)) for v in values]

    @staticmethod
    def _decades(span: tuple[float, float]) -> list[tuple[float, str]]:
        """Ticks of a log axis (span in log10 units): powers of ten, every k-th when there are many, and
        2 and 5 times them when fewer than two powers of ten fall in the range."""
        lo, hi = span
        every = max(1, math.ceil((math.floor(hi) - math.ceil(lo) + 1) / 6))
        ticks = [(float(k), f"1e{k}") for k in range(math.ceil(lo), math.floor(hi) + 1) if k % every == 0]
        if len(ticks) < 2:
            ticks = sorted(ticks + [(k + math.log10(m), _label(m * 10.0 ** k, m * 10.0 ** k))
                                    for k in range(math.floor(lo), math.floor(hi) + 1) for m in (2, 5)
                                    if lo <= k + math.log10(m) <= hi])
        return ticks

    def px(self, x: float) -> float:
        s, a, k = _affine(*self.x, self.right - self.left)
        return self.left + (x / s - a) * k

    def py(self, y: float) -> float:
        return self._y(math.log10(y) if self.ylog else y)

    def _y(self, y: float) -> float:
        """The pixel row of y in the axis' own units (log10 units on a log axis)."""
        s, a, k = _affine(*self.y, self.bottom - self.top)
        return self.bottom - (y / s - a) * k

    def _map(self, xs: list[float], ys: list[float]) -> list[tuple[float, float] | None]:
        """Each point's pixel (px and py, inlined: a picture maps up to thousands), or None where it cannot
        be drawn: a value not finite, or not positive on a log axis."""
        (sx, ax, kx), (sy, ay, ky) = _affine(*self.x, self.right - self.left), _affine(*self.y, self.bottom - self.top)
        left, bottom, log, finite = self.left, self.bottom, self.ylog, math.isfinite
        return [(left + (x / sx - ax) * kx, bottom - ((math.log10(y) if log else y) / sy - ay) * ky)
                if finite(x) and finite(y) and (y > 0 or not log) else None for x, y in zip(xs, ys)]

    def pixels(self, xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
        """The drawable points in pixels (the others left out), recorded as inked."""
        points = [p for p in self._map(xs, ys) if p is not None]
        self.inked += points
        return points

    def line(self, xs: list[float], ys: list[float], colour: str, dash: str = "", marker: str = "") -> None:
        """A polyline through the points, broken where a value is not finite (a gap, as matplotlib does),
        with a marker at each point when one is named."""
        runs: list[list[tuple[float, float]]] = [[]]
        for point in self._map(xs, ys):
            if point is not None:
                runs[-1].append(point)
            elif runs[-1]:
                runs.append([])
        for run in runs:
            self.inked += run
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                self.out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"'
                                f' stroke-linejoin="round"{_dash(dash)}/>')
        if marker:
            self._markers([p for run in runs for p in run], colour, marker, 2.5)

    def segment(self, a: tuple[float, float], b: tuple[float, float], colour: str, width: float = 1.0,
                dash: str = "") -> None:
        """A straight line between two pixels; points every few pixels along it count as inked."""
        (x0, y0), (x1, y1) = a, b
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / 6))
        self.inked += [(x0 + (x1 - x0) * t / n, y0 + (y1 - y0) * t / n) for t in range(n + 1)]
        self.out.append(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{colour}" '
                        f'stroke-width="{width}"{_dash(dash)}/>')

    def markers(self, xs: list[float], ys: list[float], colour: str, shape: str = "circle", r: float = 2.5) -> None:
        """A marker at each drawable point: filled circles or squares, or rings around them (which the legend
        avoids above anything else)."""
        self._markers(self.pixels(xs, ys), colour, shape, r)

    def _markers(self, points: list[tuple[float, float]], colour: str, shape: str, r: float) -> None:
        if not points:
            return
        if shape == "ring":
            self.keep_clear += points
        if shape == "square":
            self.out.append(f'<path d="{_squares(points, r)}" fill="{colour}"/>')
        elif shape == "ring":
            self.out.append(f'<path d="{_circles(points, r)}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        else:
            self.out.append(f'<path d="{_circles(points, r)}" fill="{colour}"/>')

    def text(self, x: float, y: float, text: str, size: float = 11, anchor: str = "middle", colour: str = INK,
             extra: str = "") -> None:
        fill = "" if colour == INK else f' fill="{colour}"'
        self.out.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{fill}{extra}>'
                        f'{_esc(text)}</text>')

    def frame(self, title: str, xlabel: str = "", ylabel: str = "", title_size: float = 13) -> None:
        """The box, its ticks and tick labels, the axis labels and the panel's title."""
        o, left, right, top, bottom = self.out, self.left, self.right, self.top, self.bottom
        o.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
                 f'fill="none" stroke="{INK}" stroke-width="1"/>')
        marks = []
        for v, label in self.xticks:
            x = self.px(v)
            marks.append(f"M{x:.1f} {bottom:.1f}v4")
            # kept inside the panel's slot: a label at the frame's edge would run into the next panel
            half = _width(label, 11) / 2
            self.text(min(max(x, self.slot + half + 2), self.slot + PANEL_W - half - 2), bottom + 16, label)
        if self.ylog:
            lo, hi = self.y
            decades = range(math.floor(lo), math.ceil(hi) + 1)
            if len(decades) <= 8:  # the minor ticks, 2..9 times each power of ten
                marks += [f"M{left:.1f} {self._y(k + math.log10(m)):.1f}h-2" for k in decades for m in range(2, 10)
                          if lo <= k + math.log10(m) <= hi]
        for v, label in self.yticks:
            y = self._y(v)
            marks.append(f"M{left:.1f} {y:.1f}h-4")
            self._tick_label(left - 6, y + 4, label)
        if marks:
            o.append(f'<path d="{"".join(marks)}" stroke="{INK}" stroke-width="1"/>')
        if xlabel:
            self.text((left + right) / 2, PANEL_H - 10, xlabel, 12)
        if ylabel:
            middle = (top + bottom) / 2
            self.text(self.slot + 14, middle, ylabel, 12, extra=f' transform="rotate(-90 {self.slot + 14} {middle:.1f})"')
        size, text = _fit(title, title_size, PANEL_W - 16)
        self.text(min(max((left + right) / 2, self.slot + _width(text, size) / 2 + 8),
                      self.slot + PANEL_W - _width(text, size) / 2 - 8), top - 9, text, size)

    def _tick_label(self, x: float, y: float, label: str) -> None:
        if label.startswith("1e") and self.ylog:  # a power of ten: 10 with the exponent raised
            self.out.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" text-anchor="end">10'
                            f'<tspan dy="-5" font-size="8">{_esc(label[2:])}</tspan></text>')
        else:
            self.text(x, y, label, 11, "end")

    def legend_box(self, entries: list[Entry]) -> Box:
        """Where the legend of these entries goes, as (left, top, right, bottom): of the frame's corners and
        the middles of its sides, the place that covers the fewest inked pixels, a point to keep clear
        counting as 20 (upper right on a tie)."""
        height = 8 + 15 * len(entries)
        width = 44 + max((_width(label, 10) for label, *_ in entries), default=0)
        inside = 6
        right, left, middle = self.right - inside - width, self.left + inside, (self.left + self.right - width) / 2
        top, bottom, centre = self.top + inside, self.bottom - inside - height, (self.top + self.bottom - height) / 2
        corners = [(right, top), (left, top), (right, bottom), (left, bottom), (middle, top), (middle, bottom),
                   (right, centre), (left, centre)]

        # At most ~150 of the inked points (their proportions are what matters), sorted by x: a place's count
        # looks only at the points in its columns. Counting every point took a quarter of a picture's time.
        inked = sorted(self.inked[:: len(self.inked) // 150 + 1] + self.keep_clear * 20)
        columns = [x for x, _ in inked]

        def covered(corner: tuple[float, float]) -> int:
            x, y = corner
            within = inked[bisect.bisect_left(columns, x): bisect.bisect_right(columns, x + width)]
            return sum(y <= py <= y + height for _, py in within)

        x, y = min(corners, key=covered)
        return x, y, x + width, y + height

    def legend(self, entries: list[Entry], box: Box | None = None) -> None:
        """A legend of (label, colour, line dash or "none" for no line, marker shape or ""), at `box` or
        where legend_box puts it."""
        if not entries:
            return
        x, y, right, bottom = box or self.legend_box(entries)
        width, height = right - x, bottom - y
        o = self.out
        o.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" rx="3" fill="#fff" '
                 f'fill-opacity="0.85" stroke="#d0d7de"/>')
        for i, (label, colour, dash, marker) in enumerate(entries):
            row = y + 12 + 15 * i
            if dash != "none":
                o.append(f'<line x1="{x + 6:.1f}" y1="{row:.1f}" x2="{x + 30:.1f}" y2="{row:.1f}" stroke="{colour}" '
                         f'stroke-width="1.8"{_dash(dash)}/>')
            if marker == "square":
                o.append(f'<path d="{_squares([(x + 18, row)], 2.5)}" fill="{colour}"/>')
            elif marker == "ring":
                o.append(f'<path d="{_circles([(x + 18, row)], 6)}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            elif marker:
                o.append(f'<path d="{_circles([(x + 18, row)], 2.5)}" fill="{colour}"/>')
            self.text(x + 36, row + 3.5, label, 10, "start")


def _dash(dash: str) -> str:
    return f' stroke-dasharray="{dash}"' if dash else ""


def _curve(ax: _Axes, c: dict[str, Any]) -> None:
    """The student's losses (red, circles) and the reference's on the same seed (green, dashed, squares)
    against the step; a log y axis when every finite loss is positive and they span more than a factor 20;
    a dotted red line at the first step whose loss is not finite."""
    steps = [_num(s) for s in c["steps"]]
    losses = [_num(v) for v in c["losses"]][: len(steps)]
    reference = [_num(v) for v in c.get("reference") or []][: len(steps)]
    finite = [v for v in losses + reference if math.isfinite(v)]
    log = bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 20
    bad = next((s for s, v in zip(steps, losses) if not math.isfinite(v)), None)
    ax.limits(_limits(steps[: max(len(losses), len(reference))]),
              _limits([math.log10(v) for v in finite] if log else finite), ylog=log)
    entries = []
    if losses:
        ax.line(steps, losses, RED, marker="circle")
        entries.append(("yours", RED, "", "circle"))
    if reference:
        ax.line(steps, reference, GREEN, "5 3", "square")
        entries.append(("reference, same seed", GREEN, "5 3", "square"))
    if bad is not None and math.isfinite(bad):
        x = ax.px(bad)
        ax.segment((x, ax.top), (x, ax.bottom), RED, 1.5, "2 3")
        entries.append((f"not finite from step {bad:g}", RED, "2 3", ""))
    ax.frame("loss curve", "step", "loss")
    ax.legend(entries)


def _gradcheck(ax: _Axes, b: dict[str, Any]) -> None:
    """One gradient block: each entry at (numeric, analytic) in blue, the diagonal analytic = numeric in
    grey, and the (up to) 3 entries of largest relative error above 1e-6 circled in red and labelled with
    their index and error, the label towards the panel's middle so that it stays inside the picture."""
    analytic, numeric = [_num(v) for v in b["analytic"]], [_num(v) for v in b["numeric"]]
    k = min(len(analytic), len(numeric))
    analytic, numeric = analytic[:k], numeric[:k]
    both = [v for a, n in zip(analytic, numeric) if math.isfinite(a) and math.isfinite(n) for v in (a, n)]
    # one range for both axes, as matplotlib's autoscale to the diagonal gives: it runs corner to corner
    ax.limits(_limits(both), _limits(both))
    ax.markers(numeric, analytic, BLUE, r=3)
    entries = [("entries", BLUE, "none", "circle")]
    if both:
        lo, hi = min(both), max(both)
        ax.segment((ax.px(lo), ax.py(lo)), (ax.px(hi), ax.py(hi)), GREY)
        entries.append(("analytic = numeric", GREY, "", ""))
    circled = worst_entries(analytic, numeric)
    if circled:
        ax.markers([numeric[i] for i in circled], [analytic[i] for i in circled], RED, "ring", 7)
        entries.append(("worst entries (rel. error)", RED, "none", "ring"))
    legend = ax.legend_box(entries)
    placed = [legend]
    for i in circled:
        text = f"[{i}] rel {_relative(analytic[i], numeric[i]):.1e}"
        placed.append(_label_box(ax, ax.px(numeric[i]), ax.py(analytic[i]), text, placed))
        ax.text(placed[-1][0], placed[-1][3] - 2, text, 10, "start", RED)
    ax.frame(f"gradient of {b['name']}", "numeric (finite differences)", "analytic (yours)", 12)
    ax.legend(entries, legend)


def _label_box(ax: _Axes, x: float, y: float, text: str, taken: list[Box]) -> Box:
    """Where the label of a circled point at pixel (x, y) goes, as (left, top, right, bottom): beside its
    ring, on the side of the panel's middle first (so that it never runs off the picture), above or below
    it, then further away; the first place inside the frame that overlaps none of `taken` (the legend, the
    other labels), else the first inside the frame."""
    width, height = _width(text, 10), 12.0
    towards, away = (x - 9 - width, x + 9) if x > (ax.left + ax.right) / 2 else (x + 9, x - 9 - width)
    tops = [y - 19, y + 7]
    places = [(left, top) for k in range(8) for left in (towards, away)
              for top in (tops if k == 0 else [tops[0] - 12 * k, tops[1] + 12 * k])]
    boxes = [(left, top, left + width, top + height) for left, top in places
             if ax.left + 1 <= left <= ax.right - width - 1 and ax.top + 1 <= top <= ax.bottom - height - 1]
    free = [b for b in boxes if not any(b[0] < r and b[2] > l and b[1] < bt and b[3] > t for l, t, r, bt in taken)]
    return (free or boxes or [(towards, ax.top + 1, towards + width, ax.top + 1 + height)])[0]


def _relative(a: float, n: float) -> float:
    return abs(a - n) / max(1e-8, abs(a) + abs(n))


def worst_entries(analytic: list[float], numeric: list[float], count: int = 3) -> list[int]:
    """The indices of the `count` entries of largest relative error |a - n| / max(1e-8, |a| + |n|) above
    1e-6, worst first; entries with a non-finite value are not ranked."""
    errors = [(_relative(a, n), i) for i, (a, n) in enumerate(zip(analytic, numeric))
              if math.isfinite(a) and math.isfinite(n)]
    errors = [(e, i) for e, i in errors if e > 1e-6 and math.isfinite(e)]
    return [i for _, i in sorted(errors, key=lambda e: (-e[0], e[1]))[:count]]


def _clip(ax: _Axes, a: float, c: float, d: float) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The pixels where the line a x + c y + d = 0 enters and leaves the frame, or None when it misses it."""
    s = max(abs(a), abs(c), abs(d))
    if not s or not math.isfinite(s):
        return None
    a, c, d = a / s, c / s, d / s  # in [-1, 1]: a x + d stays finite for any finite x
    (x0, x1), (y0, y1) = ax.x, ax.y
    found = []
    if c:
        found += [(x, -(a * x + d) / c) for x in (x0, x1)]
    if a:
        found += [(-(c * y + d) / a, y) for y in (y0, y1)]
    inside = sorted({(x, y) for x, y in found if math.isfinite(x) and math.isfinite(y)
                     and x0 <= x <= x1 and y0 <= y <= y1})
    if len(inside) < 2 or inside[0] == inside[-1]:
        return None
    (xa, ya), (xb, yb) = inside[0], inside[-1]
    return (ax.px(xa), ax.py(ya)), (ax.px(xb), ax.py(yb))


def _boundary(ax: _Axes, d: dict[str, Any], w: list[Any], who: str, colour: str) -> None:
    """The 2-D data, class 0 in ochre and class 1 in blue, and the hyperplane w0 x + w1 y + bias w2 = 0 of
    `w` (the exercise's bias convention, x~ = [x, bias]) across the panel, when w has 3 finite entries
    and w1 is not 0; x and y from each coordinate's range widened by 1."""
    points = [[_num(v) for v in p] for p in d["points"]]
    if not points or any(len(p) != 2 for p in points):
        ax.frame(f"{who}: data not 2-D")
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    labels = [_num(v) for v in d["labels"]]

    def widened(values: list[float]) -> tuple[float, float]:
        lo, hi = _limits(values, 0.0)
        return _nonsingular(max(lo - 1, -BIGGEST), min(hi + 1, BIGGEST))

    ax.limits(widened(xs), widened(ys))
    entries = []
    for label, c in ((0, OCHRE), (1, BLUE)):
        chosen = [i for i, v in enumerate(labels[: len(points)]) if v == label]
        ax.markers([xs[i] for i in chosen], [ys[i] for i in chosen], c, r=2.2)
        entries.append((f"class {label}", c, "none", "circle"))
    w = [_num(v) for v in w]
    if len(w) == 3 and all(math.isfinite(v) for v in w) and abs(w[1]) > 1e-12:
        ends = _clip(ax, w[0], w[1], _num(d.get("bias", 1.0)) * w[2])
        if ends:
            ax.segment(*ends, colour, 2.2)
        entries.append((f"{who} boundary", colour, "", ""))
    ax.frame(f"{who} decision boundary", title_size=12)
    ax.legend(entries)


def _boundary_student(ax: _Axes, d: dict[str, Any]) -> None:
    _boundary(ax, d, d["w"], "your", RED)


def _boundary_reference(ax: _Axes, d: dict[str, Any]) -> None:
    _boundary(ax, d, d["reference"], "the reference's", GREEN)


def _filters(ax: _Axes, f: dict[str, Any]) -> None:
    """A heat map of the first-layer filters (input channel 0), blue negative to red positive on a scale
    symmetric around 0: the student's in a row, one cell apart, and the reference's (same seed) under it."""
    rows = [_tiles(f["student"])] + ([_tiles(f["reference"])] if f.get("reference") is not None else [])
    names = ["yours", "reference"][: len(rows)]
    height = max((len(t) for row in rows for t in row), default=0)
    cols = max((sum(len(t[0]) + 1 for t in row) - 1 for row in rows if row), default=0)
    lines = len(rows) * (height + 1) - 1
    limit = max((abs(v) for row in rows for t in row for line in t for v in line if math.isfinite(v)),
                default=0.0) or 1.0
    ax.left = ax.slot + 20 + max(_width(n, 11) for n in names)
    cell = min((ax.right - ax.left) / max(cols, 1), (ax.bottom - ax.top) / max(lines, 1))
    # square cells, the image centred in the room left by the labels (as imshow's equal aspect)
    left = (ax.left + ax.right - cell * cols) / 2
    top = (ax.top + ax.bottom - cell * lines) / 2
    o = ax.out
    for r, row in enumerate(rows):
        x0, y0 = left, top + r * (height + 1) * cell
        for tile in row:
            for i, line in enumerate(tile):
                for j, v in enumerate(line):
                    if v == v:  # a nan cell is left blank, as imshow does
                        o.append(f'<rect x="{x0 + j * cell:.1f}" y="{y0 + i * cell:.1f}" width="{cell + 0.3:.1f}" '
                                 f'height="{cell + 0.3:.1f}" fill="{_diverging(v / limit)}"/>')
            x0 += (len(tile[0]) + 1) * cell
        ax.text(left - 6, y0 + height * cell / 2 + 4, names[r], 11, "end")
    o.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{cell * cols:.1f}" height="{cell * lines:.1f}" '
             f'fill="none" stroke="{INK}" stroke-width="1"/>')
    size, text = _fit("conv filters after training", 12, PANEL_W - 16)
    ax.text(ax.slot + PANEL_W / 2, top - 9, text, size)


def _tiles(filters: Any) -> list[list[list[float]]]:
    """Each filter's first input channel as rows of numbers: a (out, ..., kh, kw) array gives `out` tiles of
    kh x kw (the middle axes flattened, the first taken); a 2-D one is one tile. ValueError when ragged or not
    numbers; no tile when empty."""
    shape, flat = _grid(filters)
    if len(shape) < 2 or 0 in shape:
        return []
    kh, kw = shape[-2:]
    count, stride = (shape[0], len(flat) // shape[0]) if len(shape) >= 3 else (1, 0)
    return [[flat[k * stride + i * kw: k * stride + (i + 1) * kw] for i in range(kh)] for k in range(count)]


def _grid(value: Any) -> tuple[list[int], list[float]]:
    """A nested list's shape and its numbers in order."""
    if not isinstance(value, list):
        return [], [math.nan if value is None else float(value)]  # None: JSON's nan; a word: ValueError
    parts = [_grid(v) for v in value]
    if any(p[0] != parts[0][0] for p in parts):
        raise ValueError("a ragged array of filters")
    return [len(value), *(parts[0][0] if parts else [])], [v for p in parts for v in p[1]]


def _diverging(t: float) -> str:
    """The colour of t in [-1, 1] (beyond: the ends) on DIVERGING, linearly between its anchors."""
    t = (min(max(t, -1.0), 1.0) + 1) / 2 * (len(DIVERGING) - 1)
    k = min(int(t), len(DIVERGING) - 2)
    (r0, g0, b0), (r1, g1, b1), f = DIVERGING[k], DIVERGING[k + 1], t - k
    return f"#{round(r0 + (r1 - r0) * f):02x}{round(g0 + (g1 - g0) * f):02x}{round(b0 + (b1 - b0) * f):02x}"
