"""Mutation analysis: which plausible bugs do an exercise's checks miss?

Mutants are small, syntactically valid edits of the reference, made on libcst's concrete syntax tree
(so comments and layout survive and every mutant is a readable diff). Each operator models a real
mistake: an operator or a sign, a constant, a comparison, a dimension, a reduction, a forgotten call,
a stray .detach(), swapped arguments, an in-place update turned into a rebinding.

A mutant is *killed* when any check fails or errors, *timeout* when a check hangs, *survived* when
every check passes; a survivor whose measurements equal the reference's on every probe is *probably
equivalent*. Reviewed equivalents live in exercises/<id>/equivalents.toml (id + reason).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

_SWAP_BINARY: dict[type, type] = {cst.Add: cst.Subtract, cst.Subtract: cst.Add, cst.Multiply: cst.Divide,
                                  cst.Divide: cst.Multiply}
_SWAP_AUGMENTED: dict[type, type] = {cst.AddAssign: cst.SubtractAssign, cst.SubtractAssign: cst.AddAssign,
                                     cst.MultiplyAssign: cst.DivideAssign, cst.DivideAssign: cst.MultiplyAssign}
_AUG_TO_BINARY: dict[type, type] = {cst.AddAssign: cst.Add, cst.SubtractAssign: cst.Subtract,
                                    cst.MultiplyAssign: cst.Multiply, cst.DivideAssign: cst.Divide}
_SWAP_COMPARISON = {cst.LessThan: cst.LessThanEqual, cst.LessThanEqual: cst.LessThan,
                    cst.GreaterThan: cst.GreaterThanEqual, cst.GreaterThanEqual: cst.GreaterThan,
                    cst.Equal: cst.NotEqual, cst.NotEqual: cst.Equal}
_SWAP_REDUCTION = {"mean": "sum", "sum": "mean"}
OPERATORS = ("arithmetic", "sign", "constant", "comparison", "dim", "keepdim", "reduction", "call-removed",
             "detach", "args-swapped", "in-place")


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to the submission folder
    line: int
    column: int
    operator: str
    description: str  # e.g. "`-` -> `+`"
    source: str  # the whole mutated file
    cell: int | None = None  # a notebook's code cell (numbered from 1), whose line `line` is

    @property
    def id(self) -> str:
        """Stable across runs while the reference's code is unchanged: file, position, operator, edit."""
        where = self.file if self.cell is None else f"{self.file}[cell {self.cell}]"
        return f"{where}:{self.line}:{self.column}:{self.operator}:{self.description}"

    def diff(self, original: str) -> str:
        before, after, name = original, self.source, self.file
        if self.cell is not None:  # the code cell, not the notebook's JSON
            before, after = _cell_code(original, self.cell), _cell_code(self.source, self.cell)
            name = f"{self.file}[cell {self.cell}]"
        return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                            f"reference/{name}", f"mutant/{name}", n=1))


def mutants_of(source: str, file: str) -> list[Mutant]:
    """Every mutant of one file, in source order: edits of its solution regions (the whole file, or every
    code cell, when it marks none). A notebook's are each written back as a whole notebook."""
    if file.endswith(".ipynb"):
        return _notebook_mutants(source, file)
    from ..course.notebook import BEGIN, solution_lines

    # a .py file's solution regions, as a notebook's (course7 trial: `def logsumexp(z, axis=-1)` made
    # `axis=1`, a template line identical in the students' file, was counted as a surviving mutant)
    return _code_mutants(source, file, solution_lines(source) if BEGIN in source else None)


def _notebook_mutants(text: str, file: str) -> list[Mutant]:
    from ..course.notebook import BEGIN, solution_lines

    nb = json.loads(text)
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in code]
    marked = any(BEGIN in s for s in sources)
    out = []
    for number, (cell, source) in enumerate(zip(code, sources), 1):
        lines = solution_lines(source) if marked else None
        if lines == set():
            continue
        # IPython lines are not Python: blank them for the parser (line numbers kept), put them back after.
        magics = {i: line for i, line in enumerate(source.split("\n")) if line.lstrip().startswith(("!", "%"))}
        plain = "\n".join("" if i in magics else line for i, line in enumerate(source.split("\n")))
        try:
            mutants = _code_mutants(plain, file, lines)
        except cst.ParserSyntaxError:
            continue
        for m in mutants:
            mutated = m.source.split("\n")
            for i, line in magics.items():
                mutated[i] = line
            original = cell["source"]
            cell["source"] = "\n".join(mutated)
            whole = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
            cell["source"] = original
            out.append(dataclasses.replace(m, source=whole, cell=number))
    return out


