"""The static half of `forbid`: find forbidden uses in the source of the API names that forbid them.

Runs in the trusted harness process, on the working copy, before the student's process starts (the
run-time half is the guard in graders/sandbox/student.py). An API name's `forbid` list (spec.toml) holds
entries of four kinds, in one list:

- a function, by its dotted name: "torch.autograd.grad", "torch.Tensor.backward". A use counts when
  an attribute chain or an imported name resolves to it by its last two parts: `torch.autograd.grad`,
  `autograd.grad` and `grad` imported from `torch.autograd` all match `torch.autograd.grad`;
  `H.inverse()` matches `torch.Tensor.inverse` (a method: any receiver).
- a module, its dotted name then ".*": "sympy.*", "torch.autograd.functional.*", "jax.*". Any use of
  the module or of anything in it counts: `sympy.diff`, `sp.Symbol` after `import sympy as sp`, `diff`
  after `from sympy import diff`, `import sympy` in the function itself, the string "sympy"
  (`importlib.import_module("sympy")`). Only names bound by an import resolve to a module, so that
  "autograd.*" (HIPS autograd) never matches `torch.autograd`, nor a variable that happens to be
  called `jax`. For a family of tools (symbolic or automatic differentiation), a module entry is the
  rule; a function entry is for one function of a module the exercise otherwise allows
  ("torch.func.jacrev", where torch.func.vmap stays allowed).
- an operator of torch's, "aten." then its name or an fnmatch pattern: "aten.*convolution*",
  "aten.linalg_inv_ex". Judged at run time below torch's Python names (a torch dispatch mode): every
  path to the operator counts, F.conv2d, torch.convolution, torch.ops.aten._convolution,
  torch._C._nn.*, an nn.Conv2d, a conv3d on an unsqueezed input. The function entries name the doors;
  an operator entry is the room behind them. Only operators that are not decomposed before they reach
  the mode can be named (aten.convolution, not aten.conv2d; F.l1_loss and F.linear have none).
- "operators": a number type of the submission's own, a class (reached from NAME) that defines arithmetic
  operators (`__mul__`, `__add__`, `__matmul__`, `__torch_function__`, ...). Dual numbers carry a derivative
  through every operation (forward-mode differentiation in forty lines: integrity round 14 wrote exercise-5's
  backwards so, exact to rounding, with no rule of the cheat sheet derived): not a derivative by hand. Static
  only (the scan); an exercise that asks for derivatives by hand forbids it.
- "complex": complex numbers. A complex literal (`1j`), `complex(...)`, a complex dtype by name
  (torch.complex64/128, cfloat, cdouble, chalf, numpy's complex64/128, the strings "complex128",
  "c16", ...), torch.complex, torch.view_as_complex, torch.polar, `.imag`, the module cmath. The
  complex-step derivative Im f(w + ih)/h is exact to machine precision without any differentiation
  by hand: an exercise that asks for a derivative by hand forbids it this way.

A use counts inside `def NAME` (or a method of `class NAME`), nested definitions included, in the
file's own functions and classes it names (tables of them included), transitively, and through a
module-level name that the body reads, when the assignment that made it uses a forbidden thing
(`D = sympy.lambdify(u, sympy.diff(f, u))` at the top of the file, `D(...)` inside gradient()).
Importing sympy at module level, or using it in code that NAME does not read, is not a finding: the
run-time guard judges what runs while NAME is being called, helpers included.

Where NAME has any rule, three things leave it "cannot be judged by its rules" (round 8's hostile
students): reflection, a name built at run time (`reflection`: getattr with a computed name, vars,
eval, `__dict__`, importlib, ...), and a private name of torch's (`_private`: torch._C, torch._VF,
torch.utils._mode_utils, torch.ops), in what NAME reaches or in code that runs out of the scan's
sight (the file's code run at import, another file of the submission's); and every rule on a function
holds under each other public name torch binds that function to (`with_aliases`, in the harness).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

MAX_SOURCE_BYTES = 1 << 20  # one file; a file of "a = [0, 0, ...]" parses to ~300 bytes of AST per byte
# all of a submission's files together, the entry's first (red team, round 5: three 2 MB siblings held 1.8 GB
# for 20 s in the harness's process, which has no cgroup; ten would have reached its memory cap). What is
# beyond is not scanned: the run-time guard still judges what runs.
MAX_TOTAL_SOURCE_BYTES = 2 << 20

MODULE_SUFFIX = ".*"  # "sympy.*": the whole module
COMPLEX = "complex"  # complex numbers
# attribute and imported names that make or read complex values (the last part of a chain)
COMPLEX_NAMES = frozenset({
    "complex", "complex32", "complex64", "complex128", "complex256", "complex_", "cfloat", "cdouble", "chalf",
    "csingle", "clongdouble", "clongfloat", "view_as_complex", "view_as_complex_copy", "polar", "imag"})
COMPLEX_STRINGS = frozenset({  # dtypes spelt as strings: np.zeros(3, dtype="complex128")
    "complex", "complex32", "complex64", "complex128", "complex256", "cfloat", "cdouble", "chalf", "csingle",
    "c8", "c16", "c32"})
COMPLEX_MODULES = ("cmath",)
OPERATORS = "operators"  # a number type of the submission's own: a class that defines arithmetic operators
ARITHMETIC_OPERATORS = frozenset({
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "__matmul__", "__rmatmul__", "__pow__", "__rpow__", "__neg__", "__torch_function__", "__torch_dispatch__"})

_Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


OP_PREFIX = "aten."  # "aten.*convolution*": torch's operators by name (fnmatch), judged at run time only


def is_op(entry: str) -> bool:
    """An operator entry ("aten.linalg_inv_ex", "aten.*max_pool*"): the run-time guard's torch dispatch
    mode judges it (graders/sandbox/student.py); the static scan sees `torch.ops.aten.NAME` through the
    entry's last two parts, as for any function."""
    return entry.startswith(OP_PREFIX)


