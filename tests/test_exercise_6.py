"""exercise-6 (optimizers from scratch): the reference, torch.optim itself and a differently written
correct submission pass every check; patching torch.optim gains nothing; the template fails
clearly; the bugged variants are caught (validate); the two generic check-kind extensions judge right."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from conftest import REPO, one_fast_rest_slow, run_dldiy
from hypothesis import given, settings, strategies as st

from dldiy.graders.kinds import agreement, convergence
from dldiy.graders.course.folders import buggy_variants
from dldiy.graders.course.exercise import Check, load_exercise

ALTERNATIVE = REPO / "tests" / "submissions" / "exercise6_alternative.py"
FIRST_ORDER_CHECKS = ("gd", "momentum", "nesterov", "rmsprop", "adam", "weight-decay", "param-groups",
                      "state-dict", "grad-none")

# torch's own optimizers under the exercise's names; Newton (torch ships none) comes from the
# alternative submission so that the convergence checks, which run every optimizer, can run too.
TORCH_OPTIM = '''
import torch

class GD(torch.optim.SGD):
    def __init__(self, params, lr=1e-3, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)

class Momentum(torch.optim.SGD):
    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

class Nesterov(torch.optim.SGD):
    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)

RMSProp = torch.optim.RMSprop
Adam = torch.optim.Adam
'''


def cli_check(path: Path, *only: str) -> tuple[int, dict[str, dict]]:
    """`dldiy check exercise-6 PATH --json [--only ...]`, the real command: its exit status and checks by name."""
    args = ["check", "exercise-6", str(path), "--json"] + [a for name in only for a in ("--only", name)]
    result = run_dldiy(*args)
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


@pytest.fixture
def check6(check_json):
    """cli_check's answer, assessed in-process through the session's fork server (conftest.check_json)."""

    def check(path: Path, *only: str) -> tuple[int, dict[str, dict]]:
        report, code = check_json("exercise-6", path, *only)
        return code, {c["name"]: c for c in report["checks"]}

    return check


def no_accelerator() -> bool:
    import torch

    return not (torch.cuda.is_available() or (getattr(torch.backends, "mps", None) is not None
                                               and torch.backends.mps.is_available()))


def all_passed(checks: dict[str, dict]) -> bool:
    """Every check passed; parity may skip where this machine has no accelerator (a skip earns nothing,
    but it is no failure)."""
    return all(c["status"] == "pass" or (name == "parity" and c["status"] == "skip" and no_accelerator())
               for name, c in checks.items())


def newton_source() -> str:
    source = ALTERNATIVE.read_text()
    return "from torch.autograd.functional import hessian, jacobian\n" + source[source.index("class Newton"):]


def test_reference_passes_every_check():
    code, checks = cli_check(REPO / "reference" / "exercise-6")
    assert code == 0, checks
    assert all_passed(checks), {n: c["message"] for n, c in checks.items() if c["status"] != "pass"}
    assert len(checks) == len(load_exercise("exercise-6").checks)


def test_torch_optims_own_optimizers_handed_in_as_the_students_earn_nothing(tmp_path, check6):
    """Optimizers from scratch: five one-line subclasses of torch.optim's optimizers (their step inherited)
    scored full marks (integrity red team, round 13). The agreement checks compare with torch.optim itself,
    computed in the harness, so its numbers are right by construction; what it earns is nothing: every
    check of a first-order optimizer says whose step it is. Newton, the submission's own, keeps its check."""
    path = tmp_path / "optim.py"
    path.write_text(TORCH_OPTIM + newton_source())
    code, checks = check6(path)
    assert code != 0
    for name in FIRST_ORDER_CHECKS:
        assert checks[name]["status"] != "pass", name
        assert "inherited from torch.optim" in checks[name]["message"], checks[name]["message"]
    assert checks["newton-quadratic"]["status"] == "pass", checks["newton-quadratic"]["message"]


def test_a_correct_submission_written_differently_passes_every_check(check6):
    code, checks = check6(ALTERNATIVE)
    assert code == 0, {n: c["message"] for n, c in checks.items() if c["status"] != "pass"}
    assert all_passed(checks)


