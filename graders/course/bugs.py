"""Writing and reading bugged variants: `buggy/<exercise>/<bug>/` = `manifest.toml` + `bug.diff`.

A bug is the diff between the reference and an edited copy of it, never a copy: a copy drifts silently
when the reference changes, a diff that no longer applies fails loudly (graders/course/patch.py is strict).
`diff_from` writes that diff from an edited file or folder and proves it rebuilds the edit byte for
byte; `new_bug` stores it with a manifest skeleton (`dldiy bug new`); `build_bugged` writes the
bugged copy a grader, a test or `dldiy bug show --apply` runs.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from .folders import BuggyVariant, CourseError, buggy_variants, current, reference_path
from .handout import build, read_files
from .notebook import as_edit_of
from .patch import PatchError, apply_to_files

DIFF = "bug.diff"
MANIFEST = "manifest.toml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

SKELETON = '''\
# A bugged variant of {exercise}: bug.diff beside this file is the bug, as a patch against reference/{exercise}/.
# description: the mistake, in one line; caught_by: the checks that must fail (`dldiy validate {exercise}` proves they do).
description = "TODO: the mistake, in one line, as a student would make it"
caught_by = []  # TODO: the checks that must fail, e.g. ["gradcheck"]
patch = "{diff}"
# pattern = ""          # the entry of the bug-patterns catalogue this bug is an instance of
# crashes_at = ""       # instead of caught_by: "file" or "file:line" every check's error must name
# requires = "cuda"     # only if the bug shows only on that accelerator
'''


def unified_diff(reference: dict[str, str], edited: dict[str, str]) -> str:
    """The `diff -u` of every file of `edited` against the reference's file of the same path (a/, b/ paths)."""
    out: list[str] = []
    for path in sorted(edited):
        if edited[path] == reference[path]:
            continue
        out += difflib.unified_diff(reference[path].splitlines(keepends=True), edited[path].splitlines(keepends=True),
                                    f"a/{path}", f"b/{path}")
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)
    return text


def edited_files(reference: Path, edited: Path, notes: list[str] | None = None) -> dict[str, str]:
    """{path relative to the reference: text} of `edited`: a folder laid out like the reference (files it
    lacks are the reference's), or one file, matched to the reference's only file of that name (or, where
    none has it, its only file of that kind: a student's `lab6.ipynb` for the source `source.ipynb`). A
    notebook is taken as an edit of the reference's (graders/course/notebook.py's `as_edit_of`): only its
    code counts, so a student's executed notebook makes a diff of the lines they changed, not of its
    outputs, ids and metadata. `notes` collects what the instructor should know of the matching."""
    notes = [] if notes is None else notes
    ref = read_files(reference)
    edited = Path(edited)
    if edited.is_file():
        matches = [path for path in ref if Path(path).name == edited.name]
        if not matches:
            matches = [path for path in ref if Path(path).suffix == edited.suffix]
            if len(matches) == 1:
                notes.append(f"{edited.name} taken as the reference's {matches[0]} (its only {edited.suffix} file)")
        if len(matches) != 1:
            raise CourseError(f"{edited}: the reference has {len(matches) or 'no'} file(s) named {edited.name}; "
                              "give the edited folder instead")
        files = {matches[0]: edited.read_text()}
    elif edited.is_dir():
        files = read_files(edited)
        extra = sorted(set(files) - set(ref) - {MANIFEST, DIFF})
        if extra:  # a patch only modifies the reference's files (graders/course/patch.py)
            raise CourseError(f"{edited}: {', '.join(extra)} not in the reference: a bug may only edit its files")
        files = {path: text for path, text in files.items() if path in ref}
    else:
        raise CourseError(f"{edited}: no such file or folder")
    for path in [p for p in files if p.endswith(".ipynb") and files[p] != ref[p]]:
        try:
            files[path], said = as_edit_of(ref[path], files[path])
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # (json's errors are ValueErrors)
            raise CourseError(f"{edited}: {path} is not a notebook that can be read ({e})") from None
        notes += [f"{path}: {note}" for note in said]
    return files


def diff_from(reference: Path, edited: Path, notes: list[str] | None = None) -> str:
    """The bug.diff that turns `reference` into `edited`, proven to rebuild every edited file byte for byte."""
    ref, files = read_files(reference), edited_files(reference, edited, notes)
    diff = unified_diff(ref, files)
    if not diff:
        raise CourseError(f"{edited} is identical to the reference: that is no bug")
    rebuilt = apply_to_files(ref, diff)
    wrong = [path for path in files if rebuilt[path] != files[path]]
    if wrong:  # a text quirk the patch format cannot carry (e.g. a lone \r): say so, never store it
        raise CourseError(f"the diff does not rebuild {', '.join(wrong)} exactly; edit the file(s) as plain text")
    return diff


def bug_folder(exercise_id: str, name: str) -> Path:
    return current().buggy / exercise_id / name


def new_bug(exercise_id: str, name: str, edited: Path, notes: list[str] | None = None) -> Path:
    """Write buggy/<exercise>/<name>/bug.diff (the edit as a patch) and a manifest skeleton; the folder
    (`notes`: what the instructor should know of how the edit was read)."""
    if not _NAME.match(name):
        raise CourseError(f"{name!r}: a bug's name is lowercase letters, digits, '.', '_' and '-'")
    folder = bug_folder(exercise_id, name)
    if folder.exists():
        raise CourseError(f"{folder} already exists: choose another name (or delete it first)")
    diff = diff_from(reference_path(exercise_id), edited, notes)
    folder.mkdir(parents=True)
    (folder / DIFF).write_text(diff)
    (folder / MANIFEST).write_text(SKELETON.format(exercise=exercise_id, diff=DIFF))
    return folder


def variant(exercise_id: str, name: str) -> BuggyVariant:
    """The bugged variant `name` of the exercise, or CourseError listing the ones there are."""
    found = {v.id: v for v in buggy_variants(exercise_id)}
    if name not in found:
        raise CourseError(f"{exercise_id} has no bug {name!r}; it has: {', '.join(found) or 'none'}")
    return found[name]


def build_bugged(exercise_id: str, name: str, dest: Path) -> Path:
    """The reference with bug `name` applied, written to `dest` (which must not exist)."""
    if Path(dest).exists():
        raise CourseError(f"{dest} already exists")
    return build(reference_path(exercise_id), [variant(exercise_id, name)], Path(dest))


def check_applies(bug: BuggyVariant) -> None:
    """CourseError naming the variant when its patch no longer applies to the reference."""
    try:
        apply_to_files(read_files(reference_path(bug.exercise)), bug.patch.read_text())
    except (PatchError, OSError) as e:
        raise CourseError(f"buggy/{bug.exercise}/{bug.id}: {e}") from None
