"""exercise-4 probes: inputs built from the seed, the submission called, plain numbers returned.
Torch's own ops (the `target`s) are computed here too, so in the reference's run they are measured
by an untampered child; the parent compares a student's values with them."""

import math

import numpy as np

import torch
import torch.nn.functional as F

from dldiy.graders.api import expect_history, expect_tensor, to_plain
from dldiy.graders.api import built_inside as _inside
from dldiy.graders.batched import Family, bound, call_all, call_each, function_blocks, with_gradient
from dldiy.graders.descent import follows_descent, probe_steps, train_result, weights_of
from dldiy.graders.data import SOFTPLUS_GAP, gaussian_blobs, seeded_once, softplus_grid
from dldiy.graders.kinds.first_loss import FLOAT32_REL
from dldiy.graders.kinds.invariants import Violation, Watch, keeps_rules, takes_every_step
from dldiy.graders.kinds.placement import placed_in_student, values_run_there


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _case(name, value, target=None):
    value = value.detach().double()
    case = {"name": name, "shape": list(value.shape) or [1], "values": to_plain(value.reshape(-1))}
    if target is not None:
        case["target"] = to_plain(target.detach().double().reshape(-1))
    return case


def _away_from_kink(g, n, dtype=torch.float64):
    """Offsets s with 0.2 <= |s| <= 1.5 and a random sign: 1 - t w = -s stays clear of the hinge's kink."""
    return (0.2 + 1.3 * torch.rand(n, generator=g, dtype=dtype)) * (2 * torch.randint(0, 2, (n,), generator=g) - 1)


def _spaced_logits(g, n, k, dtype=torch.float64):
    """Rows holding a permutation of 0, 0.7, 1.4, ... plus an offset: with margins 1 or 0.5 every
    m - z_y + max_{c != y} z_c stays >= 0.2 away from 0, and no two scores tie."""
    rows = [torch.randperm(k, generator=g).to(dtype) * 0.7 for _ in range(n)]
    return torch.stack(rows) + torch.randn(n, 1, generator=g, dtype=dtype)


def _layout(x, contiguous):
    """x itself, or the same values in a non-contiguous layout (a transposed copy, transposed back)."""
    if contiguous or x.dim() == 0:
        return x
    if x.dim() == 1:
        return torch.stack([x, x]).T[:, 0]  # stride 2
    return x.T.contiguous().T


def harness_strided(x):
    return _layout(x, False)


def _arg(sub, x, contiguous):
    """A copy of x for the submission, in the configuration's layout. A layout does not survive a
    copy to another process, so a non-contiguous one is built where the submission runs."""
    return x.clone() if contiguous else _inside(sub, harness_strided, x.clone())


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _family(rows):
    """The spec's family rows [n, (k,) dtype, layout, edge] with the dtype as a torch dtype and the
    layout as a flag: "contiguous" or "strided" (the same values in a non-contiguous layout)."""
    return [(*row[:-3], DTYPES[row[-3]], row[-2] == "contiguous", row[-1]) for row in rows]


def _words(n, k, dtype, contiguous, what):
    parts = [f"n={n}"] + ([f"k={k}"] if k else []) + [str(dtype).replace("torch.", "")]
    parts += [] if contiguous else ["non-contiguous inputs"]
    parts += [{"ties": "tied top scores", "all-equal": "all scores equal in each row",
               "one class": "every label the same class", "zeros": "exact zeros (z = 0, pred = target)",
               "far below": "every score near -2^40 = -1.1e12 (a constant standing in for -inf, such as -1e4 or -1e9, "
                            "is no longer below them: mask the gold class with float('-inf'))",
               "unlikely": "every gold class 30 to 100 below its row's best (probability < 1e-12)" if dtype == torch.float64
               else "every gold class 20 to 60 below its row's best (probability < 3e-9)"}[what]] if what else []
    return ", ".join(parts)


def _scores(g, n, k, dtype, what):
    """Logits Z (n, k) and labels y (n,) of one family configuration, built from the generator."""
    Z = 3 * torch.randn(n, k, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    if what == "ties":  # the two best scores of each row equal, the label on one of them half the time
        top = Z.max(dim=1).values + 1
        Z[:, 1], Z[:, 3] = top, top
        y[::2] = 3
    elif what == "all-equal":
        Z = torch.randn(n, 1, generator=g, dtype=torch.float64).expand(n, k).clone()
    elif what == "one class":
        y = torch.full((n,), k - 2, dtype=torch.int64)
    elif what == "far below":  # multiples of 1/8 shifted by -2^40: every score, sum and difference exact in float64
        Z = torch.round(Z * 8) / 8 - 2.0 ** 40
    elif what == "unlikely":  # p_y below 1e-12 (float32: 3e-9): -log(p_y + eps) or a clamp caps the loss at -log(eps)
        low, high = (30.0, 100.0) if dtype == torch.float64 else (20.0, 60.0)
        gap = low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)
        Z[torch.arange(n), y] = Z.max(dim=1).values - gap
    return Z.to(dtype), y


def _pairs(g, n, dtype, what):
    z = 4 * torch.randn(n, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=g).double()
    target = torch.randn(n, generator=g, dtype=torch.float64)
    if what == "zeros":
        z[::2] = 0.0
        target[1::2] = z[1::2]
    return z.to(dtype), y.to(dtype), target.to(dtype)


def _finish(name, value, target):
    value = expect_tensor(value, name)
    case = _case(name, value, target)
    if name.startswith("softmax,") and value.dtype == torch.float64 and value.dim() == 2:
        # every row of a float64 softmax sums to 1 within a few ulp (e / e.sum() with e = exp(z - max), whose sum
        # is at least 1): a row off by more was divided by something else than its sum
        off = float((value.detach().sum(dim=1) - 1).abs().max())
        if 1e-13 < off < 1e-3:
            case["hint"] = (f"Its rows sum to 1 within {off:.1g} only, where a float64 softmax's sum to 1 within "
                            "1e-15: divided by sum + eps (or a clamped sum)? After the row's maximum is subtracted "
                            "the sum is at least 1, so the division needs no eps: E / E.sum(dim=1, keepdim=True).")
    return case


