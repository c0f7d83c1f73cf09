"""`from dldiy import check; check("exercise-1")` inside a notebook: grade what this notebook defines.

The checks run in the sandboxed child, as on the command line, so the kernel's code is handed over as
a notebook file: cell k of that file is the kernel's input `In[k]`, so a traceback's "cell 7" is the
student's `In [7]`. The kernel's history is a log, not a program (cells re-run, cells that raised,
a training loop run ten times), so only its *definitions* are re-run: imports, `def`, `class`, docstrings and
assignments of constants (`EPS = 1e-12`, `dtype = torch.float64`); every other statement is left out
(blanked, keeping line numbers), and the last definition of a name wins, as in the kernel.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the model, not imported at run time: the student's process imports this module too
    from dldiy.graders.report import CheckResult, Report

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def definitions_only(source: str) -> tuple[str, int]:
    """`source` with every top-level statement that is not a definition blanked (line numbers kept);
    and how many statements were left out. A cell that does not parse defined nothing: all blank."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "", 1
    lines = source.split("\n")
    keep = [False] * len(lines)
    dropped = 0
    for node in tree.body:
        if isinstance(node, _KEPT) or _is_constant_assignment(node) or _is_docstring(node):
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            for i in range(start - 1, node.end_lineno):
                keep[i] = True
        else:
            dropped += 1
    return "\n".join(line if k else "" for line, k in zip(lines, keep)), dropped


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_constant_assignment(node: ast.stmt) -> bool:
    """`NAME = literal` or `NAME = a.b.c` (a dtype, a constant of a module): cheap and side-effect free."""
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        return False
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    value = node.value
    while isinstance(value, ast.Attribute):
        value = value.value
    if isinstance(value, ast.Name):
        return True
    try:
        ast.literal_eval(node.value)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def history_notebook(inputs: list[str]) -> tuple[dict, int]:
    """A version-4 notebook whose code cell k holds the definitions of `inputs[k]` (IPython's `In`,
    where `In[0]` is empty); and how many statements were left out."""
    cells, dropped = [], 0
    for source in inputs[1:]:
        kept, n = definitions_only(source)
        dropped += n
        cells.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                      "source": kept})
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}, dropped


class Result:
    """What `check()` returns: a view of the run's Report (graders/report.py, the one result model:
    `result.report.to_json()` is what `dldiy check --json` prints), its score, and `require(name)` for
    autograder cells (nbgrader).

    Where nothing ran there is no report and the result is inert: score 0 of 0, and `require` passes.
    That is inside the grading child (a notebook being graded re-runs its own `check(...)` cells: the
    grade is decided by the parent, never by what this process computes, so the locked cells of a
    graded notebook run through), and under `nbgrader autograde` for every call but the autograder
    cell's (a part's `check(...)` cell: its checks would run again in that cell; `why` says so)."""

    def __init__(self, report: "Report | None", exercise: str = "",
                 why: str = "graded by the parent process, not here"):
        self.report = report
        self.exercise = report.exercise if report is not None else exercise
        self.why = why

    @property
    def graded_here(self) -> bool:
        return self.report is not None

    @property
    def score(self) -> float:
        return self.report.score if self.report is not None else 0.0

    @property
    def max_score(self) -> float:
        return self.report.max_score if self.report is not None else 0.0

    @property
    def checks(self) -> list:
        return list(self.report.checks) if self.report is not None else []

    def status(self, name: str) -> str:
        return self._find(name).status if self.report is not None else "not run here"

    def require(self, name: str) -> None:
        """Raise AssertionError with the check's message unless it passed (a skip earns no points)."""
        if self.report is None:
            return
        c = self._find(name)
        if c.status != "pass":
            raise AssertionError(f"{name}: {c.status}: {c.message}")

    def _find(self, name: str) -> "CheckResult":
        if self.report is None:
            raise KeyError(f"{self.exercise} was not graded in this process")
        return self.report.check(name)

    def __repr__(self) -> str:
        if self.report is None:
            return f"<dldiy {self.exercise}: {self.why}>"
        return f"<dldiy {self.exercise}: {self.score:g}/{self.max_score:g} points>"


def _inside_grading_child() -> bool:
    # The child re-runs a notebook's cells, `check(...)` cell included: it must not grade again.
    # Every sandboxed child carries the marker variable (graders/sandbox/confine.py's MARKER_VAR).
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return ("dldiy.graders.sandbox.child" in sys.modules or getattr(main_spec, "name", "") == "dldiy.graders.sandbox.child"
            or bool(os.environ.get("DLDIY_SANDBOX")))


def _warm_server():
    """The kernel's one fork server (graders/sandbox/forkserver.py), started by the first check() and kept
    until the kernel exits: each later check() forks a child that has torch imported already
    instead of starting an interpreter that imports it (about 1 s). Never started at import: the
    student's sandboxed process imports this module too. None (a fresh interpreter per check, as before) if it cannot start."""
    try:
        from dldiy.graders.sandbox.forkserver import shared

        return shared()
    except Exception:  # noqa: BLE001 - a check without a warm server is slower, not wrong
        return None


