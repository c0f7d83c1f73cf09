"""Convolutions by hand: the reference solution of exercise-8.

conv2d is a cross-correlation computed as one matrix product over the im2col matrix (F.unfold);
max_pool2d takes the max of each 2x2 window. Both have hand-written backward passes.
"""

import torch
import torch.nn.functional as F


class Conv2dFunction(torch.autograd.Function):
    """y[n, k, i, j] = b[k] + sum_{c, u, v} w[k, c, u, v] * xpad[n, c, s*i + u, s*j + v]."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        N, C, H, W = x.shape
        K, _, kh, kw = weight.shape
        Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, Ho*Wo)
        rows = cols.transpose(1, 2).reshape(N * Ho * Wo, C * kh * kw)  # one row per output position
        out = rows @ weight.reshape(K, -1).t() + bias  # (N*Ho*Wo, K)
        ctx.save_for_backward(rows, weight)
        ctx.geometry = (N, C, H, W, Ho, Wo, stride, padding)
        return out.view(N, K, Ho, Wo)

    @staticmethod
    def backward(ctx, grad_out):
        rows, weight = ctx.saved_tensors
        N, C, H, W, Ho, Wo, stride, padding = ctx.geometry
        K, _, kh, kw = weight.shape
        g = grad_out.reshape(N * Ho * Wo, K)
        grad_weight = (g.t() @ rows).reshape(weight.shape)
        grad_bias = g.sum(0)
        grad_rows = g @ weight.reshape(K, -1)  # (N*Ho*Wo, C*kh*kw)
        grad_cols = grad_rows.reshape(N, Ho * Wo, C * kh * kw).transpose(1, 2)
        # fold is unfold's adjoint: it sums each column entry back onto the pixel it was copied from.
        grad_x = F.fold(grad_cols, (H, W), (kh, kw), padding=padding, stride=stride)
        return grad_x, grad_weight, grad_bias, None, None


class MaxPool2dFunction(torch.autograd.Function):
    """y[n, c, i, j] = max over the 2x2 window x[n, c, 2i:2i+2, 2j:2j+2]; the gradient flows to the argmax."""

    @staticmethod
    def forward(ctx, x):
        N, C, H, W = x.shape
        windows = x.reshape(N, C, H // 2, 2, W // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(N, C, H // 2, W // 2, 4)
        out, arg = windows.max(dim=-1)
        ctx.save_for_backward(arg)
        ctx.in_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (arg,) = ctx.saved_tensors
        N, C, H, W = ctx.in_shape
        grad_windows = torch.zeros(*grad_out.shape, 4, dtype=grad_out.dtype, device=grad_out.device)
        grad_windows.scatter_(-1, arg.unsqueeze(-1), grad_out.unsqueeze(-1))
        grad_x = grad_windows.reshape(N, C, H // 2, W // 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(N, C, H, W)
        return grad_x


def conv2d(x, weight, bias, stride=1, padding=0):
    return Conv2dFunction.apply(x, weight, bias, stride, padding)


def max_pool2d(x):
    return MaxPool2dFunction.apply(x)


def cnn_forward(params, x):
    """Digits CNN: conv 3x3 (padding 1) -> ReLU -> 2x2 max-pool -> flatten -> linear to 10 logits."""
    h = max_pool2d(torch.relu(conv2d(x, params["conv_w"], params["conv_b"], stride=1, padding=1)))
    return h.flatten(1) @ params["fc_w"].t() + params["fc_b"]


def train(params, X, y, lr, steps, batch_size):
    """SGD on the mean cross-entropy; batch k holds rows (k*batch_size + i) mod n, in order."""
    losses = []
    n = X.shape[0]
    for k in range(steps):
        idx = (torch.arange(batch_size, device=X.device) + k * batch_size) % n
        loss = F.cross_entropy(cnn_forward(params, X[idx]), y[idx])
        losses.append(loss.item())
        for p in params.values():
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params.values():
                p -= lr * p.grad
    return params, losses
