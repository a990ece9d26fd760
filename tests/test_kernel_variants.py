"""Every instruction-set build of the kernels gives the reference's numbers.

``bpcore.Network`` uses the variant ``bpcore._dispatch`` picked for this CPU;
here each variant that was built and that this CPU runs is swapped in turn, so
the baseline and AVX2 paths are tested on an AVX-512 machine too.
"""
import numpy as np
import pytest

import bpcore
import bpcore.network
from bpcore import _dispatch
from bpcore.reference import Network as Reference

VARIANTS = _dispatch.available()

# Shapes chosen to hit every edge of the tiles in _gemm.h: widths below, at and
# above one vector (4/8/16 lanes), not multiples of the tile, batches smaller
# than the thread count and not multiples of the row tile.
CASES = [
    ([3, 1, 2], ["tanh", "sigmoid"], "quadratic", 5, 2),
    ([17, 9, 33, 4], ["relu", "leaky_relu", "softmax"], "log_likelihood", 7, 3),
    ([40, 24, 5], ["sigmoid", "sigmoid"], "cross_entropy", 13, 4),
    ([8, 16, 16, 3], ["identity", "tanh", "identity"], "squared_error", 11, 1),
]


@pytest.fixture(params=VARIANTS)
def variant(request, monkeypatch):
    monkeypatch.setattr(bpcore.network, "_kernels", _dispatch.load(request.param))
    return request.param


def test_this_cpu_has_a_variant():
    assert "baseline" in VARIANTS
    assert _dispatch.name in VARIANTS


@pytest.mark.parametrize("sizes, acts, cost, batch, threads", CASES)
def test_variant_matches_reference(variant, sizes, acts, cost, batch, threads):
    rng = np.random.default_rng(len(sizes) * 100 + batch)
    X = rng.standard_normal((29, sizes[0]))
    Y = rng.integers(0, sizes[-1], 29) if cost == "log_likelihood" else rng.random((29, sizes[-1]))
    net = bpcore.Network(sizes, acts, cost, seed=3, num_threads=threads)
    ref = Reference(sizes, acts, cost, seed=3)
    # Same bound as test_gradients: summation order differs, each sum has at most
    # ~40 terms, so the difference stays within a few hundred ulps of the scale.
    for got, want in zip(sum(net.backprop(X, Y), []), sum(ref.backprop(X, Y), [])):
        assert np.max(np.abs(got - want)) <= 1e-12 * max(1.0, np.max(np.abs(want)))
    np.testing.assert_allclose(net.feedforward(X), ref.feedforward(X), rtol=1e-12, atol=1e-14)
    net.fit(X, Y, 3, batch, 0.05, l2=0.1, momentum=0.5, seed=1)
    ref.fit(X, Y, 3, batch, 0.05, l2=0.1, momentum=0.5, seed=1)
    for got, want in zip(net.weights + net.biases, ref.weights + ref.biases):
        assert np.max(np.abs(got - want)) <= 1e-10


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes, acts, cost, batch, _", CASES)
def test_variant_is_thread_count_independent(variant, dtype, sizes, acts, cost, batch, _):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((37, sizes[0]))
    Y = rng.integers(0, sizes[-1], 37) if cost == "log_likelihood" else rng.random((37, sizes[-1]))
    trained = []
    for threads in (1, 2, 3, 7):
        net = bpcore.Network(sizes, acts, cost, dtype=dtype, seed=5, num_threads=threads)
        net.fit(X, Y, 2, batch, 0.1, momentum=0.9, seed=2)
        trained.append(np.concatenate([p.ravel() for p in net.weights + net.biases]))
    for other in trained[1:]:
        assert np.array_equal(trained[0], other)


def test_variant_blocked_sums_match_reference(variant):
    # Sums longer than one block of _gemm.h (BP_BC_SC = 128 terms): delta W over the 140
    # neurons and dC/dW over a 150-example batch, checked against the reference and
    # across thread counts.
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((150, 20)), rng.random((150, 3))
    ref = Reference([20, 10, 140, 3], ["tanh", "relu", "sigmoid"], "quadratic", seed=2)
    want = sum(ref.backprop(X, Y), [])
    results = []
    for threads in (1, 2, 3):
        net = bpcore.Network([20, 10, 140, 3], ["tanh", "relu", "sigmoid"], "quadratic", seed=2,
                             num_threads=threads)
        got = sum(net.backprop(X, Y), [])
        for g, w in zip(got, want):
            # 150-term sums in a different order: within ~150 ulps of the scale.
            assert np.max(np.abs(g - w)) <= 1e-12 * max(1.0, np.max(np.abs(w)))
        results.append(np.concatenate([g.ravel() for g in got]))
    assert all(np.array_equal(results[0], r) for r in results[1:])


