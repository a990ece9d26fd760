"""Activations, costs and their gradients stay finite where exp overflows.

z = 88 is near float32's exp overflow (e^88.7), 710 near float64's (e^709.8), 1e4
far past both; a silent inf or NaN in outputs, costs or gradients would be a bug.
"""
import numpy as np
import pytest

from bpcore import Network
from bpcore.reference import Network as Reference

PAIRS = [("sigmoid", "quadratic"), ("sigmoid", "cross_entropy"), ("softmax", "log_likelihood"),
         ("tanh", "squared_error"), ("identity", "quadratic"), ("relu", "quadratic"),
         ("leaky_relu", "squared_error")]


def _network(cls, output, cost, dtype, z):
    """A 1-input network whose output pre-activations are exactly (z, -z, 0) for x = 1."""
    net = cls([1, 3], [output], cost, dtype=dtype, seed=0)
    net.weights[0][...] = np.array([[z], [-z], [0.0]])
    net.biases[0][...] = 0
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("z", [88.0, 710.0, 1e4])
@pytest.mark.parametrize("output, cost", PAIRS)
def test_extreme_pre_activations_give_finite_results(dtype, z, output, cost):
    X = np.ones((2, 1))
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    for cls in (Network, Reference):
        net = _network(cls, output, cost, dtype, z)
        out = net.feedforward(X)
        assert np.isfinite(out).all(), (cls, out)
        assert np.isfinite(net.cost(X, Y))
        nabla_b, nabla_w = net.backprop(X, Y)
        assert all(np.isfinite(g).all() for g in nabla_b + nabla_w)
    if output in ("sigmoid", "softmax"):
        # saturated outputs are probabilities: the upper one rounds to exactly 1
        assert out[0, 0] == 1 and 0 <= out[0, 1] < 1e-30


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saturated_cross_entropy_cost_is_the_exact_limit(dtype):
    # sigmoid(1e4) rounds to 1; -ln(1 - a) would be inf, the z-form gives z exactly.
    net = _network(Network, "sigmoid", "cross_entropy", dtype, 1e4)
    X, Y = np.ones((1, 1)), np.zeros((1, 3))
    # per output: max(z,0) - z y + ln(1 + e^-|z|) = 1e4 (z=1e4, y=0), 0 (z=-1e4, y=0),
    # ln 2 (z=0, y=0)
    assert net.cost(X, Y) == pytest.approx(1e4 + np.log(2), rel=1e-12)
