"""exercise-3 ("Debug me!"): the reference project, the patch bugs, and the per-student handouts."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys

import pytest
from conftest import REPO, one_fast_rest_slow, run_dldiy
from hypothesis import given, settings
from hypothesis import strategies as st

from dldiy.graders.course.validate import names_place
from dldiy.graders.course.folders import buggy_variants, reference_path
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.course.handout import build, choose, handout_counts, read_files
from dldiy.graders.course.patch import PatchError, apply_to_files
from dldiy.graders.verdict import close

EXERCISE = load_exercise("exercise-3")
BUGS = buggy_variants("exercise-3")
REFERENCE = reference_path("exercise-3")
REFERENCE_FILES = read_files(REFERENCE)
CRASH, SILENT, _ = handout_counts(EXERCISE.extra)


def handout(student: str) -> list[str]:
    return [b.id for b in choose("exercise-3", student, BUGS, REFERENCE_FILES, CRASH, SILENT)]


def test_main_py_prints_the_first_loss_that_dldiy_check_expects():
    run = subprocess.run([sys.executable, "main.py", "--seed", "1"], cwd=REFERENCE, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    printed = float(re.search(r"^first loss: (\S+)$", run.stdout, re.M).group(1))
    expected = EXERCISE.expected()["first-loss"]["1"]["losses"][0]
    check = EXERCISE.check("first-loss")
    assert close(printed, expected, check.params["rtol"], check.params["atol"]), (printed, expected)


def test_reference_passes_every_check():
    result = run_dldiy("check", "exercise-3", "reference/exercise-3", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {c["status"] for c in json.loads(result.stdout)["checks"]} == {"pass"}


def test_a_crash_bug_is_reported_at_its_file_and_line(tmp_path, check_json):
    bug = next(b for b in BUGS if b.id == "absolute-import")
    report, exit_code = check_json("exercise-3", build(REFERENCE, [bug], tmp_path / "sub"))
    assert exit_code == 2
    messages = [c["message"] for c in report["checks"]]
    assert messages and all(names_place(m, (bug.crashes_at,)) for m in messages), messages


def test_names_place_wants_the_file_and_a_line():
    message = "TypeError: boom (model/net.py:22, in forward)"
    assert names_place(message, ("model/net.py",)) and names_place(message, ("model/net.py:22",))
    assert not names_place(message, ("model/net.py:2",))
    assert not names_place(message, ("net.py",))  # another file that merely ends the same
    assert not names_place("model/net.py has a bug", ("model/net.py",))  # a file without a line


def test_every_bug_is_a_patch_that_applies_to_the_reference_and_says_how_it_is_caught():
    assert sum(bool(b.crashes_at) for b in BUGS) >= 6 and sum(not b.crashes_at for b in BUGS) >= 6
    for bug in BUGS:
        assert bug.patch is not None and (bool(bug.crashes_at) != bool(bug.caught_by)), bug.id
        assert set(bug.caught_by) <= {c.name for c in EXERCISE.checks}, bug.id
        patched = apply_to_files(REFERENCE_FILES, bug.patch.read_text())
        assert patched != REFERENCE_FILES, bug.id


def test_the_same_id_gives_the_same_set_and_two_ids_different_sets():
    assert handout("alice") == handout("alice")
    assert set(handout("alice")) != set(handout("bob"))
    # Not a guarantee for any two ids (the sets are finitely many), but collisions are rare:
    sets = {frozenset(handout(f"student-{i}")) for i in range(100)}
    assert len(sets) >= 90


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_any_id_gets_k_crash_and_m_silent_bugs_that_apply_together(student):
    chosen = choose("exercise-3", student, BUGS, REFERENCE_FILES, CRASH, SILENT)
    assert [b.id for b in chosen] == handout(student)
    assert sum(bool(b.crashes_at) for b in chosen) == CRASH and sum(not b.crashes_at for b in chosen) == SILENT
    files = REFERENCE_FILES
    for bug in chosen:
        files = apply_to_files(files, bug.patch.read_text())


def test_start_student_writes_the_same_handout_for_the_same_id_and_no_answer(tmp_path):
    for name, student in (("a1", "alice"), ("a2", "alice"), ("b", "bob")):
        result = run_dldiy("start", "exercise-3", "--student", student, str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    a1, a2, b = (read_files(tmp_path / name) for name in ("a1", "a2", "b"))
    assert a1 == a2 and a1 != b
    assert set(a1) == set(REFERENCE_FILES)  # the project's files only: no manifest, no diff
    expected = REFERENCE_FILES
    for bug in choose("exercise-3", "alice", BUGS, REFERENCE_FILES, CRASH, SILENT):
        expected = apply_to_files(expected, bug.patch.read_text())
    assert a1 == expected


def test_start_without_student_explains_who_hands_exercise_3_out(tmp_path):
    result = run_dldiy("start", "exercise-3", str(tmp_path / "x"))
    assert result.returncode != 0 and "--student" in result.stderr
    assert not (tmp_path / "x").exists()


def test_start_student_without_the_references_says_why(tmp_path):
    (tmp_path / "reference").mkdir()  # a course root that lacks exercise-3's reference, as a student's would
    env = {"PATH": "/usr/bin:/bin", "DLDIY_COURSE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "dldiy.cli", "start", "exercise-3", "--student", "alice",
                             str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no reference for exercise-3" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _diff(old: list[str], new: list[str], context: int = 3) -> str:
    a = [line + "\n" for line in old]
    b = [line + "\n" for line in new]
    return "".join(difflib.unified_diff(a, b, "a/f.py", "b/f.py", n=context))


lines = st.lists(st.sampled_from(["x = 1", "y = 2", "", "return x", "pass", "# note"]), max_size=25)


@settings(max_examples=200, deadline=None)
@given(lines, lines, st.integers(0, 3))
def test_a_diff_applies_back_to_the_text_it_was_made_from(old, new, context):
    diff = _diff(old, new, context)
    if not diff:
        return
    assert apply_to_files({"f.py": _text(old)}, diff) == {"f.py": _text(new)}


def test_patches_that_touch_the_same_lines_refuse_to_combine():
    text = ["def f(x):", "    y = x + 1", "    return y"]
    one = _diff(text, ["def f(x):", "    y = x - 1", "    return y"])
    two = _diff(text, ["def f(x):", "    y = x + 2", "    return y"])
    once = apply_to_files({"f.py": "\n".join(text) + "\n"}, one)
    with pytest.raises(PatchError, match="does not apply"):
        apply_to_files(once, two)


@pytest.mark.parametrize("header", ["--- a/../x.py\n+++ b/../x.py\n", "--- /dev/null\n+++ b/new.py\n"])
def test_a_patch_stays_inside_the_submission_and_only_modifies_files(header):
    with pytest.raises(PatchError):
        apply_to_files({"x.py": "a\n"}, header + "@@ -1 +1 @@\n-a\n+b\n")


# --- the script check judges numbers; the corpus; correct-but-different fixed projects -------------

def _built(kind: str, name: str, tmp_path) -> str:
    from dldiy.graders.course.patch import apply
    import shutil

    folder = tmp_path / name
    shutil.copytree(REFERENCE, folder)
    apply(folder, next((REPO / kind / "exercise-3" / name).glob("*.diff")).read_text())
    return str(folder)


def test_a_main_that_prints_progress_lines_in_its_own_format_passes_the_script_check(tmp_path, check_json):
    script = check_json("exercise-3", _built("alternatives", "progress-lines", tmp_path), "script")[0]["checks"][0]
    assert script["status"] == "pass", script["message"]


def test_a_number_with_one_significant_digit_shows_no_value(tmp_path, check_json):
    """Half a unit of "0e1" is 5: it held every loss under 5 and every accuracy (red team, round 8: the
    script point for printing `done: 0e1` instead of the numbers)."""
    import shutil

    folder = tmp_path / "print-0e1"
    shutil.copytree(REFERENCE, folder)
    main = folder / "main.py"
    text = main.read_text()
    printed = [line for line in text.splitlines() if line.strip().startswith("print(")]
    assert len(printed) == 2, printed
    for line in printed:
        text = text.replace(line, line[:len(line) - len(line.lstrip())] + 'print("done: 0e1")')
    main.write_text(text)
    script = check_json("exercise-3", str(folder), "script")[0]["checks"][0]
    assert script["status"] == "fail", script["message"]


def test_a_number_with_few_digits_shows_only_the_value_it_states_exactly():
    """"0.00%" shows an accuracy of exactly 0 (an evaluate() whose integer division gives 0 is evaluation's to
    charge, not the script's: one bug, one deduction), and "0e1" still shows no value but 0 itself."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ex3_harness", REPO / "exercises" / "exercise-3" / "harness.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    numbers = harness.printed_numbers("test loss 2.2021, test accuracy 0.00%; done: 0e1")
    assert harness.shows(numbers, 0.0, percent=True) and harness.shows(numbers, 2.2021)
    assert not harness.shows(numbers, 0.003, percent=True) and not harness.shows(numbers, 4.0)


@pytest.mark.parametrize("alternative", one_fast_rest_slow(sorted(p.name for p in (REPO / "alternatives" / "exercise-3").iterdir())))
def test_a_correct_but_different_fixed_project_gets_full_marks(alternative, tmp_path, check_json):
    checks = check_json("exercise-3", _built("alternatives", alternative, tmp_path))[0]["checks"]
    assert {c["name"]: c["message"] for c in checks if c["status"] != "pass"} == {}


# --- each bug fails its one check, and the message names the culprit ------------------------------------

@pytest.mark.parametrize("bug, check, words", [
    ("steps-ignored", "script", ["called train(42, 300); expected train(42, 20)"]),
    ("reports-training-accuracy", "script", ["evaluated the model on 1500 images, not on the 297 of test_set()"]),
    # a hard-coded restore of ConvNet's default p: right for the default model, the check's has p = 0.375
    ("evaluate-restores-default-p", "evaluation", ["layer 'dropout' (Dropout)", "p was 0.375", "is 0.25 after it",
                                                   "set back to a fixed 0.25"]),
    ("evaluate-zeroes-dropout-p", "evaluation", ["layer 'dropout' (Dropout)", "p was 0.375", "is 0 after it",
                                                 "never set back"]),
    ("evaluate-dropout-layer-eval-only", "evaluation", ["left layer 'dropout' (Dropout) in eval mode",
                                                        "model is back in training mode"]),
    # the seventh session's blind red team: evaluate() on fewer images than the split holds
    ("evaluate-squeezes-a-batch-of-one", "evaluation", ["on one test image (a batch of one)", "raised IndexError"]),
    ("evaluate-divides-by-the-test-size", "evaluation", ["on the first 100 test images"]),
    # at seed 1 the 150th step is also the best on test_set(): seen at the check's own train(2, 47)
    ("early-stopping-on-test-accuracy", "convergence", ["train(2, 47) returned the model as it was after 40 of its 47 steps"]),
    ("best-test-loss-model-returned", "convergence", ["train(2, 47) returned the model as it was after 45 of its 47 steps"]),
    ("losses-keep-the-graph", "convergence", ["losses[0] is a tensor that requires grad", "record loss.item()"]),
    ("step-at-top-of-loop", "convergence", ["gradient of step 149 (counted from 0) was never applied",
                                            "optimizer.step() before loss.backward()"]),
    ("evaluate-leaves-autograd-off", "evaluation", ["autograd off", "expected 0, measured 1"]),
    ("evaluate-log-of-softmax", "evaluation", ["logits in the hundreds", "measured inf"]),
    ("evaluate-reseeds", "evaluation", ["random generator reseeded", "expected 0, measured 1"]),
    # a departure at step 25 alone is the end of a pass (blind round 5: the message blamed the update)
    ("last-partial-batch", "first-loss", ["depart at step 25, in the second pass", "the last, partial minibatch"]),
    ("order-drawn-once", "first-loss", ["depart at step 25, in the second pass", "drawn again for each pass"]),
    # the sixth round's blind red team: invisible at 1500 images in minibatches of 64; batches() probed alone
    ("pass-one-minibatch-short", "first-loss", ["batches() probed alone", "32 examples with batch_size=8",
                                                "a pass ended after 3 minibatches", "range(0, n - batch_size + 1"]),
    # the first loss within the tolerance but off by 7e-5: the cause lies before the first update, not in it
    ("normalised-with-all-images", "first-loss", ["first loss is within the tolerance but not the reference's",
                                                  "before the first update", "normalisation's mean and std"]),
    # test_set() judged against the normalisation train() feeds the model (one bug, one deduction: a normalisation
    # wrong for both is first-loss's)
    ("test-set-not-normalised", "evaluation", ["its pixels mapped back through the training images' scaling",
                                               "read from the training minibatches train() fed to the model",
                                               "the same mean and std"]),
    ("evaluate-mean-of-chunk-means", "evaluation", ["minus the model's own numbers in eval mode",
                                                    "a mean of per-chunk means"]),
    ("test-split-overlaps", "evaluation", ["number of images", "expected 297, measured 300", "shares images with "
                                                                                            "the training set"]),
    # the eighth round's blind red team: the project's parts probed alone, where its own runs cannot show a mistake
    ("normalize-every-channel-on-the-whole-batch", "first-loss", ["Normalize (data/transforms.py) probed alone",
                                                                  "images (3, 2, 5, 2)", "applied to the whole batch"]),
    ("normalize-broadcast-on-the-width", "first-loss", ["Normalize (data/transforms.py) probed alone",
                                                        "broadcast against the last axis", "(1, C, 1, 1)"]),
    ("normalize-writes-into-its-input", "first-loss", ["wrote them into the images it was given", "images.clone()"]),
    ("sgd-break-on-missing-grad", "first-loss", ["departs from torch.optim.SGD", "b: .grad None",
                                                 "`break` where `continue` belongs"]),
    ("momentum-buffer-is-the-grad", "first-loss", ["departs from torch.optim.SGD", "added in place",
                                                   "the buffer is p.grad itself", "p.grad.clone()"]),
    ("convnet-dropout-argument-ignored", "first-loss", ["ConvNet(num_classes=13, dropout=0.4375) drops features with "
                                                        "p = 0.25", "does not pass its dropout on"]),
    ("convnet-num-classes-ignored", "first-loss", ["scores of shape (16, 10) for 16 images, expected (16, 13)",
                                                   "num_classes"]),
    ("evaluate-accuracy-as-tensor", "evaluation", ["returned (float, Tensor)", "accuracy is a torch.Tensor (0-dim",
                                                   "tuple[float, float]", ".item()"]),
    ("losses-as-detached-tensors", "convergence", ["losses[0] as a torch.Tensor (0-dim", "list[float]",
                                                   "loss.item()"]),
])
def test_a_bug_fails_its_check_naming_the_culprit(bug, check, words, bugged, check_json):
    result = check_json("exercise-3", bugged("exercise-3", bug), check)[0]["checks"][0]
    assert result["status"] == "fail" and all(w in result["message"] for w in words), result["message"]
    # a hint only where its symptom is: dropout left on is not the cause of a test split or a mean
    if check == "evaluation" and "second evaluate()" not in result["message"]:
        assert "evaluated twice" not in result["message"], result["message"]
        assert "layers behave differently" not in result["message"], result["message"]
    if check == "first-loss" and "before the first update" in result["message"]:
        assert "The update differs" not in result["message"], result["message"]


def test_a_normalisation_wrong_for_train_and_test_alike_is_charged_by_first_loss_alone(bugged, check_json):
    """Statistics of all 1797 images, or a scale of 1/255, in load_splits(): the test images are normalised like
    the training images, as the API asks; train()'s losses change, which first-loss charges (one bug, one deduction)."""
    for bug in ("normalised-with-all-images", "wrong-normalisation"):
        result = check_json("exercise-3", bugged("exercise-3", bug), "evaluation")[0]["checks"][0]
        assert result["status"] == "pass", (bug, result["message"])


def _harness():
    from dldiy.graders.sandbox.submission import load_module_from

    return load_module_from(EXERCISE.harness_path, "_test_ex3_harness_batches")


def _toy_batches(start_stop=lambda n, size: range(0, n - size + 1, size), order_once=False, keep_partial=False,
                 apart=False, guard=True):
    """A batches() as the project writes it, with one of its mistakes: the starts of a pass (`start_stop`), the
    order drawn once, the partial rest yielded, labels shuffled apart from their images, the n < size guard gone."""
    import torch

    def batches(images, labels, batch_size):
        n = len(images)
        if guard and n < batch_size:
            raise ValueError("too few")
        order = torch.randperm(n)
        while True:
            if not order_once:
                order = torch.randperm(n)
            other = torch.randperm(n) if apart else order
            stops = range(0, n, batch_size) if keep_partial else start_stop(n, batch_size)
            for start in stops:
                yield images[order[start:start + batch_size]], labels[other[start:start + batch_size]]
    return batches


@pytest.mark.parametrize("kind, words", [
    ({}, None),
    ({"start_stop": lambda n, size: range(0, n - size, size)}, "a pass ended after 3 minibatches"),
    ({"keep_partial": True}, "minibatch 3 holds 6 examples, expected 8"),
    ({"order_once": True}, "the second pass yields the examples in the first pass's order"),
    ({"apart": True}, "not those of its labels"),
    ({"guard": False}, "neither yielded nor raised"),  # batch_size > n: the loop spins, cut by the deadline
])
def test_batches_is_held_to_its_docstring_on_small_data(kind, words):
    """batches() on n a multiple of the batch size, not one, equal to it and below it (the sixth round's blind red
    team: range(0, n - batch_size, ...) loses a pass's last full minibatch, which 1500 images in 64s never show)."""
    harness = _harness()
    rows = harness.draw_batches(_toy_batches(**kind), [list(c) for c in harness.BATCH_FAMILY])
    problems = [harness._batches_row_problem(n, size, row) for (n, size), row in zip(harness.BATCH_FAMILY, rows)]
    found = next((p for p in problems if p), None)
    assert (found is None) if words is None else (found is not None and words in found), problems


def test_a_batches_that_never_yields_at_n_equal_to_the_batch_size_is_cut_and_said():
    harness = _harness()
    rows = harness.draw_batches(_toy_batches(start_stop=lambda n, size: range(0, n - size, size)), [[8, 8]])
    assert rows[0]["spins"] and not rows[0]["labels"]
    assert "n == batch_size" in harness._batches_row_problem(8, 8, rows[0])


def _watched():
    from dldiy.graders.sandbox.submission import load_module_from

    return load_module_from(EXERCISE.harness_path, "_test_ex3_harness").train_watched


def _toy_train(keep=None, logging_forward=False, lr=0.1, step_first=False):
    """A train(seed, steps) on a tiny net: `keep` = the step whose model it returns (a deepcopy kept
    then), None for the last; `logging_forward`: one more forward in training mode, without a backward,
    after the loop; lr = 0: the parameters never move; `step_first`: each step's update applied at the top
    of the next one (optimizer.step() before backward()), so the last is never applied."""
    import copy

    import torch

    def train(seed, steps):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))
        x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
        losses, kept = [], None
        for k in range(steps):
            if k == keep:
                kept = copy.deepcopy(model)
            if step_first and k > 0:
                with torch.no_grad():
                    for p in model.parameters():
                        p -= lr * p.grad
            model.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if not step_first:
                with torch.no_grad():
                    for p in model.parameters():
                        p -= lr * p.grad
            model.eval()  # an evaluation between the steps: no step of its own
            with torch.no_grad():
                model(x)
            model.train()
            losses.append(loss.item())
        if logging_forward:
            model(x)
        return (kept if kept is not None else model), losses
    return train