def torch_agreement(sub, seed, p):
    """Each function against torch's op, charged per function (the spec's `parts`). One bug, one deduction:
    cross_entropy runs with the harness's softmax in place of the submission's (a cross-entropy built on a
    wrong softmax is softmax's to charge), and the arguments are copies (the in-place rule is invariants')."""
    g = _gen(seed)
    # the first configuration of each function alone, the rest in one message; cross_entropy's apart, run
    # where the name softmax is the harness's
    family, entropies = Family(sub, _finish, given_copies=True), Family(sub, _finish, given_copies=True)
    softmax = _inside(sub, harness_softmax)
    for n, k, dtype, contiguous, what in _family(p["scores"]):
        Z, y = _scores(g, n, k, dtype, what)
        words = _words(n, k, dtype, contiguous, what)
        family.add(f"softmax, {words}", "softmax", [_arg(sub, Z, contiguous)], torch.softmax(Z, dim=1),
                   dims={"n": n, "k": k})
        with sub.replaced("softmax", softmax):
            entropies.add(f"cross_entropy, {words}", "cross_entropy", [_arg(sub, Z, contiguous), _arg(sub, y, contiguous)],
                          F.cross_entropy(Z, y))
    for n, dtype, contiguous, what in _family(p["pairs"]):
        z, y, target = _pairs(g, n, dtype, what)
        words = _words(n, 0, dtype, contiguous, what)
        def c(x):
            return _arg(sub, x, contiguous)
        family.add(f"bce_with_logits, {words}", "bce_with_logits", [c(z), c(y)], F.binary_cross_entropy_with_logits(z, y))
        family.add(f"l1_loss, {words}", "l1_loss", [c(z), c(target)], F.l1_loss(z, target))
        family.add(f"l2_loss, {words}", "l2_loss", [c(z), c(target)], F.mse_loss(z, target))
    with sub.replaced("softmax", softmax):
        cases = entropies.run()
    return {"cases": family.run() + cases}


def harness_softmax():
    return _softmax


def _softmax(Z):
    """The harness's own softmax, which cross_entropy (and whatever else calls the name) is judged with: a
    wrong softmax costs softmax's share only. exp(z - max) / sum, no torch.softmax (the spec forbids it in
    the submission's softmax, and this runs beside the submission's code)."""
    E = (Z - Z.max(dim=1, keepdim=True).values).exp()
    return E / E.sum(dim=1, keepdim=True)


def harness_hinge():
    return _hinge


def _hinge(w, t):
    """The harness's binary hinge, which hinge_01 is judged with (a hinge_01 built on a wrong hinge is hinge's)."""
    return (1 - t * w).clamp(min=0).mean()


def hinge(sub, seed, p):
    # No torch.nn.functional op computes these (multi_margin_loss sums over the rivals and divides by
    # k; the course's multi-class hinge takes the best rival): compared with the reference's values.
    g = _gen(seed)
    # charged per function (the spec's `parts`); hinge_01 apart, run where the name hinge is the harness's (one
    # bug, one deduction), on copies (the in-place rule is invariants')
    family, zero_one = Family(sub, _finish, given_copies=True), Family(sub, _finish, given_copies=True)
    binary = _inside(sub, harness_hinge)
    for n, k, dtype, contiguous, what in _family(p["family"]):
        w = 2 * torch.randn(n, generator=g, dtype=torch.float64)
        t = (2 * torch.randint(0, 2, (n,), generator=g) - 1).double()
        if what == "ties":
            w[::2] = 0.0  # exact zeros: 1 - t w = 1
        if what == "one class":
            t = torch.ones(n, dtype=torch.float64)
        w, t = w.to(dtype), t.to(dtype)
        Z, y = _scores(g, n, k, dtype, what)
        words = _words(n, k, dtype, contiguous, what).replace("tied top scores", "tied top scores, scores w = 0")
        def c(x):
            return _arg(sub, x, contiguous)
        family.add(f"hinge, labels in {{-1, +1}}, {words}", "hinge", [c(w), c(t)])
        with sub.replaced("hinge", binary):
            zero_one.add(f"hinge_01, labels in {{0, 1}}, {words}", "hinge_01", [c(w), c((t + 1) / 2)])
        family.add(f"multiclass_hinge, default margin, {words}", "multiclass_hinge", [c(Z), c(y)])
        for margin in p["margins"]:
            family.add(f"multiclass_hinge, margin {margin}, {words}", "multiclass_hinge", [c(Z), c(y)], margin=margin)
    with sub.replaced("hinge", binary):
        cases = zero_one.run()
    return {"cases": family.run() + cases}


