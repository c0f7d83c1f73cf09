"""exercise-4 judges behaviour, not the reference's code: an equivalent implementation passes every check."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, one_fast_rest_slow, run_dldiy

# Differs from the reference in incidental ways: softmax as exp(z - logsumexp z), a loop over the
# examples for the cross-entropy, torch's softplus, the multi-class hinge's rival found with topk,
# sums divided by n, and a train() whose gradient is written by hand ((softmax - one-hot) / n, in
# float64 inside) instead of autograd.
EQUIVALENT = '''
import torch
import torch.nn.functional as F


def softmax(Z):
    return torch.exp(Z - torch.logsumexp(Z, dim=1, keepdim=True))


def cross_entropy(Z, y):
    total = Z.new_zeros(())
    for i in range(Z.shape[0]):
        z = Z[i]
        m = z.max().detach()  # a constant shift: detaching it changes no gradient
        total = total + m + torch.log(torch.exp(z - m).sum()) - z[y[i]]
    return total / Z.shape[0]


def bce_with_logits(z, y):
    return torch.mean(F.softplus(z) - y * z)


def hinge(w, t):
    return torch.relu(1 - t * w).sum() / w.numel()


def hinge_01(w, y):
    return hinge(w, torch.where(y > 0.5, 1.0, -1.0).to(w.dtype))


def multiclass_hinge(Z, y, margin=1.0):
    top = Z.topk(2, dim=1)
    gold = Z[torch.arange(len(y)), y]
    rival = torch.where(top.indices[:, 0] == y, top.values[:, 1], top.values[:, 0])
    return torch.clamp(margin - gold + rival, min=0).mean()


def l1_loss(pred, target):
    return (target - pred).abs().sum() / pred.numel()


def l2_loss(pred, target):
    d = target - pred
    return (d @ d) / d.numel()


def train(X, y, W0, b0, lr, steps):
    X64, W, b = X.double(), W0.double().clone(), b0.double().clone()
    onehot = F.one_hot(y, W.shape[0]).double()
    losses = []
    for _ in range(steps):
        Z = X64 @ W.T + b
        losses.append(float(cross_entropy(Z, y)))
        delta = (softmax(Z) - onehot) / X.shape[0]   # dL/dZ for the mean cross-entropy
        W, b = W - lr * delta.T @ X64, b - lr * delta.sum(dim=0)
    return W.to(X.dtype), b.to(X.dtype), losses
'''


def checks_of(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_an_equivalent_implementation_passes_every_check(write_submission):
    result = run_dldiy("check", "exercise-4", str(write_submission(EQUIVALENT, "losses.py")), "--json")
    checks = checks_of(json.loads(result.stdout))
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(checks, "pass"), result.stdout
    assert set(checks) == {"torch-agreement", "hinge", "gradcheck", "stability", "first-loss", "convergence", "invariants",
                           "placement"}
    assert result.returncode == 0


def test_an_unstable_log_sum_exp_is_reported_as_overflow_not_as_a_crash(write_submission, check_json):
    unstable = EQUIVALENT.replace("torch.exp(Z - torch.logsumexp(Z, dim=1, keepdim=True))",
                                  "torch.exp(Z) / torch.exp(Z).sum(dim=1, keepdim=True)")
    checks = checks_of(check_json("exercise-4", write_submission(unstable, "losses.py"), "stability", "torch-agreement")[0])
    assert checks["torch-agreement"]["status"] == "pass"  # right on ordinary logits...
    assert checks["stability"]["status"] == "fail"          # ...nan at logits of 1000
    assert "softmax" in checks["stability"]["message"] and "overflows" in checks["stability"]["message"]


def _built(variant_dir, exercise, tmp_path):
    """An alternative (alternatives/<exercise>/<name>/) built from the reference, as validate builds it."""
    import shutil

    from dldiy.graders.course import patch

    folder = tmp_path / variant_dir.name / exercise
    shutil.copytree(REPO / "reference" / exercise, folder)
    diff = next(p for p in variant_dir.iterdir() if p.suffix == ".diff")
    patch.apply(folder, diff.read_text())
    return folder


def alternatives_of(exercise: str) -> list:
    """The correct-but-different solutions in alternatives/<exercise>/ (at least four), as parameters."""
    alternatives = sorted((REPO / "alternatives" / exercise).iterdir())
    assert len(alternatives) >= 4
    return one_fast_rest_slow(alternatives, ids=lambda alts: [alt.name for alt in alts])


def full_marks_for_the_alternative(exercise, alt, tmp_path, check_json):
    """This correct-but-different solution of alternatives/<exercise>/ passes every check that runs."""
    checks = checks_of(check_json(exercise, _built(alt, exercise, tmp_path))[0])
    assert {c["status"] for c in checks.values()} <= {"pass", "skip"}, (alt.name, checks)


@pytest.mark.parametrize("alt", alternatives_of("exercise-4"))
def test_every_alternative_gets_full_marks(alt, tmp_path, check_json):
    full_marks_for_the_alternative("exercise-4", alt, tmp_path, check_json)


def test_the_first_failing_configuration_is_named_in_words(tmp_path, bugged, check_json):
    # a one-hot of 4 classes: the default k agrees, the first other k raises, named as a failure
    folder = bugged("exercise-4", "one-hot-four-classes")
    c = checks_of(check_json("exercise-4", folder, "torch-agreement")[0])["torch-agreement"]
    assert c["status"] == "fail" and "cross_entropy, n=1, k=3, float64: raised RuntimeError" in c["message"], c


def test_invariants_name_the_argument_written_in_place(tmp_path, bugged, check_json):
    folder = bugged("exercise-4", "hinge01-labels-in-place")
    c = checks_of(check_json("exercise-4", folder, "invariants")[0])["invariants"]
    assert c["status"] == "fail" and "hinge_01() on float64 inputs: modified its argument y in place" in c["message"], c


def test_stability_charges_instability_not_a_wrong_formula(tmp_path, bugged, check_json):
    # a sum instead of a mean is wrong everywhere (torch-agreement) but stable: stability passes
    checks = checks_of(check_json("exercise-4", bugged("exercise-4", "cross-entropy-sum"), "stability", "torch-agreement")[0])
    assert checks["torch-agreement"]["status"] == "fail" and checks["stability"]["status"] == "pass", checks


def test_later_configurations_sent_in_one_message_are_judged_as_single_calls(write_submission, check_json):
    # torch-agreement calls each function's first configuration alone and the rest in one message
    # (graders/batched.py): a later configuration that writes into its argument, or raises, is still
    # that configuration's failure, named in words
    writes_on_a_batch_of_one = EQUIVALENT.replace(
        "def softmax(Z):\n",
        "def softmax(Z):\n    if Z.shape[0] == 1:\n        Z.mul_(2)\n")
    # the in-place write is invariants' to charge (the families hand over copies: one bug, one deduction), at a
    # batch of one too; torch-agreement charges the value it makes wrong, softmax's share only
    checks = checks_of(check_json("exercise-4", write_submission(writes_on_a_batch_of_one, "losses.py"),
                                  "torch-agreement", "invariants")[0])
    c = checks["torch-agreement"]
    assert c["status"] == "fail" and c["message"].startswith("seed 1: softmax, n=1, k=3, float64: differs") \
        and c["points"] == 2.4, c
    assert "softmax() on float64, n=1 inputs: modified its argument Z in place" in checks["invariants"]["message"], checks
    raises_on_seven_classes = EQUIVALENT.replace(
        "def softmax(Z):\n",
        "def softmax(Z):\n    if Z.shape[1] == 7:\n        raise ValueError('seven classes')\n")
    c = checks_of(check_json("exercise-4", write_submission(raises_on_seven_classes, "losses.py"),
                             "torch-agreement")[0])["torch-agreement"]
    assert c["status"] == "fail" and "softmax, n=3, k=7, float64, non-contiguous inputs: raised ValueError: " \
                                     "seven classes" in c["message"], c


def test_a_forbidden_function_reached_only_in_a_later_batched_configuration_is_caught(write_submission, check_json):
    # the later configurations go in one message (sub.batch), each still under the run-time forbid guard:
    # torch's own softmax, called in a module of the submission's own (which the static scan does not
    # follow), on seven classes only
    sneaky = EQUIVALENT.replace(
        "def softmax(Z):\n",
        "def softmax(Z):\n    if Z.shape[1] == 7:\n        from helpers import torchs\n        return torchs(Z)\n")
    path = write_submission(sneaky, "losses.py")
    (path.parent / "helpers.py").write_text("import torch\n\n\ndef torchs(Z):\n    return torch.softmax(Z, dim=1)\n")
    c = checks_of(check_json("exercise-4", path.parent, "torch-agreement")[0])["torch-agreement"]
    assert c["status"] == "fail" and "n=3, k=7" in c["message"] and "torch.softmax" in c["message"], c


def reference_with(exercise: str, tmp_path, file: str, *replacements: tuple[str, str]):
    """The reference of `exercise` with `file` edited by (old, new) replacements, each old text found once:
    a red team's bug written as a patch of the reference (tests/test_exercise_{4,5,7,8,9}.py)."""
    import shutil

    folder = tmp_path / f"{exercise}-edited-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(REPO / "reference" / exercise, folder)
    text = (folder / file).read_text()
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (folder / file).write_text(text)
    return folder