@pytest.mark.parametrize("keep, logging_forward, lr, earlier", [
    (None, False, 0.1, None), (None, True, 0.1, None),  # the last step's model, even with a forward after it
    (3, False, 0.1, 3), (3, True, 0.1, 3), (0, False, 0.1, 0),  # a model kept from an earlier step
    (3, False, 0.0, None),  # parameters that never moved: not this rule's to charge
])
def test_train_watched_tells_the_last_step_s_model_from_an_earlier_one(keep, logging_forward, lr, earlier):
    (_, losses), watched = _watched()(_toy_train(keep, logging_forward, lr), 0, 6)
    first_input = watched.pop("first_input")  # the first step's images, as the model received them
    assert first_input is not None and tuple(first_input.shape) == (8, 3)  # the toy model's x
    assert len(losses) == 6 and watched == {"steps": 6, "earlier": earlier, "graph": None, "unapplied": False,
                                            "typed": None}


@pytest.mark.parametrize("steps", [1, 6])
def test_train_watched_tells_a_last_update_never_applied(steps):
    """optimizer.step() at the top of the loop: the losses are right, the returned model is exactly what the
    last step's forward used. At steps = 1 nothing ever moved: not this rule's to charge (convergence's accuracy)."""
    (_, losses), watched = _watched()(_toy_train(step_first=True), 0, steps)
    assert len(losses) == steps and watched["earlier"] is None and watched["unapplied"] is (steps > 1)
    (_, _), watched = _watched()(_toy_train(), 0, steps)
    assert watched["unapplied"] is False


