"""Pickling a Network, and stopping fit from its callback."""
import pickle

import numpy as np

from bpcore import Network


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6)), rng.integers(0, 3, n)


def test_pickle_round_trip_keeps_parameters_threads_and_shuffling():
    X, y = _data()
    net = Network([6, 5, 3], ["tanh", "softmax"], "log_likelihood", dtype="float32", seed=4,
                  num_threads=2)
    net.fit(X, y, 2, 7, 0.1)
    copy = pickle.loads(pickle.dumps(net))
    assert (copy.sizes, copy.activations, copy.cost_name, copy.dtype, copy.num_threads) == \
        (net.sizes, net.activations, net.cost_name, net.dtype, net.num_threads)
    for a, b in zip(copy.weights + copy.biases, net.weights + net.biases):
        assert np.array_equal(a, b)
    # The shuffling generator travels too: further training stays identical.
    net.fit(X, y, 2, 7, 0.1)
    copy.fit(X, y, 2, 7, 0.1)
    for a, b in zip(copy.weights + copy.biases, net.weights + net.biases):
        assert np.array_equal(a, b)


def test_callback_returning_true_stops_after_that_epoch():
    X, y = _data()
    net = Network([6, 4, 3], seed=1)
    seen = []

    def stop_at_two(epoch, history):
        seen.append(epoch)
        return epoch == 2

    history = net.fit(X, y, 10, 8, 0.5, seed=3, callback=stop_at_two)
    assert seen == [1, 2] and history.epochs == 2
    twice = Network([6, 4, 3], seed=1)
    twice.fit(X, y, 2, 8, 0.5, seed=3)
    for a, b in zip(twice.weights, net.weights):
        assert np.array_equal(a, b)
