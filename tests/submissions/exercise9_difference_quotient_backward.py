"""A hostile student (integrity red team, round 13): exercise-9 RNNCellFunction.backward as a fourth-order
difference quotient of its own forward, entry by entry: no derivative anywhere, plain torch ops."""

import torch


def _cell(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x @ W_ih.t() + b_ih + h @ W_hh.t() + b_hh)


class RNNCellFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h, W_ih, W_hh, b_ih, b_hh):
        ctx.save_for_backward(x, h, W_ih, W_hh, b_ih, b_hh)
        return _cell(x, h, W_ih, W_hh, b_ih, b_hh)

    @staticmethod
    def backward(ctx, grad_h_new):
        # no derivative anywhere: a fourth-order difference quotient of the forward, entry by entry
        inputs = ctx.saved_tensors
        step = 1e-3
        grads = []
        for i, t in enumerate(inputs):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            entries = []
            for j in range(t.numel()):
                e = torch.zeros(t.numel(), dtype=t.dtype, device=t.device)
                e[j] = step
                e = e.reshape(t.shape)

                def at(k):
                    moved = [u + k * e if m == i else u for m, u in enumerate(inputs)]
                    return (grad_h_new * _cell(*moved)).sum()
                entries.append((8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * step))
            grads.append(torch.stack(entries).reshape(t.shape))
        return tuple(grads)


def rnn_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    return RNNCellFunction.apply(x, h, W_ih, W_hh, b_ih, b_hh)


class ElmanRNN:
    """params: W_ih (H, D), W_hh (H, H), b_ih (H,), b_hh (H,), W_out (O, H), b_out (O,)."""

    def __init__(self, params):
        self.params = params

    def forward(self, xs):
        """xs (T, N, D) -> hidden states (T, N, H); every call starts from h0 = 0."""
        p = self.params
        h = torch.zeros(xs.shape[1], p["W_hh"].shape[0], dtype=xs.dtype, device=xs.device)
        hs = []
        for x in xs:
            h = rnn_cell(x, h, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"])
            hs.append(h)
        return torch.stack(hs)

    def predict(self, xs):
        """A linear read-out of the last hidden state: (N, O)."""
        return self.forward(xs)[-1] @ self.params["W_out"].t() + self.params["b_out"]


def clip_grad_norm(parameters, max_norm):
    """Scale every gradient by min(1, max_norm / (||g|| + 1e-6)), ||g|| the norm of all of them
    together (torch.nn.utils.clip_grad_norm_'s rule); returns ||g|| before clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:  # nothing to clip (torch's clip_grad_norm_ also returns 0)
        return torch.tensor(0.0)
    total = torch.sqrt(sum((g * g).sum() for g in grads))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)
    return total


def train(params, X, y, lr, steps, batch_size, max_norm):
    """SGD with global-norm clipping on the mean squared error of model.predict; X (T, n, D), y (n, O).
    Batch k holds the sequences (k*batch_size + i) mod n; losses[k] is the loss before update k."""
    model = ElmanRNN(params)
    n = X.shape[1]
    losses = []
    for k in range(steps):
        idx = (torch.arange(batch_size, device=X.device) + k * batch_size) % n
        loss = ((model.predict(X[:, idx]) - y[idx]) ** 2).mean()
        losses.append(loss.item())
        for p in params.values():
            p.grad = None
        loss.backward()
        clip_grad_norm(list(params.values()), max_norm)
        with torch.no_grad():
            for p in params.values():
                p -= lr * p.grad
    return params, losses
