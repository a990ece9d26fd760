"""Network.explain: the chain-rule factors of one weight multiply to backprop's gradient."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpcore
from bpcore import reference
from bpcore._explain import COST_DERIVATIVE
from conftest import HIDDEN, OUTPUT_PAIRS, make_targets


def _check(net, x, y, layer, j, k):
    e = net.explain(x, y, layer, j, k)
    nabla_w = net.backprop(x.reshape(1, -1), y.reshape(1, -1))[1]
    expected = nabla_w[layer - 1][j, k]
    assert math.prod(e.factors) == e.gradient
    assert len(e.symbols) == len(e.factors)
    # Both sides compute in float64, summing each layer's products in different orders:
    # each differs from the exact value by a few hundred ulps at most of the sum of the
    # magnitudes that enter it (depth <= 5, widths <= 9 here; 1e-13 is ~450 ulps).
    if e.next_weights is not None:  # a^(l-1)_k sigma'(z^l_j) sum_i w_ij delta_i
        scale = abs(e.factors[0] * e.factors[1]) * float(np.abs(e.next_weights * e.next_deltas).sum())
    elif e.fused:  # a^(L-1)_k (a_j - y_j)
        scale = abs(e.factors[0]) * (abs(e.a_out) + abs(e.y))
    else:  # a^(L-1)_k sigma'(z^L_j) c (a_j - y_j)
        scale = abs(e.factors[0] * e.factors[1]) * 2 * (abs(e.a_out) + abs(e.y))
    assert abs(e.gradient - expected) <= 1e-13 * scale + 1e-300
    return e


@pytest.mark.parametrize("output, cost", OUTPUT_PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_product_of_factors_is_the_backprop_gradient(hidden, output, cost):
    sizes = [4, 5, 6, 3]
    net = bpcore.Network(sizes, [hidden, hidden, output], cost, seed=11)
    rng = np.random.default_rng(5)
    x = rng.normal(size=4)
    y = make_targets(rng, cost, 1, 3)[0]
    for layer in (1, 2, 3):
        for j, k in ((0, 0), (sizes[layer] - 1, sizes[layer - 1] - 1), (1, 2)):
            e = _check(net, x, y, layer, j, k)
            fused = layer == 3 and cost in ("cross_entropy", "log_likelihood")
            assert len(e.factors) == (2 if fused else 3)
            assert e.factors[0] == (x[k] if layer == 1 else e.factors[0])
    # the reference network explains the same way
    ref = reference.Network(sizes, [hidden, hidden, output], cost, seed=11)
    assert ref.explain(x, y, 2, 1, 1).factors == net.explain(x, y, 2, 1, 1).factors


def test_every_weight_of_a_small_network():
    net = bpcore.Network([3, 4, 2], ["tanh", "sigmoid"], "squared_error", seed=0)
    x, y = np.array([0.3, -1.2, 0.8]), np.array([1.0, 0.0])
    nabla_b, nabla_w = net.backprop(x.reshape(1, -1), y.reshape(1, -1))
    for layer in (1, 2):
        for j in range(net.sizes[layer]):
            assert net.explain(x, y, layer, j, 0).delta == pytest.approx(
                nabla_b[layer - 1][j], rel=1e-13, abs=1e-300)
            for k in range(net.sizes[layer - 1]):
                _check(net, x, y, layer, j, k)


def test_output_layer_has_3blue1browns_three_terms():
    # C_0 = (a - y)^2: dC0/dw = a^(L-1)_k * sigma'(z^L_j) * 2 (a^L_j - y_j)
    net = bpcore.Network([2, 2], "sigmoid", "squared_error")
    net.weights, net.biases = [np.array([[0.5, -1.0], [2.0, 0.25]])], [np.array([0.1, -0.2])]
    x, y = np.array([0.6, 0.3]), np.array([0.0, 1.0])
    e = net.explain(x, y, 1, 1, 0)
    z = 2.0 * 0.6 + 0.25 * 0.3 - 0.2
    a = 1 / (1 + math.exp(-z))
    assert e.factors == pytest.approx((0.6, a * (1 - a), 2 * (a - 1.0)), rel=1e-15)
    text = str(e)
    assert "dC_x/dw^1_1,0" in text and "sigma'(z^1_1)" in text and "2 (a^1_1 - y_1)" in text
    assert f"{e.gradient:.6g}" in text


def test_hidden_layer_shows_the_sum_over_the_next_layer():
    net = bpcore.Network([3, 4, 2], "sigmoid", "quadratic", seed=3)
    x, y = np.array([0.5, 0.1, -0.4]), np.array([1.0, 0.0])
    e = net.explain(x, y, 1, 2, 1)
    assert e.next_weights.shape == (2,) and np.array_equal(e.next_weights, net.weights[1][:, 2])
    assert e.factors[2] == pytest.approx(float(e.next_weights @ e.next_deltas), rel=1e-15)
    assert e.delta == pytest.approx(e.factors[1] * e.factors[2], rel=1e-15)
    text = str(e)
    assert "sum_i w^2_i,2 delta^2_i" in text and "delta^1_2" in text


@pytest.mark.parametrize("output, cost", [("sigmoid", "cross_entropy"),
                                          ("softmax", "log_likelihood")])
def test_fused_output_is_a_minus_y(output, cost):
    net = bpcore.Network([3, 4, 3], ["relu", output], cost, seed=1)
    x = np.array([0.2, -0.7, 1.1])
    y = np.array([0.0, 1.0, 0.0])
    e = net.explain(x, y, 2, 1, 3)
    a = net.feedforward(x)
    assert e.fused and e.factors[1] == pytest.approx(a[1] - 1.0, rel=1e-14)
    why = "cancel into a - y" if cost == "cross_entropy" else "no single sigma' factor"
    assert "a^2_1 - y_1" in str(e) and why in str(e)
    # a class label is one-hot encoded like everywhere else
    assert net.explain(x, 1, 2, 1, 3).factors == e.factors


def test_cost_derivative_times_sigma_prime_is_the_output_error():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=6), rng.normal(size=6)
    for cost, derivative in COST_DERIVATIVE.items():
        for act in ("identity", "sigmoid", "tanh", "relu", "leaky_relu"):
            a = reference.SIGMA[act](z)
            assert np.allclose(derivative(a, y) * reference.SIGMA_PRIME[act](z),
                               reference.output_error(cost, act, z, a, y), rtol=1e-15, atol=0)


def test_float32_network_is_explained_in_float64():
    net = bpcore.Network([3, 3, 2], "tanh", "quadratic", dtype="float32", seed=0)
    x, y = np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.0])
    e = net.explain(x, y, 1, 0, 0)
    expected = net.backprop(x, y)[1][0][0, 0]
    assert isinstance(e.gradient, float)
    assert e.gradient == pytest.approx(float(expected), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("args, error, message", [
    ((0, 0, 0), ValueError, "layer"), ((3, 0, 0), ValueError, "layer"),
    ((1, 4, 0), ValueError, "j"), ((1, 0, 3), ValueError, "k"), ((1, -1, 0), ValueError, "j"),
    ((1.5, 0, 0), TypeError, "layer"),
])
def test_bad_indices(args, error, message):
    net = bpcore.Network([3, 4, 2])
    with pytest.raises(error, match=message):
        net.explain(np.zeros(3), np.zeros(2), *args)


def test_bad_example():
    net = bpcore.Network([3, 4, 2])
    with pytest.raises(ValueError, match="one example"):
        net.explain(np.zeros((2, 3)), np.zeros((2, 2)), 1, 0, 0)
    with pytest.raises(ValueError, match="x"):
        net.explain(np.zeros(4), np.zeros(2), 1, 0, 0)


@settings(max_examples=40)
@given(sizes=st.lists(st.integers(1, 7), min_size=2, max_size=5),
       pair=st.sampled_from(OUTPUT_PAIRS), hidden=st.sampled_from(HIDDEN),
       seed=st.integers(0, 2**16), data=st.data())
def test_random_shapes_match_the_reference_backprop(sizes, pair, hidden, seed, data):
    output, cost = pair
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    L = len(sizes) - 1
    net = reference.Network(sizes, [hidden] * (L - 1) + [output], cost, seed=seed)
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=sizes[0]), make_targets(rng, cost, 1, sizes[-1])[0]
    layer = data.draw(st.integers(1, L))
    j = data.draw(st.integers(0, sizes[layer] - 1))
    k = data.draw(st.integers(0, sizes[layer - 1] - 1))
    _check(net, x, y, layer, j, k)
    _check(bpcore.Network(sizes, net.activations, cost, seed=seed), x, y, layer, j, k)
