"""The student bundle and its leak scan: stage each exercise, build dldiy's wheel, and look for
every non-trivial reference line in what a student receives. The verb is cli/release.py."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import click

from dldiy.graders.course import notebook
from dldiy.graders.course.folders import MARKER, Course, course_root
from dldiy.graders.course.exercise import Exercise


def source_notebook(ex: Exercise):
    """The exercise's source notebook (with solutions); else a notebook the template holds, read as a
    notebook (never its JSON pasted into a cell); else one made from the starting entry file."""
    path = course_root() / "reference" / ex.id / "source.ipynb"
    if path.is_file():
        return notebook.read(path)
    for name in (ex.entry, f"{Path(ex.entry).stem}.ipynb", f"{ex.id}.ipynb"):
        candidate = ex.template_dir / name
        if candidate.suffix == ".ipynb" and candidate.is_file():
            return notebook.read(candidate)
    return notebook.template_notebook(ex)


def stage_exercise(ex: Exercise, folder: Path, notebook_for_py: bool = True) -> None:
    """The exercise's folder of the bundle: its starting files, the student notebook, the public expected
    values. `notebook_for_py=False` (an instructor's own course): a .py exercise gets no notebook beside its
    file. `dldiy check` and `dldiy grade` read the .py file, so a notebook's work would be silently
    ignored, though its own check() cell judged it (an instructor's trial: 5/5 in the notebook, 0/5
    graded). The bundle holds one file to work in, the one graded."""
    folder.mkdir(parents=True)
    if ex.start == "bugged":  # each student gets their own bug set: the instructor hands those out
        (folder / "HANDOUT.md").write_text(
            f"# {ex.id}: {ex.title}\n\nThis bug hunt is different for every student. Your instructor hands out\n"
            f"your copy (made with `dldiy start {ex.id} --student YOUR_ID DIR`); fix it, then run\n"
            f"`dldiy check {ex.id} DIR`, or open `{ex.id}.ipynb` next to your copy and run it.\n")
    _copy_template(ex, folder)
    # A notebook exercise hands in its entry: the student notebook takes that name (one notebook, the one
    # `dldiy check` and `grade` read), not a second copy beside the template's.
    notebook_entry = ex.entry.endswith(".ipynb")
    # The instructor's own empty notebook, where the template holds it, is handed out as it is, as `dldiy
    # start` hands it out (course7 trial: the bundle's copy was regenerated from the solution, its hint
    # comments replaced by `# YOUR CODE HERE` and a stub: two handouts of one exercise).
    own = notebook_entry and (ex.template_dir / ex.entry).is_file()
    if not own and (notebook_entry or notebook_for_py or ex.start == "bugged"):  # (a bug hunt's notebook drives it)
        name = ex.entry if notebook_entry else f"{ex.id}.ipynb"
        notebook.write(notebook.student_notebook(source_notebook(ex), ex.id), folder / name)
    if ex.expected_path.is_file():
        shutil.copyfile(ex.expected_path, folder / "expected.json")
    copy_data(ex, folder)


def copy_data(ex: Exercise, folder: Path) -> str | None:
    """The exercise's data/ beside the student's file, under the spec's name, as grading's working copy
    has it: the notebook's own data cell (`np.loadtxt("data/blobs.csv")`) reads it where the student works,
    offline (course6 trial: the bundle and `dldiy start` handed out the notebook alone, whose data cell then
    went to the network). Not where the template has a file of that name. Returns the name written."""
    if not ex.data_dir.is_dir() or (folder / ex.data).exists():
        return None
    shutil.copytree(ex.data_dir, folder / ex.data, ignore=shutil.ignore_patterns("__pycache__"))
    return ex.data


def _copy_template(ex: Exercise, folder: Path) -> None:
    """The exercise's template/ into `folder` (a .py file with any solution region stubbed)."""
    for src in sorted(p for p in ex.template_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        target = folder / src.relative_to(ex.template_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py":
            target.write_text(notebook.strip_solutions(src.read_text(), ex.id)[0])
        else:
            shutil.copyfile(src, target)


# What a student's `dldiy check` reads of an exercise folder: the files the wheel ships for a built-in
# exercise (pyproject.toml's package-data: spec, harness, expected values, template), and data/.
SHIPPED_FILES = ("*.toml", "*.json", "*.py")
INSTRUCTOR_ONLY = {"equivalents.toml"}  # reviewed mutation equivalents quote reference lines
BUNDLE_NAMES = {"README.md", "wheels", "exercises", MARKER}  # the bundle's own top-level names


def stage_course(course: Course, exercises: list[Exercise], folder: Path, template: bool = True) -> None:
    """An instructor's own course in the bundle, as a course of its own: a dldiy.toml, and under
    exercises/ what `dldiy check` needs of each exercise (spec, harness, expected values, template,
    shipped data). Never reference/ or buggy/ (they live beside exercises/, not in it), never the
    instructor-only files; the leak scan reads all of it like every other file of the bundle.
    `template=False`: without the templates (`dldiy check` does not read them; nbgrader's assignment
    folder hands out its own notebook)."""
    clash = sorted(ex.id for ex in exercises if ex.id in BUNDLE_NAMES)
    if clash:
        raise click.ClickException(f"release stopped: an exercise named {', '.join(clash)} would overwrite the "
                                   "bundle's own file or folder of that name; rename the exercise")
    title = course.title or course.root.name
    (folder / MARKER).write_text(
        "# Written by `dldiy release`: this folder is a dldiy course. `dldiy check EXERCISE`, run here or in\n"
        "# a folder below, finds the exercises next to this file (exercises/).\n"
        f"[course]\ntitle = {json.dumps(title)}\n")
    for ex in exercises:
        target = folder / "exercises" / ex.id
        target.mkdir(parents=True)
        for pattern in SHIPPED_FILES:
            for src in sorted(ex.folder.glob(pattern)):
                if src.is_file() and src.name not in INSTRUCTOR_ONLY:
                    shutil.copyfile(src, target / src.name)
        if template and ex.template_dir.is_dir():
            _copy_template(ex, target / "template")
        if ex.data_dir.is_dir():
            shutil.copytree(ex.data_dir, target / "data", ignore=shutil.ignore_patterns("__pycache__"))


def stage_nbgrader_course(course: Course, ex: Exercise, folder: Path) -> list[str]:
    """What the locked cell of nbgrader's notebook needs of an instructor's own course, staged into
    `folder` (the assignment's source/<id>/, beside the notebook): the course's dldiy.toml, the exercise's
    exercises/<id>/ (spec, harness, expected values, data; as in the student bundle, never reference/,
    buggy/ or the instructor-only files) and its data under the spec's name (`data = ...`, "data" by
    default), which the notebook's own data cell reads. nbgrader copies every file of the source folder
    but the notebooks into the handout (`generate_assignment`) and over each submission before running
    it (`autograde`), so the notebook finds the course through the dldiy.toml above it, in the student's
    Jupyter as under `nbgrader autograde`, and a submission's own copy of these files is never the one
    graded. Returns the names written, for the announcement. The caller runs the leak scan on them."""
    taken = {ex.entry, f"{ex.id}.ipynb", MARKER, "exercises"}
    if ex.data_dir.is_dir() and ex.data in taken:
        raise click.ClickException(f"release stopped: {ex.id}'s spec puts its data under {ex.data!r}, which "
                                   "nbgrader's assignment folder uses for something else; rename it (data = ...)")
    folder.mkdir(parents=True, exist_ok=True)
    stage_course(course, [ex], folder, template=False)
    names = [MARKER, f"exercises/{ex.id}/"]
    if ex.data_dir.is_dir():
        shutil.copytree(ex.data_dir, folder / ex.data, ignore=shutil.ignore_patterns("__pycache__"))
        names.append(f"{ex.data}/")
    return names


def build_wheel(folder: Path) -> Path:
    """dldiy's wheel, built with `pip wheel --no-deps` from a clean copy of what is packaged (never
    reference/ or buggy/; setuptools would also reuse a stale build/ folder in the checkout)."""
    import dldiy

    root = Path(dldiy.__file__).resolve().parent.parent  # the checkout dldiy runs from
    if not (root / "pyproject.toml").is_file():
        raise click.ClickException(f"release builds dldiy's wheel from its checkout; {root} is not one "
                                   "(pip install -e . from the course repository)")
    with tempfile.TemporaryDirectory(prefix="dldiy-wheel-") as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copyfile(root / name, src / name)
        for name in ("dldiy", "cli", "graders", "exercises"):
            shutil.copytree(root / name, src / name, ignore=ignore)
        folder.mkdir(parents=True, exist_ok=True)
        for isolation in ([], ["--no-build-isolation"]):  # offline machines cannot fetch setuptools
            run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation,
                                  "-w", str(folder), str(src)], capture_output=True, text=True)
            if run.returncode == 0:
                break
        else:
            raise click.ClickException(f"release stopped: building dldiy's wheel failed:\n{run.stderr[-2000:]}")
    (wheel,) = folder.glob("dldiy-*.whl")
    return wheel


def bundle_readme(exercises: list[Exercise], wheel: str, course: Course | None = None) -> str:
    """The bundle's README: how to install the wheel, and how to check one's work. `course`: an
    instructor's own course (its exercises are in the bundle, found through its dldiy.toml)."""
    title = (course.title or course.root.name) if course is not None else "Deep Learning DIY"
    lines = [f"# {title}: exercises", ""]
    if course is not None:
        lines += ["This folder is the course for `dldiy`: `dldiy.toml` marks it, and `exercises/` holds what",
                  "`dldiy check` needs to check your work (the checks, their expected values, the data; no",
                  "solution). Keep the folder together.", ""]
    lines += ["## Install dldiy (offline)", "",
              "The wheel is in `wheels/`. Where torch, numpy, matplotlib, scikit-learn, rich, click and nbformat",
              "are already installed (Colab, the course's Docker image), no network is needed:", "",
              "```bash", f"pip install --no-deps wheels/{wheel}", "```", "",
              "Otherwise, on a machine with a network, fetch the dependencies once next to the wheel:", "",
              "```bash", f"pip download -d wheels/ wheels/{wheel}", "```", "",
              "and then, offline:", "",
              "```bash", "pip install --no-index --find-links wheels/ dldiy", "```", "",
              "(in a notebook, prefix these commands with `!` or use `%pip`).", ""]
    needs = list(dict.fromkeys(r for ex in exercises for r in ex.requirements)) if course is not None else []
    if needs:
        lines += ["The exercises also need " + ", ".join(f"`{r}`" for r in needs) + "; where one is missing:", "",
                  "```bash", "pip install " + " ".join(shlex.quote(r) for r in needs), "```", ""]
    lines += ["## Work", ""]
    if course is None:
        lines += ["In each folder: work in the notebook (each part ends with a `check(...)` cell) or in the .py",
                  "file, and run `dldiy check EXERCISE FILE` (add `--plots DIR` for the pictures as SVG files).", ""]
    else:
        lines += ["Work in each exercise's folder. Then, from this folder (the one holding `dldiy.toml`) or any",
                  "folder below it, run `dldiy check EXERCISE`: it checks your work in the folder `EXERCISE/`",
                  "(`dldiy check EXERCISE PATH` checks another copy; add `--plots DIR` for the pictures as SVG",
                  "files).", ""]
    for ex in exercises:
        kind = "bug hunt: your own bugged copy comes from your instructor" if ex.start == "bugged" else "implement"
        how = f": `dldiy check {ex.id}` checks `{ex.id}/{ex.entry}`" if course is not None and ex.start != "bugged" else ""
        lines.append(f"- `{ex.id}/`: {ex.title} ({kind}){how}")
    return "\n".join(lines) + "\n"


def reference_lines(root: Path) -> dict[str, str]:
    """Every non-trivial line of every file under root/reference, normalised -> "file:line".

    Non-trivial: code (not blank, a comment or a docstring), at least 8 characters without spaces,
    and not a def/class/import line (signatures are the public API). In a source notebook only the
    solution regions count (the rest is the handout). A line that is handed out anyway is public by
    the instructor's choice, whichever exercise hands it out: a line of any exercise's template (a bug
    hunt's starting code shares most of the reference), or of any source notebook outside its solution
    regions (scaffolding such as a given training loop that another exercise's reference also holds)."""
    public = public_lines(root)
    out: dict[str, str] = {}
    for path in sorted((root / "reference").rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        for number, line in _solution_lines(path):
            key = normalise(line)
            if _non_trivial(line) and key not in public:
                out.setdefault(key, f"{path.relative_to(root)}:{number}")
    return out


def public_lines(root: Path) -> set[str]:
    """Normalised lines every student gets: all templates, all source notebooks' scaffolding, and the lines
    the instructor declares public in dldiy.toml (`[release] public_lines = ["rng = np.random.default_rng(seed)"]`:
    boilerplate a reference shares with a harness, which the scan cannot tell from a solution)."""
    public: set[str] = set()
    marker = root / "dldiy.toml"
    if marker.is_file():
        import tomllib

        try:
            declared = tomllib.loads(marker.read_text()).get("release", {}).get("public_lines", [])
        except tomllib.TOMLDecodeError:
            declared = []  # (the course's loader reports a malformed dldiy.toml)
        public |= {normalise(line) for line in declared if isinstance(line, str)}
    for t in (root / "exercises").glob("*/template/**/*"):
        if t.is_file():
            public |= {normalise(line) for line in _text_lines(t)}
    for source in (root / "reference").glob("*/source.ipynb"):
        handout = notebook.student_notebook(notebook.read(source))
        public |= {normalise(line) for cell in handout.cells for line in cell.source.splitlines()}
    return public


def leaks(bundle: Path, root: Path | None = None) -> list[str]:
    """'bundle file: reference line' for each reference line found in a file of the bundle (a
    notebook's cells and outputs; a wheel's student-facing members), and each function of the bundle's
    Python code (a harness) that is a reference function with its names or constants changed
    (`function_leaks`)."""
    root = root or course_root()
    wanted = reference_lines(root)
    found = []
    for path in sorted(bundle.rglob("*")):
        if path.is_file():
            for where_in, line in _reader_lines(path):
                where = wanted.get(normalise(line))
                if where:
                    found.append(f"{path.relative_to(bundle)}{where_in}: {line.strip()!r} (from {where})")
    return found + function_leaks(bundle, root)


# A harness function whose normalised body is this close to a reference function's (difflib's ratio of their token
# sequences) is that function: a copy with names renamed, a constant changed or a line added (course8's trial shipped
# a complete k-means update that way, one variable renamed, past the line-by-line scan).
SAME_FUNCTION = 0.85
# ... and this close where the harness function has the reference function's own name (an `update` nested in an
# `own_update`, `_softmax` beside softmax): a version of the student's function, written a little differently
SAME_NAMED_FUNCTION = 0.6
# Functions smaller than this many tokens are too short to be a solution of their own (a return of one call)
MIN_FUNCTION_TOKENS = 40


def function_leaks(bundle: Path, root: Path, wheels: bool = False) -> list[str]:
    """'bundle file: function NAME (line N) is REFERENCE's NAME (line M) ...' for each function in the bundle's Python
    files (the harnesses, a wheel's exercises/*/harness.py) whose body, with every identifier and constant normalised,
    equals or nearly equals a reference function's (solution code only: a notebook's solution regions). A function
    declared public in dldiy.toml (`[release] public_functions = ["exercises/ex/harness.py:own_update"]`, or its name
    alone) is left out: shipping it is the instructor's choice. `wheels`: the harnesses inside the bundle's wheels
    (dldiy's built-in exercises, whose references are the course's only where the course is dldiy's own) instead of
    the bundle's own files."""
    public = public_functions(root)
    reference = reference_functions(root)
    if not reference:
        return []
    found = []
    for path in sorted(bundle.rglob("*")):
        if not path.is_file():
            continue
        if (path.suffix in (".whl", ".zip")) != wheels:
            continue
        parts = path.relative_to(bundle).parts
        if not wheels and ("exercises" not in parts or "template" in parts or "data" in parts):
            continue  # the course's code (harnesses), not what students are handed to work in (a bug hunt's code)
        for where_in, text in _python_sources(path):
            shown = f"{path.relative_to(bundle)}{where_in}"
            matches = []
            functions = _functions(text)
            declared = [line for name, line, _, _ in functions
                        if name in public or f"{shown}:{name}" in public or f"{_course_path(shown)}:{name}" in public]
            for name, line, tokens, end in functions:
                if any(line <= other <= end for other in declared):
                    continue  # declared public, or around one that is (own_update around its update)
                match = _closest(tokens, reference, name)
                if match is not None:
                    matches.append((name, line, end, match))
            for name, line, end, ((ref_where, ref_name, ref_line), ratio) in matches:
                if any(line < other[1] <= end and other[3][0] == (ref_where, ref_name, ref_line) for other in matches):
                    continue  # a function around the one that is the copy (own_update around its update): said once
                same = ("is" if ratio == 1.0 else f"nearly is ({ratio:.0%} of its normalised code the same)")
                found.append(
                    f"{shown}: function {name} (line {line}) {same} {ref_where}'s {ref_name} (line {ref_line}), "
                    "names and constants aside: the harness ships to students, who would read a solution there. "
                    "Write it differently (torch's own function, autograd of the loss, another algorithm), or "
                    f"declare it public in dldiy.toml: [release] public_functions = [\"{_course_path(shown)}:{name}\"]")
    return found


def _course_path(shown: str) -> str:
    """A bundle's or a wheel member's path as the course folder names it (exercises/ex/harness.py)."""
    path = shown.split("!")[-1]
    parts = path.split("/")
    return "/".join(parts[parts.index("exercises"):]) if "exercises" in parts else path


def public_functions(root: Path) -> set[str]:
    """The functions the instructor declares public in dldiy.toml (`[release] public_functions`)."""
    marker = root / "dldiy.toml"
    if not marker.is_file():
        return set()
    import tomllib

    try:
        declared = tomllib.loads(marker.read_text()).get("release", {}).get("public_functions", [])
    except tomllib.TOMLDecodeError:
        return set()
    return {d for d in declared if isinstance(d, str)}


def reference_functions(root: Path) -> list[tuple[tuple[str, str, int], list[str]]]:
    """((file, name, line), normalised tokens) of every function of the reference solutions that holds solution code."""
    out = []
    for path in sorted((root / "reference").rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix not in (".py", ".ipynb"):
            continue
        where = str(path.relative_to(root))
        if path.suffix == ".py":
            out += [((where, name, line), tokens) for name, line, tokens, _ in _functions(path.read_text())]
            continue
        try:
            cells = json.loads(path.read_text())["cells"]
        except (ValueError, KeyError):
            continue
        for cell in cells:
            source = "".join(cell.get("source", ""))
            if cell.get("cell_type") == "code" and notebook.BEGIN in source:
                solution = {i for i, line in _solution_lines_of_cell(source)}
                out += [((where, name, line), tokens) for name, line, tokens, _ in _functions(source, solution)]
    return out


def _solution_lines_of_cell(source: str) -> list[tuple[int, str]]:
    out, inside = [], False
    for i, line in enumerate(source.split("\n"), 1):
        if notebook.BEGIN in line or notebook.END in line:
            inside = notebook.BEGIN in line
        elif inside:
            out.append((i, line))
    return out


def _python_sources(path: Path) -> list[tuple[str, str]]:
    """('', text) for a .py file of the bundle; ('!member', text) for a wheel's exercises' harnesses."""
    if path.suffix == ".py":
        try:
            return [("", path.read_text())]
        except (UnicodeDecodeError, OSError):
            return []
    if path.suffix not in (".whl", ".zip"):
        return []
    with zipfile.ZipFile(path) as z:
        return [(f"!{name}", z.read(name).decode("utf-8", "replace")) for name in z.namelist()
                if name.endswith("/harness.py") and "/exercises/" in f"/{name}"]


def _functions(source: str, solution: set[int] | None = None) -> list[tuple[str, int, list[str], int]]:
    """(name, line, tokens, last line) of every function in source (nested ones and methods too), its body's AST with every
    identifier and constant normalised (names in order of first use: a renamed variable reads the same), its docstring
    dropped; with `solution` (line numbers), only the functions that hold one of those lines."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        end = node.end_lineno or node.lineno
        if solution is not None and not any(node.lineno <= i <= end for i in solution):
            continue
        body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr) and isinstance(
            node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)) else node.body
        tokens = _normalised_tokens(body)
        if len(tokens) >= MIN_FUNCTION_TOKENS:
            out.append((node.name, node.lineno, tokens, end))
    return out


def _normalised_tokens(body: list) -> list[str]:
    import ast

    names: dict[str, str] = {}

    def name(n: str) -> str:
        return names.setdefault(n, f"v{len(names)}")

    tokens: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, ast.AST):
            tokens.append(type(node).__name__)
            for field, value in ast.iter_fields(node):
                if field in ("ctx", "type_comment", "kind"):
                    continue
                if field in ("id", "arg") and isinstance(value, str):
                    tokens.append(name(value))
                elif field == "value" and isinstance(node, ast.Constant):
                    tokens.append("const")
                elif isinstance(value, list):
                    tokens.append("[")
                    for item in value:
                        visit(item)
                    tokens.append("]")
                else:
                    visit(value)
        elif isinstance(node, str):
            tokens.append(node)  # an attribute's name (.sum, .mean): what the code does, not what it calls things

    for statement in body:
        visit(statement)
    return tokens


def _bare(name: str) -> str:
    """A function's name without the prefixes a harness gives its own versions (_softmax, own_update, exact_cell)."""
    name = name.lstrip("_")
    for prefix in ("own_", "exact_", "harness_", "my_", "ref_", "reference_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _closest(tokens: list[str], reference: list, name: str = "") -> tuple[tuple[str, str, int], float] | None:
    """The reference function whose tokens are SAME_FUNCTION or closer to these (SAME_NAMED_FUNCTION where it has
    this function's name), with the ratio (None: none is)."""
    import difflib

    best = None
    for where, ref_tokens in reference:
        wanted = SAME_NAMED_FUNCTION if name and _bare(name) == _bare(where[1]) else SAME_FUNCTION
        if min(len(tokens), len(ref_tokens)) < wanted * max(len(tokens), len(ref_tokens)):
            continue  # (the ratio cannot reach it)
        if tokens == ref_tokens:
            return where, 1.0
        matcher = difflib.SequenceMatcher(None, tokens, ref_tokens, autojunk=False)
        if matcher.real_quick_ratio() < wanted or matcher.quick_ratio() < wanted:
            continue
        ratio = matcher.ratio()
        if ratio >= wanted and (best is None or ratio > best[1]):
            best = (where, ratio)
    return best


def _reader_lines(path: Path) -> list[tuple[str, str]]:
    """('', line) for a file; ('!member', line) for what a student reads in a wheel: its templates,
    specs, expected values and notebooks (the graders' own code shares idioms with references
    without holding a solution, see tests/test_packaging.py)."""
    if path.suffix not in (".whl", ".zip"):
        return [("", line) for line in _text_lines(path)]
    out = []
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith(".py") and "/template/" not in name:
                continue
            text = z.read(name).decode("utf-8", "replace")
            if name.endswith(".ipynb"):
                cells = json.loads(text).get("cells", [])
                text = "\n".join("".join(c.get("source", "")) for c in cells)
            out += [(f"!{name}", line) for line in text.splitlines()]
    return out


def normalise(line: str) -> str:
    code = line.split("  #")[0] if not line.lstrip().startswith("#") else line
    return "".join(code.split())


def _non_trivial(line: str) -> bool:
    s = line.strip()
    return (len(normalise(s)) >= 8 and not s.startswith(("#", "def ", "class ", "import ", "from ", "@", '"""', "'''"))
            and notebook.BEGIN not in s and notebook.END not in s and not _plumbing(s))


_PLUMBING_CALLS = frozenset({"len", "range", "enumerate", "zip", "int", "float", "list", "tuple", "dict", "print"})


def _plumbing(line: str) -> bool:
    """A line that computes nothing a solution is made of: a return or an assignment of names, attributes,
    constants, tuples of them, or a builtin such as len() of them (`n = len(y)`, `return W, b, losses`):
    every program has such lines, and a harness sharing one with a reference leaks nothing."""
    import ast

    try:
        tree = ast.parse(line)
    except SyntaxError:  # a line of a block (if ...:, a continuation): judged as code
        return False
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Return, ast.Assign, ast.AnnAssign)):
        return False
    value = tree.body[0].value
    for node in ast.walk(value) if value is not None else ():
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _PLUMBING_CALLS):
                return False
        elif isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Constant):  # X.shape[0] only
            return False
        elif not isinstance(node, (ast.Name, ast.Attribute, ast.Constant, ast.Tuple, ast.List, ast.Subscript,
                                   ast.expr_context)):
            return False
    return True