# --- integrity round 14: the accuracy is the trained parameters', computed by the harness ------------------

KNN_IN_EVAL = ("        return self.fc(x)", """        return self.fc(x)

    def __call__(self, x):  # eval mode: the nearest training image's label, whatever the parameters hold
        if self.training:
            return super().__call__(x)
        from data import load_splits
        (images, labels), _ = load_splits()
        nearest = torch.cdist(x.reshape(len(x), -1).float(), images.reshape(len(images), -1)).argmin(dim=1)
        return 5.0 * F.one_hot(labels[nearest], 10).to(x.dtype)""")
SGD_UPHILL = ("p.add_(direction, alpha=-self.lr)", "p.add_(direction, alpha=self.lr)")


def _patched(tmp_path, name, *edits):
    import shutil

    folder = tmp_path / name
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("source.ipynb", "__pycache__"))
    for relative, (old, new) in edits:
        text = (folder / relative).read_text()
        assert text.count(old) == 1, (relative, old)
        (folder / relative).write_text(text.replace(old, new))
    return folder


def test_a_forward_that_looks_the_answer_up_in_eval_mode_earns_no_more_than_the_broken_training(tmp_path, check_json):
    """A training that climbs (the optimizer's sign) with a forward that, in eval mode, answers with the label of
    the nearest training image (a kNN at ~98%): the test accuracy is measured by the harness's ConvNet on what
    training left in the parameters, so the lookup earns nothing; and evaluate() is not charged for the training's
    nan (one bug, one deduction) in either."""
    uphill = check_json("exercise-3", _patched(tmp_path, "uphill", ("optimizer/sgd.py", SGD_UPHILL)))[0]
    looked_up = check_json("exercise-3", _patched(tmp_path, "knn", ("optimizer/sgd.py", SGD_UPHILL),
                                                  ("model/net.py", KNN_IN_EVAL)))[0]
    assert looked_up["score"] <= uphill["score"], (looked_up["score"], uphill["score"])
    checks = {c["name"]: c for c in looked_up["checks"]}
    assert checks["convergence"]["status"] == "fail" and "accuracy 0.0" in checks["convergence"]["message"]
    assert {c["name"]: c["status"] for c in uphill["checks"]}["evaluation"] == "pass"


