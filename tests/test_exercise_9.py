"""exercise-9: the hand Elman RNN agrees with torch.nn.RNN and clip_grad_norm with torch's over grids,
and the CLI catches a model that carries its hidden state over."""

import importlib.util
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import REPO, one_fast_rest_slow, run_dldiy

spec = importlib.util.spec_from_file_location("reference_rnn_9", REPO / "reference/exercise-9/rnn.py")
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)


def _params(gen, D, H):
    shapes = {"W_ih": (H, D), "W_hh": (H, H), "b_ih": (H,), "b_hh": (H,), "W_out": (1, H), "b_out": (1,)}
    return {k: torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for k, s in shapes.items()}


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_reference_rnn_agrees_with_torch_rnn_outputs_and_gradients_through_time(T, N, D, H, seed):
    gen = torch.Generator().manual_seed(seed)
    params = _params(gen, D, H)
    xs = torch.randn(T, N, D, generator=gen, dtype=torch.float64, requires_grad=True)
    rnn = torch.nn.RNN(D, H, dtype=torch.float64)
    with torch.no_grad():
        for mine, theirs in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"), ("b_ih", "bias_ih_l0"),
                             ("b_hh", "bias_hh_l0")):
            getattr(rnn, theirs).copy_(params[mine])
    hs, want = reference.ElmanRNN(params).forward(xs), rnn(xs)[0]
    torch.testing.assert_close(hs, want)
    cot = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(hs, [xs, params["W_ih"], params["W_hh"], params["b_ih"], params["b_hh"]], cot)
    expected = torch.autograd.grad(want, [xs, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0], cot)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 100.0), st.integers(0, 2**31 - 1))
def test_reference_clipping_agrees_with_clip_grad_norm_(max_norm, seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 2), (4,), (2, 2)]
    grads = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes]
    mine, theirs = ([torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes] for _ in range(2))
    for m, t, g in zip(mine, theirs, grads):
        m.grad, t.grad = g.clone(), g.clone()
    torch.testing.assert_close(reference.clip_grad_norm(mine, max_norm), torch.nn.utils.clip_grad_norm_(theirs, max_norm))
    for m, t in zip(mine, theirs):
        torch.testing.assert_close(m.grad, t.grad)


def _checks(path, *only):
    args = [a for name in only for a in ("--only", name)]
    return {c["name"]: c for c in json.loads(run_dldiy("check", "exercise-9", path, *args, "--json").stdout)["checks"]}


def test_reference_passes_the_agreement_checks():
    checks = _checks("reference/exercise-9", "rnn-agreement", "clipping", "state-reset")
    assert {c["status"] for c in checks.values()} == {"pass"}


@pytest.mark.parametrize("bug, check, start", [
    ("hidden-not-reset", "state-reset", "hidden states of the second batch of sequences"),
    ("clip-per-parameter", "clipping", "max_norm = 0.3 x the global norm: clipped gradient of parameter"),
    ("w-hh-not-transposed", "rnn-agreement", "T=5, N=3, D=2, H=4, O=2: hidden states"),  # T=1 never uses W_hh
])
def test_a_bugged_variant_fails_naming_what_disagrees(bug, check, start, bugged, check_json):
    c = _all_checks(check_json, bugged("exercise-9", bug), check)[check]
    assert c["status"] == "fail"
    assert c["message"].startswith(start), c["message"]


# --- one bug, one deduction; the corpus; correct-but-different solutions -------------------------

def _built(kind, name, tmp_path):
    import shutil

    from dldiy.graders.course.patch import apply

    folder = tmp_path / name
    shutil.copytree(REPO / "reference" / "exercise-9", folder)
    apply(folder, next((REPO / kind / "exercise-9" / name).glob("*.diff")).read_text())
    return folder


def _all_checks(check_json, path, *only):
    """_checks' answer, assessed in-process through the session's fork server (conftest.check_json)."""
    return {c["name"]: c for c in check_json("exercise-9", path, *only)[0]["checks"]}


@pytest.mark.parametrize("alternative", one_fast_rest_slow(sorted(p.name for p in (REPO / "alternatives" / "exercise-9").iterdir())))
def test_a_correct_but_different_solution_loses_no_point(alternative, tmp_path, check_json):
    checks = _all_checks(check_json, _built("alternatives", alternative, tmp_path))
    assert {n: c["message"] for n, c in checks.items() if c["status"] not in ("pass", "skip")} == {}


