"""exercise-8: the hand conv2d / max_pool2d agree with torch over grids of shapes, strides and paddings,
the spec's grid covers what the issue asks for, and the CLI names the first configuration that disagrees."""

import importlib.util
import json
import tomllib

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from conftest import REPO, run_dldiy
from test_exercise_4 import alternatives_of, full_marks_for_the_alternative

SPEC = tomllib.loads((REPO / "exercises/exercise-8/spec.toml").read_text())


def _module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _module(REPO / "reference/exercise-8/convnet.py", "reference_convnet_8")


def _check(name):
    return next(c for c in SPEC["checks"] if c["name"] == name)


@st.composite
def conv_configs(draw):
    N, C, K = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * padding), 8))
    W = draw(st.integers(max(1, kw - 2 * padding), 8))
    return N, C, H, W, K, kh, kw, stride, padding


@settings(max_examples=25, deadline=None)
@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_reference_conv2d_agrees_with_torch_forward_and_backward(config, seed):
    N, C, H, W, K, kh, kw, stride, padding = config
    gen = torch.Generator().manual_seed(seed)
    x, w, b = (torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True)
               for s in ((N, C, H, W), (K, C, kh, kw), (K,)))
    mine = reference.conv2d(x, w, b, stride, padding)
    want = F.conv2d(x, w, b, stride=stride, padding=padding)
    torch.testing.assert_close(mine, want)
    cot = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    for g_mine, g_want in zip(torch.autograd.grad(mine, (x, w, b), cot), torch.autograd.grad(want, (x, w, b), cot)):
        torch.testing.assert_close(g_mine, g_want)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_reference_max_pool2d_agrees_with_torch(N, C, h, w, seed):
    x = torch.randn(N, C, 2 * h, 2 * w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64,
                    requires_grad=True)
    mine, want = reference.max_pool2d(x), F.max_pool2d(x, 2)
    torch.testing.assert_close(mine, want)
    cot = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(mine, x, cot)[0], torch.autograd.grad(want, x, cot)[0])


def test_the_spec_grid_covers_strides_paddings_and_non_square_kernels():
    grid = _check("conv-agreement")["grid"]
    assert {row[7] for row in grid} >= {1, 2, 3}  # strides
    assert {row[8] for row in grid} >= {0, 1, 2}  # paddings
    assert any(row[5] != row[6] for row in grid) and any(row[2] != row[3] for row in grid)
    for N, C, H, W, K, kh, kw, stride, padding in grid:  # every configuration is one torch accepts
        assert F.conv2d(torch.zeros(N, C, H, W), torch.zeros(K, C, kh, kw), stride=stride, padding=padding).numel()


def _statuses(*args):
    result = run_dldiy("check", "exercise-8", *args, "--json")
    report = json.loads(result.stdout)
    return {c["name"]: c for c in report["checks"]}


def _assessed(check_json, path, *only):
    """_statuses' answer, assessed in-process through the session's fork server (conftest.check_json)."""
    return {c["name"]: c for c in check_json("exercise-8", path, *only)[0]["checks"]}


def test_reference_passes_the_agreement_grids_and_equivariance():
    checks = _statuses("reference/exercise-8", "--only", "conv-agreement", "--only", "pool-agreement",
                       "--only", "equivariance")
    assert {c["status"] for c in checks.values()} == {"pass"}
    # 9 grid configurations and 1 with the default stride and padding, 4 cases each (output, 3 gradients),
    # and the output twice more for each of the 4 non-contiguous ones, laid out where the submission runs
    # (height and width transposed, channels last), and the 3 gradients again for each of the 2 configurations
    # whose backward gets a non-contiguous upstream gradient (transposed_gradient)
    assert "54 case(s) agree with torch.nn.functional.conv2d" in checks["conv-agreement"]["message"]
    # 5 grid configurations, 2 cases each, the 3 non-contiguous ones twice more, 3 of tied maxima (each window's
    # gradient passed on once, none to a non-maximum, all to one entry), and the gradient again for each of the 2
    # configurations whose backward gets a non-contiguous upstream gradient, and 2 (output, gradient) for entries
    # far below any sentinel a running max may start from (far_below), 2 for windows whose magnitudes lie 1e20 apart
    # (far_apart), and 1 for windows holding a NaN (NaN out)
    assert "26 case(s) agree with torch.nn.functional.max_pool2d" in checks["pool-agreement"]["message"]


