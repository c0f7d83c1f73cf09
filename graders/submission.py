"""The one loader: a reference, a bugged variant and a student's work are all loaded here.

A submission is a `.py` file, a notebook, or a folder holding the exercise's entry file (a multi-file
project is a folder whose entry imports its siblings). `locate` runs in the trusted parent (no
import of student code); `load` runs in the child.
"""

from __future__ import annotations

import importlib.util
import json
import linecache
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = (".py", ".ipynb")


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


@dataclass
class Loaded:
    """A loaded submission: its namespace, and how to tell its own frames in a traceback."""

    module: types.ModuleType
    path: Path
    root: Path  # files under root are the student's
    skipped: list[str] = field(default_factory=list)  # notebook lines not executed (magics, shell)

    def is_student_file(self, filename: str) -> bool:
        if filename.startswith(str(self.path) + "[cell"):
            return True
        try:
            return Path(filename).resolve().is_relative_to(self.root)
        except (OSError, ValueError):
            return False


def load(path: Path) -> Loaded:
    """Execute the submission once, as `import` would, turning every failure into SubmissionError."""
    path = Path(path).resolve()
    root = path.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # a multi-file project imports its siblings
    module = types.ModuleType(_module_name(path))
    module.__file__ = str(path)
    loaded = Loaded(module, path, root)
    try:
        if path.suffix == ".ipynb":
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


def code_cells(path: Path) -> list[tuple[int, str]]:
    """The notebook's code cells as (number, source), numbered 1, 2, ... as a student counts them.

    Read with the json module, not nbformat: importing nbformat (jsonschema) costs about a second in
    every child, and executing code cells needs only `cells[i].cell_type` and `.source`."""
    try:
        nb = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise SubmissionError(f"{path.name} is not a readable notebook: invalid JSON ({str(e)[:200]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise SubmissionError(f"{path.name} is not a readable notebook: expected a version-4 notebook "
                              f"(a JSON object with \"nbformat\": 4 and a list of \"cells\")")
    cells, number = [], 0
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1
        source = cell.get("source", "")
        cells.append((number, "".join(source) if isinstance(source, list) else str(source)))
    return cells


def _strip_magics(source: str, number: int, skipped: list[str]) -> str:
    """IPython magics and shell escapes are not Python: blank them, keeping line numbers."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        skipped.append(f"cell {number}: {lines[0].strip()} (cell magic, whole cell)")
        return ""
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
    return f"{what} ({_short(last.filename, loaded)}:{last.lineno}, in {last.name})"


def trimmed_traceback(exc: BaseException, loaded: Loaded) -> str:
    """The traceback cut to the student's own frames: our harness and torch's internals left out."""
    frames = student_frames(exc, loaded)
    lines = [f'  File "{_short(f.filename, loaded)}", line {f.lineno}, in {f.name}\n'
             + (f"    {f.line}\n" if f.line else "") for f in frames]
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc)).rstrip()


def load_module_from(path: Path, name: str) -> types.ModuleType:
    """Import a trusted file (an exercise harness) by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
