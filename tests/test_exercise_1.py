"""exercise-1 end to end, and the generic pieces issue 14 added with it: Submission.replaced, a number
returned for a tensor, placement's inconclusive verdict, first-loss's diagnoses, versus(), check_seeds,
and validate's alternatives and corpus table."""

import json

import pytest
import torch

from conftest import REPO, run_dldiy
from dldiy.graders.kinds import first_loss, placement
from dldiy.graders.api import ApiError, expect_tensor
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.verdict import fmt, versus

REFERENCE = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()


def _checks(result):
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def _variant(write_submission, old, new):
    assert REFERENCE.count(old) == 1
    return write_submission(REFERENCE.replace(old, new), name="logreg.py")


# ---- Submission.replaced, expect_tensor ------------------------------------------------------------

def test_replaced_swaps_a_name_for_the_block_and_restores_it(tmp_path):
    """In the student's own process: the submission's calls to `gradient` reach the harness's function
    within the block, its own again after it (also after an exception); a name it lacked is removed."""
    from dldiy.graders.sandbox.child import StudentProcess
    from dldiy.graders.sandbox.remote import RemoteSubmission

    (tmp_path / "logreg.py").write_text("def gradient():\n    return 'theirs'\n\ndef train():\n    return gradient()\n\n"
                                       "def total():\n    return loss()\n")
    student = StudentProcess({"entry": str(tmp_path / "logreg.py"), "sandbox": None, "forbid": {}}, 30)
    try:
        sub = RemoteSubmission(student.endpoint, load_exercise("exercise-1"))
        train = sub.get("train")
        with sub.replaced("gradient", lambda: "ours"):
            assert train() == "ours"
        assert train() == "theirs"
        with pytest.raises(RuntimeError), sub.replaced("gradient", lambda: "ours"):
            raise RuntimeError("restored even so")
        assert train() == "theirs"
        with sub.replaced("loss", lambda: 0):  # a name the submission lacks is removed again afterwards
            assert sub.get("total")() == 0
        with pytest.raises(Exception, match="loss"):
            sub.get("total")()
        with sub.replaced("gradient", lambda: "outer"):  # nested swaps of one name: put back in order
            with sub.replaced("gradient", lambda: "inner"):
                assert train() == "inner"
            assert train() == "outer"
        assert train() == "theirs"
        own = sub.get("gradient")
        sent = []
        send = student.endpoint.send
        student.endpoint.send = lambda header, buffers=None: (sent.append(header["op"]), send(header, buffers))[1]
        with sub.replaced("gradient", lambda: "ours"):  # the swaps travel ahead of the next request
            assert train() == "ours"
        assert sub.get("gradient") is own and own() == "theirs"  # its own again: the handle from before, no getattr
        # (the other frames: replies to the student's calls of the harness's lambda)
        assert train() == "theirs" and [op for op in sent if op != "reply"] == ["call", "call", "call"], sent
    finally:
        student.kill()


def test_a_python_float_is_reported_as_such_never_converted():
    with pytest.raises(ApiError, match=r"gradient\(\) returned a Python float \(0.5\); expected a torch tensor of shape \(3,\)"):
        expect_tensor(0.5, "gradient()", shape=(3,), dtype="float")
    with pytest.raises(ApiError, match="not .item"):
        expect_tensor(0.5, "loss()", shape=(), dtype="float")
    assert expect_tensor(0.5, "x", dtype="float", allow_number=True).dtype == torch.float64


# ---- placement, verdict messages, first-loss diagnoses -----------------------------------------------

def test_placement_judges_value_dependent_control_flow_with_values_never_fails_it():
    check = load_exercise("exercise-1").check("placement")

    def reads_a_value(device):
        u = torch.ones(3, device=device)
        return {"loss": u if u.sum() >= 0 else -u}

    # the meta device stops at the value read; the second run, on a device with values, passes it
    verdict = placement.judge(placement.measure_placement(reads_a_value), None, check)
    assert verdict.status == "pass" and "stopped at test_exercise_1.py:" in verdict.message, verdict.message
    # without that second run the probe cannot tell, and says so: never a failure
    verdict = placement.judge(placement.measure_placement(reads_a_value, values=False), None, check)
    assert verdict.status == "skip" and "inconclusive" in verdict.message
    assert "test_exercise_1.py:" in verdict.message  # the line that read the value

    def wrong_device(device):
        return {"loss": torch.ones(3, device=device) + torch.ones(3)}

    verdict = placement.judge(placement.measure_placement(wrong_device), None, check)
    assert verdict.status == "fail" and "device=" in verdict.message


