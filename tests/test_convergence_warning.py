"""The no-progress check: ``fit`` warns (``bpcore.ConvergenceWarning``) when it learns nothing.

The cases of issue 13: scikit-learn's raw digits (pixels 0..16) with the
estimator's defaults end at chance accuracy with dead ReLUs, and must warn; a
healthy MNIST run, and standardised digits (whose outliers reach |x| = 42), must
not.  The reference point of the check, the cost of the best constant
prediction, is checked against the networks' own cost functions.
"""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import bpcore
from bpcore import ConvergenceWarning, Network, reference
from bpcore._diagnostics import ProgressCheck, _percentile, constant_cost, typical_scale
from bpcore.datasets import load_mnist_subset


def fit_warnings(net, *args, **kwargs) -> list[str]:
    """The messages of the ConvergenceWarnings ``net.fit(*args, **kwargs)`` emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(*args, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_exported_and_a_warning():
    assert "ConvergenceWarning" in bpcore.__all__
    assert issubclass(ConvergenceWarning, UserWarning)
    assert bpcore.ConvergenceWarning is bpcore.exceptions.ConvergenceWarning


@pytest.mark.parametrize("seed", [0, 1])
def test_raw_digits_trained_as_the_issue_reports_warn(seed):
    """BPClassifier(epochs=5).fit on raw digits, with v0.1's estimator defaults spelled out
    (100 relu units, he init, batch 32, lr 0.1, momentum 0.9): the ReLUs die, the
    accuracy stays at chance."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    net = Network([64, 100, 10], activations=["relu", "softmax"], cost="log_likelihood",
                  init="he", seed=seed, num_threads=1)
    messages = fit_warnings(net, X, y, 50, 32, 0.1, momentum=0.9, seed=seed)
    assert net.evaluate(X, y) < 0.2  # the failure itself: chance is 0.1
    assert any("scale" in m and "StandardScaler" in m for m in messages), messages
    no_progress = [m for m in messages if m.startswith("no progress")]
    assert len(no_progress) == 1, messages
    assert "every unit of hidden layer 1 is dead" in no_progress[0]
    assert "lower the learning rate (lr=0.1) or the momentum (0.9)" in no_progress[0]


