"""exercise-1 probes: each builds its inputs from the seed (trusted data), calls the submission, and
returns plain numbers. The judging happens in the parent (graders/kinds/<kind>.py).

One bug, one deduction: train() is run with the harness's own gradient (autograd on the spec's loss,
written here, not the reference's code), so a wrong gradient() costs gradcheck only; convergence also
uses the harness's loss, so it measures train() alone. Every call keeps the invariants of
graders/kinds/invariants.py: arguments left unmodified, the inputs' dtype, no autograd graph in a hand gradient.
"""

import numpy as np
import torch

from dldiy.graders.api import ApiError, check_result, expect_history, expect_tensor
from dldiy.graders.api import built_inside as _inside
from dldiy.graders.descent import follows_descent, probe_steps, train_result, weights_of
from dldiy.graders.data import SOFTPLUS_GAP, gaussian_blobs, seeded_once, softplus_grid
from dldiy.graders.kinds.gradcheck import block, numeric_gradient_stacked
from dldiy.graders.kinds.invariants import (TRAIN_KEPT_CAUSES, bfloat16_precision,
                                            dependency_note, loss_note, loss_note_of, CallCounter, Violation, copies, keeps_rules,
                                            no_graph, reads_changed, results_kept, same_cast_as, same_dtype, takes_every_step,
                                            trained_without_graph, unchanged, unmodified)
from dldiy.graders.sandbox.endpoint import RemoteError
from dldiy.graders.kinds.placement import device_probes


def _problem(seed, n, d, distance=4.0, margin=None, dtype=torch.float64):
    if d == 1:  # gaussian_blobs places its means in 2 dimensions: one feature is drawn here
        rng = np.random.default_rng(seed)
        y = np.arange(n) % 2
        X = (rng.normal(size=(n, 1)) + distance / 2 * (2 * y[:, None] - 1)).astype(np.float64)
    else:
        X, y = gaussian_blobs(seed, n, classes=2, dim=d, distance=distance, margin=margin)
    w0 = np.random.default_rng(seed + 10_000).normal(0.0, 0.5, d + 1)
    return (torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=torch.int64), torch.tensor(w0, dtype=dtype))


def _spec_loss(X, y, w):
    """The spec's loss, written here with torch (the harness's own, for train() and for gradcheck's
    degenerate test): (1/n) sum_i softplus(-t_i <x~_i, w>), t = 2y - 1, x~ = [x, -1]."""
    Xt = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
    return torch.nn.functional.softplus(-(2 * y.to(X.dtype) - 1) * (Xt @ w)).mean()


def _spec_gradient(X, y, w):
    """The gradient of _spec_loss, -(1/n) sum_i sigma(-u_i) t_i x~_i (closed form: 100 steps of train()
    per check and seed stay cheap)."""
    Xt = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
    t = 2 * y.to(X.dtype) - 1
    return -(torch.sigmoid(-t * (Xt @ w.detach())) * t) @ Xt / len(X)



def _spec_losses(X, y, W):
    """_spec_loss at every row of W (k, d+1) at once, (k,): one matmul for the 2(d+1) points of a
    finite difference (rows of (k, n), the mean along each as _spec_loss takes it)."""
    Xt = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
    return torch.nn.functional.softplus(-(2 * y.to(X.dtype) - 1) * (W @ Xt.T)).mean(1)


class _Augmented:
    """C = -(t x~) row by row (t = 2y - 1, x~ = [x, -1]) of the last (X, y) seen: every margin is then
    -u = C @ w in one matmul, and sum_i sigma(-u_i) (-t_i x~_i) = sigma(C @ w) @ C. t is +-1, so C's
    entries and these products round exactly as _spec_*'s (bit for bit). train() passes the same tensors
    at every step, so its hundred steps build C once. Kept only while X and y are the same objects at
    the same version (an in-place change builds it again)."""

    def __init__(self):
        self.key, self.kept = None, None

    def __call__(self, X, y):
        key = (id(X), X._version, id(y), y._version)
        if key != self.key:
            Xt = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
            C = -((2 * y.to(X.dtype) - 1)[:, None] * Xt)
            self.key, self.kept = key, (X, y, C)  # X, y held: their ids stay theirs
        return self.kept[2]


def harness_gradient():
    """_spec_gradient for train()'s loop in the student's process: sigma(C w) @ C / n (_Augmented)."""
    augmented = _Augmented()

    def gradient(X, y, w):
        C = augmented(X, y)
        return torch.sigmoid(C @ w.detach()) @ C / len(X)
    return gradient


def harness_loss_fn():
    """_spec_loss for train()'s loop in the student's process: mean softplus(C w) (_Augmented)."""
    augmented = _Augmented()

    def loss(X, y, w):
        return torch.nn.functional.softplus(augmented(X, y) @ w).mean()
    return loss


def _form(out, name, X, dims, finite=True, follows_dtype=True):
    """The spec's form of loss() or gradient()'s result on (X, ...): its shape, a float tensor of X's
    dtype; `finite=False` leaves an inf or nan for the judge to report (stability); `follows_dtype=False`
    where another check charges the dtype (gradient()'s is gradcheck's: one bug, one deduction)."""
    what = f"{name}()"
    shape = () if name == "loss" else (dims["d"] + 1,)
    out = expect_tensor(out, what, shape=shape, dtype="float", finite=finite)
    return same_dtype(out, X.dtype, what) if follows_dtype else out