def gradcheck(sub, seed, p):
    """Each loss's Jacobian through autograd against central differences of its values, one message
    per function (graders/batched.py): the points and the differences are the harness's."""
    g = _gen(seed)
    n, k = 5, 4
    Z = torch.randn(n, k, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    t = (2 * torch.randint(0, 2, (n,), generator=g) - 1).double()
    w = t * (1 + _away_from_kink(g, n))
    pred = torch.randn(n, generator=g, dtype=torch.float64)
    target = pred + _away_from_kink(g, n)
    yb = torch.randint(0, 2, (n,), generator=g).double()
    S = _spaced_logits(g, n, k)
    f = sub.get

    def fn(name, *rest, **kwargs):
        return _inside(sub, bound, f(name), list(rest), kwargs)
    blocks = []
    blocks += function_blocks(sub, f("softmax"), [Z], ["softmax: Z"])
    blocks += function_blocks(sub, fn("cross_entropy", y), [Z], ["cross_entropy: Z"])
    blocks += function_blocks(sub, fn("bce_with_logits", yb), [Z[:, 0] * 3], ["bce_with_logits: z"])
    # and at z = 0 exactly (a zero-initialised model's logits), where the BCE is smooth (slope sigmoid(0) - y) but a
    # form with kinks there (max(z, 0) + log(1 + exp(-|z|))) gets autograd's subgradients: 1 - y (blind round 8)
    blocks += [dict(b, hint=BCE_AT_ZERO) for b in function_blocks(
        sub, fn("bce_with_logits", yb), [torch.zeros(n, dtype=torch.float64)],
        ["bce_with_logits: z = 0 exactly (a zero-initialised model's logits)"])]
    blocks += function_blocks(sub, fn("hinge", t), [w], ["hinge: w"])
    blocks += function_blocks(sub, fn("hinge_01", (t + 1) / 2), [w], ["hinge_01: w"])
    blocks += function_blocks(sub, fn("multiclass_hinge", y, margin=1.0), [S], ["multiclass_hinge: Z"])
    blocks += function_blocks(sub, f("l1_loss"), [pred, target], ["l1_loss: pred", "l1_loss: target"])
    blocks += function_blocks(sub, f("l2_loss"), [pred, target], ["l2_loss: pred", "l2_loss: target"])
    return {"blocks": blocks}


BCE_AT_ZERO = ("At z = 0 exactly the BCE is smooth: its slope is sigmoid(0) - y = 0.5 - y (per example, / n), and a model "
               "whose last layer starts at zero puts every logit there. max(z, 0) + log(1 + exp(-|z|)) has the right "
               "values, but autograd differentiates each kink by a subgradient of its own choosing (clamp(min=0), relu "
               "or torch.where's max(z, 0) gives 1 or 0 at z = 0, |z| gives 0): 1 - y or -y instead. Use a form that "
               "is smooth at 0: torch.logaddexp(z, torch.zeros_like(z)), or F.softplus(z).")


def _value_and_grad(value, grad, what, x):
    """A value and gradient computed beside the submission (graders/batched.value_and_gradient) as
    (float, float64 tensor): a value cut from the graph has a zero gradient."""
    value = expect_tensor(value, what, shape=(), finite=False)
    if grad is None:
        return value.item(), torch.zeros_like(x, dtype=torch.float64)
    return value.item(), expect_tensor(grad, f"the gradient of {what}", shape=tuple(x.shape), finite=False).double()


# Logits past the points where naive forms break: exp(z) overflows float64 beyond 709.8 (float32
# beyond 88.7), and 1 + exp(-z) rounds to 1 beyond z = 37 in float64 (17 in float32), so
# log(1 - sigmoid(z)) is log(0). Stability is judged against the function's own values at moderate
# inputs, not against the reference's values (a wrong formula is the agreement checks' business):
#   softmax and cross-entropy are shift-invariant: f(Z) = f(Z - M), every row's maximum being M;
#   far from 0, the BCE is linear in z with slope 1 - y (z > 0) or -y (z < 0).
# Rows: (words, dtype, M, Z (2, 4) whose rows all peak at M, y, [(z, y_b), ...], BCE step s).
EXTREMES = [
    ("float64, logits up to 1000", torch.float64, 1000.0, [[1000.0, -1000.0, 0.0, 500.0], [-1000.0, 1000.0, 999.0, 0.0]],
     [1, 2], [(40.0, 0.0), (-40.0, 1.0), (1000.0, 1.0), (-1000.0, 0.0)], 5.0),
    ("float64, logits up to 720", torch.float64, 720.0, [[720.0, 0.0, -720.0, 719.0], [719.5, 720.0, -720.0, 0.0]],
     [2, 0], [(720.0, 0.0), (-720.0, 1.0), (45.0, 1.0), (-45.0, 0.0)], 5.0),
    ("float32, logits up to 100", torch.float32, 100.0, [[100.0, 0.0, -100.0, 99.0], [99.5, 100.0, -100.0, 0.0]],
     [2, 0], [(25.0, 0.0), (-25.0, 1.0), (100.0, 0.0), (-100.0, 1.0)], 5.0),
]


def stability(sub, seed, p):
    """Per row of EXTREMES, every call in one message each for the values and the gradients
    (graders/batched.py): the differences and slopes are computed here."""
    cases = []
    softmax, bce, cross_entropy = sub.get("softmax"), sub.get("bce_with_logits"), sub.get("cross_entropy")
    harness_softmax_there = _inside(sub, harness_softmax)
    for words, dtype, M, Z, y, bce_points, s in EXTREMES:
        Z, y = torch.tensor(Z, dtype=dtype), torch.tensor(y)
        # rows whose maxima differ widely: a shift by the maximum of the whole matrix underflows a row to 0/0
        R = torch.stack([Z[0], Z[0] - 2 * M]) if M else Z
        steps = [(z, yb, s if z > 0 else -s) for z, yb in bce_points]
        calls = [[softmax, [A.clone()], {}] for A in (Z, Z - M, R, R - R.max(dim=1, keepdim=True).values)]
        calls += [[bce, [torch.tensor([v], dtype=dtype), torch.tensor([yb], dtype=dtype)], {}]
                  for z, yb, step in steps for v in (z, z - step)]
        # the BCE's own gradient at each extreme point (autograd, where the submission runs): exact, never
        # the nan that torch.where's untaken branch leaves (its gradient is inf * 0 there)
        grads_at = [torch.tensor([z], dtype=dtype) for z, _ in bce_points]
        calls += [[_inside(sub, with_gradient, bce), [x, torch.tensor([yb], dtype=dtype)], {}]
                  for x, (_, yb) in zip(grads_at, bce_points)]
        replies = call_all(sub, calls, f"softmax or bce_with_logits at extreme logits ({words})")
        # cross-entropy of rows whose maxima differ widely: a shift by the whole matrix's maximum loses a row. Run
        # where the name softmax is the harness's (one bug, one deduction: a cross-entropy built on a wrong softmax
        # is softmax's to charge; one built on -log(softmax) overflows with the harness's softmax too)
        calls = [[cross_entropy, [A.clone(), y], {}] for A in (R, R - R.max(dim=1, keepdim=True).values)]
        calls += [[_inside(sub, with_gradient, cross_entropy), [A, y], {}] for A in (Z, Z - M)]
        with sub.replaced("softmax", harness_softmax_there):
            replies += call_all(sub, calls, f"cross_entropy at extreme logits ({words})")
        P, P0, Q, Q0 = (expect_tensor(v, "softmax()", shape=(2, 4), finite=False).double() for v in replies[:4])
        n_bce = 2 * len(steps)
        at = [expect_tensor(v, "bce_with_logits()", shape=(), finite=False).item() for v in replies[4:4 + n_bce]]
        bce_grads = [_value_and_grad(*reply, "bce_with_logits()", x)[1]
                     for reply, x in zip(replies[4 + n_bce:4 + n_bce + len(bce_points)], grads_at)]
        ce_rows, ce_rows0 = (expect_tensor(v, "cross_entropy()", shape=(), finite=False).item()
                             for v in replies[-4:-2])
        (ce, ce_grad), (ce0, ce_grad0) = (_value_and_grad(*reply, "cross_entropy()", Z) for reply in replies[-2:])
        # each case's `part`: the function whose formula its value measures (stability's charged_by: a function
        # whose own check failed is judged here for finiteness alone)
        cases += [
            {"name": f"softmax(Z) - softmax(Z - {M:g}), largest entry ({words})", "value": (P - P0).abs().max().item(),
             "part": "softmax"},
            {"name": f"cross_entropy(Z) - cross_entropy(Z - {M:g}) ({words})", "value": ce - ce0, "part": "cross_entropy"},
            {"name": f"norm of the difference of their cross_entropy gradients ({words})",
             "value": (ce_grad - ce_grad0).norm().item(), "part": "cross_entropy"},
            {"name": f"softmax(Z) - softmax(Z - rowmax Z), rows peaking at {M:g} and {-M:g} ({words})",
             "value": (Q - Q0).abs().max().item(), "part": "softmax"},
            {"name": f"cross_entropy(Z) - cross_entropy(Z - rowmax Z), rows peaking at {M:g} and {-M:g} ({words})",
             "value": ce_rows - ce_rows0, "part": "cross_entropy"},
        ]
        for (z, yb), g in zip(bce_points, bce_grads):
            exact = (1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))) - yb  # sigmoid(z) - y
            cases.append({"name": f"autograd's gradient of bce_with_logits at z = {z:g}, y = {yb:g} minus its exact "
                                  f"value {exact:.3g} ({words})", "value": g.item() - exact, "part": "bce_with_logits"})
        # (bce(z) - bce(z - s sign z)) / s minus the exact slope there: 0 for a stable BCE
        for i, (z, yb, step) in enumerate(steps):
            cases.append({"name": f"slope of bce_with_logits at z = {z:g}, y = {yb:g} minus its exact value "
                                  f"{(1 - yb) if z > 0 else -yb:g} ({words})", "part": "bce_with_logits",
                          "value": (at[2 * i] - at[2 * i + 1]) / step - ((1 - yb) if z > 0 else -yb)})
    cases += _softplus_grid_cases(sub, seed)
    # l1_loss's gradient where pred == target: any value in [-1/n, 1/n] is a subgradient of |.| there, but
    # never nan (sqrt(d^2) differentiates to 0/0): judged for finiteness alone
    pred = torch.tensor([0.5, 1.0, -0.25, 2.0], dtype=torch.float64)
    target = torch.tensor([0.5, 0.0, -0.25, 1.0], dtype=torch.float64)
    (reply,) = call_all(sub, [[_inside(sub, with_gradient, sub.get("l1_loss")), [pred, target], {}]],
                        "l1_loss where pred == target at two of four entries")
    _, grad = _value_and_grad(*reply, "l1_loss()", pred)
    cases.append({"name": "autograd's gradient of l1_loss w.r.t. pred where pred == target at 2 of 4 entries: its "
                          "largest |entry| (a subgradient of |d| at 0, finite)", "finite_only": True,
                  "why": "a form whose derivative is 0/0 where pred == target (sqrt(d ** 2) is |d|, its gradient "
                         "d / sqrt(d ** 2) is nan at 0); write (pred - target).abs()",
                  "value": grad.abs().max().item() if torch.isfinite(grad).all() else float("nan")})
    return {"cases": cases}


