"""The `coverage` and `symmetry` check kinds, judged on hand-made measurements (no child, no torch)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from dldiy.graders.kinds import coverage, symmetry
from dldiy.graders.course.exercise import Check


def check(kind: str, **params) -> Check:
    return Check(name=kind, kind=kind, probe=kind, points=1, params=params)


def grad(norm: float, nonzero: int, size: int) -> dict:
    return {"norm": norm, "nonzero": nonzero, "size": size}


def params_measurement(grads: list) -> dict:
    return {"where": "one backward pass", "parameters": [
        {"name": f"p{i}", "shape": [g["size"] if g else 3], "grad": g} for i, g in enumerate(grads)]}


sizes = st.integers(1, 20)
healthy = sizes.flatmap(lambda n: st.builds(grad, st.floats(1e-6, 1e6), st.just(n), st.just(n)))


@settings(max_examples=25, deadline=None)
@given(st.lists(healthy, min_size=1, max_size=6))
def test_coverage_passes_when_every_parameter_has_a_nonzero_gradient(grads):
    verdict = coverage.judge(params_measurement(grads), None, check("coverage", min_nonzero_fraction=1.0))
    assert verdict.status == "pass", verdict.message


@settings(max_examples=25, deadline=None)
@given(st.lists(healthy, min_size=1, max_size=6), st.data())
def test_coverage_names_the_parameter_autograd_never_reached(grads, data):
    cut = data.draw(st.integers(0, len(grads) - 1))
    grads[cut] = None
    verdict = coverage.judge(params_measurement(grads), None, check("coverage"))
    assert verdict.status == "fail"
    assert f"p{cut} received no gradient" in verdict.message and ".detach()" in verdict.message


@settings(max_examples=25, deadline=None)
@given(st.lists(healthy, min_size=1, max_size=6), st.data(), st.sampled_from([0.0, float("nan"), None]))
def test_coverage_fails_on_a_zero_or_nonfinite_gradient(grads, data, bad_norm):
    i = data.draw(st.integers(0, len(grads) - 1))
    grads[i] = grad(bad_norm, 0, grads[i]["size"])
    verdict = coverage.judge(params_measurement(grads), None, check("coverage"))
    assert verdict.status == "fail" and f"p{i} (norm" in verdict.message


def test_coverage_min_nonzero_fraction_catches_a_partly_dead_parameter():
    m = params_measurement([grad(1.0, 4, 4), grad(0.5, 1, 8)])
    assert coverage.judge(m, None, check("coverage")).status == "pass"  # off by default
    verdict = coverage.judge(m, None, check("coverage", min_nonzero_fraction=0.5))
    assert verdict.status == "fail" and "p1 (1 of 8 entries non-zero)" in verdict.message


def symmetry_measurement(units: np.ndarray, name: str = "after 20 steps") -> dict:
    return {"snapshots": [{"name": name, "layers": [{"name": "hidden layer 1", "units": units.tolist()}]}]}


unit_matrices = st.tuples(st.integers(2, 10), st.integers(3, 30), st.integers(0, 2**32 - 1)).map(
    lambda a: np.random.default_rng(a[2]).normal(size=(a[0], a[1])))


@settings(max_examples=25, deadline=None)
@given(unit_matrices)
def test_symmetry_passes_distinct_units(units):
    verdict = symmetry.judge(symmetry_measurement(units), None, check("symmetry"))
    assert verdict.status == "pass", verdict.message


@settings(max_examples=25, deadline=None)
@given(unit_matrices, st.data())
def test_symmetry_fails_when_one_unit_copies_another(units, data):
    i, j = data.draw(st.lists(st.integers(0, len(units) - 1), min_size=2, max_size=2, unique=True))
    units[j] = units[i] + 1e-12  # equal up to rounding
    verdict = symmetry.judge(symmetry_measurement(units), None, check("symmetry"))
    assert verdict.status == "fail"
    copies = "all 2 units compute" if len(units) == 2 else "2 of"
    assert f"after 20 steps, hidden layer 1: {copies}" in verdict.message and "symmetry" in verdict.message
    assert symmetry.judge(symmetry_measurement(units), None, check("symmetry", max_identical=1)).status == "pass"


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 16), st.floats(-2, 2))
def test_symmetry_says_when_the_whole_layer_is_one_unit(h, constant):
    units = np.full((h, 12), np.tanh(constant))  # zero or constant initialisation
    verdict = symmetry.judge(symmetry_measurement(units, "at initialisation"), None, check("symmetry"))
    assert verdict.status == "fail"
    assert f"at initialisation, hidden layer 1: all {h} units compute the same function" in verdict.message


def test_identical_groups_groups_transitively_equal_units():
    units = np.array([[0.0, 1.0], [5.0, 5.0], [0.0, 1.0], [5.0, 5.0], [2.0, 3.0]])
    assert symmetry.identical_groups(units, rtol=1e-9, atol=1e-12) == [[0, 2], [1, 3]]
