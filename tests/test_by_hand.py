"""A gradient "by hand" (issue 13): an exact gradient that no autograd function names, by a complex step
or by another differentiation tool, loses the checks that call it, with the rule and the line.

The spec's `forbid` lists name whole modules ("sympy.*") and complex numbers ("complex") beside
functions (graders/sandbox/forbid.py). The static scan finds them in the body of gradient(); the
run-time watch (graders/sandbox/student.py, _Watch) finds them in the helpers gradient() calls. A
correct solution that imports sympy at module level for something else is not touched. Real
subprocesses, through the CLI, as a student runs it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_dldiy
from dldiy.graders.sandbox.forbid import scan

REFERENCE = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
BY_HAND_EXERCISES = ("exercise-1", "exercise-2", "exercise-5", "exercise-9")  # a derivative by hand: complex numbers too
DIFFERENTIATION = ("sympy.*", "jax.*", "autograd.*", "functorch.*", "torch.autograd.functional.*",
                   "torch.autograd.forward_ad.*", "torch.func.jacrev", "mpmath.*", "numdifftools.*")


def _with_gradient(body: str, top: str = "") -> str:
    """The reference with its gradient() replaced by `body` (and `top` added after its imports)."""
    start = REFERENCE.index("def gradient(")
    end = REFERENCE.index("def train(")
    head = REFERENCE[:start].replace("import torch\n", "import torch\n" + textwrap.dedent(top), 1)
    return head + textwrap.dedent(body).strip() + "\n\n\n" + REFERENCE[end:]


def _gradient_finding(tmp_path: Path, code: str) -> str:
    """What the static scan says of gradient() in `code`, as exercise-1's logreg.py ("" for nothing)."""
    (tmp_path / "logreg.py").write_text(code)
    found = scan(tmp_path / "logreg.py", _forbid("exercise-1"))
    return found.get("gradient", "") or repr(found)


def _line(code: str, marker: str) -> int:
    (number,) = [i for i, text in enumerate(code.splitlines(), 1) if marker in text]
    return number


def _check(path: Path, *only: str) -> dict:
    args = [a for name in only for a in ("--only", name)]
    result = run_dldiy("check", "exercise-1", str(path), "--json", *args)
    assert result.stdout, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


# A complex-step derivative of a copy of the loss: Im L(w + ih e_k) / h, exact to machine precision.
COMPLEX_STEP = _with_gradient('''
    def _complex_loss(X, y, w):
        t = 2 * y.to(X.dtype) - 1
        u = t * (add_bias(X).to(w.dtype) @ w)
        return torch.log1p(torch.exp(-u)).mean()


    def gradient(X, y, w):
        h = 1e-30
        g = torch.empty(w.shape, dtype=torch.float64)
        for k in range(w.numel()):
            wc = w.to(torch.complex128)  # COMPLEX
            wc[k] = wc[k] + 1j * h
            g[k] = _complex_loss(X.double(), y, wc).imag / h
        return g.to(w.dtype)
''')

SYMPY = _with_gradient('''
    def gradient(X, y, w):
        u = sympy.Symbol("u")  # SYMPY
        d = sympy.lambdify(u, sympy.diff(sympy.log(1 + sympy.exp(-u)), u), "math")
        Xt = add_bias(X)
        t = 2 * y.to(X.dtype) - 1
        coef = torch.tensor([d(v) for v in (t * (Xt @ w)).tolist()], dtype=X.dtype)
        return (coef * t) @ Xt / X.shape[0]
''', top="import sympy\n")

TORCH_FUNC = _with_gradient('''
    def gradient(X, y, w):
        return grad(lambda v: loss(X, y, v))(w)  # FUNC
''', top="from torch.func import grad\n")

# The same two tools, out of the static scan's sight: in a module of the submission's own that gradient()
# calls (the scan follows the file's own functions, tables of them included, but not another file's), with
# nothing in gradient()'s own body. The run-time watch finds them while gradient() runs.
COMPLEX_STEP_IN_A_HELPER = _with_gradient('''
    def gradient(X, y, w):
        return torch.stack([derivative(X.double(), y, w.double(), k, add_bias) for k in range(w.numel())]).to(w.dtype)
''', top="from helpers import derivative\n")
COMPLEX_STEP_HELPER = '''import torch


def derivative(X, y, w, k, add_bias, h=1e-30):
    t = 2 * y.to(X.dtype) - 1
    wc = w.to(torch.complex128)  # HELPER
    wc[k] += h * 1j
    return torch.log1p(torch.exp(-(t * (add_bias(X).to(wc.dtype) @ wc)))).mean().imag / h
'''

LAMBDIFIED_AT_IMPORT = _with_gradient('''
    def gradient(X, y, w):
        Xt = add_bias(X)
        t = 2 * y.to(X.dtype) - 1
        coef = torch.tensor([coefficient(v) for v in (t * (Xt @ w)).tolist()], dtype=X.dtype)
        return (coef * t) @ Xt / X.shape[0]
''', top="from helpers import coefficient\n")
LAMBDIFIED_HELPER = '''import sympy as sp

_u = sp.Symbol("u")
_D = sp.lambdify(_u, sp.diff(sp.log(1 + sp.exp(-_u)), _u), "math")  # made once, at import


def coefficient(v):
    return _D(v)  # LAMBDIFIED
'''

# A correct hand gradient beside an unrelated use of sympy at module level (the formula, printed)
SYMPY_UNRELATED = REFERENCE.replace("import torch\n", textwrap.dedent('''\
    import sympy
    import torch

    _u = sympy.Symbol("u")
    FORMULA = str(sympy.diff(sympy.log(1 + sympy.exp(-_u)), _u))  # what gradient() implements by hand


    def show_formula():
        print(sympy.pretty(sympy.sympify(FORMULA)))
    '''), 1)


