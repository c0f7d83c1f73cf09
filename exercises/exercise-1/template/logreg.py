"""Exercise 1: logistic regression separating two Gaussians, by hand.

Notation (day 1 of the course):
  - labels y in {0, 1} become t = 2y - 1 in {-1, +1};
  - the bias trick: x~ = [x, -1] and w~ = [w, b], so <x~, w~> = <x, w> - b;
  - the loss L(w~) = (1/n) sum_i log(1 + exp(-t_i <x~_i, w~>));
  - its negative gradient -grad L = (1/n) sum_i sigma(-t_i <x~_i, w~>) t_i x~_i.

Work with torch tensors of whatever dtype and device X has; no autograd (write the gradient by hand).
Check your work with:  dldiy check exercise-1
"""



def loss(X, y, w):
    """Mean logistic loss. X: (n, d) float, y: (n,) labels in {0, 1}, w: (d+1,) with the bias last.
    Returns a 0-dimensional tensor. Keep it finite for margins as large as 1000."""
    raise NotImplementedError("exercise-1: implement loss(X, y, w)")


def gradient(X, y, w):
    """The gradient of loss(X, y, w) with respect to w, by hand: a (d+1,) tensor."""
    raise NotImplementedError("exercise-1: implement gradient(X, y, w)")


def train(X, y, w0, lr, steps):
    """Gradient descent from w0 with learning rate lr for `steps` updates.
    Returns (w, losses) where losses[k] is the loss *before* update k, so len(losses) == steps."""
    raise NotImplementedError("exercise-1: implement train(X, y, w0, lr, steps)")