# The BCE on one logit at each magnitude of a grid from 1 to 40, both signs: log(1 + e^z) switched to its asymptote
# (z, or 0) too early drops e^-|z|, 2e-9 to 0.4 here (a blind red team's cut-off at 15, round 8), where every stable form
# is exact to float64's rounding. Beyond 20 torch's own F.softplus (a building block the spec allows) is the identity,
# off by log1p(e^-20) < 2.1e-9: the bound there. Magnitudes jittered by the seed in multiples of 1/8 (never within
# 19.76..21.12: no point sits on torch's threshold), each with a label drawn by the seed.


def _softplus_grid_cases(sub, seed):
    """stability's cases of the grid (one message): each the BCE of one logit, held to float64's rounding (rtol 1e-13,
    atol 1e-14: the loss's cancellation -y z + log(1 + e^z) at z = 40 is ~1e-14 off) up to |z| = 20, to
    SOFTPLUS_GAP beyond. Part bce_with_logits: a BCE whose formula torch-agreement charged is judged finite only."""
    points = softplus_grid(seed)
    replies = call_all(sub, [[sub.get("bce_with_logits"), [torch.tensor([z], dtype=torch.float64),
                                                           torch.tensor([yb], dtype=torch.float64)], {}]
                             for z, yb in points], "bce_with_logits on one logit from 1 to 40 in magnitude (float64)")
    return [{"name": f"bce_with_logits on a grid of logits: z = {z:g}, y = {yb:g} (n=1, float64)", "part": "bce_with_logits",
             "value": expect_tensor(v, "bce_with_logits()", shape=(), finite=False).item(), "rtol": 1e-13,
             "atol": SOFTPLUS_GAP if abs(z) > 20 else 1e-14} for (z, yb), v in zip(points, replies)]


def invariants(sub, seed, p):
    """Every loss called on the caller's own tensors (float32 and float64, one layout each), then
    train() on float64 and float32 problems: nothing written into the arguments, the dtype followed,
    the loss history kept without its autograd graph (numbers, or detached tensors: the doc promises no type)."""
    g, watch = _gen(seed), Watch()
    # a batch of one too: the families of torch-agreement and hinge hand over copies (this check owns the
    # in-place rule: one bug, one deduction), so a function that writes into its argument at n = 1 only shows here
    for dtype, contiguous, n in ((torch.float64, True, 5), (torch.float32, False, 5), (torch.float64, True, 1)):
        name = str(dtype).replace("torch.", "") + ("" if contiguous else ", non-contiguous") + (", n=1" if n == 1 else "")
        Z, y = _scores(g, n, 3, dtype, "")
        z, yb, target = _pairs(g, n, dtype, "")
        Z, y, z, yb, target = (_layout(a, contiguous) for a in (Z, y, z, yb, target))
        t = 2 * yb - 1
        calls = [("softmax", (Z,), ("Z",)), ("cross_entropy", (Z, y), ("Z", "y")),
                 ("bce_with_logits", (z, yb), ("z", "y")), ("hinge", (z, t), ("w", "t")),
                 ("hinge_01", (z, yb), ("w", "y")), ("multiclass_hinge", (Z, y), ("Z", "y")),
                 ("l1_loss", (z, target), ("pred", "target")), ("l2_loss", (z, target), ("pred", "target"))]
        for fn, args, names in calls:
            where = f"{fn}() on {name} inputs"
            watch.dtype(where, watch.call(where, sub.get(fn), args, names), dtype)
    _half_precision(sub, watch, g)
    for dtype in (torch.float64, torch.float32):
        X, y, W0, b0 = (a.to(dtype) if a.is_floating_point() else a for a in _problem(seed, 12, 3, 3, 4.0, None))
        where = f"train() on a {str(dtype).replace('torch.', '')} problem (n=12, d=3, k=3)"
        with sub.replaced("cross_entropy", _inside(sub, harness_cross_entropy)):
            result = watch.call(where, sub.get("train"), (X, y, W0, b0, 0.5, 3), ("X", "y", "W0", "b0"))
        if not (isinstance(result, (tuple, list)) and len(result) == 3):
            continue  # the form of train()'s result is the other checks' business
        W, b, losses = result
        watch.dtype(where, W, dtype, "the returned W")
        watch.dtype(where, b, dtype, "the returned b")
        watch.no_graph(where, list(losses), "losses")
        # the docstring: W and b come back as plain tensors (no graph, requires_grad False), as the losses do
        plain = next((what for what, t in (("W", W), ("b", b)) if isinstance(t, torch.Tensor) and t.requires_grad), None)
        if plain:
            watch.violation(where, f"the returned {plain} requires grad (the tensor train() optimised, handed back as it "
                                   f"is, with its .grad): the docstring asks for plain tensors, and {plain}.numpy() raises, "
                                   f"{plain} @ x builds a graph. Return {plain}.detach()")
        if dtype == torch.float64:
            _from_leaves(sub, watch, X, y, W0, b0, W, b)
    return watch.measurement()