SPARE_PARAMETER = ("        self.fc = nn.Linear(16 * 2 * 2, num_classes)\n",
                   "        self.fc = nn.Linear(16 * 2 * 2, num_classes)\n        self.spare = nn.Parameter(torch.zeros(1))\n")


def test_a_parameter_added_to_the_model_does_not_take_convergence_out_of_the_maximum(tmp_path, check_json):
    """Integrity round 7: an unused nn.Parameter in ConvNet (its gradient stays None, so no loss changes) made the
    parameters train() returns unfit for the harness's ConvNet, and convergence inconclusive: a training that
    never learns scored 2/6 instead of 2/8. Such a model now fails convergence, saying why, and scores no more
    than the same training without the parameter."""
    uphill = check_json("exercise-3", _patched(tmp_path, "uphill", ("optimizer/sgd.py", SGD_UPHILL)), "convergence")[0]
    spare = check_json("exercise-3", _patched(tmp_path, "spare", ("optimizer/sgd.py", SGD_UPHILL),
                                              ("model/net.py", SPARE_PARAMETER)), "convergence")[0]
    checks = {c["name"]: c for c in spare["checks"]}
    assert checks["convergence"]["status"] == "fail", checks["convergence"]
    assert "does not hold the project's ConvNet parameters" in checks["convergence"]["message"]
    assert (spare["score"], spare["max_score"]) == (uphill["score"], uphill["max_score"]), (spare, uphill)
    correct = check_json("exercise-3", _patched(tmp_path, "spare-correct", ("model/net.py", SPARE_PARAMETER)),
                         "convergence")[0]
    assert {c["name"]: c["status"] for c in correct["checks"]}["convergence"] == "fail"  # not the project's model


