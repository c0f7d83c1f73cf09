"""Find one submission per student in what an instructor collected, and unpack zips safely.

Layouts understood (SUBMISSIONS is the path given to `dldiy grade`):
  * a folder of per-student entries: `alice.py`, `bob.ipynb`, `carol/` (a folder), `dave.zip`;
  * nbgrader's `submitted/<student_id>/<assignment_id>/` (SUBMISSIONS is the course folder or its
    `submitted/` folder);
  * one zip holding the whole class (any of the layouts above inside);
  * a folder that is itself one submission (it holds the entry file: Gradescope's /autograder/submission).

Nothing a student hands in is trusted, and nothing about one student can stop the batch: every rule
broken, and every error met while unpacking or reading a submission, becomes that student's error row.
Sizes are checked before anything is parsed:
  * a zip: its size on disk, then its end-of-central-directory record (entry count and directory size)
    before zipfile reads the directory, then the declared sizes, name lengths and file/folder clashes
    before a byte is written; the bytes actually written (not the sizes the header claims) are capped
    too; a member whose name is absolute or climbs out with `..`, and any symbolic link, is refused;
  * a folder: its file count and bytes; a symbolic link anywhere in it, or on the way to it inside
    SUBMISSIONS, is refused (the trusted parent never follows a link out of a student's own folder);
  * a notebook: its bytes, then the nesting depth of its JSON, before json.loads sees it.
Each graded submission carries the path and sha256 of the file graded and a hash of all its files, so a
resumed batch notices a resubmission.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import stat
import zipfile
from array import array
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from ..sandbox.submission import MAX_NOTEBOOK_CONTAINERS, SUFFIXES, SubmissionError, _find

MAX_ZIP_BYTES = 50 * 1024 * 1024  # a submission is a few kB of code; 50 MB leaves room for notebooks' images
MAX_ZIP_FILES = 500
MAX_CLASS_BYTES = 1024 * 1024 * 1024  # a zip of the whole class: 200 students at 5 MB
MAX_CLASS_FILES = 20_000
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024  # json.loads takes about 7x the file in memory
MAX_JSON_DEPTH = 64  # a notebook is about 6 deep; outputs with nested data rarely pass 20
MAX_NAME_BYTES = 255  # one path component, as most file systems allow
MAX_PATH_BYTES = 1024
CENTRAL_ENTRY_BYTES = 46  # the fixed part of one central-directory entry


class UnsafeArchive(Exception):
    """A zip that breaks one of the extraction rules; the message names it."""


@dataclass(frozen=True)
class Found:
    """One student's submission: a path to grade, or the reason there is none.

    `graded` and `sha256`: the file that will be graded and its hash; `content_hash`: a hash over every
    file of the submission (names and bytes), what resume compares to notice a resubmission."""

    student: str
    path: Path | None
    error: str | None = None
    graded: Path | None = None
    sha256: str | None = None
    content_hash: str | None = None
    entry: str | None = None  # its name in SUBMISSIONS (undecodable bytes as surrogates): a collision's tiebreak
    note: str | None = None  # for the instructor (a name shared with another entry), in the gradebook and feedback
    keep_out: tuple[str, ...] = ()  # folders no sandbox may expose: the class's, the batch's output


def extract_zip(archive: Path, dest: Path, max_bytes: int = MAX_ZIP_BYTES, max_files: int = MAX_ZIP_FILES,
                refused: dict[str, str] | None = None) -> Path:
    """Unpack `archive` into a fresh `dest`, refusing anything that could write outside it, or cost the
    parent more than the caps in memory or disk. Raises UnsafeArchive (and leaves no `dest`) whatever
    goes wrong: a corrupt stream, a name the file system refuses, a file that is also a folder.

    With `refused` (a dict), a problem of one member (a link, a name, a clash, a corrupt stream) is
    recorded there under the member's name and that member left out, instead of refusing the whole
    archive: in a zip of the whole class, one student's bad member stays that student's problem. The
    caps on the whole archive (entries, declared and written bytes) always refuse it whole.

    Sizes are counted as bytes are written, so a header that lies about a member's size (a zip bomb)
    is stopped at `max_bytes` all the same."""
    if dest.exists():
        shutil.rmtree(dest)
    strict = refused is None
    refused = {} if refused is None else refused
    try:
        _check_directory_record(archive, max_bytes, max_files)
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_members(archive, members, max_bytes, max_files, refused)
            if strict and refused:
                raise UnsafeArchive(next(iter(refused.values())))
            dest.mkdir(parents=True)
            written = [0]
            for info in members:
                if info.filename in refused:
                    continue
                try:
                    _extract_member(archive, zf, info, dest, written, max_bytes)
                except UnsafeArchive as e:
                    if strict or written[0] > max_bytes:
                        raise
                    refused[info.filename] = str(e)
    except UnsafeArchive:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except Exception as e:  # BadZipFile on the directory, an unreadable file, ...
        shutil.rmtree(dest, ignore_errors=True)
        raise UnsafeArchive(f"{archive.name} is not a readable zip archive ({type(e).__name__}: "
                            f"{str(e)[:200]})") from None
    return dest


def _extract_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, written: list[int],
                    max_bytes: int) -> None:
    """Write one member; any problem raises UnsafeArchive naming it (nothing of the member is left)."""
    target = _safe_target(dest, info)
    if target is None:
        return
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "xb") as out:
            while chunk := src.read(1 << 16):
                written[0] += len(chunk)
                if written[0] > max_bytes:
                    raise UnsafeArchive(f"{archive.name} unpacks to more than the cap of "
                                        f"{max_bytes // (1024 * 1024)} MB")
                out.write(chunk)
        return
    except UnsafeArchive:
        target.unlink(missing_ok=True)  # what this member wrote before the cap stopped it
        raise
    except FileExistsError:  # the name is another member's: leave that one alone
        problem = f"{archive.name} holds {info.filename!r} twice, or as both a file and a folder"
    except (NotADirectoryError, IsADirectoryError):
        problem = f"{archive.name} holds {info.filename!r} as both a file and a folder"
    except Exception as e:  # zlib.error, CRC mismatch, encrypted member, a name the file system refuses
        if target.is_file():
            target.unlink()  # the part written before the stream broke
        problem = (f"{archive.name} is not a readable zip archive ({info.filename!r}: {type(e).__name__}: "
                   f"{str(e)[:200]})")
    raise UnsafeArchive(problem)


def _check_directory_record(archive: Path, max_bytes: int, max_files: int) -> None:
    """Before zipfile parses the central directory (one object per entry: a million entries cost the
    parent 600 MB), read its size and entry count from the end record, which is a few bytes."""
    size = archive.stat().st_size
    if size > max_bytes:
        raise UnsafeArchive(f"{archive.name} is {size // (1024 * 1024)} MB, more than the cap of "
                            f"{max_bytes // (1024 * 1024)} MB")
    with open(archive, "rb") as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # noqa: SLF001 - the stdlib's own reader of the end record (zip64 too)
    if end is None:
        raise UnsafeArchive(f"{archive.name} is not a readable zip archive (no end-of-directory record)")
    entries, directory = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > max_files:
        raise UnsafeArchive(f"{archive.name} holds {entries} files, more than the cap of {max_files}")
    # zipfile reads exactly `directory` bytes and makes an entry per 46+ of them, whatever `entries` says
    if directory > max_files * (CENTRAL_ENTRY_BYTES + MAX_PATH_BYTES + 512):
        raise UnsafeArchive(f"{archive.name}'s directory is {directory} bytes, too large for "
                            f"{max_files} files")


def _check_members(archive: Path, members: list[zipfile.ZipInfo], max_bytes: int, max_files: int,
                   refused: dict[str, str]) -> None:
    """Rules checked on the directory alone, before a byte is written: caps on the whole archive raise;
    a member's own problem (a name too long, a file that is also a folder) goes into `refused`."""
    if len(members) > max_files:
        raise UnsafeArchive(f"{archive.name} holds {len(members)} files, more than the cap of {max_files}")
    declared = sum(info.file_size for info in members)
    if declared > max_bytes:
        raise UnsafeArchive(f"{archive.name} unpacks to more than the cap of {max_bytes // (1024 * 1024)} MB "
                            f"({declared} bytes declared)")
    files: dict[str, str] = {}
    folders: set[str] = set()
    paths: dict[str, str] = {}
    for info in members:
        name = info.filename.replace("\\", "/")
        if len(name.encode()) > MAX_PATH_BYTES or any(len(p.encode()) > MAX_NAME_BYTES for p in name.split("/")):
            refused[info.filename] = f"member {name[:60]!r}... has a name longer than the file system allows"
            continue
        parts = [p for p in name.split("/") if p not in ("", ".")]
        paths[info.filename] = "/".join(parts)
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if info.is_dir():
            folders.add("/".join(parts))
        else:
            files["/".join(parts)] = info.filename
    for clash in sorted(files.keys() & folders):  # the file, and everything in the folder of that name
        why = f"{archive.name} holds {clash!r} as both a file and a folder"
        for member, path in paths.items():
            if path == clash or path.startswith(clash + "/"):
                refused.setdefault(member, why)


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
    """A zip of `alice/logreg.py` unpacks to one folder holding a folder: descend to the content
    (never through a link: `vet` refuses the link on the way instead)."""
    while True:
        inside = [p for p in folder.iterdir() if not p.name.startswith(".")]
        if len(inside) != 1 or inside[0].is_symlink() or not inside[0].is_dir():
            return folder
        folder = inside[0]


