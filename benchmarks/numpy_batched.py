"""The NumPy peer: batched backpropagation + mini-batch SGD on BLAS.

Rows are examples.  For a mini-batch of m rows, layer l computes
Z^l = A^(l-1) W^lᵀ + b^l and A^l = σ(Z^l) with one GEMM; the backward pass
takes δ^L = a − y (softmax + log_likelihood, sigmoid + cross_entropy) or
(a − y) ⊙ σ'(z^L) (quadratic), δ^(l-1) = (δ^l W^l) ⊙ σ'(z^(l-1)), and updates
W^l -= lr/m · δ^lᵀ A^(l-1) and b^l -= lr/m · Σ_rows δ^l.  σ'(z) is read off
a = σ(z), so Z is computed in place in A's buffer.  Every array an epoch
touches is allocated once per batch size and written with ``out=``: this is
the fastest plain-NumPy trainer we know how to write, the honest baseline.
"""
from __future__ import annotations

import numpy as np

from bpcore._config import LEAKY_SLOPE

#: (output activation, cost) pairs whose δ^L is simply a − y.
FUSED = {("softmax", "log_likelihood"), ("sigmoid", "cross_entropy")}
COSTS = ("quadratic", "cross_entropy", "log_likelihood")


def _sigmoid(a, rows):
    # σ(z) = (1 + tanh(z/2)) / 2: as fast as 1/(1 + e^-z) and never overflows.
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _relu(a, rows):
    np.maximum(a, 0, out=a)


def _tanh(a, rows):
    np.tanh(a, out=a)


def _leaky_relu(a, rows):
    # the slope bpcore uses (python/_config.py LEAKY_SLOPE) for z <= 0
    np.maximum(a, LEAKY_SLOPE * a, out=a)


def _identity(a, rows):
    pass


def _softmax(a, rows):
    np.max(a, axis=1, out=rows)
    a -= rows[:, None]
    np.exp(a, out=a)
    np.sum(a, axis=1, out=rows)
    a /= rows[:, None]


def _times_sigmoid_prime(delta, a, scratch):
    # σ'(z) = a (1 − a)
    np.subtract(1, a, out=scratch)
    delta *= scratch
    delta *= a


def _times_relu_prime(delta, a, scratch):
    # relu'(z) = [z > 0] = [a > 0]
    np.greater(a, 0, out=scratch)
    delta *= scratch


def _times_tanh_prime(delta, a, scratch):
    # tanh'(z) = 1 − a²
    np.multiply(a, a, out=scratch)
    np.subtract(1, scratch, out=scratch)
    delta *= scratch


def _times_leaky_relu_prime(delta, a, scratch):
    # leaky_relu'(z) = 1 for z > 0 (a > 0), the slope otherwise
    np.greater(a, 0, out=scratch)
    scratch *= 1 - LEAKY_SLOPE
    scratch += LEAKY_SLOPE
    delta *= scratch


def _times_identity_prime(delta, a, scratch):
    pass


#: name -> (in-place activation of Z held in A, δ ⊙= σ'(z) given A).
ACTIVATIONS = {
    "sigmoid": (_sigmoid, _times_sigmoid_prime),
    "tanh": (_tanh, _times_tanh_prime),
    "relu": (_relu, _times_relu_prime),
    "leaky_relu": (_leaky_relu, _times_leaky_relu_prime),
    "identity": (_identity, _times_identity_prime),
    "softmax": (_softmax, None),
}


def init_parameters(sizes, dtype, seed):
    """``(biases, weights)`` drawn like bpcore's default ``scaled_gaussian``.

    Biases N(0, 1), weights N(0, 1/n_in) of shape (n_l, n_(l-1)), drawn in
    float64 from ``default_rng(seed)`` and rounded once to ``dtype``.
    """
    rng = np.random.default_rng(seed)
    pairs = list(zip(sizes[:-1], sizes[1:]))
    biases = [rng.standard_normal(n_out).astype(dtype) for _, n_out in pairs]
    weights = [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
               for n_in, n_out in pairs]
    return biases, weights


