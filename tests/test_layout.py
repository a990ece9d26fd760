"""The parameter and workspace layout: aligned offsets, disjoint regions, untouched gaps.

Alignment is a speed matter (64-byte vector loads within one cache line; a
workspace row stride of an odd number of lines, so that a column's lines spread
over the L1 sets), but the padding must never change a result or be written by
a kernel.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpcore._dispatch
import bpcore.network
from bpcore import Network
from bpcore.optim import SGD, Adam, AdamW

LINE = 64  # bytes
sizes_st = st.lists(st.integers(1, 70), min_size=2, max_size=5)


def _regions(layout):
    """(start, stop) of every W^l and b^l in the parameter buffer, in order."""
    s = layout.sizes
    out = []
    for l in range(1, len(s)):
        out.append((layout.w_off[l], layout.w_off[l] + s[l] * s[l - 1]))
        out.append((layout.b_off[l], layout.b_off[l] + s[l]))
    return out


@settings(max_examples=200, deadline=None)
@given(sizes=sizes_st, dtype=st.sampled_from(["float32", "float64"]))
def test_offsets_are_aligned_disjoint_and_inside(sizes, dtype):
    layout = Network(sizes, dtype=dtype, seed=0)._layout
    ALIGN = LINE // np.dtype(dtype).itemsize
    assert layout.line == ALIGN
    regions = _regions(layout)
    assert all(start % ALIGN == 0 for start, _ in regions)
    assert all(a_stop <= b_start for (_, a_stop), (b_start, _) in zip(regions, regions[1:]))
    assert regions[-1][1] <= layout.n_params and layout.n_params % ALIGN == 0
    u = [layout.u_off[l] for l in range(1, len(sizes))]
    assert layout.u_off[0] == 0 and all(o % ALIGN == 0 for o in u)
    ends = [layout.u_off[l] + sizes[l] for l in range(len(sizes))]
    assert all(end <= nxt for end, nxt in zip(ends, u))
    assert ends[-1] <= layout.units and layout.units % ALIGN == 0
    assert (layout.units // ALIGN) % 2 == 1  # an odd number of cache lines per row


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_buffers_and_views_start_on_a_cache_line(dtype):
    net = Network([784, 100, 30, 10], dtype=dtype, seed=0)
    line = bpcore.network._ALIGNMENT
    assert line == 64
    adam = Adam()
    state = net._bind_optimizer(adam)  # the optimizer's state, one row per buffer
    assert state.shape == (2, net._layout.n_params)
    for array in (net._params, net._grads, state[0], state[1], net._scratch(7)):
        assert array.ctypes.data % line == 0 and array.flags.c_contiguous
    for view in net.weights + net.biases:
        assert view.ctypes.data % line == 0
    assert net._scratch(7).shape == (7, net._layout.units)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("momentum", [0.0, 0.9, "adamw", "sgd-nesterov"])
def test_training_never_writes_the_gaps(dtype, momentum):
    sizes = [13, 7, 5, 3]  # no size a multiple of 16: gaps after every region
    net = Network(sizes, activations=["tanh", "relu", "sigmoid"], cost="cross_entropy",
                  dtype=dtype, seed=1, num_threads=2)
    rng = np.random.default_rng(0)
    X, Y = rng.random((40, 13)), rng.random((40, 3))
    if momentum == "adamw":
        opt = AdamW(0.01, weight_decay=0.1)
    elif momentum == "sgd-nesterov":
        opt = SGD(0.5, momentum=0.9, nesterov=True, weight_decay=0.01)
    else:
        opt = None
    if opt is None:
        net.fit(X, Y, epochs=3, batch_size=6, lr=0.5, l2=0.1, momentum=momentum)
    else:
        net.fit(X, Y, epochs=3, batch_size=6, optimizer=opt)
        net._apply_update(net._gradient_sum(X.astype(net.dtype), Y.astype(net.dtype)), 1 / 40, opt)
    net.backprop(X[:9], Y[:9])
    in_use = np.zeros(net._layout.n_params, dtype=bool)
    for start, stop in _regions(net._layout):
        in_use[start:stop] = True
    assert (~in_use).sum() > 0
    state = [] if opt is None else list(opt._state)
    for buffer in [net._params, net._grads] + state:
        assert not buffer[~in_use].any()
    assert np.abs(net._params[in_use]).max() > 0


def _at_offset(X, offset_bytes):
    """A copy of X whose data starts ``offset_bytes`` past a cache line."""
    itemsize = X.dtype.itemsize
    buf = np.empty(X.size + 2 * LINE // itemsize, dtype=X.dtype)
    start = (-buf.ctypes.data % LINE + offset_bytes) // itemsize
    out = buf[start:start + X.size].reshape(X.shape)
    out[...] = X
    assert out.ctypes.data % LINE == offset_bytes
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_in", [16, 100, 784, 1024])  # one line, none, 49 (odd), 64 (even)
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_of_any_x_alignment_gives_the_same_bits(dtype, n_in, threads):
    """The forward pass reads X in place when its rows sit like a workspace's (each on
    a cache line, an odd number of lines apart) and copies them into the workspace
    otherwise: the same sums either way, so the outputs and costs are bitwise equal
    for X at every offset from a cache line, and equal to training's forward pass
    (whose rows are always gathered into the workspace)."""
    rng = np.random.default_rng(n_in)
    net = Network([n_in, 37, 5], ["tanh", "softmax"], "log_likelihood", dtype=dtype, seed=1,
                  num_threads=threads)
    X = rng.standard_normal((203, n_in)).astype(dtype)
    y = rng.integers(0, 5, 203)
    outs = [(net.feedforward(Xo), net._example_costs(Xo, np.eye(5, dtype=dtype)[y]))
            for Xo in (_at_offset(X, off) for off in (0, 8, 16, 48))]
    for out, costs in outs[1:]:
        assert np.array_equal(out, outs[0][0]) and np.array_equal(costs, outs[0][1])
    # training's per-example costs come from the same forward sums (lr = 0: no step)
    history = net.fit(_at_offset(X, 16), y, 1, 203, lr=0.0, shuffle=False)
    assert history.train_cost[0] == np.mean(outs[0][1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_l2_sized_row_blocks_change_no_bit(dtype):
    """The forward product's blocks of rows are sized for the core's L2 (read at import);
    a block's rows are summed exactly as they would be in any other block, so the
    outputs and a trained network are bitwise the same for a tiny L2 (blocks of 16 rows,
    13 of them here) and a large one (2 blocks of at most 128)."""
    kernels = bpcore._dispatch.kernels
    reported = kernels.compiled_info()["l2_bytes"]
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 1100)).astype(dtype)
    y = rng.integers(0, 7, 200)
    results = []
    try:
        for l2 in (64 * 1024, 4 << 20):
            kernels.set_l2_bytes(l2)
            assert kernels.compiled_info()["l2_bytes"] == l2
            net = Network([1100, 40, 7], ["relu", "softmax"], "log_likelihood", dtype=dtype,
                          seed=2, num_threads=1)
            out = net.feedforward(X)
            net.fit(X, y, epochs=1, batch_size=200, lr=0.1, shuffle=False)
            results.append((out, net.weights + net.biases))
    finally:
        kernels.set_l2_bytes(reported)
    (out_a, params_a), (out_b, params_b) = results
    assert np.array_equal(out_a, out_b)
    assert all(np.array_equal(a, b) for a, b in zip(params_a, params_b))
