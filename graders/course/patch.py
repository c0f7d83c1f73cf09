"""Apply a unified diff (as `diff -u` or `git diff` writes it) to the files of a folder, strictly.

A bugged variant can be a small patch against the reference instead of a full copy: reviewable, and
several compose. A hunk applies where its old lines (context and removed lines) appear verbatim in
the file, searched from the line its header names, shifted by what earlier hunks added or removed,
outwards (as `patch` does, but without fuzz): a hunk whose old lines are not found raises
PatchError, so two patches that touch the same lines never combine silently into something else.
Only existing text files are modified; paths are taken as `a/<path>` / `b/<path>` (-p1) or bare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    """The patch is malformed, or does not apply to these files."""


@dataclass(frozen=True)
class Hunk:
    old_start: int  # 1-based line of the header's `-l,s`
    old: tuple[str, ...]  # context and removed lines, in order
    new: tuple[str, ...]  # context and added lines, in order


@dataclass(frozen=True)
class FilePatch:
    path: str  # relative, POSIX
    hunks: tuple[Hunk, ...]


def parse(diff: str) -> list[FilePatch]:
    """The file patches of a unified diff; anything outside `---`/`+++`/`@@` blocks is ignored."""
    lines = diff.splitlines()
    patches, i = [], 0
    while i < len(lines):
        if not (lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")):
            i += 1
            continue
        path = _path(lines[i + 1][4:])
        i += 2
        hunks = []
        while i < len(lines) and (m := _HUNK.match(lines[i])):
            old_len = int(m.group(2) if m.group(2) is not None else 1)
            new_len = int(m.group(4) if m.group(4) is not None else 1)
            old: list[str] = []
            new: list[str] = []
            i += 1
            while (len(old) < old_len or len(new) < new_len) and i < len(lines):
                tag, text = lines[i][:1], lines[i][1:]
                if tag in (" ", ""):  # some editors strip the space of an empty context line
                    old.append(text)
                    new.append(text)
                elif tag == "-":
                    old.append(text)
                elif tag == "+":
                    new.append(text)
                elif tag != "\\":  # "\ No newline at end of file"
                    raise PatchError(f"{path}: unexpected line in a hunk: {lines[i]!r}")
                i += 1
            if (len(old), len(new)) != (old_len, new_len):
                raise PatchError(f"{path}: a hunk is shorter than its header says")
            hunks.append(Hunk(int(m.group(1)), tuple(old), tuple(new)))
        if not hunks:
            raise PatchError(f"{path}: no hunk")
        patches.append(FilePatch(path, tuple(hunks)))
    if not patches:
        raise PatchError("not a unified diff (no ---/+++ header)")
    return patches


def _path(header: str) -> str:
    name = header.split("\t")[0].strip()
    if name == "/dev/null":
        raise PatchError("patches may only modify existing files (a /dev/null header creates or deletes one)")
    parts = PurePosixPath(name).parts
    if parts and parts[0] in ("a", "b") and len(parts) > 1:
        parts = parts[1:]
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise PatchError(f"{name!r} is not a path inside the submission")
    return str(PurePosixPath(*parts))


def apply_to_text(text: str, patch: FilePatch) -> str:
    """`text` with every hunk of `patch` applied, or PatchError naming the first that does not fit."""
    lines = text.splitlines()
    offset = 0
    for number, hunk in enumerate(patch.hunks, 1):
        start = hunk.old_start - 1 if hunk.old else hunk.old_start  # `-k,0` inserts after line k
        at = _find(lines, hunk.old, start + offset)
        if at is None:
            raise PatchError(f"{patch.path}: hunk {number} (line {hunk.old_start}) does not apply: its lines "
                             "are not in the file (another patch changed them?)")
        lines[at:at + len(hunk.old)] = hunk.new
        offset = at - start + len(hunk.new) - len(hunk.old)
    out = "\n".join(lines)
    return out + "\n" if lines and (text.endswith("\n") or not text) else out


def _find(lines: list[str], block: tuple[str, ...], guess: int) -> int | None:
    """The start of `block` in `lines` nearest to `guess`; an empty block goes at `guess`."""
    if not block:
        return min(max(guess, 0), len(lines))
    last = len(lines) - len(block)
    for distance in range(0, max(guess, last - guess, 0) + 1):
        for at in (guess - distance, guess + distance):
            if 0 <= at <= last and tuple(lines[at:at + len(block)]) == block:
                return at
    return None


def apply_to_files(files: dict[str, str], diff: str) -> dict[str, str]:
    """`files` ({relative path: text}) with `diff` applied; a new dict, the input is left as it was."""
    out = dict(files)
    for patch in parse(diff):
        if patch.path not in out:
            raise PatchError(f"{patch.path}: no such file to patch")
        out[patch.path] = apply_to_text(out[patch.path], patch)
    return out


def apply(folder: Path, diff: str) -> list[str]:
    """Apply `diff` to the files under `folder` in place; returns the paths it changed. All or nothing:
    every file is patched in memory before any is written."""
    folder = Path(folder)
    paths = sorted({p.path for p in parse(diff)})
    before = {path: (folder / path).read_text() for path in paths if (folder / path).is_file()}
    after = apply_to_files(before, diff)
    for path in paths:
        (folder / path).write_text(after[path])
    return paths
