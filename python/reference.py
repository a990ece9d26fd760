"""The reference network: backpropagation exactly as the textbooks write it.

Plain Python and NumPy, one example at a time, per-layer lists as in Nielsen's
network.py, one line per equation of the seeds:

    z^l = W^l a^(l-1) + b^l                          (forward)
    a^l = sigma(z^l)
    delta^L = dC/da^L (.) sigma'(z^L)                (output error; a - y when fused)
    delta^l = ((W^(l+1))^T delta^(l+1)) (.) sigma'(z^l)
    dC/db^l_j = delta^l_j
    dC/dw^l_jk = delta^l_j a^(l-1)_k

The gradient of a mini-batch is the mean of the per-example gradients (with
sample weights, each example's gradient times its weight); after each
mini-batch every parameter takes one step of the optimizer's rule, written in
:data:`UPDATE_RULES` one line per equation.
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


def _log_likelihood(z, a, y):
    # -sum_j y_j ln a_j, ln a_j = z_j - logsumexp(z)
    logsumexp = np.max(z) + np.log(np.sum(np.exp(z - np.max(z))))
    return np.sum(np.where(y != 0, y * (logsumexp - z), 0.0))


#: C_x(z^L, a^L, y) of one example, by cost name.
COST = {
    "quadratic": lambda z, a, y: 0.5 * np.sum((a - y) ** 2),
    "squared_error": lambda z, a, y: np.sum((a - y) ** 2),
    # -y ln a - (1 - y) ln(1 - a) with a = sigmoid(z), rewritten in z to stay finite
    "cross_entropy": lambda z, a, y: np.sum(np.maximum(z, 0) - z * y
                                            + np.log1p(np.exp(-np.abs(z)))),
    "log_likelihood": _log_likelihood,
}

#: delta^L = dC_x/da^L (.) sigma'(z^L) by cost name, as f(activation, z, a, y); the
#: fused form a - y where sigma' cancels (sigmoid + cross_entropy, softmax + log_likelihood).
OUTPUT_ERROR = {
    "quadratic": lambda act, z, a, y: (a - y) * SIGMA_PRIME[act](z),
    "squared_error": lambda act, z, a, y: 2 * (a - y) * SIGMA_PRIME[act](z),
    "cross_entropy": lambda act, z, a, y: a - y,
    "log_likelihood": lambda act, z, a, y: a - y,
}


def example_cost(cost: str, z, a, y) -> float:
    """C_x for one example, evaluated in float64."""
    z, a, y = (np.asarray(v, dtype=np.float64) for v in (z, a, y))
    return COST[cost](z, a, y)


def output_error(cost: str, activation: str, z, a, y):
    """delta^L = dC_x/da^L (.) sigma'(z^L), in its fused form a - y where sigma' cancels."""
    return OUTPUT_ERROR[cost](activation, z, a, y)


def sgd(p, g, buffers, t, hp):
    """torch.optim.SGD (dampening 0): d = g + lambda p; b <- mu b + d; p <- p - eta (d + mu b | b)."""
    d = g + hp["weight_decay"] * p
    if hp["momentum"]:
        b = buffers[0]
        b[...] = hp["momentum"] * b + d                    # b <- mu b + d
        d = d + hp["momentum"] * b if hp["nesterov"] else b
    p -= hp["lr"] * d                                      # p <- p - eta d


def sgd_velocity(p, g, buffers, t, hp):
    """network2.py / scikit-learn: v <- mu v - eta (g + lambda p); p <- p + v
    (Nesterov: p <- p + mu v - eta (g + lambda p))."""
    step = hp["lr"] * (g + hp["weight_decay"] * p)
    if hp["momentum"]:
        v = buffers[0]
        v[...] = hp["momentum"] * v - step                 # v <- mu v - eta (g + lambda p)
        p += hp["momentum"] * v - step if hp["nesterov"] else v
    else:
        p -= step


def adam(p, g, buffers, t, hp):
    """Adam (Kingma & Ba, with torch.optim's L2 term) or AdamW (decoupled decay)."""
    if hp["decoupled"]:
        p *= 1 - hp["lr"] * hp["weight_decay"]             # AdamW: p <- (1 - eta lambda) p
    else:
        g = g + hp["weight_decay"] * p                     # Adam: g <- g + lambda p
    m, v = buffers
    m[...] = hp["beta1"] * m + (1 - hp["beta1"]) * g       # first moment
    v[...] = hp["beta2"] * v + (1 - hp["beta2"]) * g * g   # second moment
    m_hat = m / (1 - hp["beta1"] ** t)                     # bias corrections
    v_hat = v / (1 - hp["beta2"] ** t)
    p -= hp["lr"] * m_hat / (np.sqrt(v_hat) + hp["eps"])


#: Update rules by the names of :data:`bpcore.optim.RULES`:
#: ``rule(p, g, buffers, t, hp)`` steps p in place from the mean gradient g, with the
#: optimizer's state buffers of p (updated in place), step number t (1-based) and
#: hyperparameters hp (``weight_decay`` is 0 for biases).
UPDATE_RULES = {"sgd": sgd, "sgd_velocity": sgd_velocity, "adam": adam}


class Network(BaseNetwork):
    """Same constructor as :class:`bpcore.Network`; parameters are plain per-layer lists."""

    def __init__(self, sizes, activations="sigmoid", cost="quadratic", dtype="float64",
                 init="scaled_gaussian", seed=None, num_threads=None):
        check_num_threads(num_threads)
        super().__init__(sizes, activations, cost, dtype, init, seed)

    def _allocate(self, biases, weights):
        self.biases = [b.astype(self.dtype) for b in biases]
        self.weights = [w.astype(self.dtype) for w in weights]

    def _state_arrays(self):
        return self.biases + self.weights

    def _bind_optimizer(self, optimizer):
        """The optimizer's state as (buffers of W^l, buffers of b^l) per layer: its flat
        buffers hold W^1, b^1, W^2, b^2, ... one after the other."""
        n = sum(w.size + b.size for w, b in zip(self.weights, self.biases))
        state = optimizer._bind(n, self.dtype, lambda shape, dtype: np.zeros(shape, dtype))
        views, offset = [], 0
        for w, b in zip(self.weights, self.biases):
            vw = [row[offset:offset + w.size].reshape(w.shape) for row in state]
            offset += w.size
            vb = [row[offset:offset + b.size] for row in state]
            offset += b.size
            views.append((vw, vb))
        return views

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

    def _gradient_sum(self, X, Y, w=None):
        """sum over the rows x of X of w_x dC_x/dtheta (w None: 1), as (nabla_b, nabla_w)."""
        nabla_b = [np.zeros_like(b) for b in self.biases]
        nabla_w = [np.zeros_like(w) for w in self.weights]
        for i, (x, y) in enumerate(zip(X, Y)):
            delta_b, delta_w = self._backprop_example(x, y)
            wx = 1 if w is None else self.dtype.type(w[i])
            nabla_b = [nb + wx * db for nb, db in zip(nabla_b, delta_b)]
            nabla_w = [nw + wx * dw for nw, dw in zip(nabla_w, delta_w)]
        return nabla_b, nabla_w

    def _gradient(self, X, Y, w=None):
        """Mean over the rows of X of the per-example gradients (weighted: / sum w)."""
        nabla_b, nabla_w = self._gradient_sum(X, Y, w)
        total = X.shape[0] if w is None else np.sum(w)
        return [nb / total for nb in nabla_b], [nw / total for nw in nabla_w]

    def _train_epoch(self, X, Y, order, batch_size, optimizer, factors, workspace,
                     bias_norms=None):
        state = self._bind_optimizer(optimizer)
        rule = UPDATE_RULES[optimizer._rule]
        hp = dict(optimizer._hyper_values(), lr=optimizer.lr)
        hp.setdefault("decoupled", False)
        no_decay = dict(hp, weight_decay=0.0)
        costs = []
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            costs.extend(self._example_costs(X[batch], Y[batch]))
            m = len(batch)
            nabla_b, nabla_w = self._gradient_sum(
                X[batch], Y[batch], None if factors is None else factors[batch])
            if bias_norms is not None:  # the speed of learning of each layer
                bias_norms += [np.linalg.norm(nb.astype(np.float64) / m) for nb in nabla_b]
            optimizer._t += 1
            for l in range(self.n_layers):
                (vw, vb) = state[l]
                rule(self.weights[l], nabla_w[l] / m, vw, optimizer._t, hp)  # decay: weights
                rule(self.biases[l], nabla_b[l] / m, vb, optimizer._t, no_decay)
        return np.array(costs)


__all__ = ["Network", "History", "DivergenceError", "SIGMA", "SIGMA_PRIME", "COST",
           "OUTPUT_ERROR", "example_cost", "output_error", "UPDATE_RULES", "sgd", "sgd_velocity", "adam"]