@pytest.mark.parametrize("code, marker, words", [
    (COMPLEX_STEP, "# COMPLEX", "uses complex numbers"),
    (SYMPY, "# SYMPY", "without the module sympy"),
    (TORCH_FUNC, "# FUNC", "torch.func.grad"),
], ids=["complex-step", "sympy", "torch.func.grad"])
def test_an_exact_gradient_not_by_hand_loses_gradcheck_naming_the_rule_and_line(write_submission, code, marker, words):
    path = write_submission(code)
    checks = _check(path, "gradcheck")
    assert checks["gradcheck"]["status"] == "fail", checks["gradcheck"]
    message = checks["gradcheck"]["message"]
    assert words in message and "gradient()" in message, message
    # the static scan names the line in gradient()'s body; for the complex step, the first of its lines
    first = _line(code, marker)
    assert f"logreg.py line {first}" in message or (words == "uses complex numbers" and "logreg.py line" in message), message
    assert checks["gradcheck"]["points"] == 0


@pytest.mark.parametrize("code, helper, marker, words", [
    (COMPLEX_STEP_IN_A_HELPER, COMPLEX_STEP_HELPER, "# HELPER", "uses complex numbers"),
    (LAMBDIFIED_AT_IMPORT, LAMBDIFIED_HELPER, "# LAMBDIFIED", "sympy.lambdify"),
], ids=["complex-step-in-a-helper", "lambdified-at-import"])
def test_a_helper_out_of_the_static_scans_sight_is_caught_while_gradient_runs(write_submission, code, helper, marker,
                                                                              words):
    path = write_submission(code)
    (path.parent / "helpers.py").write_text(helper)
    assert scan(path, _forbid("exercise-1")) == {}  # nothing in gradient()'s own body: the run-time half's case
    checks = _check(path.parent, "gradcheck")  # the folder: both files
    message = checks["gradcheck"]["message"]
    assert checks["gradcheck"]["status"] == "fail" and words in message, message
    assert f"helpers.py line {_line(helper, marker)}" in message, message


def test_the_reference_and_an_unrelated_sympy_import_keep_every_point(write_submission, dldiy_once):
    reference = json.loads(dldiy_once("check", "exercise-1", "reference/exercise-1", "--json").stdout)
    unrelated = _check(write_submission(SYMPY_UNRELATED))
    for checks in ({c["name"]: c for c in reference["checks"]}, unrelated):
        # (parity skips on a machine without a GPU)
        assert all(c["status"] in ("pass", "skip") for c in checks.values()), checks
        assert all(c["status"] == "pass" for n, c in checks.items() if n != "parity"), checks


# ---- the static half, in this process ---------------------------------------------------------------

def _forbid(exercise_id: str) -> dict[str, list[str]]:
    from dldiy.graders.course.exercise import load_exercise

    return {name: list(entry.forbid) for name, entry in load_exercise(exercise_id).api.items() if entry.forbid}


@pytest.mark.parametrize("code, expected", [
    ("import torch\ndef gradient(X, y, w):\n    return (w + 1e-20j).real\n", "complex numbers"),
    ("def gradient(X, y, w):\n    return w * complex(1, 0)\n", "complex numbers"),
    ("import numpy as np\ndef gradient(X, y, w):\n    return np.zeros(3, dtype='complex128')\n", "complex numbers"),
    ("def gradient(X, y, w):\n    return w.cdouble().imag\n", "complex numbers"),
    ("import cmath\ndef gradient(X, y, w):\n    return cmath.exp(w)\n", "complex numbers"),
    ("def gradient(X, y, w):\n    import sympy\n    return w\n", "without the module sympy"),
    ("import importlib\ndef gradient(X, y, w):\n    return importlib.import_module('jax')\n", "without the module importlib"),
    ("from sympy import diff as d\ndef gradient(X, y, w):\n    return d(w)\n", "uses sympy.diff"),
    ("from autograd import grad\ndef gradient(X, y, w):\n    return grad(w)\n", "without the module autograd"),
    ("import torch.autograd.forward_ad as fw\ndef gradient(X, y, w):\n    return fw.make_dual(w, w)\n",
     "without the module torch.autograd.forward_ad"),
    ("import functorch\ndef gradient(X, y, w):\n    return functorch.grad(w)\n", "without the module functorch"),
    ("import sympy as sp\nD = sp.lambdify(1, 2)\ndef gradient(X, y, w):\n    return D(w)\n",
     "uses D (logreg.py line 4), made with sympy.lambdify (logreg.py line 2)"),
    # what switches the run-time guards off or runs beside them (red team, round 7), in a helper too
    ("import torch\ndef gradient(X, y, w):\n    with torch._C._DisableTorchDispatch():\n        return w\n",
     "uses torch._C._DisableTorchDispatch (logreg.py line 3)"),
    ("from torch.utils._python_dispatch import _disable_current_modes as off\ndef _run(f):\n    with off():\n"
     "        return f()\ndef gradient(X, y, w):\n    return _run(lambda: w)\n",
     "calls _run (logreg.py line 6), which cannot be judged by its rules: it uses "
     "torch.utils._python_dispatch._disable_current_modes"),
    ("import threading\ndef gradient(X, y, w):\n    threading.Thread(target=print).start()\n    return w\n",
     "without the module threading"),
], ids=["literal", "complex()", "dtype-string", "cdouble-imag", "cmath", "import-inside", "import_module",
        "from-import", "hips-autograd", "forward-ad", "functorch", "made-at-module-level", "dispatch-off",
        "modes-off-in-a-helper", "a-thread"])