def _holds_submission(folder: Path, entry: str) -> bool:
    return (folder / entry).is_file() or (folder / Path(entry).with_suffix(".ipynb").name).is_file()


def discover(submissions: Path, entry: str, assignment: str, scratch: Path,
             exclude: tuple[Path, ...] = ()) -> list[Found]:
    """One `Found` per student, sorted by student id; zips are unpacked under `scratch`. A folder in
    `exclude` (the batch's own output folder), or one holding it, is never a student.

    Raises FileNotFoundError only for what is the instructor's to fix (SUBMISSIONS missing or not a
    class); whatever is wrong with one student's submission is that student's error row."""
    submissions = Path(submissions)
    root = submissions
    refused: dict[str, str] = {}
    if submissions.is_file() and submissions.suffix == ".zip":
        try:
            submissions = _unwrap(extract_zip(submissions, scratch / "_class", MAX_CLASS_BYTES, MAX_CLASS_FILES,
                                              refused=refused))
        except UnsafeArchive as e:
            raise FileNotFoundError(f"cannot use {submissions}: {e}") from None
        root = scratch / "_class"
    unpacked = root  # where a refused member's name would have been written
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder or a zip of submissions")
    skip = [Path(os.path.realpath(p)) for p in (*exclude, scratch)]
    if _holds_submission(submissions, entry):  # one submission (Gradescope's, or one student's zip)
        one = Found(valid_name(submissions.resolve().name), submissions)
        if refused:
            one = replace(one, path=None, error=f"submission refused: {next(iter(refused.values()))}")
        keep_out = tuple(dict.fromkeys(os.path.realpath(p) for p in (root, *exclude, scratch)))
        return [replace(vet(one, entry, root), keep_out=keep_out)]
    nbgrader = submissions / "submitted" if (submissions / "submitted").is_dir() else submissions
    if nbgrader.name == "submitted":
        found = [replace(_nbgrader_one(d, assignment), entry=d.name + "/") for d in _entries(nbgrader, skip)
                 if d.is_symlink() or d.is_dir()]
        root = nbgrader  # the course's own layout above the students' folders is the instructor's
    else:
        found = [f for f in (_one(item, scratch) for item in _entries(submissions, skip)) if f is not None]
    found = [replace(f, student=valid_name(f.student)) for f in found]
    found = _with_refused_members(_without_duplicates(found), refused, unpacked, submissions)
    keep_out = tuple(dict.fromkeys(os.path.realpath(p) for p in (submissions, root, unpacked, *exclude, scratch)))
    return sorted((replace(vet(f, entry, root), keep_out=keep_out) for f in found), key=lambda f: f.student)