class _Calls:
    """Calls of loss() and gradient() on (X, y, w) sent in ONE `sub.batch` (issue 17: a round trip per
    call was most of a check's cost), then judged one by one, in order, as a single call was: the error
    the call raised, raised here (a name the submission lacks as `sub.get` says it); its arguments
    compared with the copies kept before the batch (`unmodified`'s rule); the spec's shape, the inputs'
    dtype. Callers give each call tensors of its own, so that no call sees what an earlier one did to
    its arguments and a change is charged to the call that made it."""

    def __init__(self, sub):
        self.sub, self.calls = sub, []

    def add(self, target, name, X, y, w) -> int:
        """target: the API name, or a handle from sub.get; returns the call's index."""
        self.calls.append((target, name, (X, y, w), copies(X=X, y=y, w=w)))
        return len(self.calls) - 1

    def send(self) -> None:
        with torch.no_grad():  # a gradient by hand, a loss value: no autograd graph asked for
            self.replies = self.sub.batch([(target, None, args, {}) for target, _, args, _ in self.calls])

    def value(self, i):
        """Call i's value, as the submission returned it (its arguments checked unmodified)."""
        _, name, (X, y, w), kept = self.calls[i]
        reply = self.replies[i]
        if isinstance(reply, RemoteError):
            if reply.kind == "missing":
                self.sub.get(name)  # raises the ApiError a single call would
            raise reply
        unchanged(kept, f"{name}()", X=X, y=y, w=w)
        return reply

    def judged(self, i, dims, finite=True, follows_dtype=True):
        _, name, (X, _, _), _ = self.calls[i]
        return _form(self.value(i), name, X, dims, finite, follows_dtype)


def _at(label, call):
    """`call()` at a configuration of a family: an exception there (the spec's first configuration
    passed) is a failure that names the configuration, not a crash."""
    try:
        return call()
    except (Violation, NotImplementedError):
        raise
    except ApiError as e:  # a wrong form (a shape, an inf) at this configuration only
        raise Violation(f"at {label}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the submission's error at one configuration is the finding
        raise Violation(f"at {label}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
                        " (code that assumes one shape, layout or dtype?)") from None


def _between_calls(sub, seed, name):
    """State kept between calls of loss() or gradient() (`name`), once per student's process, in its own process
    (blind round 9): two calls at other w, the first's result kept by the caller, must leave it as it came (a
    module-level output buffer refilled at the next call); and a call after the caller changed X in place must
    give what a fresh copy of that X gives (X~ memoised with functools.lru_cache, keyed by the tensor's
    identity). Autograd off, as gradcheck calls gradient()."""
    if not sub.first_time(f"{name}-between-calls"):
        return
    X, y, w = _problem(seed + 30_000, 6, 2)
    with torch.no_grad():
        results_kept(sub, name, [("first call, at w1", (X.clone(), y.clone(), w.clone())),
                                 ("at w2 = w1 + 1", (X.clone(), y.clone(), w + 1))],
                     ("l" if name == "loss" else "g",),
                     f"{name}() hands out a tensor it keeps between calls (a module-level buffer, one per shape, "
                     "filled with out= or in place) and fills it again at the next call: return a new tensor at every "
                     "call (a caller that keeps two results, g1 and g2, must find each as it came)")
        reads_changed(sub, name, (X, y, w), ("X", "y", "w"), 0, 3.0, "X (6, 2), y and w")


def _train(sub, X, y, w0, lr, steps, harness_loss=False):
    """train() with the harness's gradient (and, with `harness_loss`, its loss) in place of the student's."""
    d = X.shape[1]
    with sub.replaced("gradient", _inside(sub, harness_gradient)):
        if harness_loss:  # convergence: copies in, train()'s invariants are first-loss's (one deduction)
            with sub.replaced("loss", _inside(sub, harness_loss_fn)):
                w, losses = sub.call("train", X.clone(), y.clone(), w0.clone(), lr, steps, given_copies=True)
        else:
            w, losses = unmodified(lambda: sub.call("train", X, y, w0, lr, steps), "train()", X=X, y=y, w0=w0)
    w = expect_tensor(w, "train() (its first result, w)", shape=(d + 1,), dtype="float", finite=False)
    if not harness_loss:
        same_dtype(w, X.dtype, "train() (its first result, w)")
        trained_without_graph(w, "train() (its first result, w)")
    # a copy as it came back: the tensor is a mirror of the student's, which a later in-place change of that tensor
    # (one weight buffer reused by the next train() call) rewrites; that is first-loss's finding (_train_between_calls),
    # not a wrong w of this run
    return w.detach().clone(), expect_history(losses, steps)


_ONE_POINT = ("With one point the gradient is a number times x~, so any error gives a constant ratio analytic/numeric; "
              "the configurations before it (n > 1) agree. Code that reads the labels from the data (y.max(), "
              "torch.unique(y), the classes present: one label only here) or squeezes the point's dimension away goes "
              "wrong with one point: t = 2y - 1 holds for each label alone.")
_SATURATED = "n=8, d=3, margins of magnitude 20 to 30, both signs (sigma(-u) within 2e-9 of 0 or 1)"


def _exact_floor(label, X):
    """The scale the exact-gradient judge holds a block to: its own largest entry (0), except at saturated margins,
    where it is max_j mean_i |x~_ij| (the gradient were every sigma 1): sigma(u) - y, a correct arrangement,
    computes sigma(-u) as 1 - sigma(u) for one label, off by float64's rounding of 1 (~1e-16 |x~|), which is
    rounding at that scale and not at the scale of a gradient of 1e-9 where every point is on its right side."""
    if label != _SATURATED:
        return 0.0
    Xt = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype)], 1)
    return float(Xt.abs().mean(0).max())