def test_the_scan_names_each_kind_of_use(tmp_path, code, expected):
    assert expected in _gradient_finding(tmp_path, code)


@pytest.mark.parametrize("code", [
    # torch.autograd is not HIPS autograd, nor torch.vmap a differentiation (torch.func's others are)
    "import torch\nfrom torch import autograd\ndef gradient(X, y, w):\n    return torch.vmap(abs)(w) if autograd else w\n",
    # sympy at module level and in a function gradient() does not read
    "import sympy\nF = sympy.diff(sympy.Symbol('u') ** 2)\ndef show():\n    return sympy.pretty(F)\n"
    "def gradient(X, y, w):\n    return 2 * w\n",
    # a module-level name shadowed by an argument; .real and is_complex() make nothing complex
    "import sympy\nD = sympy.lambdify(1, 2)\ndef gradient(X, y, D):\n    return D.real if D.is_complex() else D\n",
    # a variable that happens to be called like a forbidden module is not the module
    "def gradient(X, y, w):\n    jax = w\n    return jax.sum()\n",
], ids=["torch-autograd-and-vmap", "sympy-elsewhere", "shadowed-and-real", "a-variable-named-jax"])
def test_the_scan_leaves_what_is_not_a_use(tmp_path, code):
    (tmp_path / "logreg.py").write_text(code)
    assert scan(tmp_path / "logreg.py", _forbid("exercise-1")) == {}


def test_a_notebooks_cells_share_their_imports(tmp_path):
    cells = ["import sympy as sp", "def gradient(X, y, w):\n    return sp.diff(w)"]
    notebook = {"cells": [{"cell_type": "code", "source": c} for c in cells], "metadata": {}, "nbformat": 4,
                "nbformat_minor": 5}
    (tmp_path / "logreg.ipynb").write_text(json.dumps(notebook))
    found = scan(tmp_path / "logreg.ipynb", _forbid("exercise-1"))
    assert "sympy.diff (logreg.ipynb[cell 2] line 2)" in found["gradient"], found


def test_every_rule_of_a_derivative_by_hand_forbids_the_other_tools_too():
    """Every API name that forbids autograd forbids the other differentiation tools; those whose
    derivative is by hand (not exercise-8's convolution, which an FFT may compute) complex numbers too."""
    from dldiy.graders.course.exercise import exercise_ids, load_exercise

    seen = set()
    for exercise_id in exercise_ids():
        for name, entry in load_exercise(exercise_id).api.items():
            if "torch.autograd.grad" in entry.forbid:
                seen.add(exercise_id)
                missing = [m for m in DIFFERENTIATION if m not in entry.forbid]
                assert not missing, (exercise_id, name, missing)
                assert ("complex" in entry.forbid) == (exercise_id in BY_HAND_EXERCISES), (exercise_id, name)
    assert seen >= set(BY_HAND_EXERCISES)


def test_the_submissions_own_module_is_not_the_library_of_that_name(tmp_path):
    (tmp_path / "jax.py").write_text("def helper(w):\n    return w\n")
    (tmp_path / "logreg.py").write_text("import jax\ndef gradient(X, y, w):\n    return jax.helper(w)\n")
    assert scan(tmp_path / "logreg.py", _forbid("exercise-1")) == {}


def test_the_run_time_watch_is_kept_only_where_the_submissions_text_can_reach_it(tmp_path):
    """forbid.watched: the trace function and torch function mode cost an exercise-1 submission 41 -> 77 ms
    of CPU; they are kept for the entries its text can reach (a complex token, an import of the tool, a
    dynamic import), and the named functions' guards always."""
    from dldiy.graders.sandbox.forbid import COMPLEX, watched

    entries = ["torch.autograd.grad", "sympy.*", "autograd.*", "torch.autograd.functional.*",
               "torch.autograd.forward_ad.*", COMPLEX]

    def kept(source):
        folder = tmp_path / str(abs(hash(source)))
        folder.mkdir()
        (folder / "logreg.py").write_text(source)
        return watched(folder / "logreg.py", {"gradient": entries})["gradient"]

    plain = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
    assert kept(plain) == ["torch.autograd.grad"]
    assert kept(plain + "\nfrom torch import autograd\nimport torch.nn.functional as F\n") == ["torch.autograd.grad"]
    assert COMPLEX in kept(plain + "\ndef _helper(w):\n    return (w + 1e-20j).imag\n")
    assert "sympy.*" in kept(plain + "\nimport numpy, sympy as sp\n")
    assert "autograd.*" in kept(plain + "\nfrom autograd import grad\n")
    assert "torch.autograd.functional.*" in kept(plain + "\nfrom torch.autograd import functional as AF\n")
    assert "torch.autograd.forward_ad.*" in kept(plain + "\nimport torch.autograd.forward_ad as fwAD\n")
    assert kept(plain + "\nsp = __import__('sym' + 'py')\n") == entries  # a dynamic import: watch everything


