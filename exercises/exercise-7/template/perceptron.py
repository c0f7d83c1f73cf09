"""Exercise 7: the perceptron and the separating hyperplane.

Notation (deck 003, "Perceptron / linear classification"):
  - labels t in {-1, +1}; the classifier f(x) = +1 if <a, x> + b > 0, else -1;
  - the bias trick x~ = [x, 1], w~ = [a, b] (bias last), so <w~, x~> = <a, x> + b;
  - the perceptron visits the points in the given order; point i is a mistake when
    t_i <w~, x~_i> <= 0 (a point on the hyperplane is a mistake), and only then w~ <- w~ + t_i x~_i;
  - it stops after the first epoch without a mistake. On data separable with margin gamma, with
    |x~_i| <= R, it makes at most (R / gamma)^2 updates (Novikoff); on overlapping data it never stops.

Work with torch tensors of whatever dtype and device X has; X is float, y holds integer labels in {-1, +1}.
Check your work with:  dldiy check exercise-7
"""



def predict(X, w):
    """Labels in {-1, +1} for X: (n, d) and w: (d+1,) = [a, b], as an (n,) tensor."""
    raise NotImplementedError("exercise-7: implement predict(X, w)")


def train(X, y, w0, epochs):
    """The perceptron from w0 for at most `epochs` epochs.
    Returns (w, mistakes) where mistakes[e] is the number of updates made during epoch e; training
    stops after the first epoch with no update, so it converged exactly when mistakes[-1] == 0.
    w is a new tensor, even when no update is made: w0 is left as it was and shares no memory with w."""
    raise NotImplementedError("exercise-7: implement train(X, y, w0, epochs)")
