"""Network.to_torch / Network.from_torch: same parameters, same dtype, bitwise round trip."""
from __future__ import annotations

import numpy as np
import pytest

import bpcore
from conftest import HIDDEN, OUTPUT_PAIRS, params_of, require

torch = require("torch")
nn = torch.nn

#: |torch - feedforward| allowed: rounding of outputs of size ~1 summed in another order.
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output, cost", OUTPUT_PAIRS)
def test_round_trip_is_bitwise_and_torch_computes_the_same(dtype, output, cost):
    net = bpcore.Network([5, 6, 4, 7, 5, 6, 3], list(HIDDEN) + [output], cost, dtype=dtype,
                         seed=4)
    module = net.to_torch()
    assert isinstance(module, nn.Sequential) and len(module) == 2 * net.n_layers
    torch_dtype = torch.float32 if dtype == "float32" else torch.float64
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        linear = module[2 * l]
        assert type(linear) is nn.Linear and linear.weight.dtype == torch_dtype
        assert np.array_equal(linear.weight.detach().numpy(), w)
        assert np.array_equal(linear.bias.detach().numpy(), b)
    X = np.random.default_rng(0).normal(size=(9, 5)).astype(dtype)
    with torch.no_grad():
        out = module(torch.from_numpy(X)).numpy()
    assert np.max(np.abs(out - net.feedforward(X))) <= TOLERANCE[dtype]

    back = bpcore.Network.from_torch(module, cost=cost)
    assert (back.sizes, back.activations, back.cost_name, back.dtype) == (
        net.sizes, net.activations, net.cost_name, net.dtype)
    for a, b in zip(params_of(back), params_of(net)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(back.feedforward(X), net.feedforward(X))


def test_to_torch_is_a_copy_and_leaves_torchs_generator_alone():
    net = bpcore.Network([3, 2], seed=0)
    state = torch.get_rng_state()
    module = net.to_torch()
    assert torch.equal(torch.get_rng_state(), state)
    with torch.no_grad():
        module[0].weight.zero_()
    assert not np.all(net.weights[0] == 0)


def test_from_torch_reads_a_sequential_built_in_torch():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8, bias=False),
                           nn.Linear(8, 3), nn.Softmax(dim=1)).double()
    net = bpcore.Network.from_torch(module, num_threads=1)
    assert net.sizes == (4, 8, 8, 3)
    assert net.activations == ("relu", "identity", "softmax")
    assert net.cost_name == "log_likelihood"  # the default after a softmax
    assert np.array_equal(net.biases[1], np.zeros(8))
    X = np.random.default_rng(1).normal(size=(6, 4))
    with torch.no_grad():
        out = module(torch.from_numpy(X)).numpy()
    assert np.max(np.abs(out - net.feedforward(X))) <= 1e-12
    assert bpcore.Network.from_torch(nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())).cost_name \
        == "quadratic"


@pytest.mark.parametrize("module, message", [
    (lambda: nn.Linear(2, 3), "must be a torch.nn.Sequential"),
    (lambda: nn.Sequential(), "must start with a Linear"),
    (lambda: nn.Sequential(nn.ReLU(), nn.Linear(2, 2)), "must start with a Linear"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Conv1d(1, 1, 1)), r"module\[1\] is Conv1d"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.GELU()), r"module\[1\] is GELU"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.ReLU()), "right after an activation"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 2)), r"module\[1\] is Linear\(4, 2\)"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(0.2)), "negative_slope 0.2"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=0)), r"Softmax\(dim=0\)"),
    (lambda: nn.Sequential(nn.Linear(2, 3).half()), "float32 or all float64"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2).double()), "float32 or all float64"),
])
def test_from_torch_refuses_what_it_cannot_read(module, message):
    with pytest.raises((TypeError, ValueError), match=message):
        bpcore.Network.from_torch(module())


def test_from_torch_refuses_softmax_in_a_hidden_layer():
    module = nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=-1), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="softmax is only allowed as the output"):
        bpcore.Network.from_torch(module)


def test_reference_round_trip():
    from bpcore import reference

    net = reference.Network([3, 5, 2], ["tanh", "sigmoid"], "cross_entropy", seed=1)
    back = reference.Network.from_torch(net.to_torch(), cost="cross_entropy")
    assert type(back) is reference.Network
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert np.array_equal(a, b)
