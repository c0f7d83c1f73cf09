"""mlp probes (scaffolded by `dldiy new`: check the inputs, then add checks)."""

import numpy as np

from dldiy.graders.layers import gradcheck_layer


def linear_backward(sub, seed, p):
    rng = np.random.default_rng(seed)
    layer = sub.get("Linear")(3, 3)
    return gradcheck_layer(layer, rng.standard_normal((4, 3)), name="Linear", args=(),
                           grads={'W': 'dW', 'b': 'db'}, loss=False, seed=seed)

def re_l_u_backward(sub, seed, p):
    rng = np.random.default_rng(seed)
    layer = sub.get("ReLU")()
    return gradcheck_layer(layer, rng.standard_normal((4, 3)), name="ReLU", args=(),
                           grads={}, loss=False, seed=seed)

def softmax_cross_entropy_backward(sub, seed, p):
    rng = np.random.default_rng(seed)
    layer = sub.get("SoftmaxCrossEntropy")()
    return gradcheck_layer(layer, rng.standard_normal((4, 3)), name="SoftmaxCrossEntropy", args=(rng.integers(0, 3, 4),),
                           grads={}, loss=True, seed=seed)