# float16 and bfloat16 (the CPU has both for every op a loss needs): a constant made inside without dtype= (torch.zeros(n),
# torch.ones(n), torch.where(y == 1, 1.0, -1.0), y.float()) is float32, which float64 inputs promote away and float32
# ones equal, so only a half-precision input shows it (blind round 9: four losses returned float32 for float16 inputs)
HALF = (torch.float16, torch.bfloat16)
# a margin float32 does not hold: a margin vector made as margin * torch.ones(n) (float32) is 0.10000000149 in a
# float64 run, where float16 inputs show the same constant as a float32 output (blind round 9)
ODD_MARGIN = 0.1


def _half_precision(sub, watch, g):
    """Every loss on float16 and bfloat16 inputs (small scores, n = 5, k = 3), in one message with the same calls on
    the very same values in float64: the output has the inputs' dtype, and its value is the float64 one to that dtype's
    precision (8 units of its epsilon at the scale of the inputs: a loss computed in another dtype and cast back is
    fine, one that overflows or loses its digits is not). A call that raises in half precision where the float64 one
    runs is a dtype mismatch (a float32 constant in a matrix product). And multiclass_hinge in float64 with margin
    0.1 (not a float32 number): its margin kept in float32 shows as a difference from the margin-0 value of 0.1 in
    float32 (0.10000000149...) instead of 0.1."""
    Z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2, 0])
    z, target = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    yb = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    calls = [("softmax", (Z,), {}), ("cross_entropy", (Z, y), {}), ("bce_with_logits", (z, yb), {}),
             ("hinge", (z, 2 * yb - 1), {}), ("hinge_01", (z, yb), {}), ("multiclass_hinge", (Z, y), {}),
             ("l1_loss", (z, target), {}), ("l2_loss", (z, target), {})]
    batch, what = [], []
    for dtype in HALF:
        for fn, args, kwargs in calls:
            half = tuple(a.to(dtype) if a.is_floating_point() else a.clone() for a in args)
            batch += [[sub.get(fn), half, kwargs], [sub.get(fn), tuple(a.double() if a.is_floating_point() else a.clone()
                                                                       for a in half), kwargs]]
            what.append((fn, dtype, half))
    # the margin: active rows (the best rival above the gold score), so that value(m) - value(0) = m exactly
    rows = torch.tensor([[0.0, 1.0, 0.5], [2.0, 0.25, 3.0]], dtype=torch.float64)
    gold = torch.tensor([0, 1])
    batch += [[sub.get("multiclass_hinge"), (rows.clone(), gold.clone()), {"margin": m}] for m in (ODD_MARGIN, 0.0)]
    replies = call_each(sub, batch)
    if not isinstance(replies, list) or len(replies) != len(batch):
        return
    for i, (fn, dtype, half) in enumerate(what):
        (ok, out), (ok64, exact) = replies[2 * i], replies[2 * i + 1]
        name = str(dtype).replace("torch.", "")
        where = f"{fn}() on {name} inputs (n=5{', k=3' if half[0].dim() == 2 else ''})"
        watch.probed.append(where)
        if not ok64 or not isinstance(exact, torch.Tensor):
            continue  # failing on float64 inputs is for the checks of values to report
        if not ok:
            watch.violation(where, f"{out}, where the same values in float64 run: a tensor made inside with another dtype "
                                   "meets the inputs (a float32 constant in a matrix product or an in-place write?); make "
                                   f"it with the inputs' dtype (torch.zeros_like(x), x.new_ones(n), dtype=x.dtype)")
            continue
        if not isinstance(out, torch.Tensor):
            continue  # the form of the result is the other checks' to judge
        if out.dtype != dtype:
            watch.violation(where, f"the output is {str(out.dtype).replace('torch.', '')} for {name} inputs: the dtype must "
                                   "follow the inputs'. A tensor made inside without dtype= is float32 (torch.zeros(n), "
                                   "torch.ones(n), torch.tensor(...), torch.where(c, 1.0, -1.0)), as is a .float() cast: "
                                   "float64 inputs promote it away and float32 ones equal it, so half precision alone "
                                   "shows it. Make it from the inputs (torch.zeros_like(x), x.new_ones(n), 2 * y - 1)")
            continue
        scale = max(1.0, float(exact.detach().abs().max()), max(float(a.abs().max()) for a in half if a.is_floating_point()))
        off = float((out.detach().double() - exact.detach().double()).abs().max()) if out.shape == exact.shape else math.nan
        if not off <= 8 * torch.finfo(dtype).eps * scale:
            watch.violation(where, f"the output is {_few(out)}, where the same values in float64 give {_few(exact)} (off by "
                                   f"{off:.3g}, beyond {name}'s precision): part of the computation overflows or loses "
                                   f"its digits in {name}")
    where = f"multiclass_hinge() on float64 inputs with margin {ODD_MARGIN:g} (every example's hinge active)"
    watch.probed.append(where)
    (ok, at_m), (ok0, at_0) = replies[-2:]
    if ok and ok0 and isinstance(at_m, torch.Tensor) and isinstance(at_0, torch.Tensor) and at_m.numel() == 1 \
            and at_0.numel() == 1 and at_m.dtype == torch.float64:
        gap, in_float32 = float(at_m) - float(at_0), float(torch.tensor(ODD_MARGIN, dtype=torch.float32))
        if abs(gap - ODD_MARGIN) > 1e-13 and abs(gap - in_float32) <= 1e-13:
            watch.violation(where, f"the loss minus its value at margin 0 is {gap!r}, the margin {ODD_MARGIN:g} rounded to "
                                   f"float32 ({in_float32!r}), where float64 gives {ODD_MARGIN!r}: the margin went through a "
                                   "float32 tensor (margin * torch.ones(n), torch.tensor(margin)); use the Python number "
                                   "itself (margin - gold + rival), or make the tensor with dtype=Z.dtype")