AUTOGRADING = ("not run while nbgrader autogrades: the autograder cell under \"Check everything\" runs "
               "every check, once")


def _nbgrader_autograding() -> bool:
    # nbgrader sets it while `nbgrader autograde` runs a notebook ('validate' while `nbgrader validate` does).
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def check(exercise_id: str, *only: str, path: str | Path | None = None, plots: bool = True,
          autograde: bool = False) -> Result:
    """Run EXERCISE's checks (or only those named) on this notebook's definitions (or on `path`),
    in the sandboxed child, and show the same table and messages as `dldiy check`, with pictures of
    what was measured (loss curves, gradients, decision boundaries) unless `plots=False`.

    While `nbgrader autograde` runs the notebook, only the call with `autograde=True` (the locked
    autograder cell that `dldiy release --nbgrader` writes) runs checks: every other call (a part's
    check cell) prints one line and returns an inert result at once, so the checks run once per
    notebook and the scores are the autograder cell's alone."""
    if _nbgrader_autograding() and autograde:
        pass  # nbgrader's own kernel, the call that grades: a variable or a module the notebook set never skips it
    elif _inside_grading_child():
        return Result(None, exercise_id)
    elif _nbgrader_autograding():
        print(f"dldiy: check({', '.join(json.dumps(a) for a in (exercise_id, *only))}) {AUTOGRADING}")
        return Result(None, exercise_id, why=AUTOGRADING)
    from rich.console import Console
    from rich.markup import escape

    from dldiy.graders.render import print_report
    from dldiy.graders.assess import assess
    from dldiy.graders.course.exercise import load_exercise

    exercise = load_exercise(exercise_id)
    checks = [exercise.check(name) for name in only] or None
    console = Console()
    progress = _ProgressLine()
    with tempfile.TemporaryDirectory(prefix="dldiy-") as tmp:
        dropped = 0
        if path is None:
            entry = Path(tmp) / "notebook.ipynb"
            nb, dropped = history_notebook(_kernel_inputs())
            entry.write_text(json.dumps(nb))
        else:
            entry = Path(path)
        try:
            report = assess(exercise, entry, checks=checks, cwd=Path.cwd(), server=_warm_server(),
                            on_progress=progress, extra_seeds=exercise.check_seeds)
        finally:
            progress.close()
    report.submission = "this notebook" if path is None else str(path)
    if report.load_error:
        console.print(f"[bold red]dldiy:[/] {escape(report.load_error)}")
    else:
        print_report(report, console)
        if plots:
            _show_pictures(report)
    if dropped:
        console.print(f"[dim]Re-ran this notebook's imports, functions, classes and constants; "
                      f"{dropped} other statement(s) were left out.[/]")
    return Result(report)


class _ProgressLine:
    """'running gradcheck (seed 42), 3/12 done' in one output line updated in place (IPython display
    handle; a carriage-return line elsewhere), shown only once the run takes more than half a second."""

    DELAY_S = 0.5

    def __init__(self):
        self.started = time.monotonic()
        self.handle = None
        self.text = "loading the submission"
        self.lock = threading.Lock()
        self.timer = threading.Timer(self.DELAY_S, self._show)
        self.timer.daemon = True
        self.timer.start()

    def __call__(self, done: int, total: int, running: Any) -> None:
        what = f"running {running.check} (seed {running.seed})" if running is not None else "judging"
        self.text = f"{what}, {done}/{total} done"
        self._show()

    def _line(self) -> str:
        return f"dldiy: {self.text} [{time.monotonic() - self.started:.1f} s]"

    def _show(self) -> None:
        with self.lock:
            if time.monotonic() - self.started < self.DELAY_S or self.handle is False:
                return
            try:
                from IPython import get_ipython
                from IPython.display import display

                if get_ipython() is None:
                    raise ImportError
                if self.handle is None:
                    self.handle = display({"text/plain": self._line()}, raw=True, display_id=True)
                else:
                    self.handle.update({"text/plain": self._line()}, raw=True)
            except ImportError:
                sys.stderr.write("\r" + self._line()[:100].ljust(100))
                sys.stderr.flush()
                self.handle = self.handle or "stderr"

    def close(self) -> None:
        with self.lock:
            self.timer.cancel()
            if self.handle == "stderr":
                sys.stderr.write("\r" + " " * 100 + "\r")
            elif self.handle is not None:
                self.handle.update({"text/plain": f"dldiy: done in {time.monotonic() - self.started:.1f} s"},
                                   raw=True)
            self.handle = False


def _show_pictures(report: Any) -> None:
    """The checks' pictures as inline SVGs (IPython display, with the title as the plain-text fallback);
    nothing outside IPython."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    from dldiy.graders.plots import pictures

    for _name, title, svg in pictures(report.checks):
        display({"image/svg+xml": svg.decode("utf-8"), "text/plain": f"<picture: {title}>"}, raw=True)


def _kernel_inputs() -> list[str]:
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = lambda: None  # noqa: E731
    shell = get_ipython()
    if shell is None:
        raise RuntimeError("check() grades the notebook it runs in; outside IPython, pass path=... "
                           "or run `dldiy check EXERCISE PATH`")
    return list(shell.user_ns["In"])