def test_the_static_scan_reads_a_bounded_amount_of_source_whatever_the_siblings(tmp_path):
    """Red team, round 5: sibling files of "a = [0, 0, ...]" (2 MB each) held ~0.6 GB of syntax tree each
    in the harness's process. The scan reads the entry first, and at most MAX_TOTAL_SOURCE_BYTES in all;
    a forbidden use in the entry is still found."""
    from dldiy.graders.sandbox.forbid import MAX_SOURCE_BYTES, MAX_TOTAL_SOURCE_BYTES, _sources

    entry = tmp_path / "logreg.py"
    entry.write_text("import torch\n\ndef gradient(X, y, w):\n    return torch.autograd.grad(w.sum(), w)[0]\n")
    bomb = "a = [" + "0, " * (MAX_SOURCE_BYTES // 3 - 10) + "]\n"
    for k in range(6):
        (tmp_path / f"sibling{k}.py").write_text(bomb)
    read = _sources(entry)
    assert read[0][0] == "logreg.py"
    assert sum(len(source) for _, source in read) <= MAX_TOTAL_SOURCE_BYTES
    assert "gradient" in scan(entry, {"gradient": ["torch.autograd.grad"]})


def test_the_run_time_watch_stays_where_the_source_is_too_large_to_read_or_names_things_by_string(tmp_path):
    """Red team, round 5: the watch of a module is installed only where the submission's text names it. A
    1.1 MB sibling file (over the scan's cap, so never read) imported forward-mode AD unseen; so did
    vars(torch.autograd)["forward" + "_ad"]. Either way every watch now stays."""
    from dldiy.graders.sandbox.forbid import MAX_SOURCE_BYTES, watched

    forbid = {"gradient": ["torch.autograd.forward_ad.*", "complex"]}
    entry = tmp_path / "logreg.py"
    entry.write_text("def gradient(X, y, w):\n    return w\n")
    assert watched(entry, forbid) == {"gradient": []}  # nothing in reach: no watch to pay for
    entry.write_text('import torch\nAD = vars(torch.autograd)["forward" + "_ad"]\n\ndef gradient(X, y, w):\n    return w\n')
    assert watched(entry, forbid) == forbid
    entry.write_text("def gradient(X, y, w):\n    return w\n")
    (tmp_path / "_impl.py").write_text("# " + "x" * (MAX_SOURCE_BYTES + 10) + "\n")
    assert watched(entry, forbid) == forbid


# ---- operator entries ("aten.*convolution*"): every Python name that reaches torch's own op -------------

CONVNET = (REPO / "reference" / "exercise-8" / "convnet.py").read_text()
CONV_RETURN = "        return out.reshape(N, Ho, Wo, K).permute(0, 3, 1, 2).contiguous()\n"
POOL_MAX = "        out, arg = windows.max(dim=-1)\n"


@pytest.mark.parametrize("old, new, check, op", [
    (CONV_RETURN, "        return torch.ops.aten.convolution(x, weight, bias, [stride] * 2, [padding] * 2, [1, 1], False, "
                  "[0, 0], 1)  # OP\n", "conv-agreement", "aten.convolution"),
    (CONV_RETURN, "        return torch.convolution(x, weight, bias, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1)"
                  "  # OP\n", "conv-agreement", "aten.convolution"),
    (CONV_RETURN, "        return F.conv3d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride, stride), (0, padding, "
                  "padding)).squeeze(2)  # OP\n", "conv-agreement", "aten.convolution"),
    (POOL_MAX, POOL_MAX + "        out = torch.ops.aten.max_pool2d_with_indices(x, [2, 2], [2, 2])[0]  # OP\n",
     "pool-agreement", "aten.max_pool2d_with_indices"),
], ids=["torch.ops.aten.convolution", "torch.convolution", "conv3d-of-an-unsqueezed-input", "aten.max_pool2d_with_indices"])
def test_torchs_own_op_by_any_other_name_is_refused_with_its_line(tmp_path, old, new, check, op):
    """Round 5b's hostile student: the function entries (F.conv2d, torch.conv2d, nn.Conv2d) named the
    doors, and torch.ops.aten.*, torch.convolution or a conv3d on an unsqueezed input went round them to
    the same operator. An operator entry is judged below every Python name (a torch dispatch mode)."""
    folder = tmp_path / "sub"
    folder.mkdir()
    code = CONVNET.replace(old, new, 1)
    assert code != CONVNET
    (folder / "convnet.py").write_text(code)
    result = run_dldiy("check", "exercise-8", str(folder), "--json", "--only", check)
    (found,) = json.loads(result.stdout)["checks"]
    assert found["status"] == "fail" and found["points"] == 0, found
    # torch.ops.aten.* is refused by the static scan already (torch's private names, round 8), the others
    # by the operator guard while the function runs
    said = f"uses torch.ops.{op}" if "torch.ops." in new else f"runs torch's operator {op}"
    assert said in found["message"], found["message"]
    assert f"convnet.py line {_line(code, '# OP')}" in found["message"], found["message"]


def test_a_hand_written_backward_is_judged_by_the_rules_of_the_call_that_made_its_graph(tmp_path):
    """Conv2dFunction.backward ran under no API name (the harness asks for it through the graph of a
    conv2d call), so torch.nn.grad.conv2d_input, which conv2d's forbid list names, went unseen there. A
    graph now keeps the name of the call that made it, and its backward runs under that name's rules."""
    folder = tmp_path / "sub"
    folder.mkdir()
    fold = "        grad_x = F.fold(grad_cols, (H, W), (kh, kw), padding=padding, stride=stride)\n"
    code = CONVNET.replace(fold, fold + "        grad_x = grads.input_grad((N, C, H, W), weight, grad_out, stride, padding)\n", 1)
    code = code.replace("import torch\n", "import torch\nimport grads\n", 1)
    helper = ("import torch\n\n\ndef input_grad(size, weight, grad_out, stride, padding):\n"
              "    return torch.nn.grad.conv2d_input(size, weight, grad_out, stride=stride, padding=padding)  # OP\n")
    (folder / "convnet.py").write_text(code)
    (folder / "grads.py").write_text(helper)  # a module of its own: out of the static scan's reach
    assert scan(folder / "convnet.py", _forbid("exercise-8")) == {}  # the run-time guard's case
    result = run_dldiy("check", "exercise-8", str(folder), "--json", "--only", "conv-agreement")
    (found,) = json.loads(result.stdout)["checks"]
    assert found["status"] == "fail", found
    assert "calls torch.nn.grad.conv2d_input" in found["message"], found["message"]
    assert f"grads.py line {_line(helper, '# OP')}" in found["message"], found["message"]


def test_an_inverse_through_torch_ops_is_refused_in_fit_exact(tmp_path):
    """exercise-2 asks for least squares "never by inverting": torch.ops.aten.linalg_inv_ex is the
    operator behind torch.linalg.inv, torch.inverse and Tensor.inverse."""
    reference = (REPO / "reference" / "exercise-2" / "linreg.py").read_text()
    solve = "    return torch.linalg.lstsq(Xt, y.unsqueeze(1)).solution.squeeze(1)\n"
    code = reference.replace(solve, "    inverse = torch.ops.aten.linalg_inv_ex(Xt.T @ Xt)[0]  # OP\n"
                                    "    return inverse @ Xt.T @ y\n", 1)
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "linreg.py").write_text(code)
    result = run_dldiy("check", "exercise-2", str(folder), "--json", "--only", "exact-solution")
    (found,) = json.loads(result.stdout)["checks"]
    assert found["status"] == "fail", found
    assert "linalg_inv_ex" in found["message"] and f"linreg.py line {_line(code, '# OP')}" in found["message"], found