def test_the_estimators_pass_the_warning_on():
    """Raw digits with the estimator's defaults: whatever they train to, the inputs' scale
    (pixels 0..16) is reported, from the estimator's fit."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from bpcore.sklearn import BPClassifier

    X, y = load_digits(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match=r"scale .* 99% of their entries have \|x\| <= 16"):
        BPClassifier(random_state=0, num_threads=1).fit(X, y)


def test_standardised_digits_do_not_warn():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from bpcore.sklearn import BPClassifier

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    assert np.abs(X).max() > 40  # the outliers that a max-based check would flag
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = BPClassifier(random_state=0, num_threads=1).fit(X, y)
    assert model.score(X, y) > 0.9


def test_a_healthy_mnist_run_does_not_warn():
    (X, y), (X_test, y_test) = load_mnist_subset()
    net = Network([784, 30, 10], seed=0, num_threads=1)
    assert fit_warnings(net, X, y, 3, 10, 3.0) == []
    assert net.evaluate(X_test, y_test) > 0.8


def test_continuing_a_trained_network_does_not_warn():
    """A trained network starts low and may stay flat: that is not "no progress"."""
    (X, y), _ = load_mnist_subset()
    X, y = X[:2000], y[:2000]
    net = Network([784, 30, 10], seed=0, num_threads=1)
    assert fit_warnings(net, X, y, 3, 10, 3.0) == []
    assert fit_warnings(net, X, y, 5, 10, 1e-12) == []


@pytest.mark.parametrize("cls", [Network, reference.Network])
def test_dead_hidden_layer_warns_naming_it(cls):
    rng = np.random.default_rng(0)
    X = rng.random((300, 6))
    y = (X[:, 0] > 0.5).astype(int)
    net = cls([6, 5, 2], activations=["relu", "softmax"], cost="log_likelihood", init="he",
              seed=0)
    net.biases = [np.full(5, -100.0), np.zeros(2)]  # every relu of layer 1 outputs 0
    messages = fit_warnings(net, X, y, 4, 10, 0.1)
    assert len(messages) == 1 and messages[0].startswith("no progress: after 4 epochs")
    assert "every unit of hidden layer 1 is dead" in messages[0]


def test_saturated_sigmoids_warn_and_point_at_the_caller():
    (X, y), _ = load_mnist_subset()
    net = Network([784, 16, 10], init="gaussian", seed=0, num_threads=1)
    with pytest.warns(ConvergenceWarning, match="saturated") as caught:
        net.fit(X[:2000], y[:2000], 3, 10, 1e6)
    assert {w.filename for w in caught} == {__file__}


@pytest.mark.parametrize("cost, stalls", [("quadratic", True), ("cross_entropy", False)])
def test_outputs_stuck_at_the_wrong_end_warn_where_their_gradient_vanishes(cost, stalls):
    """A cost below the constant one, but half the outputs saturated on the wrong side:
    under the quadratic cost they no longer learn (delta^L carries sigma'), under
    cross-entropy they do (delta^L = a - y)."""
    rng = np.random.default_rng(5)
    X = rng.random((400, 2))
    Y = (X[:, :1] > 0.5).astype(float)
    net = Network([2, 1], activations="sigmoid", cost=cost, seed=0, num_threads=1)
    net.weights, net.biases = [np.zeros((1, 2))], [np.array([-40.0])]
    check = ProgressCheck(net, X, Y, epochs=2, batch_size=1, lr=0.1, momentum=0.0)
    history = bpcore.History(train_cost=[0.01, 0.01], seconds=[1.0, 1.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check.after_epoch(2, history)
    messages = [str(w.message) for w in caught]
    if stalls:
        assert len(messages) == 1 and messages[0].startswith("stalled: after 2 epochs 5"), \
            messages
        assert "cross_entropy" in messages[0]
    else:
        assert messages == []


def test_the_warning_is_filterable():
    X = np.random.default_rng(0).random((200, 3)) * 1000
    net = Network([3, 4, 1], seed=0, num_threads=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(X, X[:, :1] / 2000, 3, 10, 0.1)
    assert [w for w in caught if issubclass(w.category, ConvergenceWarning)] == []


def test_one_epoch_is_not_judged():
    """The mean cost of a first epoch includes the untrained start: no verdict from it."""
    rng = np.random.default_rng(1)
    X = rng.random((2000, 5))
    net = Network([5, 4, 3], seed=0, num_threads=1)
    assert fit_warnings(net, X, rng.integers(0, 3, 2000), 1, 10, 0.0) == []
    assert len(fit_warnings(net, X, rng.integers(0, 3, 2000), 2, 10, 0.0)) == 1


@pytest.mark.parametrize("scale, warns", [(1.0, False), (255.0, True), (1e-4, True)])
def test_input_scale_warning_judges_the_bulk(scale, warns):
    rng = np.random.default_rng(2)
    X = rng.random((500, 20)) * scale
    X[0, 0] = 1e4  # one outlier changes nothing
    y = (X[:, 1] > X[:, 2]).astype(int)
    messages = fit_warnings(Network([20, 8, 2], seed=0, num_threads=1), X, y, 1, 10, 0.5)
    assert any("scale" in m for m in messages) == warns, messages


def test_typical_scale_of_known_data():
    (X, _), _ = load_mnist_subset()
    assert typical_scale(X) == pytest.approx(1.0, abs=0.01)
    assert typical_scale(X * 255) == pytest.approx(255, rel=0.01)



@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_percentile_of_the_scale_check_is_numpys(dtype):
    rng = np.random.default_rng(9)
    for n in [*range(1, 120), 1000, 7840, 8192]:
        a = (np.abs(rng.standard_normal(n)) * rng.uniform(0.01, 300)).astype(dtype)
        for q in (0, 50, 99, 100):
            # the same order statistics and lerp; np.percentile interpolates in a's
            # dtype, _percentile in float64: one rounding of the dtype apart
            assert _percentile(a, q) == pytest.approx(np.percentile(a, q),
                                                      rel=float(np.finfo(dtype).eps), abs=0)


def test_first_fit_of_a_process_does_not_import_numpy_ma():
    """np.percentile's first call imports numpy.ma (through np.unique): a fixed cost of
    every process's first fit, larger than the check it served."""
    code = ("import sys, numpy as np, bpcore\n"
            "X = np.random.default_rng(0).random((200, 4))\n"
            "bpcore.Network([4, 3, 2], seed=0).fit(X, (X[:, 0] > 0.5).astype(int), 3, 10, 0.5)\n"
            "print('numpy.ma' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False"]

# The constant cost: a network whose output is the mean target for every input
# (last layer's weights zero, its bias chosen) has exactly that cost.
@pytest.mark.parametrize("cost, activation, bias", [
    ("quadratic", "identity", lambda m: m),
    ("squared_error", "sigmoid", lambda m: np.log(m / (1 - m))),
    ("cross_entropy", "sigmoid", lambda m: np.log(m / (1 - m))),
    ("log_likelihood", "softmax", np.log),
])
def test_constant_cost_is_the_cost_of_predicting_the_mean(cost, activation, bias):
    rng = np.random.default_rng(3)
    n_out = 4
    if cost == "log_likelihood":
        Y = np.eye(n_out)[rng.integers(0, n_out, 500)]
    else:
        Y = rng.uniform(0.05, 0.95, (500, n_out))
    net = reference.Network([3, 5, n_out], activations=["tanh", activation], cost=cost, seed=0)
    net.weights = [net.weights[0], np.zeros((n_out, 5))]
    net.biases = [net.biases[0], bias(Y.mean(axis=0))]
    X = rng.random((500, 3))
    # float64 sums of 500 terms of order 1
    assert constant_cost(cost, activation, Y) == pytest.approx(net.cost(X, Y), rel=1e-12)


@pytest.mark.parametrize("cost, activation, bias", [
    ("quadratic", "identity", lambda m: m),
    ("log_likelihood", "softmax", np.log),
])
def test_weighted_constant_cost_is_the_weighted_cost_of_predicting_the_weighted_mean(
        cost, activation, bias):
    rng = np.random.default_rng(6)
    Y = np.eye(3)[rng.integers(0, 3, 300)]
    w = rng.uniform(0.1, 3.0, 300)
    net = reference.Network([2, 4, 3], activations=["tanh", activation], cost=cost, seed=0)
    net.weights = [net.weights[0], np.zeros((3, 4))]
    net.biases = [net.biases[0], bias(np.average(Y, axis=0, weights=w))]
    X = rng.random((300, 2))
    assert constant_cost(cost, activation, Y, w) == pytest.approx(
        net.cost(X, Y, sample_weight=w), rel=1e-12)



def test_weighted_constant_cost_ignores_a_class_only_rows_of_weight_zero_hold():
    """A class held only by rows of weight 0 has mean target 0: it is never predicted,
    and those rows count for nothing (the old per-row sum gave 0 * ln 0 = NaN)."""
    rng = np.random.default_rng(8)
    y = np.r_[rng.integers(0, 2, 200), np.full(10, 2)]
    w = np.r_[rng.uniform(0.5, 2.0, 200), np.zeros(10)]
    Y = np.eye(3)[y]
    expected = constant_cost("log_likelihood", "softmax", np.eye(2)[y[:200]], w[:200])
    # float64 sums of 200 terms of order 1
    assert constant_cost("log_likelihood", "softmax", Y, w) == pytest.approx(expected,
                                                                             rel=1e-12)

def test_class_weights_are_judged_against_the_weighted_constant_cost():
    """90% of one class, weighted "balanced": fit records the weighted cost, 0.58 and
    0.47 after epochs 2 and 3 of a network that learns; the unweighted constant cost
    (0.34) would call that no progress, the weighted one (ln 2) does not."""
    rng = np.random.default_rng(7)
    X = rng.random((2000, 4))
    y = (X[:, 0] > 0.9).astype(int)
    net = Network([4, 8, 2], activations=["tanh", "softmax"], cost="log_likelihood", seed=0,
                  num_threads=1)
    assert fit_warnings(net, X, y, 3, 20, 0.03, class_weight="balanced") == []


def test_constant_cost_is_the_least_of_constant_predictions():
    rng = np.random.default_rng(4)
    Y = np.eye(3)[rng.integers(0, 3, 400)]
    best = constant_cost("log_likelihood", "softmax", Y)
    for _ in range(20):
        p = rng.dirichlet(np.ones(3))
        assert -np.mean(np.sum(Y * np.log(p), axis=1)) >= best
