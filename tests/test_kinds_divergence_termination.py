"""The divergence and termination check kinds, on hand-made measurements (no child, no torch)."""

import math

from hypothesis import given, strategies as st

from dldiy.graders.kinds import divergence, termination
from dldiy.graders.course.exercise import Check


def _check(kind, **params):
    return Check(name=kind, kind=kind, probe=kind, points=1.0, params=params)


def _run(losses=None, raised=None, steps=None, plain=None):
    measured = {"lr": 8.0, "limit": 0.8, "steps": steps if steps is not None else len(losses or []) or 150}
    if raised is not None:
        measured["raised"] = raised
    else:
        measured["losses"] = losses
    if plain is not None:
        measured["plain"] = plain
    return divergence.judge(measured, None, _check("divergence", growth=100))


# ---- divergence --------------------------------------------------------------------------------

def test_a_loss_that_overflows_is_divergence_and_passes():
    verdict = _run([4.0, 1e10, 1e200, math.inf, None])  # None: nan as JSON carries it
    assert verdict.status == "pass" and "divergence" in verdict.message and "step 3" in verdict.message


def test_a_history_cut_short_fails_saying_it_stopped_early():
    """The spec's train() returns one loss per step, inf and nan included (red team: a loop that breaks
    at the first non-finite loss)."""
    verdict = _run([4.0, 1e150, None], steps=150)
    assert verdict.status == "fail" and "returned 3 losses for steps=150: it stopped early" in verdict.message


def _with_more(run):
    """A float64 run that diverges as it should, with `run` (exercise-2's float32 run) beside it."""
    measured = {"lr": 8.0, "limit": 0.8, "steps": 3, "losses": [4.0, 1e200, math.inf], "more": [run]}
    return divergence.judge(measured, None, _check("divergence", growth=100))


def test_a_second_run_cut_short_or_raising_fails_naming_it():
    """exercise-2's float32 run turns nan within its 40 steps: a loop that stops at the first nan shows."""
    short = _with_more({"what": "float32, 40 steps", "steps": 40, "losses": [4.0] * 31})
    assert short.status == "fail" and "in float32, 40 steps, train() returned 31 losses" in short.message
    raised = _with_more({"what": "float32, 40 steps", "steps": 40, "raised": "ValueError: nan (linreg.py:9)"})
    assert raised.status == "fail" and "training raised ValueError" in raised.message


@given(nan_from=st.integers(1, 30), shift=st.integers(-1, 1))
def test_nan_recorded_as_inf_fails_and_a_loop_turning_nan_a_step_apart_passes(nan_from, shift):
    plain = [4.0] * (nan_from - 1) + [math.inf] + [math.nan] * (40 - nan_from)
    as_inf = [4.0] * (nan_from - 1) + [math.inf] * (41 - nan_from)
    verdict = _with_more({"what": "float32, 40 steps", "steps": 40, "losses": as_inf, "plain": plain})
    assert verdict.status == "fail" and f"recorded inf at step {nan_from} and after, where the loss is nan" in verdict.message
    k = max(1, nan_from + shift)  # its own rounding: inf and nan a step earlier or later
    own = [4.0] * (k - 1) + [math.inf] + [math.nan] * (40 - k)
    assert _with_more({"what": "float32, 40 steps", "steps": 40, "losses": own, "plain": plain}).status == "pass"


def _plain(first, ratio, steps):
    """Geometric growth as plain descent shows it above the limit, inf once it overflows (then nan)."""
    out, v = [], first
    for _ in range(steps):
        out.append(v if math.isfinite(v) else (math.inf if out and math.isfinite(out[-1]) else math.nan))
        v = v * ratio if math.isfinite(v) else v
    return out


@given(first=st.floats(1e-2, 1e2), ratio=st.floats(5.0, 400.0), steps=st.integers(20, 150),
       wobble=st.floats(-1e-9, 1e-9))
def test_a_loop_that_follows_plain_descent_to_overflow_passes(first, ratio, steps, wobble):
    plain = _plain(first, ratio, steps)
    losses = [v * (1 + wobble) for v in plain]  # rounding of another order of the same update
    assert _run(losses, plain=plain).status == "pass"


