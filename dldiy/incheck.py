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

from dldiy.graders.sandbox.cellselect import selects

if TYPE_CHECKING:  # the model, not imported at run time: the student's process imports this module too
    from dldiy.graders.report import CheckResult, Report

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def definitions_only(source: str) -> tuple[str, int]:
    """`source` with every top-level statement that is not a definition blanked (line numbers kept);
    and how many statements were left out. A cell that does not parse defined nothing: all blank."""
    try:
        ast.parse(source)
    except SyntaxError:
        return "", 1
    kept, dropped = definitions_split(source)
    return kept, len(dropped)


def definitions_split(source: str) -> tuple[str, list[tuple[int, int, str, list[str]]]]:
    """definitions_only's filter: the kept source, and each top-level statement left out as (first line,
    last line, the statement's first line, the names it assigns): what the load summary lists, and what
    a NameError for one of those names is traced to. A cell that does not parse: all blank, nothing listed
    (the loader reports the SyntaxError)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "", []
    lines = source.split("\n")
    keep = [False] * len(lines)
    dropped: list[tuple[int, int, str, list[str]]] = []
    for node in tree.body:
        if isinstance(node, _KEPT) or _is_constant_assignment(node) or _is_docstring(node) or _is_configuration(node):
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            for i in range(start - 1, node.end_lineno or node.lineno):
                keep[i] = True
        else:
            first = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
            dropped.append((node.lineno, node.end_lineno or node.lineno, first, _assigned(node)))
    return "\n".join(line if k else "" for line, k in zip(lines, keep)), dropped


def _assigned(node: ast.stmt) -> list[str]:
    """The names a top-level statement binds in the namespace (assignments, loop and `with` targets)."""
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
    names: list[str] = []
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store) and sub.id not in names:
                names.append(sub.id)
    return names


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


# Calls a constant may be built with at load (course7 trial: `NEG_INF = float("-inf")` in the imports cell,
# `softmax_last = partial(torch.softmax, dim=-1)`): builtins that construct a value from their arguments,
# and a module's pure constructors, by the name the code calls them. Nothing that reads data, draws random
# numbers, allocates by size or builds a model: `torch.randn(...)`, `np.zeros(n)`, `Net()` stay left out.
# (Not tuple, bytes, min or max: `tuple(range(10**9))` and `bytes(n)` allocate, `max(range(...))` iterates.)
_PURE_CALLS = frozenset({"float", "int", "complex", "str", "bool", "slice", "range", "abs", "round",
                         "partial", "functools.partial", "device", "torch.device",
                         "dtype", "np.dtype", "numpy.dtype", "finfo", "iinfo", "np.finfo", "np.iinfo", "numpy.finfo",
                         "numpy.iinfo", "torch.finfo", "torch.iinfo", "Path", "pathlib.Path", "Fraction",
                         "fractions.Fraction", "Decimal", "decimal.Decimal", "namedtuple", "collections.namedtuple"})
_PURE_MODULES = ("math.", "cmath.", "operator.")  # every function of these is pure and cheap on scalars
_PURE_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _is_pure(node: ast.expr, depth: int = 0) -> bool:
    """An expression cheap and free of side effects whatever its names hold: literals, names and their
    attributes, arithmetic, and calls of _PURE_CALLS (or math's functions) on such expressions."""
    if depth > 8:
        return False
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Attribute):  # `math.pi`, `np.finfo(float).tiny`
        return _dotted(node) is not None or _is_pure(node.value, depth + 1)
    if isinstance(node, ast.UnaryOp):
        return _is_pure(node.operand, depth + 1)
    if isinstance(node, ast.BinOp):  # no sequence or string operand: `10**9 * [0]` allocates
        return isinstance(node.op, _PURE_OPS) and all(
            _is_pure(side, depth + 1) and not isinstance(side, (ast.List, ast.Tuple, ast.Set, ast.Dict))
            and not (isinstance(side, ast.Constant) and isinstance(side.value, (str, bytes)))
            for side in (node.left, node.right))
    if isinstance(node, (ast.Tuple, ast.List)):
        return len(node.elts) <= 64 and all(_is_pure(e, depth + 1) for e in node.elts)
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        if name is None or not (name in _PURE_CALLS or name.startswith(_PURE_MODULES)):
            return False
        return all(_is_pure(a.value if isinstance(a, ast.Starred) else a, depth + 1) for a in node.args) and \
            all(_is_pure(k.value, depth + 1) for k in node.keywords)
    return False


