"""What a check decides, and the small numeric helpers every judge shares (numpy only, no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

Status = Literal["pass", "fail", "error", "skip"]


@dataclass
class Verdict:
    """One check's decision on one measurement: a status and a message a student can act on."""

    status: Status
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, message: str = "", **details: Any) -> "Verdict":
        return cls("pass", message, details)

    @classmethod
    def failed(cls, message: str, **details: Any) -> "Verdict":
        return cls("fail", message, details)

    @classmethod
    def skipped(cls, reason: str) -> "Verdict":
        return cls("skip", reason)


def charged_elsewhere(charged_by: Mapping[str, str | Iterable[str]], failed: Iterable[str],
                      parts: list[str | None]) -> list[str | None]:
    """One bug, one deduction: for each failing part of a check (exercise-6's optimizers, by name), the
    check that charges it already, or None. A part's own check (the spec's `charged_by`) counts only where
    it is among `failed` (graders/judge.py's failed_checks: it ran and measured something wrong), and only
    ONE part is ever excused: where two or more are, all are charged, or code that runs one part right and
    stubs the others would keep every point the check holds for all of them. A part may name several
    checks (a list: exercise-9's model inside train() is built from the model, the cell and the clipping,
    each judged by its own check): the first of them that failed charges it."""
    failed = set(failed)

    def owner(part: str | None) -> str | None:
        named = charged_by.get(part) if part is not None else None
        candidates = [named] if isinstance(named, str) else list(named or [])
        return next((c for c in candidates if c in failed), None)
    owners = [owner(part) for part in parts]
    return owners if len({o for o in owners if o is not None}) <= 1 else [None] * len(parts)


def case_hint(hints: Any, case: str) -> str | None:
    """A spec's `case_hints` ({a part of a case's name: the likely cause}) for the case `case`: the longest part
    its name holds (a family's cause, said in place of the check's hint), None where none does."""
    parts = [part for part in hints if isinstance(part, str) and part in case] if isinstance(hints, dict) else []
    return str(hints[max(parts, key=len)]) if parts else None


def fmt(x: float, other: float | None = None) -> str:
    """A number as a student reads it: 6 significant digits, nan/inf spelled out. Given `other` (the
    value it is compared with), as many more digits as it takes for the two to read differently:
    `expected 9.24651, measured 9.24652`, never `expected 9.2465, measured 9.2465`."""
    if x is None:
        return "None"
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    digits = 6
    if other is not None and math.isfinite(float(other)) and float(other) != x:
        while digits < 17 and f"{x:.{digits}g}" == f"{float(other):.{digits}g}":
            digits += 1
    return f"{x:.{digits}g}"


def rel_error(measured: float, expected: float) -> float:
    """|measured - expected| / |expected| (the absolute difference when expected is 0)."""
    m, e = float(measured), float(expected)
    return abs(m - e) / abs(e) if e != 0 else abs(m - e)


def versus(expected: float, measured: float) -> str:
    """`expected A, measured B (rel. error C)`, with enough digits in A and B to tell them apart."""
    e, m = float(expected), float(measured)
    text = f"expected {fmt(e, m)}, measured {fmt(m, e)}"
    if math.isfinite(e) and math.isfinite(m) and e != m:
        text += f" (rel. error {rel_error(m, e):.2g})" if e != 0 else f" (abs. error {abs(m - e):.2g})"
    return text


def as_array(values: Any) -> np.ndarray:
    """A measurement's list (possibly holding None for nan, as JSON has no nan) as float64."""
    return np.array([np.nan if v is None else v for v in np.ravel(np.asarray(values, dtype=object))],
                    dtype=np.float64)


def close(measured: float, expected: float, rtol: float, atol: float) -> bool:
    """|m - e| <= atol + rtol * |e|, the torch.testing/numpy convention; nan is never close."""
    m, e = float(measured), float(expected)
    if math.isnan(m) or math.isnan(e):
        return False
    if math.isinf(m) or math.isinf(e):
        return m == e
    return abs(m - e) <= atol + rtol * abs(e)