def _gradcheck_family(seed, p):
    """(label, X, y, w): the spec's sizes, then odd ones, a non-contiguous X, uint8 labels and w = 0 (every
    margin 0)."""
    n, d = p["n"], p["d"]
    rng = np.random.default_rng(seed)
    family = []
    for label, nn, dd in ((f"n={n}, d={d}", n, d), (f"n=1, d={d}", 1, d), (f"n={n}, d=1", n, 1),
                          ("n=7, d=5, X non-contiguous (a transposed tensor)", 7, 5)):
        X, y, _ = _problem(seed + nn + 100 * dd, nn, dd)
        if "non-contiguous" in label:
            X = X.t().contiguous().t()
        family.append((label, X, y, torch.tensor(rng.normal(0, 1, dd + 1))))
    # labels of another integer dtype, as a dataset stores them (uint8): 2 * y - 1 computed in y's dtype wraps 0
    # to 255 there, where int64 labels hide it (a blind red team's miss)
    X, y, _ = _problem(seed + 7, 9, 2)
    family.append(("n=9, d=2, labels y as uint8", X, y.to(torch.uint8), torch.tensor(rng.normal(0, 1, 3))))
    # saturated margins, 20 to 30 in magnitude, both signs: sigma(-u) is within 2e-9 of 0 or 1 there, so a sigma
    # clamped to [eps, 1 - eps] (or margins cut off at +-20) is off by far more than float64's rounding, and
    # finite differences (atol 1e-8) cannot see it: the exact gradient can (round 5's blind red team)
    X, y, w_ = _extreme(seed + 9, 8, 3, 25.0, spread=0.2)
    family.append((_SATURATED, X, y, w_))
    X, y, _ = _problem(seed, n, d)
    family.append((f"n={n}, d={d}, w = 0 (every margin exactly 0)", X, y, torch.zeros(d + 1, dtype=torch.float64)))
    return family


@seeded_once
def _gradcheck_expected(seed, p):
    """What gradcheck compares with, from the spec's loss (no submission): the family, each configuration's
    numeric gradient and whether its true gradient moves; the spec's problem (X, y, w) and its loss there."""
    family = _gradcheck_family(seed, p)
    exact = [_spec_gradient(X_, y_, w_) for _label, X_, y_, w_ in family]
    numeric = [(numeric_gradient_stacked(lambda W: _spec_losses(X_, y_, W), w_), bool(g.abs().max() > 1e-6), g)
               for (_label, X_, y_, w_), g in zip(family, exact)]
    X, y = family[-1][1].clone(), family[-1][2].clone()  # the family's last problem is _problem(seed, n, d)'s
    w = torch.tensor(np.random.default_rng(seed).normal(0, 1, p["d"] + 1))
    return family, numeric, (X, y, w), float(_spec_loss(X, y, w))




