"""How a spec's `[cells]` selector picks a notebook cell: by tag, or by a piece of code (`contains`).

A `contains` selector matches the cell's code, never text that only sits in a comment or a string
literal: a cell with `# for epoch in range(n_epochs):` or `doc = "for epoch in range(n_epochs):"` above
the real loop is not the training cell. Each character of the cell and of the selector is classed as
code, the start of a comment or of a string literal, or their inside; an occurrence of the selector's
text counts where the classes agree character for character. So a selector that itself holds quotes
(`np.loadtxt("data/blobs.csv"`) or a comment (`# train here`) matches that very literal or comment, not
the same text nested inside another string.

The cell is classed by Python's tokenizer (exact, f-strings included); a cell it refuses (an unfinished
string or bracket, an IPython magic the loader blanks) and the selector itself (a fragment of a line)
are classed by a small lexer that never fails. Shell escapes and magics (`!wget ...`, `%time ...`, a
`%%` cell) are commands, not comments: their text is code here; below `%%time` or `%%capture`, which run
their cell's code, the code is classed as code.

The loader (graders/sandbox/submission.py), the in-notebook `check()` (dldiy/incheck.py) and the spec
linter (graders/course/lint.py) all select with `selects`.
"""

from __future__ import annotations

import io
import re
import tokenize

CODE, COMMENT, COMMENT_START, STRING, STRING_START = "c", "m", "M", "s", "S"
# Cell magics that run their cell's code once, in the notebook's namespace, as Python: the cell is the
# code below the magic's line (a student's `%%time` over the training loop; course6 trial: that cell was
# left out whole, and a correct notebook lost the training check). %%timeit runs it many times: not these.
RUNS_ITS_CELL = ("time", "capture")


def runs_its_cell(first_line: str) -> bool:
    """Whether a cell whose first line is `first_line` (a `%%` cell magic) runs the rest as Python, once."""
    words = first_line.strip()[2:].split()
    return bool(words) and words[0] in RUNS_ITS_CELL


_PREFIX = re.compile(r"(?i)(?:[rbuf]|br|rb|fr|rf)(?=['\"])")


def selects(selector: dict, source: str, tags) -> bool:
    """Whether the spec's `selector` ({"tag": t} or {"contains": text}) picks this code cell."""
    if "tag" in selector:
        return selector.get("tag") in tags
    text = selector.get("contains")
    if not isinstance(text, str) or not text or text not in source:
        return False
    want = _lexed(text)
    have = classes(source)
    start = source.find(text)
    while start != -1:
        if have[start:start + len(text)] == want:
            return True
        start = source.find(text, start + 1)
    return False


def classes(source: str) -> str:
    """One class letter per character of the cell (CODE, COMMENT(_START), STRING(_START))."""
    lines = io.StringIO(source).readlines()
    if lines and lines[0].lstrip().startswith("%%") and not runs_its_cell(lines[0]):
        return CODE * len(source)  # a cell magic: the whole cell is a command
    magic = [line.lstrip().startswith(("%", "!")) for line in lines]
    blanked = "".join(" " * len(line.rstrip("\r\n")) + line[len(line.rstrip("\r\n")):] if m else line
                      for line, m in zip(lines, magic))
    try:
        return _tokenized(blanked, lines)
    except (tokenize.TokenError, SyntaxError, ValueError, IndexError):
        return _lexed(source)


def _tokenized(source: str, lines: list[str]) -> str:
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(position: tuple[int, int]) -> int:
        row, col = position
        return offsets[row - 1] + col if row - 1 < len(offsets) else len(source)

    out = [CODE] * len(source)

    def mark(a: int, b: int, start: str, inside: str) -> None:
        if a < b:
            out[a] = start
            out[a + 1:b] = inside * (b - a - 1)

    fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+: f-strings come in parts
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    depth, opened = 0, 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == fstring_start:
            if depth == 0:
                opened = at(token.start)
            depth += 1
        elif token.type == fstring_end:
            depth -= 1
            if depth == 0:
                mark(opened, at(token.end), STRING_START, STRING)
        elif depth:
            continue
        elif token.type == tokenize.STRING:
            mark(at(token.start), at(token.end), STRING_START, STRING)
        elif token.type == tokenize.COMMENT:
            mark(at(token.start), at(token.end), COMMENT_START, COMMENT)
        elif token.type == tokenize.ERRORTOKEN and token.string.strip() and token.string[0] in "'\"":
            raise tokenize.TokenError("unterminated string")  # the lexer classes the rest of the line
    return "".join(out)


def _lexed(source: str) -> str:
    """A lexer that classes any text, finished or not: comments, string literals (prefixes, triple
    quotes, backslash escapes; an unterminated one runs to the end of its line, or of the text for a
    triple-quoted one), and magic / shell lines as code."""
    out: list[str] = []
    i, n, line_start = 0, len(source), True
    while i < n:
        ch = source[i]
        if line_start:
            end = source.find("\n", i)
            end = n if end == -1 else end
            if source[i:end].lstrip().startswith(("%", "!")):
                out.append(CODE * (end - i))
                i = end
                continue
        line_start = ch == "\n"
        prefix = _PREFIX.match(source, i) if (ch.isalpha() and (i == 0 or not _word(source[i - 1]))) else None
        if ch == "#":
            end = source.find("\n", i)
            end = n if end == -1 else end
            out.append(COMMENT_START + COMMENT * (end - i - 1))
            i = end
        elif ch in "'\"" or prefix:
            q = i + (prefix.end() - i if prefix else 0)
            quote = source[q:q + 3] if source[q:q + 3] in ("'''", '"""') else source[q]
            j = q + len(quote)
            while j < n:
                if source[j] == "\\":
                    j += 2
                    continue
                if source.startswith(quote, j):
                    j += len(quote)
                    break
                if len(quote) == 1 and source[j] == "\n":
                    break
                j += 1
            j = min(j, n)
            out.append(STRING_START + STRING * (j - i - 1))
            line_start = source[j - 1] == "\n"
            i = j
        else:
            out.append(CODE)
            i += 1
    return "".join(out)


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"