def _with_refused_members(found: list[Found], refused: dict[str, str], root: Path, submissions: Path) -> list[Found]:
    """In a zip of the whole class, a member left out (see extract_zip) makes its student's row an
    error, whether the rest of that student's work was unpacked or nothing of it was."""
    by_student = {f.student: f for f in found}
    top, base = Path(os.path.abspath(root)), Path(os.path.abspath(submissions))
    for name, why in refused.items():
        member = top.joinpath(*[p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "..")])
        if not member.is_relative_to(base) or member == base:
            continue  # outside every student's entry (junk beside the class folder)
        parts = member.relative_to(base).parts
        if parts[0] == "submitted" and len(parts) > 1:  # nbgrader's layout inside the zip
            parts = parts[1:]
        if parts[0].startswith((".", "_")):
            continue
        student = valid_name(_student(Path(parts[0])))
        by_student[student] = Found(student, None, f"submission refused: {why}")
    return list(by_student.values())


def valid_name(name: str) -> str:
    """A student id that is valid Unicode and safe to show: a file name's undecodable bytes (kept by
    Python as lone surrogates, which no UTF-8 file can hold) become their escapes (b"\\xff" -> "\\xff",
    so two names that differ only there stay two names), and control or invisible formatting characters
    (ESC, CR, bidi overrides) are shown escaped too: a name reaches terminals, file names and feedback."""
    from .gradebook import terminal_safe

    return terminal_safe(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def _entries(folder: Path, skip: list[Path]) -> list[Path]:
    """The folder's entries that may be students: not hidden, not `_`-prefixed, not the batch's output."""
    return [item for item in sorted(folder.iterdir()) if not item.name.startswith((".", "_"))
            and not any(s.is_relative_to(os.path.realpath(item)) for s in skip)]


def _one(item: Path, scratch: Path) -> Found | None:
    """One student's entry of a folder-of-submissions, knowing its entry's name: never raises."""
    found = _one_entry(item, scratch)
    if found is None:
        return None
    try:
        folder = item.is_dir() and not item.is_symlink()
    except OSError:
        folder = False
    return replace(found, entry=item.name + ("/" if folder else ""))


def _one_entry(item: Path, scratch: Path) -> Found | None:
    try:
        if item.is_symlink():
            return Found(_student(item), None, f"submission refused: {item.name} is a symbolic link "
                                               "(links are not accepted)")
        if item.is_dir():
            return Found(item.name, _unwrap(item))
        if item.suffix in (*SUFFIXES, ".zip") and not item.is_file():  # a pipe would block the reader
            return Found(_student(item), None, f"submission refused: {item.name} is not a regular file")
        if item.suffix == ".zip":
            try:
                return Found(item.stem, _unwrap(extract_zip(item, scratch / item.stem)))
            except UnsafeArchive as e:
                return Found(item.stem, None, f"submission refused: {e}")
        if item.suffix in SUFFIXES:
            return Found(item.stem, item)
    except Exception as e:  # noqa: BLE001 - whatever it is, it is this student's alone
        return Found(_student(item), None, f"submission unreadable: {type(e).__name__}: {str(e)[:200]}")
    return None


def _student(item: Path) -> str:
    return item.stem if item.suffix in (*SUFFIXES, ".zip") else item.name


def _without_duplicates(found: list[Found]) -> list[Found]:
    """Two entries under one student id (alice.py and alice.zip, or names that differ only in what a
    student id cannot hold): each is graded as its own student, named after its whole entry ("alice.py",
    "alice.zip", "alice (folder)"), with a note for the instructor. Nobody's grade depends on what a
    classmate names their file; only the id changes, the same for every run over the same folder."""
    by_student: dict[str, list[Found]] = {}
    for f in found:
        by_student.setdefault(f.student, []).append(f)
    taken = {student for student, group in by_student.items() if len(group) == 1}
    kept: list[Found] = []
    for student, group in by_student.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        group = sorted(group, key=lambda f: os.fsencode(f.entry or f.student))
        names = ", ".join(_entry_label(f) for f in group)
        for f in group:
            name = base = _entry_label(f)
            n = 1
            while name in taken:  # a classmate's id already (or another entry's escaped the same way)
                n += 1
                name = f"{base} ~{n}"
            taken.add(name)
            kept.append(replace(f, student=name, note=f"{len(group)} entries would be student {student!r} "
                                                      f"({names}): each graded on its own; check who is who"))
    return kept


def _entry_label(f: Found) -> str:
    """An entry's whole name as a student id: the file's name with its extension, a folder's with
    " (folder)"."""
    if f.entry is None:
        return f.student
    name = valid_name(f.entry)
    return name if Path(f.entry).suffix in (*SUFFIXES, ".zip") and not f.entry.endswith("/") else \
        f"{valid_name(f.entry.rstrip('/'))} (folder)"


def _nbgrader_one(student_dir: Path, assignment: str) -> Found:
    """nbgrader keeps `submitted/<student>/<assignment>/`: take the assignment's folder. Never raises."""
    try:
        if student_dir.is_symlink():
            return Found(student_dir.name, None, f"submission refused: {student_dir.name} is a symbolic link "
                                                 "(links are not accepted)")
        if (student_dir / assignment).is_dir():
            return Found(student_dir.name, student_dir / assignment)
        folders = [d for d in student_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if len(folders) == 1:
            return Found(student_dir.name, folders[0])
        names = ", ".join(sorted(d.name for d in folders)) or "nothing"
        return Found(student_dir.name, None, f"no folder for assignment {assignment!r} (found: {names}); "
                                             "pass --assignment")
    except Exception as e:  # noqa: BLE001
        return Found(student_dir.name, None, f"submission unreadable: {type(e).__name__}: {str(e)[:200]}")


def one_submission(item: Path, entry: str, scratch: Path) -> Found:
    """What grade makes of `item` as one student's entry (a file, a folder, a zip unpacked under
    `scratch` with the same caps): `dldiy check` takes a zip this way. Never raises."""
    return vet(_one(item, scratch) or Found(item.stem, None, f"{item.name} is not a submission"), entry, scratch)


def vet(found: Found, entry: str, root: Path) -> Found:
    """`found` with its graded file and hashes, or with the rule it breaks as its error. Never raises.

    `root` is the folder the instructor gave (or where the class zip was unpacked): no component between
    it and the submission may be a link, nor anything inside the submission."""
    if found.error is not None or found.path is None:
        return found
    try:
        path = Path(found.path)
        _refuse_links(path, Path(root))
        try:
            graded = _find(path, entry)
        except SubmissionError:  # the loader says what is missing, as `dldiy check` would
            return replace(found, content_hash=_content_hash(path, _files(path)))
        if graded.suffix == ".ipynb":
            _check_notebook(graded)
        files = _files(path)
        return replace(found, graded=graded, sha256=_sha256(graded), content_hash=_content_hash(path, files))
    except UnsafeArchive as e:
        return replace(found, error=f"submission refused: {e}")
    except Exception as e:  # noqa: BLE001 - an unreadable file, a permission, a name: this student's alone
        return replace(found, error=f"submission unreadable: {type(e).__name__}: {str(e)[:200]}")


def _refuse_links(path: Path, root: Path) -> None:
    """A link anywhere from `root` down to `path`, or inside `path`, is refused: followed, it would
    grade a classmate's folder or the reference as this student's."""
    here = Path(os.path.abspath(path))
    top = Path(os.path.abspath(root))
    while here != top and here.is_relative_to(top):
        if here.is_symlink():
            raise UnsafeArchive(f"{here.relative_to(top)} is a symbolic link (links are not accepted)")
        here = here.parent
    if path.is_dir():
        for folder, dirs, names in os.walk(path):  # os.walk does not descend into linked folders
            for name in (*dirs, *names):
                if os.path.islink(os.path.join(folder, name)):
                    link = Path(folder, name).relative_to(path)
                    raise UnsafeArchive(f"{link} is a symbolic link (links are not accepted)")


def _files(path: Path, max_bytes: int = MAX_ZIP_BYTES, max_files: int = MAX_ZIP_FILES) -> list[Path]:
    """The submission's regular files, capped like a zip: the child works on a copy of them all."""
    if not path.is_dir():
        files = [path]
    else:
        files = []
        for folder, _, names in os.walk(path):
            files += [Path(folder, n) for n in names]
            if len(files) > max_files:
                raise UnsafeArchive(f"{path.name} holds more than the cap of {max_files} files")
    total = 0
    for f in files:
        mode = f.lstat().st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeArchive(f"{f.name} is not a regular file (a device, a pipe or a socket)")
        total += f.lstat().st_size
        if total > max_bytes:
            raise UnsafeArchive(f"{path.name} holds more than the cap of {max_bytes // (1024 * 1024)} MB")
    return sorted(files)


def _check_notebook(path: Path, max_bytes: int = MAX_NOTEBOOK_BYTES, max_depth: int = MAX_JSON_DEPTH) -> None:
    """The notebook's size, then its JSON nesting depth, before anything parses it."""
    size = path.stat().st_size
    if size > max_bytes:
        raise UnsafeArchive(f"{path.name} is {size / (1024 * 1024):.0f} MB, more than the cap of "
                            f"{max_bytes // (1024 * 1024)} MB for a notebook (clear its outputs)")
    data = path.read_bytes()
    containers = data.count(b"{") + data.count(b"[")  # each one a Python object json.loads would build
    if containers > MAX_NOTEBOOK_CONTAINERS:
        raise UnsafeArchive(f"{path.name} holds up to {containers} JSON objects and arrays, more than the cap "
                            f"of {MAX_NOTEBOOK_CONTAINERS} for a notebook (clear its outputs, remove empty cells)")
    depth = json_depth(data)
    del data
    if depth > max_depth:
        raise UnsafeArchive(f"{path.name} nests its JSON {depth} levels deep, more than the cap of {max_depth}")


# A string, in the unrolled form (no per-character alternation), closed by its quote or by the end of the data:
# every match attempt succeeds where it starts, so one pass is linear whatever the bytes. Without the end as a
# close, an unterminated string of escaped quotes ("\"\"\"...) made each quote a start that ran to the end and
# failed: quadratic, a 200 KB notebook held a whole class's discovery for hours (integrity round 14).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text, in linear time without parsing it
    (strings removed first, so a bracket inside one does not count)."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS).translate(_BRACKETS)
    return max(itertools.accumulate(array("b", brackets)), default=0)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _content_hash(path: Path, files: list[Path]) -> str:
    """One hash over the submission's files: relative names and contents (a rename counts as a change)."""
    digest = hashlib.sha256()
    base = path if path.is_dir() else path.parent
    for f in files:
        digest.update(os.fsencode(f.relative_to(base).as_posix()) + b"\0" + _sha256(f).encode() + b"\0")
    return digest.hexdigest()