@keeps_rules
def gradcheck(sub, seed, p):
    """gradient() at every configuration of the family, then on float32 and float64 copies of the spec's
    problem, and loss() once for loss_note: all in one message. By hand: autograd off, and loss() left
    alone (a finite difference of one's own loss is not by hand): the submission's loss is replaced by a
    counting stand-in for the whole batch."""
    family, numeric, (X, y, w), want = _gradcheck_expected(seed, p)  # want: what loss_note expects of loss()
    dims = {"n": p["n"], "d": p["d"]}
    # before the family's values: a buffer the next call refills makes every gradient of the batch the last one
    # (said as that, not as a wrong derivative), and an X~ cached by the tensor's identity shows only here
    _between_calls(sub, seed, "gradient")
    own_loss = sub.get("loss")
    counter = CallCounter(own_loss)
    calls = _Calls(sub)
    for _label, X_, y_, w_ in family:
        calls.add("gradient", "gradient", X_, y_, w_)
    g32 = calls.add("gradient", "gradient", X.float(), y.clone(), w.float())
    g16 = calls.add("gradient", "gradient", X.bfloat16(), y.clone(), w.bfloat16())
    g64 = calls.add("gradient", "gradient", X.clone(), y.clone(), w.clone())
    gradient_calls = len(calls.calls)
    # loss_note's call, by the handle of the submission's own loss(): the counting stand-in does not see it
    # (a loss that is no function: loss_note's own call says so, as sub.call does)
    note = calls.add(own_loss, "loss", X.clone(), y.clone(), w.clone()) if getattr(own_loss, "is_callable", False) is True \
        else None
    with sub.replaced("loss", counter):
        calls.send()
    measured = []
    for k, (label, X_, y_, w_) in enumerate(family):
        at = _at if k else (lambda label, call: call())  # the spec's own configuration raises as it is
        analytic = at(f"gradient(), {label}", lambda: calls.judged(k, {"n": len(X_), "d": X_.shape[1]}))
        if k == 0 and counter.calls > gradient_calls:
            # Counted over the batch, not per call: more loss() calls than gradient() calls means one call
            # made two or more, which a single call judged alone was charged for (and nothing less is).
            raise Violation(f"gradient() called loss() {counter.calls} times in its {gradient_calls} calls (so at least twice "
                            "in one call): a gradient from differences of the loss is not a gradient by hand; write "
                            "(1/n) sum_i -sigma(-u_i) t_i x~_i")
        measured.append((label, X_, y_, w_, no_graph(analytic, "gradient()")))
    # The spec's loss, not the student's: gradcheck measures gradient() alone (one bug, one deduction).
    # The spec's loss, not the student's: gradcheck measures gradient() alone (one bug, one deduction). By hand
    # is exact to float64's rounding (the judge holds each block to `exact`, graders/kinds/gradcheck.py); a
    # finite difference of a copy of the loss (no call of loss() to count) agrees with the finite differences
    # here to ~1e-10 and no better.
    blocks = [block(f"w ({label})", analytic, expected, moves=moves, exact=exact, exact_floor=_exact_floor(label, X_),
                    hint=_ONE_POINT if len(X_) == 1 else "")
              for (label, X_, _y, _w, analytic), (expected, moves, exact) in zip(measured, numeric)]
    # float32 in, float32 out: the same gradient within float32's precision.
    g32, g64 = calls.judged(g32, dims), calls.judged(g64, dims)
    if not torch.allclose(g32.double(), g64, rtol=1e-4, atol=1e-6):
        raise Violation(f"gradient() on float32 inputs differs from its float64 result beyond float32 precision: "
                        f"{g32.tolist()} vs {g64.tolist()}")
    bfloat16_precision(_at("gradient(), bfloat16 X and w", lambda: calls.judged(g16, dims)), g64, "gradient()")
    if note is None:
        return {"blocks": blocks, **loss_note(sub, (X, y, w), want, dims=dims)}
    return {"blocks": blocks, **loss_note_of(lambda: float(check_result(sub.exercise, "loss", calls.value(note),
                                                                         calls.calls[note][2], dims)), want)}


def _gradient_note(sub, X, y, w):
    """A note when the student's own gradient() differs from the harness's at w: train() was judged
    with the harness's, so this is said (gradcheck charges it), not charged again."""
    return dependency_note(sub, "gradient", (X, y, w.clone()), _spec_gradient(X, y, w))


def _descent(X, y, w0, lr, steps):
    """Plain gradient descent by the spec (the harness's gradient): the weights after each update."""
    gradient, w, path = harness_gradient(), w0.clone(), []
    for _ in range(steps):
        w = w - lr * gradient(X, y, w)
        path.append(w)
    return path


@seeded_once
def _descent_runs(seed, p):
    """train()'s other configurations at (seed, p), and plain descent's final weights and losses on each
    (the harness's gradient; no submission): each lr of `lr_family` on overlapping classes (blobs 1 apart),
    where plain descent at a large lr overshoots (the loss goes up at some of the first 6 steps at 96% of
    seeds); and each of `feature_scales` (features that many times larger, lr / scale^2 so that the step is
    as large as at the spec's lr), where the gradient is that many times larger: a clipped or normalised
    step shows. Returns [(what, X, y, w0, lr, final w, losses)]."""
    runs = []
    X, y, w0 = _problem(seed + 20_000, p["n"], p["d"], distance=1.0)
    for lr in p["lr_family"]:
        runs.append((f"lr = {lr:g} (two overlapping classes)", X, y, w0, lr))
    for scale in p.get("feature_scales", ()):
        Xs, ys, ws = _problem(seed + 21_000, p["n"], p["d"])
        lr = p["lr"] / scale ** 2
        runs.append((f"lr = {lr:g} on features {scale:g} times larger (a gradient that large)", Xs * scale, ys, ws, lr))
    out = []
    for what, X, y, w0, lr in runs:
        path = _descent(X, y, w0, lr, p["lr_family_steps"])
        out.append((what, X, y, w0, lr, path[-1], [float(_spec_loss(X, y, v)) for v in [w0, *path]]))
    # float32 features that many times larger: margins in the hundreds, both signs, where exp(-m) overflows float32
    # beyond 88. train() that writes its own loss or sigmoid inline (log(1 + exp(-m)), exp(-m) / (1 + exp(-m)))
    # instead of the stable forms records inf or steps to nan; the harness's own loss() and gradient() do
    # not (round 13's blind red team). Plain descent in float64 is the target, float32's precision the tolerance.
    for scale in p.get("float32_feature_scales", ()):
        Xs, ys, ws = _problem(seed + 22_000, p["n"], p["d"])
        lr = p["lr"] / scale ** 2
        path = _descent(Xs * scale, ys, ws, lr, p["lr_family_steps"])
        out.append((f"lr = {lr:g} on float32 features {scale:g} times larger (margins in the hundreds, where exp(-m) "
                    "overflows float32)", (Xs * scale).float(), ys, ws.float(), lr, path[-1],
                    [float(_spec_loss(Xs * scale, ys, v)) for v in [ws, *path]]))
    return out