def module_of(entry: str) -> str | None:
    """The module a "MODULE.*" entry forbids, or None for a function entry and "complex"."""
    return entry[: -len(MODULE_SUFFIX)] if entry.endswith(MODULE_SUFFIX) and len(entry) > len(MODULE_SUFFIX) else None


def without(name: str, entry: str) -> str:
    """The end of a finding's sentence: what the exercise asks for, in the student's words."""
    module = module_of(entry)
    if module is not None:
        return f"this exercise asks for {name} without the module {module}"
    if entry == COMPLEX:
        return (f"a complex-step derivative is not a derivative by hand; this exercise asks for {name} "
                "without complex numbers")
    if entry == OPERATORS:
        return (f"a number type that carries derivatives through its operators (dual numbers, forward-mode "
                f"differentiation) is not a derivative by hand; this exercise asks for {name} without classes of "
                "its own that define arithmetic operators")
    return f"this exercise asks for {name} without it"


def with_aliases(forbid: dict[str, list[str]]) -> dict[str, list[str]]:
    """`forbid` with every other public name torch binds each forbidden function to: torch.conv2d is
    torch.nn.functional.conv2d, torch.nn.utils.clip_grad.clip_grad_norm_ is torch.nn.utils' (round 8: the
    same function under another module's name passed the rule of its name, in the static scan and at run
    time). Its private names (torch._C._linalg.linalg_inv, torch._VF.conv2d) need no alias: the scan
    refuses every private name of torch's where a rule applies (`_private`). Run where torch is imported
    (the harness); elsewhere `forbid` as it is. Found once per process and list of rules (~10 ms)."""
    names = tuple(sorted({e for entries in forbid.values() for e in entries
                          if e != COMPLEX and module_of(e) is None and not is_op(e) and ".Tensor." not in e}))
    aliases = _aliases(names) if names and "torch" in sys.modules else {}  # (never cached without torch)
    return {api: list(dict.fromkeys([*entries, *(a for e in entries for a in aliases.get(e, ()))]))
            for api, entries in forbid.items()}


@functools.lru_cache(maxsize=16)
def _aliases(names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    import types

    targets: dict[int, list[str]] = {}
    for dotted in names:
        if not dotted.startswith("torch."):  # (only torch's own modules are searched: nothing else is imported)
            continue
        obj = resolve(dotted)
        if obj is not None and callable(obj) and not isinstance(obj, type):  # functions: a class is not wrapped twice
            targets.setdefault(id(obj), []).append(dotted)
    found: dict[str, list[str]] = {d: [] for d in names}
    for name, module in list(sys.modules.items()):
        if (name == "torch" or name.startswith("torch.")) and isinstance(module, types.ModuleType) \
                and not _private(name.split(".")):
            try:
                items = list(vars(module).items())
            except TypeError:
                continue
            for attr, value in items:
                if id(value) in targets and not attr.startswith("_"):
                    for dotted in targets[id(value)]:
                        found[dotted].append(f"{name}.{attr}")
    return {d: tuple(a for a in dict.fromkeys(found[d]) if a != d) for d in names}


def resolve(dotted: str) -> Any:
    """The object a dotted name stands for, its module imported if need be (the longest importable
    prefix, then attributes); None where there is none."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # noqa: BLE001 - a module that fails to import names nothing
            continue
        for part in parts[cut:]:
            value = getattr(value, part, None)
            if value is None:
                return None
        return value
    return None


def _sources(entry: Path) -> list[tuple[str, str]]:
    """(name for messages, source) of the entry and its sibling .py files (a multi-file project)."""
    return _read(entry)[0]


def _read(entry: Path) -> tuple[list[tuple[str, str]], bool]:
    """_sources' list, and whether it holds every source (none left out by the size caps)."""
    out = []
    if entry.suffix == ".ipynb":
        try:
            if entry.stat().st_size > MAX_SOURCE_BYTES * 8:
                return [], False
            nb = json.loads(entry.read_bytes())
            number = 0
            for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
                if isinstance(cell, dict) and cell.get("cell_type") == "code":
                    number += 1
                    src = cell.get("source", "")
                    src = "".join(src) if isinstance(src, list) else str(src)
                    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()]
                    out.append((f"{entry.name}[cell {number}]", "\n".join(lines)))
        except (OSError, ValueError, RecursionError):
            return [], False
        return out, True
    total, whole = 0, True
    for path in sorted(entry.parent.rglob("*.py"), key=lambda p: (p != entry, p)):
        try:
            if path.is_symlink():
                continue
            size = path.stat().st_size
            if size > MAX_SOURCE_BYTES or total + size > MAX_TOTAL_SOURCE_BYTES:
                whole = False
                continue
            total += size
            out.append((str(path.relative_to(entry.parent)), path.read_text("utf-8", "replace")))
        except OSError:
            whole = False
    return out, whole


