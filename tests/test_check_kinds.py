"""Each check kind's judge on small hand-made measurements, passing and failing (no child process)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dldiy.graders.kinds import check_kind
from dldiy.graders.course.exercise import Check
from dldiy.graders.judge import _combine
from dldiy.graders.report import CheckResult
from dldiy.graders.verdict import Verdict

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
nonzero = finite.filter(lambda v: abs(v) > 1e-2)
vectors = st.lists(nonzero, min_size=1, max_size=8)


def check(kind, **params):
    return Check(name=kind, kind=kind, probe=kind, points=1.0, params=params)


def judge(kind, measured, expected=None, **params):
    return check_kind(kind).judge(measured, expected, check(kind, **params))


def grad_blocks(analytic, numeric):
    return {"blocks": [{"name": "w", "shape": [len(numeric)], "analytic": list(analytic), "numeric": list(numeric)}]}


@given(vectors)
def test_gradcheck_passes_equal_gradients(g):
    assert judge("gradcheck", grad_blocks(g, g)).status == "pass"


@given(vectors)
def test_gradcheck_names_a_sign_error(g):
    v = judge("gradcheck", grad_blocks([-x for x in g], g))
    assert v.status == "fail" and "sign error" in v.message and "index (" in v.message


@given(vectors.filter(lambda g: len(g) >= 2), st.sampled_from([2.0, 20.0, 0.5]))
def test_gradcheck_names_a_constant_factor(g, c):
    v = judge("gradcheck", grad_blocks([c * x for x in g], g))
    assert v.status == "fail" and "constant" in v.message and f"{c:g}" in v.message


def test_gradcheck_reports_nan_and_the_worst_entry():
    v = judge("gradcheck", grad_blocks([1.0, float("nan")], [1.0, 2.0]))
    assert v.status == "fail" and "nan" in v.message and "(1,)" in v.message
    v = judge("gradcheck", grad_blocks([1.0, 2.0, 3.5], [1.0, 2.0, 3.0]))
    assert v.status == "fail" and "1 of 3" in v.message and "index (2,)" in v.message


def test_gradcheck_tolerates_finite_difference_noise():
    n = np.array([0.3, -1.2, 1e-9])
    assert judge("gradcheck", grad_blocks(n * (1 + 1e-9), n)).status == "pass"


def test_gradcheck_s_passing_relative_error_leaves_out_entries_that_are_zero():
    """softmax(...).sum() is 1 whatever Z: its gradient is 0, a finite difference reads ~4e-10, within atol. The
    relative error there, 4e-10 / 1e-8 = 0.04, said as the check's 'max rel. error' alarmed a blind red team
    (round 6, exercise-4) on a correct solution: it is said as an absolute error near 0 instead."""
    v = judge("gradcheck", grad_blocks([0.5, 2.5e-17, 0.0], [0.5 * (1 + 1e-9), -4.44e-10, 0.0]), atol=1e-8)
    assert v.status == "pass" and v.message.startswith("max rel. error 5e-10;"), v.message
    assert "within 4.4e-10 absolute" in v.message and "0.04" not in v.message, v.message
    assert judge("gradcheck", grad_blocks([0.5, 1.0], [0.5, 1.0])).message == "max rel. error 0"


def test_first_loss_reads_a_first_loss_within_the_tolerance_but_beyond_rounding_as_a_cause_before_the_update():
    """The sixth round's blind red team: statistics of all the images normalised the data; the first loss was 7e-5
    off (within rtol 1e-4), step 5 beyond it, and the message said 'the first loss matches ... the update differs'."""
    expected = {"steps": [0, 5], "losses": [2.32499, 2.26295]}
    off = judge("first_loss", {"steps": [0, 5], "losses": [2.32484, 2.2632], "n": 64}, expected, rtol=1e-4, atol=1e-6)
    assert off.status == "fail" and "before the first update" in off.message and "update differs" not in off.message
    same = judge("first_loss", {"steps": [0, 5], "losses": [2.32499 * (1 + 1e-7), 2.2632], "n": 64}, expected,
                 rtol=1e-4, atol=1e-6)
    assert same.status == "fail" and "The update differs" in same.message, same.message


def test_first_loss_says_a_part_probed_alone_once_the_losses_match_and_adds_it_where_they_do_not():
    expected = {"steps": [0, 5], "losses": [2.0, 1.0]}
    parts = [{"name": "batches()", "problem": "a pass ended after 3 minibatches"}]
    right = judge("first_loss", {"steps": [0, 5], "losses": [2.0, 1.0], "parts": parts}, expected)
    assert right.status == "fail" and "losses match" in right.message and "3 minibatches" in right.message
    wrong = judge("first_loss", {"steps": [0, 5], "losses": [3.0, 1.0], "parts": parts}, expected)
    assert wrong.status == "fail" and wrong.message.startswith("first loss") and "Also, batches()" in wrong.message
    assert judge("first_loss", {"steps": [0, 5], "losses": [2.0, 1.0]}, expected).status == "pass"
    # every failing part is said (exercise-3's Normalize, SGD, ConvNet beside batches()), in the order probed
    two = parts + [{"name": "SGD (optimizer/sgd.py)", "problem": "departs from torch.optim.SGD"}]
    both = judge("first_loss", {"steps": [0, 5], "losses": [2.0, 1.0], "parts": two}, expected)
    assert both.status == "fail" and both.message.index("batches() probed alone") < both.message.index(
        "Also, SGD (optimizer/sgd.py) probed alone does not: departs from torch.optim.SGD"), both.message


def trajectory(losses):
    return {"steps": list(range(len(losses))), "losses": list(losses), "n": 100}


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0.01, max_value=10), min_size=2, max_size=6))
def test_first_loss_passes_identical_and_locates_a_departure(losses):
    assert judge("first_loss", trajectory(losses), trajectory(losses)).status == "pass"
    moved = list(losses)
    moved[-1] *= 1.5
    v = judge("first_loss", trajectory(moved), trajectory(losses))
    assert v.status == "fail" and f"step {len(losses) - 1}" in v.message and "first loss matches" in v.message


@settings(max_examples=50)
@given(st.lists(st.floats(0.01, 10.0), min_size=2, max_size=6), st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=4),
       st.integers(0, 3), st.floats(0.01, 1.0))
def test_first_loss_judges_the_weights_train_returned_once_the_history_matches(losses, w, k, shift):
    """A loop one update short keeps the loss history and returns other weights: the returned weights
    ("final") must be the reference's, entry by entry; the same weights pass."""
    want = dict(trajectory(losses), final=list(w))
    assert judge("first_loss", dict(trajectory(losses), final=list(w)), want).status == "pass"
    moved = list(w)
    moved[k % len(w)] += shift
    v = judge("first_loss", dict(trajectory(losses), final=moved, updates=11), want)
    assert v.status == "fail" and "the loss history matches, but the weights train() returned" in v.message
    assert f"entry {k % len(w)}" in v.message and "after its 11 updates" in v.message
    assert judge("first_loss", trajectory(losses), want).status == "fail"  # no weights returned: not judged as right