def _follows_descent(sub, seed, p):
    """train() at `_descent_runs`' configurations, where the loss goes up or the gradient is large: it
    takes every step w <- w - lr * gradient(w) with the lr it is given, whatever the loss or the gradient's
    size, so its final weights are plain descent's (the harness's gradient in both; float64 orderings agree
    to ~1e-14). A Violation names the configuration and how far off. The losses train() records are
    first-loss's own comparison."""
    keys = ("n", "d", "lr", "lr_family", "lr_family_steps", "feature_scales", "float32_feature_scales")
    steps = p["lr_family_steps"]
    runs = _descent_runs(seed, {k: p[k] for k in keys if k in p})
    # every run in one message (issue 17); train()'s invariants are first-loss's own run's, so copies go in.
    # The harness's loss() and gradient(): a wrong or unstable one of the student's is its own checks' finding.
    with sub.replaced("gradient", _inside(sub, harness_gradient)), sub.replaced("loss", _inside(sub, harness_loss_fn)):
        replies = sub.batch([("train", None, (X.clone(), y.clone(), w0.clone(), lr, steps), {})
                             for _what, X, y, w0, lr, _expected, _losses in runs])
    for (what, X, _y, _w0, _lr, expected, losses), reply in zip(runs, replies):
        if isinstance(reply, RemoteError):
            if reply.kind == "missing":
                sub.get("train")  # raises the ApiError a single call would
            raise reply
        if not (isinstance(reply, (tuple, list)) and len(reply) == 2):
            raise ApiError(f"train() returned {type(reply).__name__}; expected a pair (w, losses)")
        w = expect_tensor(reply[0], "train() (its first result, w)", shape=(X.shape[1] + 1,), dtype="float", finite=False)
        # the module's "whatever dtype X has" holds for train() too: float32 in, float32 w out (a train() that
        # computes in float64 "for precision" and never casts back returns float64 here: round 7's blind red team;
        # first-loss's own run is float64, where that cannot show)
        same_dtype(w, X.dtype, f"train() (its first result, w), on {str(X.dtype).replace('torch.', '')} X and w0,")
        off = float((w.detach().double() - expected).abs().max())
        # float64 orderings agree to ~1e-14; float32's steps to its precision
        rtol = 1e-9 if X.dtype == torch.float64 else 1e-4
        if X.dtype != torch.float64:
            recorded = [float(v) for v in expect_history(reply[1], steps)]
            bad = [k for k, (a, b) in enumerate(zip(recorded, losses)) if not abs(a - b) <= 1e-3 * (1 + abs(b))]
            if bad:
                k = bad[0]
                raise Violation(f"train() with {what} for {steps} steps records the loss before step {k} as "
                                f"{recorded[k]:.6g}, where it is {losses[k]:.6g} (the grader's loss() and gradient() "
                                "in place of yours). A loss written inline as log(1 + exp(-m)) overflows to inf once "
                                "exp(-m) does (m < -88 in float32); the sigmoid as exp(-m) / (1 + exp(-m)) gives inf / inf "
                                "= nan. Call loss() and gradient(), or write the stable forms (softplus(-m), sigmoid(-m))")
        if off <= rtol * (1 + float(expected.abs().max())):  # (nan fails)
            continue
        rises = sum(b > a for a, b in zip(losses, losses[1:]))
        w_list = ", ".join(f"{v:.6g}" for v in w.detach().double().tolist())
        e_list = ", ".join(f"{v:.6g}" for v in expected.tolist())
        raise Violation(f"train() with {what} for {steps} steps (the grader's gradient) "
                        f"ends at w = [{w_list}], not where gradient descent w <- w - lr * gradient(w) ends: "
                        f"[{e_list}] (largest difference {off:.3g})"
                        + (f". There the loss goes up at {rises} of the {steps} steps: train() must take every step "
                           "with the lr it is given (no step size of its own, no early stop, no best-so-far weights)"
                           if rises else ": train() must take every step with the lr it is given, the gradient "
                           "as it is (no clipping, no normalising)"))


def _train_between_calls(sub, X, y, w0):
    """Once per student's process, in its own process: train() twice (lr 0.1 then 1, 3 steps, the harness's loss and
    gradient inside), the first call's (w, losses) kept by the caller: the second must leave them as they came
    (blind round 9: a module-level list of losses, a mutable default `losses=[]`, one weight buffer, each
    cleared and refilled at the next call)."""
    if not sub.first_time("train-between-calls"):
        return
    with sub.replaced("gradient", _inside(sub, harness_gradient)), sub.replaced("loss", _inside(sub, harness_loss_fn)):
        results_kept(sub, "train", [(f"lr = {lr:g}, 3 steps", (X.clone(), y.clone(), w0.clone(), lr, 3))
                                    for lr in (0.1, 1.0)], ("w", "losses"), TRAIN_KEPT_CAUSES)


