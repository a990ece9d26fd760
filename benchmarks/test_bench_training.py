"""Training throughput of bpcore and its peers (pytest-benchmark).

Each benchmark times one epoch per round (3 rounds after 1 warm-up round; the
network keeps training from round to round) and records the throughput in
``extra_info["samples_per_s"]``, from the median round.  Nothing is asserted
about speed.  ``test_peers_train_like_bpcore`` checks that the peers do the
same arithmetic as bpcore, so that the timings compare like with like.
"""
import numpy as np
import pytest

import bpcore
from bpcore.reference import Network as RefNetwork
from configs import CAN_LIMIT_BLAS, CONFIGS, REFERENCE_CONFIGS, blas_threads, get_configs
from numpy_batched import NumpyBatchedNet

THREADS = (1, 2)
#: BLAS threads for the NumPy peer: None leaves the BLAS default (no threadpoolctl).
BLAS_THREADS = THREADS if CAN_LIMIT_BLAS else (None,)
#: The pure-Python reference trains on this many samples only: it is slow.
REFERENCE_SAMPLES = 1_000

per_config = pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)


def measure(benchmark, config, implementation, threads, n_samples, train_epoch):
    """Time ``train_epoch`` and record samples/s."""
    benchmark.group = config.name
    benchmark.extra_info.update(implementation=implementation, threads=threads,
                                n_samples=n_samples)
    benchmark.pedantic(train_epoch, rounds=3, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["samples_per_s"] = n_samples / benchmark.stats.stats.median


def fit_epoch(net, config, X, Y):
    """A closure that trains ``net`` (bpcore or its reference) for one epoch."""
    return lambda: net.fit(X, Y, epochs=1, batch_size=config.batch_size, lr=config.lr,
                           shuffle=False)


@per_config
@pytest.mark.parametrize("threads", THREADS)
def test_bpcore(benchmark, config, threads):
    X, Y = config.data()
    net = bpcore.Network(config.sizes, config.activations, config.cost, config.dtype,
                         seed=0, num_threads=threads)
    measure(benchmark, config, "bpcore", threads, len(X), fit_epoch(net, config, X, Y))


@per_config
@pytest.mark.parametrize("threads", BLAS_THREADS)
def test_numpy_batched(benchmark, config, threads):
    X, Y = config.data()
    net = NumpyBatchedNet(config.sizes, config.activations, config.cost, config.dtype, seed=0)
    with blas_threads(threads):
        measure(benchmark, config, "numpy-batched", threads, len(X),
                lambda: net.train_epoch(X, Y, config.batch_size, config.lr))


@per_config
@pytest.mark.parametrize("threads", THREADS)
def test_torch_eager(benchmark, config, threads):
    pytest.importorskip("torch")
    from torch_eager import TorchEagerNet

    X, Y = config.data()
    net = TorchEagerNet(config.sizes, config.activations, config.cost, config.dtype, seed=0,
                        num_threads=threads)
    measure(benchmark, config, "torch-eager", threads, len(X),
            lambda: net.train_epoch(X, Y, config.batch_size, config.lr))


@pytest.mark.parametrize("config", get_configs(REFERENCE_CONFIGS), ids=lambda c: c.name)
def test_reference(benchmark, config):
    X, Y = config.data(REFERENCE_SAMPLES)
    net = RefNetwork(config.sizes, config.activations, config.cost, config.dtype, seed=0)
    threads = 1 if CAN_LIMIT_BLAS else None
    with blas_threads(threads):
        measure(benchmark, config, "reference", threads, len(X), fit_epoch(net, config, X, Y))


@per_config
def test_peers_train_like_bpcore(config):
    """From bpcore's initial parameters, an epoch of the NumPy peer ends where bpcore's does.

    (test_peers.py checks the torch peer against the NumPy one.)
    """
    X, Y = config.data(200)
    net = bpcore.Network(config.sizes, config.activations, config.cost, config.dtype, seed=0)
    peer = NumpyBatchedNet(config.sizes, config.activations, config.cost, config.dtype)
    peer.weights = [w.copy() for w in net.weights]
    peer.biases = [b.copy() for b in net.biases]
    net.fit(X, Y, epochs=1, batch_size=config.batch_size, lr=config.lr, shuffle=False)
    peer.train_epoch(X, Y, config.batch_size, config.lr)
    atol = 1e-10 if config.dtype == "float64" else 1e-4
    for got, want in zip(peer.weights + peer.biases, net.weights + net.biases):
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)


@pytest.mark.parametrize("config", get_configs(REFERENCE_CONFIGS), ids=lambda c: c.name)
def test_bpcore_record_grad_norms(benchmark, config):
    """``fit(record_grad_norms=True)`` on one thread: compare with ``test_bpcore[...-1]``
    (off, the default) for the cost of recording; off costs one NULL test per mini-batch."""
    X, Y = config.data()
    net = bpcore.Network(config.sizes, config.activations, config.cost, config.dtype,
                         seed=0, num_threads=1)
    measure(benchmark, config, "bpcore-grad-norms", 1, len(X),
            lambda: net.fit(X, Y, epochs=1, batch_size=config.batch_size, lr=config.lr,
                            shuffle=False, record_grad_norms=True))
