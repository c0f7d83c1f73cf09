"""The one loader: a reference, a bugged variant and a student's work are all loaded here.

A submission is a `.py` file, a notebook, or a folder holding the exercise's entry file (a multi-file
project is a folder whose entry imports its siblings). `locate` runs in the trusted parent (no
import of student code); `load` runs in the child.

A notebook is loaded the way its exercise's spec says (`Exercise.load_settings()`): without a `load`
key every code cell runs and the first that raises stops loading (a `.py` file's semantics). With
`load = "all"` or `"definitions"` (imports, functions, classes, constants only: dldiy/incheck.py's
filter, the one the in-notebook `check()` uses) a cell that raises or does not parse is reported and
left out, and loading goes on: what it would have defined is missing, so only the checks that need it
error (saying which cell failed and how: `missing_cause`), and the student keeps the points of the
parts that work. `load_tags` / `skip_tags` select
cells by their tags; the cells the spec names in `cells` are not run at load but kept for the harness
(graders/layers.py's `run_cells`). Plots render headless (MPLBACKEND=Agg, plt.show a no-op), and the
exercise's data/ folder is linked into the working copy under the name the spec gives.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import linecache
import os
import random
import re
import shutil
import sys
import traceback
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cellselect import runs_its_cell, selects

SUFFIXES = (".py", ".ipynb")
# json.loads of a notebook builds one Python object per JSON object or array (~50-100 bytes each): a
# 20 MB file of empty cells is 6.6 M dicts, ~300 MB of the trusted parent's memory. A real notebook,
# outputs included, holds a few per cell; this cap keeps what one notebook can cost under ~50 MB.
MAX_NOTEBOOK_CONTAINERS = 500_000


class SubmissionError(Exception):
    """The submission cannot be used as it is; the message is one line a student can act on."""


def locate(path: Path, entry: str) -> Path:
    """The file to load for `path`: the file itself, `path/<entry>`, or the folder's only .py/.ipynb."""
    found = _find(Path(path), entry)
    if found.suffix == ".ipynb":
        code_cells(found)  # a malformed notebook is refused here, in one line, before a child starts
    return found


def _find(path: Path, entry: str) -> Path:
    if not path.exists():
        raise SubmissionError(f"no such file or folder: {path}")
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise SubmissionError(f"{path} is not a Python file or a notebook (.py or .ipynb)")
        return path
    for name in (entry, Path(entry).with_suffix(".ipynb").name):
        if (path / name).is_file():
            return path / name
    candidates = [p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()
                  and not p.name.startswith(".")]
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(sorted(p.name for p in candidates)) or "no .py or .ipynb file"
    raise SubmissionError(f"{path} has no {entry} ({found}); `dldiy start` creates it")


@dataclass(frozen=True)
class FailedCell:
    """A code cell that did not run whole at load: it did not parse ("parse"), raised ("raised", `detail`
    the exception's type), or, in definitions mode, needed a name that mode does not run ("definitions",
    `detail` the line it was left out from). `unbound`: the name a NameError found unbound."""

    number: int
    kind: str
    detail: str
    source: str
    unbound: str | None = None


@dataclass
class Loaded:
    """A loaded submission: its namespace, and how to tell its own frames in a traceback."""

    module: types.ModuleType
    path: Path
    root: Path  # files under root are the student's
    skipped: list[str] = field(default_factory=list)  # notebook lines not executed (magics, shell, failed cells)
    cells: dict[str, tuple[int, str]] = field(default_factory=dict)  # the spec's named cells: (number, code)
    selectors: dict[str, dict] = field(default_factory=dict)  # how the spec selects each named cell (tag, contains)
    # A selector that picks more than one cell: name -> every such cell's number. Never a silent choice:
    # the checks that run that cell error, naming the cells.
    ambiguous: dict[str, list[int]] = field(default_factory=dict)
    # A notebook loaded cell by cell: the cells that failed at load, and every code cell's source (to
    # tell a check that misses a name which failed cell would have defined it: `missing_cause`).
    failed: list[FailedCell] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    # Definitions mode: the top-level statements it left out (a NameError for a name one assigns says so),
    # and the functions and classes defined in a named cell, which load does not run (name -> (cell, selector)).
    dropped: list[Dropped] = field(default_factory=list)
    in_named: dict[str, tuple[int, str]] = field(default_factory=dict)
    # A cell two selectors pick (course7 trial: the whole notebook in one cell): the later name -> (the
    # cell, the name it is run as). Never run twice: a check that runs the later name says so.
    shared: dict[str, tuple[int, str]] = field(default_factory=dict)
    named_assigns: dict[str, tuple[int, str]] = field(default_factory=dict)  # names a named cell assigns

    def is_student_file(self, filename: str) -> bool:
        if filename.startswith(str(self.path) + "[cell"):
            return True
        try:
            return Path(filename).resolve().is_relative_to(self.root)
        except (OSError, ValueError):
            return False