# ---- red team, round 7: what a helper does is the API name's doing --------------------------------------

def test_the_scan_follows_the_files_own_functions_that_an_api_name_calls(tmp_path):
    """`def _inv(H): return torch.linalg.inv(H)` beside Newton scored full marks: the scan read Newton's
    body and the module-level values it reads, not the functions it calls. It now follows those calls
    into the file's own functions, transitively, and names the way there; a function no API name reaches
    is still nobody's business."""
    code = textwrap.dedent('''
        import torch

        def _solve(H, g):
            return _invert(H) @ g

        def _invert(H):
            return torch.linalg.inv(H)

        def _unused(H):
            return torch.linalg.inv(H)

        def gradient(X, y, w):
            return w

        def fit_exact(X, y):
            A = X.T @ X
            return _solve(A, X.T @ y)
    ''')
    (tmp_path / "linreg.py").write_text(code)
    found = scan(tmp_path / "linreg.py", _forbid("exercise-2"))
    assert set(found) == {"fit_exact"}, found
    assert found["fit_exact"].startswith(
        f"fit_exact() calls _solve (linreg.py line {_line(code, 'return _solve')}), which calls _invert (linreg.py "
        f"line {_line(code, 'return _invert')}), which uses torch.linalg.inv (linreg.py line "
        f"{_line(code, 'def _invert') + 1})"), found
    (tmp_path / "linreg.py").write_text(code.replace("return _solve(A, X.T @ y)", "return torch.linalg.solve(A, X.T @ y)"))
    assert scan(tmp_path / "linreg.py", _forbid("exercise-2")) == {}  # _solve, _invert, _unused: reached by none


def test_the_harness_own_code_run_beside_the_students_objects_keeps_their_rules(tmp_path):
    """exercise-6's checks step the optimizers inside the student's process (sub.run_local: one message
    for many steps), where no API name was being called, so the run-time guards never fired there: a
    Newton that inverted H through a name the static scan cannot read scored full marks. A Local now runs
    under the rules of the API names whose objects it is handed."""
    reference = (REPO / "reference" / "exercise-6" / "optim.py").read_text()
    solve = "direction = torch.linalg.solve(H, g).split(sizes)"
    assert solve in reference
    code = reference.replace(solve, "direction = (invert_matrix(H) @ g).split(sizes)", 1)
    code = code.replace("import torch\n", "import torch\nfrom helper import invert_matrix\n", 1)
    helper = "import torch\n\n\ndef invert_matrix(H):\n    return torch.linalg.inv(H)  # OP\n"
    message = _newton_refused(tmp_path, code, helper)
    assert "Newton() calls torch.linalg.inv" in message and f"helper.py line {_line(helper, '# OP')}" in message, message


def _newton_refused(tmp_path: Path, code: str, helper: str | None = None) -> str:
    """exercise-6's newton-quadratic on `code` (and `helper`, a module of the submission's own), out of the
    static scan's sight: it must fail; its message."""
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "optim.py").write_text(code)
    if helper is not None:
        (folder / "helper.py").write_text(helper)
    assert scan(folder / "optim.py", _forbid("exercise-6")) == {}  # the run-time guard's case
    result = run_dldiy("check", "exercise-6", str(folder), "--json", "--only", "newton-quadratic")
    (found,) = json.loads(result.stdout)["checks"]
    assert found["status"] == "fail", found
    return found["message"]


@pytest.mark.parametrize("body, expected", [
    # autograd's graph walked by hand: a node called on the loss's gradient, then its next_functions
    ("    L = loss(X, y, w.detach().requires_grad_())\n    return L.grad_fn(torch.ones(()))[0]\n",
     "gradient() uses torch.Tensor.grad_fn"),
    # the functions' code relabelled with another file, so the run-time guard takes it for torch's own
    ("    return w\n\n\nfor _f in (gradient, train):\n    _f.__code__ = _f.__code__.replace(co_filename='/usr/lib/x.py')\n",
     "gradient() cannot be judged by its rules: the submission rewrites its functions' code (an assignment to "
     "__code__"),
], ids=["graph-nodes-by-hand", "code-relabelled"])
def test_what_no_run_time_guard_can_see_is_found_in_the_source(tmp_path, body, expected):
    """Red team, round 7: two ways past every run-time guard that need no forbidden name at all."""
    code = _with_gradient("def gradient(X, y, w):\n" + body)
    assert expected in _gradient_finding(tmp_path, code)


