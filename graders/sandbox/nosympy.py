"""Keep sympy out of processes that never trace symbolically (0.3 s and 34 MB per process).

torch's meta device (the placement check) runs Python reference implementations that ask two lazy
imports for trivial answers: `torch._prims_common.elementwise_dtypes` imports sympy only for
`isinstance(x, sympy.Basic)`, and torch's `_check` and the references import helpers of
`torch.fx.experimental.symbolic_shapes` (`expect_true`, `guard_or_false`, `sym_eq`, ...), which
imports sympy at its top. On plain Python values, with no symbolic shape anywhere, each helper is
the identity or a plain boolean.

`defer()` puts two stand-in modules in `sys.modules`. A stand-in answers those helpers itself when
their arguments are plain values of the types torch's plain branch takes, and no object can be an
instance of sympy's classes before sympy is imported. Anything else (a SymInt, any other name, a
submodule, `from sympy import ...`, `torch.compile`) imports the real module then, in place of the
stand-in, and forwards to it from there on: the answer is always the real module's, at worst 0.3 s
later. The fork server defers them (graders/sandbox/forkserver.py), so every harness and student
process starts without them (on a torch listed in VERIFIED_TORCH). tests/test_nosympy.py compares
every helper with torch's own on families of plain values and values outside their domain, and runs
sympy and symbolic shapes through the stand-ins.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any, Callable

SYMBOLIC_SHAPES = "torch.fx.experimental.symbolic_shapes"


class _NotPlain(Exception):
    """An argument outside a stand-in helper's plain domain: the real module answers."""


def _of(*types_: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) not in types_:
            raise _NotPlain
        return value
    return check


_bool, _int, _float = _of(bool), _of(int), _of(float)


def _sym_eq(x: Any, y: Any) -> Any:
    if isinstance(x, (tuple, list)) and isinstance(y, (tuple, list)):  # torch.Size too, as torch's
        if len(x) != len(y):
            return False
        result: Any = True
        for a, b in zip(x, y):
            result = result & _sym_eq(a, b)
        return result
    return _of(int, bool)(x) == _of(int, bool)(y)


def _reduce(op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def answer(x: Any, *others: Any) -> Any:
        x = _bool(x)
        for y in others:
            x = op(x, _bool(y))
        return x
    return answer


# Helpers of symbolic_shapes that return their one argument itself when it is a plain value of these
# exact types (torch 2.13's own plain branches), and raise or ask a symbolic node otherwise
_IDENTITY: dict[str, tuple[type, ...]] = {
    "expect_true": (bool,),
    "guard_bool": (bool,),
    "guard_int": (int,),
    "guard_float": (float,),
    "guard_or_false": (bool,),
    "guard_or_true": (bool,),
    "guard_size_oblivious": (bool,),
    "statically_known_true": (bool,),
    "guard_scalar": (bool, int, float),
    "guarding_hint_or_throw": (bool, int),
}
# The others on plain values; each checks its own domain (exact types) or raises _NotPlain
_PLAIN_ANSWERS: dict[str, Callable[..., Any]] = {
    "sym_and": _reduce(lambda a, b: a & b),
    "sym_or": _reduce(lambda a, b: a | b),
    "sym_eq": _sym_eq,
    "is_nested_int": lambda s: _of(int, float, bool)(s) is None,  # False for every plain number
    "has_guarding_hint": lambda a: _of(int, float, bool)(a) is not None,
    "is_concrete_int": lambda a: _of(int, bool)(a) is not None,
    "is_concrete_bool": lambda a: _bool(a) is not None,
    "has_free_unbacked_symbols": lambda x: _no_symbols(x) and False,
    "free_unbacked_symbols": lambda x: _no_symbols(x) and _empty_ordered_set(),
}


def _no_symbols(value: Any) -> bool:
    """True where torch's _iterate_exprs finds nothing to yield while no symbolic value can exist (a
    plain number, a tensor: its sizes and strides are ints, or tuples and lists of them: what every
    version takes; None, strings and dicts it took only later), else _NotPlain."""
    import torch

    if type(value) in (bool, int, float) or isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return all(map(_no_symbols, value))
    raise _NotPlain


def _empty_ordered_set() -> Any:
    try:
        from torch.utils._ordered_set import OrderedSet
    except ImportError:  # an older torch: its own answer
        raise _NotPlain from None
    return OrderedSet()


class _StandIn:
    """A plain module in `sys.modules` whose few names (set by defer) answer plain values themselves;
    any other name (its module-level `__getattr__`, PEP 562) imports the real module, which then takes
    the stand-in's place. A plain module, not a subclass: `from module import name`, run on every
    call of torch's references, asks for `__path__`, which a subclass's __getattr__ would answer
    with two exceptions where the module's own lookup makes none."""

    def __init__(self, name: str, package: bool, after: "_StandIn | None" = None):
        self.name, self.package = name, package
        self.real: types.ModuleType | None = None
        self.after = after  # symbolic_shapes' helpers answer only while sympy, too, is a stand-in
        self.module = types.ModuleType(name)
        self.module.__dict__["__getattr__"] = self.getattr
        self._lock = threading.RLock()

    def load(self) -> types.ModuleType:
        with self._lock:
            if self.real is None:
                if sys.modules.get(self.name) is self.module:
                    del sys.modules[self.name]
                real = importlib.import_module(self.name)
                # whoever kept the stand-in (an `import ... as` done before) now reads the real names
                self.module.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
                self.real = real
        return self.real

    def unloaded(self) -> bool:
        """No symbolic value can exist yet: neither this module nor the one it comes after is imported."""
        return self.real is None and (self.after is None or self.after.real is None)

    def getattr(self, attr: str) -> Any:
        if self.real is None and attr == "__path__" and not self.package:
            raise AttributeError(attr)  # `from module import name` asks whether it is a package
        return getattr(self.load(), attr)


class _Basic:
    """`sympy.Basic` while sympy is not imported. Nothing is an instance or a subclass of it then (no
    sympy object exists before sympy is); once sympy is imported, it answers as sympy's Basic, and any
    other use (subclassing it, its attributes, a call) imports sympy and is sympy's Basic's."""

    def __init__(self, sympy: _StandIn):
        self._sympy = sympy

    def _real(self) -> type:
        return self._sympy.load().Basic

    def __instancecheck__(self, obj: Any) -> bool:
        return self._sympy.real is not None and isinstance(obj, self._sympy.real.Basic)

    def __subclasscheck__(self, cls: type) -> bool:
        return self._sympy.real is not None and issubclass(cls, self._sympy.real.Basic)

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (self._real(),)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)


