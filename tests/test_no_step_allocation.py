"""Python is entered once per epoch, not per mini-batch, and an epoch's Python-side
memory does not depend on how many steps it takes.

The step itself is C without the GIL (tools/check_annotation.py shows no Python
C-API call in the kernels, and they call no allocator), so these two facts are
what remains to check from Python.
"""
import tracemalloc

import numpy as np

import bpcore.network
from bpcore import Network


def test_one_kernel_call_per_epoch(monkeypatch):
    calls = []
    train_epoch = bpcore.network._kernels.train_epoch

    def counting(*args, **kwargs):
        calls.append(args[9])  # the batch size
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(bpcore.network._kernels, "train_epoch", counting)
    rng = np.random.default_rng(0)
    X, y = rng.random((500, 8)), rng.integers(0, 3, 500)
    Network([8, 5, 3], seed=0).fit(X, y, 3, 1, 0.01)  # 3 epochs of 500 steps each
    assert calls == [1, 1, 1]


def _epoch_peak(net, X, y, batch_size):
    """Peak of traced (Python and NumPy) memory above the start, during one epoch."""
    net.fit(X, y, 1, batch_size, 0.01, seed=0)  # warm-up: caches, lazy imports
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        net.fit(X, y, 1, batch_size, 0.01, seed=0)
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_epoch_memory_does_not_grow_with_steps():
    rng = np.random.default_rng(0)
    X, y = rng.random((4000, 20)), rng.integers(0, 4, 4000)
    net = Network([20, 16, 4], seed=0, num_threads=2)
    # Same data, batch 8 (500 steps) against batch 1 (4000 steps): the workspaces
    # shrink with the batch, so anything allocated per step and kept would show.
    assert _epoch_peak(net, X, y, 1) <= _epoch_peak(net, X, y, 8)



def test_fit_allocates_its_buffers_once_not_per_epoch():
    """The workspaces and the snapshot that undoes a diverged epoch are allocated once
    per ``fit``, not per epoch (fresh ones per epoch cost a 25M-parameter network 15%
    of its epoch in page faults): after the first epoch, an epoch's traced peak stays
    within a small fraction of those buffers.  Nothing is kept after fit."""
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 300)), rng.integers(0, 4, 64)
    net = Network([300, 200, 4], seed=0)
    net.fit(X, y, 1, 16, 0.01)  # warm-up
    buffers = net._params.nbytes + 3 * 16 * net._layout.units * 8
    growth = []

    def per_epoch(epoch, history):
        current, peak = tracemalloc.get_traced_memory()
        growth.append(peak - start[0])
        start[0] = current
        tracemalloc.reset_peak()

    tracemalloc.start()
    try:
        start = [tracemalloc.get_traced_memory()[0]]
        net.fit(X, y, 6, 16, 0.01, seed=0, callback=per_epoch)
        kept = tracemalloc.get_traced_memory()[0] - start[0]
    finally:
        tracemalloc.stop()
    assert growth[0] >= buffers  # the first epoch allocated them (traced) ...
    assert max(growth[1:]) < buffers / 8  # ... later epochs did not
    assert kept < buffers / 8
