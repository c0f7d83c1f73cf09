"""Exercise 4: multi-class classification (softmax regression) and the loss functions of the course.

Notation (the course decks):
  - softmax regression predicts P(class c | x) = softmax(W x + b)_c, with W (k, d) and b (k,);
    for a batch X (n, d) the logits are Z = X @ W.T + b, shape (n, k) (k = 4: rain, snow, hail, sun);
  - softmax(z)_c = exp(z_c) / sum_j exp(z_j);
  - every loss below is a mean over the n examples of a per-example loss:
      cross-entropy (gold class y)    -z_y + log sum_c exp z_c
      binary cross-entropy (y in {0,1}, logit z)    -y z + log(1 + exp z)
      binary hinge (t in {-1, +1})    max(0, 1 - t w)
      binary hinge (y in {0, 1})      max(0, 1 - (2y - 1) w)
      multi-class hinge, margin m     max(0, m - z_y + max_{c != y} z_c)
      L1                              |y - w|
      L2                              (y - w)^2

Use torch operations (autograd computes the gradients here), but not torch's own version of the
function you write, which is what it is checked against: no torch.softmax / F.softmax / F.log_softmax
in softmax, no F.cross_entropy / F.nll_loss in cross_entropy, no F.binary_cross_entropy(_with_logits)
in bce_with_logits, no F.multi_margin_loss in multiclass_hinge, no F.l1_loss in l1_loss, no F.mse_loss
(nor F.huber_loss, F.smooth_l1_loss) in l2_loss. Keep everything finite for logits as
large as 1000: exp(1000) overflows. Work with tensors of whatever dtype and device the inputs have: a
tensor made inside takes them from the inputs (torch.zeros_like(w), torch.eye(k, dtype=Z.dtype,
device=Z.device)). Check your work with:  dldiy check exercise-4
"""



def softmax(Z):
    """Row-wise softmax of the logits Z (n, k): returns (n, k), each row summing to 1."""
    raise NotImplementedError("exercise-4: implement softmax(Z)")


def cross_entropy(Z, y):
    """Mean cross-entropy from logits Z (n, k) and class indices y (n,) (int64), via log-sum-exp."""
    raise NotImplementedError("exercise-4: implement cross_entropy(Z, y)")


def bce_with_logits(z, y):
    """Mean binary cross-entropy from logits z (n,) and labels y (n,) in {0, 1} (float). A smooth function:
    its gradient is (sigmoid(z) - y) / n everywhere, at z = 0 exactly too."""
    raise NotImplementedError("exercise-4: implement bce_with_logits(z, y)")


def hinge(w, t):
    """Mean binary hinge loss max(0, 1 - t w) for scores w (n,) and labels t (n,) in {-1, +1}."""
    raise NotImplementedError("exercise-4: implement hinge(w, t)")


def hinge_01(w, y):
    """Mean binary hinge loss for scores w (n,) and labels y (n,) in {0, 1}."""
    raise NotImplementedError("exercise-4: implement hinge_01(w, y)")


def multiclass_hinge(Z, y, margin=1.0):
    """Mean multi-class hinge loss with margin m for logits Z (n, k) and class indices y (n,)."""
    raise NotImplementedError("exercise-4: implement multiclass_hinge(Z, y, margin)")


def l1_loss(pred, target):
    """Mean absolute error between pred (n,) and target (n,)."""
    raise NotImplementedError("exercise-4: implement l1_loss(pred, target)")


def l2_loss(pred, target):
    """Mean squared error between pred (n,) and target (n,)."""
    raise NotImplementedError("exercise-4: implement l2_loss(pred, target)")


def train(X, y, W0, b0, lr, steps):
    """Softmax regression by gradient descent on cross_entropy(X @ W.T + b, y), from W0 (k, d), b0 (k,):
    k classes, whether or not y has an example of each.
    Returns (W, b, losses) where losses[k] is the loss *before* update k, so len(losses) == steps, and
    W, b are plain tensors (no autograd graph: requires_grad False). Do not modify W0 and b0 in place;
    they may require grad themselves (a model's parameters): train from their values."""
    raise NotImplementedError("exercise-4: implement train(X, y, W0, b0, lr, steps)")