def test_first_loss_judges_its_shorter_runs_once_the_main_trajectory_matches():
    """The spec's `runs` (a batch larger than the data): each run's losses against the reference's, with the
    run's configuration and hint in the message; only once the main trajectory matches (said first)."""
    runs = [{"n_train": 3, "batch_size": 8, "steps": 3, "hint": "Always batch_size rows."}]
    want = dict(trajectory([1.0, 0.5]), runs=[{"config": "3 rows and batch_size 8", "losses": [2.0, 1.5, 1.2]}])
    assert judge("first_loss", want, want, runs=runs).status == "pass"
    moved = dict(trajectory([1.0, 0.5]), runs=[{"config": "3 rows and batch_size 8", "losses": [2.0, 1.4, 1.2]}])
    v = judge("first_loss", moved, want, runs=runs)
    assert v.status == "fail" and "with 3 rows and batch_size 8 the loss at step 1" in v.message, v.message
    assert v.message.endswith("Always batch_size rows.") and v.details.get("diagnosed"), v.message
    raised = dict(trajectory([1.0, 0.5]), runs=[{"config": "3 rows and batch_size 8", "error": "IndexError: boom"}])
    v = judge("first_loss", raised, want, runs=runs)
    assert v.status == "fail" and "raised IndexError: boom" in v.message, v.message
    v = judge("first_loss", dict(moved, losses=[1.0, 0.7]), want, runs=runs)  # the main trajectory is said first
    assert v.status == "fail" and "step 1" in v.message and "batch_size 8" not in v.message, v.message


def test_first_loss_reads_a_sum_for_a_mean():
    v = judge("first_loss", trajectory([69.3, 50.0]), trajectory([0.693, 0.5]))
    assert v.status == "fail" and "first loss" in v.message and "sum where a mean" in v.message


def test_first_loss_says_nan():
    v = judge("first_loss", trajectory([0.69, float("nan")]), trajectory([0.69, 0.5]))
    assert v.status == "fail" and "nan" in v.message and "step 1" in v.message


def test_convergence_target_and_curve():
    ok = {"accuracy": 1.0, "steps": 300, "losses": [0.7, 0.1]}
    assert judge("convergence", ok, target=0.99).status == "pass"
    rising = {"accuracy": 0.4, "steps": 300, "losses": [0.7, 5.0, 50.0]}
    v = judge("convergence", rising, target=0.99)
    assert v.status == "fail" and "0.4" in v.message and "rises" in v.message
    flat = {"accuracy": 0.5, "steps": 300, "losses": [0.7, 0.7, 0.7]}
    assert "barely moves" in judge("convergence", flat, target=0.99).message
    nan = {"accuracy": 0.5, "steps": 300, "losses": [0.7, float("inf"), float("nan")]}
    assert "divergence" in judge("convergence", nan, target=0.99).message


def test_convergence_refuses_an_empty_loss_curve():
    """course6 trial (F16): a notebook loop that never appended its loss passed "accuracy 0.9875 after 0
    steps". A curve the measurement carries but left empty is degenerate: no point for it."""
    v = judge("convergence", {"accuracy": 0.99, "steps": 100, "losses": []}, target=0.9)
    assert v.status == "fail" and "recorded no loss" in v.message
    assert judge("convergence", {"accuracy": 0.99, "steps": 100}, target=0.9).status == "pass"  # no curve kept