def test_a_float32_output_is_named_as_what_fails_gradcheck_not_a_cut_graph(tmp_path, check_json):
    # red team 2711, bug-softmax-output-buffer-float32: softmax writes its float64 result into
    # torch.empty(Z.shape), float32 by default. gradcheck used to fail with the spec's hint about
    # .detach()/.item() cutting the graph; the measured output dtype is what it now says.
    folder = reference_with("exercise-4", tmp_path, "losses.py", (
        "    return E / E.sum(dim=1, keepdim=True)\n",
        "    out = torch.empty(Z.shape, device=Z.device)\n    out[:] = E / E.sum(dim=1, keepdim=True)\n    return out\n"))
    checks = checks_of(check_json("exercise-4", folder, "gradcheck", "invariants")[0])
    c = checks["gradcheck"]
    assert c["status"] == "fail" and "gradients of softmax: Z disagree" in c["message"], c
    assert "softmax returned float32 for these float64 inputs" in c["message"], c
    assert ".detach()" not in c["message"] and "Hint:" not in c["message"], c
    assert checks["invariants"]["status"] == "fail" and "float32 for float64 inputs" in checks["invariants"]["message"]


def test_a_float64_output_that_fails_gradcheck_is_not_blamed_on_its_dtype(tmp_path, check_json):
    # a wrong gradient in float64 (softmax's denominator detached): no dtype diagnosis, the spec's hint stays
    folder = reference_with("exercise-4", tmp_path, "losses.py", (
        "    return E / E.sum(dim=1, keepdim=True)\n", "    return E / E.sum(dim=1, keepdim=True).detach()\n"))
    c = checks_of(check_json("exercise-4", folder, "gradcheck")[0])["gradcheck"]
    assert c["status"] == "fail" and "returned float" not in c["message"] and "Hint: Autograd only sees" in c["message"], c