def load(path: Path, settings: dict | None = None) -> Loaded:
    """Execute the submission once, as `import` would, turning every failure into SubmissionError.
    `settings`: the exercise's `load_settings()` (notebook mode, tags, named cells, data folder)."""
    settings = settings or {}
    os.environ["MPLBACKEND"] = "Agg"  # plots render off-screen, and only when saved
    _link_data(settings)
    path = Path(path).resolve()
    root = path.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # a multi-file project imports its siblings
    module = types.ModuleType(_module_name(path))
    module.__file__ = str(path)
    loaded = Loaded(module, path, root)
    try:
        if path.suffix == ".ipynb" and settings.get("mode"):
            _exec_notebook_resilient(path, loaded, settings)
        elif path.suffix == ".ipynb":
            _exec_notebook(path, loaded)
        else:
            source = path.read_bytes()
            try:
                code = compile(source, str(path), "exec")
            except ValueError as e:  # null bytes: a ValueError on older 3.11 releases (Debian's 3.11.2), later a SyntaxError
                raise SubmissionError(f"{_short(str(path), loaded)}: SyntaxError: {e}") from None
            sys.modules[module.__name__] = module
            exec(code, module.__dict__)
    except SubmissionError:
        raise
    except SyntaxError as e:
        where = _short(e.filename or str(path), loaded)
        raise SubmissionError(f"{where}:{e.lineno}: SyntaxError: {e.msg}") from None
    except BaseException as e:  # SystemExit and KeyboardInterrupt included: nothing escapes
        raise SubmissionError(f"while loading {path.name}: {describe(e, loaded)}") from None
    return loaded


MAX_HANDED_IN_FILES = 10_000  # the .py files read into the snapshot (a working copy holds what was handed in)


def import_only_what_was_handed_in(root: Path) -> None:
    """From now on, a module found outside the Python installation's own folders (the working copy, its
    /tmp, a folder the code adds to sys.path) is imported only from a .py file of the submission as it
    was handed in: same size, same modification time. A module written or changed at run time, a
    compiled extension or a bytecode file without its source is refused with ImportError naming it.

    Why (red team, round 8): the static scan judges an API name's rules from the source it reads; a
    module the code writes at import time and then imports (its forbidden calls, or the guards switched
    off, inside) is code the scan never read. Only where the exercise has rules: elsewhere nothing reads it.
    The hook is consulted only for folders not yet in sys.path_importer_cache, so torch's imports cost
    nothing more; changing the import system back (sys.path_hooks, sys.meta_path, importlib) is
    reflection to the scan."""
    import importlib.machinery as machinery

    root = root.resolve()
    handed: dict[str, tuple[int, int]] = {}
    for folder, _dirs, files in os.walk(root):  # links not followed: what they reach was not handed in
        for name in files:
            if name.endswith(".py") and len(handed) < MAX_HANDED_IN_FILES:
                try:
                    st = os.stat(os.path.join(folder, name))
                    handed[os.path.join(folder, name)] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    pass

    def under(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)

    # not the submission's folder, nor one that holds it ('/' on the path)
    system = [real for real in installation_folders() if not under(real, str(root)) and not under(str(root), real)]

    class SourceOnly(machinery.SourceFileLoader):
        """The .py file itself, never bytecode beside it: a __pycache__ handed in with a .pyc of other
        code (its header stamped with the source's size and time) would otherwise run in its place."""

        def get_code(self, fullname: str) -> Any:
            return self.source_to_code(self.get_data(self.path), self.path)

    class HandedIn(machinery.FileFinder):
        """Python sources only (no extension, no bytecode), each as it was handed in."""

        def find_spec(self, fullname: str, target: Any = None) -> Any:
            spec = super().find_spec(fullname, target)
            if spec is not None and spec.origin and spec.has_location:
                try:
                    st = os.stat(spec.origin)
                    now: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
                except OSError:
                    now = None
                if handed.get(os.path.realpath(spec.origin)) != now:
                    raise ImportError(f"{fullname} ({Path(spec.origin).name}) is not a file of the submission as it was "
                                      "handed in (written or changed at run time): code the grader did not read is "
                                      "not run", name=fullname)
            return spec

    def hook(entry: str) -> Any:
        real = os.path.realpath(entry or ".")
        if any(under(real, folder) for folder in system):
            raise ImportError  # the installation's own folders: the next hook's finder, as before
        return HandedIn(real, (SourceOnly, machinery.SOURCE_SUFFIXES))

    sys.path_hooks.insert(0, hook)
    for entry in list(sys.path_importer_cache):  # a finder made before now for the current folder ('')
        if not os.path.isabs(entry):
            del sys.path_importer_cache[entry]