def _few(t):
    """A tensor's first values, in words."""
    values = t.detach().double().reshape(-1).tolist()
    return "[" + ", ".join(f"{v:.4g}" for v in values[:4]) + (", ...]" if len(values) > 4 else "]")


def _from_leaves(sub, watch, X, y, W0, b0, W, b):
    """train() once more, from W0 and b0 that require grad (a model's parameters, or leaves of an earlier run: the
    docstring says they may), in the student's process (a leaf's flag, not a bridged graph): it must train as
    from plain ones (W and b as `W`, `b`, the run from plain W0 and b0 that invariants just made)."""
    where = "train() from W0 and b0 that require grad (leaves, as a model's parameters are; n=12, d=3, k=3)"
    watch.probed.append(where)
    with sub.replaced("cross_entropy", _inside(sub, harness_cross_entropy)):
        found = sub.run_local(trained_from_leaves_here, sub.get("train"), X, y, W0, b0, 0.5, 3)
    if isinstance(found, str):
        watch.violation(where, f"raised {found}, where from plain W0 and b0 it trains: W0.clone() of a tensor that "
                               "requires grad is no leaf but a node of W0's graph, so backward() leaves its .grad None. "
                               "Start from a copy of the values alone: W = W0.detach().clone().requires_grad_(True)")
        return
    if not (isinstance(found, list) and len(found) == 2 and all(isinstance(t, torch.Tensor) for t in found)
            and isinstance(W, torch.Tensor) and isinstance(b, torch.Tensor)):
        return  # the form of the result is the other checks' to judge
    got, want = torch.cat([found[0].double().reshape(-1), found[1].double().reshape(-1)]), \
        torch.cat([W.detach().double().reshape(-1), b.detach().double().reshape(-1)])
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-12, atol=1e-14):
        gap = float((got - want).abs().max()) if got.shape == want.shape else float("nan")
        watch.violation(where, f"gave other weights than from plain W0 and b0 (largest difference {gap:.3g}): what "
                               "train() does must depend on the values of W0 and b0 alone, not on whether they require "
                               "grad. Start from W = W0.detach().clone().requires_grad_(True)")


def trained_from_leaves_here(train, X, y, W0, b0, lr, steps):
    """In the student's process (sub.run_local): train(X, y, W0, b0, lr, steps) with W0 and b0 leaves that require
    grad: [W, b] (detached copies), the first line of what it raised, or None where its result is not (W, b, losses)."""
    W0, b0 = W0.detach().clone().requires_grad_(True), b0.detach().clone().requires_grad_(True)
    try:
        W, b, _ = train(X, y, W0, b0, lr, steps)
    except Exception as e:  # noqa: BLE001 - the finding, said by the harness
        said = (str(e).strip().splitlines() or [""])[0][:200]
        return f"{type(e).__name__}: {said}" if said else type(e).__name__
    if not (isinstance(W, torch.Tensor) and isinstance(b, torch.Tensor)):
        return None
    return [W.detach().clone(), b.detach().clone()]




def harness_cross_entropy():
    return _cross_entropy


def _cross_entropy(Z, y):
    """The harness's own mean cross-entropy (torch's): train() is judged with a correct loss, so a
    wrong cross_entropy costs the checks of cross_entropy only. Built from torch.logsumexp, not
    F.cross_entropy, which the spec forbids in the submission's code that calls this."""
    return (torch.logsumexp(Z, dim=1) - Z.gather(1, y[:, None]).squeeze(1)).mean()


def _problem(seed, n, d, k, distance, margin):
    X, y = gaussian_blobs(seed, n, classes=k, dim=d, distance=distance, margin=margin)
    rng = np.random.default_rng(seed + 10_000)
    W0, b0 = rng.normal(0.0, 0.5, (k, d)), rng.normal(0.0, 0.5, k)
    return torch.tensor(X), torch.tensor(y), torch.tensor(W0), torch.tensor(b0)


def _train(sub, X, y, W0, b0, lr, steps):
    with sub.replaced("cross_entropy", _inside(sub, harness_cross_entropy)):  # copies in: train()'s in-place
        W, b, losses = sub.call("train", X.clone(), y.clone(), W0.clone(), b0.clone(), lr, steps,
                                given_copies=True)  # rule is invariants' (one bug, one deduction)
    k, d = W0.shape
    W = expect_tensor(W, "train() (its first result, W)", shape=(k, d), dtype="float", finite=False)
    b = expect_tensor(b, "train() (its second result, b)", shape=(k,), dtype="float", finite=False)
    losses = expect_history(losses, steps)
    return W.detach(), b.detach(), losses


def _descent(X, y, W0, b0, lr, steps):
    """Plain gradient descent by the spec (the harness's cross-entropy, autograd): the final W and b."""
    W, b = W0.clone(), b0.clone()
    for _ in range(steps):
        W, b = W.requires_grad_(True), b.requires_grad_(True)
        gW, gb = torch.autograd.grad(_cross_entropy(X @ W.T + b, y), (W, b))
        W, b = (W - lr * gW).detach(), (b - lr * gb).detach()
    return W, b