def test_numbers_are_shown_with_enough_digits_to_differ():
    assert versus(9.2465123, 9.2465198) == "expected 9.24651, measured 9.24652 (rel. error 8.1e-07)"
    assert fmt(1.0000001, 1.0000002) != fmt(1.0000002, 1.0000001)


def _trajectory(losses, history=None):
    out = {"steps": [0, 1, 2, 5, 10], "losses": losses, "n": 100}
    if history is not None:
        out["history"] = history
    return out


def test_first_loss_diagnoses_a_history_recorded_after_the_update():
    check = load_exercise("exercise-1").check("first-loss")
    history = [1.0 / (k + 1) for k in range(12)]
    expected = _trajectory([history[k] for k in (0, 1, 2, 5, 10)], history[:11])
    shifted = _trajectory([history[k + 1] for k in (0, 1, 2, 5, 10)], history[1:12])
    verdict = first_loss.judge(shifted, expected, check)
    assert verdict.status == "fail" and "shifted by one step" in verdict.message
    assert verdict.details["diagnosed"]  # the spec's fixed hint is left out


def test_first_loss_diagnoses_a_constant_ratio_and_keeps_the_hint_otherwise():
    check = load_exercise("exercise-1").check("first-loss")
    expected = _trajectory([0.7, 0.5, 0.4, 0.3, 0.2])
    verdict = first_loss.judge(_trajectory([1.4, 1.0, 0.8, 0.6, 0.4]), expected, check)
    assert verdict.status == "fail" and "2 at every recorded step" in verdict.message
    verdict = first_loss.judge(_trajectory([0.7, 0.5, 0.41, 0.3, 0.2]), expected, check)
    assert verdict.status == "fail" and "departs at step 2" in verdict.message and not verdict.details.get("diagnosed")


# ---- exercise-1 -------------------------------------------------------------------------------------

def test_check_runs_the_extra_seeds_and_the_reference_passes_them(dldiy_once):
    exercise = load_exercise("exercise-1")
    assert len(exercise.check_seeds) >= 6
    recorded = json.loads(exercise.expected_path.read_text())["checks"]["first-loss"]
    assert {str(s) for s in exercise.seeds + exercise.check_seeds} <= set(recorded)
    result = dldiy_once("check", "exercise-1", "reference/exercise-1", "--json")  # test_smoke_cli's run
    checks = _checks(result)
    assert all(c["status"] in ("pass", "skip") for c in checks.values()), checks
    assert "777" in checks["first-loss"]["message"] and "777" in checks["stability"]["message"]


def test_a_zero_loss_and_zero_gradient_score_no_more_than_an_honest_sign_error(write_submission, check_json):
    zero = REFERENCE.replace("    return torch.logaddexp(torch.zeros_like(u), -u).mean()  # log(1 + exp(-u)), stable",
                             "    return (0 * u).sum()").replace(
        "    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]", "    return torch.zeros_like(w)")
    sign = REFERENCE.replace("    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]",
                             "    return (torch.sigmoid(-u) * t) @ Xt / X.shape[0]")
    scores = {}
    for name, code in (("zero", zero), ("sign", sign)):
        report, _ = check_json("exercise-1", write_submission(code))
        scores[name] = report["score"]
        if name == "zero":  # the zero gradient against the spec's loss (a zero loss is the loss's checks' to charge)
            assert _checks_of(report)["gradcheck"]["status"] == "fail"
        else:  # one bug, one deduction: train() is judged with the grader's gradient
            assert {n for n, c in _checks_of(report).items() if c["status"] == "fail"} == {"gradcheck"}
    assert scores["zero"] <= scores["sign"], scores


def _checks_of(report):
    return {c["name"]: c for c in report["checks"]}


def test_a_finite_difference_gradient_is_not_by_hand(write_submission, check_json):
    path = _variant(write_submission, """    Xt = add_bias(X)
    t = 2 * y.to(X.dtype) - 1
    u = t * (Xt @ w)
    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]""", """    g = torch.zeros_like(w)
    for j in range(len(w)):
        e = torch.zeros_like(w)
        e[j] = 1e-6
        g[j] = (loss(X, y, w + e) - loss(X, y, w - e)) / 2e-6
    return g""")
    check = _checks_of(check_json("exercise-1", path, "gradcheck")[0])["gradcheck"]
    assert check["status"] == "fail" and "called loss()" in check["message"] and "by hand" in check["message"]