@pytest.mark.parametrize("bug, check", [
    ("cell-grad-w-hh-from-new-state", "gradcheck"),  # the hand backward: not rnn-agreement, not first-loss
    ("clip-two-passes", "clipping"),  # not first-loss: train() runs with the harness's own clipping
    ("forward-view-noncontiguous", "invariants"),
    ("train-loss-after-update", "first-loss"),
    ("train-loss-summed", "first-loss"),  # not invariants' mean over outputs: a sum over the batch is first-loss's
    ("clip-rebinds-grad", "invariants"),  # the seventh session's blind red team: values right, not in place
    ("loss-summed-over-outputs", "invariants"),  # the same: first-loss trains one output
    # blind red team, round 4: predict reads back the states forward kept; the student's own train() then fails,
    # which invariants notes (state-reset charges it)
    ("predict-reuses-forward-states", "state-reset"),
    # the model's own check: a call after the weights were updated in place (invariants notes the own-model run)
    ("model-copies-weights-at-init", "state-reset"),
    # blind round 8: state shared between models (a buffer on the class, a class-level dict), a dict read by its order
    ("hidden-states-in-class-buffer", "state-reset"),
    ("params-dict-on-class", "state-reset"),
    ("params-read-by-order", "rnn-agreement"),
    ("train-batch-from-doubled-data", "first-loss"),  # short only when batch_size > n
])
def test_one_realistic_bug_costs_one_check(bug, check, tmp_path, bugged, check_json):
    checks = _all_checks(check_json, bugged("exercise-9", bug))
    assert [n for n, c in checks.items() if c["status"] not in ("pass", "skip")] == [check]


@pytest.mark.parametrize("edit, start, says", [
    # red team 2711, bug-clip-always-rescales: the factor min(1, ...) without its cap at 1. The message
    # used to read the ratio 2 as "a missing or extra constant factor (1/n for a mean? a factor 2?)".
    (("scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)", "scale = max_norm / (total + 1e-6)"),
     "max_norm = 2 x the global norm: clipped gradient of parameter 0",
     "The ratio measured/expected is 2 at every entry: the gradient was multiplied by max_norm / (norm + 1e-6) = 2, "
     "although its norm"),
    # never scaled (the scale computed but not applied): the ratio is 1 / the factor it should have had
    (("        g.mul_(scale)\n", "        g.mul_(1.0)\n"),
     "max_norm = 0.3 x the global norm: clipped gradient of parameter 0",
     "The ratio measured/expected is 3.33333 at every entry: the gradient was left as it was, not multiplied by "
     "min(1, max_norm / (norm + 1e-6)) = 0.3"),
    # a factor no known mistake gives: said plainly, no guess
    (("        g.mul_(scale)\n", "        g.mul_(scale * 0.7)\n"),
     "max_norm = 0.3 x the global norm: clipped gradient of parameter 0", "The ratio measured/expected is 0.7 at every entry."),
])
def test_a_constant_ratio_in_clipping_is_read_with_the_factors_clipping_can_get_wrong(edit, start, says, tmp_path,
                                                                                     check_json):
    from test_exercise_4 import reference_with

    c = _all_checks(check_json, reference_with("exercise-9", tmp_path, "rnn.py", edit), "clipping")["clipping"]
    assert c["status"] == "fail" and c["message"].startswith(start), c["message"]
    assert says in c["message"] and "1/n for a mean" not in c["message"], c["message"]


@pytest.mark.parametrize("guarded", [True, False])
def test_clipping_through_a_generator_twice_is_said_where_the_generator_is_given(guarded, bugged, check_json, tmp_path):
    """Unguarded (no early return where no parameter has a gradient), the same two passes also raise on the
    last case, no gradient at all: a blind red team (round 4) saw that TypeError alone, which hid the
    generator. Each configuration after the first that raises is its own failure, judged in order."""
    folder = bugged("exercise-9", "clip-two-passes")
    if not guarded:
        from test_exercise_4 import reference_with

        folder = reference_with("exercise-9", tmp_path, "rnn.py", (
            """    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:  # nothing to clip (torch's clip_grad_norm_ also returns 0)
        return torch.tensor(0.0)
    total = torch.sqrt(sum((g * g).sum() for g in grads))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)
""", """    total = torch.sqrt(sum((p.grad * p.grad).sum() for p in parameters if p.grad is not None))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in parameters:
        if p.grad is not None:
            p.grad.mul_(scale)
"""))
    c = _all_checks(check_json, folder, "clipping")["clipping"]
    assert c["status"] == "fail" and "parameters given as a generator: clipped gradient" in c["message"], c["message"]
    assert "the gradient was left as it was" in c["message"] and "one pass uses up" in c["message"], c["message"]


