"""Exercise 5: a multi-layer perceptron with hand-written backprop (the MLHEP seminar).

Each layer is a torch.autograd.Function: `forward` computes the output (save what backward needs
with ctx.save_for_backward), `backward` receives grad = dL/d(output) and returns dL/d(each input).
The seminar's cheat sheet, for Y = X W + b with X (n, d_in), W (d_in, d_out), b (d_out,):
  - linear over X:  dL/dX = dL/dY @ W^T
  - linear over W:  dL/dW = X^T @ dL/dY        (our loss is already a mean: no extra 1/n)
  - linear over b:  dL/db = dL/dY summed over the batch
  - sigmoid:        dL/dx = dL/dy * y (1 - y), with y = sigmoid(x)
Derive the others the same way: tanh (y = tanh x), ReLU (y = max(0, x)), softplus (y = log(1 + e^x)).
At x = 0 exactly, ReLU'(0) = 0, as torch has it.
Work with tensors of whatever dtype and device the inputs have: a tensor made inside, in forward or
backward, takes them from the inputs (torch.ones_like(y), torch.zeros_like(x), x.new_zeros(n)).

The MLP: params = [W1, b1, W2, b2, ...]; logits = Linear(act(... act(Linear(X, W1, b1)) ...), WL, bL),
an activation between layers and none after the last. The task is XOR (four Gaussians, opposite ones
sharing a label), which no line separates. Check your work with:  dldiy check exercise-5
"""

import torch


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, W, b):
        raise NotImplementedError("exercise-5: implement Linear.forward (X @ W + b)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("exercise-5: implement Linear.backward (dL/dX, dL/dW, dL/db)")


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError("exercise-5: implement Sigmoid.forward")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("exercise-5: implement Sigmoid.backward")


class Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError("exercise-5: implement Tanh.forward")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("exercise-5: implement Tanh.backward")


class ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError("exercise-5: implement ReLU.forward")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("exercise-5: implement ReLU.backward")


class Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError("exercise-5: implement Softplus.forward (keep it finite for large x)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("exercise-5: implement Softplus.backward")


def init_params(sizes, generator):
    """[W1, b1, W2, b2, ...] for layer sizes such as [2, 8, 1]: W_l (d_in, d_out) ~ N(0, 1/d_in) (any scaling by the
    fan-in d_in, Glorot's or He's, is accepted), b_l (d_out,) = 0, float64. Draw with `generator`
    (torch.randn(..., generator=generator)) so that hidden units start different."""
    raise NotImplementedError("exercise-5: implement init_params(sizes, generator)")


def mlp_forward(X, params, activation="tanh"):
    """The logits (n, d_out): Linear layers through your Functions (Linear.apply, Tanh.apply, ...; not
    F.linear or nn.Linear), with `activation` ('sigmoid', 'tanh', 'relu' or 'softplus') between them,
    none after the last."""
    raise NotImplementedError("exercise-5: implement mlp_forward(X, params, activation)")


def loss(logits, y):
    """Mean binary cross-entropy from logits (n, 1) and labels y (n,) in {0, 1}: mean of softplus(z) - y z. A smooth
    function: its gradient is (sigmoid(z) - y) / n everywhere, at z = 0 exactly too."""
    raise NotImplementedError("exercise-5: implement loss(logits, y)")


def train(X, y, params, lr, steps, activation="tanh"):
    """Full-batch gradient descent. params are leaf tensors with requires_grad=True: compute the loss,
    call .backward(), update each p in place under torch.no_grad(). Returns (params, losses), with
    losses[k] the loss *before* update k (len(losses) == steps)."""
    raise NotImplementedError("exercise-5: implement train(X, y, params, lr, steps, activation)")