@seeded_once
def _descent_runs(seed, p):
    """train()'s other configurations at (seed, p), and plain descent's final weights and losses on each
    (the harness's cross-entropy; no submission): each lr of `lr_family` on overlapping classes (blobs 1
    apart), where plain descent at a large lr overshoots (at lr = 10 the loss goes up at two or more of
    the first 6 steps at each of 600 seeds tried); and each of `feature_scales` (features that many times
    larger, lr / scale^2 so that W's step is as large as at the spec's lr), where the gradient is that many
    times larger: a clipped or normalised step shows. Returns [(what, X, y, W0, b0, lr, final W, final b,
    losses)]."""
    n, d, k, steps = p["n"], p["d"], p["k"], p["lr_family_steps"]
    runs = []
    X, y, W0, b0 = _problem(seed + 20_000, n, d, k, distance=1.0, margin=None)
    for lr in p["lr_family"]:
        runs.append((f"lr = {lr:g} ({k} overlapping classes)", X, y, W0, b0, lr))
    for scale in p.get("feature_scales", ()):
        Xs, ys, Ws, bs = _problem(seed + 21_000, n, d, k, distance=4.0, margin=None)
        lr = p["lr"] / scale ** 2
        runs.append((f"lr = {lr:g} on features {scale:g} times larger (a gradient that large)", Xs * scale, ys, Ws, bs,
                     lr))
    # labels that never name the last class (k rows of W0, y in {0, ..., k - 2}: a minibatch, or a class absent from
    # the data): the number of classes is W0's, not y.max() + 1 (blind round 9: one_hot(y) without num_classes raised)
    Xm, ym, Wm, bm = _problem(seed + 22_000, n, d, k, distance=4.0, margin=None)
    runs.append((MISSING_CLASS.format(k=k, last=k - 1), Xm, torch.where(ym == k - 1, 0, ym), Wm, bm, p["lr"]))
    out = []
    for what, X, y, W0, b0, lr in runs:
        W, b = W0, b0
        losses = [float(_cross_entropy(X @ W.T + b, y))]
        for _ in range(steps):  # step by step, for the losses: the final weights as _descent's
            W, b = _descent(X, y, W, b, lr, 1)
            losses.append(float(_cross_entropy(X @ W.T + b, y)))
        out.append((what, X, y, W0, b0, lr, W, b, losses))
    return out


MISSING_CLASS = "lr = {{lr}} on labels that never name the last class ({k} classes in W0, none labelled {last})"


def _follows_descent(sub, seed, p):
    """train() at `_descent_runs`' configurations, where the loss goes up or the gradient is large: it
    takes every step W <- W - lr dL/dW, b <- b - lr dL/db with the lr it is given, whatever the loss or
    the gradient's size, so its final weights are plain descent's (the harness's cross-entropy in both;
    float64 orderings, autograd's or a gradient by hand, agree to ~1e-12 there). A Violation names the
    configuration and how far off. The losses train() records are first-loss's own comparison."""
    keys = ("n", "d", "k", "lr", "lr_family", "lr_family_steps", "feature_scales")
    steps = p["lr_family_steps"]
    for what, X, y, W0, b0, lr, W_want, b_want, losses in _descent_runs(seed, {key: p[key] for key in keys if key in p}):
        what = what.replace("{lr}", f"{lr:g}")
        try:
            W, b, recorded = _train(sub, X.clone(), y.clone(), W0, b0, lr, steps)
        except Exception as e:  # noqa: BLE001 - at the spec's own data it runs: the configuration is the finding
            if "never name the last class" not in what:
                raise
            said = (str(e).strip().splitlines() or [""])[0][:200]
            raise Violation(f"train() with {what} for {steps} steps raised {type(e).__name__}: {said}. The number of "
                            "classes k is W0.shape[0] (the rows of W), not what the labels show (y.max() + 1, or the "
                            "classes present): a batch or a data set may lack a class. Likely cause: a one-hot of y "
                            "made without num_classes (F.one_hot(y, num_classes=W.shape[0])) or a size taken from y") from None
        got = torch.cat([W.double().reshape(-1), b.double().reshape(-1)])
        want = torch.cat([W_want.reshape(-1), b_want.reshape(-1)])
        off = float((got - want).abs().max())
        if off <= 1e-9 * (1 + float(want.abs().max())):  # (nan fails)
            continue
        rises = sum(after > before for before, after in zip(losses, losses[1:]))
        worst = int((got - want).abs().nan_to_num(nan=math.inf).argmax())
        k, d = W0.shape
        entry = f"W[{worst // d}, {worst % d}]" if worst < k * d else f"b[{worst - k * d}]"
        said = (f"train() with {what} for {steps} steps (the grader's cross_entropy) ends with {entry} = "
                f"{float(got[worst]):.6g}, where gradient descent W <- W - lr dL/dW, b <- b - lr dL/db ends "
                f"with {float(want[worst]):.6g} (largest difference {off:.3g})")
        if not (torch.isfinite(got).all() and all(math.isfinite(v) for v in recorded)):
            # plain descent stays finite here (the harness's cross_entropy, a log-sum-exp): train()'s own arithmetic
            # overflowed, most often a loss written inline instead of calling cross_entropy
            raise Violation(said + f"; train() reached inf or nan ({sum(not math.isfinite(v) for v in recorded)} of "
                            f"its {len(recorded)} recorded losses not finite), where descent with the grader's "
                            "cross_entropy stays finite: an overflow in train()'s own arithmetic. Likely cause: a loss "
                            "written inside train() (-log(softmax(Z)[y]) is inf once a gold class's probability "
                            "underflows to 0, at logits this large) instead of calling cross_entropy(Z, y)")
        agree = max((abs(a - e) / abs(e) for a, e in zip(recorded, losses) if e), default=math.inf)
        if off <= FLOAT32_STEPS * (1 + float(want.abs().max())) and agree <= FLOAT32_REL:
            # every step taken, every loss right to float32's precision: the cause is the dtype, not the steps
            returned = str(W.dtype).replace("torch.", "")
            raise Violation(said + f"; its losses agree with gradient descent's to float32's precision and no "
                            f"better (largest rel. error {agree:.1e}): part of train() runs in float32"
                            + (f" (it returned {returned} weights for {str(X.dtype).replace('torch.', '')} inputs)"
                               if W.dtype != X.dtype else "")
                            + ", which rounds every step: a .float(), or a tensor made without dtype=; keep the "
                            "inputs' dtype")
        raise Violation(said + (f". There the loss goes up at {rises} of the {steps} steps: train() must take every step "
                                "with the lr it is given (no step size of its own, no backtracking, no early stop, no "
                                "best-so-far weights)"
                                if rises else ": train() must take every step with the lr it is given, the gradient as "
                                "it is (no clipping, no normalising)"))


# a few float32 steps off float64 descent: ~1e-7 relative rounding per step, grown by lr = 10's steps to ~1e-5
# (a blind red team's train() in float32: 1.7e-5 on weights of ~1); another step rule is off by 1e-2 or more
FLOAT32_STEPS = 1e-4