def test_patching_torch_optim_to_match_a_wrong_adam_gains_nothing(tmp_path, bugged, check6):
    """The submission makes torch.optim.Adam its own (bias correction missing), so the target its own
    child computes equals its values; the judge compares with the reference child's target."""
    wrong = (bugged("exercise-6", "adam-no-bias-correction") / "optim.py").read_text()
    path = tmp_path / "optim.py"
    path.write_text(wrong + "\ntorch.optim.Adam = Adam\n")
    code, checks = check6(path, "adam")
    assert code == 1
    assert checks["adam"]["status"] == "fail"
    assert "first at step 1" in checks["adam"]["message"]


# A hostile submission that rewrites, in its own process, what the harness's runs there send back: the
# parameters it reports are a right GD's trajectory from the same start (its own: torch.optim.SGD's step is
# forbidden from the student's code since round 13), while its own (wrong) GD
# moved the harness's tensors. The harness checks each reported trajectory against where its tensors
# are after the run (exercise-6's checked_rows): a forged record earns nothing.
FORGED_TRAJECTORY = '''
import torch as _torch
from dldiy.graders.sandbox import endpoint as _endpoint

_build = _endpoint.Local.build.__func__


class _RightGD(_torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @_torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad + group["weight_decay"] * p, alpha=-group["lr"])


def _forged(cls, endpoint, value, buffers, depth):
    result = _build(cls, endpoint, value, buffers, depth)
    if value.get("name") != "runs_here":
        return result
    harness = cls._modules[value["path"] + "::" + value["name"]]  # (the factory's code, graders/sandbox/localcode.py)
    make, runs = endpoint.decode(value.get("args", []), buffers, depth + 1)
    for run, done in zip(runs, result):
        start, clones, at = _torch.tensor(done["rows"][0], dtype=_torch.float64), [], 0
        for p in run["params"]:
            clones.append(start[at:at + p.numel()].reshape(p.shape).clone().requires_grad_())
            at += p.numel()
        done["rows"] = harness.one_run(_RightGD, clones, run["values"], run["loss"], run["steps"])["rows"]
    return result


_endpoint.Local.build = classmethod(_forged)
'''


def test_a_trajectory_forged_in_the_students_process_earns_nothing(tmp_path, bugged, check6):
    wrong = (bugged("exercise-6", "gd-ascent") / "optim.py").read_text()
    path = tmp_path / "optim.py"
    path.write_text(wrong + FORGED_TRAJECTORY)
    code, checks = check6(path, "gd")
    assert code != 0
    assert checks["gd"]["status"] != "pass"
    assert "not where the run's own record says" in checks["gd"]["message"], checks["gd"]["message"]