def _chain(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    if parts:  # e.g. H.inverse() on a call's result: the method name is what counts
        return ["?", *parts[::-1]]
    return None


def _matches(chain: list[str], aliases: dict[str, str], forbidden: str) -> bool:
    if chain[0] in aliases:
        chain = aliases[chain[0]].split(".") + chain[1:]
    want = forbidden.split(".")
    tail = want[-2:] if len(want) >= 2 else want
    if want[-2:-1] == ["Tensor"]:  # a method: any receiver
        return len(chain) >= 2 and chain[-1] == want[-1]
    return chain[-len(tail):] == tail


def _in_module(dotted: str, module: str) -> bool:
    return dotted == module or dotted.startswith(module + ".")


class _Scope:
    """One namespace's imports and module-level assignments: a file's, or a whole notebook's (its cells
    share one)."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # name bound by an import -> the dotted name it stands for
        self.assigned: dict[str, list[tuple[ast.expr, str]]] = {}  # module-level name -> (value, label)
        self.defined: dict[str, list[tuple[_Definition, str]]] = {}  # module-level def/class -> (it, label)
        self.tampered: tuple[str, int, str] | None = None  # (label, line, what): code objects rewritten
        self.reflective: tuple[str, int, str] | None = None  # (label, line, what): the first reflection anywhere

    def read(self, tree: ast.Module, label: str, forbid: dict[str, list[str]], imported: bool = False,
             notebook: bool = False) -> list[_Definition]:
        """Take in the source's imports and module-level assignments; return the definitions of the API
        names that forbid something (one walk of the whole source: it is scanned for every submission,
        issue 17; those bodies alone are walked again)."""
        defined: list[_Definition] = []
        # Reflection counts where it runs out of the scan's sight: the code run at import (the entry's
        # module-level statements; all of another file of the submission's, which the scan does not follow
        # into), never a `__main__` block, which a grader never runs. What an API name reaches is _search's.
        self._note_reflection(_import_time(tree, whole=imported, keep_main=notebook), label)
        for node in _walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and forbid.get(node.name):
                defined.append(node)
            elif self.tampered is None and (_rewrites_code(node)):
                self.tampered = (label, getattr(node, "lineno", 0), _rewrites_code(node) or "")
        if self.reflective is None and forbid:  # the reflective modules, where they run (their imports included)
            for stmt in _import_time(tree, whole=imported, keep_main=notebook):
                for node in _walk(stmt):
                    hit = None if isinstance(node, ast.Constant) else _use(node, self.aliases, ANYWHERE)
                    if hit:
                        self.reflective = (label, getattr(node, "lineno", 0),
                                           f"torch's private {hit[1]}" if hit[0] == PRIVATE_TORCH else hit[1])
                        break
                if self.reflective is not None:
                    break
        for stmt in _module_level(tree.body):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.setdefault(stmt.name, []).append((stmt, label))
                continue
            if isinstance(stmt, ast.Match):  # the names its patterns capture, made with what they read
                for read, captured in _match_reads(stmt):
                    if captured is not None:
                        self.assigned.setdefault(captured, []).append((read, label))
                continue
            if isinstance(stmt, ast.Assign):
                value, targets = stmt.value, stmt.targets
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                value, targets = stmt.value, [stmt.target]
            else:
                continue
            for target in targets:
                for name in _walk(target):
                    if isinstance(name, ast.Name):
                        # `D.__mul__ = f` after the class: the target itself is what a use of D is made with
                        made = target if isinstance(target, ast.Attribute) and target.attr in ARITHMETIC_OPERATORS \
                            else value
                        self.assigned.setdefault(name.id, []).append((made, label))
        return defined


    def _note_reflection(self, statements: list[ast.stmt], label: str) -> None:
        for stmt in statements:
            called = _called(stmt)
            for node in _walk(stmt):
                if self.reflective is None and (what := reflection(node, called)):
                    self.reflective = (label, getattr(node, "lineno", 0), what)
                    return


def _is_main_block(stmt: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (a script's own block: importing the file never runs it)."""
    test = getattr(stmt, "test", None) if isinstance(stmt, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _import_time(tree: ast.Module, whole: bool, keep_main: bool = False) -> list[ast.stmt]:
    """The statements of `tree` whose code runs out of the scan's sight: with `whole`, every top-level
    statement (definitions included), else the module-level ones outside definitions; never a __main__ block
    (but in a notebook's cells, where __name__ is "__main__": `keep_main`)."""
    body = [stmt for stmt in tree.body if keep_main or not _is_main_block(stmt)]
    if whole:
        return body
    out: list[ast.stmt] = []
    for stmt in _module_level(body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # a definition's decorators and default values run at import; its body does not
            out += [ast.Expr(value=v) for v in (*stmt.decorator_list, *_defaults(stmt))]
        elif not isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            out.append(stmt)
        else:  # a block's own head (its test, iterable, context), its body's statements come on their own
            out += [ast.Expr(value=v) for v in (getattr(stmt, "test", None), getattr(stmt, "iter", None),
                                                *(i.context_expr for i in getattr(stmt, "items", ()))) if v is not None]
    return out


def _defaults(defn: ast.AST) -> list[ast.expr]:
    args = getattr(defn, "args", None)
    return [*args.defaults, *(d for d in args.kw_defaults if d is not None)] if args is not None else \
        list(getattr(defn, "bases", ())) + [k.value for k in getattr(defn, "keywords", ())]


def _rewrites_code(node: ast.AST) -> str | None:
    """What rewrites a function's code object, in words (red team, round 7: every function's __code__
    replaced by one whose co_filename is the Python installation's, and the run-time guard, which tells
    the student's code by its file, saw none of it)."""
    if isinstance(node, ast.Attribute) and node.attr == "__code__" and isinstance(node.ctx, (ast.Store, ast.Del)):
        return "an assignment to __code__"
    if isinstance(node, ast.keyword) and node.arg in ("co_filename", "co_name", "co_qualname"):
        return f"a code object made with {node.arg}="
    if isinstance(node, ast.Constant) and node.value == "__code__":
        return "the attribute name '__code__'"
    return None


# Reflection: a value reached by a name the scan cannot read. Round 8's hostile student kept full marks in
# exercises 1, 4 and 6 with names built from strings at run time (getattr(torch._C, "_Disable" + "Torch" +
# "Dispatch") switched the operator guard off; getattr(t, "grad" + "_fn") walked autograd's graph), which
# no rule can judge. Code a rule is about never needs them: where an API name forbids anything, its body,
# its helpers, the module-level values they read and the submission's module-level code may not use one.
REFLECTIVE_BUILTINS = frozenset({"vars", "globals", "locals", "eval", "exec", "compile", "__import__", "__builtins__"})
NAME_LOOKUPS = frozenset({"getattr", "hasattr", "setattr", "delattr"})
REFLECTIVE_ATTRIBUTES = frozenset({
    "__dict__", "__getattribute__", "__getattr__", "__subclasses__", "__mro__", "__bases__", "__base__",
    "__globals__", "__builtins__", "__closure__", "__wrapped__", "f_globals", "f_locals", "f_builtins", "f_back",
    "gi_frame", "tb_frame", "__reduce__", "__reduce_ex__"})
# and torch's own lookups of an operator by its name in a string (the dispatcher called directly)
REFLECTIVE_MODULES = ("importlib.*", "inspect.*", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                      "pickle.loads", "pickle.load", "pickle.Unpickler", "marshal.*", "ctypes.*", "copyreg.*",
                      "builtins.*", "operator.attrgetter", "operator.methodcaller", "sys.modules", "sys._getframe",
                      "sys.meta_path", "sys.path_hooks", "sys.path_importer_cache", "string.Formatter", "runpy.*",
                      "pkgutil.*", "zipimport.*", "codeop.*", "code.InteractiveInterpreter", "code.InteractiveConsole", "code.interact",
                      "code.compile_command", "types.CodeType", "types.FunctionType",
                      "torch._C._dispatch_call_boxed", "torch._C._get_operation_overload",
                      "torch._C._jit_get_operation", "torch._C._dispatch_find_schema_or_throw")


PRIVATE_TORCH = "torch private"  # an entry of the scan: any name of torch's with a private part (torch._C, torch.ops)


ANYWHERE = [*REFLECTIVE_MODULES, PRIVATE_TORCH]  # what counts in code the scan does not follow from an API name


# Private names of torch's that are structure, not kernels or switches: the base classes students subclass
# (torch.nn.modules.loss._Loss, conv._ConvNd) and torch.optim's plumbing (optimizer._use_grad_for_differentiable),
# which a student copying torch's own optimizers writes; the list ops torch.optim is built on (torch._foreach_*).
# What they run is still the explicit rules' and the operator entries'.
PRIVATE_STRUCTURE = ("torch.nn.modules.", "torch.optim.optimizer.")


def _private(parts: list[str]) -> bool:
    """torch.X with a private part (torch._C, torch.utils._mode_utils, torch._safe_softmax), torch.ops and
    torch.library (an operator by its name), but not PRIVATE_STRUCTURE nor torch._foreach_*."""
    if ".".join(parts).startswith(PRIVATE_STRUCTURE):
        return False
    return any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) and not p.startswith("_foreach_")
               for p in parts[1:]) or (len(parts) > 1 and parts[1] in ("ops", "library"))


def reflection(node: ast.AST, called: set[int]) -> str | None:
    """In words, when `node` reaches a value by a name that is not written out (or runs code built at run
    time): getattr & co with a computed name or passed as a value (`called`: the ids of the nodes that are
    called), vars/globals/locals/eval/exec/compile/__import__, and the attributes that lead to other
    objects' namespaces (__dict__, __subclasses__, __globals__, a frame's f_globals, a wrapper's
    __wrapped__, ...). The modules of the same kind (importlib, inspect, gc, pickle, ...) are entries of
    the scan (REFLECTIVE_MODULES)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in NAME_LOOKUPS:
        if node.func.id in ("setattr", "delattr") and node.args and isinstance(node.args[0], ast.Name) \
                and node.args[0].id in ("self", "cls"):
            return None  # an object's own attributes, written: a value of torch's is reached by no such line
        if len(node.args) >= 2 and not (isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            return f"{node.func.id}() with a name computed at run time"
        return None
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        if node.id in REFLECTIVE_BUILTINS:
            return node.id
        if node.id in NAME_LOOKUPS and id(node) not in called:
            return f"{node.id} passed as a value (a lookup by a name computed at run time)"
        return None
    if isinstance(node, ast.Attribute) and node.attr in REFLECTIVE_ATTRIBUTES:
        return f"the attribute {node.attr}"
    return None


def _called(node: ast.AST) -> set[int]:
    called = getattr(node, "_dldiy_called", None)
    if called is None:
        called = {id(n.func) for n in _walk(node) if isinstance(n, ast.Call)}
        node._dldiy_called = called  # type: ignore[attr-defined]
    return called


def _walk(node: ast.AST) -> list[ast.AST]:
    """ast.walk's nodes (the same order), kept on the node: the scan walks a definition once as an API
    name, again as another's helper, and for its calls and its bound names (issue 17: the scan runs for
    every submission; its trees live for one scan)."""
    nodes = getattr(node, "_dldiy_walk", None)
    if nodes is None:
        nodes = list(ast.walk(node))
        # a match statement's class patterns read attributes by names that are no ast.Attribute: each read
        # joins the walk as one, so that every rule sees it (`case object(__wrapped__=f)`)
        nodes += [read for n in nodes if isinstance(n, ast.Match) for read, name in _match_reads(n) if name is None]
        node._dldiy_walk = nodes  # type: ignore[attr-defined]
    return nodes


def _match_reads(match: ast.Match) -> list[tuple[ast.expr, str | None]]:
    """What a match statement reads and binds, as expressions of its subject: (an attribute read, None) for each
    keyword of a class pattern (`case object(step=s)` on torch.optim.SGD reads torch.optim.SGD.step), and
    (the value, its name) for each name a pattern captures (s is torch.optim.SGD.step). Integrity round 7: a
    module-level `match torch.optim.SGD.step: case object(__wrapped__=f)` took the run-time guard's original
    out of its wrapper (the scan's reflection test read ast.Attribute nodes only), and exercise-6's GD stepped
    with torch.optim.SGD's own step for full marks. Kept on the node: the scan asks once per walk."""
    found = getattr(match, "_dldiy_reads", None)
    if found is None:
        found = []
        for case in match.cases:
            _pattern_reads(case.pattern, match.subject, found)
        match._dldiy_reads = found  # type: ignore[attr-defined]
    return found


def _pattern_reads(pattern: ast.pattern, base: ast.expr, out: list[tuple[ast.expr, str | None]]) -> None:
    def unknown() -> ast.expr:  # a value the scan cannot name: a chain read on it starts with "?"
        return ast.copy_location(ast.Constant(value=None), pattern)

    if isinstance(pattern, ast.MatchClass):
        for attr, sub in zip(pattern.kwd_attrs, pattern.kwd_patterns):
            read = ast.copy_location(ast.Attribute(value=base, attr=attr, ctx=ast.Load()), pattern)
            out.append((read, None))
            _pattern_reads(sub, read, out)
        for sub in pattern.patterns:  # positional: the attributes the class's __match_args__ names
            _pattern_reads(sub, unknown(), out)
    elif isinstance(pattern, ast.MatchAs):
        if pattern.name:
            out.append((base, pattern.name))
        if pattern.pattern is not None:
            _pattern_reads(pattern.pattern, base, out)
    elif isinstance(pattern, ast.MatchOr):
        for sub in pattern.patterns:
            _pattern_reads(sub, base, out)
    elif isinstance(pattern, (ast.MatchSequence, ast.MatchMapping)):
        for sub in pattern.patterns:
            _pattern_reads(sub, unknown(), out)
        if isinstance(pattern, ast.MatchMapping) and pattern.rest:
            out.append((unknown(), pattern.rest))
    elif isinstance(pattern, ast.MatchStar) and pattern.name:
        out.append((unknown(), pattern.name))


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements run at module level: through if/try/with/for blocks, not into definitions."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                yield from _module_level([s for s in inner if isinstance(s, ast.stmt)]
                                         + [s for h in inner if isinstance(h, ast.ExceptHandler) for s in h.body])
        if isinstance(stmt, ast.Match):  # a case's block runs at module level too
            yield from _module_level([s for case in stmt.cases for s in case.body])


