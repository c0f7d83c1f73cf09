"""Exercise 9: an Elman RNN by hand, trained by backpropagation through time with gradient clipping.

The cell, in torch.nn.RNN's convention (x (N, D), h (N, H)):
    a  = x W_ih^T + b_ih + h W_hh^T + b_hh
    h' = tanh(a)
Write it as a torch.autograd.Function with a hand backward (tanh'(a) = 1 - tanh(a)^2 = 1 - h'^2).
Unroll it over a sequence xs (T, N, D) from h_0 = 0; calling backward() on a loss of the unrolled
graph is then backpropagation through time: keep h in the graph from one step to the next.

Clip by the GLOBAL norm, as torch.nn.utils.clip_grad_norm_ does:
    ||g|| = sqrt(sum over every parameter p of sum(p.grad ** 2)),
    every p.grad <- p.grad * min(1, max_norm / (||g|| + 1e-6)).

torch's own versions are what these are checked against, so not inside them: no torch.nn.RNNCell,
torch.nn.RNN or torch.rnn_tanh_cell in the cell, no torch.nn.utils.clip_grad_norm_ (nor get_total_norm)
in clip_grad_norm.

The task needs memory: each sequence holds T values; after the last one, say what the first was.
Keep every tensor on the inputs' device. Check your work with:  dldiy check exercise-9
"""

import torch


class RNNCellFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h, W_ih, W_hh, b_ih, b_hh):
        """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh): (N, H)."""
        raise NotImplementedError("exercise-9: implement RNNCellFunction.forward")

    @staticmethod
    def backward(ctx, grad_h_new):
        """Returns the gradients for (x, h, W_ih, W_hh, b_ih, b_hh), in that order."""
        raise NotImplementedError("exercise-9: implement RNNCellFunction.backward")


def rnn_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    return RNNCellFunction.apply(x, h, W_ih, W_hh, b_ih, b_hh)


class ElmanRNN:
    """params: a dict with W_ih (H, D), W_hh (H, H), b_ih (H,), b_hh (H,), W_out (O, H), b_out (O,).
    The model reads it by its keys at every call: weights updated in place after the model was made
    (train()'s SGD steps) are the ones its next call uses, and nothing is shared between models."""

    def __init__(self, params):
        self.params = params

    def forward(self, xs):
        """xs (T, N, D) -> the hidden states h_1..h_T stacked, (T, N, H), a new tensor at every call.
        Every call starts from h_0 = 0."""
        raise NotImplementedError("exercise-9: implement ElmanRNN.forward(xs)")

    def predict(self, xs):
        """h_T W_out^T + b_out: (N, O)."""
        raise NotImplementedError("exercise-9: implement ElmanRNN.predict(xs)")


def clip_grad_norm(parameters, max_norm):
    """Clip the gradients of `parameters` in place by their global norm; `parameters` is a list or any
    iterable of tensors (a generator such as model.parameters(): iterate it only once), and a tensor whose
    .grad is None is skipped. Return that norm, measured before clipping, as a 0-dimensional tensor of the
    gradients' dtype (as torch.nn.utils.clip_grad_norm_'s); with no gradient at all, nothing is clipped
    and the norm is 0."""
    raise NotImplementedError("exercise-9: implement clip_grad_norm(parameters, max_norm)")


def train(params, X, y, lr, steps, batch_size, max_norm):
    """SGD on the mean squared error of ElmanRNN(params).predict, X (T, n, D), y (n, O).
    Batch k holds the sequences (k*batch_size + i) mod n for i < batch_size, in that order: always
    batch_size of them, so when batch_size > n a batch holds some sequences more than once.
    Each step: loss, fresh gradients, clip_grad_norm(list(params.values()), max_norm), then
    p -= lr * p.grad for every parameter (without recording it in the graph: in place, the same tensors,
    the same memory). Returns (params, losses), params the very dict given, losses[k] being the loss
    before update k. Everything runs in the dtype of params and X (float64 in: the whole training in float64)."""
    raise NotImplementedError("exercise-9: implement train(...)")