@functools.lru_cache(maxsize=1)
def installation_folders() -> tuple[str, ...]:
    """The installation's folders, resolved: sys.path's absolute entries (and what lies below them:
    mpmath/ in site-packages) and the folders of the packages imported so far that lie elsewhere (an
    editable install maps dldiy.graders to a folder of its own). Once per process: the harness asks
    before it forks its zygote, so a student's process inherits the answer (a few thousand lstat calls
    otherwise, each time). A package's __path__ is read from its __dict__: a stand-in's __getattr__
    (graders/sandbox/nosympy.py) would import sympy to answer (1 s)."""
    entries = [entry for entry in sys.path if entry and os.path.isabs(entry)]
    folders = {os.path.realpath(entry) for entry in entries}
    prefixes = tuple(entry.rstrip(os.sep) + os.sep for entry in entries)
    for name, module in list(sys.modules.items()):
        if name.count(".") > 1 or not isinstance(module, types.ModuleType):
            continue
        path = vars(module).get("__path__")
        if isinstance(path, list):
            folders.update(os.path.realpath(p) for p in path if isinstance(p, str) and not p.startswith(prefixes))
    return tuple(sorted(folders))


def _link_data(settings: dict) -> None:
    """The exercise's data/ under the spec's name in the working copy (the child's cwd): read-only in the
    sandbox (it lies in the exposed exercise folder), so a download cell's files are already there."""
    name, source = settings.get("data"), settings.get("data_dir")
    if not name or not source or not Path(source).is_dir():
        return
    target = Path.cwd() / name
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():  # the student's own copy: the course's files are the ones read
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source, target_is_directory=True)


def _module_name(path: Path) -> str:
    stem = path.stem if path.stem.isidentifier() else "submission"
    return stem if stem not in sys.modules else f"_dldiy_submission_{stem}"


def _exec_notebook(path: Path, loaded: Loaded) -> None:
    for number, cell_source in code_cells(path):
        source = _strip_magics(cell_source, number, loaded.skipped)
        filename = f"{path}[cell {number}]"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), loaded.module.__dict__)
        except (SyntaxError, SubmissionError):
            raise
        except BaseException as e:  # noqa: BLE001 - as in load(): nothing escapes
            # First line: which cell and what; then the student's own frames, as Jupyter would show them.
            raise SubmissionError(f"cell {number} of {path.name} raised {describe(e, loaded)}\n"
                                  f"{trimmed_traceback(e, loaded)}") from None


CELL_RUNNER = "__dldiy_run_cell__"  # the name graders/layers.py calls to run the spec's named cells


def _exec_notebook_resilient(path: Path, loaded: Loaded, settings: dict) -> None:
    """Each selected cell runs on its own: one that raises or does not parse is reported and left out.
    In definitions mode each kept statement runs on its own too (a constant whose value needs a name
    load left undefined costs that statement, not the definitions after it in the cell), and every
    statement the mode leaves out is listed in the summary, with the names it assigns
    (`Loaded.dropped`: a NameError for one of them says which statement would have bound it)."""
    from dldiy.incheck import definitions_split

    load_tags, skip_tags = set(settings.get("load_tags", ())), set(settings.get("skip_tags", ()))
    named = settings.get("cells", {})
    loaded.selectors = dict(named)
    definitions = settings.get("mode") == "definitions"
    _defer_matplotlib()
    for number, cell_source, tags in notebook_cells(path):
        loaded.sources.append(cell_source)
        source = _strip_magics(cell_source, number, loaded.skipped)
        picked = [n for n, sel in named.items() if selects(sel, cell_source, tags)]
        name = picked[0] if picked else None
        for other in picked[1:]:  # one cell two selectors pick: a check that runs `other` says so
            loaded.shared.setdefault(other, (number, name))
        if name is not None:
            if name in loaded.cells:  # a second cell the selector picks: the checks that run it say so
                loaded.ambiguous.setdefault(name, [loaded.cells[name][0]]).append(number)
            else:
                loaded.cells[name] = (number, source)
            _named_cell_defines(loaded, number, name, source)
            continue
        if (load_tags and not load_tags & tags) or skip_tags & tags:
            continue
        source, problem = _parsable(source)
        if problem:
            loaded.skipped.append(f"cell {number}: {problem}")
            loaded.failed.append(FailedCell(number, "parse", "SyntaxError", cell_source))
        if definitions:
            source, dropped = definitions_split(source)
            _list_dropped(loaded, number, dropped)
        if not source.strip():
            continue
        filename = f"{path}[cell {number}]"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        if definitions:
            for node in ast.parse(source).body:  # it parses: _parsable and the filter kept whole statements
                code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")
                _exec_at_load(code, number, cell_source, loaded, statement=True)
        else:
            _exec_at_load(compile(source, filename, "exec"), number, cell_source, loaded, statement=False)
        _quiet_plots()
    setattr(loaded.module, CELL_RUNNER, _cell_runner(loaded))


