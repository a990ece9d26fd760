"""The finiteness checks of the data, and their cost in memory (bpcore._data).

``fit`` checks X in at most one pass and, for X that needs no conversion, not at
all before training: the first epoch proves X finite, because a non-finite
input makes W^1 non-finite.  These tests hold the kernels to that (every
activation, cost, dtype, position and rate) and check that a refusal found by
training looks exactly like one made up front.
"""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpcore
from bpcore import _data, optim, reference
from conftest import HIDDEN, OUTPUT_PAIRS, params_of

F32_MAX = float(np.finfo(np.float32).max)


@st.composite
def networks(draw):
    """Keyword arguments of a small network of any activations and cost."""
    n_hidden = draw(st.integers(0, 2))
    output, cost = draw(st.sampled_from(OUTPUT_PAIRS))
    sizes = ([draw(st.integers(1, 6))] + [draw(st.integers(1, 5)) for _ in range(n_hidden)]
             + [draw(st.integers(2 if output == "softmax" else 1, 4))])
    activations = [draw(st.sampled_from(HIDDEN)) for _ in range(n_hidden)] + [output]
    return dict(sizes=sizes, activations=activations, cost=cost,
                dtype=draw(st.sampled_from(["float32", "float64"])),
                init=draw(st.sampled_from(["scaled_gaussian", "he", "xavier"])),
                seed=draw(st.integers(0, 2**16)))


def _targets(kw, n, rng):
    n_out = kw["sizes"][-1]
    if kw["cost"] == "log_likelihood":
        return rng.integers(0, n_out, n)
    if kw["cost"] == "cross_entropy":
        return rng.uniform(size=(n, n_out))
    return rng.normal(size=(n, n_out))


@given(kw=networks(), data=st.data())
@settings(max_examples=120)
def test_fit_refuses_non_finite_X_found_by_training(kw, data):
    """One NaN or inf anywhere in an X of the network's dtype (not checked before
    training): fit refuses it with the up-front message, leaves the parameters and
    the shuffling generator as they were, for any activation, cost, rate, momentum,
    optimizer, sample weights (a zero weight on the bad row too), batch size and thread
    count, and so does the reference."""
    n = data.draw(st.integers(1, 40), label="n")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="data seed"))
    X = rng.normal(size=(n, kw["sizes"][0])).astype(kw["dtype"])
    if data.draw(st.booleans(), label="zero X"):  # delta * x = 0 elsewhere
        X[:] = 0
    i, k = data.draw(st.integers(0, n - 1), label="row"), data.draw(
        st.integers(0, kw["sizes"][0] - 1), label="column")
    X[i, k] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]), label="value")
    Y = _targets(kw, n, rng)
    fit = dict(epochs=data.draw(st.integers(1, 3), label="epochs"),
               batch_size=data.draw(st.integers(1, n + 2), label="batch_size"),
               lr=data.draw(st.sampled_from([0.0, 1e-3, 0.5, 50.0]), label="lr"),
               momentum=data.draw(st.sampled_from([0.0, 0.9]), label="momentum"),
               l2=data.draw(st.sampled_from([0.0, 1.0]), label="l2"),
               shuffle=data.draw(st.booleans(), label="shuffle"))
    rule = data.draw(st.sampled_from(["lr", "SGD", "Adam", "AdamW"]), label="optimizer")
    if data.draw(st.booleans(), label="sample_weight"):  # the bad row weighs 0 or not
        weights = rng.uniform(size=n)
        weights[i] = data.draw(st.sampled_from([0.0, 1.0]), label="its weight")
        if not weights.any():
            weights[:] = 1
        fit["sample_weight"] = weights
    threads = data.draw(st.sampled_from([1, 2]), label="num_threads")
    messages = []
    for net in (bpcore.Network(**kw, num_threads=threads), reference.Network(**kw)):
        kwargs = dict(fit)
        if rule != "lr":  # a fresh optimizer per network, at the drawn rate
            kwargs.update(optimizer=getattr(optim, rule)(lr=fit["lr"]), lr=None)
            del kwargs["momentum"], kwargs["l2"]
        before = [p.copy() for p in params_of(net)]
        state = net._shuffle_rng.bit_generator.state
        with pytest.raises(ValueError, match=r"^X contains 1 NaN or infinite value\(s\)$") as info:
            net.fit(X, Y, **kwargs)
        messages.append(str(info.value))
        assert all(np.array_equal(a, b) for a, b in zip(params_of(net), before))
        assert net._shuffle_rng.bit_generator.state == state
    assert messages[0] == messages[1]


@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
def test_fit_with_no_epoch_still_refuses_non_finite_X(cls):
    """epochs=0 trains nothing, so nothing proves X finite: it is checked then."""
    X = np.zeros((4, 3))
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite"):
        cls([3, 2], seed=0).fit(X, np.zeros((4, 2)), epochs=0, batch_size=2, lr=0.1)


@pytest.mark.parametrize("cls", [bpcore.Network, reference.Network])
@pytest.mark.parametrize("bad", ["Y", "validation_data", "callback", "sample_weight",
                                 "optimizer", "schedule"])