@given(first=st.floats(1e-2, 1e2), ratio=st.floats(5.0, 400.0), steps=st.integers(20, 150),
       cap_at=st.integers(3, 15))
def test_a_loop_that_caps_the_step_once_it_grows_fails_naming_the_step(first, ratio, steps, cap_at):
    plain = _plain(first, ratio, steps)
    if not math.isfinite(plain[cap_at]) or plain[cap_at] > 1e300:
        return  # (no finite step left to cap)
    capped = plain[:cap_at] + [plain[cap_at - 1] * 1.5] * (steps - cap_at)  # still growing past 100x, never inf
    verdict = _run(capped, plain=plain)
    assert verdict.status == "fail" and f"leaves it at step {cap_at}" in verdict.message
    assert "clamp" in verdict.message


F32_MAX = 3.4028234663852886e38


@given(first=st.floats(1e-2, 1e2), ratio=st.floats(100.0, 400.0))
def test_a_record_made_finite_where_plain_descent_overflows_fails_and_a_wider_dtype_does_not(first, ratio):
    """Blind round 8: torch.nan_to_num on each loss (inf as the dtype's largest number, nan as 0) reads as
    'growth beyond x100'; a loop that computes in a wider dtype grows on past the overflow (first-loss charges
    its dtype), and is not said to hide it. exercise-2's float32 run, 40 steps."""
    exact = [first * ratio ** k for k in range(40)]
    k = next(i for i, v in enumerate(exact) if v > F32_MAX)
    plain = exact[:k] + [math.inf] + [math.nan] * (39 - k)
    hidden = [v if math.isfinite(v) else (F32_MAX if math.isinf(v) else 0.0) for v in plain]
    verdict = _with_more({"what": "float32, 40 steps", "steps": 40, "losses": hidden, "plain": plain})
    assert verdict.status == "fail" and "records only finite losses" in verdict.message and "nan_to_num" in verdict.message
    wider = _with_more({"what": "float32, 40 steps", "steps": 40, "losses": exact, "plain": plain})
    assert "records only finite" not in wider.message


def test_weights_that_did_not_grow_beside_a_history_of_plain_descent_fail():
    """Blind round 8: train() returning the best weights seen (w0 above the stability limit) while its losses
    follow plain descent; where the weights grew as plain descent's, the same history passes."""
    plain = _plain(4.0, 300.0, 150)
    measured = {"lr": 8.0, "limit": 0.8, "steps": 150, "losses": plain, "plain": plain, "weights_grew": False}
    verdict = divergence.judge(measured, None, _check("divergence", growth=100))
    assert verdict.status == "fail" and "other weights than its last iterate" in verdict.message
    measured["weights_grew"] = True
    assert divergence.judge(measured, None, _check("divergence", growth=100)).status == "pass"


def test_a_loop_wrong_from_the_start_is_judged_by_its_growth_alone():
    """One bug, one deduction: a wrong update is first-loss's and convergence's to charge."""
    plain = _plain(4.0, 19.0, 150)
    assert _run(_plain(4.0, 30.0, 150), plain=plain).status == "pass"


def test_a_raise_fails_naming_the_exception_and_the_word_divergence():
    verdict = _run(raised="OverflowError: (34, 'Numerical result out of range') (linreg.py:12, in loss)")
    assert verdict.status == "fail"
    assert "OverflowError" in verdict.message and "divergence" in verdict.message
    assert "10 x the stability limit" in verdict.message


def test_an_empty_history_fails():
    assert _run([]).status == "fail"


@given(first=st.floats(1e-3, 1e3), ratio=st.floats(1.5, 10.0), steps=st.integers(30, 150))
def test_geometric_growth_is_divergence(first, ratio, steps):
    losses = [first * ratio ** k for k in range(steps)]
    losses = [v if v < 1e308 else math.inf for v in losses]
    assert _run(losses).status == "pass"


@given(st.lists(st.floats(0.0, 1e3), min_size=1, max_size=50))
def test_a_finite_history_that_does_not_grow_fails_with_the_word_divergence(tail):
    losses = [1e3] + tail  # never above 100 x the first loss
    verdict = _run(losses)
    assert verdict.status == "fail" and "no divergence" in verdict.message


# ---- termination -------------------------------------------------------------------------------