@dataclass(frozen=True)
class Dropped:
    """A top-level statement definitions mode left out at load: where, its first line, what it assigns."""

    cell: int
    line: int
    text: str
    names: tuple[str, ...]


def _list_dropped(loaded: Loaded, number: int, dropped: list) -> None:
    """The statements of cell `number` that definitions mode does not run: one line of the summary per
    cell (the assignments by name, the other statements counted), kept whole in `loaded.dropped`."""
    if not dropped:
        return
    for first, _last, text, names in dropped:
        loaded.dropped.append(Dropped(number, first, text, tuple(names)))
    assigns = [f"{', '.join(names)}" + (f" (line {first})" if len(dropped) > 1 else "")
               for first, _last, _text, names in dropped if names]
    others = [_shortened(text) for _first, _last, text, names in dropped if not names]
    # each statement said by its text (course8 trial: "1 statement" hid a torch.set_default_dtype(...))
    said = "; ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
    parts = ([f"assigns {'; '.join(assigns[:6])}" + (f" and {len(assigns) - 6} more" if len(assigns) > 6 else "")]
             if assigns else []) + ([f"{len(others)} {'other ' if assigns else ''}statement{'s' if len(others) > 1 else ''} "
                                     f"({said})"] if others else [])
    covered = sorted({i for first, last, _t, _n in dropped for i in range(first, last + 1)})
    runs: list[list[int]] = []
    for i in covered:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    where = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:8]) + (", ..." if len(runs) > 8 else "")
    plural = "s" if len(covered) > 1 else ""
    loaded.skipped.append(f"cell {number}: line{plural} {where} left out (definitions mode runs only imports, def, "
                          f"class and constants at load): {' and '.join(parts)}")