def test_the_template_fails_by_naming_what_to_implement(tmp_path, check6):
    result = run_dldiy("start", "exercise-6", str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr
    code, checks = check6(tmp_path / "work", "gd", "adam")
    assert code == 2
    assert "exercise-6: implement GD.step" in checks["gd"]["message"]
    assert "exercise-6: implement Adam.__init__" in checks["adam"]["message"]


@pytest.mark.slow  # tests/test_validate.py's validate of every exercise runs it too
def test_validate_catches_every_bugged_variant_as_its_manifest_says():
    result = run_dldiy("validate", "exercise-6", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    bugs = buggy_variants("exercise-6")
    assert len(bugs) >= 8
    assert f"{len(bugs)} bugged variant(s) caught as their manifests say" in " ".join(result.stdout.split())


# --- the generic extensions of two check kinds, judged in the parent without a child ------------

def _check(kind: str, **params) -> Check:
    return Check(name="c", kind=kind, probe="c", points=1, params=params)


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(2, 6), width=st.integers(1, 4), depart=st.data())
def test_agreement_names_the_first_step_where_a_trajectory_departs(steps, width, depart):
    k = depart.draw(st.integers(1, steps - 1))
    j = depart.draw(st.integers(0, width - 1))
    target = [[float(s + 10 * e) for e in range(width)] for s in range(steps)]
    values = [[v + (0.5 * (s - k + 1) if (s > k or (s == k and e >= j)) else 0.0) for e, v in enumerate(row)]
              for s, row in enumerate(target)]
    case = {"name": "traj", "shape": [steps, width]}
    check = _check("agreement", first=True, axes=["step", "entry"], rtol=1e-10, atol=1e-12)
    verdict = agreement.judge({"cases": [dict(case, values=values)]}, {"cases": [dict(case, values=target,
                                                                                        target=target)]}, check)
    assert verdict.status == "fail"
    assert f"first at step {k}, entry {j}:" in verdict.message
    same = agreement.judge({"cases": [dict(case, values=target)]}, {"cases": [dict(case, values=target)]}, check)
    assert same.status == "pass"


@settings(max_examples=30, deadline=None)
@given(finals=st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_convergence_with_runs_fails_on_the_first_run_that_misses_the_target(finals):
    check = _check("convergence", metric="loss", goal="min", target=0.5)
    runs = [{"name": f"run{i}", "loss": v, "steps": 10, "losses": [1.0, v]} for i, v in enumerate(finals)]
    verdict = convergence.judge({"runs": runs}, None, check)
    missing = [r["name"] for r in runs if not r["loss"] <= 0.5]
    assert verdict.status == ("fail" if missing else "pass")
    if missing:
        assert verdict.message.startswith(f"{missing[0]}: loss")
    nan_run = convergence.judge({"runs": runs + [{"name": "nan", "loss": math.nan, "steps": 3,
                                                  "losses": [1.0, math.nan]}]}, None, check)
    assert nan_run.status == "fail"
    assert convergence.judge({"runs": []}, None, check).status == "fail"


# --- the student-bug corpus and the correct-but-different solutions ------------------------------

ALTERNATIVES = sorted(p for p in (REPO / "alternatives" / "exercise-6").iterdir() if (p / "manifest.toml").is_file())


def _built(kind: str, name: str, tmp_path: Path) -> Path:
    import shutil

    from dldiy.graders.course.patch import apply

    folder = tmp_path / name
    shutil.copytree(REPO / "reference" / "exercise-6", folder)
    apply(folder, next((REPO / kind / "exercise-6" / name).glob("*.diff")).read_text())
    return folder


@pytest.mark.parametrize("alternative", one_fast_rest_slow([p.name for p in ALTERNATIVES]))
def test_a_correct_but_different_solution_gets_full_marks(alternative, tmp_path, check6):
    code, checks = check6(_built("alternatives", alternative, tmp_path))
    assert code == 0, {n: c["message"] for n, c in checks.items() if c["status"] != "pass"}


def test_the_corpus_is_at_least_twelve_realistic_bugs_beyond_the_original_fourteen_and_four_alternatives():
    bugs = buggy_variants("exercise-6")  # every one a bug.diff now (the original fourteen were copies)
    assert len(bugs) >= 14 + 12 and len(ALTERNATIVES) >= 4


@pytest.mark.parametrize("bug, check, words", [
    ("momentum-graph-in-state", "optimizer-contract", "holds an autograd graph"),
    ("momentum-buffer-aliases-grad", "optimizer-contract", "zero_grad(set_to_none=False)"),
    ("params-generator-consumed", "optimizer-contract", "optimizer got an empty parameter list"),
    ("rmsprop-lr-cached-in-init", "param-groups", "the second group's lr is ignored"),
    ("momentum-deck-form-lr-inside", "param-groups", "lr folded into the velocity"),
    ("buffers-on-cpu", "placement", "found at least two devices, meta and cpu"),
    ("adam-step-count-per-group", "optimizer-contract", "kept per group/optimizer, not per parameter"),
    ("weight-decay-from-constructor", "param-groups", "the second group's weight_decay is ignored"),
    ("skips-zero-gradients", "optimizer-contract", "A gradient of zeros is a gradient"),
])
def test_a_contract_bug_fails_one_check_with_a_message_naming_the_cause(bug, check, words, tmp_path, bugged, check6):
    code, checks = check6(bugged("exercise-6", bug))
    assert code == 1
    assert [n for n, c in checks.items() if c["status"] not in ("pass", "skip")] == [check], checks[check]["message"]
    assert words in checks[check]["message"]


def test_a_parameter_whose_first_gradient_comes_late_starts_its_own_step_count(bugged):
    """Issue 14: Adam's step count kept per group (or per optimizer) agrees with torch.optim.Adam while every
    parameter steps from the start; b, whose .grad is None for two steps, must then get the bias correction
    of its own step 1. The real command: the variant fails naming the optimizer, the parameter, the step,
    both values and the cause; the reference passes with that property checked; a bug that moves b while
    its .grad is None is grad-none's finding, not this property's (one bug, one deduction)."""
    code, checks = cli_check(bugged("exercise-6", "adam-step-count-per-group"), "optimizer-contract")
    message = checks["optimizer-contract"]["message"]
    assert code == 1 and checks["optimizer-contract"]["status"] == "fail", message
    assert message.startswith("Adam(") and "b's first gradient at step 3" in message
    assert "after step 3 (row 0: the start), b[0]: " in message and " instead of " in message
    assert "exactly Adam's with bias correction at t = 3" in message
    assert "the step count is kept per group/optimizer, not per parameter" in message
    assert "more propert" not in message  # W1, W2 and the other optimizers agree with torch.optim

    code, checks = cli_check(REPO / "reference" / "exercise-6", "optimizer-contract")
    assert code == 0 and checks["optimizer-contract"]["status"] == "pass", checks["optimizer-contract"]["message"]
    # (the message names the first and the last property checked: Newton's add_param_group, the last since blind
    # round 8 ran Newton through the contract too)
    assert "to 'Newton(lr=1.0).add_param_group()'" in checks["optimizer-contract"]["message"]

    code, checks = cli_check(bugged("exercise-6", "grad-none-as-zeros"), "optimizer-contract")
    assert code == 0, checks["optimizer-contract"]["message"]


def test_the_contract_kind_passes_without_violations_and_fails_naming_the_first():
    from dldiy.graders.kinds import contract

    check = _check("contract")
    assert contract.judge({"checked": ["a", "b"], "violations": []}, None, check).status == "pass"
    failed = contract.judge({"checked": ["a", "b"], "violations": ["a: wrong", "b: wrong"]}, None, check)
    assert failed.status == "fail" and failed.message.startswith("a: wrong") and "1 more" in failed.message
    assert contract.judge({"checked": [], "violations": []}, None, check).status == "fail"


# ---- expected.json: compact (issue 12), and the check seeds a slow check leaves out (issue 14) -----

def test_every_expected_json_holds_only_what_its_judge_reads_one_line_per_check_and_seed():
    import tomllib

    from dldiy.graders.course.exercise import exercise_ids
    from dldiy.graders.judge import compact_expectation

    folders = [load_exercise(e).folder for e in exercise_ids()] + [REPO / "tests" / "courses" / "mlp_numpy" / "exercises" / "mlp"]
    for folder in folders:
        text = (folder / "expected.json").read_text()
        kinds = {c["name"]: c["kind"] for c in tomllib.loads((folder / "spec.toml").read_text())["checks"]}
        recorded = json.loads(text)["checks"]
        measurements = [(check, m) for check, per_seed in recorded.items() for m in per_seed.values()]
        for check, measurement in measurements:
            assert compact_expectation(kinds[check], measurement) == measurement, (folder.name, check)
        # one line per check and seed: `   "<seed>": {...}`, each a whole measurement
        lines = [line.strip().rstrip(",").split(": ", 1)[1] for line in text.splitlines() if line.startswith('   "')]
        assert [json.loads(line) for line in lines] == [m for _, m in measurements], folder.name
        head = len(json.loads(text)) - 1  # exercise, seeds, torch, ...: a line each, as are the braces
        assert len(text.splitlines()) == head + 4 + sum(len(v) + 2 for v in recorded.values()), folder.name


def test_agreement_compact_keeps_the_target_and_judges_as_the_full_measurement():
    check = Check(name="c", kind="agreement", probe="c", points=1.0)
    full = {"cases": [{"name": "a", "shape": [2], "values": [1.0, 2.0], "target": [1.0, 2.0], "inputs": [9]},
                      {"name": "b", "shape": [1], "values": [3.0]}]}
    compact = agreement.compact(full)
    assert compact == {"cases": [{"name": "a", "shape": [2], "target": [1.0, 2.0]},
                                 {"name": "b", "shape": [1], "values": [3.0]}]}
    wrong = {"cases": [dict(full["cases"][0], values=[1.0, 2.5]), full["cases"][1]]}
    for measured, status in ((full, "pass"), (wrong, "fail")):
        assert agreement.judge(measured, compact, check).status == agreement.judge(measured, full, check).status == status


def test_a_slow_check_leaves_out_the_check_seeds_but_keeps_the_hidden_ones():
    from dldiy.graders.judge import tasks_for

    ex = load_exercise("exercise-6")
    slow, cheap = ex.check("rosenbrock"), ex.check("adam")
    assert not slow.check_seeds and cheap.check_seeds and len(ex.check_seeds) >= 6
    seeds = list(ex.seeds + ex.check_seeds)
    tasks = tasks_for(ex, [slow, cheap], seeds)
    assert {t.seed for t in tasks if t.check == "adam"} == set(seeds)
    assert {t.seed for t in tasks if t.check == "rosenbrock"} == set(ex.seeds)
    hidden = (ex.check_seeds[0], 5)  # a hidden seed drawn equal to a check seed still runs
    tasks = tasks_for(ex, [slow], seeds + [5], hidden)
    assert {t.seed for t in tasks} == set(ex.seeds) | set(hidden)


def test_the_structural_checks_run_at_one_public_seed_and_the_first_hidden_one():
    from dldiy.graders.judge import tasks_for

    ex = load_exercise("exercise-6")
    contract = ex.check("optimizer-contract")
    assert [t.seed for t in tasks_for(ex, [contract], list(ex.seeds + ex.check_seeds))] == [1]
    assert [t.seed for t in tasks_for(ex, [contract], list(ex.seeds) + [5, 9], (5, 9))] == [1, 5]
    # the other structural checks (each optimizer against itself) at another public seed: check's processes share them
    for name in ("weight-decay", "param-groups", "state-dict", "grad-none"):
        assert [t.seed for t in tasks_for(ex, [ex.check(name)], list(ex.seeds + ex.check_seeds))] == [42]
        assert [t.seed for t in tasks_for(ex, [ex.check(name)], list(ex.seeds) + [5, 9], (5, 9))] == [42, 5]


# ---- placement: the optimizers on the meta device; a value read there is no placement error -------

def test_placement_is_not_failed_by_a_value_read_on_the_meta_device(tmp_path, check6):
    """Adam's step count kept as a tensor beside its parameter and read with .item(): correct on a GPU,
    it cannot run on the meta device (no values). That optimizer is inconclusive, never a failure; the
    other optimizers decide, and a correct solution keeps its points."""
    source = (REPO / "reference" / "exercise-6" / "optim.py").read_text()
    old = ('            state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))\n'
           '        state["step"] += 1\n'
           '        m, s, t = state["exp_avg"], state["exp_avg_sq"], state["step"]\n')
    new = ('            state.update(step=torch.zeros((), dtype=p.dtype, device=p.device),\n'
           '                         exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))\n'
           '        state["step"] += 1\n'
           '        m, s, t = state["exp_avg"], state["exp_avg_sq"], state["step"].item()\n')
    assert source.count(old) == 1
    path = tmp_path / "optim.py"
    path.write_text(source.replace(old, new))
    code, checks = check6(path, "placement", "adam", "state-dict")
    assert code == 0, {n: c["message"] for n, c in checks.items()}
    assert {c["status"] for c in checks.values()} == {"pass"}


def test_placement_names_the_optimizer_and_the_line_where_a_cpu_buffer_meets_the_device(bugged, check6):
    """A velocity made with torch.zeros(p.shape, dtype=p.dtype) lives on the CPU: its first in-place update
    with a gradient on the device raises, as on a GPU (the meta device's in-place ops check devices as
    C++ does: graders/sandbox/torchfast.py), naming the optimizer and the student's line."""
    code, checks = check6(bugged("exercise-6", "buffers-on-cpu"), "placement")
    assert code == 1
    message = checks["placement"]["message"]
    assert checks["placement"]["status"] == "fail"
    assert "Momentum(" in message and "meta and cpu" in message and "(at optim.py:" in message, message


def test_a_cpu_hessian_behind_a_value_read_fails_placement_on_the_second_run(tmp_path, check6):
    """Newton reading a value (a condition checked with .item()) and building H on the CPU: the meta device
    stops at the read, so placement runs Newton again on a device with values, where the CPU matrix meets
    the parameters' device in the solve, as it did on an H100 (two alternatives of this repository, since
    fixed). The same read with H built from the gradients' own tensors passes."""
    source = (REPO / "reference" / "exercise-6" / "optim.py").read_text()
    old = ('        H = torch.cat([torch.cat([blocks[i][j].reshape(a, b) for j, b in enumerate(sizes)], dim=1)\n'
           '                       for i, a in enumerate(sizes)], dim=0)\n')
    assert source.count(old) == 1
    read = '        assert torch.isfinite(loss).item(), "the loss is not finite"\n'
    on_cpu = read + ('        H = torch.zeros(sum(sizes), sum(sizes), dtype=params[0].dtype)\n'
                     '        H.copy_(torch.cat([torch.cat([blocks[i][j].reshape(a, b) for j, b in enumerate(sizes)], dim=1)\n'
                     '                           for i, a in enumerate(sizes)], dim=0))\n')
    for new, status in ((on_cpu, "fail"), (read + old, "pass")):
        path = tmp_path / status / "optim.py"
        path.parent.mkdir()
        path.write_text(source.replace(old, new))
        _code, checks = check6(path, "placement")
        message = checks["placement"]["message"]
        assert checks["placement"]["status"] == status, message
        if status == "fail":
            assert "Newton(" in message and "second device with values" in message and "optim.py:" in message, message


@pytest.mark.parametrize("bug, own_check, run", [
    ("momentum-not-accumulated", "momentum", "Momentum(lr=0.003, momentum=0.9)"),
    ("newton-wrong-sign", "newton-quadratic", "Newton(lr=1.0)"),
    ("adam-step-zero-based", "adam", "Adam(lr=0.1, betas=(0.8, 0.9))"),
])
def test_an_optimizers_bug_is_charged_by_its_own_check_and_noted_by_the_convergence_checks(bug, own_check, run,
                                                                                           bugged, check6):
    """One bug, one deduction: rosenbrock and logistic run every optimizer; the run of the one whose own
    check failed is said in a note (what it reached), and does not cost those checks their point."""
    code, checks = check6(bugged("exercise-6", bug), own_check, "rosenbrock", "logistic")
    assert checks[own_check]["status"] == "fail", checks[own_check]
    rosenbrock = checks["rosenbrock"]
    assert rosenbrock["status"] == "pass" and rosenbrock["points"] == 1, rosenbrock
    assert "5 of 6 runs reach" in rosenbrock["message"], rosenbrock["message"]
    assert f"{run} does not reach it" in rosenbrock["message"], rosenbrock["message"]
    assert f"which check '{own_check}' charges already" in rosenbrock["message"], rosenbrock["message"]
    assert checks["logistic"]["status"] == "pass", checks["logistic"]


def test_a_run_that_fails_is_still_charged_where_its_own_check_passed():
    """charged_by only excuses the runs of one optimizer whose own check failed: with every other check
    passing, the same failing run fails the convergence check, naming it (and a run that raised says what
    it raised); two optimizers failing fail it too."""
    from dldiy.graders.kinds import convergence

    check = load_exercise("exercise-6").check("rosenbrock")
    runs = [{"name": "GD(lr=0.01)", "optimizer": "GD", "loss": 0.001, "steps": 400, "losses": [1.0, 0.001]},
            {"name": "Momentum(lr=0.003, momentum=0.9)", "optimizer": "Momentum", "loss": 1.3, "steps": 250,
             "losses": [4.0, 1.3]},
            {"name": "Newton(lr=1.0)", "optimizer": "Newton", "raised": "LinAlgError: singular (optim.py:80)"}]
    alone = dataclasses.replace(check, params={**check.params, "failed_checks": []})
    verdict = convergence.judge({"runs": runs}, None, alone)
    assert verdict.status == "fail" and verdict.message.startswith("Momentum(lr=0.003, momentum=0.9): loss 1.3")
    excused = dataclasses.replace(check, params={**check.params, "failed_checks": ["momentum"]})
    verdict = convergence.judge({"runs": runs}, None, excused)
    assert verdict.status == "fail" and verdict.message.startswith("Newton(lr=1.0): raised LinAlgError: singular (optim.py:80)")
    assert "which check 'momentum' charges already" in verdict.message
    assert convergence.judge({"runs": runs[:2]}, None, excused).status == "pass"
    # two optimizers failing with their own checks: the check fails too (one part noted, never several)
    both = dataclasses.replace(check, params={**check.params, "failed_checks": ["momentum", "newton-quadratic"]})
    verdict = convergence.judge({"runs": runs}, None, both)
    assert verdict.status == "fail" and "charges already" not in verdict.message, verdict.message


def test_a_run_whose_optimizer_fails_its_own_check_is_no_evidence_that_it_converges():
    """Integrity round 8's endpoint category: an optimizer whose steps are wrong reaches a target it knows (a step
    that jumps to Rosenbrock's (1, 1)) as easily as a right one. Its run's success is not credited: the check passes
    on the runs of optimizers whose own checks hold, and fails where every run that reaches the target is of an
    optimizer whose own check fails."""
    from dldiy.graders.kinds import convergence

    check = load_exercise("exercise-6").check("rosenbrock")
    runs = [{"name": "GD(lr=0.01)", "optimizer": "GD", "loss": 0.001, "steps": 400, "losses": [1.0, 0.001]},
            {"name": "Adam(lr=0.1)", "optimizer": "Adam", "loss": 0.0, "steps": 1, "losses": [4.0, 0.0]}]
    adam_wrong = dataclasses.replace(check, params={**check.params, "failed_checks": ["adam"]})
    verdict = convergence.judge({"runs": runs}, None, adam_wrong)
    assert verdict.status == "pass" and "1 of 2 runs reach" in verdict.message, verdict.message
    assert "not credited, their own checks failing: Adam(lr=0.1)" in verdict.message, verdict.message
    both_wrong = dataclasses.replace(check, params={**check.params, "failed_checks": ["adam", "gd"]})
    verdict = convergence.judge({"runs": runs}, None, both_wrong)
    assert verdict.status == "fail" and "none is credited" in verdict.message, verdict.message
    assert "GD(lr=0.01) ('gd')" in verdict.message and "Adam(lr=0.1) ('adam')" in verdict.message, verdict.message
    right = dataclasses.replace(check, params={**check.params, "failed_checks": []})
    assert convergence.judge({"runs": runs}, None, right).status == "pass"


STUBS = """

def _does_nothing(self, closure=None):
    return None


for _cls in (Momentum, Nesterov, RMSProp, Adam):
    _cls.step = _does_nothing
"""


def test_stubs_that_run_do_not_earn_what_the_other_optimizers_checks_hold(tmp_path, check6):
    """charged_by notes the parts of ONE optimizer whose own check failed. GD right and four optimizers
    whose step() does nothing: their own checks fail, and so do the contract and convergence checks (one
    part noted there would let every stub keep the points those checks hold for all five)."""
    from conftest import REPO

    path = tmp_path / "optim.py"
    path.write_text((REPO / "reference" / "exercise-6" / "optim.py").read_text() + STUBS)
    contracts = ("weight-decay", "param-groups", "state-dict", "grad-none", "optimizer-contract")
    code, checks = check6(path, "gd", "momentum", "nesterov", "rmsprop", "adam", *contracts, "rosenbrock", "logistic")
    assert checks["gd"]["status"] == "pass"
    for name in ("momentum", "nesterov", "rmsprop", "adam", *contracts, "rosenbrock", "logistic"):
        assert checks[name]["status"] == "fail" and checks[name]["points"] == 0, checks[name]
        assert "not charged again" not in checks[name]["message"] and "charges already" not in checks[name]["message"]


def test_the_contract_judge_charges_a_property_whose_part_passed_its_own_check():
    from dldiy.graders.kinds import contract

    check = load_exercise("exercise-6").check("weight-decay")
    measured = {"checked": ["GD(lr=0.1) = L2", "Momentum(lr=0.05) = L2", "Newton(lr=1.0) = L2", "Nesterov(lr=0.05) = L2"],
                "violations": ["Momentum(lr=0.05) = L2: departs", "Nesterov(lr=0.05) = L2: departs"]}
    only_momentum = dataclasses.replace(check, params={**check.params, "failed_checks": ["momentum", "newton-quadratic"]})
    verdict = contract.judge(measured, None, only_momentum)
    assert verdict.status == "fail" and verdict.message.startswith("Nesterov(lr=0.05) = L2: departs"), verdict.message
    assert "1 property of a part whose own check fails (momentum) fails too" in verdict.message
    one = {**measured, "violations": measured["violations"][:1]}
    verdict = contract.judge(one, None, only_momentum)
    assert verdict.status == "pass" and verdict.message.startswith("3 of 4 properties hold"), verdict.message
    # two parts failing with their own checks: this check fails too (one part noted, never several)
    both = dataclasses.replace(check, params={**check.params, "failed_checks": ["momentum", "nesterov"]})
    verdict = contract.judge(measured, None, both)
    assert verdict.status == "fail" and "not charged again" not in verdict.message, verdict.message


@pytest.mark.parametrize("stub", ["    return None", "    raise NotImplementedError('exercise-6: implement Adam.step')"])
def test_one_optimizer_left_out_is_charged_by_every_check_that_holds_it(stub, tmp_path, check6):
    """charged_by notes a part that is wrong, not one that is missing: Adam's step() doing nothing (its
    own check fails with a trajectory that never moves: `degenerate`) or raising NotImplementedError (its
    own check errors) leaves the contract and convergence checks that run Adam failing, as before."""
    from conftest import REPO

    path = tmp_path / "optim.py"
    path.write_text((REPO / "reference" / "exercise-6" / "optim.py").read_text()
                    + f"\n\ndef _stub(self, closure=None):\n{stub}\n\n\nAdam.step = _stub\n")
    code, checks = check6(path, "adam", "weight-decay", "state-dict", "rosenbrock")
    assert checks["adam"]["status"] in ("fail", "error"), checks["adam"]
    for name in ("weight-decay", "state-dict", "rosenbrock"):
        assert checks[name]["status"] in ("fail", "error") and checks[name]["points"] == 0, checks[name]
        assert "charges already" not in checks[name]["message"] and "not charged again" not in checks[name]["message"]


MATCHED_STEP = '''
match torch.optim.SGD.step:
    case object(__wrapped__=_torch_step):
        pass


class GD(Optimizer):
    """Gradient descent by torch.optim.SGD's own step, taken out of the run-time guard by a match pattern."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if ps:
                _torch_step(torch.optim.SGD(ps, lr=group["lr"], weight_decay=group["weight_decay"]))
        return loss


'''


def test_torchs_step_taken_out_of_its_guard_by_a_match_pattern_fails_gd(tmp_path, check6):
    """Integrity round 7: `match torch.optim.SGD.step: case object(__wrapped__=f)` at module level read the
    run-time guard's original through a class pattern, which the static scan's reflection test (ast.Attribute
    nodes only) never saw, and GD stepped with torch.optim.SGD's own step: gd passed, 14.5/14.5. The pattern's
    reads are now attribute reads to the scan: gd fails, naming the line."""
    source = (REPO / "reference" / "exercise-6" / "optim.py").read_text()
    start, end = source.index("class GD(_FirstOrder):"), source.index("class Momentum(_FirstOrder):")
    (tmp_path / "optim.py").write_text(source[:start] + MATCHED_STEP + source[end:])
    _, checks = check6(tmp_path / "optim.py", "gd")
    assert checks["gd"]["status"] == "fail", checks["gd"]
    assert "made with the attribute __wrapped__ (optim.py line" in checks["gd"]["message"], checks["gd"]["message"]


def test_newtons_contract_is_charged_by_optimizer_contract_and_a_step_that_raises_by_newton_quadratic_alone(
        tmp_path, bugged, check6):
    """Blind round 8: Newton writing p.data = new and Newton caching its parameters in __init__ passed every check
    (optimizer-contract ran the first-order optimizers only). Now each fails optimizer-contract, saying its cause;
    and a Newton whose step raises on two groups (blocks sized by len(p), the team's newton-len-size) is
    newton-quadratic's error alone, not charged again by the contract (one bug, one deduction)."""
    for bug, cause in (("newton-update-rebinds-data", "a view of x taken before it"),
                       ("newton-params-cached-in-init", "a list of parameters kept from __init__")):
        _code, checks = check6(bugged("exercise-6", bug), "optimizer-contract", "newton-quadratic")
        contract = checks["optimizer-contract"]
        assert contract["status"] == "fail" and contract["message"].startswith("Newton(lr=1.0)"), contract["message"]
        assert cause in contract["message"] and "more propert" not in contract["message"], contract["message"]
        assert checks["newton-quadratic"]["status"] == "pass", checks["newton-quadratic"]["message"]
    source = (REPO / "reference" / "exercise-6" / "optim.py").read_text()
    old = "        sizes = [p.numel() for p in params]\n"
    assert source.count(old) == 1
    path = tmp_path / "len" / "optim.py"
    path.parent.mkdir()
    path.write_text(source.replace(old, "        sizes = [len(p) for p in params]\n"))
    _code, checks = check6(path, "optimizer-contract", "newton-quadratic")
    assert checks["newton-quadratic"]["status"] in ("fail", "error"), checks["newton-quadratic"]
    assert checks["optimizer-contract"]["status"] == "pass", checks["optimizer-contract"]["message"]
