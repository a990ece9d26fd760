"""Shared fixtures and helpers of bpcore's test suite."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# ``python -m pytest`` run from the repository root puts the root on sys.path,
# where the Cython source folder ``bpcore/`` (no __init__.py) would be imported
# as an empty namespace package instead of the installed ``bpcore``.  Drop the
# root from the path (and such a namespace package, if something imported it).
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT]
if getattr(sys.modules.get("bpcore"), "__file__", "") is None:
    del sys.modules["bpcore"]
# The test modules import the helpers below with ``from conftest import ...``;
# make that work under any ``--import-mode``.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bpcore  # noqa: E402

# Hypothesis: no per-example deadline (the first call of a kernel, a busy CI
# machine or the pure-Python reference can be slow), and a bounded number of
# examples by default; individual tests lower it further where needed.
settings.register_profile(
    "bpcore", deadline=None, max_examples=60, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# A far longer search, for a run now and then: ``--hypothesis-profile=long``.  The
# option is applied by hypothesis's pytest plugin in pytest_configure, after this
# file is imported, so it overrides the default loaded here.  Tests that set their
# own max_examples scale it from settings.default.max_examples to follow the profile.
settings.register_profile("long", parent=settings.get_profile("bpcore"), max_examples=2000)
settings.load_profile("bpcore")

#: tests/distributed/ runs on every rank of an MPI launcher (``mpiexec -n 2 python -m
#: pytest tests/distributed``, which tests/test_distributed.py starts); a run of the
#: whole suite in one process leaves that folder to it.
_UNDER_MPI = any(name in os.environ for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"))
collect_ignore = [] if _UNDER_MPI else ["distributed"]

#: Where the real MNIST files live: ``shared/data/mnist`` beside the repository
#: checkout (the repository is cloned next to ``shared/`` in CI).
MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

#: Valid (output activation, cost) pairs.
OUTPUT_PAIRS = (
    [(act, "quadratic") for act in ("identity", "sigmoid", "tanh", "relu", "leaky_relu")]
    + [(act, "squared_error") for act in ("identity", "sigmoid", "tanh", "relu", "leaky_relu")]
    + [("sigmoid", "cross_entropy"), ("softmax", "log_likelihood")]
)
#: Activations allowed in hidden layers.
HIDDEN = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")


@pytest.fixture(autouse=True)
def parallel_small_steps(monkeypatch):
    """Let the tests' small networks run on the thread counts they ask for.

    bpcore runs a mini-batch step under ``_MIN_PARALLEL_FLOP`` on one thread
    whatever ``num_threads`` says (a speed rule: results are the same on any
    count).  The tests' networks are tiny, and what they check (bitwise thread
    independence, the partitioning's edges) needs the parallel code paths, so the
    rule is off here; tests/test_threads.py tests the rule itself.
    """
    monkeypatch.setattr(bpcore.network, "_MIN_PARALLEL_FLOP", 0)


@pytest.fixture
def restore_num_threads():
    """Put the global default thread count back as it was after the test."""
    saved = bpcore._threads._num_threads
    yield
    bpcore._threads._num_threads = saved


def make_targets(rng: np.random.Generator, cost: str, n: int, n_out: int) -> np.ndarray:
    """Targets that ``cost`` accepts: any reals, values in [0, 1], or probability rows."""
    if cost == "cross_entropy":
        return rng.uniform(0.0, 1.0, size=(n, n_out))
    if cost == "log_likelihood":
        # Dirichlet rows: non-negative and summing to 1 up to one rounding per entry,
        # far inside the sqrt(eps) the library allows.
        return rng.dirichlet(np.ones(n_out), size=n)
    return rng.normal(0.0, 1.0, size=(n, n_out))


def params_of(net) -> list[np.ndarray]:
    """Copies of all parameters of a core or reference network: W^1..W^L, b^1..b^L."""
    return [np.array(w, copy=True) for w in net.weights] + [np.array(b, copy=True)
                                                             for b in net.biases]


def require(module: str):
    """``import module`` for a test that needs an optional package (the ``test`` extra's,
    or PyTorch, which ``.ci/run`` installs beside it).

    Outside CI a missing package skips the test; under CI (``CI`` set), where it is
    installed, the ImportError fails the test instead of skipping it green.
    """
    import importlib
    import os

    if os.environ.get("CI", "").lower() in ("", "0", "false", "no"):
        return pytest.importorskip(module)
    return importlib.import_module(module)