def check_architecture(sizes, activations, cost):
    """Activations as a tuple of one name per layer; raise on an unsupported network."""
    n_layers = len(sizes) - 1
    if isinstance(activations, str):
        activations = (activations,) * n_layers
    activations = tuple(activations)
    if len(activations) != n_layers:
        raise ValueError(f"need {n_layers} activations, got {list(activations)}")
    unknown = set(activations) - set(ACTIVATIONS)
    if unknown:
        raise ValueError(f"unsupported activations {sorted(unknown)}; use {list(ACTIVATIONS)}")
    if "softmax" in activations[:-1]:
        raise ValueError("softmax is only supported as the output activation")
    if cost not in COSTS:
        raise ValueError(f"unsupported cost {cost!r}; use one of {list(COSTS)}")
    fused = (activations[-1], cost) in FUSED
    if cost != "quadratic" and not fused:
        raise ValueError(f"cost {cost!r} does not go with a {activations[-1]} output")
    if cost == "quadratic" and activations[-1] == "softmax":
        raise ValueError("a softmax output needs cost 'log_likelihood'")
    return activations


class NumpyBatchedNet:
    """A fully-connected network trained by batched backprop + SGD in NumPy.

    ``weights[l]`` has shape (n_(l+1), n_l) and ``biases[l]`` shape
    (n_(l+1),), both of ``dtype``; they are updated in place.
    """

    def __init__(self, sizes, activations, cost, dtype="float64", seed=None):
        self.sizes = tuple(sizes)
        self.activations = check_architecture(self.sizes, activations, cost)
        self.cost = cost
        self.dtype = np.dtype(dtype)
        self.biases, self.weights = init_parameters(self.sizes, self.dtype, seed)
        self._fused = (self.activations[-1], cost) in FUSED
        self._batch_size = 0

    def _allocate(self, m):
        widths = self.sizes[1:]
        self._a = [np.empty((m, n), self.dtype) for n in widths]
        self._delta = [np.empty((m, n), self.dtype) for n in widths]
        self._scratch = [np.empty((m, n), self.dtype) for n in widths]
        self._rows = np.empty(m, self.dtype)
        self._grad_w = [np.empty_like(w) for w in self.weights]
        self._grad_b = [np.empty_like(b) for b in self.biases]
        self._x = np.empty((m, self.sizes[0]), self.dtype)
        self._y = np.empty((m, self.sizes[-1]), self.dtype)
        self._batch_size = m

    def train_epoch(self, X, Y, batch_size, lr, order=None):
        """One pass of SGD over (X, Y) in mini-batches of ``batch_size``.

        ``order`` (a permutation of the row indices) is the visiting order, each
        mini-batch's rows gathered into a preallocated buffer (``np.take(...,
        out=)``) as bpcore gathers them; None visits the rows in order, as views.
        The last mini-batch holds the remaining ``len(X) % batch_size`` rows.
        """
        X = np.ascontiguousarray(X, self.dtype)
        Y = np.ascontiguousarray(Y, self.dtype)
        if batch_size != self._batch_size:
            self._allocate(batch_size)
        for start in range(0, len(X), batch_size):
            stop = start + batch_size
            if order is None:
                self._step(X[start:stop], Y[start:stop], lr)
            else:
                rows = order[start:stop]
                x, y = self._x[:len(rows)], self._y[:len(rows)]
                # mode="clip": no bounds-checked (buffered) copy; rows are valid indices
                np.take(X, rows, axis=0, out=x, mode="clip")
                np.take(Y, rows, axis=0, out=y, mode="clip")
                self._step(x, y, lr)

    def _step(self, x, y, lr):
        m = len(x)
        # Leading rows of C-contiguous buffers: still C-contiguous, valid out= targets.
        acts = [a[:m] for a in self._a]
        deltas = [d[:m] for d in self._delta]
        scratch = [s[:m] for s in self._scratch]
        rows = self._rows[:m]

        prev = x
        for w, b, a, name in zip(self.weights, self.biases, acts, self.activations):
            np.dot(prev, w.T, out=a)
            a += b
            ACTIVATIONS[name][0](a, rows)
            prev = a

        np.subtract(acts[-1], y, out=deltas[-1])
        if not self._fused:
            ACTIVATIONS[self.activations[-1]][1](deltas[-1], acts[-1], scratch[-1])

        step = lr / m
        for l in reversed(range(len(self.weights))):
            w, b, delta = self.weights[l], self.biases[l], deltas[l]
            grad_w, grad_b = self._grad_w[l], self._grad_b[l]
            np.dot(delta.T, acts[l - 1] if l else x, out=grad_w)
            np.sum(delta, axis=0, out=grad_b)
            if l:  # propagate through W^l before it is updated
                np.dot(delta, w, out=deltas[l - 1])
                ACTIVATIONS[self.activations[l - 1]][1](deltas[l - 1], acts[l - 1],
                                                        scratch[l - 1])
            grad_w *= step
            w -= grad_w
            grad_b *= step
            b -= grad_b
