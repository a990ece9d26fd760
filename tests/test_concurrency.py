"""Networks and Python threads: parallel training, exclusive use, threadpoolctl limits."""
import threading

import numpy as np
import pytest

import bpcore
from bpcore import Network


def _data(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), rng.integers(0, 10, n)


def test_one_network_refuses_a_second_thread_while_training():
    X, y = _data(300, 8, 0)
    net = Network([8, 6, 10], seed=0, num_threads=1)
    in_fit, tried, refused = threading.Event(), threading.Event(), []

    def pause_inside_fit(epoch, history):
        assert net.feedforward(X[:2]).shape == (2, 10)  # the fitting thread itself may
        in_fit.set()
        tried.wait(timeout=60)

    worker = threading.Thread(target=lambda: net.fit(X, y, 1, 10, 0.1,
                                                     callback=pause_inside_fit))
    worker.start()
    assert in_fit.wait(timeout=60)
    for call in (lambda: net.feedforward(X[:5]), lambda: net.fit(X, y, 1, 10, 0.1),
                 lambda: net.backprop(X[:5], y[:5]), lambda: net.cost(X[:5], y[:5])):
        with pytest.raises(RuntimeError, match="in use by another thread") as exc:
            call()
        refused.append(exc.value)
    tried.set()
    worker.join()
    assert len(refused) == 4
    assert net.feedforward(X[:5]).shape == (5, 10)  # usable again afterwards


def test_threadpoolctl_limit_lowers_the_default_thread_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not bpcore.build_info()["openmp"]:
        pytest.skip("serial build: there is no OpenMP runtime to limit")
    bpcore.set_num_threads(None)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert bpcore.get_num_threads() == 1
        assert Network([3, 2], seed=0).num_threads == 1


def test_threadpoolctl_limit_reaches_the_kernels(monkeypatch, restore_num_threads):
    """Under ``threadpool_limits(1)`` a network made before the limit, without its own
    ``num_threads``, trains and predicts on one thread, and on the default again after
    it; a network given its own ``num_threads`` keeps it."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not bpcore.build_info()["openmp"]:
        pytest.skip("serial build: there is no OpenMP runtime to limit")
    bpcore.set_num_threads(None)
    if bpcore.get_num_threads() < 2:
        pytest.skip("one thread by default already: nothing to lower")
    kernels = bpcore.network._kernels
    calls = []  # (kernel, num_threads) of every kernel call
    train, forward = kernels.train_epoch, kernels.forward
    monkeypatch.setattr(kernels, "train_epoch",
                        lambda *a, **k: (calls.append(("train", a[14])), train(*a, **k))[1])
    monkeypatch.setattr(kernels, "forward",
                        lambda *a, **k: (calls.append(("forward", a[8])), forward(*a, **k))[1])
    # steps of 16 MFLOP: well above the size at which the default goes parallel
    X, y = _data(64, 200, 0)
    default = Network([200, 200, 10], seed=0)
    own = Network([200, 200, 10], seed=0, num_threads=2)

    def threads_used(net):
        """The num_threads the kernels get for a fit and a predict (the same for both)."""
        calls.clear()
        net.fit(X, y, 1, 64, 0.1)
        net.predict(X)
        assert [kernel for kernel, _ in calls] == ["train", "forward"]
        assert calls[0][1] == calls[1][1]
        return calls[0][1]

    before = threads_used(default)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert threads_used(default) == 1
        assert threads_used(own) == 2
    assert threads_used(default) == before == bpcore.get_num_threads()