def _measure(converged, errors, updates=10, epochs=3, budget=100, n=200):
    return {"converged": converged, "errors": errors, "updates": updates, "epochs": epochs, "budget": budget,
            "n": n}


REFERENCE = {"converged": True, "bound": 50.0, "bound_text": "Novikoff's bound (R/gamma)^2 = 50"}
OVERLAP_REFERENCE = {"converged": False}


def test_converging_within_the_bound_passes_and_says_so():
    verdict = termination.judge(_measure(True, 0, updates=50), REFERENCE, _check("termination"))
    assert verdict.status == "pass" and "Novikoff" in verdict.message


def test_more_updates_than_the_bound_fails():
    verdict = termination.judge(_measure(True, 0, updates=51), REFERENCE, _check("termination"))
    assert verdict.status == "fail" and "51 update(s)" in verdict.message


def test_the_bound_is_read_from_the_reference_not_from_the_submission():
    measured = dict(_measure(True, 0, updates=80), bound=1e9, bound_text="a bound I made up")
    verdict = termination.judge(measured, REFERENCE, _check("termination"))
    assert verdict.status == "fail" and "made up" not in verdict.message


def test_not_converging_on_separable_data_fails():
    verdict = termination.judge(_measure(False, 7, epochs=100), REFERENCE, _check("termination"))
    assert verdict.status == "fail" and "7 of 200" in verdict.message and "50" in verdict.message


@given(should=st.booleans(), errors=st.integers(1, 200), updates=st.integers(0, 10**4))
def test_a_false_claim_of_convergence_always_fails(should, errors, updates):
    expected = REFERENCE if should else OVERLAP_REFERENCE
    verdict = termination.judge(_measure(True, errors, updates=updates), expected,
                                _check("termination", should_converge=should))
    assert verdict.status == "fail" and "claims convergence" in verdict.message


@given(errors=st.integers(0, 100), epochs=st.integers(1, 20))
def test_on_overlapping_data_not_claiming_convergence_passes(errors, epochs):
    verdict = termination.judge(_measure(False, errors, epochs=epochs, budget=20), OVERLAP_REFERENCE,
                                _check("termination", should_converge=False))
    assert verdict.status == "pass"


def test_on_overlapping_data_a_true_separation_is_still_not_expected():
    verdict = termination.judge(_measure(True, 0), OVERLAP_REFERENCE, _check("termination", should_converge=False))
    assert verdict.status == "fail"


def test_overlapping_data_that_the_reference_separates_is_the_instructors_error():
    verdict = termination.judge(_measure(False, 3), {"converged": True}, _check("termination", should_converge=False))
    assert verdict.status == "error" and "not the submission's fault" in verdict.message


def test_an_lr_rounded_to_float32_is_noted_where_the_trajectorys_check_charges_it():
    """exercise-2's lr made a float32 tensor inside train(): a precision bug of every training, which first-loss
    sees at its ordinary rate (the spec's charged_by = {lr32 = "first-loss"}). Above the stability limit it
    leaves plain descent by ~1e-8 and follows plain descent with lr rounded to float32: diagnosed, and only a note
    where first-loss failed (one bug, one deduction); charged here where it did not."""
    plain = [4.0 * 10.0 ** k for k in range(12)] + [math.inf, math.nan]
    lr32 = [v * (1 + 1e-9 * 10.0 ** k) if math.isfinite(v) else v for k, v in enumerate(plain)]
    measured = {"lr": 8.0, "limit": 0.8, "steps": len(plain), "losses": list(lr32), "plain": plain, "plain_lr32": lr32}
    params = {"growth": 100, "charged_by": {"lr32": "first-loss"}}
    alone = divergence.judge(measured, None, _check("divergence", **params))
    assert alone.status == "fail" and "follows plain descent with lr rounded to float32" in alone.message
    noted = divergence.judge(measured, None, _check("divergence", **params, failed_checks=["first-loss"]))
    assert noted.status == "pass" and "note: train() leaves plain gradient descent" in noted.message
    assert "which check 'first-loss' charges already" in noted.message
    other = divergence.judge(measured, None, _check("divergence", **params, failed_checks=["gradcheck"]))
    assert other.status == "fail"