def test_clipping_with_no_gradient_at_all_says_the_norm_is_zero(tmp_path, check_json):
    from test_exercise_4 import reference_with

    folder = reference_with("exercise-9", tmp_path, "rnn.py", (
        "    if not grads:  # nothing to clip (torch's clip_grad_norm_ also returns 0)\n        return torch.tensor(0.0)\n", ""))
    c = _all_checks(check_json, folder, "clipping")["clipping"]
    assert c["status"] == "fail" and c["message"].startswith("no parameter has a gradient: returned total norm: "
                                                             "clip_grad_norm raised TypeError"), c["message"]
    assert "the norm is 0" in c["message"], c["message"]


def test_a_cell_backward_that_writes_into_its_incoming_gradient_fails_gradcheck(write_submission, check_json):
    """A blind red team's bug: the cell's backward scaled grad_h_new in place (grad_h_new.mul_(...)), which the
    harness's fresh gradient never showed. Through rnn_cell(...).sum().backward() torch passes an expanded
    gradient, and the write raises: gradcheck says so."""
    source = (REPO / "reference" / "exercise-9" / "rnn.py").read_text()
    old = "        grad_a = grad_h_new * (1 - h_new * h_new)  # tanh'(a) = 1 - tanh(a)^2\n"
    assert source.count(old) == 1
    edited = source.replace(old, "        grad_a = grad_h_new.mul_(1 - h_new * h_new)\n")
    (check,) = check_json("exercise-9", write_submission(edited, "rnn.py"), "gradcheck")[0]["checks"]
    assert check["status"] == "fail", check["message"]
    assert "(an expanded incoming gradient)" in check["message"] and "Work on a copy" in check["message"], check["message"]


def test_the_students_own_model_runs_inside_the_students_train(tmp_path, check_json):
    """A blind red team (round 4), black-box: a model that fails only when the student's own train() calls it
    kept full marks, since every run of train() puts the harness's model in. invariants runs it as written."""
    from test_exercise_4 import reference_with

    folder = reference_with("exercise-9", tmp_path, "rnn.py", (
        "class ElmanRNN:", "_IN_TRAIN = []\n\n\nclass ElmanRNN:"), (
        '        """A linear read-out of the last hidden state: (N, O)."""\n',
        '        """A linear read-out of the last hidden state: (N, O)."""\n        if _IN_TRAIN:\n'
        '            raise RuntimeError("only inside train()")\n'), (
        "    model = ElmanRNN(params)\n", "    model = ElmanRNN(params)\n    _IN_TRAIN.append(1)\n"), (
        "    return params, losses\n", "    _IN_TRAIN.clear()\n    return params, losses\n"))
    checks = _all_checks(check_json, folder)
    assert [n for n, c in checks.items() if c["status"] not in ("pass", "skip")] == ["invariants"], checks
    assert checks["invariants"]["message"].startswith("ElmanRNN(params) inside your own train()"), checks["invariants"]
    assert "raised RuntimeError: only inside train()" in checks["invariants"]["message"]


def test_a_float32_state_and_a_python_float_norm_are_said_as_dtypes(write_submission, check_json):
    """A blind red team (round 14) on the messages: an h_0 made without dtype= (float32 whatever xs is) raised
    on float64 inputs, and invariants said it under "forward(xs) and predict(xs) leave xs and the parameters as
    they were"; a norm summed as a Python float and returned as torch.tensor(total) was reported as a 3e-8
    difference of its value. Each is now said as the dtype it is."""
    source = (REPO / "reference" / "exercise-9" / "rnn.py").read_text()
    edits = (("dtype=xs.dtype, device=xs.device)", "device=xs.device)"),
             ("    return total\n", "    return torch.tensor(float(total))\n"))
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    checks = {c["name"]: c for c in check_json("exercise-9", write_submission(source, "rnn.py"), "invariants",
                                               "clipping")[0]["checks"]}
    said = checks["invariants"]["message"]
    assert said.startswith("float64 in, float64 out") and "raise on float64 ones" in said and "dtype=" in said, said
    said = checks["clipping"]["message"]
    assert "a float32 norm" in said and "for float64 gradients" in said, said


def test_harness_code_in_the_students_process_runs_in_the_harnesss_grad_mode(tmp_path, check_json):
    """A submission that leaves autograd off in its process (here at import; a float32 h_0 did it across
    first-loss, convergence and invariants) must not change what the harness's own code measures there:
    placement's run (harness code in the student's process, sub.run_local) differentiates a prediction, and
    ran with no graph, an inconclusive placement ("element 0 of tensors does not require grad")."""
    source = (REPO / "reference" / "exercise-9" / "rnn.py").read_text()
    (tmp_path / "rnn.py").write_text(source + "\n\ntorch.set_grad_enabled(False)  # left off for the process\n")
    placement = _all_checks(check_json, tmp_path / "rnn.py", "placement")["placement"]
    assert placement["status"] == "pass", placement
