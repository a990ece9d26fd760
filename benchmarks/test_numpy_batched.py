"""The NumPy peer computes exactly the SGD that a per-example loop does."""
import numpy as np
import pytest

from numpy_batched import LEAKY_SLOPE, NumpyBatchedNet


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _loop_epoch(weights, biases, activations, cost, X, Y, batch_size, lr):
    """Textbook SGD: each example backpropagated alone as column vectors."""
    act = {"sigmoid": _sigmoid,
           "tanh": np.tanh,
           "relu": lambda z: np.maximum(z, 0),
           "leaky_relu": lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
           "identity": lambda z: z,
           "softmax": lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum()}
    prime = {"sigmoid": lambda z: _sigmoid(z) * (1 - _sigmoid(z)),
             "tanh": lambda z: 1 - np.tanh(z) ** 2,
             "relu": lambda z: (z > 0).astype(float),
             "leaky_relu": lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE),
             "identity": lambda z: np.ones_like(z)}
    weights = [w.copy() for w in weights]
    biases = [b.reshape(-1, 1).copy() for b in biases]
    for start in range(0, len(X), batch_size):
        batch = range(start, min(start + batch_size, len(X)))
        nabla_w = [np.zeros_like(w) for w in weights]
        nabla_b = [np.zeros_like(b) for b in biases]
        for i in batch:
            a, zs, As = X[i].reshape(-1, 1), [], [X[i].reshape(-1, 1)]
            for w, b, name in zip(weights, biases, activations):
                zs.append(w @ a + b)
                a = act[name](zs[-1])
                As.append(a)
            delta = a - Y[i].reshape(-1, 1)
            if cost == "quadratic":
                delta = delta * prime[activations[-1]](zs[-1])
            for l in reversed(range(len(weights))):
                nabla_w[l] += delta @ As[l].T
                nabla_b[l] += delta
                if l:
                    delta = (weights[l].T @ delta) * prime[activations[l - 1]](zs[l - 1])
        m = len(batch)
        weights = [w - lr / m * nw for w, nw in zip(weights, nabla_w)]
        biases = [b - lr / m * nb for b, nb in zip(biases, nabla_b)]
    return weights, [b.ravel() for b in biases]


CASES = [
    ((5, 4, 3), ("sigmoid", "sigmoid"), "quadratic"),
    ((5, 6, 4, 3), ("relu", "relu", "softmax"), "log_likelihood"),
    ((5, 4, 3), ("relu", "sigmoid"), "cross_entropy"),
    ((5, 4, 3), ("sigmoid", "relu"), "quadratic"),
    ((5, 6, 4, 3), ("tanh", "leaky_relu", "softmax"), "log_likelihood"),
    ((5, 4, 3), ("identity", "tanh"), "quadratic"),
]


def _data(n, n_in, n_out, seed=1):
    rng = np.random.default_rng(seed)
    Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    return rng.random((n, n_in)), Y


@pytest.mark.parametrize("sizes, activations, cost", CASES)
def test_epoch_matches_per_example_loop(sizes, activations, cost):
    # 7 examples in batches of 3: two full mini-batches and a partial one.
    X, Y = _data(7, sizes[0], sizes[-1])
    net = NumpyBatchedNet(sizes, activations, cost, "float64", seed=3)
    want_w, want_b = _loop_epoch(net.weights, net.biases, activations, cost, X, Y, 3, 0.5)
    net.train_epoch(X, Y, batch_size=3, lr=0.5)
    for got, want in zip(net.weights + net.biases, want_w + want_b):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_float32_stays_float32_and_tracks_float64():
    sizes, activations, cost = CASES[1]
    X, Y = _data(50, sizes[0], sizes[-1])
    nets = [NumpyBatchedNet(sizes, activations, cost, dtype, seed=3)
            for dtype in ("float32", "float64")]
    for net in nets:
        net.train_epoch(X, Y, batch_size=8, lr=0.1)
    for got, want in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("activations, cost", [
    (("softmax", "sigmoid"), "quadratic"),
    (("sigmoid", "softmax"), "quadratic"),
    (("sigmoid", "relu"), "log_likelihood"),
    (("swish", "sigmoid"), "quadratic"),
    (("sigmoid",), "quadratic"),
])
def test_unsupported_networks_are_refused(activations, cost):
    with pytest.raises(ValueError):
        NumpyBatchedNet((3, 4, 2), activations, cost)


@pytest.mark.parametrize("sizes, activations, cost", CASES[:2])
def test_shuffled_epoch_is_the_epoch_of_the_shuffled_data(sizes, activations, cost):
    """``order`` gathers each mini-batch's rows: the same steps as training on X[order]."""
    X, Y = _data(23, sizes[0], sizes[-1])
    order = np.random.default_rng(4).permutation(len(X))
    nets = [NumpyBatchedNet(sizes, activations, cost, "float64", seed=3) for _ in range(2)]
    nets[0].train_epoch(X, Y, batch_size=5, lr=0.5, order=order)
    nets[1].train_epoch(X[order], Y[order], batch_size=5, lr=0.5)
    for got, want in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_array_equal(got, want)
