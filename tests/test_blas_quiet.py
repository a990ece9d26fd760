"""Training leaves NumPy's BLAS threads asleep.

After a matrix product, NumPy's OpenBLAS keeps its threads spinning for about a
tenth of a second, on the cores bpcore's threads train on (two threads then ran
N2 at ~0.6x: docs/threads-and-dtype.md).  So nothing bpcore runs between or
during epochs may call BLAS: the convergence diagnostics' probe (a forward pass in
float64) and the scikit-learn estimators' per-epoch loss use ``np.einsum``.
What is measured is the CPU time the process's other threads use while the
calling thread sleeps right after training: a spinning pool uses ~0.1 s of it.
"""
from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np
import pytest

from bpcore import ConvergenceWarning, Network

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                                reason="reads the threads' CPU times from Linux's /proc")

#: A spinning pool uses ~0.1 s of CPU in the 0.3 s window (measured: 0.10-0.11 s).
QUIET = 0.04


def _spinning_seconds(window=0.3) -> float:
    """CPU seconds the other threads of this process use while this one sleeps."""
    def cpu():
        me, total = threading.get_native_id(), 0
        for tid in os.listdir("/proc/self/task"):
            if int(tid) == me:
                continue
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # a thread that just ended
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")
    before = cpu()
    time.sleep(window)
    return cpu() - before


def _blas_spins() -> bool:
    """Whether this NumPy's BLAS leaves threads spinning after a product at all."""
    rng = np.random.default_rng(0)
    a, w = rng.random((256, 784)), rng.random((100, 784))
    _ = a @ w.T
    return _spinning_seconds() > QUIET


def _no_progress_fit(net, X, Y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, Y, epochs=2, batch_size=10, lr=1e-12)
    return [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_the_diagnostics_probe_of_a_stuck_fit_calls_no_blas():
    rng = np.random.default_rng(0)
    X = rng.random((1000, 784))
    Y = np.eye(10)[rng.integers(0, 10, 1000)]
    net = Network([784, 100, 10], seed=0, num_threads=1)
    warned = _no_progress_fit(net, X, Y)
    spun = _spinning_seconds()
    assert warned and str(warned[0].message).startswith("no progress"), "no probe ran"
    if not _blas_spins():
        pytest.skip("this NumPy's BLAS leaves no thread spinning: nothing to tell apart")
    assert spun < QUIET, f"the other threads used {spun:.2f} s of CPU after the fit"


def test_the_estimators_per_epoch_loss_calls_no_blas():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841 - bpcore.sklearn needs it
    from bpcore.sklearn import BPClassifier

    rng = np.random.default_rng(0)
    X = rng.random((2000, 784))
    y = rng.integers(0, 10, 2000)
    clf = BPClassifier(hidden_layer_sizes=(256,), max_iter=2, num_threads=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    spun = _spinning_seconds()
    if not _blas_spins():
        pytest.skip("this NumPy's BLAS leaves no thread spinning: nothing to tell apart")
    assert spun < QUIET, f"the other threads used {spun:.2f} s of CPU after the fit"
