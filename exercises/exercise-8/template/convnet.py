"""Exercise 8: convolutions by hand, then a small CNN on the 8x8 digits.

conv2d as deep-learning libraries define it (a cross-correlation: the kernel is NOT flipped):
    y[n, k, i, j] = b[k] + sum_{c, u, v} w[k, c, u, v] * xpad[n, c, s*i + u, s*j + v]
where xpad is x zero-padded by `padding` on all four sides, s is the stride, and the output is
Ho = (H + 2*padding - kh) // s + 1 high (likewise Wo).

im2col: F.unfold(x, (kh, kw), padding=padding, stride=stride) has shape (N, C*kh*kw, Ho*Wo); column
l of example n is the window under output position l. The convolution is then ONE matrix product with
weight.reshape(K, -1). In backward, F.fold (unfold's adjoint) sums column gradients back onto pixels.

2x2 max-pooling with stride 2: each output is the max of its window; its gradient goes to the argmax
(where several entries tie for the max, all of it to any one of them, the others 0).

Write forward AND backward of both as torch.autograd.Function subclasses (no F.conv2d or F.max_pool2d,
nor nn.Conv2d, nn.MaxPool2d or their torch.* twins: those are what you are checked against). Keep every tensor on the inputs' device.
Check your work with:  dldiy check exercise-8
"""

import torch


class Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        """x (N, C, H, W), weight (K, C, kh, kw), bias (K,) -> (N, K, Ho, Wo)."""
        raise NotImplementedError("exercise-8: implement Conv2dFunction.forward")

    @staticmethod
    def backward(ctx, grad_out):
        """Returns (grad_x, grad_weight, grad_bias, None, None): stride and padding get no gradient."""
        raise NotImplementedError("exercise-8: implement Conv2dFunction.backward")


class MaxPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        """x (N, C, H, W) with H, W even -> (N, C, H/2, W/2). A window holding a NaN gives NaN, as
        F.max_pool2d (and torch.max) do."""
        raise NotImplementedError("exercise-8: implement MaxPool2dFunction.forward")

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError("exercise-8: implement MaxPool2dFunction.backward")


def conv2d(x, weight, bias, stride=1, padding=0):
    return Conv2dFunction.apply(x, weight, bias, stride, padding)


def max_pool2d(x):
    return MaxPool2dFunction.apply(x)


def cnn_forward(params, x):
    """Logits (N, 10) for x (N, 1, 8, 8): conv2d(x, params["conv_w"], params["conv_b"], padding=1)
    -> ReLU -> max_pool2d -> flatten -> @ params["fc_w"].T + params["fc_b"]. Any number K of channels:
    conv_w (K, 1, 3, 3), conv_b (K,), fc_w (10, 16 K), fc_b (10,); params read by its keys and left as
    it was (no key added or removed). At an input of exactly 0, ReLU'(0) = 0, as torch.relu has it."""
    raise NotImplementedError("exercise-8: implement cnn_forward(params, x)")


def train(params, X, y, lr, steps, batch_size):
    """Plain SGD on the mean cross-entropy (F.cross_entropy is fine here).
    Batch k holds rows (k*batch_size + i) mod n for i < batch_size, in that order: always batch_size
    of them, so when batch_size > n a batch holds some rows more than once.
    params is a dict of tensors that require grad; update them in place (p -= lr * p.grad, without
    recording the update in the graph: the same tensors, the same memory) and return (params, losses),
    params the very dict given, losses[k] being the loss before update k. Everything runs in the dtype
    of params and X (float64 in: the whole training in float64)."""
    raise NotImplementedError("exercise-8: implement train(params, X, y, lr, steps, batch_size)")