def test_non_finite_X_is_refused_before_the_later_checks_of_fit(cls, bad):
    """As with an up-front check, a non-finite X is named before a bad Y, validation
    set, callback, sample weights, optimizer or schedule, although its check waits for
    the first epoch (and the error is not chained to the one it replaces)."""
    X = np.zeros((4, 3))
    X[1, 2] = np.nan
    Y, kwargs = np.zeros((4, 2)), {}
    if bad == "Y":
        Y = np.zeros((4, 3))
    elif bad == "validation_data":
        kwargs[bad] = (np.zeros((2, 3)), np.zeros((3, 2)))
    elif bad == "callback":
        kwargs[bad] = 3
    elif bad == "sample_weight":
        kwargs[bad] = -np.ones(4)
    elif bad == "optimizer":
        kwargs[bad] = "adam"
    else:
        kwargs[bad] = "cosine"
    with pytest.raises(ValueError, match=r"^X contains 1 NaN or infinite value\(s\)$") as info:
        cls([3, 2], seed=0).fit(X, Y, 1, 2, None if bad == "optimizer" else 0.1, **kwargs)
    assert info.value.__suppress_context__ or info.value.__context__ is None
    X[1, 2] = 0  # the same call with a finite X names the bad argument itself
    with pytest.raises((TypeError, ValueError)) as info:
        cls([3, 2], seed=0).fit(X, Y, 1, 2, None if bad == "optimizer" else 0.1, **kwargs)
    assert "X contains" not in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_has_no_false_answers(dtype):
    """NaN and inf are found wherever they are, also beside huge finite values whose
    sums overflow; finite values whose column sums overflow are finite."""
    big = np.finfo(dtype).max
    huge = np.full((64, 5), big, dtype)
    assert _data.all_finite(huge)  # every column sum overflows: the exact test decides
    assert _data.all_finite(np.zeros((0, 5), dtype))
    rng = np.random.default_rng(0)
    width = _data._SUM_WIDTH  # (1000, 9): rows of `width` entries and a tail
    bases = (rng.normal(size=(300, 7)), rng.normal(size=(1000, 9)), huge, -huge)
    for value in (np.nan, np.inf, -np.inf):
        for base in bases:
            base = base.astype(dtype)
            assert _data.all_finite(base) and _data.all_finite(base[:, ::2])
            for flat in (0, base.size // width * width - 1, base.size // width * width,
                         base.size - 1, rng.integers(base.size)):
                bad = base.copy()
                bad.flat[flat] = value
                assert not _data.all_finite(bad), (value, flat)
                assert not _data.all_finite(bad.ravel())
                assert not _data.all_finite(np.asfortranarray(bad))  # not C-contiguous
    mixed = np.zeros((4, 2), dtype)
    mixed[0, 0], mixed[1, 0] = np.inf, -np.inf  # inf - inf = NaN: still not finite
    assert not _data.all_finite(mixed)


def test_conversion_finds_non_finite_values_and_overflow_in_any_block():
    """float64 -> float32 in blocks: a NaN or an out-of-range value in the last
    block is refused, with the messages of an up-front check (NaN first)."""
    arch = bpcore.Network([600, 2], dtype="float32")._arch
    rows = 3 * max(1, _data._BLOCK_BYTES // (600 * 4)) + 5  # several blocks
    X = np.zeros((rows, 600))
    X[-1, -1] = 1e300
    with pytest.raises(ValueError, match=r"^X has values beyond the range of float32"):
        _data.as_inputs(X, arch)
    X[0, 0] = np.nan  # in the first block; the overflow stays in the last one
    with pytest.raises(ValueError, match=r"^X contains 1 NaN or infinite"):
        _data.as_inputs(X, arch)
    X[0, 0], X[-1, -1] = F32_MAX, 0.0  # the largest float32 converts exactly
    out, _ = _data.as_inputs(X, arch)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out[0, 0] == F32_MAX
    np.testing.assert_array_equal(out, X.astype(np.float32))


def test_inputs_of_the_networks_dtype_are_not_copied():
    arch = bpcore.Network([5, 2], dtype="float32")._arch
    X = np.ones((7, 5), np.float32)
    assert _data.as_inputs(X, arch)[0] is X
    assert _data.as_inputs(X, arch, defer_finite_check=True)[0] is X
    assert _data.as_inputs(np.asfortranarray(X), arch)[0].flags.c_contiguous


def _peak_allocation(call):
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_allocates_nothing_of_the_size_of_X(dtype):
    """An X of the network's dtype is neither copied nor given a temporary of its
    size (NumPy's element-wise isfinite made an n x n_0 bool array, twice)."""
    net = bpcore.Network([784, 4, 10], dtype=dtype, seed=0, num_threads=1)
    rng = np.random.default_rng(0)
    X = rng.random((2_000, 784)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, len(X))]
    net.fit(X, Y, 1, 10, 0.1)  # first-call allocations out of the way
    peak = _peak_allocation(lambda: net.fit(X, Y, 1, 10, 0.1))
    assert peak < X.size // 2, (peak, X.nbytes)  # a bool temporary would be X.size


def test_conversion_is_one_pass_with_no_temporary_beyond_the_copy():
    """float64 data for a float32 network: the copy, and little beside it."""
    net = bpcore.Network([784, 4, 10], dtype="float32", seed=0, num_threads=1)
    rng = np.random.default_rng(0)
    X = rng.random((2_000, 784))
    Y = np.eye(10)[rng.integers(0, 10, len(X))]
    net.fit(X, Y, 1, 10, 0.1)
    peak = _peak_allocation(lambda: net.fit(X, Y, 1, 10, 0.1))
    copy = X.size * 4
    assert copy <= peak < copy + X.size // 2, (peak, copy)
