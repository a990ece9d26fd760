"""The PyTorch peer: the same network and SGD in eager-mode PyTorch.

``nn.Linear`` layers, ``torch.optim.SGD`` and the loss matching bpcore's cost,
averaged over the mini-batch: ½‖a − y‖² summed over outputs for quadratic,
binary cross-entropy on logits for sigmoid + cross_entropy, cross-entropy on
logits for softmax + log_likelihood (the output activation is then part of the
loss, as is idiomatic).  Import this module only when torch is installed.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from numpy_batched import LEAKY_SLOPE, check_architecture, init_parameters

_MODULES = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
            "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "identity": nn.Identity}


class TorchEagerNet:
    """A network of ``nn.Linear`` layers trained by ``torch.optim.SGD``.

    Starts from the same parameters as ``NumpyBatchedNet`` for the same seed.
    ``num_threads``, if given, is passed to ``torch.set_num_threads`` at each
    epoch (the setting is global to the process).
    """

    def __init__(self, sizes, activations, cost, dtype="float64", seed=None, num_threads=None):
        self.activations = check_architecture(sizes, activations, cost)
        self.cost = cost
        self.num_threads = num_threads
        self.dtype = getattr(torch, np.dtype(dtype).name)
        biases, weights = init_parameters(tuple(sizes), np.dtype(dtype), seed)
        layers = []
        for i, (b, w) in enumerate(zip(biases, weights)):
            linear = nn.Linear(w.shape[1], w.shape[0], dtype=self.dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w))
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if i < len(weights) - 1 or cost == "quadratic":
                layers.append(_MODULES[self.activations[i]]())
        self.model = nn.Sequential(*layers)

    @property
    def weights(self):
        """W^l as NumPy arrays of shape (n_l, n_(l-1))."""
        return [m.weight.detach().numpy() for m in self.model if isinstance(m, nn.Linear)]

    @property
    def biases(self):
        """b^l as NumPy arrays."""
        return [m.bias.detach().numpy() for m in self.model if isinstance(m, nn.Linear)]

    def _loss(self, out, y):
        if self.cost == "quadratic":
            return F.mse_loss(out, y, reduction="sum") * (0.5 / len(y))
        if self.cost == "cross_entropy":
            return F.binary_cross_entropy_with_logits(out, y, reduction="sum") / len(y)
        return F.cross_entropy(out, y)  # y: class indices

    def as_tensors(self, X, Y):
        """(X, Y) as tensors of the network's dtype (no copy when they already are);
        Y as class indices for log_likelihood."""
        X = torch.from_numpy(np.ascontiguousarray(X)).to(self.dtype)
        if self.cost == "log_likelihood":
            return X, torch.from_numpy(np.asarray(Y).argmax(axis=1))
        return X, torch.from_numpy(np.ascontiguousarray(Y)).to(self.dtype)

    def train_epoch(self, X, Y, batch_size, lr, order=None):
        """One pass of SGD over (X, Y); Y one-hot for log_likelihood.

        X and Y may be NumPy arrays or the tensors of :meth:`as_tensors` (then
        nothing is converted).  ``order`` (a permutation of the row indices) is
        the visiting order, each mini-batch gathered into a preallocated tensor
        with ``torch.index_select(..., out=)``; None visits the rows in order.
        """
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        if not isinstance(X, torch.Tensor):
            X, Y = self.as_tensors(X, Y)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        if order is not None:
            order = torch.from_numpy(np.asarray(order, dtype=np.int64))
            xb = torch.empty((batch_size,) + X.shape[1:], dtype=X.dtype)
            yb = torch.empty((batch_size,) + Y.shape[1:], dtype=Y.dtype)
        for start in range(0, len(X), batch_size):
            stop = start + batch_size
            if order is None:
                x, y = X[start:stop], Y[start:stop]
            else:
                rows = order[start:stop]
                x, y = xb[:len(rows)], yb[:len(rows)]
                torch.index_select(X, 0, rows, out=x)
                torch.index_select(Y, 0, rows, out=y)
            optimizer.zero_grad(set_to_none=True)
            self._loss(self.model(x), y).backward()
            optimizer.step()