def _use(node: ast.AST, aliases: dict[str, str], entries: list[str]) -> tuple[str, str] | None:
    """(entry, what was used, in words) when `node` itself is a use of one of `entries`."""
    complex_ = COMPLEX in entries
    modules = _modules(tuple(entries))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if OPERATORS in entries and node.name in ARITHMETIC_OPERATORS:
            return OPERATORS, f"a class of its own that defines the operator {node.name}"
        return None
    if OPERATORS in entries and isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
            and node.attr in ARITHMETIC_OPERATORS:  # D.__mul__ = ... after the class
        return OPERATORS, f"an operator set on a class of its own ({node.attr})"
    if OPERATORS in entries and isinstance(node, ast.Constant) and node.value in ARITHMETIC_OPERATORS:
        return OPERATORS, f"an operator named {node.value!r} (type(name, bases, {{...}}), setattr)"
    if isinstance(node, ast.Constant):
        if complex_ and isinstance(node.value, complex):
            return COMPLEX, f"the complex literal {node.value!r}"
        if isinstance(node.value, str):
            if complex_ and node.value.lower() in COMPLEX_STRINGS:
                return COMPLEX, f"the dtype {node.value!r}"
            for entry, module in modules:
                if _in_module(node.value, module):
                    return entry, f"the module name {node.value!r}"
        return None
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        if isinstance(node, ast.ImportFrom) and (node.level or not node.module):
            return None
        names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        for name in names:
            for entry, module in modules:
                if name is not None and _in_module(name, module):
                    return entry, f"an import of {name}"
            if complex_ and name is not None and name.split(".")[0] in COMPLEX_MODULES:
                return COMPLEX, f"an import of {name}"
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in NAME_LOOKUPS \
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
        # getattr(torch.linalg, "inv") is torch.linalg.inv
        return _use(ast.Attribute(value=node.args[0], attr=node.args[1].value, ctx=ast.Load()), aliases, entries)
    if not isinstance(node, (ast.Attribute, ast.Name)):
        return None
    chain = _chain(node)
    if not chain:
        return None
    imported = chain[0] in aliases
    resolved = aliases[chain[0]].split(".") + chain[1:] if imported else chain
    dotted = ".".join(resolved)
    if imported and resolved[0] == "torch" and PRIVATE_TORCH in entries and _private(resolved):
        # round 8: torch._safe_softmax, torch.utils._mode_utils.no_dispatch (the dispatch guard off),
        # torch._VF._make_dual, the engine's run_backward: kernels and switches under names no list holds
        return PRIVATE_TORCH, dotted
    for entry, module in modules:  # first: a module resolves exactly, through the imports alone
        if imported and _in_module(dotted, module):
            return entry, dotted
    if complex_ and (chain == ["complex"] or (chain[-1] in COMPLEX_NAMES and (len(chain) > 1 or imported))
                     or (imported and resolved[0] in COMPLEX_MODULES)):
        return COMPLEX, dotted if imported else "." + chain[-1] if len(chain) > 1 else chain[0]
    last = resolved[-1]
    for entry in _functions_by_name(tuple(entries)).get(last, ()):  # only the entries that end in this name
        if _matches(chain, aliases, entry):
            return entry, entry
    return None