def _cell_code(notebook_text: str, cell: int) -> str:
    code = [c for c in json.loads(notebook_text)["cells"] if c.get("cell_type") == "code"]
    source = code[cell - 1]["source"]
    return "".join(source) if isinstance(source, list) else source


def _code_mutants(source: str, file: str, lines: set[int] | None = None) -> list[Mutant]:
    """The mutants of Python source; with `lines`, only those whose edit starts on one of them."""
    wrapper = MetadataWrapper(cst.parse_module(source))
    finder = _SiteFinder()
    wrapper.visit(finder)
    positions = wrapper.resolve(PositionProvider)
    out: list[Mutant] = []
    seen = {source}
    for old, new, operator, description in finder.sites:
        mutated = wrapper.module.deep_replace(old, new).code  # type: ignore[attr-defined]  # a Module
        if mutated in seen:  # two edits giving the same program are one mutant
            continue
        seen.add(mutated)
        pos = positions[old].start
        if lines is None or pos.line in lines:
            out.append(Mutant(file, pos.line, pos.column, operator, description, mutated))
    return out


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


class _SiteFinder(cst.CSTVisitor):
    """Collects (node, replacement, operator, description) for every mutation site."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self) -> None:
        self.sites: list[tuple[cst.CSTNode, cst.CSTNode, str, str]] = []
        self._skip_depth = 0

    def add(self, old: cst.CSTNode, new: cst.CSTNode, operator: str) -> None:
        if self._skip_depth == 0:
            self.sites.append((old, new, operator, f"`{_code(old).strip()}` -> `{_code(new).strip()}`"
                               if len(_code(old)) < 60 else f"{operator} at this line"))

    # Nothing to mutate in imports, docstrings, annotations, decorators or `if __name__ == "__main__"`.
    def visit_Import(self, node) -> bool:
        return False

    def visit_ImportFrom(self, node) -> bool:
        return False

    def visit_Annotation(self, node) -> bool:
        return False

    def visit_Decorator(self, node) -> bool:
        return False

    def visit_If(self, node: cst.If) -> bool:
        return "__main__" not in _code(node.test)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        if len(node.body) == 1 and isinstance(node.body[0], cst.Expr):
            value = node.body[0].value
            if isinstance(value, (cst.SimpleString, cst.ConcatenatedString)):
                return False  # a docstring
            if isinstance(value, cst.Call):
                self.add(node, node.with_changes(body=[cst.Pass()]), "call-removed")
                self._inplace(node, value)
        return True

    def _inplace(self, line: cst.SimpleStatementLine, call: cst.Call) -> None:
        func = call.func
        # Only a name, attribute or subscript can be rebound: `a.mul_(2).add_(1)` has no rebinding.
        if (isinstance(func, cst.Attribute) and func.attr.value.endswith("_") and not func.attr.value.startswith("_")
                and isinstance(func.value, (cst.Name, cst.Attribute, cst.Subscript))):
            rebinding = cst.Assign(targets=[cst.AssignTarget(func.value)],
                                   value=call.with_changes(func=func.with_changes(attr=cst.Name(func.attr.value[:-1]))))
            self.add(line, line.with_changes(body=[rebinding]), "in-place")

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        swap = _SWAP_AUGMENTED.get(type(node.operator))
        if swap:
            self.add(node, node.with_changes(operator=swap()), "arithmetic")
        binary = _AUG_TO_BINARY.get(type(node.operator))
        if binary:
            value = cst.BinaryOperation(node.target, binary(), node.value)
            self.add(node, cst.Assign(targets=[cst.AssignTarget(node.target)], value=value), "in-place")

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        swap = _SWAP_BINARY.get(type(node.operator))
        if swap:
            self.add(node, node.with_changes(operator=swap()), "arithmetic")

    def visit_UnaryOperation(self, node: cst.UnaryOperation) -> None:
        if isinstance(node.operator, cst.Minus):
            self.add(node, node.expression, "sign")

    def visit_Comparison(self, node: cst.Comparison) -> None:
        for i, target in enumerate(node.comparisons):
            swap = _SWAP_COMPARISON.get(type(target.operator))
            if swap:
                changed = list(node.comparisons)
                changed[i] = target.with_changes(operator=swap())
                self.add(node, node.with_changes(comparisons=changed), "comparison")

    def visit_Integer(self, node: cst.Integer) -> None:
        value = int(node.value, 0)
        for new in ([1] if value == 0 else [value - 1, value + 1]):
            self.add(node, node.with_changes(value=str(new)), "constant")

    def visit_Float(self, node: cst.Float) -> None:
        value = float(node.value)
        for new in ([1.0] if value == 0 else [0.0, value * 2]):
            self.add(node, node.with_changes(value=repr(new)), "constant")

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if name in _SWAP_REDUCTION:
            new_func = (func.with_changes(attr=cst.Name(_SWAP_REDUCTION[name])) if isinstance(func, cst.Attribute)
                        else cst.Name(_SWAP_REDUCTION[name]))
            self.add(node, node.with_changes(func=new_func), "reduction")
        for i, arg in enumerate(node.args):
            keyword = arg.keyword.value if arg.keyword else None
            if keyword == "dim" and isinstance(arg.value, (cst.Integer, cst.UnaryOperation)):
                text = _code(arg.value).strip()
                new = {"0": "1", "1": "0", "-1": "0"}.get(text, "0")
                changed = list(node.args)
                changed[i] = arg.with_changes(value=cst.parse_expression(new))
                self.add(node, node.with_changes(args=changed), "dim")
            if keyword == "keepdim":
                changed = [a for j, a in enumerate(node.args) if j != i]
                if changed:
                    changed[-1] = changed[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                self.add(node, node.with_changes(args=changed), "keepdim")
            if keyword == "reduction" and isinstance(arg.value, cst.SimpleString):
                text = arg.value.evaluated_value  # type: ignore[assignment]  # str: no b'' in reduction=
                if text in _SWAP_REDUCTION:
                    changed = list(node.args)
                    changed[i] = arg.with_changes(value=cst.SimpleString(repr(_SWAP_REDUCTION[text])))
                    self.add(node, node.with_changes(args=changed), "reduction")
        positional = [i for i, a in enumerate(node.args) if a.keyword is None and a.star == ""]
        if len(positional) >= 2:
            i, j = positional[:2]
            a, b = node.args[i], node.args[j]
            if _code(a.value).strip() != _code(b.value).strip():
                changed = list(node.args)
                changed[i], changed[j] = a.with_changes(value=b.value), b.with_changes(value=a.value)
                self.add(node, node.with_changes(args=changed), "args-swapped")

    def visit_Return(self, node: cst.Return) -> None:
        value = node.value
        if isinstance(value, (cst.Call, cst.BinaryOperation, cst.Name, cst.Attribute, cst.Subscript)):
            detached = cst.Call(func=cst.Attribute(value=_parenthesize(value), attr=cst.Name("detach")))
            self.add(node, node.with_changes(value=detached), "detach")


def _parenthesize(expr: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        return expr
    return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def iter_files(folder: Path, patterns: list[str]) -> Iterator[Path]:
    for pattern in patterns:
        yield from sorted(folder.glob(pattern))


# ---- running mutants through the checks ------------------------------------------------------------

import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any, Callable  # noqa: E402

from ..assess import Assessment, assessment  # noqa: E402
from ..course.exercise import Exercise  # noqa: E402
from ..sandbox.forkserver import shared  # noqa: E402
from ..sandbox.runner import Outcome  # noqa: E402

DEFAULT_TIMEOUT_S = 10.0  # per check and seed; the references take well under a second


@dataclass
class MutantResult:
    mutant: Mutant
    status: str  # killed | survived | timeout | equivalent (reviewed) | probably-equivalent
    killed_by: list[str]  # names of the checks that failed or errored
    killed_by_kind: list[str]
    duration_s: float
    reason: str = ""  # for a reviewed equivalent


@dataclass
class MutationReport:
    exercise: str
    threshold: float
    results: list[MutantResult]
    duration_s: float
    originals: dict[str, str]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def considered(self) -> int:
        """Mutants that count towards the kill rate: all but the reviewed equivalents."""
        return sum(r.status != "equivalent" for r in self.results)

    @property
    def kill_rate(self) -> float:
        killed = self.count("killed") + self.count("timeout")
        return killed / self.considered if self.considered else 1.0

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            for kind in set(r.killed_by_kind):
                counts[kind] = counts.get(kind, 0) + 1
        return counts

    def survivors(self) -> list[MutantResult]:
        return [r for r in self.results if r.status in ("survived", "probably-equivalent")]

    def to_json(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "mutants": len(self.results), "killed": self.count("killed"),
                "timeout": self.count("timeout"), "survived": self.count("survived"),
                "probably_equivalent": self.count("probably-equivalent"), "equivalent": self.count("equivalent"),
                "kill_rate": self.kill_rate, "threshold": self.threshold, "killed_by_kind": self.by_kind(),
                "duration_s": self.duration_s,
                "survivors": [{"id": r.mutant.id, "status": r.status,
                               "diff": r.mutant.diff(self.originals[r.mutant.file])} for r in self.survivors()],
                "mutants_detail": [{"id": r.mutant.id, "status": r.status, "killed_by": r.killed_by,
                                    "reason": r.reason} for r in self.results]}


def reviewed_equivalents(exercise: Exercise) -> dict[str, str]:
    """exercises/<id>/equivalents.toml: [[equivalent]] id = "...", reason = "..." (instructor-reviewed)."""
    path = exercise.folder / "equivalents.toml"
    if not path.exists():
        return {}
    return {e["id"]: e["reason"] for e in tomllib.loads(path.read_text()).get("equivalent", [])}


def mutation_settings(exercise: Exercise) -> tuple[list[str], float]:
    """The files to mutate (globs relative to the reference folder) and the kill-rate threshold."""
    settings = exercise.extra.get("mutation", {})
    # a notebook exercise's reference is its one notebook (reference/<id>/source.ipynb, whatever the entry's name)
    default = ["*.ipynb"] if exercise.entry.endswith(".ipynb") else [exercise.entry]
    return list(settings.get("files", default)), float(settings.get("threshold", 0.9))


def run_mutation(exercise: Exercise, reference: Path, *, jobs: int = 1, timeout: float = DEFAULT_TIMEOUT_S,
                 limit: int | None = None, progress: Callable[[MutantResult], None] | None = None) -> MutationReport:
    """Generate the reference's mutants and run each through every check, `jobs` at a time."""
    started = time.monotonic()
    patterns, threshold = mutation_settings(exercise)
    originals = {str(p.relative_to(reference)): p.read_text() for p in iter_files(reference, patterns)}
    mutants = [m for file, text in originals.items() for m in mutants_of(text, file)][:limit]
    fast = dataclasses.replace(exercise, checks=tuple(dataclasses.replace(c, timeout=min(c.timeout, timeout))
                                                      for c in exercise.checks))
    server = shared()
    expected = exercise.expected()
    baseline = assessment(fast, reference, expected=expected, server=server).outcome
    reviewed = reviewed_equivalents(exercise)

    def run_one(mutant: Mutant) -> MutantResult:
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="dldiy-mutant-") as tmp:
            folder = Path(tmp) / "submission"
            shutil.copytree(reference, folder, ignore=shutil.ignore_patterns("__pycache__"))
            (folder / mutant.file).write_text(mutant.source)
            assessed = assessment(fast, folder, expected=expected, server=server)
        result = _classify(mutant, assessed, baseline, reviewed)
        result.duration_s = time.monotonic() - t0
        if progress:
            progress(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(run_one, mutants))
    return MutationReport(exercise.id, threshold, results, time.monotonic() - started, originals)


