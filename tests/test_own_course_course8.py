"""The course8 trial (a new instructor's BatchNorm by hand, tests/courses/course8): its frictions, through the real
commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, run_dldiy

COURSE = REPO / "tests" / "courses" / "course8"
MLP = REPO / "tests" / "courses" / "mlp_numpy"
MLP_SOLUTION = MLP / "notebooks" / "mlp_solution.ipynb"


def _copy(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns("__pycache__"))
    return course


def test_a_correct_staged_backward_whose_gradient_is_zero_keeps_its_points_against_the_reference():
    """F1: through out.sum().backward() BatchNorm's dx is exactly 0, both hand gradients rounding (2.2e-16 against
    -1.1e-16): held relatively to the reference's largest entry (itself ~1e-16) they differed by 120%, and a correct
    student lost the check with "check forward first". The floor is the size of the gradient's terms; a dx rounded
    through float32 is still caught."""
    result = run_dldiy("validate", "-j", "1", "--course", str(COURSE), "bnfun")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alternatives at full marks 1/1, false failures 0" in result.stdout, result.stdout
    assert "bugs caught 1/1" in result.stdout, result.stdout


def test_a_backward_off_the_reference_blames_the_forward_only_where_a_check_of_it_failed(tmp_path):
    """F1's message: "check forward first" where the forward's check passes sent the student to the wrong half."""
    course = _copy(tmp_path)
    sub = tmp_path / "sub"
    sub.mkdir()
    source = (course / "reference" / "bnfun" / "bnfun.py").read_text()
    # the same function both ways, scaled: backward agrees with this forward's finite differences, not the reference
    (sub / "bnfun.py").write_text(source.replace("    out = gamma * xhat + beta", "    out = 2 * gamma * xhat + beta")
                                  .replace("    dxhat = dout * gamma", "    dxhat = 2 * dout * gamma")
                                  .replace("    dgamma = (dout * xhat).sum(dim=0)", "    dgamma = 2 * (dout * xhat).sum(dim=0)"))
    report = json.loads(run_dldiy("check", "--course", str(course), "bnfun", str(sub / "bnfun.py"), "--json").stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["forward"]["status"] == "fail", checks
    assert "check forward first (failing: backward-torch, forward;" in checks["backward-gradcheck"]["message"], checks


OWN_BACKWARD = '''

def own_backward():
    """The harness's own backward (one bug, one deduction): the reference's with its names changed."""
    def batchnorm_backward(g, saved):
        xn, istd, scale = saved
        m = g.shape[0]
        db = g.sum(dim=0)
        dg = (g * xn).sum(dim=0)
        dxn = g * scale
        dx = istd / m * (m * dxn - dxn.sum(dim=0) - xn * (dxn * xn).sum(dim=0))
        return dx, dg, db
    return batchnorm_backward
'''


def test_release_refuses_a_harness_function_that_is_a_reference_function_renamed(tmp_path):
    """F6: the line scan compared identical lines only, so a harness's own version of a student's function with its
    variables renamed shipped the whole solution. Functions are compared with names and constants normalised; one
    declared public in dldiy.toml ships."""
    course = _copy(tmp_path)
    assert run_dldiy("release", str(tmp_path / "ok"), cwd=course).returncode == 0  # bn_function is no solution
    harness = course / "exercises" / "bnfun" / "harness.py"
    harness.write_text(harness.read_text() + OWN_BACKWARD)
    result = run_dldiy("release", str(tmp_path / "bundle"), cwd=course)
    assert result.returncode != 0, result.stdout
    said = " ".join(result.stderr.split())
    assert ("exercises/bnfun/harness.py: function batchnorm_backward (line" in said
            and "is reference/bnfun/bnfun.py's batchnorm_backward (line 17)" in said), said
    assert "function own_backward" not in said, said  # the function around it is not said again
    assert 'public_functions = ["exercises/bnfun/harness.py:batchnorm_backward"]' in said, said
    marker = course / "dldiy.toml"
    marker.write_text(marker.read_text() + '\n[release]\npublic_functions = ["exercises/bnfun/harness.py:batchnorm_backward"]\n')
    result = run_dldiy("release", str(tmp_path / "bundle"), cwd=course)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("line, kept", [
    ("torch.set_default_dtype(torch.float64)", True), ("torch.manual_seed(0)", True), ("np.random.seed(SEED)", True),
    ('warnings.filterwarnings("ignore")', True), ("np.set_printoptions(precision=3)", True),
    ("torch.manual_seed(int(time.time()))", False), ("train(model)", False), ('print("loaded")', False),
    ("x = torch.set_default_dtype(torch.float64)", False),
])
def test_definitions_mode_runs_the_imports_cells_configuration_calls(line, kept):
    """F4: `torch.set_default_dtype(torch.float64)` in the imports cell was left out at load, so the graded module's
    buffers were float32 where Jupyter's were float64. A short list of libraries' settings runs, on plain arguments."""
    from dldiy.incheck import definitions_only

    source, dropped = definitions_only(line)
    assert (source == line, dropped) == (kept, 0 if kept else 1)


def test_the_load_summary_names_each_statement_definitions_mode_left_out(tmp_path):
    """F4: "line 4 left out ...: 1 statement" did not say which; each is said by its text."""
    nb = nbformat.read(str(MLP_SOLUTION), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("import numpy as np"))
    cell.source = cell.source.replace("import numpy as np\n", "import numpy as np\nnp.random.seed(0)\n"
                                      "print('a long message printed while the notebook loads, at length')\n", 1)
    nbformat.write(nb, str(tmp_path / "mlp.ipynb"))
    report = json.loads(run_dldiy("check", "--course", str(MLP), "mlp", str(tmp_path / "mlp.ipynb"), "--json").stdout)
    skipped = " ".join(report["skipped_lines"])
    assert "1 statement (print('a long message printed while the noteb...)" in skipped, skipped
    assert "np.random.seed" not in skipped, skipped
    assert report["score"] == report["max_score"], report


ADAM = '''import numpy as np


def adam_step(grad, state):
    ### BEGIN SOLUTION
    return 0.9 * state["m"] + 0.1 * grad
    ### END SOLUTION
'''


def test_new_builds_a_backwards_cache_from_the_forward_and_compares_only_the_forwards_out(tmp_path):
    """F3: the scaffold passed a random 3x3 tensor as `cache`, which the reference unpacked into nonsense, record and
    validate accepting it, and a correct student with a dict cache errored. F8: the forward's agreement compared the
    cache too (record refused it). The backward's cache is now the forward's output; the forward's out alone is
    compared; a staged backward with a dict cache gets full marks."""
    made = run_dldiy("new", "bn", "--from", str(COURSE / "exercises" / "bnfun" / "template" / "bnfun.py"),
                     "--solution", str(COURSE / "reference" / "bnfun" / "bnfun.py"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "`cache` must come from your code, not a guess: the probe builds it from the forward's output" in made.stdout
    harness = (tmp_path / "exercises" / "bn" / "harness.py").read_text()
    assert 'cache = sub.call("batchnorm_forward", x_, gamma_, beta_)[-1]' in harness, harness
    assert run_dldiy("record", "bn", cwd=tmp_path).returncode == 0
    report = json.loads(run_dldiy("check", "bn", str(COURSE / "alternatives" / "bnfun" / "staged" / "bnfun.py"),
                                  "--json", cwd=tmp_path).stdout)
    assert report["score"] == report["max_score"] == 2, report


def test_new_leaves_a_cache_it_cannot_build_as_a_todo_record_refuses(tmp_path):
    """F3: where no function returns the cache, the probe raises a TODO that `dldiy record` refuses."""
    (tmp_path / "sol.py").write_text(ADAM)
    (tmp_path / "hand.py").write_text(ADAM.replace('    return 0.9 * state["m"] + 0.1 * grad\n',
                                                   "    raise NotImplementedError\n"))
    made = run_dldiy("new", "ad", "--from", str(tmp_path / "hand.py"), "--solution", str(tmp_path / "sol.py"), cwd=tmp_path)
    assert "`state` must come from your code" in made.stdout and "refuses until then" in made.stdout, made.stdout
    recorded = run_dldiy("record", "ad", cwd=tmp_path)
    assert recorded.returncode != 0 and "TODO (dldiy new): build `state`" in recorded.stdout + recorded.stderr


def test_a_check_that_ran_past_half_its_timeout_is_said_in_its_message_and_the_grade_summary(tmp_path):
    """F5: the same notebook's training check passed, timed out and passed again (60 s timeout, 155 s runs under
    load), and nothing said it was near the limit."""
    course = _copy(tmp_path)
    spec = course / "exercises" / "bnfun" / "spec.toml"
    spec.write_text(spec.read_text().replace("timeout = 10", "timeout = 2").replace("seeds = [1, 2, 3]", "seeds = [1]"))
    sub = tmp_path / "class" / "slow"
    sub.mkdir(parents=True)
    source = (course / "reference" / "bnfun" / "bnfun.py").read_text()
    (sub / "bnfun.py").write_text(source.replace('    mu = x.mean(dim=0)\n', '    import time\n    time.sleep(1.3)\n'
                                                 '    mu = x.mean(dim=0)\n', 1))
    report = json.loads(run_dldiy("check", "--course", str(course), "bnfun", str(sub / "bnfun.py"), "--json").stdout)
    forward = next(c for c in report["checks"] if c["name"] == "forward")
    assert forward["status"] == "pass" and "of its 2 s timeout at seed 1: near the limit" in forward["message"], forward
    graded = run_dldiy("grade", "--course", str(course), "bnfun", str(tmp_path / "class"), "--out", str(tmp_path / "grades"),
                       "--hidden", "0")
    assert "near their timeout (a busier machine may change these grades): slow forward (1 of 2 s)" in graded.stdout, \
        graded.stdout + graded.stderr


def test_cosmetics_one_public_seed_a_torch_target_and_a_notebook_without_cell_ids(tmp_path):
    """F10: "(seeds 1) and 2 hidden seed(s)"; a check against torch's op said "agree with the reference"; `dldiy new`
    passed nbformat's MissingIDFieldWarning through for a hand-written notebook."""
    course = _copy(tmp_path)
    spec = course / "exercises" / "bnfun" / "spec.toml"
    spec.write_text(spec.read_text().replace("seeds = [1, 2, 3]", "seeds = [1]"))
    sub = tmp_path / "class" / "staged"
    sub.mkdir(parents=True)
    shutil.copy(course / "alternatives" / "bnfun" / "staged" / "bnfun.py", sub / "bnfun.py")
    graded = run_dldiy("grade", "--course", str(course), "bnfun", str(tmp_path / "class"), "--out",
                       str(tmp_path / "grades"), "--hidden", "1")
    assert graded.returncode == 0, graded.stderr
    record = json.loads((tmp_path / "grades" / "journal.jsonl").read_text().splitlines()[-1])
    messages = {c["name"]: c["message"] for c in record["checks"]}
    assert messages["forward"].endswith("(seed 1) and 1 hidden seed(s)"), messages
    assert "agree with the target the harness computed" in messages["backward-torch"], messages
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import numpy as np"), nbformat.v4.new_code_cell(
        "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION")])
    for cell in nb.cells:
        del cell["id"]
    (tmp_path / "sol.ipynb").write_text(json.dumps(nb))
    (tmp_path / "hand.ipynb").write_text(json.dumps(nb).replace("return 2 * x", "raise NotImplementedError"))
    made = run_dldiy("new", "f", "--from", str(tmp_path / "hand.ipynb"), "--solution", str(tmp_path / "sol.ipynb"),
                     cwd=tmp_path)
    assert made.returncode == 0 and "MissingIDFieldWarning" not in made.stderr, made.stderr