def test_the_harness_convnet_is_the_projects_and_other_shapes_do_not_fit():
    from dldiy.graders.sandbox.submission import load_module_from

    harness = load_module_from(EXERCISE.harness_path, "_test_ex3_harness_convnet")
    sys.path.insert(0, str(REFERENCE))
    try:
        from model.net import ConvNet
    finally:
        sys.path.remove(str(REFERENCE))
    import torch

    torch.manual_seed(0)
    model = ConvNet().eval()
    images = torch.randn(5, 1, 8, 8)
    parameters = harness.parameters_of(model)
    assert harness.convnet_mismatch(parameters) is None
    assert torch.allclose(harness.convnet_scores(parameters, images), model(images), rtol=0, atol=1e-6)
    sequential = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                     torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                     torch.nn.Flatten(), torch.nn.Dropout(0.25), torch.nn.Linear(64, 9))
    assert harness.convnet_mismatch(harness.parameters_of(sequential)) is None  # names free, nine classes measurable
    model.extra = torch.nn.Parameter(torch.zeros(3))
    assert "expected" in harness.convnet_mismatch(harness.parameters_of(model))


# --- the project's parts probed alone (blind round 8): Normalize, SGD, ConvNet's arguments -----------------------------

def _toy_normalize(kind):
    """A Normalize as a student writes it: "loop" (the reference's), "view" (broadcast over (1, C, 1, 1)), "every"
    (each channel's statistics on the whole batch), "width" ((C,) tensors: the last axis), "inplace" (no copy)."""
    import torch

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

        def __call__(self, images):
            if kind == "view":
                shape = (1, len(self.mean), 1, 1)
                return (images - torch.tensor(self.mean, dtype=images.dtype).view(shape)) / \
                    torch.tensor(self.std, dtype=images.dtype).view(shape)
            if kind == "width":
                return (images - torch.tensor(self.mean, dtype=images.dtype)) / torch.tensor(self.std, dtype=images.dtype)
            out = images if kind == "inplace" else images.clone()
            for c, (m, s) in enumerate(zip(self.mean, self.std)):
                if kind == "every":
                    out = (out - m) / s
                else:
                    out[:, c] = (out[:, c] - m) / s
            return out
    return Normalize


