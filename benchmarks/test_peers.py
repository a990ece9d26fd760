"""The PyTorch and JAX peers train the same network as the NumPy peer, shuffled or not."""
import importlib

import numpy as np
import pytest

from numpy_batched import NumpyBatchedNet

#: (module of the peer, its class, the library it needs)
PEERS = [("torch_eager", "TorchEagerNet", "torch"), ("jax_scan", "JaxScanNet", "jax")]


@pytest.mark.parametrize("module, name, library", PEERS, ids=[p[2] for p in PEERS])
@pytest.mark.parametrize("sizes, activations, cost", [
    ((6, 5, 3), ("sigmoid", "sigmoid"), "quadratic"),
    ((6, 5, 4, 3), ("relu", "relu", "softmax"), "log_likelihood"),
    ((6, 5, 3), ("sigmoid", "sigmoid"), "cross_entropy"),
    ((6, 5, 4, 3), ("tanh", "leaky_relu", "softmax"), "log_likelihood"),
    ((6, 5, 3), ("identity", "tanh"), "quadratic"),
])
@pytest.mark.parametrize("shuffled", [False, True])
def test_one_epoch_matches_numpy(module, name, library, sizes, activations, cost, shuffled):
    """11 rows in batches of 4: two full steps and a tail step of 3 rows."""
    pytest.importorskip(library)
    peer = getattr(importlib.import_module(module), name)
    rng = np.random.default_rng(0)
    X = rng.random((11, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 11)]
    order = rng.permutation(11) if shuffled else None
    nets = [cls(sizes, activations, cost, "float64", seed=5) for cls in (NumpyBatchedNet, peer)]
    for net in nets:
        net.train_epoch(X, Y, batch_size=4, lr=0.3, order=order)
    for got, want in zip(nets[1].weights + nets[1].biases, nets[0].weights + nets[0].biases):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
