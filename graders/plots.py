"""Pictures of what the checks measured, drawn from the plain measurements the judge already has.

`plot_data` (parent side, no matplotlib) keeps, for a check's worst *public* seed, the few numbers a
picture needs: the student's loss curve and the reference's on the same seed (first-loss,
convergence), analytic against numeric gradient entries (gradcheck), the data with the student's and
the reference's hyperplane (exercises 1 and 7), the student's and the reference's conv filters
(exercise 8). It rides in the check's details, so `dldiy grade`'s records carry it to the feedback.

`draw` makes a PNG of it with matplotlib, imported only here, only when a picture is asked for, and
headless (the Agg canvas of the object API: no pyplot, no GUI, a notebook's own backend untouched).
`sparkline` is the terminal's picture of a loss curve.
"""

from __future__ import annotations

import math
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
    """A label fit for a title: letters, digits and a little punctuation, 40 characters at most
    (a '$' would start matplotlib's mathtext)."""
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
    """One PNG of everything `plot_data` kept for a check: one panel per picture, side by side."""
    from io import BytesIO

    fig = figure(data, title)
    buffer = BytesIO()
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def figure(data: dict[str, Any], title: str = ""):
    """The matplotlib Figure (Agg canvas) that `draw` saves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels: list[tuple[Any, Any]] = []  # (draw(fig, ax, data), data)
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
    fig = Figure(figsize=(4.2 * max(1, len(panels)), 3.4), dpi=80)
    FigureCanvasAgg(fig)
    for i, (painter, payload) in enumerate(panels, 1):
        painter(fig, fig.add_subplot(1, len(panels), i), payload)
    if title:
        fig.suptitle(title, fontsize=10)
    # Fixed margins: tight_layout measures every text's extent and costs as much as the drawing itself.
    fig.subplots_adjust(left=0.6 / fig.get_figwidth() * 1.4, right=0.98, bottom=0.16, top=0.82 if title else 0.9,
                        wspace=0.32)
    return fig


def pictures(checks: list[Any]) -> list[tuple[str, str, bytes]]:
    """(check name, title, PNG) for each check result (a CheckResult or a record's dict) with a picture."""
    out = []
    for c in checks:
        get = c.get if isinstance(c, dict) else lambda k, c=c: getattr(c, k)
        data = (get("details") or {}).get("plot")
        if data:
            title = f"{_name(get('name'))}: {get('status')}" + (f" (seed {get('details').get('seed')})"
                                                                if get("details").get("seed") is not None else "")
            try:
                out.append((get("name"), title, draw(data, title)))
            except ImportError:
                raise  # no matplotlib: the caller says so
            except Exception:  # noqa: BLE001 - a picture is never worth a crash of the grading
                continue
    return out


# -- painters -----------------------------------------------------------------------------------------

def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan  # None, or "nan"/"inf" spelled out for JSON


def _curve(fig, ax, c: dict[str, Any]) -> None:
    steps, losses = c["steps"], [_num(v) for v in c["losses"]]
    ax.plot(steps[: len(losses)], losses, "o-", color="#cf222e", label="yours", markersize=3)
    if c.get("reference"):
        ref = [_num(v) for v in c["reference"]]
        ax.plot(steps[: len(ref)], ref, "s--", color="#1a7f37", label="reference, same seed", markersize=3)
    finite = [v for v in losses + [_num(v) for v in c.get("reference") or []] if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
    bad = [s for s, v in zip(steps, losses) if not math.isfinite(v)]
    if bad:
        ax.axvline(bad[0], color="#cf222e", linestyle=":", label=f"not finite from step {bad[0]}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss curve")
    ax.legend(fontsize=8)


def _gradcheck(fig, ax, b: dict[str, Any]) -> None:
    import numpy as np

    a = np.array([_num(v) for v in b["analytic"]])
    n = np.array([_num(v) for v in b["numeric"]])
    k = min(len(a), len(n))
    a, n = a[:k], n[:k]
    ok = np.isfinite(a) & np.isfinite(n)
    ax.scatter(n[ok], a[ok], s=12, color="#0969da", label="entries")
    if ok.any():
        lo, hi = float(min(n[ok].min(), a[ok].min())), float(max(n[ok].max(), a[ok].max()))
        ax.plot([lo, hi], [lo, hi], color="#888", linewidth=1, label="analytic = numeric")
        rel = np.where(ok, np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n)), -1)
        circled = [i for i in np.argsort(-rel)[:3] if rel[i] > 1e-6]
        if circled:
            ax.scatter(n[circled], a[circled], s=90, facecolors="none", edgecolors="#cf222e", linewidths=1.5,
                       label="worst entries (rel. error)")
        middle = (lo + hi) / 2
        for i in circled:
            # labelled towards the panel's middle, so that a label never runs off the picture's edge
            right = n[i] > middle
            ax.annotate(f"[{i}] rel {rel[i]:.2g}", (n[i], a[i]), fontsize=7, color="#cf222e",
                        xytext=(-4 if right else 4, 4), textcoords="offset points", ha="right" if right else "left")
    ax.set_xlabel("numeric (finite differences)")
    ax.set_ylabel("analytic (yours)")
    # The block's name only (40 characters at most): a longer title runs into the next panel's.
    ax.set_title(f"gradient of {b['name']}", fontsize=9)
    ax.legend(fontsize=7)