def _is_constant_assignment(node: ast.stmt) -> bool:
    """`NAME = literal`, `NAME = a.b.c` (a dtype, a constant of a module), or a value built by pure calls
    (`NEG_INF = float("-inf")`, `EPS = math.sqrt(1e-12)`, `softmax_last = partial(torch.softmax, dim=-1)`):
    cheap and side-effect free. A name it reads that load left undefined costs that statement alone."""
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
        return _is_pure(node.value)


# Configuration calls an imports cell makes, run at load in definitions mode (course8 trial: the notebook's
# `torch.set_default_dtype(torch.float64)` was left out, so its module's buffers were float32 when graded and float64
# in Jupyter, and a correct alternative lost a point): global settings of the libraries, never a computation. Only
# as a statement of its own, on literal, name or attribute arguments (`torch.manual_seed(0)`, `np.random.seed(SEED)`),
# so a training loop or anything it calls never runs at load.
_CONFIGURATION_CALLS = frozenset({
    "torch.set_default_dtype", "torch.set_default_tensor_type", "torch.manual_seed", "torch.set_printoptions",
    "torch.use_deterministic_algorithms", "torch.set_float32_matmul_precision", "torch.set_num_threads",
    "np.random.seed", "numpy.random.seed", "np.set_printoptions", "numpy.set_printoptions", "np.seterr", "numpy.seterr",
    "random.seed", "warnings.filterwarnings", "warnings.simplefilter", "plt.style.use", "matplotlib.style.use",
    "matplotlib.use", "plt.rcParams.update", "sns.set_theme", "sns.set", "pd.set_option"})


def _is_configuration(node: ast.stmt) -> bool:
    """A call of _CONFIGURATION_CALLS as a statement of its own, on literals, names and attributes."""
    if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
        return False
    call = node.value
    if _dotted(call.func) not in _CONFIGURATION_CALLS:
        return False
    def plain(a: ast.expr) -> bool:
        try:
            ast.literal_eval(a)
            return True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return _dotted(a) is not None
    return all(plain(a) for a in call.args) and all(plain(k.value) for k in call.keywords)


def history_notebook(inputs: list[str], raw: list[str] | None = None, named: dict | None = None,
                     saved: list[tuple[str, list[str]]] | None = None) -> tuple[dict, int]:
    """A version-4 notebook whose code cell k holds the definitions of `inputs[k]` (IPython's `In`,
    where `In[0]` is empty); and how many statements were left out.

    `named`: the spec's `cells` selectors (`{"data": {"contains": "np.loadtxt"}}`). The harness runs those
    cells itself (graders/layers.py's run_cells), so one input per selector is kept whole, as typed
    (`raw`, IPython's raw history: a `!wget` stays a shell line, which the loader reports and skips, as
    in the saved notebook), and the others it selects are blanked (earlier runs of that cell). The one
    kept is the cell `dldiy check` would take in the saved notebook, `saved` (its code cells' sources
    and tags), when the kernel ran that very source; else the last input the selector matches (the
    kernel's latest). Where the saved notebook has several cells the selector picks, and the kernel ran
    them, they are all kept: the loader then says, as `dldiy check` does, that exactly one cell must be
    the named one. The saved notebook's tags are carried onto the inputs that hold a tagged
    cell's source, so that `{ tag = ... }` selectors, `load_tags` and `skip_tags` pick the cells they
    pick in the saved notebook. Either way check() judges the cells `dldiy check` judges there."""
    raw = raw if raw is not None and len(raw) == len(inputs) else inputs
    named, saved = named or {}, saved or []
    tags_of = {source.strip(): list(tags) for source, tags in saved if tags}
    cell_tags = [tags_of.get(source.strip(), []) for source in raw]
    chosen: dict[int, str] = {}  # input index -> the spec's name for the cell it is
    blanked: set[int] = set()
    for name, selector in named.items():
        matches = [k for k in range(1, len(raw)) if selects(selector, raw[k], cell_tags[k])]
        if not matches:
            continue
        in_saved = [source.strip() for source, tags in saved if selects(selector, source, tags)]
        ran = [max(k for k in matches if raw[k].strip() == source) for source in dict.fromkeys(in_saved)
               if any(raw[k].strip() == source for k in matches)]
        # Several cells of the saved notebook that the kernel ran: all kept, so that the loader reports
        # them as `dldiy check` does (exactly one cell must be the named one); else the one the saved
        # notebook holds, else the kernel's latest.
        for k in (ran if len(ran) > 1 else ran[:1] or matches[-1:]):
            chosen.setdefault(k, name)
        blanked |= set(matches)
    cells, dropped = [], 0
    for k in range(1, len(inputs)):
        if k in chosen:
            kept = raw[k]
        elif k in blanked:  # another run of a named cell: the harness runs the one chosen
            kept = ""
        else:
            kept, n = definitions_only(inputs[k])
            dropped += n
        metadata: dict[str, Any] = {"tags": cell_tags[k]} if cell_tags[k] else {}
        cells.append({"cell_type": "code", "execution_count": None, "metadata": metadata, "outputs": [],
                      "source": kept})
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}, dropped


