"""graders/sandbox/nosympy.py keeps sympy out of the processes that run student code, never changing what
torch answers: every stand-in helper is compared with torch's own on families of plain values, and a
fresh interpreter runs the references' meta-device probes, symbolic shapes and sympy itself with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torch.fx.experimental.symbolic_shapes as real_shapes  # noqa: E402  # the real module, to compare with

from dldiy.graders.sandbox import nosympy  # noqa: E402

HELPERS = sorted({*nosympy._IDENTITY, *nosympy._PLAIN_ANSWERS})
scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.none(), st.text(max_size=1))
values = st.one_of(scalars, st.lists(st.one_of(st.booleans(), st.integers(-3, 3)), max_size=3),
                   st.tuples(st.integers(-3, 3), st.integers(-3, 3)), st.builds(torch.Size, st.lists(st.integers(0, 4), max_size=3)),
                   st.just(torch.ones(2)), st.just(torch.ones(3, 2).t()),
                   st.dictionaries(st.text(max_size=1), st.integers(0, 2), max_size=2))


def _outcome(function, *args):
    try:
        answer = function(*args)
        return "returns", answer, type(answer)
    except Exception as e:  # noqa: BLE001 - the exception's type is part of what must agree
        return "raises", type(e)


def test_the_stand_in_answers_only_for_helpers_this_torch_defines():
    _, shapes = nosympy.stand_ins()
    answered = {name for name in HELPERS if name in vars(shapes.module)}
    assert answered == {name for name in HELPERS if callable(getattr(real_shapes, name, None))}
    assert {"expect_true", "guard_or_false", "sym_eq"} <= answered  # what the meta device asks most


@pytest.mark.parametrize("name", HELPERS)
@settings(max_examples=60, deadline=None)
@given(args=st.lists(values, min_size=1, max_size=3))
def test_a_stand_in_helper_answers_as_torch_does(name, args):
    _, shapes = nosympy.stand_ins()  # fresh: answers on its own until something is not plain
    if not hasattr(real_shapes, name):
        pytest.skip(f"torch {torch.__version__} has no {name}")  # (the test above: nor does the stand-in)
    arity = 2 if name == "sym_eq" else (len(args) if name in ("sym_and", "sym_or") else 1)
    args = args[:arity] if len(args) >= arity else args * arity
    assert _outcome(getattr(shapes.module, name), *args) == _outcome(getattr(real_shapes, name), *args)


def test_sympy_basic_stands_in_for_isinstance_until_sympy_is_imported():
    import sympy

    stand_in, _ = nosympy.stand_ins()
    basic = stand_in.module.Basic
    assert not isinstance(1, basic) and isinstance(1, (int, basic))
    stand_in.load()  # sympy is in sys.modules here: the stand-in now answers as sympy's Basic
    assert isinstance(sympy.Symbol("x"), basic) and issubclass(sympy.Symbol, basic)
    assert stand_in.module.Symbol is sympy.Symbol and stand_in.module.Basic is sympy.Basic


def _fresh(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_references_run_on_the_meta_device_without_sympy():
    """Each placement probe's computation (its harness's `_device_run`, on the reference) on meta tensors,
    in a fresh interpreter with the stand-ins: every output on meta, and sympy never imported."""
    lines = _fresh("""
        import sys, importlib
        from dldiy.graders.sandbox.child import _pin_threads
        _pin_threads()  # as the fork server: torch on one thread, imported here
        import torch
        from dldiy.graders.sandbox import nosympy
        from dldiy.graders.sandbox.torchfast import skip_dynamo
        from dldiy.graders.sandbox.submission import load_module_from
        from dldiy.graders.course.exercise import load_exercise
        from dldiy.graders.course.folders import BUILTIN_ROOT
        from dldiy.graders.kinds.placement import warm_up
        print(nosympy.defer())
        skip_dynamo()
        warm_up()  # as the fork server does: on its one thread, without sympy
        import os
        print(len(os.listdir("/proc/self/task")), nosympy.deferred("sympy"))

        class Sub:  # what _device_run asks of a submission: its names
            def __init__(self, module):
                self.module = module
            def get(self, name):
                return getattr(self.module, name)

        for ex in ("exercise-1", "exercise-2", "exercise-8", "exercise-9"):
            exercise = load_exercise(ex)
            harness = load_module_from(exercise.harness_path, "harness_" + ex.replace("-", "_"))
            reference = load_module_from(BUILTIN_ROOT / "reference" / ex / exercise.entry, "ref_" + ex.replace("-", "_"))
            outputs = harness._device_run(Sub(reference), 0)("meta")
            print(ex, sorted({t.device.type for t in outputs.values()}), nosympy.deferred("sympy"),
                  nosympy.deferred(nosympy.SYMBOLIC_SHAPES))
        import torch.fx.experimental.symbolic_shapes as shapes  # still the stand-in: imports nothing
        print(shapes.guard_or_false(True), nosympy.deferred())
    """)
    # On a torch whose meta device the tables were verified with (the version CI pins), without sympy; on
    # another, defer() declines and the fork server imports sympy as before: one thread, outputs on meta.
    if not nosympy.verified(torch.__version__):
        assert lines[0] == "False" and lines[1].startswith("1 ") and all("['meta']" in x for x in lines[2:6]), lines
        return
    assert lines == ["True", "1 True", *(f"exercise-{n} ['meta'] True True" for n in (1, 2, 8, 9)), "True True"], lines


def test_defer_declines_a_torch_its_tables_were_not_verified_with():
    assert nosympy.verified("2.13.0+cpu") and nosympy.verified("2.13.1")
    assert not nosympy.verified("2.11.0+cu130") and not nosympy.verified("2.14.0") and not nosympy.verified("")


def test_symbolic_shapes_and_sympy_work_as_torch_s_once_asked_for():
    """Student code that needs the real modules gets them: sympy itself, a SymInt's guard (through
    torch's own ShapeEnv), and a helper kept from before sympy was imported."""
    lines = _fresh("""
        import torch
        from dldiy.graders.sandbox import nosympy
        print(nosympy.defer())
        from torch.fx.experimental.symbolic_shapes import guard_or_false  # the stand-in's
        import sympy
        x = sympy.Symbol("x")
        print(sympy.expand((x + 1) ** 2), isinstance(x, sympy.Basic), nosympy.deferred("sympy"))
        from torch.fx.experimental.symbolic_shapes import ShapeEnv
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.symbolic_shapes import DimDynamic
        env = ShapeEnv()
        with FakeTensorMode(shape_env=env) as mode:
            t = mode.from_tensor(torch.ones(5, 3), symbolic_context=None) if False else None
        s = env.create_unbacked_symint()
        print(type(s).__name__, guard_or_false(s == 3), nosympy.deferred(nosympy.SYMBOLIC_SHAPES))
    """)
    assert lines[1:] == ["x**2 + 2*x + 1 True False", "SymInt False False"], lines
    assert lines[0] == str(nosympy.verified(torch.__version__)), lines