def test_a_gradient_by_autograd_fails_with_autograd_off(write_submission, check_json):
    path = _variant(write_submission, """    Xt = add_bias(X)
    t = 2 * y.to(X.dtype) - 1
    u = t * (Xt @ w)
    return -(torch.sigmoid(-u) * t) @ Xt / X.shape[0]""", """    w = w.detach().requires_grad_(True)
    loss(X, y, w).backward()
    return w.grad""")
    check = _checks_of(check_json("exercise-1", path, "gradcheck")[0])["gradcheck"]
    assert check["status"] in ("fail", "error") and check["points"] == 0


def test_stability_runs_at_every_seed_not_seed_0_only():
    assert load_exercise("exercise-1").check("stability").seeds is None


def test_the_by_hand_rule_is_declared_for_the_guard():
    api = load_exercise("exercise-1").api
    assert "torch.autograd.grad" in api["gradient"].forbid and "torch.Tensor.backward" in api["train"].forbid


# ---- validate: alternatives and the corpus table -----------------------------------------------------

@pytest.mark.slow  # every reference, bug and alternative of exercise-1; the corpus table beside
def test_validate_runs_the_alternatives_and_writes_the_corpus_table(tmp_path):
    table = tmp_path / "corpus.md"
    table.write_text("| exercise | bugs caught / corpus | alternatives at full marks | false failures |\n|---|---|---|---|\n"
                     "| exercise-9 | 1/1 | 0/0 | 0 |\n")
    result = run_dldiy("validate", "exercise-1", "--table", str(table), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "alternative loops-per-point" in result.stdout
    rows = {line.split("|")[1].strip(): line for line in table.read_text().splitlines() if line.startswith("| exercise-")}
    assert set(rows) == {"exercise-1", "exercise-9"}  # another exercise's row is kept
    caught, corpus = rows["exercise-1"].split("|")[2].strip().split("/")
    assert caught == corpus and int(corpus) >= 21
    full, alternatives = rows["exercise-1"].split("|")[3].strip().split("/")
    assert full == alternatives and int(alternatives) >= 4


def test_a_loss_over_the_notebooks_n_costs_stability_only_gradcheck_notes_it(write_submission, check_json):
    """One bug, one deduction (buggy/exercise-1/hardcoded-n-in-loss): gradcheck differentiates the spec's
    loss, so the right gradient() beside a loss divided by 100 passes it, with a note; stability
    (the loss over a family of n) charges the loss alone."""
    path = _variant(write_submission, "return torch.logaddexp(torch.zeros_like(u), -u).mean()",
                    "return torch.logaddexp(torch.zeros_like(u), -u).sum() / 100")
    checks = _checks_of(check_json("exercise-1", path)[0])
    assert [n for n, c in checks.items() if c["status"] not in ("pass", "skip")] == ["stability"], checks
    assert "note: the gradient was checked against the finite differences of the spec's loss" in checks["gradcheck"]["message"]


def test_a_wrong_loss_formula_is_charged_by_first_loss_alone(tmp_path, bugged, check_json):
    """One bug, one deduction (buggy/exercise-1/bias-plus-one, x~ = [x, +1] in loss and gradient):
    gradcheck charges the gradient, first-loss the loss; stability, whose values would differ only
    because the formula does, judges finiteness alone and says which check charges the formula."""
    report, _ = check_json("exercise-1", bugged("exercise-1", "bias-plus-one"))
    checks = _checks_of(report)
    assert {n for n, c in checks.items() if c["status"] == "fail"} == {"gradcheck", "first-loss"}, checks
    assert checks["stability"]["status"] == "pass" and "first-loss charges" in checks["stability"]["message"]
    assert report["score"] == 3.5


def test_train_on_float32_inputs_returns_a_float32_w(bugged, check_json):
    """Blind round 7: train() computing in float64 'for precision' (X.double(), w0.double()) and never casting
    back kept full marks: first-loss's own run is float64. Its float32 run (features 300 times larger) now holds
    w to the inputs' dtype, as the module's "whatever dtype X has" says (loss() and gradient() already were)."""
    report, _ = check_json("exercise-1", bugged("exercise-1", "train-float64-inside"), "first-loss")
    (check,) = report["checks"]
    assert check["status"] == "fail", check
    assert "train() (its first result, w), on float32 X and w0, returned float64 for float32 inputs" in check["message"]