@functools.lru_cache(maxsize=256)
def _functions_by_name(entries: tuple[str, ...]) -> dict[str, list[str]]:
    """The function entries of `entries` by their last part: a use matches only those ending in its own
    last name (asked for every node of a body, against lists of some seventy entries)."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        if entry != COMPLEX and not entry.endswith(MODULE_SUFFIX) and entry != PRIVATE_TORCH:
            out.setdefault(entry.rsplit(".", 1)[-1], []).append(entry)
    return out


@functools.lru_cache(maxsize=256)
def _modules(entries: tuple[str, ...]) -> list[tuple[str, str]]:
    """(entry, module) of the module entries among `entries` (asked for every node of a body)."""
    return [(e, m) for e in entries if (m := module_of(e)) is not None]


def _bound_in(fn: ast.AST) -> set[str]:
    """Names the definition binds itself (arguments, assignments): those never read a module-level value."""
    bound = set()
    for node in _walk(fn):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
    return bound


MAX_HELPERS = 32  # the most of the file's own functions followed from one API name's body


def _finding(defn: _Definition, label: str, scope: _Scope, entries: list[str]) -> str | None:
    found = _search(defn, label, scope, entries, defn.name, "", {defn.name})
    if found and isinstance(defn, ast.ClassDef) and found.startswith(f"{defn.name}()"):
        # a class's finding names the method it is in (course6 trial: "LayerNormFn() uses F.layer_norm" failed
        # the forward's check too, for a use in backward, and did not say where)
        at = re.search(rf"{re.escape(label)} line (\d+)", found)
        line = int(at.group(1)) if at else None
        method = next((m.name for m in defn.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                       and line is not None and m.lineno <= line <= (m.end_lineno or m.lineno)), None)
        if method:
            found = f"{defn.name}.{method}(){found[len(defn.name) + 2:]}"
    return found


def _search(defn: _Definition, label: str, scope: _Scope, entries: list[str], name: str, via: str,
            seen: set[str]) -> str | None:
    """The first forbidden use in `defn` (the API name `name`'s body, or a function of the file's that
    it calls: `via` says how it got there), in the module-level names it reads, and in the module-level
    functions and classes it names, followed transitively (red team, round 7: `def _inv(H): return
    torch.linalg.inv(H)` beside Newton was out of the scan's sight)."""
    bound: set[str] | None = None
    helpers: list[tuple[str, int]] = []
    called = _called(defn)
    for inner in _walk(defn):
        hit = _use(inner, scope.aliases, entries)
        if not hit and (what := reflection(inner, called)):
            line = getattr(inner, "lineno", defn.lineno)
            return (f"{name}(){via} cannot be judged by its rules: it uses {what} ({label} line {line}), a value "
                    "reached by a name the rules cannot read; write the names out")
        if hit:
            entry, what = hit
            line = getattr(inner, "lineno", defn.lineno)
            if entry == COMPLEX:
                return f"{name}(){via} uses complex numbers ({what}, {label} line {line}): {without(name, entry)}"
            if entry == PRIVATE_TORCH:
                return (f"{name}(){via} cannot be judged by its rules: it uses {what} ({label} line {line}), a private "
                        "name of torch's that no rule can read; use torch's public functions")
            return f"{name}(){via} uses {what} ({label} line {line}); {without(name, entry)}"
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load) and \
                (inner.id in scope.assigned or inner.id in scope.defined):
            if bound is None:
                bound = _bound_in(defn)
            if inner.id in bound:
                continue
            for value, where in scope.assigned.get(inner.id, ()):
                value_called = _called(value)
                looked_up = next((w for n in _walk(value) if (w := reflection(n, value_called))), None)
                if looked_up:
                    return (f"{name}(){via} cannot be judged by its rules: it uses {inner.id} ({label} line "
                            f"{inner.lineno}), made with {looked_up} ({where} line {value.lineno}), a value reached by "
                            "a name the rules cannot read; write the names out")
                helpers += [(n.id, inner.lineno) for n in _walk(value)  # a table of the file's functions
                            if isinstance(n, ast.Name) and n.id in scope.defined and n.id not in seen]
                made = next((h for n in _walk(value) if (h := _use(n, scope.aliases, entries))), None)
                if made:
                    entry, what = made
                    return (f"{name}(){via} uses {inner.id} ({label} line {inner.lineno}), made with {what} ({where} "
                            f"line {value.lineno}); {without(name, entry)}")
            if inner.id in scope.defined and inner.id not in seen:
                helpers.append((inner.id, inner.lineno))
    if len(seen) > MAX_HELPERS:
        return None
    for helper, line in helpers:  # after the body's own uses: the nearest finding is named first
        if helper in seen:
            continue
        seen.add(helper)
        for inner_defn, where in scope.defined[helper]:
            found = _search(inner_defn, where, scope, entries, name,
                            f"{via} calls {helper} ({label} line {line}), which", seen)
            if found:
                return found
    return None