def _classify(mutant: Mutant, assessed: Assessment, baseline: Outcome, reviewed: dict[str, str]) -> MutantResult:
    outcome = assessed.outcome
    bad = [c for c in assessed.report.checks if c.status in ("fail", "error")]
    timed_out = {check for (check, _), r in outcome.results.items()
                 if "error" in r and r["error"]["kind"] == "timeout"}
    names, kinds = [c.name for c in bad], [c.kind for c in bad]
    if mutant.id in reviewed:
        return MutantResult(mutant, "equivalent", names, kinds, 0.0, reviewed[mutant.id])
    if bad and set(names) <= timed_out:
        return MutantResult(mutant, "timeout", names, kinds, 0.0)
    if bad:
        return MutantResult(mutant, "killed", names, kinds, 0.0)
    same = _same_measurements(outcome, baseline)
    return MutantResult(mutant, "probably-equivalent" if same else "survived", [], [], 0.0)


def _same_measurements(a: Outcome, b: Outcome) -> bool:
    """Equal on every probe, to 1e-12 relative: no check could have told them apart at these inputs."""
    def canon(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.12g}")
        if isinstance(value, dict):
            return {k: canon(v) for k, v in value.items()}
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value
    def text(outcome: Outcome) -> str:
        return json.dumps({f"{c}@{s}": canon(r) for (c, s), r in outcome.results.items()}, sort_keys=True)
    return text(a) == text(b)
