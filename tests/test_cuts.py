"""The two cuts of an epoch into pieces compute every number the same way.

One thread runs each mini-batch as one block of examples through the whole
network; a team of several runs it layer by layer, each thread its share of
every layer's units (z^l, delta^l, the rows of W^l), so that it keeps finding
its rows of W in its own cache (``Schedule`` in bpcore/_kernels.pyx).  The test
hook ``_layerwise`` forces either cut, ``_cut_for`` cuts for more threads than
run (one thread then takes every member's pieces and merges them into runs).
Every element is one fixed sequence of operations whichever piece computes it,
so the trained weights and the costs must be bitwise the same.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import bpcore
from bpcore import network
from bpcore.optim import SGD, Adam

kernels = network._kernels
OPENMP = bpcore.build_info()["openmp"]

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]


@st.composite
def problems(draw):
    """A network, data, a mini-batch size and an optimizer of random shapes: layers
    narrower and wider than a vector and than the 16-unit pieces."""
    hidden = draw(st.lists(st.integers(1, 70), min_size=0, max_size=3))
    sizes = [draw(st.integers(1, 60)), *hidden, draw(st.integers(1, 20))]
    acts = [draw(st.sampled_from(HIDDEN)) for _ in hidden]
    cost = draw(st.sampled_from(["quadratic", "cross_entropy", "log_likelihood"]))
    acts.append({"quadratic": draw(st.sampled_from(HIDDEN)), "cross_entropy": "sigmoid",
                 "log_likelihood": "softmax"}[cost])
    if cost == "log_likelihood" and sizes[-1] == 1:
        sizes[-1] = 2
    dtype = draw(st.sampled_from(["float32", "float64"]))
    n = draw(st.integers(1, 150))
    batch = draw(st.integers(1, 70))
    weighted = draw(st.booleans())
    adam = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return sizes, acts, cost, dtype, n, batch, weighted, adam, seed


def _train(problem, threads, **hooks):
    sizes, acts, cost, dtype, n, batch, weighted, adam, seed = problem
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if cost == "log_likelihood":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    else:
        Y = rng.random((n, sizes[-1])).astype(dtype)
    weights = (rng.random(n) + 0.5).astype(dtype) if weighted else None
    order = rng.permutation(n)
    net = bpcore.Network(sizes, activations=acts, cost=cost, dtype=dtype, seed=seed)
    optimizer = Adam(1e-3) if adam else SGD(0.05, momentum=0.9)
    state = net._bind_optimizer(optimizer)
    costs = np.zeros(n)
    for _ in range(2):  # the second epoch starts from the first one's state
        hyper = optimizer._hyper(kernels)
        kernels.train_epoch(net._layout, net._params, net._grads,
                            state if state.shape[0] else None, hyper, X, Y, order, weights,
                            batch, *net._fit_workspace(batch), costs, threads, **hooks)
        optimizer._t = hyper.t
    return net._params.copy(), costs


def _same_bits(a, b):
    """Bitwise equal, NaNs included (a problem that diverges must diverge alike)."""
    return a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.skipif(not OPENMP, reason="a serial build has no second thread")
@settings(max_examples=60, deadline=None)
@example(([1, 1, 1, 1, 17], ["sigmoid", "identity", "identity", "identity"], "quadratic",
          "float32", 5, 1, False, False, 1))  # diverges: NaNs, alike on every cut
# layers wide enough for several pieces of delta^l of a whole tile panel each
# (kernels.DELTA_GRAIN), one of them with a ragged edge panel
@example(([30, 200, 130, 10], ["relu", "tanh", "softmax"], "log_likelihood", "float32",
          100, 33, False, False, 2))
@example(([30, 200, 130, 10], ["tanh", "leaky_relu", "softmax"], "log_likelihood", "float64",
          100, 33, True, True, 3))
@given(problems())
def test_the_layer_wise_cut_computes_what_the_block_cut_does(problem):
    params, costs = _train(problem, 1)  # one thread: one block per mini-batch
    for threads, hooks in [(2, {}), (2, {"_layerwise": 0}), (1, {"_layerwise": 1}),
                           (3, {}), (1, {"_cut_for": 3})]:
        other, other_costs = _train(problem, threads, **hooks)
        assert _same_bits(params, other), (threads, hooks)
        assert _same_bits(costs, other_costs), (threads, hooks)


def test_a_team_of_one_may_be_cut_layer_wise_for_several():
    """Cut for 5 members, one thread claims every member's home pieces (a member
    without a thread never claims its own), in runs that join the ranges."""
    problem = ([40, 70, 33, 10], ["relu", "tanh", "softmax"], "log_likelihood", "float64",
               300, 64, True, False, 7)
    params, _ = _train(problem, 1)
    stats = np.zeros(2, dtype=np.int64)
    runs = np.zeros(1, dtype=np.int64)
    cut, _ = _train(problem, 1, _cut_for=5, stats=stats, runs=runs)
    assert np.array_equal(params, cut)
    assert 0 < runs[0] < stats[0]