def saved_cells(path: Path | None) -> list[tuple[str, list[str]]]:
    """A saved notebook's code cells as (source, tags); [] where there is none, or it cannot be read."""
    if path is None:
        return []
    try:
        nb = json.loads(path.read_text())
        out = []
        for cell in nb.get("cells", []):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            source, tags = cell.get("source", ""), (cell.get("metadata") or {}).get("tags")
            out.append(("".join(source) if isinstance(source, list) else str(source),
                        [str(t) for t in tags] if isinstance(tags, list) else []))
        return out
    except (OSError, ValueError, AttributeError, TypeError):
        return []


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
                 why: str = "graded by the parent process, not here", error: str | None = None):
        self.report = report
        self.exercise = report.exercise if report is not None else exercise
        self.why = why
        # Why the checks could not run at all (an unknown exercise, no course found, the autograder cell
        # that raised or never ran): every `require` then fails with it, and the score is 0.
        self.error = error

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
        if self.error is not None:
            raise AssertionError(f"{name}: no points: {self.error}")
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
        if self.error is not None:
            return f"<dldiy {self.exercise}: not checked: {self.error}>"
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


# What the autograder cell's `check(..., autograde=True)` gave, per exercise, in this process: the grade
# cells that `dldiy release --nbgrader` writes read it through `autograded(...)`, so a locked cell that
# raised (or never ran) gives each grade cell a message instead of a NameError.
_AUTOGRADED: dict[str, Result] = {}

NOT_RUN = ("the autograder cell under \"Check everything\" (check(\"{exercise}\", autograde=True)) has not "
           "run in this kernel: run it, then this cell")


def autograded(exercise_id: str) -> Result:
    """The result of this kernel's last `check(EXERCISE, autograde=True)` (the locked cell under "Check
    everything" in nbgrader's notebook), for the grade cells: `autograded("exercise-1").require("gradcheck")`.
    Where that call could not run the checks, or never ran, a result whose `require` fails saying why.
    Inside dldiy's grading child, inert (the parent grades)."""
    if _inside_grading_child() and not _nbgrader_autograding():
        return Result(None, exercise_id)
    found = _AUTOGRADED.get(exercise_id)
    return found if found is not None else Result(None, exercise_id, error=NOT_RUN.format(exercise=exercise_id))