def test_stability_needs_finite_and_correct_values():
    expected = {"cases": [{"name": "loss at -1000", "value": 1000.0}]}
    assert judge("stability", {"cases": [{"name": "loss at -1000", "value": 1000.0}]}, expected).status == "pass"
    v = judge("stability", {"cases": [{"name": "loss at -1000", "value": float("inf")}]}, expected)
    assert v.status == "fail" and "overflows" in v.message
    v = judge("stability", {"cases": [{"name": "loss at -1000", "value": 2000.0}]}, expected)
    assert v.status == "fail" and "factor 2" in v.message


@settings(max_examples=60, deadline=None)
@given(base=finite, extreme=finite)
def test_stability_judges_finiteness_only_where_another_check_charges_a_wrong_formula(base, extreme):
    """One bug, one deduction: the reference's `base` case is the spec's configuration (first-loss's).
    A submission right there is judged in full; one wrong there (a wrong formula, charged by the base
    check) is judged for finiteness only, and the verdict says which check charges it."""
    expected = {"cases": [{"name": "base", "value": 1.25, "base": True}, {"name": "at 1000", "value": 500.0}]}

    def measured(b, e):
        return {"cases": [{"name": "base", "value": b}, {"name": "at 1000", "value": e}]}

    right_base = judge("stability", measured(1.25, extreme), expected, base_check="first-loss")
    assert (right_base.status == "pass") == (abs(extreme - 500.0) <= 1e-8 + 1e-6 * 500.0)
    wrong = base if abs(base - 1.25) > 1e-3 else base + 1.0
    v = judge("stability", measured(wrong, extreme), expected, base_check="first-loss")
    if wrong != extreme:  # (equal values everywhere: a constant, below)
        assert v.status == "pass" and "first-loss charges" in v.message, v.message
    v = judge("stability", measured(wrong, float("inf")), expected, base_check="first-loss")
    assert v.status == "fail" and "overflows" in v.message  # finiteness is still this check's
    constant = judge("stability", measured(0.0, 0.0), expected, base_check="first-loss")
    assert constant.status == "fail" and "constant earns nothing" in constant.message  # a degenerate loss
    # `base` is read from the reference's cases only: a submission that marks its own case gains nothing
    forged = {"cases": [{"name": "base", "value": 1.25}, {"name": "at 1000", "value": 7.0, "base": True}]}
    assert judge("stability", forged, expected, base_check="first-loss").status == "fail"


def test_placement():
    assert judge("placement", {"input_device": "meta", "outputs": {"loss": "meta"}}).status == "pass"
    v = judge("placement", {"input_device": "meta", "outputs": {"loss": "cpu"}})
    assert v.status == "fail" and "loss" in v.message and "cpu" in v.message
    v = judge("placement", {"error": "RuntimeError: Tensor on device cpu is not on the expected device meta!"})
    assert v.status == "fail" and "device=" in v.message


def parity_measurement(cpu, accel, dtype="float32"):
    return {"device": "cuda (test)", "outputs": [{"name": "loss", "dtype": dtype, "shape": [len(cpu)],
                                                   "accel_device": "cuda:0", "cpu": cpu, "accel": accel}]}


def test_parity_skip_is_never_a_pass():
    v = judge("parity", {"skip": "no CUDA or MPS device"})
    assert v.status == "skip" and "no CUDA" in v.message


@given(st.lists(finite, min_size=1, max_size=5))
def test_parity_uses_assert_close_tolerances(values):
    assert judge("parity", parity_measurement(values, values)).status == "pass"
    shifted = [v + 1e-3 + 1e-5 * abs(v) for v in values]
    v = judge("parity", parity_measurement(values, shifted))
    assert v.status == "fail" and "loss differs" in v.message and "TF32 off" in v.message


def test_agreement_names_the_first_configuration_that_disagrees():
    expected = {"cases": [{"name": "stride 1", "shape": [2], "values": [1.0, 2.0]},
                          {"name": "stride 2", "shape": [2], "values": [0.0, 0.0], "target": [3.0, 4.0]}]}
    good = {"cases": [{"name": "stride 1", "shape": [2], "values": [1.0, 2.0]},
                      {"name": "stride 2", "shape": [2], "values": [3.0, 4.0]}]}
    assert judge("agreement", good, expected).status == "pass"
    bad = {"cases": [{"name": "stride 1", "shape": [2], "values": [1.0, 2.0]},
                     {"name": "stride 2", "shape": [2], "values": [-3.0, -4.0]}]}
    v = judge("agreement", bad, expected)
    assert v.status == "fail" and v.message.startswith("stride 2") and "sign error" in v.message


def test_a_failure_at_a_hidden_seed_withholds_its_values():
    c = Check(name="first-loss", kind="first_loss", probe="first_loss", points=3.0)
    verdicts = [(1, Verdict.passed("ok")), (7, Verdict.failed("expected 0.123456, measured 9.87", expected=0.123456))]
    result = _combine(c, verdicts, hidden=frozenset({7}))
    assert isinstance(result, CheckResult) and result.status == "fail" and result.points == 0
    assert "hidden seed" in result.message and "0.123456" not in result.message and not result.details


def test_a_public_failure_is_shown_before_a_hidden_one():
    c = Check(name="first-loss", kind="first_loss", probe="first_loss", points=3.0)
    verdicts = [(42, Verdict.failed("expected 1, measured 2")), (7, Verdict.failed("expected 3, measured 4"))]
    result = _combine(c, verdicts, hidden=frozenset({7}))
    assert result.message.startswith("seed 42: expected 1, measured 2")


