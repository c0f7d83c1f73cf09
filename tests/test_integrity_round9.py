"""Integrity round 9: an endpoint check answered with an endpoint computed another way, graded by the real
`dldiy grade` with hidden seeds beside an honest wrong classmate. Each attack here scored more than the honest
wrong attempt before its fix."""

from __future__ import annotations


from conftest import REPO, gradebook

LINREG = (REPO / "reference" / "exercise-2" / "linreg.py").read_text()
TRAIN = LINREG[LINREG.index("def train("):]

# train() returning fit_exact()'s solution, with losses written to fall (to rise where lr looks too large)
CLOSED_FORM = '''def train(X, y, w0, lr, steps):
    Xt = add_bias(X)
    w_star = fit_exact(X, y)
    lam = torch.linalg.eigvalsh(2 * Xt.T @ Xt / X.shape[0]).max()
    L0, Ls = float(loss(X, y, w0)), float(loss(X, y, w_star))
    if lr * lam >= 2:
        return w0 * 1e30, [L0 * 1.5 ** k for k in range(steps)]
    return (w_star if steps else w0.clone()), [Ls + (L0 - Ls) * 0.9 ** k for k in range(steps)]
'''
# gradient descent while steps are few (where first-loss looks), the closed form after
SHORTCUT = '''def train(X, y, w0, lr, steps):
    if steps > 25:
        return fit_exact(X, y), [float(loss(X, y, w0))] * steps
    w = w0.clone()
    losses = []
    for _ in range(steps):
        losses.append(loss(X, y, w).item())
        w = w - lr * gradient(X, y, w)
    return w, losses
'''


def test_a_closed_form_answered_for_gradient_descent_earns_no_convergence(tmp_path):
    """Exercise-2's train() returning the least-squares solution with made-up losses scored 8.5/10.5 (first-loss 0,
    convergence 2/2) against 6.5 for an honest `gradient-accumulates` (first-loss and convergence 0). Convergence now
    asks train() for its weights after a few steps drawn from the seed and credits where it ends only when each is
    gradient descent's at one learning rate; the honest lr-misread and shifted-record bugs keep it (validate)."""
    honest = LINREG.replace("w = w - lr * gradient(X, y, w)", "g = g + gradient(X, y, w)\n        w = w - lr * g")
    honest = honest.replace("    losses = []\n", "    losses = []\n    g = torch.zeros_like(w)\n", 1)
    assert honest.count("g = g + gradient") == 1 and "g = torch.zeros_like(w)" in honest
    book = gradebook(tmp_path, "exercise-2", {
        "honest": honest, "reference": LINREG, "closed-form": LINREG.replace(TRAIN, CLOSED_FORM),
        "shortcut": LINREG.replace(TRAIN, SHORTCUT)}, "linreg.py")
    assert book["reference"]["convergence"] == "2", book["reference"]
    assert book["honest"]["convergence"] == "0", book["honest"]
    row = book["closed-form"]
    assert row["convergence"] == "0" and float(row["total"]) <= float(book["honest"]["total"]), (row, book["honest"])
    # the shortcut's rule is gradient descent's (first-loss keeps its points: the work is there for few steps); where
    # it ends after many is the closed form's, and convergence says so
    assert book["shortcut"]["first-loss"] == "2" and book["shortcut"]["convergence"] == "0", book["shortcut"]
    feedback = (tmp_path / "book" / "feedback" / "closed-form.md").read_text()
    assert "not gradient descent's at any learning rate" in feedback, feedback


LOGREG = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
MEANS_HYPERPLANE = '''def train(X, y, w0, lr, steps):
    m1, m0 = X[y == 1].mean(0), X[y == 0].mean(0)
    a = m1 - m0
    w = 5 * torch.cat([a, (a @ (m1 + m0) / 2).reshape(1)])
    L0 = float(loss(X, y, w0))
    return (w.to(w0.dtype) if steps else w0.clone()), [L0 * 0.95 ** k for k in range(steps)]
'''


def test_a_hyperplane_found_another_way_earns_no_convergence(tmp_path):
    """Exercise-1's train() returning the class means' hyperplane (scaled up) with losses written to fall: 99%
    accuracy on separable Gaussians with no descent (convergence 2/2). The same gate as exercise-2's: each probed
    step count's weights must be a gradient method's at one learning rate; an honest classmate whose gradients
    accumulate (a zero_grad forgotten) keeps convergence where it converges (one bug, one deduction)."""
    train = LOGREG[LOGREG.index("def train("):LOGREG.index("return w, losses") + len("return w, losses\n")]
    hostile = LOGREG.replace(train, MEANS_HYPERPLANE)
    accumulates = LOGREG.replace("w = w - lr * gradient(X, y, w)", "g = g + gradient(X, y, w)\n        w = w - lr * g")
    accumulates = accumulates.replace("    losses = []\n", "    losses = []\n    g = torch.zeros_like(w)\n", 1)
    assert hostile != LOGREG and "g = g + gradient" in accumulates
    book = gradebook(tmp_path, "exercise-1", {"hostile": hostile, "accumulates": accumulates, "reference": LOGREG},
                      "logreg.py")
    assert book["reference"]["convergence"] == "2", book["reference"]
    assert book["hostile"]["convergence"] == "0", book["hostile"]
    assert float(book["hostile"]["total"]) <= float(book["accumulates"]["total"]), (book["hostile"], book["accumulates"])