def _identity(stand_in: _StandIn, name: str, types_: tuple[type, ...]) -> Callable[..., Any]:
    def helper(a: Any, *rest: Any, **kwargs: Any) -> Any:
        if type(a) in types_ and stand_in.unloaded():  # the meta device's hot path: no call more
            return a
        return getattr(stand_in.load(), name)(a, *rest, **kwargs)
    helper.__name__ = helper.__qualname__ = name
    return helper


def _helper(stand_in: _StandIn, name: str, answer: Callable[..., Any]) -> Callable[..., Any]:
    def helper(*args: Any, **kwargs: Any) -> Any:
        if stand_in.unloaded():
            try:  # each answer checks its own domain: exact plain types, or _NotPlain
                return answer(*args, **kwargs)
            except (_NotPlain, TypeError):
                pass
        return getattr(stand_in.load(), name)(*args, **kwargs)
    helper.__name__ = helper.__qualname__ = name
    return helper


def _defined(spec: Any) -> Callable[[str], bool]:
    """Whether the installed module defines a function of that name (read from its source, not imported:
    a helper of ours that this torch lacks is left to the real module, which raises as it would)."""
    try:
        source = spec.loader.get_data(spec.origin)
    except (AttributeError, OSError, TypeError):
        return lambda name: False
    return lambda name: f"\ndef {name}(".encode() in source


def stand_ins() -> tuple[_StandIn, _StandIn]:
    """New stand-ins for sympy and symbolic_shapes, not installed (defer installs them; a test compares
    their answers with the real module's)."""
    specs = {name: importlib.util.find_spec(name) for name in ("sympy", SYMBOLIC_SHAPES)}
    package = {name: spec.submodule_search_locations is not None for name, spec in specs.items()}  # type: ignore[union-attr]
    defined = _defined(specs[SYMBOLIC_SHAPES])
    sympy = _StandIn("sympy", package["sympy"])
    sympy.module.__dict__["Basic"] = _Basic(sympy)
    shapes = _StandIn(SYMBOLIC_SHAPES, package[SYMBOLIC_SHAPES], after=sympy)
    shapes.module.__dict__.update({name: _helper(shapes, name, answer) for name, answer in _PLAIN_ANSWERS.items()
                                   if defined(name)})
    shapes.module.__dict__.update({name: _identity(shapes, name, types_) for name, types_ in _IDENTITY.items()
                                   if defined(name)})
    return sympy, shapes


# torch versions whose meta device asks only what the tables answer, for every exercise's reference and
# the fork server's warm-up (tests/test_nosympy.py), and whose meta registrations torchfast's
# native_meta_kernels was checked against (tests/test_torchfast.py). Elsewhere the stand-ins would still answer right (any
# other question imports the real module), but in each child that asks it, 0.3 s apiece: on torch 2.11
# some meta op did. There the fork server imports sympy once, as before.
VERIFIED_TORCH = ("2.13",)


def verified(version: str) -> bool:
    return ".".join(version.split("+")[0].split(".")[:2]) in VERIFIED_TORCH


def defer() -> bool:
    """Install the stand-ins (once per process, before anything imported sympy, on a verified torch): True
    when installed."""
    if _STAND_INS and sys.modules.get("sympy") is _STAND_INS["sympy"].module:
        return True  # (installed already: _pin_threads, then the fork server)
    if "sympy" in sys.modules or SYMBOLIC_SHAPES in sys.modules:
        return False
    torch = sys.modules.get("torch")
    if torch is None or not verified(getattr(torch, "__version__", "")):
        return False
    try:
        if importlib.util.find_spec("sympy") is None or importlib.util.find_spec(SYMBOLIC_SHAPES) is None:
            return False
    except (ImportError, ValueError):
        return False
    sympy, shapes = stand_ins()
    _STAND_INS.update({"sympy": sympy, SYMBOLIC_SHAPES: shapes})
    sys.modules["sympy"] = sympy.module
    sys.modules[SYMBOLIC_SHAPES] = shapes.module
    parent = sys.modules.get(SYMBOLIC_SHAPES.rpartition(".")[0])
    if parent is not None:  # `import torch.fx.experimental.symbolic_shapes` reads the attribute
        parent.symbolic_shapes = shapes.module  # type: ignore[attr-defined]
    return True


def deferred(name: str = "sympy") -> bool:
    """Whether `name`'s stand-in is still in place (the real module not imported)."""
    stand_in = _STAND_INS.get(name)
    return stand_in is not None and stand_in.real is None and sys.modules.get(name) is stand_in.module


_STAND_INS: dict[str, _StandIn] = {}