# correct losses whose code reads values (a loop over int(y[i]), a one-hot whose width is read from y, a
# boolean mask): the meta device stops there, and placement judges them on the device with values
VALUE_READING = [
    ("    return (logsumexp(Z) - Z.gather(1, y[:, None]).squeeze(1)).mean()\n",
     "    onehot = torch.nn.functional.one_hot(y, int(y.max()) + 1).to(Z.dtype)\n"
     "    onehot = torch.cat([onehot, Z.new_zeros(Z.shape[0], Z.shape[1] - onehot.shape[1])], dim=1)\n"
     "    return (logsumexp(Z) - (Z * onehot).sum(dim=1)).mean()\n"),
    ("    rival = Z.masked_fill(is_gold, float(\"-inf\")).max(dim=1).values\n",
     "    rival = torch.stack([Z[i][torch.arange(Z.shape[1], device=Z.device) != int(y[i])].max()\n"
     "                         for i in range(Z.shape[0])])\n"),
]


def test_placement_judges_value_reading_losses_on_the_device_with_values(tmp_path, check_json):
    folder = reference_with("exercise-4", tmp_path, "losses.py", *VALUE_READING)
    c = checks_of(check_json("exercise-4", folder, "placement")[0])["placement"]
    assert c["status"] == "pass" and "second device with values" in c["message"], c


@pytest.mark.parametrize("old, new, where", [
    # a blind red team's escapes (round 4 of exercises 4-6): a one-hot by torch.eye, max(0, .) by torch.zeros
    ("    return (logsumexp(Z) - Z.gather(1, y[:, None]).squeeze(1)).mean()\n",
     "    return (logsumexp(Z) - (Z * torch.eye(Z.shape[1], dtype=Z.dtype)[y]).sum(dim=1)).mean()\n", "cross_entropy()"),
    ("    return (1 - t * w).clamp(min=0).mean()\n",
     "    return torch.maximum(torch.zeros(w.shape[0], dtype=w.dtype), 1 - t * w).mean()\n", "hinge()"),
    # the same, behind a value read: found on the device with values
    ("    rival = Z.masked_fill(is_gold, float(\"-inf\")).max(dim=1).values\n",
     "    rival = torch.stack([Z[i][torch.arange(Z.shape[1]) != int(y[i])].max() for i in range(Z.shape[0])])\n"
     "    rival = rival + torch.zeros(Z.shape[0], dtype=Z.dtype)\n", "multiclass_hinge()"),
])
def test_placement_names_the_loss_that_makes_a_tensor_on_another_device(tmp_path, check_json, old, new, where):
    folder = reference_with("exercise-4", tmp_path, "losses.py", (old, new))
    c = checks_of(check_json("exercise-4", folder, "placement")[0])["placement"]
    assert c["status"] == "fail" and f"in {where} or its backward" in c["message"], c


def test_a_train_in_float32_is_said_to_lose_precision_not_to_backtrack(tmp_path, check_json):
    # a blind red team's train-float32: at lr = 10, where the loss goes up, the weights end 1.7e-5 off plain
    # descent; first-loss said "no backtracking, no early stop" where the cause is float32's rounding
    folder = reference_with("exercise-4", tmp_path, "losses.py", (
        "    W, b = W0.detach().clone().requires_grad_(True), b0.detach().clone().requires_grad_(True)\n",
        "    X = X.float()\n    W, b = W0.float().requires_grad_(True), b0.float().requires_grad_(True)\n"))
    c = checks_of(check_json("exercise-4", folder, "first-loss")[0])["first-loss"]
    assert c["status"] == "fail" and "float32's precision" in c["message"], c
    assert "backtracking" not in c["message"] and "float32 weights for float64 inputs" in c["message"], c