def _local_modules(entry: Path) -> set[str]:
    """The names the submission's own files take in `import` (logreg.py, a package folder beside it): a
    student's autograd.py is not HIPS autograd."""
    try:
        return {p.stem if p.suffix == ".py" else p.name for p in entry.parent.iterdir()
                if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file())}
    except OSError:
        return set()


# What switches the run-time guards off or runs code beside them (red team, round 7: each kept full marks
# against them): a function a rule is about never needs one, so the scan finds these in every API name
# that forbids anything, its helpers included. Static only: torch's own code uses them inside legitimate
# calls (a tensor subclass's __torch_function__), where a run-time wrapper would see the student's frame
# below and refuse; and what the static scan cannot read (a name built from strings) stays out of reach.
GUARD_EVASIONS = ("torch._C._DisableTorchDispatch", "torch._C.DisableTorchFunction",
                  "torch._C.DisableTorchFunctionSubclass", "torch._C._pop_torch_dispatch_stack",
                  "torch._C._pop_torch_function_stack", "torch.utils._python_dispatch._disable_current_modes",
                  "torch.utils._python_dispatch._pop_mode_temporarily", "torch.utils._python_dispatch._pop_mode",
                  "threading.*", "_thread.*", "concurrent.futures.*", "multiprocessing.*")