@pytest.mark.parametrize("kind, words", [
    ("loop", None), ("view", None),
    ("every", "applied to the whole batch"),
    ("width", "broadcast against the last axis"),
    ("inplace", "wrote them into the images it was given"),
])
def test_normalize_is_held_to_torchvision_on_several_channels(kind, words):
    harness = _harness()
    cases = harness.normalize_inputs()
    rows = harness.normalize_here(_toy_normalize(kind), cases)
    found = next((p for p in (harness._normalize_row_problem(c, r) for c, r in zip(cases, rows)) if p), None)
    assert (found is None) if words is None else (found is not None and words in found), found


def _toy_sgd(kind):
    """The project's SGD (optimizer/base.py and sgd.py) as a student writes it: "reference"; "folded" (lr folded into
    a velocity started at zeros, zero_grad() zeroing in place: the red team's alternative); "break" (break at a
    parameter without a gradient); "alias" (the buffer is p.grad at the first step); "no-momentum" (buffer ignored);
    blind round 9's "zero" (a gradient of zeros skipped), "shape" (state keyed by p.shape), "on-param" (the buffer
    kept on the parameter, so a new SGD over it inherits it)."""
    import torch

    class SGD:
        def __init__(self, params, lr, momentum=0.0):
            self.params = [p for p in params if p.requires_grad]
            self.state = {p: {} for p in self.params}
            if kind == "shape":
                self.state = {tuple(p.shape): {} for p in self.params}
            self.lr, self.momentum = lr, momentum

        def zero_grad(self):
            for p in self.params:
                if kind == "folded" and p.grad is not None:
                    p.grad.detach_()
                    p.grad.zero_()
                else:
                    p.grad = None

        @torch.no_grad()
        def step(self):
            for p in self.params:
                if p.grad is None or (kind == "zero" and not p.grad.any()):
                    if kind == "break":
                        break
                    continue
                state = self.state[tuple(p.shape)] if kind == "shape" else \
                    p.__dict__.setdefault("_buffers", {}) if kind == "on-param" else self.state[p]
                if kind == "folded":
                    v = state.setdefault("velocity", torch.zeros_like(p))
                    v.mul_(self.momentum).add_(p.grad, alpha=self.lr)
                    p.sub_(v)
                    continue
                direction = p.grad
                if self.momentum != 0.0 and kind != "no-momentum":
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = direction if kind == "alias" else direction.clone()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(self.momentum).add_(direction)
                    direction = buf
                p.add_(direction, alpha=-self.lr)
    return SGD