def _solution_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of a reference file's code: docstrings dropped; in a notebook, the
    solution regions of its code cells (numbered within the cell)."""
    if path.suffix == ".ipynb":
        out = []
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                inside = False
                for i, line in enumerate("".join(cell["source"]).split("\n"), 1):
                    if notebook.BEGIN in line or notebook.END in line:
                        inside = notebook.BEGIN in line
                    elif inside:
                        out.append((i, line))
        return out
    lines = _text_lines(path)
    if path.suffix == ".py":
        docstrings = _docstring_lines(path.read_text())
        return [(i, line) for i, line in enumerate(lines, 1) if i not in docstrings]
    return list(enumerate(lines, 1))


def _docstring_lines(source: str) -> set[int]:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            out |= set(range(body[0].lineno, body[0].end_lineno + 1))
    return out


def _text_lines(path: Path) -> list[str]:
    """A file's lines as a reader sees them; a notebook's cells and outputs, not its JSON."""
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return []
    if path.suffix != ".ipynb":
        return text.splitlines()
    lines = []
    for cell in json.loads(text).get("cells", []):
        lines += "".join(cell.get("source", "")).splitlines()
        for output in cell.get("outputs", []):
            lines += "".join(output.get("text", "")).splitlines()
            for value in output.get("data", {}).values():
                lines += "".join(value).splitlines() if isinstance(value, (str, list)) else []
    return lines