def test_errors_outrank_failures_and_skips_earn_nothing():
    c = Check(name="x", kind="parity", probe="x", points=1.0)
    assert _combine(c, [(1, Verdict.failed("f")), (2, Verdict("error", "boom"))], frozenset()).status == "error"
    skipped = _combine(c, [(0, Verdict.skipped("no GPU"))], frozenset())
    assert skipped.status == "skip" and skipped.points == 0 and skipped.max_points == 1
    assert not math.isnan(skipped.points)


def test_a_degenerate_device_measurement_earns_nothing():
    """Issue 13: a parity or placement measurement with no outputs (a probe that claims a device and
    measures nothing) is a failure, never a pass."""
    from dldiy.graders.kinds import parity, placement

    check = type("Check", (), {"params": {}})()
    assert parity.judge({"device": "cuda (fake)", "outputs": []}, None, check).status == "fail"
    assert placement.judge({"input_device": "meta", "outputs": {}}, None, check).status == "fail"


def test_every_registered_kind_keeps_the_check_kind_contract():
    import inspect

    from dldiy.graders.kinds import KINDS, CheckKind

    for kind in KINDS:
        module = check_kind(kind)
        assert isinstance(module, CheckKind), kind
        assert isinstance(module.NEEDS_REFERENCE, bool), kind
        assert list(inspect.signature(module.judge).parameters)[:3] == ["measured", "expected", "check"], kind


def test_a_module_that_is_not_a_registered_kind_is_refused_by_name(tmp_path):
    import pytest

    from dldiy.graders.course.exercise import load_exercise_dir

    for name in ("judge", "plots", "runner", "gradchek"):
        with pytest.raises(KeyError, match="unknown check kind"):
            check_kind(name)
    import shutil
    from pathlib import Path

    folder = tmp_path / "exercise-1"
    shutil.copytree(Path(__file__).resolve().parent.parent / "exercises" / "exercise-1", folder)
    spec = folder / "spec.toml"
    spec.write_text(spec.read_text().replace('kind = "gradcheck"', 'kind = "judge"', 1))
    with pytest.raises(Exception, match="unknown check kind 'judge'"):
        load_exercise_dir(folder)


def test_every_module_written_as_a_kind_is_registered():
    """A kind module added without its registry line would never be reachable from a spec."""
    from pathlib import Path

    from dldiy.graders.kinds import KINDS

    graders = Path(__file__).resolve().parent.parent / "graders"
    written = {p for p in graders.rglob("*.py") if "\nNEEDS_REFERENCE" in p.read_text()}
    assert {p.stem for p in written} == set(KINDS)
    assert {p.parent.name for p in written} == {"kinds"}  # every kind lives in graders/kinds/