@keeps_rules
def first_loss(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"])
    steps = p["steps"]
    # the student's own gradient() read before train() is handed the harness's (integrity round 7b: a kept
    # stand-in answered for it after)
    note = _gradient_note(sub, X, y, w0)
    _train_between_calls(sub, X, y, w0)
    w, losses = _train(sub, X, y, w0, p["lr"], max(steps) + 1)
    if p.get("lr_family"):
        _follows_descent(sub, seed, p)
    twice = torch.cat([X[:10], X[:10]]), torch.cat([torch.ones_like(y[:10]), torch.zeros_like(y[:10])])
    takes_every_step(lambda lr, count: _train(sub, X.clone(), y.clone(), w0.clone(), lr, count), once_for=sub,
                     at_rest=lambda count: _train(sub, twice[0].clone(), twice[1].clone(), torch.zeros_like(w0), p["lr"], count),
                     at_rest_words=f"at lr = {p['lr']:g} on 10 points given twice, once with each label, from w = 0 (where "
                                   "the gradient is zero, to rounding)",
                     tiny_loss=lambda count: _train(sub, *_separated(seed), p["lr"], count),
                     tiny_loss_words=f"at lr = {p['lr']:g} on 10 points each classified right with a margin of 30 to 40 "
                                     "(a loss below 1e-13, still falling)")
    return {"steps": steps, "losses": [losses[k] for k in steps], "history": losses, "n": p["n"],
            "final": w.detach().double().reshape(-1).tolist(), "updates": max(steps) + 1,
            **note}


@keeps_rules
def convergence(sub, seed, p):
    X, y, w0 = _problem(seed, p["n"], p["d"], distance=6.0, margin=0.5)
    w, losses = _train(sub, X, y, w0, p["lr"], p["budget"], harness_loss=True)
    _descends(sub, seed, p, X, y, w0, w.detach().double().numpy().copy())  # (a copy: the probes call train() again)
    # Accuracy by the spec's convention x~ = [x, -1], computed here rather than by the submission.
    scores = torch.cat([X, -torch.ones(len(X), 1, dtype=X.dtype)], 1) @ w.detach().to(X.dtype)
    accuracy = ((scores >= 0).long() == y).double().mean().item()
    return {"accuracy": accuracy, "steps": p["budget"], "losses": losses[:: max(1, len(losses) // 10)],
            "boundary": {"w": w.tolist(), "points": X.tolist(), "labels": y.tolist(), "bias": -1.0}}


def _descends(sub, seed, p, X, y, w0, w_end):
    """graders/descent.py: train()'s weights after 1, 2 and 3 steps and at the budget (`w_end`, convergence's own run:
    on separable data the logistic loss has no minimum, so descent is still on its way there) are gradient descent's at
    one learning rate, to 1e-5 (float64 orderings agree to ~1e-14; a float32 step inside, first-loss's charge, stays
    within it)."""
    probes = probe_steps(seed, p["budget"], drawn=False)
    def read(result, k):
        return expect_tensor(train_result(result, k, "(w, losses)")[0], f"train() (its first result, w, after {k} "
                             "steps)", shape=(X.shape[1] + 1,), dtype="float", finite=False).detach().double()

    with sub.replaced("gradient", _inside(sub, harness_gradient)), sub.replaced("loss", _inside(sub, harness_loss_fn)):
        got = weights_of(lambda k: sub.call("train", X.clone(), y.clone(), w0.clone(), p["lr"], k, given_copies=True),
                         probes, read)
    got[p["budget"]] = w_end
    follows_descent(got, w0.numpy(), lambda w, _k: _spec_gradient(X, y, torch.from_numpy(w)).numpy(),
                    lambda want: 1e-5 * (1 + float(np.abs(want).max())),
                    f"on convergence's problem (seed {seed}, lr {p['lr']:g})", p["lr"],
                    ("exercise-1 convergence", seed, p["n"], p["d"], p["lr"]))


def _extreme(seed, n, d, scale, spread=0.5):
    """X (n, d) in random directions, labels from the seed, and w with every <x~_i, w> = +-scale (times 1 +- up
    to `spread`): the margins t_i <x~_i, w> have both signs (points on both sides, right and wrong)."""
    rng = np.random.default_rng(seed + 7)
    w = rng.normal(size=d + 1)
    a, b = w[:d], w[d]
    unit = a / np.linalg.norm(a)
    signed = scale * rng.choice([-1.0, 1.0], n) * rng.uniform(1 - spread, 1 + spread, n)
    noise = rng.normal(size=(n, d))
    noise -= np.outer(noise @ unit, unit)  # orthogonal to a: moves no score
    X = noise + np.outer((signed + b) / np.linalg.norm(a), unit)  # <x, a> - b = signed
    y = rng.integers(0, 2, n)
    return torch.tensor(X), torch.tensor(y, dtype=torch.int64), torch.tensor(w)


def _separated(seed, n=10):
    """(X, y, w0): n points whose margins t_i <x~_i, w0> lie between 30 and 40 (X = [t m / 2, 1], w0 = [2, 1/2,
    1/2]): a loss of 1e-13 to 4e-18, not 0, and still falling under gradient descent."""
    rng = np.random.default_rng(seed + 9)
    y = rng.integers(0, 2, n)
    margins = rng.uniform(30.0, 40.0, n)
    X = np.stack([(2 * y - 1) * margins / 2, np.ones(n)], 1)
    return torch.tensor(X), torch.tensor(y, dtype=torch.int64), torch.tensor([2.0, 0.5, 0.5], dtype=torch.float64)


def _margin_grid(seed):
    """One point at each margin of a grid from 1 to 40 in magnitude, both signs (each jittered by the seed, a
    multiple of 1/8): (label, X, y, w, tolerance). X = [t m / 2, 1] and w = [2, 1/2, 1/2], so the margin
    t <x~, w> is m exactly in any order of the sum. The loss log(1 + e^-m) is held to float64's rounding
    (atol 1e-14: log(1 + e^-m) written with log, not log1p, as torch's binary_cross_entropy_with_logits
    does, is off by ~2e-15 at positive margins), except below m = -20, where torch's F.softplus (-m beyond
    its threshold of 20) is off by up to 2.1e-9: an asymptote -m, or any cut-off, taken earlier is off by
    e^m, 2e-9 to 5e-5 (round 5's blind red team)."""
    cases = []
    for m, drawn in softplus_grid(seed):  # graders/data.py: the grid exercises 4 and 5 probe log(1 + e^x) on too
        label = int(drawn)
        t = 2 * label - 1
        X = torch.tensor([[t * m / 2, 1.0]], dtype=torch.float64)
        w = torch.tensor([2.0, 0.5, 0.5], dtype=torch.float64)
        cases.append((f"one point at margin {m:g} (n=1, d=2)", X, torch.tensor([label]), w,
                      {"rtol": 1e-13, "atol": SOFTPLUS_GAP if m < -20 else 1e-14, "once": True}))
    return cases


@seeded_once
def _margin_grid_cases(seed, p):
    """_margin_grid(seed) as stability's loss cases."""
    return [("loss", *case) for case in _margin_grid(seed)]


BF16_CASE = "n=20, d=4, bfloat16 X and w"


@seeded_once
def _stability_cases(seed, p):
    """stability's inputs at (seed, p), each case its own tensors (no call sees what another did to
    them): ("loss" or "gradient", label, X, y, w, the tolerance a loss case is judged with)."""
    cases = []
    # The spec's own configuration (first-loss's first loss): where it is wrong, the formula is, and
    # first-loss charges that; this check then judges finiteness only (graders/kinds/stability.py).
    X, y, w = _problem(seed, p["n"], p["d"])
    # held to first-loss's own tolerance: a loss wrong at 1e-9 there (float32 inside) is first-loss's to charge, and
    # the margin grid below (float64's rounding) then judges finiteness only. Three more ordinary cases are bases
    # too: float32's rounding of one mean can fall below 1e-9 by chance (1% of seeds), of log 2 (w = 0) never.
    base = {"base": True, "rtol": 1e-9, "atol": 1e-12}
    cases.append(("loss", f"n={p['n']}, d={p['d']}, the spec's configuration", X, y, w, base))
    X, y, w = _problem(seed + 1, 1, 2)
    cases.append(("loss", "n=1, d=2", X, y, w, {}))
    X, y, w = _problem(seed + 2, 20, 1)
    cases.append(("loss", "n=20, d=1", X, y, w, base))
    X, y, w = _problem(seed + 3, 20, 4)
    # float32 is held to its rounding at the loss's scale (atol 1e-6), as float64 is (the margin grid's atol 1e-14),
    # never relatively where the loss itself is tiny: log(1 + exp(-|m|)) with log where log1p belongs gives 0 for
    # 2.06e-9 at m = 20 in float32 (6e-8 at most, float32's rounding of 1: left by blind round 7, borderline), and
    # the same formula is the one the grid admits in float64 (0 for 4.2e-18 at m = 40: left again by blind round 8).
    # It is the deck's own formula, log(1 + exp(-u)), guarded by the margin's sign, and torch's
    # binary_cross_entropy_with_logits was written so (log(e^-max + e^(-x-max)) + max) before it used log1p:
    # charging a loss's relative digits where the loss is below float64's rounding of 1 charges that formula
    cases.append(("loss", "n=20, d=4, float32 X and w", X.float(), y.clone(), w.float(), {"rtol": 1e-5, "atol": 1e-6}))
    # bfloat16 in, bfloat16 out, as gradcheck holds gradient() (blind round 8: a loss computed in float32 and never
    # cast back); its value to bfloat16's 8 bits (2^-8 = 3.9e-3 relative, twice for a cast inside)
    cases.append(("loss", BF16_CASE, X.bfloat16(), y.clone(), w.bfloat16(), {"rtol": 1e-2, "atol": 1e-2}))
    cases.append(("loss", "n=20, d=4, X non-contiguous (a transposed tensor)", X.t().contiguous().t(), y.clone(),
                  w.clone(), base))
    cases.append(("loss", "n=20, d=4, w = 0 (every margin 0)", X.clone(), y.clone(), torch.zeros_like(w), base))
    # labels already in X's float dtype: y.to(X.dtype) is then y itself, not a copy, so an in-place
    # t.mul_(2).sub_(1) on it rewrites the caller's labels (int labels hide it: .to() copies them)
    cases.append(("loss", "n=20, d=4, y as float64 labels (X's dtype)", X.clone(), y.double(), w.clone(), {}))
    X8, y8, w8 = _problem(seed + 4, 8, 3)
    cases.append(("gradient", "float64 labels (X's dtype), moderate margins", X8, y8.double(), w8, {}))
    for label, size in (("margins of magnitude 1000", 1000.0), ("margins of magnitude 30", 30.0)):
        X, y, w = _extreme(seed, 8, 3, size)
        cases.append(("loss", f"{label} in random directions (n=8, d=3)", X, y, w, {}))
        cases.append(("gradient", label, X.clone(), y.clone(), w.clone(), {}))
    # one margin of -1000 among ordinary ones: a loss that, where any term overflows, falls back to an
    # asymptote for every point (exact only where all margins are large) shows here
    X, y, w = _extreme(seed + 5, 8, 3, 1000.0)
    Xo, yo, _ = _problem(seed + 6, 8, 3)
    Xm, ym = torch.cat([X[:2], Xo[:6]]), torch.cat([y[:2], yo[:6]])
    cases.append(("loss", "two margins of magnitude 1000 among six ordinary ones (n=8, d=3)", Xm, ym, w, {}))
    # float32 overflows where float64 does not: exp(u) is inf beyond u = 88.7 there (709.8 in float64), so
    # a switch to the asymptote placed for float64 (u > 700) leaves margins of 100 infinite in float32
    # (beyond 710, float64's case above shows the same switch in both dtypes)
    X, y, w = _extreme(seed + 1, 8, 3, 100.0)
    cases.append(("loss", "margins of magnitude 100, float32 (n=8, d=3)", X.float(), y.clone(), w.float(),
                  {"rtol": 1e-5, "atol": 1e-6}))
    cases.append(("gradient", "margins of magnitude 100, float32", X.float(), y.clone(), w.float(), {}))
    return cases


@keeps_rules
def stability(sub, seed, p):
    """loss() over a family of inputs (sizes, float32, a non-contiguous X, every margin 0) against the
    reference's values, and loss() and gradient() at margins of magnitude 1000 in random directions:
    every call in one message, then judged in order."""
    _between_calls(sub, seed, "loss")
    calls, judges, notes = _Calls(sub), [], []

    def loss_case(name, X, y, w, tolerance):
        i = calls.add("loss", "loss", X, y, w)
        # gradient() on the same bfloat16 inputs: a cast both share is gradcheck's to charge (one bug, one deduction)
        companion = calls.add("gradient", "gradient", X.clone(), y.clone(), w.clone()) if name == BF16_CASE else None

        def judge():
            try:
                value = _at(f"loss(), {name}", lambda: calls.judged(i, {"n": len(X), "d": X.shape[1]}, finite=False))
            except Violation:
                shared = "" if companion is None else same_cast_as(
                    calls.replies[i], calls.replies[companion], X.dtype, "loss()", "gradient()", "gradcheck")
                if not shared:
                    raise
                notes.append(shared)
                if isinstance(calls.replies[i], RemoteError):  # no value to judge: not judged (graders/kinds/stability.py)
                    return {"name": f"loss, {name}", "value": None, "excused": True}
                value = calls.value(i)
            return {"name": f"loss, {name}", "value": value.item(), **tolerance}
        judges.append(judge)

    def gradient_case(label, X, y, w, _tolerance):
        i = calls.add("gradient", "gradient", X, y, w)

        def judge():
            # finiteness only: gradient()'s values and its dtype in float32 are gradcheck's
            grad = no_graph(calls.judged(i, {"n": 8, "d": 3}, finite=False, follows_dtype=False), "gradient()")
            return {"name": f"gradient at {label} (n=8, d=3): largest entry", "finite_only": True,
                    "value": grad.abs().max().item() if torch.isfinite(grad).all() else float("nan")}
        judges.append(judge)

    # the margin grid (24 calls of loss() on one point) does not depend on the seed's data: at the first seed of
    # the student's process only (the visible ones come first), its cases marked "once" (issue 17: ~5 ms a seed)
    grid = sub.first_time("margin-grid")
    for what, *case in _stability_cases(seed, p) + (_margin_grid_cases(seed, p) if grid else []):
        (loss_case if what == "loss" else gradient_case)(*case)
    calls.send()
    cases = [judge() for judge in judges]
    return {"cases": cases, **({"note": notes[0]} if notes else {})}


def _device_run(sub, seed):
    def run(device):
        X, y, w = _problem(seed, 16, 2, dtype=torch.float32)
        X, y, w = X.to(device), y.to(device), w.to(device)
        return {"loss": sub.get("loss")(X, y, w), "gradient": sub.get("gradient")(X, y, w)}
    return run


placement, parity = device_probes(_device_run)
