"""Backpropagation: the compiled core against the textbook reference and finite differences.

The seeds' equations are

    z^l = W^l a^(l-1) + b^l,  a^l = sigma(z^l)
    delta^L = dC/da^L (.) sigma'(z^L)          (a - y when fused)
    delta^l = (W^(l+1))^T delta^(l+1) (.) sigma'(z^l)
    dC/db^l = delta^l,  dC/dw^l_jk = delta^l_j a^(l-1)_k

and the cost of a batch is the mean of the per-example costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import bpcore
from bpcore import reference
from conftest import HIDDEN, OUTPUT_PAIRS, make_targets

F64_EPS = np.finfo(np.float64).eps   # 2.2e-16
F32_EPS = np.finfo(np.float32).eps   # 1.19e-7
INITS = ("gaussian", "scaled_gaussian", "xavier", "he")

# Core and reference evaluate the same float64 formulas and differ only in the
# order of summation (8 partial sums in the core's dot product vs BLAS in the
# reference) and in libm vs NumPy for exp/tanh.  With depth <= 4, widths <= 9
# and batches <= 12 that is at most a few hundred roundings of size
# F64_EPS relative to the largest number in play: 1e-12 leaves a margin of
# ~4500 ulps (observed: < 10 ulps).
REF_RTOL = 1e-12


@dataclass
class Problem:
    sizes: list
    activations: list
    cost: str
    init: str
    seed: int
    X: np.ndarray
    Y: np.ndarray

    def core(self, **kw):
        return bpcore.Network(self.sizes, self.activations, self.cost, init=self.init,
                              seed=self.seed, **kw)

    def reference(self, **kw):
        return reference.Network(self.sizes, self.activations, self.cost, init=self.init,
                                 seed=self.seed, **kw)


@st.composite
def problems(draw):
    """A random architecture (depth 1-4, widths 1-9), a valid cost pairing and a batch of 1-12."""
    depth = draw(st.integers(1, 4), label="depth")
    sizes = draw(st.lists(st.integers(1, 9), min_size=depth + 1, max_size=depth + 1),
                 label="sizes")
    out_act, cost = draw(st.sampled_from(OUTPUT_PAIRS), label="output")
    if out_act == "softmax":
        sizes[-1] = max(sizes[-1], 2)  # softmax needs >= 2 classes
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1, max_size=depth - 1),
                  label="hidden")
    init = draw(st.sampled_from(INITS), label="init")
    n = draw(st.integers(1, 12), label="batch")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="data_seed"))
    X = rng.normal(0.0, 1.0, size=(n, sizes[0]))
    if cost == "log_likelihood" and draw(st.booleans(), label="integer labels"):
        Y = rng.integers(0, sizes[-1], size=n)  # one-hot encoded by the library
    else:
        Y = make_targets(rng, cost, n, sizes[-1])
    return Problem(sizes, hidden + [out_act], cost, init, seed, X, Y)


def assert_close_arrays(got, want, rtol, what):
    """max|got - want| <= rtol * max(1, max|want|) for each pair of arrays."""
    assert len(got) == len(want)
    for l, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what}[{l}] shape {g.shape} != {w.shape}"
        scale = max(1.0, float(np.max(np.abs(w))))
        err = float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))))
        assert err <= rtol * scale, f"{what}[{l}]: max|diff| = {err:.3e} > {rtol:.1e} * {scale:.3g}"


def z_values(net_ref, X):
    """All z^l of all examples (from the reference's forward pass), per layer."""
    per_layer = [[] for _ in range(net_ref.n_layers)]
    for x in X:
        zs, _ = net_ref._forward_example(np.asarray(x, dtype=np.float64))
        for l, z in enumerate(zs):
            per_layer[l].append(z)
    return [np.concatenate(zs) for zs in per_layer]


# -- core vs reference -----------------------------------------------------------------------

@given(problems())
@settings(max_examples=60)
def test_same_seed_gives_bitwise_same_initial_parameters(p):
    core, ref = p.core(), p.reference()
    for a, b in zip(core.weights + core.biases, ref.weights + ref.biases):
        assert a.dtype == b.dtype == np.float64
        assert np.array_equal(a, b)


@given(problems())
@settings(max_examples=60)
def test_backprop_matches_reference(p):
    core, ref = p.core(), p.reference()
    gb, gw = core.backprop(p.X, p.Y)
    rb, rw = ref.backprop(p.X, p.Y)
    assert [g.shape for g in gw] == [w.shape for w in core.weights]
    assert [g.shape for g in gb] == [b.shape for b in core.biases]
    assert_close_arrays(gw, rw, REF_RTOL, "nabla_w")
    assert_close_arrays(gb, rb, REF_RTOL, "nabla_b")


@given(problems())
@settings(max_examples=60)
def test_feedforward_and_costs_match_reference(p):
    core, ref = p.core(), p.reference()
    out = core.feedforward(p.X)
    assert out.shape == (p.X.shape[0], p.sizes[-1]) and out.dtype == np.float64
    assert_close_arrays([out], [ref.feedforward(p.X)], REF_RTOL, "a^L")
    # Per-example costs C_x (a batch of one), then the batch cost = their mean.
    per_example = []
    for i in range(p.X.shape[0]):
        c, r = core.cost(p.X[i:i + 1], p.Y[i:i + 1]), ref.cost(p.X[i:i + 1], p.Y[i:i + 1])
        assert math.isfinite(c) and c >= 0.0  # every cost here is a sum of non-negative terms
        assert abs(c - r) <= REF_RTOL * max(1.0, abs(r)), (i, c, r)
        per_example.append(r)
    batch = core.cost(p.X, p.Y)
    # mean of n <= 12 values: n roundings of F64_EPS relative to the largest one
    assert abs(batch - np.mean(per_example)) <= REF_RTOL * max(1.0, max(per_example))


@pytest.mark.parametrize("sizes, activations, cost, n", [
    # widths > 8 exercise the core's 8-way unrolled dot product more than once, with
    # every remainder length; n = 150 is a larger batch than hypothesis draws.
    ([30, 17, 25, 10], ["tanh", "relu", "softmax"], "log_likelihood", 150),
    ([64, 33, 1], ["sigmoid", "sigmoid"], "cross_entropy", 40),
    ([23, 40, 16, 7], ["leaky_relu", "sigmoid", "identity"], "squared_error", 9),
    ([784, 30, 10], ["sigmoid", "sigmoid"], "quadratic", 20),
    ([1, 70, 1], ["tanh", "identity"], "quadratic", 3),
])
def test_wide_layers_match_reference(sizes, activations, cost, n):
    rng = np.random.default_rng(sum(sizes))
    X = rng.uniform(0.0, 1.0, size=(n, sizes[0]))
    Y = make_targets(rng, cost, n, sizes[-1])
    core = bpcore.Network(sizes, activations, cost, seed=4)
    ref = reference.Network(sizes, activations, cost, seed=4)
    # widths up to 784 instead of 9: sums of up to ~100x more terms, so allow 100x
    # REF_RTOL (still ~4e5 ulps of headroom over the observed few ulps)
    rtol = 100 * REF_RTOL
    assert_close_arrays([core.feedforward(X)], [ref.feedforward(X)], rtol, "a^L")
    assert abs(core.cost(X, Y) - ref.cost(X, Y)) <= rtol * max(1.0, ref.cost(X, Y))
    gb, gw = core.backprop(X, Y)
    rb, rw = ref.backprop(X, Y)
    assert_close_arrays(gw, rw, rtol, "nabla_w")
    assert_close_arrays(gb, rb, rtol, "nabla_b")


# -- core vs central finite differences --------------------------------------------------------

FD_EPS = 1e-6
# |fd - g| <= FD_RTOL * max(|g|, |fd|) + FD_ATOL_FACTOR * F64_EPS * max(1, |C|) / FD_EPS.
# Truncation error of the central difference is FD_EPS^2 / 6 * |C'''| ~ 1e-13 for the
# O(1) third derivatives of these smooth activations: negligible.  Rounding error: each
# of C(theta +- eps) is computed with an error of K ulps of max(1, |C|) (K ~ the number
# of roundings on the way, a few hundred at most here), divided by 2 eps.  K = 100 gives
# a floor of 2.2e-8 * max(1, |C|); observed errors stay below 3 * F64_EPS * max(1,|C|) / eps.
FD_RTOL = 1e-6
FD_ATOL_FACTOR = 100.0
# relu/leaky_relu have a kink at z = 0 where the central difference straddles two
# slopes.  Perturbing one parameter by FD_EPS moves any z by at most FD_EPS times a
# product of |weights| and |activations| (<< 1e3 here), so examples with every
# |z| >= 1e-3 in a relu layer keep each z on one side of the kink.
KINK_MARGIN = 1e-3


@given(problems())
@settings(max_examples=60)
def test_backprop_matches_central_differences(p):
    core, ref = p.core(), p.reference()
    for l, z in enumerate(z_values(ref, p.X)):
        if p.activations[l] in ("relu", "leaky_relu"):
            assume(np.min(np.abs(z)) >= KINK_MARGIN)
    gb, gw = core.backprop(p.X, p.Y)
    C = core.cost(p.X, p.Y)
    atol = FD_ATOL_FACTOR * F64_EPS * max(1.0, abs(C)) / FD_EPS
    for kind, views, grads in (("w", core.weights, gw), ("b", core.biases, gb)):
        for l, (view, grad) in enumerate(zip(views, grads), start=1):
            for idx in np.ndindex(view.shape):
                original = view[idx]
                view[idx] = original + FD_EPS       # live view: changes the network
                c_plus = core.cost(p.X, p.Y)
                view[idx] = original - FD_EPS
                c_minus = core.cost(p.X, p.Y)
                view[idx] = original                # restore exactly
                fd = (c_plus - c_minus) / (2 * FD_EPS)
                g = grad[idx]
                tol = FD_RTOL * max(abs(g), abs(fd)) + atol
                assert abs(fd - g) <= tol, (
                    f"dC/d{kind}^{l}{list(idx)}: backprop {g!r}, central difference {fd!r}, "
                    f"|diff| {abs(fd - g):.3e} > {tol:.3e}")
    # the perturbations were undone exactly
    assert core.cost(p.X, p.Y) == C


# -- float32 against float64 ----------------------------------------------------------------

F32_CONFIGS = [
    ([6, 8, 3], ["sigmoid", "sigmoid"], "quadratic"),
    ([5, 9, 7, 4], ["tanh", "tanh", "softmax"], "log_likelihood"),
    ([4, 7, 1], ["tanh", "sigmoid"], "cross_entropy"),
    ([8, 9, 9, 9, 2], ["sigmoid", "sigmoid", "sigmoid", "identity"], "squared_error"),
    ([3, 9, 9, 2], ["leaky_relu", "relu", "tanh"], "quadratic"),
    # wider than a float32 SIMD vector (16 lanes with AVX-512): the vector code paths
    ([40, 33, 17, 3], ["tanh", "sigmoid", "sigmoid"], "quadratic"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sizes, activations, cost", F32_CONFIGS)
def test_float32_agrees_with_float64(sizes, activations, cost, seed):
    """Same seed: the float32 network is the float64 one with each parameter rounded once.

    Error model: rounding the parameters and inputs costs F32_EPS/2 relative each;
    a dot product of length n <= 9 adds at most (n + 1) F32_EPS/2 relative to
    sum_k |w_k a_k|, which with scaled_gaussian weights and inputs in [0, 1] is
    within a small factor of max(1, |z|) (the "condition factor"); activations
    are 1-Lipschitz (sigmoid 1/4, tanh, relu, softmax), so errors add up layer by
    layer: forward <= L (n_max + 2) F32_EPS/2 relative to max(1, |output|) and
    backward about twice that.  We allow L (n_max + 2) F32_EPS for both (a factor
    ~2 margin on the backward bound, and a condition factor of 2).  Observed:
    < 3 F32_EPS.
    """
    rng = np.random.default_rng(seed)
    n = 12
    X = rng.uniform(0.0, 1.0, size=(n, sizes[0]))
    Y = make_targets(rng, cost, n, sizes[-1])
    net64 = bpcore.Network(sizes, activations, cost, dtype="float64", seed=seed)
    net32 = bpcore.Network(sizes, activations, cost, dtype="float32", seed=seed)
    for p32, p64 in zip(net32.weights + net32.biases, net64.weights + net64.biases):
        assert p32.dtype == np.float32
        assert np.array_equal(p32, p64.astype(np.float32))  # rounded once from float64
    L, n_max = len(sizes) - 1, max(sizes)
    rtol = L * (n_max + 2) * F32_EPS

    out32, out64 = net32.feedforward(X), net64.feedforward(X)
    assert out32.dtype == np.float32
    assert_close_arrays([out32], [out64], rtol, "a^L")
    c32, c64 = net32.cost(X, Y), net64.cost(X, Y)
    assert abs(c32 - c64) <= rtol * max(1.0, abs(c64))
    (b32, w32), (b64, w64) = net32.backprop(X, Y), net64.backprop(X, Y)
    assert all(g.dtype == np.float32 for g in b32 + w32)
    assert_close_arrays(w32, w64, rtol, "nabla_w")
    assert_close_arrays(b32, b64, rtol, "nabla_b")


# -- hand-worked examples ---------------------------------------------------------------------

def _one_one_one(w1, b1, w2, b2, activations="sigmoid", cost="quadratic", cls=bpcore.Network):
    net = cls([1, 1, 1], activations, cost, seed=0)
    net.weights[0][0, 0], net.biases[0][0] = w1, b1
    net.weights[1][0, 0], net.biases[1][0] = w2, b2
    if cls is reference.Network:
        assert net.weights[0][0, 0] == w1  # the reference's lists are its parameters too
    return net


@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_hand_worked_1_1_1_exact(cls):
    """x = 1, y = 0, w1 = 0.5, b1 = -0.5, w2 = 2, b2 = -1, sigmoid, quadratic.

    z1 = 0.5 * 1 - 0.5 = 0, a1 = sigma(0) = 1/2, sigma'(z1) = 1/4
    z2 = 2 * 1/2 - 1 = 0,   a2 = 1/2,           sigma'(z2) = 1/4
    C = 1/2 (a2 - y)^2 = 1/8
    delta2 = (a2 - y) sigma'(z2) = 1/2 * 1/4 = 1/8;  dC/db2 = 1/8, dC/dw2 = delta2 a1 = 1/16
    delta1 = w2 delta2 sigma'(z1) = 2 * 1/8 * 1/4 = 1/16;  dC/db1 = 1/16, dC/dw1 = delta1 x = 1/16
    Every number is a power of two and sigma(0) = 1/(1 + e^0) is exact, so the
    results must be exact.
    """
    net = _one_one_one(0.5, -0.5, 2.0, -1.0, cls=cls)
    x, y = np.array([[1.0]]), np.array([[0.0]])
    assert net.feedforward(x)[0, 0] == 0.5
    assert net.cost(x, y) == 0.125
    (gb1, gb2), (gw1, gw2) = net.backprop(x, y)
    assert gb2[0] == 0.125 and gw2[0, 0] == 0.0625
    assert gb1[0] == 0.0625 and gw1[0, 0] == 0.0625
    # One SGD step with lr = 1 (exact too): w <- w - dC/dw.
    net.fit(x, y, epochs=1, batch_size=1, lr=1.0, shuffle=False)
    assert net.weights[0][0, 0] == 0.5 - 0.0625 and net.biases[0][0] == -0.5 - 0.0625
    assert net.weights[1][0, 0] == 2.0 - 0.0625 and net.biases[1][0] == -1.0 - 0.125


@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_hand_worked_1_1_1_closed_form(cls):
    """x = 0.8, y = 0.3, w1 = 1.5, b1 = -0.2, w2 = -0.7, b2 = 0.4, sigmoid, quadratic.

    The same chain rule as above with inexact numbers, evaluated here with
    math.exp; each quantity is a handful of correctly rounded operations, so the
    core and this closed form agree to a few ulps: 1e-14 relative.
    """
    x, y, w1, b1, w2, b2 = 0.8, 0.3, 1.5, -0.2, -0.7, 0.4
    s = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    z1 = w1 * x + b1
    a1 = s(z1)
    z2 = w2 * a1 + b2
    a2 = s(z2)
    cost = 0.5 * (a2 - y) ** 2
    d2 = (a2 - y) * a2 * (1 - a2)
    d1 = w2 * d2 * a1 * (1 - a1)
    net = _one_one_one(w1, b1, w2, b2, cls=cls)
    X, Y = np.array([[x]]), np.array([[y]])
    (gb1, gb2), (gw1, gw2) = net.backprop(X, Y)
    got = [net.feedforward(X)[0, 0], net.cost(X, Y), gb2[0], gw2[0, 0], gb1[0], gw1[0, 0]]
    want = [a2, cost, d2, d2 * a1, d1, d1 * x]
    for name, g, w in zip(["a2", "C", "dC/db2", "dC/dw2", "dC/db1", "dC/dw1"], got, want):
        assert abs(g - w) <= 1e-14 * abs(w), (name, g, w)


@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_hand_worked_fused_output_errors(cls):
    """delta^L = a - y for sigmoid + cross_entropy and for softmax + log_likelihood.

    Single layer, W = 0, b = 0: z = 0.  Sigmoid: a = 1/2; with y = 1,
    dC/db = a - y = -1/2, C = ln 2.  Softmax over 4 classes: a = 1/4 each; with
    label 2, dC/db = a - e_2 = (1/4, 1/4, -3/4, 1/4), C = ln 4; dC/dW = delta x^T.
    """
    x = np.array([[2.0, -1.0]])
    net = cls([2, 1], "sigmoid", "cross_entropy", seed=0)
    net.weights[0][...] = 0
    net.biases[0][...] = 0
    (gb,), (gw,) = net.backprop(x, np.array([[1.0]]))
    assert gb.tolist() == [-0.5] and gw.tolist() == [[-1.0, 0.5]]
    assert abs(net.cost(x, np.array([[1.0]])) - math.log(2)) <= 2 * F64_EPS

    net = cls([2, 4], "softmax", "log_likelihood", seed=0)
    net.weights[0][...] = 0
    net.biases[0][...] = 0
    (gb,), (gw,) = net.backprop(x, np.array([2]))
    assert gb.tolist() == [0.25, 0.25, -0.75, 0.25]
    assert np.array_equal(gw, np.outer(gb, x[0]))
    assert abs(net.cost(x, np.array([2])) - math.log(4)) <= 2 * F64_EPS * math.log(4)