def _shortened(text: str, width: int = 48) -> str:
    """A statement's first line as the summary says it: `plt.plot(losses)`, cut with ... past `width` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def _named_cell_defines(loaded: Loaded, number: int, name: str, source: str) -> None:
    """A named cell is not run at load: the classes and functions it defines are remembered, so that a
    check missing one says that it is defined in the cell the exercise runs itself (course7 trial: a
    student who wrote the whole notebook in one cell, the training loop's)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    from dldiy.incheck import _assigned

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            loaded.in_named.setdefault(node.name, (number, name))
        for assigned in _assigned(node):
            loaded.named_assigns.setdefault(assigned, (number, name))


def _exec_at_load(code: Any, number: int, cell_source: str, loaded: Loaded, statement: bool) -> bool:
    """Run one cell (or, in definitions mode, one statement of it) at load; report a failure. True if it ran."""
    try:
        exec(code, loaded.module.__dict__)
        return True
    except BaseException as e:  # noqa: BLE001 - reported, and loading goes on
        unbound = getattr(e, "name", None) if isinstance(e, NameError) else None
        line = _line(e, loaded)
        after = "that statement is left out" if statement else "what it defines after that line is missing"
        cause = missing_cause(loaded, unbound) if isinstance(unbound, str) else None
        dropped = _dropped_for(loaded, unbound) if isinstance(unbound, str) else None
        if cause is not None:  # an earlier cell that failed would have defined it: that cell is the cause
            loaded.skipped.append(f"cell {number} raised {describe(e, loaded)}; {after}")  # describe names the cause
            loaded.failed.append(FailedCell(number, "raised", type(e).__name__, cell_source, unbound))
        elif dropped is not None:
            loaded.skipped.append(f"cell {number}: left out from line {line} ({e}: {_dropped_text(dropped)})")
            loaded.failed.append(FailedCell(number, "definitions", str(line), cell_source, unbound))
        elif isinstance(unbound, str) and unbound in loaded.named_assigns:
            # a plot or print cell after the training cell (load = "all"; course7 trial: "raised NameError:
            # losses" in every student's feedback): no mistake of the student's, said as what it is
            cell, selector = loaded.named_assigns[unbound]
            loaded.skipped.append(f"cell {number}: not run at load from line {line}: it reads `{unbound}`, which "
                                  f"cell {cell} assigns, the exercise's {selector!r} cell (run by the checks that "
                                  "need it, never at load)")
            loaded.failed.append(FailedCell(number, "raised", type(e).__name__, cell_source, unbound))
        else:
            loaded.skipped.append(f"cell {number} raised {describe(e, loaded)}: {after}")
            loaded.failed.append(FailedCell(number, "raised", type(e).__name__, cell_source, unbound))
        return False


def _dropped_for(loaded: Loaded, name: str) -> Dropped | None:
    """The last statement definitions mode left out that assigns `name`, if one does."""
    return next((d for d in reversed(loaded.dropped) if name in d.names), None)


def _dropped_text(d: Dropped) -> str:
    text = d.text if len(d.text) <= 80 else d.text[:77] + "..."
    return (f"{d.names[0] if len(d.names) == 1 else ', '.join(d.names)} is assigned in cell {d.cell} line {d.line} "
            f"(`{text}`), a statement the exercise's load = \"definitions\" does not run at load (only imports, def, "
            "class and constants); define the value inside the function that uses it, or ask your instructor to "
            "tag that cell for loading (load_tags) or to set load = \"all\"")


def missing_cause(loaded: Loaded, name: str, _depth: int = 0) -> dict | None:
    """Why the notebook lacks `name`, when a cell that failed at load is the likely reason:
    {"cells": [[number, kind, detail], ...], "nowhere": bool} (FailedCell's kind and detail), else None.

    The cells that failed and would have bound the name (`class ReLU`, `def f`, `W = ...`, an import);
    else those that raised or did not parse and mention it (not the ones that only stopped on it, a
    NameError for this very name: they are its consequence, not its cause); else, when no code cell
    of the notebook mentions the name at all, every cell that raised or did not parse. None when the
    name is missing for another reason (never written, or used but never defined)."""
    if not name.isidentifier() or _depth > 4:
        return None
    if not _depth and loaded.path.suffix == ".py" and _blank(loaded.path):  # an empty file defines nothing
        return {"cells": [[0, "empty", "?"]], "more": 0, "nowhere": False}
    if name in loaded.in_named and not _depth:  # defined in a cell the exercise runs itself, never at load
        number, selector = loaded.in_named[name]
        return {"cells": [[number, "named", selector]], "more": 0, "nowhere": False}
    if not loaded.failed:
        return None
    mention = re.compile(rf"(?<![\w.]){re.escape(name)}\b")
    binds = re.compile(rf"^[ \t]*(?:(?:async[ \t]+)?def|class)[ \t]+{re.escape(name)}\b"
                       rf"|^[ \t]*{re.escape(name)}[ \t]*(?::[^=\n]*)?=(?!=)"
                       rf"|^[ \t]*(?:from[ \t]+\S+[ \t]+)?import[ \t][^\n#]*(?<![\w.]){re.escape(name)}\b",
                       re.MULTILINE)
    strong = [f for f in loaded.failed if f.kind != "definitions"]
    cells = [f for f in loaded.failed if binds.search(f.source)]
    nowhere = False
    if not cells:
        cells = [f for f in strong if f.unbound != name and mention.search(f.source)]
    if not cells and not any(mention.search(source) for source in loaded.sources):
        cells, nowhere = strong, True
    if not cells:
        return None
    # A cell that stopped on a NameError for a name an earlier failed cell would have bound is that
    # cell's consequence (course7 trial: cell 1's ModuleNotFoundError left `nn` undefined, and cell 2's
    # `class SelfAttention(nn.Module)` raised NameError): the earlier cell is blamed instead.
    roots: list[FailedCell] = []
    for f in cells:
        upstream = missing_cause(loaded, f.unbound, _depth + 1) \
            if f.kind in ("raised", "definitions") and f.unbound and f.unbound != name else None
        found = [g for g in loaded.failed if upstream and [g.number, g.kind, g.detail] in upstream["cells"]]
        for g in found or [f]:
            if g not in roots:
                roots.append(g)
    cells = roots
    return {"cells": [[f.number, f.kind, f.detail] for f in cells[:CAUSE_CELLS]],
            "more": max(0, len(cells) - CAUSE_CELLS), "nowhere": nowhere}


CAUSE_CELLS = 3  # failed cells named in one message; the skipped lines list them all


def _blank(path: Path) -> bool:
    try:
        return path.stat().st_size < 4096 and not path.read_text(errors="replace").strip()
    except OSError:
        return False


def cause_text(cause: dict) -> str:
    """missing_cause's answer in words: "cell 4 raised ZeroDivisionError at load (see the skipped cells)".
    Also run in the harness on what the student's process sent: anything malformed reads as ""."""
    phrases = []
    cells = cause.get("cells") if isinstance(cause, dict) else None
    for item in cells[:CAUSE_CELLS] if isinstance(cells, list) else []:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int) and not isinstance(item[0], bool)
                and isinstance(item[2], str) and len(item[2]) <= 80
                and (item[2].isidentifier() or item[2].isdigit() or item[2] == "?")):
            return ""
        number, kind, detail = item
        if kind == "raised":
            phrases.append(f"cell {number} raised {detail} at load")
        elif kind == "parse":
            phrases.append(f"cell {number} did not parse at load ({detail})")
        elif kind == "definitions":
            phrases.append(f"cell {number} was left out from line {detail} at load (definitions mode)")
        elif kind == "empty" and len(cells) == 1:
            return "the file handed in is empty: was it saved before it was handed in?"
        elif kind == "named" and len(cells) == 1:
            return (f"it is defined in cell {number}, the cell this exercise runs itself as its {detail!r} cell (when "
                    "a check asks for it, never at load): keep the classes and functions in cells of their own, as "
                    "in the notebook handed out")
        else:
            return ""
    if not phrases:
        return ""
    more = cause.get("more")
    if isinstance(more, int) and not isinstance(more, bool) and more > 0:
        phrases.append(f"{more} more")
    said = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    lead = "no cell mentions it, and " if cause.get("nowhere") is True else ""
    return f"{lead}{said} (see the skipped cells)"