def test_a_ratio_reads_as_a_factor_or_a_sign_only_over_several_entries():
    """One number's measured/expected is always 'a constant': it names no factor (red team: 'a missing 1/n?'
    under a single hinge value)."""
    import numpy as np

    from dldiy.graders.verdict import array_ratio_hint

    assert array_ratio_hint(np.array([0.4]), np.array([1.0])) == ""
    assert "a sign error" in array_ratio_hint(np.array([-2.0]), np.array([2.0]))  # a sign is a sign
    assert "constant 2" in array_ratio_hint(np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert "a sign error" in array_ratio_hint(np.array([-1.0, -2.0]), np.array([1.0, 2.0]))


def test_a_loss_history_of_the_wrong_length_is_refused_before_it_is_read():
    """A stride-0 view of millions of entries crosses the wire in 8 bytes; turning it into Python floats
    cost the trusted harness 3 GB and a minute (red team A7): its length is checked first."""
    import torch

    from dldiy.graders.api import ApiError, expect_history

    class Unreadable:
        def __len__(self):
            return 5_000_000

        def __iter__(self):
            raise AssertionError("read before its length was checked")

    for losses in (Unreadable(), torch.zeros(1).expand(5_000_000)):
        with pytest.raises(ApiError, match="returned 5000000 losses for steps=11"):
            expect_history(losses, 11)
    assert expect_history(torch.arange(3.0), 3) == [0.0, 1.0, 2.0]


def test_a_check_deferring_to_a_passed_base_check_judges_its_values_whatever_the_specs_order():
    """stability exempts its values only when first-loss (its base_check) failed; judged after it even where
    the spec lists it first (red team A16: a loss() right only inside train())."""
    from types import SimpleNamespace

    from dldiy.graders.judge import judge
    from dldiy.graders.sandbox.runner import Outcome

    first = Check(name="first-loss", kind="first_loss", probe="first_loss", points=3.0,
                  params={"rtol": 1e-9, "atol": 1e-12})
    stab = Check(name="stability", kind="stability", probe="stability", points=1.0,
                 params={"base_check": "first-loss", "rtol": 1e-9, "atol": 1e-12})
    outcome = Outcome()
    outcome.results = {("first-loss", 1): {"measurement": {"steps": [0], "losses": [0.5]}},
                       ("stability", 1): {"measurement": {"cases": [{"name": "base", "value": 0.6}]}}}
    expected = {"first-loss": {"1": {"steps": [0], "losses": [0.5]}},
                "stability": {"1": {"cases": [{"name": "base", "value": 0.5, "base": True}]}}}
    report = judge(SimpleNamespace(id="x"), [stab, first], outcome, "s", expected)
    assert [c.name for c in report.checks] == ["stability", "first-loss"]
    status = {c.name: c.status for c in report.checks}
    assert status == {"first-loss": "pass", "stability": "fail"}, report.checks
    outcome.results[("first-loss", 1)] = {"measurement": {"steps": [0], "losses": [0.7]}}  # now first-loss fails
    status = {c.name: c.status for c in judge(SimpleNamespace(id="x"), [stab, first], outcome, "s", expected).checks}
    assert status == {"first-loss": "fail", "stability": "pass"}  # its base is first-loss's to charge


# --- a diagnosis only where the measurement shows its symptom (red team 2711) ------------------------

def _one_case(values, target, **extra):
    return ({"cases": [{"name": "g", "shape": [len(values)], "values": list(values), **extra}]},
            {"cases": [{"name": "g", "shape": [len(target)], "target": list(target)}]})


def test_agreement_reads_a_constant_ratio_with_the_factors_the_case_declares():
    factors = [{"ratio": 2.0, "says": "not capped at 1"}, {"ratio": 0.5, "says": "halved"}]
    measured, expected = _one_case([2.0, 4.0, -6.0], [1.0, 2.0, -3.0], factors=factors)
    v = judge("agreement", measured, expected)
    assert v.status == "fail" and v.message.endswith("The ratio measured/expected is 2 at every entry: not capped at 1.")
    assert v.details["diagnosed"] and "1/n for a mean" not in v.message
    # a constant ratio no declared factor explains: said plainly, no guess, the check's hint kept
    measured, expected = _one_case([3.0, 6.0, -9.0], [1.0, 2.0, -3.0], factors=factors)
    v = judge("agreement", measured, expected)
    assert v.message.endswith("The ratio measured/expected is 3 at every entry.") and not v.details["diagnosed"]
    # without declared factors, the generic reading as before
    measured, expected = _one_case([2.0, 4.0, -6.0], [1.0, 2.0, -3.0])
    assert "a missing or extra constant factor" in judge("agreement", measured, expected).message
    # a ratio that is not constant: no factor is read into it
    measured, expected = _one_case([2.0, 2.0, -3.0], [1.0, 2.0, -3.0], factors=factors)
    v = judge("agreement", measured, expected)
    assert "not capped" not in v.message and "2 of 3 entries agree" in v.message


def test_agreement_case_hints_replace_the_checks_hint_for_the_cases_they_name():
    hints = {"gradient of": "look at backward"}
    measured = {"cases": [{"name": "x: output", "values": [1.0]},
                          {"name": "x: gradient of w", "error": "backward raised RuntimeError: boom"}]}
    expected = {"cases": [{"name": "x: output", "values": [1.0]}, {"name": "x: gradient of w", "values": [2.0]}]}
    v = judge("agreement", measured, expected, case_hints=hints)
    assert v.status == "fail" and v.message == "x: gradient of w: backward raised RuntimeError: boom\nHint: look at backward"
    assert v.details["diagnosed"]  # the check's own hint is not added after it
    measured["cases"][0]["values"] = [5.0]  # the output differs: its case, with the check's own hint
    v = judge("agreement", measured, expected, case_hints=hints)
    assert v.message.startswith("x: output: differs") and "look at backward" not in v.message
    assert not v.details.get("diagnosed")


def test_agreement_a_cases_own_hint_replaces_the_checks_and_its_case_hints():
    # the harness's reading of what it measured (a trajectory off by 1e-9: float32 state) is the hint
    measured, expected = _one_case([1.0 + 1e-9], [1.0], hint="float32 state")
    v = judge("agreement", measured, expected, rtol=1e-12, atol=0.0, case_hints={"g": "the formula"})
    assert v.status == "fail" and v.message.endswith("\nHint: float32 state") and v.details["diagnosed"]
    measured, expected = _one_case([1.0], [1.0], hint="float32 state")  # agreeing: no hint, a pass
    assert judge("agreement", measured, expected).status == "pass"


def test_agreement_case_tolerances_tighten_the_cases_they_name_only():
    tight = [{"parts": ["softmax, ", "float64"], "rtol": 1e-12, "atol": 1e-15}]
    cases = [("softmax, float32", 1.0 + 1e-7), ("softmax, float64", 1.0 + 5e-9), ("cross_entropy, float64", 1.0 + 5e-9)]
    measured = {"cases": [{"name": n, "shape": [1], "values": [v]} for n, v in cases]}
    expected = {"cases": [{"name": n, "shape": [1], "target": [1.0]} for n, _ in cases]}
    v = judge("agreement", measured, expected, rtol=1e-5, atol=1e-7, case_tolerances=tight)
    assert v.status == "fail" and v.message.startswith("softmax, float64: differs")
    measured["cases"][1]["values"] = [1.0 + 1e-15]
    assert judge("agreement", measured, expected, rtol=1e-5, atol=1e-7, case_tolerances=tight).status == "pass"


def test_agreement_shows_a_short_vector_of_the_wrong_length_beside_the_expected_one():
    measured, expected = _one_case([4.0, 1.0], [4.0, 1.0, 0.0])
    assert judge("agreement", measured, expected).message == \
        "g: shape (2,), expected (3,): measured [4, 1], expected [4, 1, 0]"
    measured, expected = _one_case([4.0, 1.0] + [0.0] * 98, [4.0, 1.0, 0.0])
    assert judge("agreement", measured, expected).message.endswith(
        "measured [4, 1, 0, 0, 0, 0, 0, 0, ...] (100 values), expected [4, 1, 0]")


def _run(converged, errors, epochs, last, budget=100, updates=9):
    return {"converged": converged, "errors": errors, "n": 200, "updates": updates, "epochs": epochs,
            "budget": budget, "last": last}


def test_termination_tells_a_run_that_stopped_early_from_one_that_ran_out_of_budget():
    expected = {"converged": True, "bound": 450.0, "bound_text": "the bound 450"}
    v = judge("termination", _run(False, 0, 3, 2), expected)
    assert v.status == "fail" and v.message.startswith("stopped after 3 of the 100 epochs allowed (2 update(s) in the "
                                                       "last one, 9 in all)")
    assert "do separate the data (0 of 200 errors, recounted)" in v.message and "within the budget" not in v.message
    v = judge("termination", _run(False, 7, 3, 2), expected)
    assert "misclassify 7 of 200 training points (recounted)" in v.message and "separate" not in v.message
    # the whole budget run with 0 errors left: no "still misclassified", no guarantee recited
    v = judge("termination", _run(False, 0, 100, 9, updates=893), expected)
    assert v.message.startswith("ran all 100 epochs of its budget without an epoch counted free of mistakes") and \
        "misclassify none of the 200" in v.message
    # the whole budget with errors left: as before
    v = judge("termination", _run(False, 15, 100, 12, updates=1632), expected)
    assert v.message.startswith("no convergence within the budget of 100 epochs: 15 of 200") and "the bound 450" in v.message


def test_gradcheck_names_a_float32_output_only_where_the_block_fails():
    blocks = grad_blocks([1.0, 2.0], [1.3, 2.0])
    blocks["blocks"][0].update(name="softmax: Z", out_dtype="float32")
    v = judge("gradcheck", blocks)
    assert v.status == "fail" and "softmax returned float32 for these float64 inputs" in v.message
    assert v.details["diagnosed"]
    good = grad_blocks([1.0, 2.0], [1.0, 2.0])
    good["blocks"][0]["out_dtype"] = "float32"
    assert judge("gradcheck", good).status == "pass"  # the dtype is the invariants' business when values agree
    wrong = grad_blocks([1.0, 2.0], [1.3, 2.0])
    wrong["blocks"][0]["out_dtype"] = "float64"
    assert "returned" not in judge("gradcheck", wrong).message


def test_gradcheck_names_the_forward_where_its_own_output_is_not_finite():
    """A blind red team's tanh as (e^x - e^-x) / (e^x + e^-x): nan at x = 800, and the hand backward, right, is
    nan through it; the judge said "the hand-written gradient of Tanh is nan". Now it names the forward."""
    blocks = grad_blocks([1.0, float("nan")], [1.0, float("nan")])
    blocks["blocks"][0].update(name="Tanh: x (x 1x2, |x| up to 800)",
                               forward_nonfinite={"index": [0, 1], "value": float("nan"), "input": 800.0})
    v = judge("gradcheck", blocks)
    assert v.status == "fail" and v.details["diagnosed"], v.message
    assert v.message.startswith("the forward of Tanh returned nan at index (0, 1), where x = 800") and "tanh x =" in v.message
    assert "hand-written gradient" not in v.message
    # a finite forward: the hand gradient's own nan is named as before
    v = judge("gradcheck", grad_blocks([1.0, float("nan")], [1.0, 2.0]))
    assert "the hand-written gradient" in v.message and "forward" not in v.message


def test_gradcheck_judges_a_forward_s_values_before_any_gradient():
    """Blind round 8: a Softplus cut off to x beyond 10 had a hand backward right everywhere and a slope that finite
    differences cannot tell from sigmoid(x) beyond ~12: its values, against the harness's exact ones, each entry to
    its own tolerance (float64's rounding up to 20, F.softplus's 2.1e-9 beyond), fail the check, saying where."""
    from dldiy.graders.kinds.gradcheck import forward_values

    xs = [10.25, 15.5, 22.0]
    exact = [math.log1p(math.exp(x)) for x in xs]
    atol = [1e-14, 1e-14, 2.1e-9]
    cut = [10.25, 15.5, 22.0]  # the cut-off at 10: x itself
    block = {"name": "Softplus: x on a grid", "forward": forward_values(xs, cut, exact, atol, 1e-13, "cut off too early")}
    v = judge("gradcheck", {"blocks": [block, *grad_blocks([1.0], [1.0])["blocks"]]})
    assert v.status == "fail" and v.details["diagnosed"], v.message
    assert v.message.startswith("the forward of Softplus at x = 10.25 returned 10.25") and "2 of 3 values off" in v.message
    assert v.message.endswith("cut off too early")
    # torch's F.softplus (x itself beyond 20: 2.8e-10 off at 22) and an exact form pass
    softplus = [exact[0], exact[1], 22.0]
    ok = {"name": "Softplus: x on a grid", "forward": forward_values(xs, softplus, exact, atol, 1e-13)}
    assert judge("gradcheck", {"blocks": [ok, *grad_blocks([1.0], [1.0])["blocks"]]}).status == "pass"
    # a wrong number of values fails, saying so
    short = {"name": "Softplus: x", "forward": {**forward_values(xs, softplus, exact, atol, 1e-13), "values": [1.0]}}
    assert "returned 1 values where 3 were expected" in judge("gradcheck", {"blocks": [short]}).message


def test_first_loss_says_a_loss_the_harness_found_with_another_setting():
    """exercise-5's harness gives the first loss of its own network with each other activation ("alike"): a
    train() that does not pass `activation` on matches one, and the judge says so by its `why`."""
    why = "It is the first loss with activation='tanh': train() does not pass `activation` on"
    alike = [{"step": 0, "loss": 0.874141, "why": why}, {"step": 0, "loss": 0.5, "why": "relu"}]
    v = judge("first_loss", dict(trajectory([0.874141, 0.8]), alike=alike), trajectory([0.715895, 0.7]))
    assert v.status == "fail" and v.details["diagnosed"] and v.message.endswith(why), v.message
    assert "expected 0.715895, measured 0.874141" in v.message
    # another wrong first loss, matching no entry: the usual message
    v = judge("first_loss", dict(trajectory([0.9, 0.8]), alike=alike), trajectory([0.715895, 0.7]))
    assert why not in v.message and "The loss at initialisation differs" in v.message


def test_gradcheck_leaves_its_hand_gradient_hint_out_when_the_forward_raised():
    blocks = {"blocks": [{"name": "conv2d x", "error": "forward raised RuntimeError: boom", "raised_in": "forward"}]}
    v = judge("gradcheck", blocks)
    assert v.status == "fail" and v.details["diagnosed"] and "no gradient can be checked" in v.message
    blocks["blocks"][0].update(error="backward raised RuntimeError: boom", raised_in="backward")
    v = judge("gradcheck", blocks)
    assert v.message == "conv2d x: backward raised RuntimeError: boom" and not v.details.get("diagnosed")


def test_a_contract_failure_shows_the_fixed_hint_only_where_the_students_code_raised():
    """A property's own words are a diagnosis (what is wrong and why); the check's fixed hint, which names
    other parts of the contract, is added only to a failure that is the student's exception."""
    from dldiy.graders.kinds import contract

    check = Check(name="contract", kind="contract", probe="contract", points=1.0, hint="look at the contract")
    said = contract.judge({"checked": ["a"], "violations": ["a: the gradient tensor was replaced, not scaled"]}, None, check)
    raised = contract.judge({"checked": ["a"], "violations": ["a: raised RuntimeError: boom (x.py, line 3)"]}, None, check)
    assert "Hint:" not in _combine(check, [(1, said)], frozenset()).message
    assert _combine(check, [(1, raised)], frozenset()).message.endswith("\nHint: look at the contract")


def test_a_contract_part_may_be_charged_by_any_of_several_checks():
    """exercise-9's model inside the student's own train() is built from the model, the cell and the
    clipping: its property is noted, not charged, where any one of their checks failed, and charged where
    none did (or where only another check failed)."""
    from dldiy.graders.kinds import contract

    measured = {"checked": ["a", "ElmanRNN(params) inside train()"],
                "violations": ["ElmanRNN(params) inside train(): gave other losses"]}
    params = {"charged_by": {"ElmanRNN": ["rnn-agreement", "gradcheck", "clipping"]}}
    for failed, status in (([], "fail"), (["first-loss"], "fail"), (["gradcheck"], "pass"), (["clipping", "x"], "pass")):
        check = Check(name="invariants", kind="contract", probe="invariants", points=1.0,
                      params={**params, "failed_checks": failed})
        v = contract.judge(measured, None, check)
        assert v.status == status, (failed, v.message)
        if status == "pass":
            assert f"({failed[0]})" in v.message and "not charged again" in v.message, v.message


def test_an_invariants_part_whose_own_check_failed_is_noted_not_charged():
    """exercise-8's own CNN inside the student's train(): a violation whose `where` is that part's is a note
    where one of the checks named by charged_by failed, and a charge otherwise; other violations are charged."""
    from dldiy.graders.kinds import invariants

    part = {"where": "cnn_forward(params, x) inside your own train()", "what": "gave other losses"}
    other = {"where": "conv2d on a float32 batch", "what": "returned float64"}
    params = {"charged_by": {"cnn_forward": ["cnn-forward", "gradcheck"]}}

    def verdict(violations, failed):
        check = Check(name="invariants", kind="invariants", probe="invariants", points=1.0,
                      params={**params, "failed_checks": failed})
        return invariants.judge({"probed": ["a", "b"], "violations": violations}, None, check)
    assert verdict([part], []).status == "fail"
    v = verdict([part], ["gradcheck"])
    assert v.status == "pass" and "not charged again" in v.message and "(gradcheck)" in v.message, v.message
    v = verdict([part, other], ["cnn-forward"])
    assert v.status == "fail" and v.message.startswith("conv2d on a float32 batch") and "note:" in v.message, v.message


def test_a_gradcheck_block_may_ask_for_relative_agreement_alone():
    """exercise-5's Softplus tail: a derivative of ~1e-18 computed as 0 is within the check's atol, but a
    block with atol 0 fails it, and a right value there (relative error ~1e-10) passes."""
    from dldiy.graders.kinds import gradcheck

    check = Check(name="g", kind="gradcheck", probe="g", points=1.0, params={"rtol": 1e-5, "atol": 1e-7})
    tail = {"name": "Softplus: x = -40", "shape": [1], "numeric": [4.248354255291589e-18]}
    assert gradcheck.judge({"blocks": [dict(tail, analytic=[0.0])]}, None, check).status == "pass"
    assert gradcheck.judge({"blocks": [dict(tail, analytic=[0.0], atol=0.0)]}, None, check).status == "fail"
    right = dict(tail, analytic=[4.2483542552915e-18], atol=0.0)
    assert gradcheck.judge({"blocks": [right]}, None, check).status == "pass"


def test_agreement_with_parts_charges_each_failing_function_its_share_over_every_seed():
    """exercise-4's torch-agreement covers five functions: one wrong op costs its fifth, not the whole check
    (one bug, one deduction); the functions failing at any seed are charged (their union), an error takes all."""
    names = ["softmax, n=2", "softmax, n=1", "l1_loss, n=2", "l2_loss, n=2"]
    expected = {"cases": [{"name": n, "shape": [1], "values": [1.0]} for n in names]}

    def measured(*wrong):
        return {"cases": [{"name": n, "shape": [1], "values": [2.0 if n in wrong else 1.0]} for n in names]}
    c = Check(name="torch-agreement", kind="agreement", probe="torch_agreement", points=3.0,
              params={"parts": ["softmax", "l1_loss", "l2_loss"]})
    agree = check_kind("agreement").judge(measured(), expected, c)
    assert agree.status == "pass"
    one = check_kind("agreement").judge(measured("softmax, n=1"), expected, c)
    assert one.status == "fail" and one.details["parts_failed"] == ["softmax"] and one.message.startswith("softmax, n=1")
    assert "1 of 3 (softmax) disagree" in one.message and "l1_loss, l2_loss agree" in one.message
    two = check_kind("agreement").judge(measured("l2_loss, n=2", "softmax, n=2"), expected, c)
    assert two.details["parts_failed"] == ["softmax", "l2_loss"] and "\nAlso l2_loss: l2_loss, n=2: differs" in two.message
    assert _combine(c, [(1, one), (2, agree)], frozenset()).points == 2.0
    other = check_kind("agreement").judge(measured("l1_loss, n=2"), expected, c)
    result = _combine(c, [(1, one), (2, other)], frozenset({2}))
    assert result.points == 1.0 and result.details["parts_failed"] == ["softmax", "l1_loss"]
    assert _combine(c, [(1, one), (2, Verdict("error", "boom"))], frozenset()).points == 0.0
    # a case of no declared part fails the whole check, as a check without parts does
    unparted = {"cases": [*expected["cases"], {"name": "train, 3 steps", "shape": [1], "values": [1.0]}]}
    bad = {"cases": [*measured()["cases"], {"name": "train, 3 steps", "shape": [1], "values": [5.0]}]}
    verdict = check_kind("agreement").judge(bad, unparted, c)
    assert verdict.status == "fail" and "parts_failed" not in verdict.details
    assert _combine(c, [(1, verdict)], frozenset()).points == 0.0
    plain = Check(name="hinge", kind="agreement", probe="hinge", points=2.0)
    assert _combine(plain, [(1, check_kind("agreement").judge(measured("softmax, n=1"), expected, plain))],
                    frozenset()).points == 0.0


def test_stability_judges_for_finiteness_alone_the_one_function_whose_own_check_charged_its_formula():
    """exercise-4: a BCE that applies the sigmoid twice is wrong everywhere (torch-agreement charges it), not
    unstable: its stability cases are judged for finiteness, the wrong values said in a note. Only where that
    check failed on that function; only one function; a value that is not finite still fails."""
    expected = {"cases": [{"name": "bce slope at 40", "value": 0.0, "part": "bce_with_logits"},
                          {"name": "ce shift", "value": 0.0, "part": "cross_entropy"}]}
    params = {"charged_by": {"bce_with_logits": "torch-agreement", "cross_entropy": "torch-agreement"},
              "failed_checks": ["torch-agreement"], "failed_parts": {"torch-agreement": ["bce_with_logits"]}}
    wrong = {"cases": [{"name": "bce slope at 40", "value": -1.0}, {"name": "ce shift", "value": 0.0}]}
    noted = judge("stability", wrong, expected, **params)
    assert noted.status == "pass" and "which check 'torch-agreement' charges already" in noted.message
    assert judge("stability", wrong, expected, **{**params, "failed_parts": {"torch-agreement": ["softmax"]}}).status == "fail"
    both = {**params, "failed_parts": {"torch-agreement": ["bce_with_logits", "cross_entropy"]}}
    assert judge("stability", wrong, expected, **both).status == "fail"
    assert judge("stability", {"cases": [{"name": "bce slope at 40", "value": None}, {"name": "ce shift", "value": 0.0}]},
                 expected, **params).status == "fail"
    assert judge("stability", {"cases": [{"name": "bce slope at 40", "value": 0.0}, {"name": "ce shift", "value": 1.0}]},
                 expected, **params).status == "fail"
