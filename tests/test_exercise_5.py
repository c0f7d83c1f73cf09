"""exercise-5: an equivalent MLP passes every check; logistic regression cannot do XOR in the same budget."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import REPO, run_dldiy
from test_exercise_4 import alternatives_of, full_marks_for_the_alternative
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.sandbox.submission import load_module_from

# Differs from the reference in incidental ways: einsum in Linear, backward passes recomputed from
# the saved *input* (sigmoid, tanh via 1/cosh^2, softplus' = 1/(1 + e^-x)), ReLU with torch.where,
# Xavier-uniform initialisation, torch's BCE on top of the hand-written layers, and a train() that
# zeroes the gradients in place before the backward rather than setting them to None. (Zeroing them after the
# update instead, as this file once did, lets a caller's leftover .grad into the first step: blind round 7.)
EQUIVALENT = '''
import torch
import torch.nn.functional as F


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, W, b):
        ctx.save_for_backward(X, W)
        return torch.einsum("ni,io->no", X, W) + b

    @staticmethod
    def backward(ctx, grad):
        X, W = ctx.saved_tensors
        return torch.einsum("no,io->ni", grad, W), torch.einsum("ni,no->io", X, grad), grad.sum(0)


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 1 / (1 + torch.exp(-x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = 1 / (1 + torch.exp(-x))
        return grad * (s - s * s)


class Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / torch.cosh(x) ** 2


class ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.where(x > 0, grad, torch.zeros_like(grad))


class Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.logaddexp(torch.zeros_like(x), x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + torch.exp(-x))


ACT = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "softplus": Softplus}


def init_params(sizes, generator):
    params = []
    for d_in, d_out in zip(sizes, sizes[1:]):
        bound = (6 / (d_in + d_out)) ** 0.5
        params.append((torch.rand(d_in, d_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound)
        params.append(torch.zeros(d_out, dtype=torch.float64))
    return params


def mlp_forward(X, params, activation="tanh"):
    h = X
    n_layers = len(params) // 2
    for layer in range(n_layers):
        h = Linear.apply(h, params[2 * layer], params[2 * layer + 1])
        if layer != n_layers - 1:
            h = ACT[activation].apply(h)
    return h


def loss(logits, y):
    return F.binary_cross_entropy_with_logits(logits.squeeze(1), y)


def train(X, y, params, lr, steps, activation="tanh"):
    losses = []
    for step in range(steps):
        value = loss(mlp_forward(X, params, activation), y)
        losses.append(value.item())
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
        value.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(lr * p.grad)
    return params, losses
'''


def checks_of(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_an_equivalent_implementation_passes_every_check(write_submission):
    result = run_dldiy("check", "exercise-5", str(write_submission(EQUIVALENT, "mlp.py")), "--json")
    checks = checks_of(json.loads(result.stdout))
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(checks, "pass"), result.stdout
    assert {"gradcheck-linear", "gradcheck-activations", "gradcheck-mlp", "coverage", "symmetry", "init-scale",
            "first-loss", "convergence", "mlp-forward", "invariants", "placement"} == set(checks)


def test_the_mlp_converges_on_xor_where_logistic_regression_with_the_same_budget_fails(write_submission, bugged,
                                                                                       check_json):
    exercise = load_exercise("exercise-5")
    p = exercise.check("convergence").params
    harness = load_module_from(exercise.harness_path, "_test_ex5_harness")
    for seed in exercise.seeds:
        X, y = harness.xor_blobs(seed, p["n"])
        w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        for _ in range(p["budget"]):  # logistic regression: same data, learning rate and budget
            value = torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, y)
            gw, gb = torch.autograd.grad(value, (w, b))
            with torch.no_grad():
                w -= p["lr"] * gw
                b -= p["lr"] * gb
        accuracy = ((X @ w + b >= 0).double() == y).double().mean().item()
        assert accuracy < 0.8 < p["target"], (seed, accuracy)  # no line does better than ~3 blobs of 4

    # Through the checks `dldiy check` runs (graders/assess.py): the MLP passes; the same network without
    # its non-linearity (a linear model, logistic regression in disguise) fails mlp-forward (train() is
    # judged with the harness's own network: one bug, one deduction), and says why.
    mlp = checks_of(check_json("exercise-5", write_submission(EQUIVALENT, "mlp.py"), "convergence")[0])["convergence"]
    assert mlp["status"] == "pass", mlp["message"]
    linear = checks_of(check_json("exercise-5", bugged("exercise-5", "no-nonlinearity"), "mlp-forward")[0])["mlp-forward"]
    assert linear["status"] == "fail" and "non-linearity" in json.dumps(linear), linear


def _inits():
    """init_params' weight matrices (d_in, d_out) by scheme: those a correct solution may use, and the
    mistakes init-scale must catch (a blind red team's: torch.rand for torch.randn, 1/sqrt(d_out))."""
    f64, init, tanh = torch.float64, torch.nn.init, torch.nn.init.calculate_gain("tanh")

    def randn(g, i, o):
        return torch.randn(i, o, generator=g, dtype=f64)

    def uniform(g, i, o, a):
        return (2 * torch.rand(i, o, generator=g, dtype=f64) - 1) * a

    def helper(fn, g, shape, **kw):  # torch.nn.init's helper on a tensor of this shape
        W = torch.empty(*shape, dtype=f64)
        fn(W, generator=g, **kw)
        return W

    correct = {
        "LeCun normal": lambda g, i, o: randn(g, i, o) / i ** 0.5,
        "He normal": lambda g, i, o: randn(g, i, o) * (2 / i) ** 0.5,
        "He uniform": lambda g, i, o: uniform(g, i, o, (6 / i) ** 0.5),
        "torch's default Linear init": lambda g, i, o: helper(init.kaiming_uniform_, g, (o, i), a=5 ** 0.5).T,
        "Glorot normal": lambda g, i, o: randn(g, i, o) * (2 / (i + o)) ** 0.5,
        "Glorot uniform": lambda g, i, o: uniform(g, i, o, (6 / (i + o)) ** 0.5),
        "Xavier normal, tanh's gain": lambda g, i, o: helper(init.xavier_normal_, g, (i, o), gain=tanh),
        "orthogonal": lambda g, i, o: helper(init.orthogonal_, g, (i, o)),
        "truncated normal": lambda g, i, o: helper(init.trunc_normal_, g, (i, o), std=i ** -0.5, a=-2 * i ** -0.5,
                                                   b=2 * i ** -0.5),
    }
    wrong = {
        "torch.rand / sqrt(d_in)": (lambda g, i, o: torch.rand(i, o, generator=g, dtype=f64) / i ** 0.5, "centred"),
        "|torch.randn| / sqrt(d_in)": (lambda g, i, o: randn(g, i, o).abs() / i ** 0.5, "centred"),
        "N(0, 1/d_out)": (lambda g, i, o: randn(g, i, o) / o ** 0.5, "fan-in"),
        "kaiming_normal_ on (d_in, d_out): 2/d_out": (lambda g, i, o: helper(init.kaiming_normal_, g, (i, o)), "fan-in"),
        "kaiming_uniform_(a=sqrt 5) on (d_in, d_out): 1/(3 d_out)": (
            lambda g, i, o: helper(init.kaiming_uniform_, g, (i, o), a=5 ** 0.5), "fan-in"),
        "N(0, 1)": (lambda g, i, o: randn(g, i, o), "fan-in"),
        "N(0, 1/d_in^2)": (lambda g, i, o: randn(g, i, o) / i, "fan-in"),
        # a fixed scale, the common "0.1 * randn": inside the bounds on 32 -> 256 -> 16 (0.32 and 2.56)
        "0.1 N(0, 1)": (lambda g, i, o: 0.1 * randn(g, i, o), "scaled alike"),
        "0.05 N(0, 1)": (lambda g, i, o: 0.05 * randn(g, i, o), "scaled alike"),
        "uniform(-0.1, 0.1)": (lambda g, i, o: uniform(g, i, o, 0.1), "scaled alike"),
    }
    return correct, wrong


def test_init_scale_passes_every_fan_in_init_and_fails_a_fan_out_or_positive_one_at_every_seed():
    # A blind red team's two misses of the init-scale check on [64, 64, 32]: torch.rand for torch.randn
    # (all weights positive, d_in * mean(W^2) = 1/3 like torch's default init) and 1/sqrt(d_out) (a factor 2 on
    # layers that differ by 2). On 32 -> 256 -> 16 with a centre test, over 200 seeds, no correct init loses the
    # point and every mistake does (harness.py's init_findings, the judgement init-scale's probe makes).
    exercise = load_exercise("exercise-5")
    p = exercise.check("init-scale").params
    harness = load_module_from(exercise.harness_path, "_test_ex5_init_harness")
    sizes, squares = list(p["sizes"]), list(p["width_sizes"])
    correct, wrong = _inits()

    def problems(draw, seed):
        g = torch.Generator().manual_seed(seed)
        weights = [draw(g, i, o) for i, o in zip(sizes[:-1], sizes[1:])]
        findings = harness.init_findings(sizes, weights, p["low"], p["high"], p["centre_z"])
        wide = [draw(g, i, o) for i, o in zip(squares[:-1], squares[1:])]
        findings += harness.width_findings(squares, wide, p["width_ratio"])
        return [f"{what}: {problem}" for what, problem in findings if problem]

    for seed in range(200):
        for name, draw in correct.items():
            assert not problems(draw, seed), (name, seed, problems(draw, seed))
        for name, (draw, what) in wrong.items():
            found = problems(draw, seed)
            assert any(what in f for f in found), (name, seed, found)
    # the causes, said where the figures show them, and only there
    rand, fan_out = problems(wrong["torch.rand / sqrt(d_in)"][0], 1), problems(wrong["N(0, 1/d_out)"][0], 1)
    assert "All weights positive: torch.rand draws from [0, 1); use torch.randn" in rand[0], rand
    assert "100.0% of its 8192 weights positive" in rand[0], rand
    assert "The variance follows d_out, not d_in" in fan_out[0] and "d_in * mean(W^2) = 16" in fan_out[0], fan_out
    assert not any("torch.rand" in f for f in fan_out) and not any("d_out, not d_in" in f for f in rand)
    fixed = problems(wrong["0.1 N(0, 1)"][0], 1)
    assert len(fixed) == 1 and "W1 (16 -> 16) and W3 (256 -> 256)" in fixed[0], fixed
    assert "on the 16-wide layer" in fixed[0] and "on the 256-wide one" in fixed[0] and "times apart" in fixed[0], fixed
    assert "a fixed scale (0.1 * torch.randn?) instead of 1/sqrt(d_in)" in fixed[0], fixed
    assert not any("fixed scale" in f for f in fan_out + rand)


def test_init_scale_fails_the_red_teams_rand_and_fan_out_inits_through_the_cli(bugged):
    # buggy/exercise-5/init-uniform-positive and init-fan-out, through the real `dldiy check`: the message names
    # the seed, the layer, what was measured and expected, and the one cause its figures show
    sizes = load_exercise("exercise-5").check("init-scale").params["sizes"]
    messages = {}
    for bug, words in (("init-uniform-positive", ["W1 (32 -> 256)", "centred on 0", "100.0% of its 8192 weights positive",
                                                  "All weights positive: torch.rand draws from [0, 1); use torch.randn"]),
                       ("init-fan-out", ["W2 (256 -> 16)", "scaled by its fan-in", "d_in * mean(W^2) = 16",
                                         "expected between 1/16 and 8", "The variance follows d_out, not d_in"])):
        result = run_dldiy("check", "exercise-5", str(bugged("exercise-5", bug)), "--only", "init-scale", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        (check,) = json.loads(result.stdout)["checks"]
        assert check["status"] == "fail" and check["points"] == 0, check
        assert check["message"].startswith("seed "), check["message"]
        assert f"init_params({sizes}, generator)" in check["message"], check["message"]
        assert all(w in check["message"] for w in words), (bug, check["message"])
        messages[bug] = check["message"]
    assert "follows d_out" not in messages["init-uniform-positive"] and "torch.rand draws" not in messages["init-fan-out"]


@pytest.mark.parametrize("alt", alternatives_of("exercise-5"))
def test_every_alternative_gets_full_marks(alt, tmp_path, check_json):
    full_marks_for_the_alternative("exercise-5", alt, tmp_path, check_json)


def test_a_value_kept_on_ctx_is_caught_by_the_function_contract(tmp_path, bugged, check_json):
    folder = bugged("exercise-5", "softplus-saves-input-on-ctx")
    c = checks_of(check_json("exercise-5", folder, "invariants")[0])["invariants"]
    assert c["status"] == "fail" and "save_for_backward" in c["message"], c


def test_float32_parameters_from_init_params_are_charged_to_the_spec_not_to_inputs(tmp_path, check_json):
    # red team 2711, bug-init-float32: init_params draws with torch's default dtype. The message used to
    # read "[0] is float32 for float64 inputs", though init_params has no input with a dtype; it names
    # the spec's rule, once for all the parameters.
    from test_exercise_4 import reference_with

    folder = reference_with("exercise-5", tmp_path, "mlp.py",
                            ("generator=generator, dtype=torch.float64)", "generator=generator)"),
                            ("torch.zeros(d_out, dtype=torch.float64)", "torch.zeros(d_out)"))
    c = checks_of(check_json("exercise-5", folder, "invariants")[0])["invariants"]
    assert c["status"] == "fail", c
    assert c["message"].startswith("init_params([3, 4, 2], generator): returned [0] (W1) is float32, [1] (b1) is "
                                   "float32"), c
    assert "the spec asks for float64 parameters" in c["message"], c
    assert "inputs" not in c["message"] and "more violation" not in c["message"], c


@pytest.mark.parametrize("edit, words", [
    ("        grad[x <= 0] = 0\n        return grad\n", "disagree"),  # silent: every index is one element
    ("        return grad.mul_((x > 0).to(grad.dtype))\n", "more than one element of the written-to tensor"),
])
def test_a_backward_that_writes_into_its_incoming_gradient_fails_gradcheck(edit, words, write_submission, check_json):
    """A blind red team's bugs: ReLU.backward writing into `grad` passed, as the harness always handed a fresh
    gradient. Through out.sum().backward() the incoming gradient is one value seen at every index: the
    write spoils it or raises, and gradcheck's expanded-gradient blocks say so (graders/batched.py)."""
    from conftest import REPO

    source = (REPO / "reference" / "exercise-5" / "mlp.py").read_text()
    old = "        return grad * (x > 0).to(grad.dtype)\n"
    assert source.count(old) == 1
    report = check_json("exercise-5", write_submission(source.replace(old, edit), "mlp.py"), "gradcheck-activations")[0]
    (check,) = report["checks"]
    assert check["status"] == "fail" and "ReLU: x" in check["message"] and words in check["message"], check["message"]
    assert "(an expanded incoming gradient)" in check["message"]


def test_a_layer_kept_in_a_registry_is_replaced_too_when_mlp_forward_is_judged_alone(bugged, check_json):
    """mlp_forward reads its activation from ACTIVATIONS = {"relu": ReLU, ...}, filled when the module ran:
    own_layers' swap by name left the student's ReLU there, so a ReLU.backward bug cost gradcheck-mlp as
    well as gradcheck-activations. The swap takes the registry's entry too, and puts it back after."""
    folder = bugged("exercise-5", "relu-mask-on-grad")
    report, _ = check_json("exercise-5", folder, "gradcheck-activations", "gradcheck-mlp", "coverage")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["gradcheck-activations"]["status"] == "fail" and "ReLU" in checks["gradcheck-activations"]["message"]
    assert checks["gradcheck-mlp"]["status"] == "pass", checks["gradcheck-mlp"]
    assert checks["coverage"]["status"] == "pass", checks["coverage"]


def test_backward_writing_into_the_callers_tensors_breaks_the_function_contract(tmp_path, bugged, check_json):
    """A blind red team's miss: Sigmoid.backward turning its saved output into y (1 - y) in place returns the
    right gradient (every gradient check passes) but overwrites the next layer's input. Checked where the
    student's code runs (the harness's copy of an output is its own graph's tensor). A backward writing
    into its incoming gradient is refused the same way; the reference's backward writes into neither."""
    report, _ = check_json("exercise-5", bugged("exercise-5", "sigmoid-backward-in-place"), "invariants")
    (check,) = report["checks"]
    assert check["status"] == "fail" and "Sigmoid's backward: backward changed forward's output in place" in check["message"]
    folder = tmp_path / "relu-writes-grad"
    shutil.copytree(REPO / "reference" / "exercise-5", folder)
    source = (folder / "mlp.py").read_text()
    right = "        return grad * (x > 0).to(grad.dtype)\n"
    assert right in source
    (folder / "mlp.py").write_text(source.replace(right, "        grad[x <= 0] = 0\n        return grad\n"))
    report, _ = check_json("exercise-5", folder, "invariants")
    (check,) = report["checks"]
    assert check["status"] == "fail" and "ReLU's backward: backward changed the incoming gradient" in check["message"]
    report, _ = check_json("exercise-5", REPO / "reference" / "exercise-5", "invariants")
    assert report["checks"][0]["status"] == "pass", report["checks"][0]


@pytest.mark.parametrize("bug, alone", [("linear-needs-grad-copypaste", "with only b requiring grad"),
                                        ("linear-dX-guard-W", "with only X requiring grad")])
def test_a_gradient_guarded_by_another_inputs_flag_is_caught_with_each_input_alone(bug, alone, bugged, check_json):
    """A blind red team's escapes: Linear.backward guarding db (or dX) by W's ctx.needs_input_grad. In an MLP
    every W, b and hidden X require grad together, so no gradient check sees it; invariants runs Linear with
    each input alone requiring grad (graders/batched.gradients_alone_here, as exercises 8 and 9 do)."""
    report, _ = check_json("exercise-5", bugged("exercise-5", bug), "invariants")
    (check,) = report["checks"]
    assert check["status"] == "fail" and alone in check["message"] and "needs_input_grad" in check["message"], check


@pytest.mark.parametrize("old, new, where", [
    # a blind red team's escapes (round 4 of exercises 4-6): CPU tensors made in a hand backward
    ("        return grad * y * (1 - y)\n", "        return grad * y * (torch.ones(y.shape, dtype=y.dtype) - y)\n",
     "Sigmoid's forward or backward"),
    ("        return grad * (x > 0).to(grad.dtype)\n",
     "        mask = torch.zeros(x.shape, dtype=grad.dtype)\n        mask[x > 0] = 1\n        return grad * mask\n",
     "ReLU's forward or backward"),
    ("    z = logits.reshape(-1)\n", "    z = logits.reshape(-1) + torch.zeros(logits.shape[0], dtype=logits.dtype)\n",
     "loss() or its backward"),
])
def test_placement_names_the_function_that_makes_a_tensor_on_another_device(old, new, where, tmp_path, check_json):
    from test_exercise_4 import reference_with

    report, _ = check_json("exercise-5", reference_with("exercise-5", tmp_path, "mlp.py", (old, new)), "placement")
    (check,) = report["checks"]
    assert check["status"] == "fail" and f"in {where}" in check["message"], check


def test_placement_judges_a_value_reading_backward_on_the_device_with_values(tmp_path, check_json):
    """A mask by boolean indexing and an overflow guard read with float(): the meta device stops there;
    placement runs again on the device with values, where the correct code passes."""
    from test_exercise_4 import reference_with

    folder = reference_with("exercise-5", tmp_path, "mlp.py", (
        "        return grad * (x > 0).to(grad.dtype)\n", "        g = grad.clone()\n        g[x <= 0] = 0\n        return g\n"), (
        "        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))\n",
        "        if float(x.abs().max()) < 30:\n            return torch.log1p(torch.exp(x))\n"
        "        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))\n"))
    report, _ = check_json("exercise-5", folder, "placement")
    (check,) = report["checks"]
    assert check["status"] == "pass" and "second device with values" in check["message"], check


def test_a_train_that_ignores_its_activation_is_told_so(tmp_path, check_json):
    """A blind red team's train() called mlp_forward(X, params) without `activation`: first-loss blamed "the
    loss formula, the labels or the data handling". Its first loss is the tanh network's (the default)."""
    from test_exercise_4 import reference_with

    folder = reference_with("exercise-5", tmp_path, "mlp.py", (
        "        value = loss(mlp_forward(X, params, activation), y)\n", "        value = loss(mlp_forward(X, params), y)\n"))
    report, _ = check_json("exercise-5", folder, "first-loss")
    (check,) = report["checks"]
    assert check["status"] == "fail" and "activation='tanh' (mlp_forward's default) instead of 'sigmoid'" in check["message"]
    assert "does not pass its `activation` argument on" in check["message"] and "data handling" not in check["message"]


def test_an_activation_whose_forward_overflows_is_blamed_on_its_forward(tmp_path, check_json):
    """A blind red team's tanh as (e^x - e^-x) / (e^x + e^-x): nan at |x| = 800, where gradcheck said the hand
    gradient was nan. The backward is right; the message names the forward's output."""
    from test_exercise_4 import reference_with

    folder = reference_with("exercise-5", tmp_path, "mlp.py", (
        "        y = torch.tanh(x)\n", "        y = (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))\n"))
    report, _ = check_json("exercise-5", folder, "gradcheck-activations")
    (check,) = report["checks"]
    assert check["status"] == "fail" and check["message"].startswith("the forward of Tanh returned nan"), check
    assert "Hint:" not in check["message"]


def test_relu_at_an_exact_zero_is_held_to_torchs_derivative_as_the_template_says(bugged, check_json):
    """The sixth round's blind red team: ReLU.backward with x >= 0 (gradient 1 at an exact 0, torch's relu 0) got
    full marks, the family's exact zeros being skipped for ReLU. The template's docstring says ReLU'(0) = 0, as
    torch, and gradcheck-activations holds the zeros there to 0 (a central difference reads 1/2 at the kink)."""
    from conftest import REPO

    assert "ReLU'(0) = 0, as torch" in (REPO / "exercises" / "exercise-5" / "template" / "mlp.py").read_text()
    report, _ = check_json("exercise-5", bugged("exercise-5", "relu-derivative-one-at-zero"), "gradcheck-activations")
    (check,) = report["checks"]
    assert check["status"] == "fail" and "ReLU: x (x 1x4, exact zeros)" in check["message"], check["message"]
    assert "expected (torch's ReLU'(0) = 0) 0" in check["message"] and "not x >= 0" in check["message"], check["message"]


@pytest.mark.parametrize("bug, check, words", [
    ("train-default-sigmoid", "invariants",
     "train() without `activation` gives losses [0.7"),
    ("mlp-forward-default-relu", "invariants", "mlp_forward() without `activation` gives ["),
])
def test_a_default_that_differs_from_the_spec_signature_is_said_in_words(bug, check, words, bugged, check_json):
    """Blind round 7: train()'s activation defaulting to 'sigmoid' (the spec: 'tanh') kept full marks, every
    check passing the activation. invariants calls each function whose spec signature has defaults without
    them and with them given (graders/kinds/invariants.py's keeps_defaults) and compares the two exactly."""
    report, _ = check_json("exercise-5", bugged("exercise-5", bug), check)
    (result,) = report["checks"]
    assert result["status"] == "fail" and words in result["message"], result["message"]
    assert "with activation='tanh' (the spec's default) it gives" in result["message"], result["message"]


def test_a_train_that_clears_the_gradients_after_the_update_is_caught_with_a_leftover_grad(bugged, check_json):
    """Blind round 7: gradients zeroed after each update instead of before each backward; params that arrive
    with a .grad (the caller's own backward) take a first step on that leftover plus their gradient."""
    report, _ = check_json("exercise-5", bugged("exercise-5", "train-clears-grads-after-update"), "first-loss")
    (result,) = report["checks"]
    assert result["status"] == "fail" and "a leftover .grad on each" in result["message"], result["message"]
    assert "Clear the gradients before each backward" in result["message"], result["message"]
