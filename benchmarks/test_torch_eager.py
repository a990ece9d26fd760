"""The PyTorch peer trains the same network as the NumPy peer."""
import numpy as np
import pytest

pytest.importorskip("torch")

from numpy_batched import NumpyBatchedNet  # noqa: E402
from torch_eager import TorchEagerNet  # noqa: E402


@pytest.mark.parametrize("sizes, activations, cost", [
    ((6, 5, 3), ("sigmoid", "sigmoid"), "quadratic"),
    ((6, 5, 4, 3), ("relu", "relu", "softmax"), "log_likelihood"),
    ((6, 5, 3), ("sigmoid", "sigmoid"), "cross_entropy"),
])
@pytest.mark.parametrize("shuffled", [False, True])
def test_one_epoch_matches_numpy(sizes, activations, cost, shuffled):
    rng = np.random.default_rng(0)
    X = rng.random((11, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 11)]
    order = rng.permutation(11) if shuffled else None
    nets = [cls(sizes, activations, cost, "float64", seed=5)
            for cls in (NumpyBatchedNet, TorchEagerNet)]
    for net in nets:
        net.train_epoch(X, Y, batch_size=4, lr=0.3, order=order)
    for got, want in zip(nets[1].weights + nets[1].biases, nets[0].weights + nets[0].biases):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