def test_a_forbidden_call_on_a_thread_of_the_submission_is_refused_while_the_rule_holds(tmp_path):
    """Red team, round 7: torch.linalg.pinv handed to a thread pool (`pool.submit(torch.linalg.pinv, A)`)
    ran with only the pool's frames on its stack, so the guard saw no student's code and let it through.
    While an API name with rules runs (on the main thread), a forbidden call on any other thread is the
    submission's doing. (A module of the submission's own keeps the pool out of the static scan's sight.)"""
    reference = (REPO / "reference" / "exercise-6" / "optim.py").read_text()
    solve = "direction = torch.linalg.solve(H, g).split(sizes)"
    code = reference.replace(solve, "direction = (inverse_on_a_thread(H) @ g).split(sizes)", 1)
    code = code.replace("import torch\n", "import torch\nfrom helper import inverse_on_a_thread\n", 1)
    helper = ("import concurrent.futures\nimport torch\n\n_POOL = concurrent.futures.ThreadPoolExecutor(1)\n\n\n"
              "def inverse_on_a_thread(H):\n    return _POOL.submit(torch.linalg.inv, H).result()\n")
    message = _newton_refused(tmp_path, code, helper)
    assert "Newton() calls torch.linalg.inv (on the thread" in message, message


@pytest.mark.parametrize("code, expected", [
    # round 8: the guard switched off and autograd's graph walked through names built from strings
    ("import torch\ndef gradient(X, y, w):\n    with getattr(torch._C, '_Disable' + 'TorchDispatch')():\n"
     "        return w\n", "getattr() with a name computed at run time (logreg.py line 3)"),
    ("def _node(t):\n    return getattr(t, 'grad' + '_fn')\ndef gradient(X, y, w):\n    return _node(w)\n",
     "calls _node (logreg.py line 4), which cannot be judged by its rules: it uses getattr() with a name computed"),
    ("import torch\nOFF = vars(torch._C)['_Disable' 'TorchDispatch']\ndef gradient(X, y, w):\n    with OFF():\n"
     "        return w\n", "it uses OFF (logreg.py line 4), made with vars (logreg.py line 2)"),
    ("import functools, torch\ndef gradient(X, y, w):\n    return functools.reduce(getattr, ['linalg', 'inv'], torch)(w)\n",
     "getattr passed as a value"),
    ("import torch\ndef gradient(X, y, w):\n    return torch.linalg.inv.__wrapped__(w)\n", "the attribute __wrapped__"),
    ("import inspect, torch\ndef gradient(X, y, w):\n    return dict(inspect.getmembers(torch))['lin' + 'alg'].inv(w)\n",
     "without the module inspect"),
    ("import torch\ndef gradient(X, y, w):\n    return eval('torch.autograd.grad')(w, w)\n", "it uses eval"),
    # a constant name is the attribute itself
    ("import torch\ndef gradient(X, y, w):\n    return getattr(torch.autograd, 'grad')(w, w)\n", "uses torch.autograd.grad"),
    # integrity round 7: a match statement's class pattern reads an attribute by a name that is no ast.Attribute
    ("import torch\nmatch torch.linalg.inv:\n    case object(__wrapped__=INV):\n        pass\n"
     "def gradient(X, y, w):\n    return INV(w)\n", "made with the attribute __wrapped__ (logreg.py line 3)"),
    ("import torch\ndef gradient(X, y, w):\n    match torch.autograd:\n        case object(grad=g):\n"
     "            return g(w, w)\n", "uses torch.autograd.grad (logreg.py line 4)"),
    ("import torch\nmatch torch:\n    case object(autograd=object(grad=G)):\n        pass\n"
     "def gradient(X, y, w):\n    return G(w, w)\n", "uses G (logreg.py line 6), made with torch.autograd.grad"),
    ("import torch\ndef gradient(X, y, w):\n    match w:\n        case object(grad_fn=node):\n"
     "            return node(w)\n", "uses torch.Tensor.grad_fn (logreg.py line 4)"),
    ("import torch\nmatch 0:\n    case _:\n        def helper(w):\n            return torch.autograd.grad(w, w)\n"
     "def gradient(X, y, w):\n    return helper(w)\n", "calls helper (logreg.py line 7), which uses torch.autograd.grad"),
], ids=["getattr-string-sum", "in-a-helper", "vars-at-import", "reduce-getattr", "wrapped", "inspect", "eval",
        "getattr-constant", "match-wrapped", "match-attribute", "match-nested-capture", "match-graph",
        "match-case-helper"])
def test_a_name_the_rules_cannot_read_is_refused_where_an_api_name_has_rules(tmp_path, code, expected):
    """Round 8's hostile student kept full marks in exercises 1, 4 and 6 with names built at run time, which
    no rule can judge: where a name forbids anything, reflection in its body, its helpers, the values they
    read and the module's own code is refused."""
    assert expected in _gradient_finding(tmp_path, code)