@pytest.mark.parametrize("bug, check, configuration", [
    # padding 0 agrees; the first configuration with padding is named.
    ("one-sided-padding", "conv-agreement", "x 2x3x6x6, weight 4x3x3x3, stride 1, padding 1: output"),
    ("flipped-kernel", "conv-agreement", "x 2x1x5x5, weight 2x1x3x3, stride 1, padding 0: output"),
    ("pool-grad-everywhere", "pool-agreement", "x 1x1x2x2: gradient of x"),
    ("view-not-permute", "equivariance", "shift by (2, 1), stride 1"),
])
def test_a_bugged_variant_fails_naming_the_first_configuration_that_disagrees(bug, check, configuration, bugged,
                                                                              check_json):
    c = _assessed(check_json, bugged("exercise-8", bug), check)[check]
    assert c["status"] == "fail"
    assert c["message"].startswith(configuration), c["message"]


@pytest.mark.parametrize("alt", alternatives_of("exercise-8"))
def test_every_alternative_gets_full_marks(alt, tmp_path, check_json):
    full_marks_for_the_alternative("exercise-8", alt, tmp_path, check_json)


@pytest.mark.parametrize("bug, words", [("cnn-inlines-its-own-ops", "did not use the conv2d it was given"),
                                        ("cnn-decoy-call", "did not use the conv2d it was given")])
def test_the_cnn_must_be_built_from_the_students_own_ops(bug, words, tmp_path, bugged, check_json):
    folder = bugged("exercise-8", bug)
    c = _assessed(check_json, folder, "cnn-forward")["cnn-forward"]
    assert c["status"] == "fail" and words in c["message"], c


def test_a_key_cnn_forward_adds_to_the_callers_dict_is_cnn_forwards_finding(bugged, check_json):
    """Blind round 8: cnn_forward caching fc_w.T in the caller's params dict scored 15 of 15.5, placement a skip
    ("a malformed reply": the key's gradient came back) and no check failing. cnn-forward says the key; placement
    runs; invariants' own-CNN run of train() (a TypeError at the first update) is a note, not charged again."""
    c = _assessed(check_json, bugged("exercise-8", "cnn-forward-caches-in-params"), "cnn-forward", "placement",
                  "invariants")
    assert c["cnn-forward"]["status"] == "fail" and "added 'fc_wT' to the caller's params dict" in c["cnn-forward"]["message"]
    assert c["placement"]["status"] == "pass", c["placement"]
    assert c["invariants"]["status"] == "pass" and "not charged again" in c["invariants"]["message"], c["invariants"]