@keeps_rules
def first_loss(sub, seed, p):
    X, y, W0, b0 = _problem(seed, p["n"], p["d"], p["k"], distance=4.0, margin=None)
    steps = p["steps"]
    W, b, losses = _train(sub, X, y, W0, b0, p["lr"], max(steps) + 1)
    if p.get("lr_family"):
        _follows_descent(sub, seed, p)
    # at an lr so small that nothing changes: every step still taken, its loss recorded (no early stop)
    takes_every_step(lambda lr, count: _train(sub, X.clone(), y.clone(), W0, b0, lr, count), once_for=sub)
    # the weights returned, judged once the history matches: a loop one update short, or one that hands
    # back the best weights seen (those before the last update), shows there only
    return {"steps": steps, "losses": [losses[s] for s in steps], "n": p["n"],
            "final": torch.cat([W.reshape(-1), b.reshape(-1)]).double().tolist(), "updates": max(steps) + 1}


@keeps_rules
def convergence(sub, seed, p):
    X, y, W0, b0 = _problem(seed, p["n"], p["d"], p["k"], distance=6.0, margin=0.5)
    W, b, losses = _train(sub, X, y, W0, b0, p["lr"], p["budget"])
    _descends(sub, seed, p, X, y, W0, b0, _flat(W, b))
    # The predicted class is the argmax of the logits, computed here rather than by the submission.
    accuracy = ((X @ W.double().T + b.double()).argmax(dim=1) == y).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)]}


def _flat(W, b):
    return torch.cat([W.reshape(-1), b.reshape(-1)]).double().numpy()


def _descends(sub, seed, p, X, y, W0, b0, w_end):
    """graders/descent.py: train()'s weights after 1, 2 and 3 steps and at the budget (`w_end`, convergence's own run:
    on separable classes the cross-entropy has no minimum, so descent is still on its way there; the harness's
    cross-entropy inside, copies in) are gradient descent's at one learning rate, to 1e-5 (float64 orderings agree to
    ~1e-14; a float32 step inside, first-loss's charge, stays within it)."""
    probes, (k, d) = probe_steps(seed, p["budget"], drawn=False), W0.shape
    def call(n):
        return sub.call("train", X.clone(), y.clone(), W0.clone(), b0.clone(), p["lr"], n, given_copies=True)

    def read(result, n):
        W, b, _ = train_result(result, n, "(W, b, losses)")
        return _flat(expect_tensor(W, f"train() (its first result, W, after {n} steps)", shape=(k, d), dtype="float",
                                   finite=False),
                     expect_tensor(b, f"train() (its second result, b, after {n} steps)", shape=(k,), dtype="float",
                                   finite=False))
    with sub.replaced("cross_entropy", _inside(sub, harness_cross_entropy)):
        got = weights_of(call, probes, read)
    got[p["budget"]] = w_end

    def gradient(w, _k):
        W = torch.from_numpy(w[: k * d].reshape(k, d)).requires_grad_(True)
        b = torch.from_numpy(w[k * d:]).requires_grad_(True)
        return _flat(*torch.autograd.grad(_cross_entropy(X @ W.T + b, y), (W, b)))

    follows_descent(got, _flat(W0, b0), gradient, lambda want: 1e-5 * (1 + float(np.abs(want).max())),
                    f"on convergence's problem (seed {seed}, lr {p['lr']:g}; W and b flattened)", p["lr"],
                    ("exercise-4 convergence", seed, p["n"], p["d"], p["k"], p["lr"]))


# ---- placement: every loss's output and gradient follow the inputs' device ------------------------------

# (function, its arguments as (parameter name, what the harness passes)): "scores" (n, k) and "logits",
# "target" (n,) are float and require grad; "classes" (n,) int64 class indices, "01" (n,) float labels in
# {0, 1}, "pm1" (n,) float labels in {-1, +1}
PLACED = (("softmax", (("Z", "scores"),)), ("cross_entropy", (("Z", "scores"), ("y", "classes"))),
          ("bce_with_logits", (("z", "logits"), ("y", "01"))), ("hinge", (("w", "logits"), ("t", "pm1"))),
          ("hinge_01", (("w", "logits"), ("y", "01"))), ("multiclass_hinge", (("Z", "scores"), ("y", "classes"))),
          ("l1_loss", (("pred", "logits"), ("target", "target"))), ("l2_loss", (("pred", "logits"), ("target", "target"))))
_DIFFERENTIATED = ("scores", "logits", "target")


def placed_here(fn, name, seed, with_values=False):
    """In the student's process (sub.run_local): the loss `name` of PLACED (`fn`) on float32 inputs on the
    meta device, then autograd's backward of its output to each float input (through the student's
    operations); where the output and each gradient are, by name (its device, or its type when it is not a
    tensor). Meta tensors are made there only, so this process does not import torch's meta kernels. One
    message per loss, each under its own forbid rules (cross_entropy may call torch.log_softmax, softmax
    may not). `with_values`: placement's second run, where the meta one stopped at a value read (int(y[i])
    in a loop, a boolean mask): the same on a device with values (graders/kinds/elsewhere.py)."""
    with values_run_there(with_values):
        return _placed_here(fn, name, seed)


def _placed_here(fn, name, seed):
    g = torch.Generator().manual_seed(seed)
    made = {"scores": torch.randn(5, 3, generator=g), "classes": torch.tensor([0, 2, 1, 2, 0]),
            "logits": torch.randn(5, generator=g), "01": torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0]),
            "target": torch.randn(5, generator=g)}
    made["pm1"] = 2 * made["01"] - 1
    parameters = dict(PLACED)[name]
    args = [made[kind].to("meta").requires_grad_(kind in _DIFFERENTIATED) for _, kind in parameters]
    out = fn(*args)
    outputs = {f"{name}()": out}
    if isinstance(out, torch.Tensor) and out.requires_grad:  # (a cut graph is gradcheck's finding)
        wrt = [(p, a) for (p, _), a in zip(parameters, args) if a.requires_grad]
        # allow_unused: an input the value does not depend on is the gradient checks' finding
        grads = torch.autograd.grad(out.sum(), [a for _, a in wrt], allow_unused=True)
        outputs.update({f"the gradient of {name}() w.r.t. {p}": gr for (p, _), gr in zip(wrt, grads) if gr is not None})
    return {what: str(t.device) if isinstance(t, torch.Tensor) else type(t).__name__ for what, t in outputs.items()}



def placement(sub, seed, p):
    measured, running = placed_in_student(sub, [(name, sub.get(name)) for name, _ in PLACED], placed_here, seed)
    if "error" in measured and running:
        measured["error"] += f", in {running}() or its backward"
    return measured
