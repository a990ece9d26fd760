"""bpcore.check_gradients: backpropagation against central differences, as a user-facing tool."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import bpcore
from bpcore import GradientCheck, check_gradients, reference
from bpcore.gradcheck import TOLERANCES
from conftest import HIDDEN, OUTPUT_PAIRS, make_targets, params_of

SIZES = [4, 5, 4, 3]  # 25 + 24 + 15 = 64 parameters: every one is checked, quickly
N = 8
# One thread: ~130 cost evaluations of 8 examples per check, far too little work to
# share (results do not depend on the thread count; test_training.py checks that).
THREADS = 1


def _problem(hidden, out_act, cost, dtype="float64", cls=bpcore.Network, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, size=(N, SIZES[0]))
    Y = make_targets(rng, cost, N, SIZES[-1])
    net = cls(SIZES, [hidden, hidden, out_act], cost, dtype=dtype, seed=seed, num_threads=THREADS)
    return net, X, Y


def _n_params(net):
    return tuple(w.size + b.size for w, b in zip(net.weights, net.biases))


def _scaled_layer(cls, layer, factor):
    """A subclass of cls whose backprop multiplies dC/dW^layer and dC/db^layer by factor."""
    class WrongGradient(cls):
        def _gradient(self, X, Y, w=None):
            nabla_b, nabla_w = super()._gradient(X, Y, w)
            nabla_b[layer - 1] = nabla_b[layer - 1] * factor
            nabla_w[layer - 1] = nabla_w[layer - 1] * factor
            return nabla_b, nabla_w
    return WrongGradient


# -- correct gradients pass --------------------------------------------------------------------

@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("out_act, cost", OUTPUT_PAIRS)
def test_passes_for_every_activation_and_cost_in_float64(hidden, out_act, cost):
    net, X, Y = _problem(hidden, out_act, cost)
    result = check_gradients(net, X, Y)
    assert result.ok, str(result)
    assert result.tolerance == 1e-6
    assert result.n_checked_per_layer == _n_params(net)  # every parameter by default
    assert len(result.max_rel_error_per_layer) == net.n_layers
    assert result.failed_layers == ()


@pytest.mark.parametrize("out_act, cost", OUTPUT_PAIRS[:2] + OUTPUT_PAIRS[-2:])
def test_passes_for_the_reference_network(out_act, cost):
    net, X, Y = _problem("tanh", out_act, cost, cls=reference.Network)
    assert check_gradients(net, X, Y).ok


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("out_act, cost", [p for p in OUTPUT_PAIRS if "relu" not in p[0]])
def test_passes_in_float32_with_smooth_activations(hidden, out_act, cost):
    # Kinks are avoided: the float32 step (~5e-3) often straddles one (see the module docs).
    net, X, Y = _problem(hidden, out_act, cost, dtype="float32")
    result = check_gradients(net, X, Y)
    assert result.tolerance == 1e-2
    assert result.eps == pytest.approx(np.finfo(np.float32).eps ** (1 / 3))
    assert result.ok, str(result)


def test_default_step_is_the_cube_root_of_machine_epsilon():
    net, X, Y = _problem("tanh", "identity", "quadratic")
    assert check_gradients(net, X, Y).eps == np.finfo(np.float64).eps ** (1 / 3)
    assert check_gradients(net, X, Y, eps=1e-4).eps == 1e-4
    assert TOLERANCES == {"float64": 1e-6, "float32": 1e-2}


def test_zero_gradients_of_dead_units_are_not_relative_errors_of_one():
    """A relu unit that never fires has dC/dw = 0 exactly and central differences of 0.

    Without the floor, 0/0 (or rounding noise over noise) would be reported.
    """
    net, X, Y = _problem("relu", "identity", "quadratic")
    net.biases[0][0] = -1e3  # z^1_0 < 0 for every example: unit 0 is dead
    nabla_b, nabla_w = net.backprop(X, Y)
    assert nabla_b[0][0] == 0 and not nabla_w[0][0].any()
    assert check_gradients(net, X, Y).ok


# -- wrong gradients are caught --------------------------------------------------------------

@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
@pytest.mark.parametrize("layer", [1, 2, 3])
def test_a_gradient_off_by_one_percent_is_flagged_in_its_layer(cls, layer):
    net, X, Y = _problem("tanh", "softmax", "log_likelihood", cls=_scaled_layer(cls, layer, 1.01))
    result = check_gradients(net, X, Y)
    assert not result.ok
    assert result.failed_layers == (layer,)
    # Where |g| is above the floor the error is |1.01 g - g| / (1.01 |g|) exactly (up to
    # the ~1e-8 of the central difference itself); the largest entry is above it.
    assert result.max_rel_error_per_layer[layer - 1] == pytest.approx(0.01 / 1.01, rel=1e-4)
    assert result.worst == result.max_rel_error_per_layer[layer - 1]
    others = [e for l, e in enumerate(result.max_rel_error_per_layer, 1) if l != layer]
    assert max(others) <= result.tolerance
    assert "FAIL" in str(result)


def test_one_wrong_bias_entry_is_flagged():
    class OneWrongBias(bpcore.Network):
        def _gradient(self, X, Y, w=None):
            nabla_b, nabla_w = super()._gradient(X, Y, w)
            nabla_b[1][2] += 1e-3
            return nabla_b, nabla_w

    net, X, Y = _problem("sigmoid", "sigmoid", "cross_entropy", cls=OneWrongBias)
    assert check_gradients(net, X, Y).failed_layers == (2,)


# -- the network is left as it was -----------------------------------------------------------

@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_parameters_are_bitwise_unchanged(cls, dtype):
    net, X, Y = _problem("leaky_relu", "tanh", "squared_error", dtype=dtype, cls=cls)
    before = params_of(net)
    check_gradients(net, X, Y)
    for a, b in zip(params_of(net), before):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # and the network still computes with its own, live buffers
    assert net.cost(X, Y) == cls(SIZES, ["leaky_relu", "leaky_relu", "tanh"], "squared_error",
                                 dtype=dtype, seed=0).cost(X, Y)


def test_parameters_are_restored_when_the_cost_raises():
    class FailsOnFifthCost(bpcore.Network):
        calls = 0

        def cost(self, X, Y):
            FailsOnFifthCost.calls += 1
            if FailsOnFifthCost.calls == 5:
                raise KeyboardInterrupt
            return super().cost(X, Y)

    net, X, Y = _problem("tanh", "identity", "quadratic", cls=FailsOnFifthCost)
    before = params_of(net)
    with pytest.raises(KeyboardInterrupt):
        check_gradients(net, X, Y)
    assert FailsOnFifthCost.calls == 5  # raised while a parameter was perturbed
    for a, b in zip(params_of(net), before):
        assert np.array_equal(a, b)


# -- a random subset -------------------------------------------------------------------------

def test_n_samples_checks_that_many_parameters_per_layer():
    class CountingCosts(bpcore.Network):
        calls = 0

        def cost(self, X, Y):
            CountingCosts.calls += 1
            return super().cost(X, Y)

    net, X, Y = _problem("tanh", "identity", "quadratic", cls=CountingCosts)
    result = check_gradients(net, X, Y, n_samples=16, seed=3)
    assert result.n_checked_per_layer == (16, 16, 15)  # the last layer has only 15
    assert CountingCosts.calls == 1 + 2 * (16 + 16 + 15)  # C once, then C(theta +- h) each
    assert result.ok
    assert check_gradients(net, X, Y, n_samples=16, seed=3) == result  # seeded: reproducible


def test_a_wrong_layer_is_found_from_a_sample():
    # every entry of layer 2 is off by 1 %, so any sample of it shows it
    net, X, Y = _problem("tanh", "identity", "quadratic",
                         cls=_scaled_layer(bpcore.Network, 2, 1.01))
    result = check_gradients(net, X, Y, n_samples=3, seed=0)
    assert result.n_checked_per_layer == (3, 3, 3)
    assert result.failed_layers == (2,)


# -- the result object -------------------------------------------------------------------------

def test_result_is_frozen_and_prints_a_table():
    net, X, Y = _problem("tanh", "identity", "quadratic")
    result = check_gradients(net, X, Y)
    assert isinstance(result, GradientCheck)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.tolerance = 1.0
    lines = str(result).splitlines()
    assert len(lines) == 1 + net.n_layers + 1
    assert lines[1].split()[:2] == ["1", "25"] and lines[3].split()[:2] == ["3", "15"]
    assert lines[-1].endswith(": ok") and "FAIL" not in str(result)


def test_non_finite_errors_fail():
    result = GradientCheck((1e-9, math.inf), (3, 3), 1e-6, 1e-5)
    assert not result.ok and result.failed_layers == (2,) and result.worst == math.inf


# -- argument checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"eps": 0.0}, ValueError, "eps must be > 0"),
    ({"eps": -1e-6}, ValueError, "eps must be > 0"),
    ({"eps": float("nan")}, ValueError, "eps must be finite"),
    ({"eps": "small"}, TypeError, "eps must be a real number"),
    ({"n_samples": 0}, ValueError, "n_samples must be >= 1"),
    ({"n_samples": 2.5}, TypeError, "n_samples must be an integer"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": "x"}, TypeError, "seed must be an integer"),
])
def test_bad_arguments(kwargs, exc, match):
    net, X, Y = _problem("tanh", "identity", "quadratic")
    with pytest.raises(exc, match=match):
        check_gradients(net, X, Y, **kwargs)


def test_bad_network_and_data():
    net, X, Y = _problem("tanh", "identity", "quadratic")
    with pytest.raises(TypeError, match="network must be a bpcore.Network"):
        check_gradients("net", X, Y)
    with pytest.raises(ValueError, match="X must have 4 columns"):
        check_gradients(net, X[:, :3], Y)
    with pytest.raises(ValueError, match=r"Y must have shape \(8, 3\)"):
        check_gradients(net, X, Y[:, :2])


def test_an_infinite_cost_is_refused():
    net, X, Y = _problem("tanh", "identity", "quadratic")
    net.weights[-1][...] = 1e300  # a^L ~ 1e300: C = 1/2 ||a - y||^2 overflows
    with pytest.raises(ValueError, match="the cost is inf"):
        check_gradients(net, X, Y)


def test_a_step_below_the_dtype_resolution_is_refused():
    net, X, Y = _problem("tanh", "identity", "quadratic", dtype="float32")
    with pytest.raises(ValueError, match="eps=1e-12 is too small for float32"):
        check_gradients(net, X, Y, eps=1e-12)
