"""The benchmark configurations and their synthetic data.

Shared by ``bpcore bench`` (bpcore alone) and ``benchmarks/`` in the source
repository (bpcore beside NumPy, PyTorch and the reference), so both time the
same networks on the same data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ACTIVATION_CONFIGS", "Config", "CONFIGS", "REFERENCE_CONFIGS", "SHAPE_CONFIGS",
           "flop_per_sample", "get_configs", "true_flop_per_sample"]


@dataclass(frozen=True)
class Config:
    """One network + training setting that every implementation is timed on."""

    name: str
    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    cost: str
    batch_size: int
    dtype: str
    lr: float
    n_samples: int = 20_000

    def data(self, n_samples: int | None = None, seed: int = 0):
        """``(X, Y)``: X uniform in [0, 1], Y one-hot, both of the config's dtype.

        The inputs are cut into one block per class and the label is the
        block with the largest sum, so the task is learnable.  No BLAS call
        is made, so no BLAS threads are left spinning when a timing starts.
        """
        n = self.n_samples if n_samples is None else n_samples
        n_in, n_out = self.sizes[0], self.sizes[-1]
        X = np.random.default_rng(seed).random((n, n_in))
        block = n_in // n_out
        labels = X[:, :block * n_out].reshape(n, n_out, block).sum(axis=2).argmax(axis=1)
        Y = np.zeros((n, n_out))
        Y[np.arange(n), labels] = 1
        return X.astype(self.dtype), Y.astype(self.dtype)


CONFIGS = (
    # Nielsen's network.py setting: small, so per-mini-batch overhead dominates.
    Config("N1-f64", (784, 30, 10), ("sigmoid", "sigmoid"), "quadratic", 10, "float64", 3.0),
    Config("N1-f32", (784, 30, 10), ("sigmoid", "sigmoid"), "quadratic", 10, "float32", 3.0),
    Config("N2-f32", (784, 100, 10), ("sigmoid", "sigmoid"), "quadratic", 32, "float32", 3.0),
    # A wider modern MLP: GEMM-bound.
    Config("M-f32", (784, 256, 128, 10), ("relu", "relu", "softmax"), "log_likelihood", 64,
           "float32", 0.1),
    # Large layers: how close each gets to the machine's matrix-multiply peak.
    Config("L-f32", (784, 1024, 1024, 10), ("relu", "relu", "softmax"), "log_likelihood", 256,
           "float32", 0.01, n_samples=8_192),
    Config("XL-f32", (1024, 4096, 4096, 1024), ("relu", "relu", "softmax"), "log_likelihood",
           512, "float32", 0.01, n_samples=2_048),
)

#: M's and N2's shapes with the other hidden activations, for ``--configs``: bpcore's
#: standing must not depend on the activation (not in the default sweep).
ACTIVATION_CONFIGS = tuple(
    Config(f"{base.name[:-4]}-{act}-f32", base.sizes, (act,) * (len(base.sizes) - 2)
           + base.activations[-1:], base.cost, base.batch_size, base.dtype, lr)
    for base, lr in ((CONFIGS[2], 0.5), (CONFIGS[3], 0.01))
    for act in ("tanh", "leaky_relu", "identity"))

#: Other shapes, for ``--configs``: the six configs are samples, and bpcore's standing
#: must hold beyond them (not in the default sweep).  Few inputs (tabular data), a
#: wide hidden layer, sizes that are no multiple of a vector, pure SGD (batches of
#: one), CIFAR-sized inputs, N2 with large batches, a one-output regression, M in
#: float64.
SHAPE_CONFIGS = (
    Config("tab-f32", (20, 64, 64, 2), ("relu", "relu", "softmax"), "log_likelihood", 32,
           "float32", 0.05),
    Config("W512-f32", (784, 512, 10), ("relu", "softmax"), "log_likelihood", 128,
           "float32", 0.05),
    Config("odd-f32", (100, 1000, 1000, 100), ("tanh", "tanh", "softmax"), "log_likelihood",
           100, "float32", 0.01, n_samples=8_192),
    Config("N1-b1-f64", (784, 30, 10), ("sigmoid", "sigmoid"), "quadratic", 1, "float64",
           0.5, n_samples=5_000),
    Config("C-f32", (3072, 512, 512, 10), ("relu", "relu", "softmax"), "log_likelihood", 64,
           "float32", 0.01, n_samples=8_192),
    Config("N2-b256-f32", (784, 100, 10), ("sigmoid", "sigmoid"), "quadratic", 256,
           "float32", 3.0),
    Config("R1-f32", (64, 32, 1), ("tanh", "identity"), "quadratic", 16, "float32", 0.01),
    Config("M-f64", (784, 256, 128, 10), ("relu", "relu", "softmax"), "log_likelihood", 64,
           "float64", 0.1),
)

#: Configs small enough to time the pure-Python reference on.
REFERENCE_CONFIGS = ("N1-f64", "N1-f32", "N2-f32", "M-f32")


def flop_per_sample(config: Config) -> int:
    """6 * sum(n_in * n_out): forward, delta and gradient products, 2 FLOP per multiply-add."""
    return 6 * sum(a * b for a, b in zip(config.sizes[:-1], config.sizes[1:]))


def true_flop_per_sample(config: Config) -> int:
    """The FLOP backpropagation actually does per sample: ``flop_per_sample`` without
    delta of the input layer (2 * n_0 * n_1), which no step needs."""
    return flop_per_sample(config) - 2 * config.sizes[0] * config.sizes[1]


def get_configs(names=None):
    """The configs called ``names`` (all if None), in the order given."""
    if names is None:
        return list(CONFIGS)
    by_name = {c.name: c for c in CONFIGS + ACTIVATION_CONFIGS + SHAPE_CONFIGS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; choose from {list(by_name)}")
    return [by_name[n] for n in names]