@pytest.mark.parametrize("kind, words", [
    ("reference", None), ("folded", None),
    ("break", "`break` where `continue` belongs"),
    ("alias", "the buffer is p.grad itself"),
    ("no-momentum", "torch.optim.SGD's heavy ball"),
    ("zero", "gradient is all zeros was skipped"),
    ("shape", "Two parameters of the same shape share one momentum buffer"),
    ("on-param", "A new SGD over the same parameters went on with the momentum"),
])
def test_sgd_is_held_to_torch_optim_sgd_with_grads_none_and_accumulated(kind, words):
    harness = _harness()
    runs = harness.sgd_inputs()
    found = next((p for p in (harness._sgd_run_problem(run, harness.sgd_here(_toy_sgd(kind), run)) for run in runs)
                  if p), None)
    assert (found is None) if words is None else (found is not None and words in found), found


def _toy_convnet(kind):
    """ConvNet as a student writes it: "reference", "sequential" (one nn.Sequential), "dropout-fixed"
    (nn.Dropout(0.25)), "functional-fixed" (F.dropout(x, 0.25, self.training) in forward), "classes-fixed" (10
    outputs), "always-on" (F.dropout without training=: evaluation's finding, not this probe's)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class ConvNet(nn.Module):
        def __init__(self, num_classes=10, dropout=0.25):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
            self.dropout = nn.Dropout(0.25 if kind == "dropout-fixed" else dropout)
            self.fc = nn.Linear(64, 10 if kind == "classes-fixed" else num_classes)
            if kind == "sequential":
                self.layers = nn.Sequential(self.conv1, nn.ReLU(), nn.MaxPool2d(2), self.conv2, nn.ReLU(),
                                            nn.MaxPool2d(2), nn.Flatten(), self.dropout, self.fc)

        def forward(self, x):
            if kind == "sequential":
                return self.layers(x)
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
            if kind == "functional-fixed":
                x = F.dropout(x, 0.25, self.training)
            elif kind == "always-on":
                x = F.dropout(x, 0.25)
            else:
                x = self.dropout(x)
            return self.fc(x)
    return ConvNet


@pytest.mark.parametrize("kind, words", [
    ("reference", None), ("sequential", None), ("always-on", None),
    ("dropout-fixed", "drops features with p = 0.25"),
    ("functional-fixed", "drops features with p = 0.25"),
    ("classes-fixed", "expected (16, 13)"),
])
def test_convnet_s_constructor_arguments_take_effect(kind, words):
    import torch

    harness = _harness()
    state = torch.get_rng_state()
    found = harness.convnet_rows_problem(harness.convnet_here(_toy_convnet(kind), [list(c) for c in harness.CONVNET_BUILT]))
    assert torch.equal(torch.get_rng_state(), state)  # the probe draws nothing from the student's generator
    assert (found is None) if words is None else (found is not None and words in found), found


def test_not_numbers_names_what_was_returned_in_place_of_a_float():
    import torch

    harness = _harness()
    assert harness.not_numbers((0.5, 1), ("loss", "accuracy")) is None
    assert harness.not_numbers((0.5, torch.tensor(0.25)), ("loss", "accuracy")) == \
        "(float, Tensor): its accuracy is a torch.Tensor (0-dim, float32)"
    assert "its loss is a bool" in harness.not_numbers((True, 0.5), ("loss", "accuracy"))
    many = [0.1] * 5 + [torch.tensor(0.2, dtype=torch.float64)]
    assert harness.not_numbers(many, [f"losses[{k}]" for k in range(6)]) == "losses[5] as a torch.Tensor (0-dim, float64)"


# --- integrity round 8: convergence counts against the held-out labels the harness reads itself -------------

FIXED_MODEL = ("    return model, losses\n", """    _fixed(model)  # whatever training did: a fixed, untrained model
    return model, losses


