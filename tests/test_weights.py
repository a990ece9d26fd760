"""Sample and class weights: the weighted mean cost, its gradient, fit's steps, checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpcore import Network, reference
from bpcore.optim import Adam
from conftest import make_targets, params_of

#: Float64 sums of a few dozen terms in different orders: ulps of the result.
RTOL = 1e-13


def _data(sizes, cost, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sizes[0])), make_targets(rng, cost, n, sizes[-1])


def _close(got, want, rtol=RTOL):
    for g, w in zip(got, want):
        scale = max(1e-300, float(np.max(np.abs(w))))
        assert np.max(np.abs(np.asarray(g) - w)) <= rtol * scale


@settings(max_examples=25)
@given(n=st.integers(2, 30), seed=st.integers(0, 2**16),
       pair=st.sampled_from([("sigmoid", "cross_entropy"), ("softmax", "log_likelihood"),
                             ("identity", "quadratic"), ("tanh", "squared_error")]))
def test_weighted_cost_and_gradient_match_the_reference_and_the_definition(n, seed, pair):
    sizes = [4, 7, 3]
    acts, cost = ["relu", pair[0]], pair[1]
    X, Y = _data(sizes, cost, n, seed)
    w = np.random.default_rng(seed).uniform(0, 4, n)
    w[0] = 0.0  # a zero weight is allowed
    core, ref = Network(sizes, acts, cost, seed=seed), reference.Network(sizes, acts, cost, seed=seed)
    per_example = np.array([core.cost(X[i:i + 1], Y[i:i + 1]) for i in range(n)])
    want = np.sum(w * per_example) / np.sum(w)
    assert abs(core.cost(X, Y, sample_weight=w) - want) <= RTOL * abs(want)
    assert abs(ref.cost(X, Y, sample_weight=w) - want) <= RTOL * abs(want)
    got_b, got_w = core.backprop(X, Y, sample_weight=w)
    ref_b, ref_w = ref.backprop(X, Y, sample_weight=w)
    _close(got_b + got_w, ref_b + ref_w)
    # the definition: sum_x w_x dC_x/dtheta / sum_x w_x
    parts = [core.backprop(X[i:i + 1], Y[i:i + 1]) for i in range(n)]
    for l in range(2):
        want_b = sum(w[i] * parts[i][0][l] for i in range(n)) / np.sum(w)
        want_w = sum(w[i] * parts[i][1][l] for i in range(n)) / np.sum(w)
        _close([got_b[l], got_w[l]], [want_b, want_w], 1e-12)


def test_integer_weights_are_repeated_examples():
    sizes, acts, cost = [3, 5, 2], ["tanh", "sigmoid"], "cross_entropy"
    X, Y = _data(sizes, cost, 6)
    w = np.array([1, 3, 0, 2, 1, 1])
    net = Network(sizes, acts, cost, seed=1)
    rows = np.repeat(np.arange(6), w)
    assert abs(net.cost(X, Y, sample_weight=w) - net.cost(X[rows], Y[rows])) <= 1e-15
    _close(sum(net.backprop(X, Y, sample_weight=w), []), sum(net.backprop(X[rows], Y[rows]), []))


@pytest.mark.parametrize("value", [1.0, 0.1, 3.0])
@pytest.mark.parametrize("batch", [7, 150])
def test_uniform_weights_give_the_unweighted_fit_bitwise(value, batch):
    sizes, acts = [6, 20, 3], ["relu", "softmax"]
    X, Y = _data(sizes, "log_likelihood", 200)
    a, b = (Network(sizes, acts, "log_likelihood", seed=2) for _ in range(2))
    ha = a.fit(X, Y, 2, batch, 0.1, momentum=0.9, l2=1.0, seed=3)
    hb = b.fit(X, Y, 2, batch, 0.1, momentum=0.9, l2=1.0, seed=3,
               sample_weight=np.full(200, value))
    for x, y in zip(params_of(a), params_of(b)):
        assert np.array_equal(x, y)
    assert ha.train_cost == hb.train_cost


def test_fit_steps_with_w_over_the_mean_weight_and_zero_weights_make_no_step():
    """Weights (0,..,0, 1,..,1) over two mini-batches, no shuffling: the first batch's
    step is zero, the second's uses factor 1 / mean(w) = 2 -- the unweighted step on
    the second half at twice the learning rate (factors of 2 are exact: bitwise)."""
    sizes, acts = [4, 9, 2], ["sigmoid", "identity"]
    X, Y = _data(sizes, "quadratic", 10)
    w = np.r_[np.zeros(5), np.ones(5)]
    a, b = (Network(sizes, acts, "quadratic", seed=4) for _ in range(2))
    a.fit(X, Y, 1, 5, 0.05, sample_weight=w, shuffle=False)
    b.fit(X[5:], Y[5:], 1, 5, 0.1, shuffle=False)
    for x, y in zip(params_of(a), params_of(b)):
        assert np.array_equal(x, y)
    c = Network(sizes, acts, "quadratic", seed=4)
    before = params_of(c)
    c.fit(X[:5], Y[:5], 1, 5, 0.05, sample_weight=np.r_[np.zeros(4), 1.0], shuffle=False)
    d = Network(sizes, acts, "quadratic", seed=4)
    d.fit(X[4:5], Y[4:5], 1, 1, 0.05, shuffle=False)  # (1/5) * (1/mean = 5) * dC_4
    _close(params_of(c), params_of(d), 1e-15)
    assert not all(np.array_equal(x, y) for x, y in zip(before, params_of(c)))


@pytest.mark.parametrize("make", [lambda: None, lambda: Adam(0.01)])
def test_weighted_fit_matches_the_reference(make):
    sizes, acts, cost = [5, 12, 3], ["leaky_relu", "softmax"], "log_likelihood"
    X, Y = _data(sizes, cost, 60)
    w = np.random.default_rng(5).uniform(0.1, 3, 60)
    core, ref = Network(sizes, acts, cost, seed=6), reference.Network(sizes, acts, cost, seed=6)
    kw = {"optimizer": make()} if make() is not None else {"lr": 0.2, "momentum": 0.5}
    hc = core.fit(X, Y, 3, 8, sample_weight=w, seed=1, **kw)
    kw = {"optimizer": make()} if make() is not None else {"lr": 0.2, "momentum": 0.5}
    hr = ref.fit(X, Y, 3, 8, sample_weight=w, seed=1, **kw)
    _close(params_of(core), params_of(ref), 1e-12)
    assert np.allclose(hc.train_cost, hr.train_cost, rtol=1e-12, atol=0)


def test_balanced_class_weight_is_scikit_learns():
    sklearn = pytest.importorskip("sklearn.utils.class_weight")
    sizes, acts = [3, 4, 3], ["tanh", "softmax"]
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.r_[np.zeros(25, int), np.ones(10, int), np.full(5, 2)]
    table = sklearn.compute_class_weight("balanced", classes=np.arange(3), y=y)
    for class_weight, sample_weight in [("balanced", table[y]),
                                        ({0: 0.5, 2: 3.0}, np.array([0.5, 1.0, 3.0])[y])]:
        a, b = (Network(sizes, acts, "log_likelihood", seed=7) for _ in range(2))
        a.fit(X, y, 2, 8, 0.1, class_weight=class_weight, seed=0)
        b.fit(X, y, 2, 8, 0.1, sample_weight=sample_weight, seed=0)
        for p, q in zip(params_of(a), params_of(b)):
            assert np.array_equal(p, q)
    # class weights times sample weights
    a, b = (Network(sizes, acts, "log_likelihood", seed=7) for _ in range(2))
    sw = np.linspace(0.5, 1.5, 40)
    a.fit(X, y, 1, 8, 0.1, class_weight="balanced", sample_weight=sw, seed=0)
    b.fit(X, y, 1, 8, 0.1, sample_weight=sw * table[y], seed=0)
    for p, q in zip(params_of(a), params_of(b)):
        assert np.array_equal(p, q)


def test_weighted_evaluate():
    net = Network([2, 3, 2], ["tanh", "softmax"], "log_likelihood", seed=0)
    X = np.random.default_rng(1).normal(size=(20, 2))
    labels = np.arange(20) % 2
    correct = net.feedforward(X).argmax(1) == labels
    w = np.linspace(0, 2, 20)
    assert net.evaluate(X, labels, sample_weight=w) == pytest.approx(
        np.sum(w * correct) / np.sum(w), rel=1e-15)


@pytest.mark.parametrize("bad, match", [
    (np.r_[1.0, -1.0, 1.0, 1.0], "sample_weight must be >= 0"),
    (np.r_[1.0, np.nan, 1.0, 1.0], "sample_weight must be finite"),
    (np.r_[1.0, np.inf, 1.0, 1.0], "sample_weight must be finite"),
    (np.ones(3), r"sample_weight must be 1-D with one weight per example \(4\)"),
    (np.ones((4, 1)), r"sample_weight must be 1-D"),
    (np.zeros(4), "sample_weight must not be all zero"),
])
@pytest.mark.parametrize("call", ["fit", "backprop", "cost", "evaluate"])
def test_bad_sample_weights_are_refused(bad, match, call):
    net = Network([2, 3, 2], ["tanh", "softmax"], "log_likelihood", seed=0)
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    before = params_of(net)
    calls = {"fit": lambda: net.fit(X, y, 1, 2, 0.1, sample_weight=bad),
             "backprop": lambda: net.backprop(X, y, sample_weight=bad),
             "cost": lambda: net.cost(X, y, sample_weight=bad),
             "evaluate": lambda: net.evaluate(X, y, sample_weight=bad)}
    with pytest.raises(ValueError, match=match):
        calls[call]()
    for p, q in zip(before, params_of(net)):
        assert np.array_equal(p, q)


@pytest.mark.parametrize("bad, error, match", [
    ("balance", ValueError, "class_weight must be a dict or 'balanced'"),
    ([1, 2], TypeError, "class_weight must be a dict"),
    ({5: 1.0}, ValueError, "class_weight keys must be class labels 0..1"),
    ({0: -1.0}, ValueError, r"class_weight\[0\] must be a finite number >= 0"),
    ({0: 0.0, 1: 0.0}, ValueError, "zero for every example"),
])
def test_bad_class_weights_are_refused(bad, error, match):
    net = Network([2, 3, 2], ["tanh", "softmax"], "log_likelihood", seed=0)
    with pytest.raises(error, match=match):
        net.fit(np.ones((4, 2)), np.array([0, 1, 0, 1]), 1, 2, 0.1, class_weight=bad)
