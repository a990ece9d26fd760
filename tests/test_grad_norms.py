"""fit(record_grad_norms=True): the speed of learning per layer, from the compiled epoch."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import bpcore
from bpcore import reference
from bpcore.exceptions import DivergenceError
from conftest import HIDDEN, OUTPUT_PAIRS, make_targets, params_of

# Core and reference compute each mini-batch's bias gradient in float64 with sums in
# different orders (a few ulps), over at most a few dozen stable steps; the norms
# inherit that, so 1e-10 relative leaves orders of magnitude (as in test_training).
RTOL = {"float64": 1e-10, "float32": 1e-3}


def _data(sizes, cost, n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sizes[0])), make_targets(rng, cost, n, sizes[-1])


def _both(sizes, activations, cost, dtype, X, Y, **fit):
    nets = [cls(sizes, activations, cost, dtype=dtype, seed=3)
            for cls in (bpcore.Network, reference.Network)]
    return [net.fit(X, Y, record_grad_norms=True, seed=1, **fit) for net in nets]


@settings(max_examples=25)
@example(sizes=[5, 1, 9], pair=("identity", "quadratic"), hidden="identity", n=10,
         batch_size=1, dtype="float64", seed=0)  # diverges in epoch 2, core and reference
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5),
       pair=st.sampled_from(OUTPUT_PAIRS), hidden=st.sampled_from(HIDDEN),
       n=st.integers(1, 40), batch_size=st.integers(1, 50),
       dtype=st.sampled_from(["float64", "float32"]), seed=st.integers(0, 2**16))
def test_core_matches_reference(sizes, pair, hidden, n, batch_size, dtype, seed):
    output, cost = pair
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    activations = [hidden] * (len(sizes) - 2) + [output]
    X, Y = _data(sizes, cost, n, seed)
    fit = dict(epochs=2, batch_size=batch_size, lr=0.05, momentum=0.5, l2=0.1)
    try:
        ref = reference.Network(sizes, activations, cost, dtype=dtype, seed=3).fit(
            X, Y, record_grad_norms=True, seed=1, **fit)
    except DivergenceError as exc:
        # some of these problems (identity layers, one example per step) diverge at
        # this rate: the core must then diverge in the same epoch
        epoch = re.search(r"in epoch (\d+)", str(exc)).group(1)
        with pytest.raises(DivergenceError, match=f"in epoch {epoch}:"):
            bpcore.Network(sizes, activations, cost, dtype=dtype, seed=3).fit(
                X, Y, record_grad_norms=True, seed=1, **fit)
        return
    core = bpcore.Network(sizes, activations, cost, dtype=dtype, seed=3).fit(
        X, Y, record_grad_norms=True, seed=1, **fit)
    assert np.array(core.grad_norms).shape == (2, len(sizes) - 1)
    np.testing.assert_allclose(core.grad_norms, ref.grad_norms, rtol=RTOL[dtype],
                               atol=1e-300 if dtype == "float64" else 1e-6)


def test_streaming_path_and_a_short_last_batch():
    # batches of 200 > 128 examples: the gradient sums run apart from the SGD step
    sizes = [6, 20, 3]
    X, Y = _data(sizes, "quadratic", 450, 0)
    core, ref = _both(sizes, "sigmoid", "quadratic", "float64", X, Y, epochs=2,
                      batch_size=200, lr=0.5)
    np.testing.assert_allclose(core.grad_norms, ref.grad_norms, rtol=RTOL["float64"])


def test_first_epoch_by_hand():
    # one epoch of full-batch steps is one step: the norm is ||backprop's nabla_b^l||
    sizes = [4, 5, 2]
    X, Y = _data(sizes, "quadratic", 12, 2)
    net = bpcore.Network(sizes, "tanh", "quadratic", seed=0)
    nabla_b, _ = net.backprop(X, Y)
    history = net.fit(X, Y, epochs=1, batch_size=12, lr=0.1, record_grad_norms=True)
    expected = [np.linalg.norm(g) for g in nabla_b]
    np.testing.assert_allclose(history.grad_norms[0], expected, rtol=1e-13)


@pytest.mark.skipif(not bpcore.build_info()["openmp"], reason="needs an OpenMP build")
def test_independent_of_the_thread_count():
    sizes = [8, 40, 30, 4]
    X, Y = _data(sizes, "log_likelihood", 300, 4)
    runs = []
    for threads in (1, 2, 3):
        net = bpcore.Network(sizes, ["relu", "tanh", "softmax"], "log_likelihood", seed=0,
                             num_threads=threads)
        runs.append(net.fit(X, Y, epochs=2, batch_size=32, lr=0.1, seed=0,
                            record_grad_norms=True).grad_norms)
    assert runs[0] == runs[1] == runs[2]


def test_off_by_default_and_recording_changes_nothing():
    sizes = [5, 7, 3]
    X, Y = _data(sizes, "quadratic", 50, 1)
    a, b = (bpcore.Network(sizes, seed=2) for _ in range(2))
    ha = a.fit(X, Y, epochs=3, batch_size=7, lr=0.3, seed=0)
    hb = b.fit(X, Y, epochs=3, batch_size=7, lr=0.3, seed=0, record_grad_norms=True)
    assert ha.grad_norms == [] and len(hb.grad_norms) == 3
    assert ha.train_cost == hb.train_cost
    for x, y in zip(params_of(a), params_of(b)):
        assert np.array_equal(x, y)
    with pytest.raises(TypeError, match="record_grad_norms"):
        a.fit(X, Y, epochs=1, batch_size=7, lr=0.3, record_grad_norms="yes")


@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
def test_deep_sigmoid_network_first_layer_learns_slowest(cost):
    # Nielsen, chapter 5: in [784, 30, 30, 30, 30, 10] the gradient shrinks by a factor
    # of about 4 per layer going back (sigma' <= 1/4): layer 1 learns slowest
    from bpcore.datasets import load_mnist_subset

    (X, y), _ = load_mnist_subset()
    net = bpcore.Network([784, 30, 30, 30, 30, 10], "sigmoid", cost, seed=0)
    history = net.fit(X[:1000], y[:1000], epochs=3, batch_size=10, lr=0.1, seed=0,
                      record_grad_norms=True)
    for epoch in history.grad_norms:
        assert all(a < b for a, b in zip(epoch, epoch[1:])), epoch
        assert epoch[0] < epoch[-1] / 50


def test_plot_draws_one_line_per_layer(tmp_path):
    pytest.importorskip("matplotlib")
    from bpcore import plot

    net = bpcore.Network([4, 6, 5, 3], seed=0)
    X, Y = _data([4, 6, 5, 3], "quadratic", 30, 0)
    history = net.fit(X, Y, epochs=4, batch_size=5, lr=0.5, record_grad_norms=True)
    fig = plot.plot_grad_norms(history, tmp_path / "speed.png")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["layer 1", "layer 2", "layer 3"]
    for l, line in enumerate(ax.get_lines()):
        assert np.array_equal(line.get_ydata(), np.array(history.grad_norms)[:, l])
    assert (tmp_path / "speed.png").stat().st_size > 0
    # the history plot gets the speed as its third panel
    assert len(plot.plot_history(history, tmp_path / "h.png").axes) == 3
    with pytest.raises(ValueError, match="record_grad_norms=True"):
        plot.plot_grad_norms(bpcore.History())