def test_constant_lookups_are_left_alone_and_reflection_anywhere_is_refused(tmp_path):
    """A name written out (getattr with a constant) is read as the attribute it names; a computed one anywhere
    in the submission (here in another file) leaves no API name with rules judgeable. Where no API name has
    rules (exercise-7), reflection is nobody's business."""
    (tmp_path / "logreg.py").write_text(
        "import torch\nSTEP = getattr(torch, 'sigmoid')\ndef gradient(X, y, w):\n    if hasattr(torch, 'compile'):\n"
        "        pass\n    return STEP(X @ w) @ X / len(X)\n")
    assert scan(tmp_path / "logreg.py", _forbid("exercise-1")) == {}
    (tmp_path / "tools.py").write_text("def pick(module, name):\n    return getattr(module, name + '')\n")
    found = scan(tmp_path / "logreg.py", _forbid("exercise-1"))
    assert "gradient() cannot be judged by its rules: the submission uses getattr() with a name computed at run " \
           "time (tools.py line 2)" in found.get("gradient", ""), found
    (tmp_path / "perceptron.py").write_text("def train(X, y, w0, epochs):\n    return getattr(X, 'su' + 'm')(), []\n")
    assert scan(tmp_path / "perceptron.py", _forbid("exercise-7")) == {}


def test_a_reflective_module_in_another_file_of_the_submission_is_refused(tmp_path):
    """The scan does not follow an import into the submission's other files, so what they reach by a name
    built at run time (importlib.import_module, runpy) is refused wherever it stands; gc.collect() and a
    string that happens to spell a module's name are not reflection."""
    (tmp_path / "helper.py").write_text("import importlib\nINV = importlib.import_module('torch.lin' + 'alg').inv\n")
    (tmp_path / "logreg.py").write_text("from helper import INV\ndef gradient(X, y, w):\n    return INV(w)\n")
    found = scan(tmp_path / "logreg.py", _forbid("exercise-1"))
    assert "uses an import of importlib (helper.py line 1)" in found.get("gradient", ""), found
    (tmp_path / "helper.py").write_text("import gc\ngc.collect()\nNAME = 'code'\n")
    assert scan(tmp_path / "logreg.py", _forbid("exercise-1")) == {}


@pytest.mark.parametrize("code, expected", [
    # round 8c: the operator guard switched off by a re-export of torch's switch, then torch's kernels by
    # private names that no list holds
    ("import torch\ndef gradient(X, y, w):\n    with torch.utils._mode_utils.no_dispatch():\n        return w\n",
     "it uses torch.utils._mode_utils.no_dispatch (logreg.py line 3), a private name of torch's"),
    ("import torch\ndef gradient(X, y, w):\n    torch._C._enter_dual_level()\n    return w\n",
     "it uses torch._C._enter_dual_level (logreg.py line 3)"),
    ("import torch\nENGINE = torch.autograd.Variable._execution_engine\ndef gradient(X, y, w):\n    return ENGINE\n",
     "made with torch.autograd.Variable._execution_engine (logreg.py line 2)"),
    ("import torch\n\ndef gradient(X, y, w):\n    return w\n\nNO = torch._C._DisableTorchDispatch\n",
     "the submission uses torch's private torch._C._DisableTorchDispatch (logreg.py line 6)"),
], ids=["no-dispatch", "dual-level", "engine-at-import", "switch-at-import"])
def test_torchs_private_names_are_refused_where_an_api_name_has_rules(tmp_path, code, expected):
    assert expected in _gradient_finding(tmp_path, code)


@pytest.mark.parametrize("extra", [
    # round 8c's honest code that lost every point to the first reflection rule: a script's own block, an
    # object's own attributes, a layer's own backward(), torch's list ops
    "\n\nif __name__ == '__main__':\n    import argparse\n    print(vars(argparse.Namespace(a=1)))\n",
    "\n\nclass Config:\n    def __init__(self, **kw):\n        for k, v in kw.items():\n            setattr(self, k, v)\n",
    "\n\nclass Layer:\n    def backward(self, g):\n        return g\n\n\ndef via_layer(g):\n    return Layer().backward(g)\n",
    "\n\ndef scale_all(ts):\n    torch._foreach_mul_(ts, 2.0)\n",
], ids=["main-block", "setattr-self", "own-backward", "foreach"])
def test_honest_python_is_not_reflection(tmp_path, extra):
    (tmp_path / "logreg.py").write_text(REFERENCE + extra)
    assert scan(tmp_path / "logreg.py", _forbid("exercise-1")) == {}


def test_torchs_other_names_of_a_forbidden_function_join_its_rule():
    """torch binds one function under several public names (torch.conv2d is torch.nn.functional.conv2d; torch's
    clip_grad_norm_ lives in torch.nn.utils and torch.nn.utils.clip_grad): a rule on one name holds for all.
    Its private names are not added: the scan refuses every private name of torch's where a rule applies."""
    import torch  # noqa: F401 - as in the harness process, where the names are looked up

    from dldiy.graders.sandbox.forbid import with_aliases

    expanded = with_aliases({"Newton": ["torch.linalg.inv"], "clip": ["torch.nn.utils.clip_grad_norm_"],
                             "conv": ["torch.nn.functional.conv2d"], "rules": ["sympy.*", "complex", "aten.mm"]})
    assert "torch.nn.utils.clip_grad.clip_grad_norm_" in expanded["clip"]
    assert "torch.conv2d" in expanded["conv"]
    assert not [name for names in expanded.values() for name in names if "._" in name], expanded
    assert expanded["rules"] == ["sympy.*", "complex", "aten.mm"]
    assert "torch._C._linalg.linalg_inv" in _finding_in("exercise-6", "Newton", "optim.py",
                                                                 "import torch\nclass Newton:\n    def step(self, H):\n"
                                                                 "        return torch._C._linalg.linalg_inv(H)\n")


