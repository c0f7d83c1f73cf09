"""Find one submission per student in what an instructor collected, and unpack zips safely.

Layouts understood (SUBMISSIONS is the path given to `dldiy grade`):
  * a folder of per-student entries: `alice.py`, `bob.ipynb`, `carol/` (a folder), `dave.zip`;
  * nbgrader's `submitted/<student_id>/<assignment_id>/` (SUBMISSIONS is the course folder or its
    `submitted/` folder);
  * one zip holding the whole class (any of the layouts above inside);
  * a folder that is itself one submission (it holds the entry file: Gradescope's /autograder/submission).

A zip is never trusted: a member whose name is absolute or climbs out with `..`, and any symbolic link,
is refused; the bytes actually written (not the sizes the header claims) and the member count are capped.
A student whose zip breaks a rule gets an error row naming the rule; the batch goes on.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .submission import SUFFIXES

MAX_ZIP_BYTES = 50 * 1024 * 1024  # a submission is a few kB of code; 50 MB leaves room for notebooks' images
MAX_ZIP_FILES = 500


class UnsafeArchive(Exception):
    """A zip that breaks one of the extraction rules; the message names it."""


@dataclass(frozen=True)
class Found:
    """One student's submission: a path to grade, or the reason there is none."""

    student: str
    path: Path | None
    error: str | None = None


def extract_zip(archive: Path, dest: Path, max_bytes: int = MAX_ZIP_BYTES, max_files: int = MAX_ZIP_FILES) -> Path:
    """Unpack `archive` into a fresh `dest`, refusing anything that could write outside it.

    Sizes are counted as bytes are written, so a header that lies about a member's size (a zip bomb)
    is stopped at `max_bytes` all the same."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > max_files:
                raise UnsafeArchive(f"{archive.name} holds {len(members)} files, more than the cap of {max_files}")
            written = 0
            for info in members:
                target = _safe_target(dest, info)
                if target is None:
                    continue
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 16):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UnsafeArchive(f"{archive.name} unpacks to more than the cap of "
                                                f"{max_bytes // (1024 * 1024)} MB")
                        out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise UnsafeArchive(f"{archive.name} is not a readable zip archive ({e})") from None
    except UnsafeArchive:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _safe_target(dest: Path, info: zipfile.ZipInfo) -> Path | None:
    """Where `info` may be written under `dest`; raises for traversal and links; None to skip (macOS junk)."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
        raise UnsafeArchive(f"member {info.filename!r} would be written outside the submission's folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchive(f"member {info.filename!r} is a symbolic link (links are not accepted)")
    if not parts or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
        return None
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest.resolve()):  # belt and braces
        raise UnsafeArchive(f"member {info.filename!r} would be written outside the submission's folder")
    return target


def _unwrap(folder: Path) -> Path:
    """A zip of `alice/logreg.py` unpacks to one folder holding a folder: descend to the content."""
    while True:
        inside = [p for p in folder.iterdir() if not p.name.startswith(".")]
        if len(inside) != 1 or not inside[0].is_dir():
            return folder
        folder = inside[0]


def _holds_submission(folder: Path, entry: str) -> bool:
    return (folder / entry).is_file() or (folder / Path(entry).with_suffix(".ipynb").name).is_file()


def discover(submissions: Path, entry: str, assignment: str, scratch: Path) -> list[Found]:
    """One `Found` per student, sorted by student id; zips are unpacked under `scratch`."""
    submissions = Path(submissions)
    if submissions.is_file() and submissions.suffix == ".zip":
        try:
            submissions = _unwrap(extract_zip(submissions, scratch / "_class"))
        except UnsafeArchive as e:
            raise FileNotFoundError(f"cannot use {submissions}: {e}") from None
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder or a zip of submissions")
    if _holds_submission(submissions, entry):
        return [Found(submissions.resolve().name, submissions)]
    nbgrader = submissions / "submitted" if (submissions / "submitted").is_dir() else submissions
    if nbgrader.name == "submitted":
        return sorted((_nbgrader_one(d, assignment) for d in nbgrader.iterdir()
                       if d.is_dir() and not d.name.startswith(".")), key=lambda f: f.student)
    found = []
    for item in sorted(submissions.iterdir()):
        if item.name.startswith((".", "_")):
            continue
        if item.is_dir():
            found.append(Found(item.name, _unwrap(item)))
        elif item.suffix == ".zip":
            try:
                found.append(Found(item.stem, _unwrap(extract_zip(item, scratch / item.stem))))
            except UnsafeArchive as e:
                found.append(Found(item.stem, None, f"submission refused: {e}"))
        elif item.suffix in SUFFIXES:
            found.append(Found(item.stem, item))
    students = [f.student for f in found]
    duplicates = sorted({s for s in students if students.count(s) > 1})
    if duplicates:
        raise FileNotFoundError(f"more than one submission for {', '.join(duplicates)} in {submissions} "
                                "(e.g. alice.py and alice.zip): keep one per student")
    return found


def _nbgrader_one(student_dir: Path, assignment: str) -> Found:
    """nbgrader keeps `submitted/<student>/<assignment>/`: take the assignment's folder."""
    if (student_dir / assignment).is_dir():
        return Found(student_dir.name, student_dir / assignment)
    folders = [d for d in student_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if len(folders) == 1:
        return Found(student_dir.name, folders[0])
    names = ", ".join(sorted(d.name for d in folders)) or "nothing"
    return Found(student_dir.name, None, f"no folder for assignment {assignment!r} (found: {names}); "
                                         "pass --assignment")