@pytest.mark.parametrize("edit, configuration", [
    # red team 2711, bug-backward-fold-no-stride: F.fold in backward without the stride
    (("padding=padding, stride=stride)\n", "padding=padding)\n"),
     "x 1x2x7x7, weight 3x2x3x3, stride 2, padding 0, non-contiguous x and weight: gradient of x: "),
    # bug-backward-unfold-no-padding: backward recomputes im2col from x without the padding
    (("        grad_weight = (g.t() @ rows)",
      "        rows = F.unfold(ctx.x, (kh, kw), stride=stride).transpose(1, 2).reshape(-1, rows.shape[1])\n"
      "        grad_weight = (g.t() @ rows)"),
     "x 2x3x6x6, weight 4x3x3x3, stride 1, padding 1: gradient of x: "),
])
def test_an_error_in_backward_alone_is_not_reported_as_the_outputs(edit, configuration, tmp_path, check_json):
    # conv-agreement used to report "output: raised RuntimeError ..." with the forward's hint (kernel
    # flips, padding, the output's layout) for a bug in backward only: forward and backward are run
    # apart, and a gradient's case gets the backward's hint (the spec's case_hints).
    from test_exercise_4 import reference_with

    edits = [edit]
    if "ctx.x" in edit[1]:  # keep x for the recomputation (the red team's variant saves it instead of rows)
        edits.append(("        ctx.save_for_backward(rows, weight)\n",
                      "        ctx.save_for_backward(rows, weight)\n        ctx.x = x\n"))
    checks = _assessed(check_json, reference_with("exercise-8", tmp_path, "convnet.py", *edits), "conv-agreement",
                       "gradcheck")
    g = checks["gradcheck"]  # the same finding there: the forward runs, backward raises
    assert g["status"] == "fail" and g["message"].startswith("conv2d x (stride 2, padding 1, kernel 3x3): backward (the "
                                                             "forward runs on these inputs) raised RuntimeError"), g
    c = checks["conv-agreement"]
    assert c["status"] == "fail" and c["message"].startswith(configuration + "backward raised RuntimeError, so no "
                                                             "gradient (x or weight or bias) came back, while the "
                                                             "output agrees: "), c["message"]
    assert "Hint: The output agrees, so the forward is right: look at backward." in c["message"], c["message"]
    assert "does not flip the kernel" not in c["message"], c["message"]


def test_the_students_own_cnn_runs_inside_the_students_train(tmp_path, check_json):
    """A blind red team (round 4), black-box: a cnn_forward that fails only when the student's own train()
    calls it kept full marks, since every run of train() puts the harness's cnn_forward in. invariants runs
    it as written."""
    from test_exercise_4 import reference_with

    folder = reference_with("exercise-8", tmp_path, "convnet.py", (
        "def cnn_forward(params, x):\n", "_IN_TRAIN = []\n\n\ndef cnn_forward(params, x):\n"), (
        "    h = max_pool2d(", "    if _IN_TRAIN:\n        raise RuntimeError(\"only inside train()\")\n    h = max_pool2d("), (
        "    losses = []\n", "    losses = []\n    _IN_TRAIN.append(1)\n"), (
        "    return params, losses\n", "    _IN_TRAIN.clear()\n    return params, losses\n"))
    checks = {c["name"]: c for c in check_json("exercise-8", folder)[0]["checks"]}
    assert [n for n, c in checks.items() if c["status"] not in ("pass", "skip")] == ["invariants"], checks
    assert checks["invariants"]["message"].startswith("cnn_forward(params, x) inside your own train()"), checks["invariants"]
    assert "raised RuntimeError: only inside train()" in checks["invariants"]["message"]


@pytest.mark.parametrize("bug", ["train-random-batches", "train-batches-shuffled-each-step"])
def test_random_batches_are_said_as_a_run_that_changes_not_as_a_leftover_gradient(bug, bugged, check_json):
    """A blind red team (round 6): batches drawn with torch.randperm failed first-loss with "its first update used
    the leftover gradient added to its batch's. Clear the gradients before each backward", which it did. The run
    with no leftover is repeated before the leftover is blamed: a train() that differs from itself is said as that."""
    c = _assessed(check_json, bugged("exercise-8", bug), "first-loss")["first-loss"]
    assert c["status"] == "fail", c
    assert "the same inputs must give the same run" in c["message"] and "batches drawn at random" in c["message"], c
    assert "leftover" not in c["message"], c


def test_gradients_never_cleared_before_backward_are_still_said_as_the_leftover(bugged, check_json):
    c = _assessed(check_json, bugged("exercise-8", "train-zero-grad-at-end"), "first-loss")["first-loss"]
    assert c["status"] == "fail" and "its first update used the leftover gradient" in c["message"], c
