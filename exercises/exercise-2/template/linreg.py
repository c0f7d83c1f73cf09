"""Exercise 2: linear regression, exact and iterative.

Notation (deck 001, "First example: linear regression"):
  - the model f(x) = <w, x> + b, written with the bias trick x~ = [x, 1], w~ = [w, b] (bias last);
  - the mean squared error L(w~) = (1/n) sum_i (<x~_i, w~> - y_i)^2;
  - exactly: w~* = (X~^T X~)^{-1} X~^T y. Compute it by *solving* the normal equations
    X~^T X~ w~ = X~^T y (torch.linalg.solve) or the least-squares problem (torch.linalg.lstsq):
    never form the inverse, which loses digits when two features are almost identical;
  - iteratively: gradient descent w~ <- w~ - lr * grad L(w~), with the gradient written by hand
    (no autograd). Above lr = 2 / lambda_max(Hessian) gradient descent diverges: train() must then
    still return its losses (inf and nan included), not raise.

Work with torch tensors of whatever dtype and device X has.
Check your work with:  dldiy check exercise-2
"""



def fit_exact(X, y):
    """The least-squares solution for X: (n, d) float and y: (n,) float, as a (d+1,) tensor [w, b]."""
    raise NotImplementedError("exercise-2: implement fit_exact(X, y)")


def loss(X, y, w):
    """Mean squared error of w: (d+1,) on (X, y), a 0-dimensional tensor."""
    raise NotImplementedError("exercise-2: implement loss(X, y, w)")


def gradient(X, y, w):
    """The gradient of loss(X, y, w) with respect to w, by hand: a (d+1,) tensor."""
    raise NotImplementedError("exercise-2: implement gradient(X, y, w)")


def train(X, y, w0, lr, steps):
    """Gradient descent from w0 with learning rate lr for `steps` updates.
    Returns (w, losses) where losses[k] is the loss *before* update k, so len(losses) == steps."""
    raise NotImplementedError("exercise-2: implement train(X, y, w0, lr, steps)")
