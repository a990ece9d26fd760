"""One benchmark cell (one implementation, one config, one thread count) in its own process.

``run_cell`` starts ``python peers.py '<json spec>'`` with the environment of a
timed process and reads back the JSON line the child prints last.  Each cell
having its own process, no thread pool (OpenMP's, OpenBLAS's, torch's, XLA's)
outlives its cell or competes with another implementation's.

The environment of a timed process (``timed_env``):

* ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are removed: some environments
  set them, which makes OpenBLAS run an older CPU's kernels;
* ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` = the thread
  count (bpcore also gets ``num_threads``, the NumPy peer a threadpoolctl limit,
  torch ``torch.set_num_threads``);
* JAX: the CPU client sizes its intra-op pool from the process's CPU affinity
  (jax 0.10; the ``XLA_FLAGS`` ``--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1``, also set for one thread, are accepted but
  left its Eigen pool on every core when we looked at the threads' CPU times), so
  a JAX process is always pinned to ``threads`` cores when that is fewer than the
  usable ones; ``pin=True`` pins every implementation alike.

The child times ``repeats`` epochs after one warm-up epoch (which also compiles
JAX's program).  Each timed epoch draws a fresh permutation of the rows, inside
the timing, for every implementation: bpcore through ``fit(..., epochs=1,
shuffle=True)``, timed as a user calls it (input checks included), with the
epoch's own time from ``history.seconds`` beside it; the peers through their
``train_epoch(..., order=)`` on data converted once before the timings (as a
user of those libraries keeps tensors).  The pure-Python reference trains on a
tenth of the samples (at most 2,000), with one BLAS thread.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = ("bpcore", "numpy", "torch", "jax", "reference")
#: What each peer needs installed (a module name), beyond NumPy and bpcore.
NEEDS = {"torch": "torch", "jax": "jax"}
FORCED_KERNEL_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
JAX_ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux: no pinning
        return list(range(os.cpu_count() or 1))


def timed_env(threads: int, peer: str | None = None) -> dict:
    """The environment of a timed process running ``threads`` threads."""
    env = {k: v for k, v in os.environ.items() if k not in FORCED_KERNEL_VARS}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if peer == "jax" and threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + JAX_ONE_THREAD_FLAGS).strip()
    env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_cell(spec: dict, pin: bool = False, cpus: list[int] | None = None,
             timeout: float = 3600) -> dict:
    """Run one cell in a child process; return its JSON result (with ``spec``).

    ``cpus``: the CPUs the child may run on (default: the first ``threads`` usable
    ones if the cell is pinned, else all).  ``spec`` has ``peer``, ``config``,
    ``threads``, ``n_samples``, ``repeats``.
    """
    result, cpus = run_child(HERE / "peers.py", spec, pin, cpus, timeout)
    return {**spec, **result, "cpus": cpus}


def run_child(script, spec: dict, pin: bool = False, cpus: list[int] | None = None,
              timeout: float = 3600) -> tuple[dict, list[int] | None]:
    """``python script '<spec as JSON>'`` in the environment of a timed process of
    ``spec["threads"]`` threads (pinned as ``run_cell`` says); (the JSON object the
    child printed last, the CPUs it was pinned to)."""
    threads = spec["threads"]
    usable = usable_cpus()
    if cpus is None and threads < len(usable) and (pin or spec["peer"] == "jax"):
        cpus = usable[:threads]
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(
        os, "sched_setaffinity") else None
    proc = subprocess.run([sys.executable, str(script), json.dumps(spec)],
                          env=timed_env(threads, spec["peer"]), preexec_fn=preexec,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['peer']} ({Path(script).name}, {threads} thread(s)) "
                           f"failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), cpus


# -- the child ---------------------------------------------------------------------

def _permutations(n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    while True:
        yield rng.permutation(n).astype(np.intp)


def _timings(train, repeats):
    """Wall times of ``repeats`` calls of ``train`` after one warm-up call."""
    train()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train()
        times.append(time.perf_counter() - start)
    return times


def _bpcore(config, X, Y, threads, repeats):
    import bpcore

    net = bpcore.Network(config.sizes, config.activations, config.cost, config.dtype, seed=0,
                         num_threads=threads)
    epochs = []

    def train():
        history = net.fit(X, Y, epochs=1, batch_size=config.batch_size, lr=config.lr,
                          shuffle=True)
        epochs.append(history.seconds[0])

    times = _timings(train, repeats)
    return {"times": times, "epoch_times": epochs[1:],
            "kernels": bpcore.build_info().get("kernels")}


def _numpy(config, X, Y, threads, repeats):
    from configs import blas_threads
    from numpy_batched import NumpyBatchedNet

    net = NumpyBatchedNet(config.sizes, config.activations, config.cost, config.dtype, seed=0)
    orders = _permutations(len(X), 1)
    with blas_threads(threads):
        return {"times": _timings(lambda: net.train_epoch(
            X, Y, config.batch_size, config.lr, order=next(orders)), repeats)}


def _torch(config, X, Y, threads, repeats):
    import torch
    from torch_eager import TorchEagerNet

    torch.set_num_threads(threads)
    net = TorchEagerNet(config.sizes, config.activations, config.cost, config.dtype, seed=0,
                        num_threads=threads)
    Xt, Yt = net.as_tensors(X, Y)
    orders = _permutations(len(X), 1)
    return {"times": _timings(lambda: net.train_epoch(
        Xt, Yt, config.batch_size, config.lr, order=next(orders)), repeats),
        "version": torch.__version__}


def _jax(config, X, Y, threads, repeats):
    import jax
    from jax_scan import JaxScanNet

    net = JaxScanNet(config.sizes, config.activations, config.cost, config.dtype, seed=0)
    Xj, Yj = net.as_arrays(X, Y)
    orders = _permutations(len(X), 1)
    return {"times": _timings(lambda: net.train_epoch(
        Xj, Yj, config.batch_size, config.lr, order=next(orders)), repeats),
        "version": jax.__version__}


def _reference(config, X, Y, threads, repeats):
    from configs import blas_threads

    from bpcore.reference import Network

    net = Network(config.sizes, config.activations, config.cost, config.dtype, seed=0)
    with blas_threads(1):
        return {"times": _timings(lambda: net.fit(X, Y, epochs=1, batch_size=config.batch_size,
                                                  lr=config.lr, shuffle=True), repeats)}


def probe() -> dict:
    """What a timed process sees: versions, NumPy's BLAS and its kernel, bpcore's build."""
    import importlib.util
    import platform

    import numpy as np

    import bpcore

    info = {"python": platform.python_version(), "numpy": np.__version__,
            "bpcore": bpcore.build_info(), "blas": []}
    try:
        import threadpoolctl

        info["blas"] = [lib for lib in threadpoolctl.threadpool_info()
                        if lib.get("user_api") == "blas"]
    except ImportError:
        pass
    for name in NEEDS.values():
        if importlib.util.find_spec(name) is not None:
            module = __import__(name)
            info[name] = module.__version__
    return info


def reference_samples(n: int) -> int:
    return min(2_000, max(1, n // 10))


def child(spec: dict) -> dict:
    if spec["peer"] == "probe":
        return probe()
    from configs import get_configs

    config = get_configs([spec["config"]])[0]
    n = spec["n_samples"]
    if spec["peer"] == "reference":
        n = reference_samples(n)
    X, Y = config.data(n)
    run = {"bpcore": _bpcore, "numpy": _numpy, "torch": _torch, "jax": _jax,
           "reference": _reference}[spec["peer"]]
    result = run(config, X, Y, spec["threads"], spec["repeats"])
    result["n_samples"] = n
    return result


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