def _boundary(ax, d: dict[str, Any], w: list[Any], who: str, colour: str) -> None:
    import numpy as np

    X = np.array(d["points"], dtype=float)
    y = np.array(d["labels"])
    if X.ndim != 2 or X.shape[1] != 2:
        ax.set_title(f"{who}: data not 2-D")
        return
    for label, c in ((0, "#9a6700"), (1, "#0969da")):
        ax.scatter(X[y == label, 0], X[y == label, 1], s=8, color=c, label=f"class {label}")
    w = [_num(v) for v in w]
    xs = np.linspace(X[:, 0].min() - 1, X[:, 0].max() + 1, 50)
    if len(w) == 3 and all(math.isfinite(v) for v in w) and abs(w[1]) > 1e-12:
        # w0 x + w1 y + bias * w2 = 0, with the exercise's bias convention (x~ = [x, bias])
        ax.plot(xs, -(w[0] * xs + d.get("bias", 1.0) * w[2]) / w[1], color=colour, linewidth=2,
                label=f"{who} boundary")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(X[:, 1].min() - 1, X[:, 1].max() + 1)
    ax.set_title(f"{who} decision boundary", fontsize=9)
    ax.legend(fontsize=7)


def _boundary_student(fig, ax, d: dict[str, Any]) -> None:
    _boundary(ax, d, d["w"], "your", "#cf222e")


def _boundary_reference(fig, ax, d: dict[str, Any]) -> None:
    _boundary(ax, d, d["reference"], "the reference's", "#1a7f37")


def _filters(fig, ax, f: dict[str, Any]) -> None:
    """Row 1: your first-layer filters (input channel 0); row 2: the reference's, same seed."""
    import numpy as np

    rows = [np.array(f["student"], dtype=float)]
    if f.get("reference") is not None:
        rows.append(np.array(f["reference"], dtype=float))
    tiles = []
    for r in rows:
        r = r.reshape(r.shape[0], -1, *r.shape[-2:])[:, 0] if r.ndim >= 3 else r
        pad = np.full((r.shape[0], r.shape[1] + 1, r.shape[2] + 1), np.nan)
        pad[:, : r.shape[1], : r.shape[2]] = r
        tiles.append(np.hstack(list(pad)))
    image = np.vstack(tiles)
    limit = np.nanmax(np.abs(image)) or 1.0
    ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks([])
    ax.set_yticks([(rows[0].shape[-2] + 1) * i + rows[0].shape[-2] / 2 - 0.5 for i in range(len(rows))])
    ax.set_yticklabels(["yours", "reference"][: len(rows)])
    ax.set_title("conv filters after training", fontsize=9)