def _finding_in(exercise: str, name: str, file: str, code: str) -> str:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    (folder / file).write_text(code)
    return scan(folder / file, _forbid(exercise)).get(name, "")


def test_torchs_private_structure_is_not_a_private_kernel(tmp_path):
    """A base class of torch.nn's and torch.optim's plumbing, as a student copying torch's own code writes them."""
    code = REFERENCE.replace("import torch\n", "import torch\n\n\nclass LogisticLoss(torch.nn.modules.loss._Loss):\n"
                             "    pass\n\n\nHELPER = torch.optim.optimizer._use_grad_for_differentiable\n", 1)
    (tmp_path / "logreg.py").write_text(code)
    assert scan(tmp_path / "logreg.py", _forbid("exercise-1")) == {}


# Red team, round 8: a module the submission writes at import time and then imports. Its code (here
# autograd with the dispatch guard switched off) is out of the static scan's sight: the scan reads the
# files handed in. Written beside the submission, or into /tmp with /tmp put on sys.path: there its frames
# are not the submission's either, and autograd kept full marks in gradcheck (measured before the fix).
WRITES_A_MODULE = '''
import sys, tempfile
from pathlib import Path
import torch

_FOLDER = {folder}
_FOLDER.mkdir(exist_ok=True)
(_FOLDER / "made_here.py").write_text(
    "import torch\\n"
    "def gradient(X, y, w):\\n"
    "    t = 2 * y.to(X.dtype) - 1\\n"
    "    Xt = torch.cat([X, -torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1)\\n"
    "    with torch.enable_grad(), torch._C._DisableTorchDispatch():\\n"
    "        w = w.detach().requires_grad_(True)\\n"
    "        loss = torch.nn.functional.softplus(-t * (Xt @ w)).mean()\\n"
    "        return torch.autograd.grad(loss, w)[0]\\n")
sys.path.insert(0, str(_FOLDER))
from made_here import gradient
'''


@pytest.mark.parametrize("folder", ["Path(__file__).parent", "Path(tempfile.gettempdir())"], ids=["beside", "tmp"])
def test_a_module_written_at_run_time_is_not_imported_where_rules_hold(write_submission, folder):
    reference = REFERENCE[:REFERENCE.index("def gradient(")] + REFERENCE[REFERENCE.index("def train("):]
    path = write_submission(WRITES_A_MODULE.format(folder=folder) + reference.replace("import torch\n", "", 1))
    assert scan(path, _forbid("exercise-1")) == {}  # nothing the scan can read: the import is refused instead
    result = run_dldiy("check", "exercise-1", str(path), "--json", "--only", "gradcheck")
    report = json.loads(result.stdout)
    text = json.dumps(report)
    assert "made_here (made_here.py) is not a file of the submission as it was handed in" in text, text[:3000]
    assert sum(c["points"] for c in report["checks"]) == 0, text[:3000]


HANDED_IN = '''
import sys
from pathlib import Path
from dldiy.graders.sandbox.submission import import_only_what_was_handed_in

root = Path(sys.argv[1])
sys.path.insert(0, str(root))
import_only_what_was_handed_in(root)
import helper
print("helper says", helper.SAYS)
(root / "late.py").write_text("SAYS = 'late'\\n")
try:
    import late
    print("late imported")
except ImportError as e:
    print("late refused:", e)
import mpmath  # the installation's own packages, subpackages included, import as before
print("mpmath", mpmath.__version__ is not None)
'''


def test_only_the_source_handed_in_runs_never_bytecode_beside_it(tmp_path):
    """A .pyc handed in under __pycache__, stamped with the source's size and time, would run in place of
    the .py file the scan read; a module written after the start is refused; torch's and mpmath's own
    imports are untouched."""
    import importlib.util
    import marshal
    import subprocess
    import sys

    source = tmp_path / "helper.py"
    source.write_text("SAYS = 'source'\n")
    stat = source.stat()
    other = compile("SAYS = 'bytecode'\n", str(source), "exec")
    pyc = Path(importlib.util.cache_from_source(str(source)))
    pyc.parent.mkdir()
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little") + int(stat.st_mtime).to_bytes(4, "little") \
        + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    pyc.write_bytes(header + marshal.dumps(other))
    plain = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import helper; "
                            "print(helper.SAYS)"], capture_output=True, text=True, timeout=60)
    assert plain.stdout.strip() == "bytecode", plain  # what Python does without the hook: the attack is real
    done = subprocess.run([sys.executable, "-c", HANDED_IN, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "helper says source" in done.stdout, done.stdout + done.stderr
    assert "late refused: late (late.py) is not a file of the submission as it was handed in" in done.stdout, done.stdout
    assert "mpmath True" in done.stdout, done.stdout + done.stderr


def test_a_finding_in_a_class_names_the_method_it_is_in(tmp_path):
    """course6 trial (F7): F.layer_norm in an autograd.Function's backward was said as "LayerNormFn() uses
    ...", which the student read as their forward (whose check fails too: the class is judged by its rules
    as a whole). The finding now names the method."""
    source = tmp_path / "sub.py"
    source.write_text(textwrap.dedent('''
        import torch
        import torch.nn.functional as F

        class LayerNormFn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, gamma, beta, eps=1e-5):
                return (x - x.mean(-1, keepdim=True)) * gamma + beta

            @staticmethod
            def backward(ctx, grad_out):
                return F.layer_norm(grad_out, grad_out.shape[-1:]), None, None, None
        '''))
    found = scan(source, {"LayerNormFn": ["torch.nn.functional.layer_norm"]})
    assert found["LayerNormFn"].startswith("LayerNormFn.backward() uses torch.nn.functional.layer_norm (sub.py line 12)"), found
