"""A multi-layer perceptron with hand-written backprop: the reference solution of exercise-5."""

import torch


class Linear(torch.autograd.Function):
    """Y = X W + b with X (n, d_in), W (d_in, d_out), b (d_out,)."""

    @staticmethod
    def forward(ctx, X, W, b):
        ctx.save_for_backward(X, W)
        return X @ W + b

    @staticmethod
    def backward(ctx, grad):
        X, W = ctx.saved_tensors
        # dL/dX = dL/dY W^T,  dL/dW = X^T dL/dY,  dL/db = sum over the batch of dL/dY
        return grad @ W.T, X.T @ grad, grad.sum(dim=0)


class Sigmoid(torch.autograd.Function):
    """y = 1 / (1 + exp(-x)),  dy/dx = y (1 - y)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


class Tanh(torch.autograd.Function):
    """y = tanh(x),  dy/dx = 1 - y^2."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class ReLU(torch.autograd.Function):
    """y = max(0, x),  dy/dx = 1 if x > 0 else 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0).to(grad.dtype)


class Softplus(torch.autograd.Function):
    """y = log(1 + exp(x)),  dy/dx = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "softplus": Softplus}


def init_params(sizes, generator):
    """[W1, b1, W2, b2, ...]: W_l ~ N(0, 1/d_in) (different units start different), b_l = 0."""
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        params.append(torch.zeros(d_in, d_out, dtype=torch.float64))
        params.append(torch.zeros(d_out, dtype=torch.float64))
    return params


def mlp_forward(X, params, activation="tanh"):
    """Linear layers with the activation between them (none after the last): the logits (n, d_out)."""
    act = ACTIVATIONS[activation]
    h = X
    layers = list(zip(params[0::2], params[1::2]))
    for i, (W, b) in enumerate(layers):
        h = Linear.apply(h, W, b)
        if i < len(layers) - 1:
            h = act.apply(h)
    return h


def loss(logits, y):
    """Mean binary cross-entropy from logits (n, 1) and labels y (n,) in {0, 1}: softplus(z) - y z."""
    z = logits.reshape(-1)
    return (Softplus.apply(z) - y * z).mean()


def train(X, y, params, lr, steps, activation="tanh"):
    """Full-batch gradient descent; params are leaf tensors with requires_grad=True, updated in place."""
    losses = []
    for _ in range(steps):
        value = loss(mlp_forward(X, params, activation), y)
        losses.append(value.item())
        for p in params:
            p.grad = None
        value.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
    return params, losses