def first_mismatch(measured: Sequence[float], expected: Sequence[float], rtol: float,
                   atol: float) -> int | None:
    """Index of the first entry that is not close, or None when all are."""
    for i, (m, e) in enumerate(zip(measured, expected)):
        if not close(m, e, rtol, atol):
            return i
    if len(measured) != len(expected):
        return min(len(measured), len(expected))
    return None


def ratio_hint(measured: float, expected: float, n: int | None = None) -> str:
    """A likely cause read off measured/expected: a sign error, a factor n (sum vs mean), a factor 2."""
    if expected == 0 or not math.isfinite(measured) or not math.isfinite(expected):
        return ""
    r = measured / expected
    if abs(r + 1) < 1e-3:
        return "The value has the opposite sign: a sign error?"
    if n and abs(r - n) < 1e-3 * n:
        return f"The value is {n} (= n) times too large: a sum where a mean is expected?"
    if n and abs(r - 1 / n) < 1e-3 / n:
        return f"The value is {n} (= n) times too small: a mean where a sum is expected, or 1/n twice?"
    for c in (2.0, 0.5):
        if abs(r - c) < 1e-3:
            return f"The value is off by a factor {c:g}."
    return ""


def unravel(flat_index: int, shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, tuple(shape))) if shape else ()


def array_ratio_hint(measured: np.ndarray, expected: np.ndarray, names: str = "measured/expected") -> str:
    """Reads measured/expected entrywise: -1 everywhere is a sign error, a constant is a factor."""
    mask = np.abs(expected) > 1e-6
    if mask.sum() < 1:
        return ""
    r = measured[mask] / expected[mask]
    if np.all(np.abs(r + 1) < 1e-3):
        return f"The ratio {names} is -1 everywhere: a sign error."
    mean = float(np.mean(r))
    # one number's ratio is always "a constant": a factor is read only where several entries agree on it
    if mask.sum() >= 2 and abs(mean) > 1e-6 and np.std(r) < 1e-3 * abs(mean) and abs(mean - 1) > 1e-3:
        return (f"The ratio {names} is a constant {fmt(mean)}: a missing or extra constant factor "
                f"(1/n for a mean? a factor 2?).")
    good = np.abs(measured - expected) <= 1e-6 * np.maximum(1, np.abs(expected))
    if good.any() and not good.all():
        return f"{int(good.sum())} of {measured.size} entries agree: look at what differs for the others."
    return ""


def first_departure(measured: Any, expected: Any, *, rtol: float, atol: float) -> tuple[int, int] | None:
    """(row, entry) where two trajectories of the same shape (rows = steps) first differ, None where they agree:
    |measured - expected| <= atol + rtol * |expected|, nan where nan was agreeing (two runs of one broken update,
    both nan, are the same run: its own check charges the nan, a comparison of two runs of it must not)."""
    a, b = np.asarray(measured, dtype=float), np.asarray(expected, dtype=float)
    bad = ~((np.abs(a - b) <= atol + rtol * np.abs(b)) | (np.isnan(a) & np.isnan(b)))
    if not bad.any():
        return None
    step, entry = (int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
    return step, entry


def departure(measured: Any, expected: Any, *, rtol: float, atol: float,
              names: Sequence[str] | None = None) -> str | None:
    """Where two trajectories (rows = steps, row 0 the start) first differ, in words; None when they agree.
    Shared by the optimizer probes (exercise-6's against torch.optim and themselves, exercise-3's SGD)."""
    a, b = np.asarray(measured, dtype=float), np.asarray(expected, dtype=float)
    if a.shape != b.shape:
        return f"{a.shape[-1]} entries where {b.shape[-1]} were expected"
    found = first_departure(a, b, rtol=rtol, atol=atol)
    if found is None:
        return None
    step, entry = found
    where = f"entry {entry}" if names is None else names[entry]
    rel = abs(a[step, entry] - b[step, entry]) / max(abs(b[step, entry]), 1e-300)
    return (f"after step {step} (row 0: the start), {where}: {a[step, entry]:.10g} instead of {b[step, entry]:.10g} "
            f"(relative difference {rel:.2g})")