def _line(exc: BaseException, loaded: Loaded) -> int | str:
    frames = student_frames(exc, loaded)
    return frames[0].lineno if frames else "?"


def _selected(selector: dict | None) -> str:
    """How a spec selects a named cell, in a student's words."""
    if isinstance(selector, dict) and "tag" in selector:
        return f"tagged {str(selector['tag'])!r}"
    if isinstance(selector, dict) and "contains" in selector:
        return f"that contains {str(selector['contains'])[:120]!r}"
    return "that the exercise names"


def _parsable(source: str) -> tuple[str, str]:
    """`source`, or, if it does not parse, its top-level blocks that do (the rest blanked, line numbers
    kept: a stub holding only comments costs its own definition, not the whole cell); and the problem."""
    try:
        ast.parse(source)
        return source, ""
    except SyntaxError as e:
        first = f"SyntaxError: {e.msg} (line {e.lineno})"
    lines = source.split("\n")
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "#", ")", "]", "}")]
    starts = [i for i in starts if not (i > 0 and lines[i - 1].lstrip().startswith("@"))]  # keep decorators
    kept, dropped = [""] * len(lines), []
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        block = "\n".join(lines[a:b])
        try:
            ast.parse(block)
            kept[a:b] = lines[a:b]
        except SyntaxError:
            dropped.append(f"{a + 1}-{b}" if b - a > 1 else str(a + 1))
    return "\n".join(kept), f"{first}: lines {', '.join(dropped) or 'all'} left out"


def _quiet_plots() -> None:
    """plt.show() draws nothing off-screen: make it a no-op, and free the figures a cell made."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and not isinstance(plt, _Deferred):
        plt.show = lambda *args, **kwargs: None  # type: ignore[attr-defined]
        plt.close("all")


class _Deferred(types.ModuleType):
    """matplotlib imported on first use: `import matplotlib.pyplot as plt` in a notebook's first cell
    costs nothing (instead of about a second per child) until a plot is drawn, which a notebook
    loaded for its definitions never does. Any attribute read imports the real module."""

    def __getattr__(self, attr: str):
        for name in ("matplotlib.pyplot", "matplotlib"):
            if isinstance(sys.modules.get(name), _Deferred):
                del sys.modules[name]
        real = importlib.import_module(self.__name__)
        _quiet_plots()
        return getattr(real, attr)


def _defer_matplotlib() -> None:
    spec = None if "matplotlib" in sys.modules else importlib.util.find_spec("matplotlib")
    if spec is None:
        return  # already there, or not installed: the student's import fails as it would in Jupyter
    parent, pyplot = _Deferred("matplotlib"), _Deferred("matplotlib.pyplot")
    parent.pyplot = pyplot  # type: ignore[attr-defined]  # `import matplotlib.pyplot as plt` binds this attribute, without importing
    parent.__path__ = list(spec.submodule_search_locations or [])  # `from matplotlib import pyplot` too
    sys.modules.update({"matplotlib": parent, "matplotlib.pyplot": pyplot})


def _cell_runner(loaded: Loaded):
    """run(names, inputs, read, seed): run the spec's named cells in the notebook's namespace, with
    `inputs` bound and the random generators seeded, and return the variables named in `read`. The
    namespace is restored afterwards, so one check's run leaves nothing behind for the next."""

    def run(names: list[str], inputs: dict | None = None, read: Sequence[str] = (), seed: int = 0) -> dict:
        namespace = loaded.module.__dict__
        saved = dict(namespace)
        try:
            _seed_everything(int(seed))
            namespace.update(inputs or {})
            for name in names:
                if name not in loaded.cells and name in loaded.shared:
                    number, first = loaded.shared[name]
                    raise LookupError(f"this check runs the cell of your notebook {_selected(loaded.selectors.get(name))}, "
                                      f"and that is cell {number}, which is also the cell "
                                      f"{_selected(loaded.selectors.get(first))}: the two must be cells of their own, "
                                      "as in the notebook handed out (split that cell)")
                if name not in loaded.cells:
                    raise LookupError(f"this check runs the cell of your notebook {_selected(loaded.selectors.get(name))}, "
                                      "and no cell is: keep that cell as it was handed out (that line, or that tag), "
                                      "and make your changes around it")
                if name in loaded.ambiguous:
                    raise LookupError(_ambiguous(loaded, name))
                number, code = loaded.cells[name]
                if not code.strip() and loaded.sources[number - 1].lstrip().startswith("%%"):
                    magic = loaded.sources[number - 1].lstrip().split("\n", 1)[0].strip()
                    raise LookupError(f"this check runs cell {number} of your notebook, which starts with the cell "
                                      f"magic {magic[:40]}: dldiy does not run such a cell (only %%time and "
                                      "%%capture cells run); remove that line")
                filename = f"{loaded.path}[cell {number}]"
                linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
                try:
                    exec(compile(code, filename, "exec"), namespace)
                except NameError as e:  # the name a cell that failed at load would have defined: say which
                    cause = missing_cause(loaded, e.name) if isinstance(e.name, str) and e.args else None
                    if cause is not None:
                        e.args = (f"{e.args[0]}: {cause_text(cause)}", *e.args[1:])
                    raise
                _quiet_plots()
            absent = [r for r in read if r not in namespace]
            if absent:
                raise NameError(f"after running the notebook's {' and '.join(names)} cell(s), "
                                f"no variable {absent[0]!r} is defined")
            return {r: namespace[r] for r in read}
        finally:
            namespace.clear()
            namespace.update(saved)

    return run


