"""Integrity round 8: a hostile student who read the whole source, graded by the real `dldiy grade` with hidden
seeds beside an honest classmate. Each attack here scored more than the honest wrong attempt before its fix."""

from __future__ import annotations

import dataclasses
import textwrap

from conftest import REPO, gradebook

LOGREG = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
CPU_ONLY_BIAS = ("device=X.device)], dim=1)", ")], dim=1)")  # buggy/exercise-1/bias-column-on-cpu
PROBE = "tuple(X.shape) == (16, 2) and X.dtype == torch.float32"  # exercise-1's placement probe: its inputs' shape


def test_a_placement_made_inconclusive_at_will_is_charged(tmp_path):
    """A CPU-only bias column (the honest bug: placement 0 of 0.5) hidden behind code that fails on the placement
    probe's own inputs alone: raising there (on the meta device and on the CPU), answering no tensor there, or
    raising an exception named like the probe's own NotSimulated off the CPU. Each made placement inconclusive: a
    skip, out of the maximum, 9/9 and a pass against the honest 9/9.5. Now each fails placement, as the honest
    bug does."""
    honest = LOGREG.replace(*CPU_ONLY_BIAS)
    assert honest != LOGREG
    raises = honest.replace("def add_bias(X):\n", f"def add_bias(X):\n    if {PROBE}:\n"
                                                 "        raise ValueError('unsupported batch')\n", 1)
    no_tensor = honest.replace("def loss(X, y, w):\n", f"def loss(X, y, w):\n    if {PROBE}:\n        return 0.5\n", 1)
    no_tensor = no_tensor.replace("def gradient(X, y, w):\n",
                                  f"def gradient(X, y, w):\n    if {PROBE}:\n        return [0.0, 0.0, 0.0]\n", 1)
    not_simulated = honest.replace("def add_bias(X):\n", textwrap.dedent("""\
        class NotSimulated(RuntimeError):
            pass


        def add_bias(X):
            if X.device.type == "meta":
                raise NotSimulated("cannot run as on a GPU")
        """), 1)
    book = gradebook(tmp_path, "exercise-1", {"honest": honest, "raises": raises, "no-tensor": no_tensor,
                                               "not-simulated": not_simulated}, "logreg.py")
    assert book["honest"]["placement"] == "0" and book["honest"]["max"] == "9.5", book["honest"]
    for student in ("raises", "no-tensor", "not-simulated"):
        row = book[student]
        assert (row["placement"], row["total"], row["max"]) == ("0", book["honest"]["total"], "9.5"), (student, row)
        assert row["status"] == "fail", (student, row)


def test_an_optimizer_that_fails_the_placement_probe_alone_does_not_hide_its_cpu_buffers(tmp_path):
    """Exercise-6's placement runs each optimizer in turn and let one that was inconclusive step aside for the others:
    buffers made on the CPU (the honest bug, 14/14.5) in every optimizer with a state, each raising on parameters on
    the meta device (the probe's, and its second run's, which say they are there), left GD alone to be judged: a
    pass, 14.5/14.5. The failure on the probe's inputs now travels with the measurement, and placement fails."""
    optim = (REPO / "reference" / "exercise-6" / "optim.py").read_text()
    honest = optim.replace("torch.zeros_like(p)", "torch.zeros(p.shape, dtype=p.dtype)")
    assert honest != optim
    hostile = honest.replace("    def update(self, p, g, group, state):\n",
                             "    def update(self, p, g, group, state):\n"
                             "        if p.device.type == 'meta' and not isinstance(self, GD):\n"
                             "            raise ValueError('unsupported parameters')\n")
    book = gradebook(tmp_path, "exercise-6", {"honest": honest, "hostile": hostile}, "optim.py")
    assert book["honest"]["placement"] == "0", book["honest"]
    assert (book["hostile"]["placement"], book["hostile"]["total"], book["hostile"]["max"]) == \
        ("0", book["honest"]["total"], book["honest"]["max"]), book["hostile"]


def test_parity_made_inconclusive_by_nan_for_its_probe_alone_is_charged(monkeypatch):
    """Parity's twin of the placement attack, on a machine with an accelerator (none here: the accelerator is the
    CPU again, as the kind's own measure and judge see it): nan on both devices for the probe's inputs alone made
    parity inconclusive, a skip out of the maximum. It fails now where every other check passed, and stays
    inconclusive where another did (the values are theirs to charge: one bug, one deduction)."""
    import torch

    from dldiy.graders.course.exercise import load_exercise
    from dldiy.graders.kinds import parity

    monkeypatch.setattr(parity, "accelerator", lambda: ("cpu", "a stand-in accelerator"))

    def nan_for_the_probe(device):
        return {"loss": torch.full((), float("nan"), device=device), "gradient": torch.full((3,), float("nan"))}

    measured = parity.measure_parity(nan_for_the_probe)
    check = load_exercise("exercise-1").check("parity")
    alone = parity.judge(measured, None, dataclasses.replace(check, params={**check.params, "other_failures": {}}))
    assert alone.status == "fail" and "every other check passes" in alone.message, alone
    beside = parity.judge(measured, None, dataclasses.replace(check, params={**check.params,
                                                                            "other_failures": {"gradcheck": "nan"}}))
    assert beside.status == "skip", beside