def _identity_layer(n, activation, dtype, variant):
    """A one-layer network with W = I and b = 0: feedforward(z) is sigma(z) itself."""
    net = bpcore.Network([n, n], [activation], "quadratic" if activation != "softmax"
                         else "log_likelihood", dtype=dtype, seed=0, num_threads=1)
    net.weights = [np.eye(n, dtype=dtype)]
    net.biases = [np.zeros(n, dtype=dtype)]
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 16, 19])  # below, at and past one vector; tails
def test_vectorised_sigmoid_is_accurate(variant, dtype, n):
    """sigmoid through _vmath.h's exp, against libm in long double, over every regime.

    z covers 0, the bulk, the saturated tails, the subnormal region of e^-|z| and
    beyond (where a rounds to 0 or 1).  z = 1*x + 0 is exact, so the output is
    sigma(x) alone.  The bound, 4 ulp of the result, allows the exp's ~1 ulp plus
    the division's rounding; a wrong polynomial or exponent would be off by far
    more.  Below the smallest normal the ulp is the subnormal spacing.
    """
    info = np.finfo(dtype)
    top = 760.0 if dtype == "float64" else 110.0
    z = np.concatenate([np.linspace(-top, top, 4001), [0.0, -0.0, 1e-30, -1e-30],
                        -np.geomspace(1, top, 200), np.geomspace(1, top, 200)]).astype(dtype)
    z = np.resize(z, (-(-z.size // n), n))
    net = _identity_layer(n, "sigmoid", dtype, variant)
    got = net.feedforward(z)
    zl = z.astype(np.longdouble)
    want = np.where(zl >= 0, 1 / (1 + np.exp(-zl)), np.exp(zl) / (1 + np.exp(zl)))
    ulp = np.maximum(np.spacing(want.astype(dtype)), info.smallest_subnormal)
    assert np.all(np.abs(got - want) <= 4 * ulp)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 16, 19])
def test_vectorised_tanh_is_accurate(variant, dtype, n):
    """tanh through _vmath.h, against libm in long double, over every regime: both
    sides of the switch at |z| = 0.625 between the rational (or polynomial) and
    (1 - e^-2|z|) / (1 + e^-2|z|), tiny and subnormal z (where tanh z = z), the
    saturated tails, and the sign of every nonzero z kept.  The bound, 3 ulp,
    allows the exp's ~1 ulp plus the division's rounding (1.56 ulp is the most seen
    over 6 million arguments); a wrong coefficient or a lost sign is off by far more.
    """
    info = np.finfo(dtype)
    z = np.concatenate([np.linspace(-25, 25, 4001), np.linspace(-0.7, 0.7, 2001),
                        np.nextafter(0.625, [0, 1]), [-0.625],
                        [0.0, -0.0, 1e-30, -1e-30, 5e-324],
                        -np.geomspace(1e-20, 400, 300), np.geomspace(1e-20, 400, 300)]
                       ).astype(dtype)
    z = np.resize(z, (-(-z.size // n), n))
    got = _identity_layer(n, "tanh", dtype, variant).feedforward(z)
    want = np.tanh(z.astype(np.longdouble))
    ulp = np.maximum(np.abs(np.spacing(want.astype(dtype))), info.smallest_subnormal)
    assert np.all(np.abs(got - want) <= 3 * ulp)
    nonzero = z != 0  # z = 1*x + 0*... + 0 turns -0 into +0 before the activation
    assert np.array_equal(np.signbit(got[nonzero]), np.signbit(z[nonzero]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [2, 9, 16, 33])
def test_vectorised_softmax_is_accurate(variant, dtype, n):
    """softmax through _vmath.h's exp against long double, with spreads that underflow."""
    rng = np.random.default_rng(n)
    scale = np.array([1e-3, 1.0, 30.0, 300.0, 3000.0])[:, None]
    z = (rng.standard_normal((5, n)) * scale).astype(dtype)
    got = _identity_layer(n, "softmax", dtype, variant).feedforward(z)
    # z - max z rounds in the network's dtype (as in every softmax: up to half an
    # ulp of |z - max|, i.e. 1e-13 relative error of e^-300 in float64); exp onwards
    # is what is tested, so the oracle starts from the same rounded differences.
    shifted = (z - z.max(axis=1, keepdims=True)).astype(np.longdouble)
    e = np.exp(shifted)
    want = e / e.sum(axis=1, keepdims=True)
    # each a_j: exp (~1 ulp), a sum of n terms (n/2 ulp of the largest) and a division
    ulp = np.maximum(np.spacing(want.astype(dtype)), np.finfo(dtype).smallest_subnormal)
    assert np.all(np.abs(got - want) <= (4 + n) * ulp)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_long_rows_and_many_examples_per_thread(variant, dtype):
    """The blocking of _gemm.h: inputs longer than 4 KiB (bp_dot sums them in 4 KiB
    blocks of k, with a zero-padded tail vector in the last block), more rows
    per thread than one block of A (BP_DOT_MC = 128: 300 rows are 3 blocks of 100,
    150 are 76 + 74), and more rows of C than one block of bp_bcast (BP_BC_RC = 256:
    the gradient's 300 rows of W^1 on one thread, the 300 examples of the backward
    product) with an overlapping last column panel (2100 and 1100 inputs).  The
    gradient is bitwise the same on 1 and 2 threads and matches the float64
    reference within n * eps * scale, the bound on a sum of n terms in any order
    (n: the longest sum, over the inputs)."""
    n_in = 2100 if dtype == "float32" else 1100
    rng = np.random.default_rng(11)
    X = rng.standard_normal((300, n_in))
    y = rng.integers(0, 4, 300)
    args = ([n_in, 300, 4], ["relu", "softmax"], "log_likelihood")
    grads = []
    for threads in (1, 2):
        net = bpcore.Network(*args, dtype=dtype, seed=3, num_threads=threads)
        grads.append(sum(net.backprop(X, y), []))
    for a, b in zip(*grads):
        assert np.array_equal(a, b)
    want = sum(Reference(*args, seed=3).backprop(X, y), [])
    eps = np.finfo(dtype).eps
    for got, ref in zip(grads[0], want):
        assert np.max(np.abs(got - ref)) <= n_in * eps * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_packed_gradient_is_bitwise_the_tiled_one(variant, dtype):
    """The gradient of a mini-batch of several blocks (150 > BP_BC_SC = 128 examples)
    is summed by bcast's packed form (bp_pk_bcast in _gemm.h) for a piece of at
    least 2 x BP_PK_MR rows of W, by its tiles for a smaller one: the same chain of
    operations for every sum, so the same bits.  One thread takes the 20 rows of
    W^1 in one piece (packed); two threads cut them into pieces of 16 and 4 rows
    (the 4 by tiles).  300 inputs: full column panels and a partial last one with
    a partial vector (44 = 16 + 16 + 12 floats; 300 = 9 x 32 + 8 + 4 doubles); 150
    examples: one block of s of the packed form in float32 (256 values), a full and
    a partial one in float64 (128 + 22)."""
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((150, 300)).astype(dtype), rng.random((150, 3))
    args = ([300, 20, 3], ["tanh", "sigmoid"], "cross_entropy")
    nets = [bpcore.Network(*args, dtype=dtype, seed=4, num_threads=t) for t in (1, 2)]
    assert nets[1]._threads_for(150) == 2
    grads = [sum(net.backprop(X, Y), []) for net in nets]
    init = [w.copy() for w in nets[0].weights], [b.copy() for b in nets[0].biases]
    for a, b in zip(*grads):
        assert np.array_equal(a, b)
    for net in nets:  # a separate step after the sums (150 > BP_BC_SC)
        net.fit(X, Y, 2, 150, 0.5, momentum=0.5, seed=1)
    for a, b in zip(nets[0].weights, nets[1].weights):
        assert np.array_equal(a, b)
    # and the sums are the reference's: n * eps * scale for sums of n = 300 terms
    ref = Reference(*args, seed=4)
    ref.weights = [w.astype(np.float64) for w in init[0]]  # the networks' initial values
    ref.biases = [b.astype(np.float64) for b in init[1]]
    want = sum(ref.backprop(X.astype(np.float64), Y), [])
    eps = np.finfo(dtype).eps
    for got, ref in zip(grads[0], want):
        assert np.max(np.abs(got - ref)) <= 300 * eps * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", [[300, 270, 130, 4], [1030, 2050, 16, 4],
                                   [16, 2050, 1030, 4]],
                         ids=["small-W", "8MiB-W", "8MiB-W2"])
def test_packed_forward_is_thread_count_independent_and_the_references(variant, dtype,
                                                                       sizes):
    """A mini-batch of BP_FWD_PK_ROWS = 128 examples or more takes the packed form of
    the forward product (bp_pk_dot in _gemm.h: bcast's packed tiles, W transposed
    panel by panel as it is copied) for a layer of 4 panels of units or more (96
    floats, 48 doubles in the AVX2 build; 256 / 128 in the AVX-512 one), in the
    AVX-512 build only for W of BP_FWD_PK_BYTES = 8 MiB or more (2050 x 1030 floats
    is 8.4 MB); the baseline keeps bp_dot, where the same checks hold.  Each packed
    sum is the chain over k in order, so the two threads' pieces of units (16 at a
    time) give the bits of one thread's whole layer.  270 and 2050 units: a partial
    last panel; 300 inputs: k blocks of 256 + 44 floats or 128 + 128 + 44 doubles, and
    300 = 37 squares of 8 + 4 for the transposed copy (1030: 4 x 256 + 6 floats, 8 x
    128 + 6 doubles, 128 squares + 6).  The outputs, gradient and two epochs are
    bitwise the same on 1 and 2 threads, and within n * eps (n = the widest layer,
    the longest sum) of the float64 reference.

    The delta product through a W of BP_DELTA_PK_BYTES = 8 MiB or more takes the
    packed form too, from 128 examples, in both AVX builds (bp_delta_packs): delta^1
    through W^2 of 1030 x 2050 (8.4 MB of floats).  A piece of half its units (4.2
    MB) does not pack, so in float32 one thread's whole layer and two threads'
    pieces take different forms: the bitwise checks show that both give the same
    sums."""
    kernels = bpcore.network._kernels
    single, itemsize = dtype == "float32", np.dtype(dtype).itemsize
    big = sizes[0] * sizes[1] * itemsize >= 8 << 20
    packs = variant == "x86-64-v3" or (variant == "x86-64-v4" and big)
    assert kernels.packed_forward(150, sizes[0], sizes[1], single) == packs
    assert not kernels.packed_forward(127, sizes[0], sizes[1], single)
    delta_big = sizes[1] * sizes[2] * itemsize >= 8 << 20 and sizes[2] > 128
    assert kernels.packed_delta(150, sizes[1], sizes[2], single) == (
        variant != "baseline" and delta_big)
    assert not kernels.packed_delta(127, sizes[1], sizes[2], single)
    if delta_big and single:  # a piece of half the units sums in bcast's form
        assert not kernels.packed_delta(150, sizes[1] // 2, sizes[2], single)
    rng = np.random.default_rng(21)
    X = rng.standard_normal((150, sizes[0])).astype(dtype)
    y = rng.integers(0, 4, 150)
    args = (sizes, ["tanh", "relu", "softmax"], "log_likelihood")
    nets = [bpcore.Network(*args, dtype=dtype, seed=8, num_threads=t) for t in (1, 2)]
    assert nets[1]._threads_for(150) == 2
    init = [w.copy() for w in nets[0].weights], [b.copy() for b in nets[0].biases]
    outs = [net.feedforward(X) for net in nets]
    grads = [sum(net.backprop(X, y), []) for net in nets]
    assert np.array_equal(outs[0], outs[1])
    for a, b in zip(*grads):
        assert np.array_equal(a, b)
    for net in nets:
        net.fit(X, y, 2, 150, 0.1, momentum=0.9, shuffle=False)
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert np.array_equal(a, b)
    ref = Reference(*args, seed=8)
    ref.weights = [w.astype(np.float64) for w in init[0]]
    ref.biases = [b.astype(np.float64) for b in init[1]]
    eps, n = np.finfo(dtype).eps, max(sizes)
    np.testing.assert_allclose(outs[0], ref.feedforward(X.astype(np.float64)), rtol=0,
                               atol=n * eps)
    for got, want in zip(grads[0], sum(ref.backprop(X.astype(np.float64), y), [])):
        assert np.max(np.abs(got - want)) <= n * eps * max(1.0, np.max(np.abs(want)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_narrower_than_one_vector(variant, dtype):
    """Layers of fewer units than a vector has lanes (tabular inputs): the forward
    product of rows shorter than a vector (bp_dot_short) and the delta and gradient
    products of fewer columns than lanes (bp_narrow_tile), over more examples than
    one block of s (128) and row counts that are not multiples of their tiles (6, 8).
    5 and 7 units are narrower than a vector in every build, 12 in all but the baseline
    (whose vectors have 4 floats or 2 doubles).  The gradient is bitwise the same on 1
    and 2 threads and within n * eps * scale of the float64 reference, n = 5,000 the
    longest sum (over the examples)."""
    rng = np.random.default_rng(12)
    X, Y = rng.standard_normal((5000, 5)).astype(dtype), rng.random((5000, 3))
    args = ([5, 12, 7, 3], ["tanh", "relu", "sigmoid"], "cross_entropy")
    nets = [bpcore.Network(*args, dtype=dtype, seed=6, num_threads=t) for t in (1, 2)]
    assert nets[1]._threads_for(5000) == 2
    init = [w.copy() for w in nets[0].weights], [b.copy() for b in nets[0].biases]
    grads = [sum(net.backprop(X, Y), []) for net in nets]
    for a, b in zip(*grads):
        assert np.array_equal(a, b)
    ref = Reference(*args, seed=6)
    ref.weights = [w.astype(np.float64) for w in init[0]]
    ref.biases = [b.astype(np.float64) for b in init[1]]
    want = sum(ref.backprop(X.astype(np.float64), Y), [])
    eps = np.finfo(dtype).eps
    for got, w in zip(grads[0], want):
        assert np.max(np.abs(got - w)) <= 5000 * eps * max(1.0, np.max(np.abs(w)))
    np.testing.assert_allclose(nets[0].feedforward(X), ref.feedforward(X.astype(np.float64)),
                               rtol=0, atol=50 * eps)


@pytest.mark.parametrize("batch", [7, 150])
def test_sgd_step_fused_and_separate(variant, batch):
    """The SGD step is fused into the gradient sums when a mini-batch is summed in one
    block (batch <= BP_BC_SC = 128) and is a separate pass otherwise; with momentum
    and L2, both give the reference's weights (as in test_variant_matches_reference)
    and bitwise the same weights on 1 and 3 threads.  40 inputs: the last column
    panel overlaps the one before it, whose weights must not be stepped twice."""
    rng = np.random.default_rng(batch)
    X = rng.standard_normal((310, 40))
    Y = rng.random((310, 3))
    args = ([40, 24, 3], ["tanh", "sigmoid"], "cross_entropy")
    fitted = []
    for threads in (1, 3):
        net = bpcore.Network(*args, seed=5, num_threads=threads)
        net.fit(X, Y, 2, batch, 0.5, l2=0.1, momentum=0.5, seed=1)
        fitted.append(net.weights + net.biases)
    for a, b in zip(*fitted):
        assert np.array_equal(a, b)
    ref = Reference(*args, seed=5)
    ref.fit(X, Y, 2, batch, 0.5, l2=0.1, momentum=0.5, seed=1)
    for got, want in zip(fitted[0], ref.weights + ref.biases):
        assert np.max(np.abs(got - want)) <= 1e-10


@pytest.mark.parametrize("batch", [7, 150])
def test_sgd_step_over_row_blocks(variant, batch):
    """One SGD step (fused for batch 7, separate for 150) of a layer of 270 neurons:
    on one thread its rows are two row blocks of bp_bcast (BP_BC_RC = 256: 256 + 14),
    each with an overlapping last column panel (40 inputs).  Bitwise the same on 1
    and 3 threads; within n * eps * scale of the reference, n the longest sum (the
    first step starts from zero velocity and lr < 1, so the weights' error is the
    gradient's, scaled by lr, plus their own rounding)."""
    rng = np.random.default_rng(batch)
    X, Y = rng.standard_normal((batch, 40)), rng.random((batch, 3))
    args = ([40, 270, 3], ["tanh", "sigmoid"], "cross_entropy")
    fit = dict(epochs=1, batch_size=batch, lr=0.5, l2=0.1, momentum=0.5, seed=1)
    stepped = []
    for threads in (1, 3):
        net = bpcore.Network(*args, seed=5, num_threads=threads)
        net.fit(X, Y, **fit)
        stepped.append(net.weights + net.biases)
    for a, b in zip(*stepped):
        assert np.array_equal(a, b)
    ref = Reference(*args, seed=5)
    before = [w.copy() for w in ref.weights]
    ref.fit(X, Y, **fit)
    assert all(not np.array_equal(w, b) for w, b in zip(ref.weights, before))
    n = max(batch, 270)
    for got, want in zip(stepped[0], ref.weights + ref.biases):
        scale = max(1.0, np.max(np.abs(want)))
        assert np.max(np.abs(got - want)) <= n * np.finfo(np.float64).eps * scale


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_packed_panels(variant, dtype):
    """bp_bcast copies a panel of B into a contiguous buffer when its rows are 4 KiB or
    more (or a multiple of 512 bytes) apart and at least 32 rows of C read it: here
    W^2's rows (1030 inputs) in the delta product, over 2 blocks of s (150 > 128), and
    the workspace's rows in the gradient of W^2 (150 rows) and W^1; 1030 is not a
    multiple of a vector, so the last panel overlaps.  Gradient and one fused SGD step
    (batch 20) bitwise the same on 1 and 2 threads and within n * eps * scale of the
    float64 reference."""
    rng = np.random.default_rng(12)
    X, y = rng.standard_normal((150, 20)), rng.integers(0, 4, 150)
    args = ([20, 1030, 150, 4], ["tanh", "relu", "softmax"], "log_likelihood")
    eps = np.finfo(dtype).eps
    results = []
    for threads in (1, 2):
        net = bpcore.Network(*args, dtype=dtype, seed=4, num_threads=threads)
        grads = sum(net.backprop(X, y), [])
        net.fit(X[:20], y[:20], epochs=1, batch_size=20, lr=0.5, seed=0)
        results.append(grads + net.weights + net.biases)
    for a, b in zip(*results):
        assert np.array_equal(a, b)
    ref = Reference(*args, seed=4)
    want = sum(ref.backprop(X, y), [])
    ref.fit(X[:20], y[:20], epochs=1, batch_size=20, lr=0.5, seed=0)
    want += ref.weights + ref.biases
    for got, ref_value in zip(results[0], want):
        scale = max(1.0, np.max(np.abs(ref_value)))
        assert np.max(np.abs(got - ref_value)) <= 1030 * eps * scale


@pytest.mark.parametrize("bad", [-1, 9, 2**40])
def test_train_refuses_an_order_index_outside_the_data(variant, bad):
    """The private kernel entry point checks the visiting order it is given (fit always
    passes a permutation): an index outside the data would read past X and Y."""
    net = bpcore.Network([4, 3, 2], seed=0)
    X, Y = np.ones((9, 4)), np.zeros((9, 2))
    order = np.arange(9, dtype=np.intp)
    order[5] = bad
    ws = [net._scratch(3) for _ in range(3)]
    before = net._params.copy()
    with pytest.raises(ValueError, match=r"order\[5\]"):
        kernels = bpcore.network._kernels
        kernels.train_epoch(net._layout, net._params, net._grads, None, kernels.Hyper(
            kernels.Rule.SGD, 0.1), X, Y, order, None, 3, *ws, None, 1)
    assert np.array_equal(net._params, before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_in", [64, 784, 3000])
def test_forward_row_independent_of_its_block(variant, dtype, n_in):
    """Each output of z = W a is summed by one sequence of operations, whichever tile
    computed it: a full 4 x 4 tile of bp_dot sums its 16 accumulators together (the
    butterfly of _gemm.h, AVX-512), an edge tile or a lone row sums each on its own,
    and both must follow the same tree of lane sums.  So every row of the output of
    a block of examples is bitwise the output of that example alone; widths with
    and without a vector tail, one and several blocks of k (3000 inputs), and a
    last column tile that is only partly valid (10 outputs)."""
    rng = np.random.default_rng(n_in)
    X = rng.standard_normal((13, n_in))
    net = bpcore.Network([n_in, 37, 10], ["tanh", "identity"], "quadratic", dtype=dtype,
                         seed=5, num_threads=1)
    block = net.feedforward(X)
    alone = np.vstack([net.feedforward(X[i:i + 1]) for i in range(len(X))])
    assert np.array_equal(block, alone)