def _ambiguous(loaded: Loaded, name: str) -> str:
    """Why a check that runs the named cell `name` does not: its selector picks several cells. (A
    message is cut at 300 characters: the cells and the remedy come first.)"""
    numbers = loaded.ambiguous[name]
    listed = ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"
    selector, many = loaded.selectors.get(name) or {}, len(numbers) > 2
    if "tag" in selector:
        what = f"the tag {str(selector['tag'])[:40]!r}"
        fix = f"remove the tag from the other{'s' if many else ''}"
    else:
        what = f"{str(selector.get('contains'))[:60]!r} in their code"
        fix = f"delete the cop{'ies' if many else 'y'} or change that line there"
    return (f"cells {listed} {'all' if many else 'both'} have {what}: this check runs that cell, and exactly one "
            f"cell must have it (else which one is yours?). Keep it in the cell handed out; {fix}")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def code_cells(path: Path) -> list[tuple[int, str]]:
    """The notebook's code cells as (number, source), numbered 1, 2, ... as a student counts them."""
    return [(number, source) for number, source, _ in notebook_cells(path)]


def notebook_cells(path: Path) -> list[tuple[int, str, set[str]]]:
    """The notebook's code cells as (number, source, tags), numbered 1, 2, ... as a student counts them.

    Read with the json module, not nbformat: importing nbformat (jsonschema) costs about a second in
    every child, and executing code cells needs only `cells[i].cell_type`, `.source` and the tags."""
    data = path.read_bytes()
    if not data.strip():  # (course7 trial: "invalid JSON (Expecting value: line 1 column 1 (char 0))")
        raise SubmissionError(f"{path.name} is an empty file ({len(data)} bytes), not a notebook: was it saved "
                              "before it was handed in?")
    containers = data.count(b"{") + data.count(b"[")  # an upper bound on the objects json.loads would build
    if containers > MAX_NOTEBOOK_CONTAINERS:
        raise SubmissionError(f"{path.name} is not a readable notebook: it holds up to {containers} JSON objects "
                              f"and arrays, more than the cap of {MAX_NOTEBOOK_CONTAINERS} (clear its outputs, "
                              "remove empty cells)")
    try:
        nb = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise SubmissionError(f"{path.name} is not a readable notebook: invalid JSON ({str(e)[:200]})") from None
    del data
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise SubmissionError(f"{path.name} is not a readable notebook: expected a version-4 notebook "
                              f"(a JSON object with \"nbformat\": 4 and a list of \"cells\")")
    cells, number = [], 0
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1
        source = cell.get("source", "")
        if not isinstance(source, str) and not (isinstance(source, list) and all(isinstance(s, str) for s in source)):
            what = type(source).__name__ if not isinstance(source, list) else \
                "a list holding " + next(type(s).__name__ for s in source if not isinstance(s, str))
            raise SubmissionError(f"{path.name} is not a readable notebook: code cell {number}'s \"source\" is "
                                  f"{what}, not text (a string or a list of strings)")
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
        cells.append((number, "".join(source) if isinstance(source, list) else source,
                      set(map(str, tags))))
    return cells