def check(exercise_id: str, *only: str, path: str | Path | None = None, plots: bool = True,
          autograde: bool = False) -> Result:
    """Run EXERCISE's checks (or only those named) on this notebook's definitions (or on `path`),
    in the sandboxed child, and show the same table and messages as `dldiy check`, with pictures of
    what was measured (loss curves, gradients, decision boundaries) unless `plots=False`.

    While `nbgrader autograde` runs the notebook, only the call with `autograde=True` (the locked
    autograder cell that `dldiy release --nbgrader` writes) runs checks: every other call (a part's
    check cell) prints one line and returns an inert result at once, so the checks run once per
    notebook and the scores are the autograder cell's alone.

    An exercise that cannot be found (no course folder above this notebook) or a spec that does not
    load is one line, not a traceback, and the result's `require` fails with it. With `autograde=True`
    the result is kept for the grade cells (`autograded`), and so is an error that stopped the call."""
    if not autograde:
        return _check(exercise_id, *only, path=path, plots=plots, autograde=False)
    _AUTOGRADED.pop(exercise_id, None)
    try:
        result = _check(exercise_id, *only, path=path, plots=plots, autograde=True)
    except BaseException as e:
        _AUTOGRADED[exercise_id] = Result(None, exercise_id, error=(
            f"the autograder cell under \"Check everything\" could not run the checks: "
            f"{type(e).__name__}: {str(e)[:500]}"))
        raise
    _AUTOGRADED[exercise_id] = result if result.error is None else Result(None, exercise_id, error=(
        f"the autograder cell under \"Check everything\" could not run the checks: {result.error}"))
    return result


def _check(exercise_id: str, *only: str, path: str | Path | None = None, plots: bool = True,
           autograde: bool = False) -> Result:
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
    from dldiy.graders.sandbox.spawn import check_processes
    from dldiy.graders.course.exercise import SpecError, load_exercise
    from dldiy.graders.course.folders import CourseError

    console = Console()
    try:
        exercise = load_exercise(exercise_id)
        checks = [exercise.check(name) for name in only] or None
    except (SpecError, CourseError) as e:
        console.print(f"[bold red]dldiy:[/] {escape(str(e))}")
        return Result(None, exercise_id, error=f"{type(e).__name__}: {e}")
    progress = _ProgressLine()
    with tempfile.TemporaryDirectory(prefix="dldiy-") as tmp:
        dropped = 0
        if path is None:
            entry = Path(tmp) / "notebook.ipynb"
            inputs, raw = _kernel_inputs()
            named = exercise.cells if exercise.load else {}
            saved = saved_cells(_saved_notebook(exercise)) if exercise.load else []
            nb, dropped = history_notebook(inputs, raw, named, saved)
            entry.write_text(json.dumps(nb))
        else:
            entry = Path(path)
        try:
            # the notebook's own folder beside its cells (data it reads); a path given is judged as `dldiy check`
            # judges it: that folder, or that file alone (the folder of the call is no part of it: from a checkout's
            # root it was the whole checkout, venv included, copied into the working copy)
            report = assess(exercise, entry, checks=checks, cwd=Path.cwd() if path is None else None,
                            server=_warm_server(),
                            on_progress=progress, extra_seeds=exercise.check_seeds, processes=check_processes())
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


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _kernel_inputs() -> tuple[list[str], list[str] | None]:
    """IPython's `In` (each input as run: magics turned into calls) and its raw history (as typed)."""
    shell = _shell()
    if shell is None:
        raise RuntimeError("check() grades the notebook it runs in; outside IPython, pass path=... "
                           "or run `dldiy check EXERCISE PATH`")
    parsed = list(shell.user_ns["In"])
    raw = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    return parsed, (list(raw) if isinstance(raw, list) and len(raw) == len(parsed) else None)


def _saved_notebook(exercise: Any) -> Path | None:
    """The notebook file this kernel runs, for its cells and tags: the kernel's `__session__` (the path
    Jupyter gives it), else the exercise's notebook in the working folder (where `dldiy start`, the
    bundle and nbgrader put it). None where none is found."""
    shell = _shell()
    session = shell.user_ns.get("__session__") if shell is not None else None
    names = [exercise.entry, f"{exercise.id}.ipynb"] if exercise.entry.endswith(".ipynb") else [f"{exercise.id}.ipynb"]
    candidates = [Path(session)] if isinstance(session, str) and session.endswith(".ipynb") else []
    candidates += [Path.cwd() / name for name in names] + [Path.cwd() / exercise.id / name for name in names]
    return next((c for c in candidates if c.is_file()), None)
