"""The reference network: backpropagation exactly as the textbooks write it.

Plain Python and NumPy, one example at a time, per-layer lists as in Nielsen's
network.py, one line per equation of the seeds:

    z^l = W^l a^(l-1) + b^l                          (forward)
    a^l = sigma(z^l)
    delta^L = dC/da^L (.) sigma'(z^L)                (output error; a - y when fused)
    delta^l = ((W^(l+1))^T delta^(l+1)) (.) sigma'(z^l)
    dC/db^l_j = delta^l_j
    dC/dw^l_jk = delta^l_j a^(l-1)_k

The gradient of a mini-batch is the mean of the per-example gradients.
Clarity over speed: this is the oracle the compiled :class:`bpcore.Network`
is tested against, with the same constructor and the same ``feedforward`` /
``backprop`` / ``cost`` / ``evaluate`` / ``fit`` API (``num_threads`` is
checked like the compiled network's, and ignored).
"""
from __future__ import annotations

import numpy as np

from ._base import BaseNetwork, DivergenceError, History
from ._config import LEAKY_SLOPE
from ._checks import check_num_threads


def _sigmoid(z):
    e = np.exp(-np.abs(z))  # written so that exp never overflows
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


#: sigma, by activation name.
SIGMA = {
    "identity": lambda z: z,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.where(z > 0, z, 0).astype(z.dtype),
    "leaky_relu": lambda z: np.where(z > 0, z, z.dtype.type(LEAKY_SLOPE) * z),
    "softmax": _softmax,
}

#: sigma', by activation name (softmax only appears fused into delta^L).
SIGMA_PRIME = {
    "identity": lambda z: np.ones_like(z),
    "sigmoid": lambda z: _sigmoid(z) * (1 - _sigmoid(z)),
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
    "relu": lambda z: (z > 0).astype(z.dtype),
    "leaky_relu": lambda z: np.where(z > 0, 1, LEAKY_SLOPE).astype(z.dtype),
}


def example_cost(cost: str, z, a, y) -> float:
    """C_x for one example, evaluated in float64."""
    z, a, y = (np.asarray(v, dtype=np.float64) for v in (z, a, y))
    if cost == "quadratic":
        return 0.5 * np.sum((a - y) ** 2)
    if cost == "squared_error":
        return np.sum((a - y) ** 2)
    if cost == "cross_entropy":
        # -y ln a - (1 - y) ln(1 - a) with a = sigmoid(z), rewritten in z to stay finite
        return np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    # log_likelihood: -sum_j y_j ln a_j, ln a_j = z_j - logsumexp(z)
    logsumexp = np.max(z) + np.log(np.sum(np.exp(z - np.max(z))))
    return np.sum(np.where(y != 0, y * (logsumexp - z), 0.0))


def output_error(cost: str, activation: str, z, a, y):
    """delta^L = dC_x/da^L (.) sigma'(z^L), in its fused form a - y where sigma' cancels."""
    if cost == "quadratic":
        return (a - y) * SIGMA_PRIME[activation](z)
    if cost == "squared_error":
        return 2 * (a - y) * SIGMA_PRIME[activation](z)
    return a - y  # cross_entropy with sigmoid, log_likelihood with softmax


class Network(BaseNetwork):
    """Same constructor as :class:`bpcore.Network`; parameters are plain per-layer lists."""

    def __init__(self, sizes, activations="sigmoid", cost="quadratic", dtype="float64",
                 init="scaled_gaussian", seed=None, num_threads=None):
        check_num_threads(num_threads)
        super().__init__(sizes, activations, cost, dtype, init, seed)

    def _allocate(self, biases, weights):
        self.biases = [b.astype(self.dtype) for b in biases]
        self.weights = [w.astype(self.dtype) for w in weights]
        self._velocity_b = [np.zeros_like(b) for b in self.biases]
        self._velocity_w = [np.zeros_like(w) for w in self.weights]

    def _state_arrays(self):
        return self.biases + self.weights + self._velocity_b + self._velocity_w

    def _reset_velocity(self):
        for v in self._velocity_b + self._velocity_w:
            v[...] = 0

    def _forward_example(self, x):
        """The lists zs = [z^1..z^L] and activations = [a^0..a^L] for one example."""
        zs, activations = [], [x]
        for w, b, act in zip(self.weights, self.biases, self.activations):
            z = w @ activations[-1] + b           # z^l = W^l a^(l-1) + b^l
            zs.append(z)
            activations.append(SIGMA[act](z))      # a^l = sigma(z^l)
        return zs, activations

    def _backprop_example(self, x, y):
        """(nabla_b, nabla_w) of C_x for one example."""
        zs, activations = self._forward_example(x)
        L = self.n_layers
        delta = output_error(self.cost_name, self.activations[-1], zs[-1], activations[-1], y)
        nabla_b, nabla_w = [None] * L, [None] * L
        nabla_b[-1] = delta                                   # dC/db^L = delta^L
        nabla_w[-1] = np.outer(delta, activations[-2])        # dC/dw^L_jk = delta^L_j a^(L-1)_k
        for l in range(2, L + 1):                             # layer L-l+1, counted from the end
            delta = (self.weights[-l + 1].T @ delta) * SIGMA_PRIME[self.activations[-l]](zs[-l])
            nabla_b[-l] = delta
            nabla_w[-l] = np.outer(delta, activations[-l - 1])
        return nabla_b, nabla_w

    def _forward(self, X):
        return np.array([self._forward_example(x)[1][-1] for x in X])

    def _example_costs(self, X, Y):
        costs = []
        for x, y in zip(X, Y):
            zs, activations = self._forward_example(x)
            costs.append(example_cost(self.cost_name, zs[-1], activations[-1], y))
        return np.array(costs)

    def _gradient(self, X, Y):
        """Mean over the rows of X of the per-example gradients."""
        nabla_b = [np.zeros_like(b) for b in self.biases]
        nabla_w = [np.zeros_like(w) for w in self.weights]
        for x, y in zip(X, Y):
            delta_b, delta_w = self._backprop_example(x, y)
            nabla_b = [nb + db for nb, db in zip(nabla_b, delta_b)]
            nabla_w = [nw + dw for nw, dw in zip(nabla_w, delta_w)]
        m = X.shape[0]
        return [nb / m for nb in nabla_b], [nw / m for nw in nabla_w]

    def _train_epoch(self, X, Y, order, batch_size, lr, decay, momentum, workspace):
        costs = []
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            costs.extend(self._example_costs(X[batch], Y[batch]))
            nabla_b, nabla_w = self._gradient(X[batch], Y[batch])
            for l in range(self.n_layers):
                # v <- mu v - eta (dC/dw + (lambda/n) w);  w <- w + v
                self._velocity_w[l][...] = (momentum * self._velocity_w[l]
                                            - lr * (nabla_w[l] + decay * self.weights[l]))
                self.weights[l] += self._velocity_w[l]
                self._velocity_b[l][...] = momentum * self._velocity_b[l] - lr * nabla_b[l]
                self.biases[l] += self._velocity_b[l]
        return np.array(costs)


__all__ = ["Network", "History", "DivergenceError", "SIGMA", "SIGMA_PRIME", "example_cost",
           "output_error"]