def _strip_magics(source: str, number: int, skipped: list[str]) -> str:
    """IPython magics and shell escapes are not Python: blank them, keeping line numbers. A cell magic
    that runs its cell's code once in the notebook's namespace (`%%time`, `%%capture`: cellselect's
    RUNS_ITS_CELL) leaves that code to run; any other cell magic leaves the whole cell out."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        if not runs_its_cell(lines[0]):
            skipped.append(f"cell {number}: {lines[0].strip()} (cell magic, whole cell)")
            return ""
        skipped.append(f"cell {number}, line 1: {lines[0].strip()} (cell magic: the cell's code runs without it)")
        lines = ["", *lines[1:]]
    out = []
    for i, line in enumerate(lines, 1):
        if line.lstrip().startswith(("%", "!")):
            skipped.append(f"cell {number}, line {i}: {line.strip()}")
            out.append("")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _short(filename: str, loaded: Loaded) -> str:
    if filename.startswith(str(loaded.path) + "[cell"):
        return loaded.path.name + filename[len(str(loaded.path)):]
    try:
        return str(Path(filename).resolve().relative_to(loaded.root))
    except ValueError:
        return Path(filename).name


def student_frames(exc: BaseException, loaded: Loaded) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(exc.__traceback__) if loaded.is_student_file(f.filename)]


def describe(exc: BaseException, loaded: Loaded) -> str:
    """One line: the exception and where in the student's own code it was raised."""
    frames = student_frames(exc, loaded)
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if isinstance(exc, SystemExit):
        what = f"SystemExit (sys.exit({exc.code!r}) was called)"
    if not frames:
        return what
    last = frames[-1]
    return f"{what} ({_short(last.filename, loaded)}:{last.lineno}, in {last.name})" + _likely_cause(text, exc) + \
        _unbound_cause(exc, loaded)


def _unbound_cause(exc: BaseException, loaded: Loaded) -> str:
    """For a NameError: the cell that failed at load and would have bound the name, or the statement
    definitions mode left out that assigns it (course7 trial: `NEG_INF = ...` in the imports cell)."""
    name = getattr(exc, "name", None) if isinstance(exc, NameError) else None
    if not isinstance(name, str) or not hasattr(loaded, "failed"):
        return ""
    cause = missing_cause(loaded, name)
    dropped = _dropped_for(loaded, name)
    said = cause_text(cause) if cause is not None else _dropped_text(dropped) if dropped is not None else ""
    return f": {said}" if said and said not in str(exc) else ""


# torch's words where tensors of two dtypes meet in one operation (matmul, addmv, dot, a loss, an in-place op)
_DTYPES_MEET = re.compile(r"same dtype|expected scalar type|found dtype \w+ but expected|result type \w+ can't be cast",
                          re.IGNORECASE)


def _likely_cause(text: str, exc: BaseException | None = None) -> str:
    """A likely cause said after an exception whose words alone do not point at it ("" when none)."""
    if exc is not None and _no_network(exc):  # course6 trial: "<urlopen error [Errno -2] Name or service not known>"
        return (": the grader runs without a network, so a download fails here. The files come with the exercise "
                "(exercises/<id>/data/, in the working copy as data/): read them there, downloading only what is "
                "missing")
    if _DTYPES_MEET.search(text):
        return (": tensors of two dtypes meet there. One made inside with torch's default dtype, float32 "
                "(torch.ones(n, 1), torch.tensor(...): pass dtype=X.dtype), or one kept from an earlier call "
                "(a cache or a global, built for other inputs)?")
    return ""


def _no_network(exc: BaseException) -> bool:
    """Whether `exc` is a failed name lookup or connection: what any download raises in the sandbox."""
    import socket

    seen: BaseException | None = exc
    for _ in range(4):  # urllib's URLError wraps the socket error as its reason; requests chains it
        if seen is None:
            return False
        if isinstance(seen, (socket.gaierror, ConnectionError)) or \
                (type(seen).__name__ == "URLError" and isinstance(getattr(seen, "reason", None), OSError)):
            return True
        seen = getattr(seen, "reason", None) if isinstance(getattr(seen, "reason", None), BaseException) \
            else seen.__cause__ or seen.__context__
    return False


def trimmed_traceback(exc: BaseException, loaded: Loaded) -> str:
    """The traceback cut to the student's own frames: our harness and torch's internals left out."""
    frames = student_frames(exc, loaded)
    lines = [f'  File "{_short(f.filename, loaded)}", line {f.lineno}, in {f.name}\n'
             + (f"    {f.line}\n" if f.line else "") for f in frames]
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc)).rstrip()


def load_module_from(path: Path, name: str) -> types.ModuleType:
    """Import a trusted file (an exercise harness) by path, from its compiled code when the fork server
    compiled it (`compiled`): children write no bytecode, so each would otherwise parse it again."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    code = compiled(Path(path))
    if code is None:
        spec.loader.exec_module(module)
    else:
        exec(code, module.__dict__)
    return module


_COMPILED: dict[str, tuple[tuple[int, int], types.CodeType]] = {}


def compiled(path: Path, remember: bool = False) -> types.CodeType | None:
    """The code object of trusted file `path`, compiled once per process that asked to `remember` it
    (the fork server, so that every child it forks inherits it) and reused while the file's size and
    modification time are unchanged. Only compiled, never run: the fork server executes no harness."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key, stamp = str(path.resolve()), (stat.st_mtime_ns, stat.st_size)
    cached = _COMPILED.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    if not remember:
        return None
    code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    _COMPILED[key] = (stamp, code)
    return code