# autograd's graph, walked by hand (a node called on a gradient, then its next_functions): autograd without
# its engine or any function of its (red team, round 7). Static only, where autograd is forbidden: these
# are attributes, which no run-time wrapper can stand in for.
AUTOGRAD_GRAPH = ("torch.Tensor.grad_fn", "torch.Tensor.next_functions")


def scan(entry: Path, forbid: dict[str, list[str]]) -> dict[str, str]:
    """{API name: one line naming the forbidden use} for each API name whose body uses one."""
    if not forbid:
        return {}
    forbid = {name: [*entries, *(e for e in (*GUARD_EVASIONS, *REFLECTIVE_MODULES, PRIVATE_TORCH) if e not in entries),
                     *(AUTOGRAD_GRAPH if "torch.autograd.grad" in entries else ())] if entries else entries
              for name, entries in forbid.items()}
    local = _local_modules(entry)
    if local:  # the submission's own module of that name is imported, not the library
        forbid = {name: [e for e in entries if (m := module_of(e)) is None or m.split(".")[0] not in local]
                  for name, entries in forbid.items()}
    findings: dict[str, str] = {}
    parsed: list[tuple[str, list[_Definition], _Scope]] = []
    notebook = entry.suffix == ".ipynb"
    shared = _Scope() if notebook else None  # a notebook's cells share one namespace
    trees: list[tuple[str, ast.Module]] = []
    for label, source in _sources(entry):
        try:
            trees.append((label, ast.parse(source)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    # A method the submission defines itself (a layer's own backward()) is not torch.Tensor's: the static
    # match of "torch.Tensor.backward" reads any receiver, so it is left to the run-time guard there
    own = {n.name for _label, tree in trees for n in _walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    forbid = {name: [e for e in entries if not (e.split(".")[-2:-1] == ["Tensor"] and e.split(".")[-1] in own)]
              for name, entries in forbid.items()}
    for label, tree in trees:
        scope = shared or _Scope()
        try:
            parsed.append((label, scope.read(tree, label, forbid, imported=not notebook and label != entry.name,
                                             notebook=notebook), scope))
        except (RecursionError, MemoryError):
            continue
    for label, defined, scope in parsed:
        for node in defined:
            name = node.name
            if name in findings:
                continue
            try:
                found = _finding(node, label, scope, forbid[name])
            except RecursionError:
                continue
            if found:
                findings[name] = found
    # Reflection anywhere in the submission (another of its files, a function reached through a list or an
    # attribute, module-level code): its names are out of every rule's reach, so no API name with rules can
    # be judged. (Those the scan followed were named above, with the way there.)
    reflective = next((scope.reflective for _label, _defined, scope in parsed if scope.reflective is not None), None)
    if reflective is not None:
        where, line, what = reflective
        for _label, defined, _scope in parsed:
            for node in defined:
                findings.setdefault(node.name, (
                    f"{node.name}() cannot be judged by its rules: the submission uses {what} ({where} line {line}), "
                    "a value reached by a name the rules cannot read; write the names out"))
    for _label, defined, scope in parsed:
        if scope.tampered is not None:
            where, line, what = scope.tampered
            for node in defined:
                findings.setdefault(node.name, (
                    f"{node.name}() cannot be judged by its rules: the submission rewrites its functions' code ({what}, "
                    f"{where} line {line}), which hides from the run-time guard where its calls come from"))
    return findings


# What the run-time watch (graders/sandbox/student.py's _Watch: a trace function and a torch function mode
# while a forbidding API function runs) can only find where the submission's text could reach it. Without
# this gate the watch cost every exercise-1 submission 41 -> 77 ms of its process's CPU (its trace function
# runs at every Python call of every train() step), for the few that use complex numbers or import a tool.
_COMPLEX_TEXT = re.compile(r"\d[jJ]\b|complex|\bcfloat|\bcdouble|\bchalf|\bcsingle|\bimag\b|\bpolar\b|cmath"
                           r"|\bc(?:8|16|32)\b")
# A name looked up by string: every watch stays (red team, round 5: vars(torch.autograd)["forward" + "_ad"]
# and vars(torch)["comple" + "x128"] reached forward-mode AD and complex numbers with no trigger word)
_DYNAMIC_IMPORT = re.compile(r"__import__|import_module|importlib|(?<![.\w])(?:exec|eval|compile)\s*\(|\bgetattr\b"
                             r"|\bvars\s*\(|__dict__|\bglobals\s*\(|\blocals\s*\(|sys\.modules|__getattribute__"
                             r"|\battrgetter\b|\bmarshal\b|\bpickle\b|\bctypes\b")


def watched(entry: Path, forbid: dict[str, list[str]]) -> dict[str, list[str]]:
    """`forbid` less the entries its run-time watch has nothing to look for in this submission: "complex"
    where no source of it mentions complex numbers (a `1j`, a complex dtype or function, `.imag`, cmath),
    a "MODULE.*" where none imports MODULE (`import sympy`, `from jax import grad`; for a module inside
    torch, its last two parts: `autograd.functional`, or `forward_ad`). A dynamic import or a name looked
    up by string (`__import__`, `importlib`, `exec`, `eval`, `getattr`) keeps every entry. Functions named
    one by one stay (their guards cost nothing until called). The static scan still reads every entry."""
    sources, whole = _read(entry)
    texts = "\n".join(source for _label, source in sources)
    if _DYNAMIC_IMPORT.search(texts) or not whole:
        return forbid  # a source too large to read (MAX_SOURCE_BYTES) could hold anything: every watch stays
    kept: dict[str, list[str]] = {}
    for name, entries in forbid.items():
        kept[name] = [e for e in entries if _reachable(e, texts)]
    return kept


def _reachable(entry: str, texts: str) -> bool:
    if entry == OPERATORS:  # the scan's alone: nothing to watch at run time
        return False
    if entry == COMPLEX:
        return bool(_COMPLEX_TEXT.search(texts))
    module = module_of(entry)
    if module is None:
        return True
    parts = module.split(".")
    if parts[0] == "torch" and len(parts) > 2:  # torch itself is always imported: its submodule's own names
        last = re.escape(parts[-1])
        if ".".join(parts[-2:]) in texts or re.search(rf"\b{re.escape(parts[-2])}[ \t]+import[ \t][^\n]*\b{last}\b", texts):
            return True
        return parts[-1] != "functional" and bool(re.search(rf"\b{last}\b", texts))  # (F = torch.nn.functional)
    root = re.escape(parts[0])  # `from sympy import diff`, `import numpy, sympy as sp`; not `import torch.autograd`
    return bool(re.search(rf"^\s*from\s+{root}\b|^\s*import\s+[^\n#]*(?<![.\w]){root}\b", texts, re.MULTILINE))
