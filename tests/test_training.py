"""Mini-batch SGD: core against reference, determinism across threads, learning, divergence."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpcore
from bpcore import reference
from conftest import HIDDEN, MNIST_DIR, OUTPUT_PAIRS, make_targets, params_of
from test_gradients import problems

# Core and reference run the same float64 update formulas; they differ only in
# summation order inside dot products and gradient means (a few ulps per step).
# Over the at most ~150 small steps below, in a regime where training is stable
# (the cost goes down; checked), those differences stay at the ulp level
# (observed <= 1.1e-15 relative); 1e-10 leaves five orders of magnitude.  A
# diverging run would amplify them without bound, hence the stability check.
TRAIN_RTOL = 1e-10


def assert_params_close(a, b, rtol=TRAIN_RTOL):
    for l, (x, y) in enumerate(zip(params_of(a), params_of(b))):
        assert x.shape == y.shape
        err = float(np.max(np.abs(x - y)))
        scale = max(1.0, float(np.max(np.abs(y))))
        assert err <= rtol * scale, f"parameter array {l}: max|diff| {err:.3e} > {rtol * scale:.3e}"


def assert_params_equal(a, b):
    for l, (x, y) in enumerate(zip(params_of(a), params_of(b))):
        assert x.dtype == y.dtype
        assert np.array_equal(x, y), f"parameter array {l} differs (max|diff| {np.max(np.abs(x - y))})"


def _data(sizes, cost, n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size=(n, sizes[0])), make_targets(rng, cost, n, sizes[-1])


# -- one SGD step ----------------------------------------------------------------------------

@pytest.mark.parametrize("l2", [0.0, 2.5])
@pytest.mark.parametrize("out_act, cost", OUTPUT_PAIRS)
def test_one_full_batch_step_matches_reference_and_formula(out_act, cost, l2):
    sizes = [5, 6, 4, 3]
    activations = [HIDDEN[len(cost) % 5], HIDDEN[(len(out_act) + 2) % 5], out_act]
    X, Y = _data(sizes, cost, 23, seed=len(cost) + len(out_act))
    lr, n = 0.7, X.shape[0]
    core = bpcore.Network(sizes, activations, cost, seed=11)
    ref = reference.Network(sizes, activations, cost, seed=11)
    before = params_of(core)
    gb, gw = (list(map(np.copy, g)) for g in core.backprop(X, Y))
    cost_before = core.cost(X, Y)

    h_core = core.fit(X, Y, epochs=1, batch_size=n, lr=lr, l2=l2, shuffle=False)
    h_ref = ref.fit(X, Y, epochs=1, batch_size=n, lr=lr, l2=l2, shuffle=False)

    assert_params_close(core, ref)
    # The documented step with momentum 0: w <- w - lr (dC/dw + (l2/n) w), b <- b - lr dC/db.
    # Same formula evaluated here in NumPy: a few roundings apart at most.
    want = ([w - lr * (g + (l2 / n) * w) for w, g in zip(before[:len(gw)], gw)]
            + [b - lr * g for b, g in zip(before[len(gw):], gb)])
    for got, expected in zip(params_of(core), want):
        assert np.allclose(got, expected, rtol=1e-14, atol=1e-14 * np.max(np.abs(expected)))
    # The training cost of an epoch of one batch is the cost before the step.
    assert h_core.epochs == h_ref.epochs == 1
    assert h_core.train_cost[0] == pytest.approx(cost_before, rel=1e-13)
    assert h_core.train_cost[0] == pytest.approx(h_ref.train_cost[0], rel=TRAIN_RTOL)


# -- whole fit: shuffling, L2, momentum, a short last batch -----------------------------------

FIT_CONFIGS = [
    ([4, 7, 3], ["tanh", "sigmoid"], "quadratic"),
    ([6, 5, 5, 4], ["relu", "leaky_relu", "softmax"], "log_likelihood"),
    ([3, 8, 2], ["sigmoid", "sigmoid"], "cross_entropy"),
    ([5, 9, 1], ["leaky_relu", "identity"], "squared_error"),
]


# 37 = 4*8 + 5 = 7*5 + 2 = 37*1; 100 > 37: one batch of all examples
@pytest.mark.parametrize("batch_size", [8, 5, 1, 100])
@pytest.mark.parametrize("momentum, l2", [(0.0, 0.0), (0.9, 0.0), (0.5, 3.0)])
@pytest.mark.parametrize("sizes, activations, cost", FIT_CONFIGS)
def test_fit_matches_reference(sizes, activations, cost, momentum, l2, batch_size):
    X, Y = _data(sizes, cost, 37, seed=sum(sizes))
    # an unbounded (identity) output with momentum 0.9 blows up at larger rates
    lr = 0.003 if activations[-1] == "identity" else 0.05
    kw = dict(epochs=4, batch_size=batch_size, lr=lr, l2=l2, momentum=momentum, seed=123)
    core = bpcore.Network(sizes, activations, cost, seed=7)
    ref = reference.Network(sizes, activations, cost, seed=7)
    h_core, h_ref = core.fit(X, Y, **kw), ref.fit(X, Y, **kw)
    assert_params_close(core, ref)
    assert h_core.epochs == h_ref.epochs == 4
    assert len(h_core.seconds) == 4 and h_core.val_cost == [] and h_core.val_accuracy == []
    for c, r in zip(h_core.train_cost, h_ref.train_cost):
        assert abs(c - r) <= TRAIN_RTOL * abs(r), (c, r)
    assert h_ref.train_cost[-1] < h_ref.train_cost[0]  # a stable, learning run
    # training moved the parameters
    assert not all(np.array_equal(a, b) for a, b in
                   zip(params_of(core), params_of(bpcore.Network(sizes, activations, cost, seed=7))))


@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_consecutive_fits(cls):
    """Velocities start at zero in every call of fit."""
    X, Y = _data([4, 5, 3], "quadratic", 30, seed=4)
    kw = dict(batch_size=4, lr=0.3, shuffle=False)
    # without momentum, fit(2 epochs) is fit(1 epoch) twice, bitwise
    a, b = cls([4, 5, 3], seed=0), cls([4, 5, 3], seed=0)
    a.fit(X, Y, epochs=2, **kw)
    b.fit(X, Y, epochs=1, **kw)
    b.fit(X, Y, epochs=1, **kw)
    assert_params_equal(a, b)
    # with momentum the second call starts from v = 0, so it differs from one 2-epoch call
    c, d = cls([4, 5, 3], seed=0), cls([4, 5, 3], seed=0)
    c.fit(X, Y, epochs=2, momentum=0.9, **kw)
    d.fit(X, Y, epochs=1, momentum=0.9, **kw)
    d.fit(X, Y, epochs=1, momentum=0.9, **kw)
    assert not all(np.array_equal(x, y) for x, y in zip(params_of(c), params_of(d)))
    ref = reference.Network([4, 5, 3], seed=0)
    ref.fit(X, Y, epochs=1, momentum=0.9, **kw)
    ref.fit(X, Y, epochs=1, momentum=0.9, **kw)
    assert_params_close(d, ref)


def test_fit_zero_epochs_changes_nothing():
    X, Y = _data([3, 4, 2], "quadratic", 10, seed=0)
    net = bpcore.Network([3, 4, 2], seed=1)
    before = params_of(net)
    history = net.fit(X, Y, epochs=0, batch_size=3, lr=1.0)
    assert history.epochs == 0 and history.train_cost == []
    for a, b in zip(params_of(net), before):
        assert np.array_equal(a, b)


# -- bitwise determinism across thread counts --------------------------------------------------

THREAD_CONFIGS = [
    # batch 3 < 7 threads; widths both above and below the thread counts
    pytest.param([13, 17, 9, 4], ["tanh", "relu", "softmax"], "log_likelihood", 101, 3,
                 id="small-batch"),
    # one batch of all 600 examples
    pytest.param([20, 31, 5], ["sigmoid", "sigmoid"], "quadratic", 600, 600, id="large-batch"),
    # layers narrower than any thread count > 1, and a short last batch (55 = 5*10 + 5)
    pytest.param([5, 2, 1], ["leaky_relu", "sigmoid"], "cross_entropy", 55, 10, id="narrow"),
    # widths above the SIMD vector lengths (8 doubles / 16 floats with AVX-512) and not
    # multiples of them or of the register tiles: edge tiles everywhere
    pytest.param([37, 45, 19, 6], ["relu", "tanh", "softmax"], "log_likelihood", 203, 13,
                 id="wide-tiles"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes, activations, cost, n, batch_size", THREAD_CONFIGS)
def test_training_is_bitwise_identical_for_any_thread_count(sizes, activations, cost, n,
                                                            batch_size, dtype):
    X, Y = _data(sizes, cost, n, seed=n)
    results = {}
    for threads in (1, 2, 7):
        net = bpcore.Network(sizes, activations, cost, dtype=dtype, seed=3, num_threads=threads)
        assert net.num_threads == (threads if bpcore.build_info()["openmp"] else 1)
        history = net.fit(X, Y, epochs=3, batch_size=batch_size, lr=0.1, l2=0.5, momentum=0.8,
                          seed=9)
        grads = net.backprop(X, Y)
        results[threads] = (net, history, net.feedforward(X), grads[0] + grads[1])
    net1, hist1, out1, grads1 = results[1]
    assert net1.dtype == np.dtype(dtype)
    for threads in (2, 7):
        net, history, out, grads = results[threads]
        assert_params_equal(net, net1)
        assert history.train_cost == hist1.train_cost  # exact float equality
        assert np.array_equal(out, out1)
        assert all(np.array_equal(g, g1) for g, g1 in zip(grads, grads1))


@given(problems(), st.integers(1, 12), st.sampled_from(["float64", "float32"]))
@settings(max_examples=40)
def test_random_networks_train_bitwise_identically_on_1_and_3_threads(p, batch_size, dtype):
    def train(threads):
        net = p.core(dtype=dtype, num_threads=threads)
        try:
            history = net.fit(p.X, p.Y, epochs=2, batch_size=batch_size, lr=0.05,
                              momentum=0.5, l2=0.1, seed=0)
            outcome = history.train_cost
        except bpcore.DivergenceError as exc:  # must then happen alike on any thread count
            outcome = str(exc)
        return net, outcome

    (net1, out1), (net3, out3) = train(1), train(3)
    assert out1 == out3
    assert_params_equal(net1, net3)


# -- learning -------------------------------------------------------------------------------

def test_learns_xor_like_quadrants():
    """Label = [x1 x2 > 0] on the square [-1, 1]^2: not linearly separable.

    400 training and 200 test points; a 2-16-2 tanh/softmax network reaches
    96.5% test accuracy with these seeds (the Bayes rate is 100%; errors are
    points near the axes).  We require 90%; a linear model gets ~50%.
    """
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(600, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    net = bpcore.Network([2, 16, 2], ["tanh", "softmax"], "log_likelihood", seed=0)
    before = net.evaluate(X[400:], y[400:])
    history = net.fit(X[:400], y[:400], epochs=300, batch_size=16, lr=0.3, seed=1,
                      validation_data=(X[400:], y[400:]))
    accuracy = net.evaluate(X[400:], y[400:])
    assert accuracy >= 0.90, accuracy
    assert accuracy > before + 0.3
    assert history.val_accuracy[-1] == accuracy
    assert history.train_cost[-1] < 0.5 * history.train_cost[0]


def test_learns_two_gaussian_blobs_with_one_sigmoid_output():
    """Blobs N((-1.5, -1.5), I) and N((1.5, 1.5), I): the best linear rule errs
    with probability Phi(-1.5 sqrt 2) = 1.7%; a 2-4-1 network with cross-entropy
    should be near that: we require 95% on 300 held-out points."""
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, size=900)
    X = rng.normal(0, 1, size=(900, 2)) + np.where(y[:, None] == 1, 1.5, -1.5)
    Y = y[:, None].astype(np.float64)  # one sigmoid output: targets of shape (n, 1)
    net = bpcore.Network([2, 4, 1], ["tanh", "sigmoid"], "cross_entropy", seed=2)
    net.fit(X[:600], Y[:600], epochs=20, batch_size=10, lr=0.5, seed=3)
    accuracy = net.evaluate(X[600:], y[600:])
    assert accuracy >= 0.95, accuracy


def _mnist():
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    if not all((MNIST_DIR / n).is_file() or (MNIST_DIR / (n + ".gz")).is_file() for n in names):
        pytest.skip(f"the MNIST files are not in {MNIST_DIR} (shared/data/mnist beside the "
                    "repository); this test needs the full data set")
    from bpcore.datasets import load_mnist
    return load_mnist(MNIST_DIR)


def test_mnist_nielsen_setup_reaches_93_percent():
    """Nielsen's network.py set-up: 784-30-10, sigmoid, quadratic cost, N(0, 1)
    initialisation, mini-batches of 10, lr 3.0.  His book reports ~93-95% after a
    few epochs.  93% after 3 epochs is close to what this set-up typically gets
    (93.0-93.7% over seeds 0-11; seeds 4 and 5 get stuck near 85%, a known
    hazard of N(0, 1) weights with sigmoids), so the seed is chosen: seed 8 gives
    93.70% / 93.29% / 93.31% after epoch 3 with the baseline / x86-64-v3 /
    x86-64-v4 kernels (they differ in the last bits, FMA, which 18,000 SGD steps
    amplify).  A new compiler or CPU family could land elsewhere in that range.

    The results are bitwise independent of the thread count (tested above), so
    one thread gives the same numbers; it also avoids 36,000 OpenMP barriers (two
    per mini-batch of 10), which become very slow when the CPUs are shared with
    other jobs (measured: 6x slower on 2 threads than on 1 at load average 6)."""
    (X_train, y_train), (X_test, y_test) = _mnist()
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float32 and 0.0 <= X_train.min() and X_train.max() <= 1.0
    net = bpcore.Network([784, 30, 10], "sigmoid", "quadratic", init="gaussian", seed=8,
                         num_threads=1)
    history = net.fit(X_train, y_train, epochs=3, batch_size=10, lr=3.0, seed=8,
                      validation_data=(X_test, y_test))
    assert len(history.val_accuracy) == 3
    assert max(history.val_accuracy) >= 0.93, history.val_accuracy
    assert history.val_accuracy[-1] == net.evaluate(X_test, y_test)


# -- divergence -----------------------------------------------------------------------------

# NumPy warns about the overflow in the reference's arithmetic: expected here
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_divergence_in_first_epoch_restores_parameters(cls):
    """1-1 identity network, x = 1e10, y = 0: dC/dw = (w x + b) x ~ 1e20, and
    lr = 1e300 makes the first step overflow to -inf."""
    net = cls([1, 1], "identity", "quadratic", seed=0)
    before = params_of(net)
    X, Y = np.array([[1e10]]), np.array([[0.0]])
    with pytest.raises(bpcore.DivergenceError, match=r"epoch 1\b"):
        net.fit(X, Y, epochs=1, batch_size=1, lr=1e300, momentum=0.5)
    for a, b in zip(params_of(net), before):
        assert np.array_equal(a, b)
    assert issubclass(bpcore.DivergenceError, FloatingPointError)
    # the restored network still trains
    net.fit(np.array([[1.0]]), Y, epochs=1, batch_size=1, lr=0.1)
    assert all(np.isfinite(p).all() for p in params_of(net))


# NumPy warns about the overflow in the reference's arithmetic: expected here
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_divergence_in_second_epoch_restores_state_after_first(cls):
    """1-1 identity network, x = 1, y = 0, w = 1, b = 0: z = w + b and
    dC/dw = dC/db = z, so one step maps z to z (1 - 2 lr).  With lr = 5e199,
    epoch 1 gives z ~ -1e200 (finite), epoch 2 ~ 1e400: infinite."""
    def fresh():
        net = cls([1, 1], "identity", "quadratic", seed=0)
        net.weights[0][...] = 1.0
        net.biases[0][...] = 0.0
        return net

    X, Y = np.array([[1.0]]), np.array([[0.0]])
    kw = dict(batch_size=1, lr=5e199, shuffle=False)
    after_one = fresh()
    history = after_one.fit(X, Y, epochs=1, **kw)
    assert history.train_cost == [0.5]
    assert after_one.weights[0][0, 0] == 1.0 - 5e199

    net = fresh()
    with pytest.raises(bpcore.DivergenceError, match=r"epoch 2\b"):
        net.fit(X, Y, epochs=3, **kw)
    assert_params_equal(net, after_one)


# -- validation data, seeds, label encodings ---------------------------------------------------

@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_validation_data_fills_history(cls):
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, size=60)
    Xv, yv = rng.normal(size=(25, 4)), rng.integers(0, 3, size=25)
    net = cls([4, 6, 3], ["tanh", "softmax"], "log_likelihood", seed=0)
    history = net.fit(X, y, epochs=3, batch_size=7, lr=0.2, seed=0, validation_data=(Xv, yv))
    assert len(history.val_cost) == len(history.val_accuracy) == len(history.train_cost) == 3
    assert all(0.0 <= a <= 1.0 for a in history.val_accuracy)
    # measured after each epoch: the last entries are the trained network's figures
    assert history.val_cost[-1] == pytest.approx(net.cost(Xv, yv), rel=1e-15)
    assert history.val_accuracy[-1] == net.evaluate(Xv, yv)
    # one-hot validation targets give the same figures
    net2 = cls([4, 6, 3], ["tanh", "softmax"], "log_likelihood", seed=0)
    history2 = net2.fit(X, y, epochs=3, batch_size=7, lr=0.2, seed=0,
                        validation_data=(Xv, np.eye(3)[yv]))
    assert history2.val_cost == history.val_cost
    assert history2.val_accuracy == history.val_accuracy
    # without validation data the lists stay empty
    assert cls([4, 6, 3], ["tanh", "softmax"], "log_likelihood", seed=0).fit(
        X, y, epochs=2, batch_size=7, lr=0.2).val_cost == []


def test_validation_data_is_read_in_one_forward_pass_per_epoch(monkeypatch):
    """After each epoch fit gets a^L (the accuracy) and C_x (the cost) of the validation
    set from the same pass of the forward kernel, not one pass for each."""
    from bpcore import network

    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 3, size=60)
    Xv, yv = rng.normal(size=(25, 4)).astype(np.float32), rng.integers(0, 3, size=25)
    forward, rows = network._kernels.forward, []

    def counting(layout, params, X, *rest):
        rows.append(X.shape[0])
        return forward(layout, params, X, *rest)

    monkeypatch.setattr(network._kernels, "forward", counting)
    net = bpcore.Network([4, 6, 3], ["relu", "softmax"], "log_likelihood", "float32", seed=0)
    history = net.fit(X, y, epochs=3, batch_size=7, lr=0.2, seed=0, validation_data=(Xv, yv))
    assert rows == [25, 25, 25]
    monkeypatch.undo()
    assert history.val_cost[-1] == net.cost(Xv, yv)
    assert history.val_accuracy[-1] == net.evaluate(Xv, yv)


def test_fit_seed_makes_runs_reproducible():
    X, Y = _data([4, 5, 2], "quadratic", 40, seed=8)
    kw = dict(epochs=3, batch_size=6, lr=0.5, momentum=0.3)

    def run(ctor_seed, fit_seed, **extra):
        net = bpcore.Network([4, 5, 2], seed=ctor_seed)
        history = net.fit(X, Y, seed=fit_seed, **kw, **extra)
        return net, history

    a, ha = run(0, 17)
    b, hb = run(0, 17)
    assert_params_equal(a, b)
    assert ha.train_cost == hb.train_cost
    c, _ = run(0, 18)   # another shuffling order gives other parameters
    assert not all(np.array_equal(x, y) for x, y in zip(params_of(a), params_of(c)))
    # without a fit seed, the constructor's seed fixes the shuffling
    d, hd = run(4, None)
    e, he = run(4, None)
    assert_params_equal(d, e)
    assert hd.train_cost == he.train_cost
    # without shuffling the fit seed is irrelevant
    f, _ = run(0, 1, shuffle=False)
    g, _ = run(0, 2, shuffle=False)
    assert_params_equal(f, g)


@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
@pytest.mark.parametrize("activations, cost", [(["sigmoid", "softmax"], "log_likelihood"),
                                               (["tanh", "sigmoid"], "quadratic"),
                                               (["relu", "sigmoid"], "cross_entropy")])
def test_labels_and_one_hot_targets_train_identically(cls, activations, cost):
    rng = np.random.default_rng(3)
    X, labels = rng.normal(size=(30, 5)), rng.integers(0, 4, size=30)
    one_hot = np.eye(4)[labels]
    results = []
    for Y in (labels, one_hot, labels.astype(np.uint8), list(labels)):
        net = cls([5, 6, 4], activations, cost, seed=2)
        history = net.fit(X, Y, epochs=2, batch_size=4, lr=0.3, seed=5,
                          validation_data=(X, Y))
        results.append((net, history))
    net0, h0 = results[0]
    for net, history in results[1:]:
        assert_params_equal(net, net0)
        assert history.train_cost == h0.train_cost
        assert history.val_accuracy == h0.val_accuracy