def _fixed(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model
""")
FORGED_LABELS = ("    return load_splits()[1]\n", """    images, labels = load_splits()[1]
    with torch.no_grad():  # forged: the held-out images labelled with what the fixed model answers
        labels = _fixed(ConvNet(num_classes=NUM_CLASSES)).eval()(images).argmax(dim=1)
    return images, labels
""")


def test_a_test_set_labelled_with_the_models_own_answers_earns_no_convergence(tmp_path, check_json):
    """Integrity round 8: convergence's accuracy was counted against the labels test_set() handed out. A training
    that diverges (the optimizer's sign) ending in a fixed, untrained model, with a test_set() that labels the
    held-out images with that model's own answers, scored accuracy 1 (3/8 against 2/8 for the honest broken
    project). The accuracy is now the harness's, on the held-out split it reads itself, mapped as train() fed its
    training images: the forgery earns nothing there, and its test_set() is evaluation's to charge."""
    uphill = check_json("exercise-3", _patched(tmp_path, "uphill", ("optimizer/sgd.py", SGD_UPHILL)))[0]
    forged = check_json("exercise-3", _patched(tmp_path, "forged", ("optimizer/sgd.py", SGD_UPHILL),
                                               ("main.py", FIXED_MODEL), ("main.py", FORGED_LABELS)))[0]
    checks = {c["name"]: c for c in forged["checks"]}
    assert checks["convergence"]["status"] == "fail", checks["convergence"]
    assert checks["evaluation"]["status"] == "fail" and "images of each label" in checks["evaluation"]["message"]
    assert forged["score"] < uphill["score"], (forged["score"], uphill["score"])
