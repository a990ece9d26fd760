"""The peers of time_to_accuracy.py take bpcore's steps: the same optimizer, rate and batches.

Two epochs over 150 random examples in order (batches of 64, 64 and a tail of 22;
the optimizer's state carries over from the first epoch to the second), in float64,
from the same He start: every peer's final parameters must be bpcore's up to
rounding.  A peer whose rule differed (classic for Nesterov momentum, sklearn's
velocity sign, a missing bias correction, Adam's state restarted per epoch)
moves the parameters by a sizeable fraction of lr per step.
"""
import numpy as np
import pytest

import time_to_accuracy as tta

LIBRARIES = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}


def train(peer, optimizer, eps):
    rng = np.random.default_rng(3)
    X, Xt = rng.random((150, tta.SIZES[0])), rng.random((20, tta.SIZES[0]))
    y, yt = rng.integers(0, 10, 150), rng.integers(0, 10, 20)
    spec = dict(threads=1, seed=4, target=2.0, max_epochs=2, dtype="float64", shuffle=False,
                optimizer=optimizer, lr={"adam": 1e-3}.get(optimizer, 0.05), batch=64, eps=eps)
    epochs, params, he = tta.train(peer, ((X, y), (Xt, yt)), spec)
    assert len(epochs) == 2 and he
    return params


@pytest.mark.parametrize("optimizer", tta.OPTIMIZERS)
@pytest.mark.parametrize("peer", sorted(LIBRARIES))
def test_peer_takes_bpcore_steps(peer, optimizer):
    pytest.importorskip(LIBRARIES[peer])
    # sklearn adds Adam's eps before the bias correction (torch, bpcore and JAX after):
    # with eps far below every |gradient| here both forms are m_hat / sqrt(v_hat)
    eps = 1e-30 if peer == "sklearn" and optimizer == "adam" else tta.EPS
    want, got = train("bpcore", optimizer, eps), train(peer, optimizer, eps)
    for (w, b), (w_ref, b_ref) in zip(got, want):
        # float64 rounding of sums of at most 784 terms, over 6 steps of size <= lr
        np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-12)


def test_report_gives_each_seeds_epochs_and_the_median_time():
    spec = dict(target=0.98, max_epochs=3)
    results = [  # (seconds since start, accuracy) after each epoch
        dict(peer="bpcore", seed=0, run=0, he_init=True, epochs=[[1.0, 0.97], [2.0, 0.981]]),
        dict(peer="bpcore", seed=0, run=1, he_init=True, epochs=[[0.8, 0.97], [1.8, 0.981]]),
        dict(peer="bpcore", seed=1, run=0, he_init=True,
             epochs=[[1.0, 0.95], [2.0, 0.96], [3.0, 0.97]]),
        dict(peer="bpcore", seed=2, run=0, he_init=True, epochs=[[1.5, 0.99]]),
    ]
    row = tta.report(results, spec, [0, 1, 2], 2).splitlines()[-1]
    # seed 0's best run 1.8 s, seed 2 1.5 s, seed 1 missed: the median is 1.8 s
    assert row == "| bpcore | 2 | 2, >3, 1 | 1.80 | 1.00 | 97.0, 98.1 |"
