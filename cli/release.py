"""`dldiy release OUTDIR`: the student bundle; `dldiy release --nbgrader COURSE_DIR`: nbgrader's source/.

The bundle holds, per exercise, the starting files (the template, or for a bug-hunting exercise,
a note where a bug hunt is handed out per student), the student notebook (the source notebook with its
solution regions stubbed), and the public expected values. It never holds reference code: before
anything is written, every non-trivial line of every file under reference/ is looked for in it, and
the release stops if one is found.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import click

from dldiy.graders import notebook
from dldiy.graders.course import course_root
from dldiy.graders.exercise import Exercise, exercise_ids, load_exercise


@click.command("release")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--nbgrader", "nbgrader", is_flag=True,
              help="Write nbgrader's source/<exercise>/ notebooks into the course folder OUTDIR instead.")
@click.option("-e", "--exercise", "only", multiple=True, metavar="EXERCISE", help="Only this exercise (repeatable).")
@click.option("--force", is_flag=True, help="Replace what an earlier release wrote.")
def release_command(outdir: Path, nbgrader: bool, only: tuple[str, ...], force: bool) -> None:
    """Build the student bundle in OUTDIR (or, with --nbgrader, nbgrader's source/ in OUTDIR)."""
    exercises = [load_exercise(e) for e in (only or exercise_ids())]
    with tempfile.TemporaryDirectory(prefix="dldiy-release-") as tmp:
        staged = Path(tmp)
        for ex in exercises:
            if nbgrader and ex.start == "bugged":
                click.echo(f"  {ex.id}: skipped (a bug hunt, handed out per student: dldiy start {ex.id} --student ID)")
                continue
            if nbgrader:
                nb = notebook.nbgrader_notebook(source_notebook(ex), ex)
                notebook.write(nb, staged / "source" / ex.id / f"{ex.id}.ipynb")
            else:
                stage_exercise(ex, staged / ex.id)
        if not nbgrader:
            (staged / "README.md").write_text(bundle_readme(exercises))
        found = [] if nbgrader else leaks(staged)  # nbgrader's source/ holds solutions by design
        if found:
            raise click.ClickException("release stopped: reference code found in it\n  " + "\n  ".join(found[:20]))
        targets = [outdir / "source" / ex.id for ex in exercises] if nbgrader else [outdir / ex.id for ex in exercises]
        existing = [str(t) for t in targets if t.exists()]
        if existing and not force:
            raise click.ClickException(f"{', '.join(existing)} already exists (use --force to replace it)")
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)
        outdir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, outdir, dirs_exist_ok=True)
    for target in targets:
        click.echo(f"  wrote {target}")
    if nbgrader:
        click.echo(f"Next: cd {outdir} && nbgrader generate_assignment EXERCISE")


def source_notebook(ex: Exercise):
    """The exercise's source notebook (with solutions), or one made from its starting entry file."""
    path = course_root() / "reference" / ex.id / "source.ipynb"
    return notebook.read(path) if path.is_file() else notebook.template_notebook(ex)


def stage_exercise(ex: Exercise, folder: Path) -> None:
    folder.mkdir(parents=True)
    if ex.start == "bugged":  # each student gets their own bug set: the instructor hands those out
        (folder / "HANDOUT.md").write_text(
            f"# {ex.id}: {ex.title}\n\nThis bug hunt is different for every student. Your instructor hands out\n"
            f"your copy (made with `dldiy start {ex.id} --student YOUR_ID DIR`); fix it, then run\n"
            f"`dldiy check {ex.id} DIR`.\n")
    for src in sorted(p for p in ex.template_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        target = folder / src.relative_to(ex.template_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py":
            target.write_text(notebook.strip_solutions(src.read_text())[0])
        else:
            shutil.copyfile(src, target)
    source = course_root() / "reference" / ex.id / "source.ipynb"
    if source.is_file():
        notebook.write(notebook.student_notebook(notebook.read(source)), folder / f"{ex.id}.ipynb")
    if ex.expected_path.is_file():
        shutil.copyfile(ex.expected_path, folder / "expected.json")


def bundle_readme(exercises: list[Exercise]) -> str:
    lines = ["# Deep Learning DIY: exercises", "",
             "Install dldiy, then in each folder: work in the notebook or the .py file, and run",
             "`dldiy check EXERCISE FILE` (or `check(\"EXERCISE\")` in the notebook's last cell).", ""]
    for ex in exercises:
        kind = "bug hunt: your own bugged copy comes from your instructor" if ex.start == "bugged" else "implement"
        lines.append(f"- `{ex.id}/`: {ex.title} ({kind})")
    return "\n".join(lines) + "\n"


# -- the leak scan ---------------------------------------------------------------------------------

def reference_lines(root: Path) -> dict[str, str]:
    """Every non-trivial line of every file under root/reference, normalised -> "file:line".

    Non-trivial: code (not blank, a comment or a docstring), at least 8 characters without spaces,
    and not a def/class/import line (signatures are the public API). In a source notebook only the
    solution regions count (the rest is the handout). A line that the exercise's own template holds
    is public by the instructor's choice (a bug hunt's starting code shares most of the reference)."""
    out: dict[str, str] = {}
    for path in sorted((root / "reference").rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        exercise_id = path.relative_to(root / "reference").parts[0]
        public = set()
        template = root / "exercises" / exercise_id / "template"
        for t in (template.rglob("*") if template.is_dir() else []):
            if t.is_file():
                public |= {normalise(line) for line in _text_lines(t)}
        for number, line in _solution_lines(path):
            key = normalise(line)
            if _non_trivial(line) and key not in public:
                out.setdefault(key, f"{path.relative_to(root)}:{number}")
    return out


def leaks(bundle: Path, root: Path | None = None) -> list[str]:
    """'bundle file: reference line' for each reference line found in a file of the bundle."""
    wanted = reference_lines(root or course_root())
    found = []
    for path in sorted(bundle.rglob("*")):
        if path.is_file():
            for line in _text_lines(path):
                where = wanted.get(normalise(line))
                if where:
                    found.append(f"{path.relative_to(bundle)}: {line.strip()!r} (from {where})")
    return found


def normalise(line: str) -> str:
    code = line.split("  #")[0] if not line.lstrip().startswith("#") else line
    return "".join(code.split())


def _non_trivial(line: str) -> bool:
    s = line.strip()
    return (len(normalise(s)) >= 8 and not s.startswith(("#", "def ", "class ", "import ", "from ", "@", '"""', "'''"))
            and notebook.BEGIN not in s and notebook.END not in s)


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
