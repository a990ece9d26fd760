"""Train bpcore and its peers on the benchmark configs; print a Markdown table.

Every implementation runs in this one process on the same synthetic data: one
warm-up epoch, then the median of 3 timed epochs (``--epochs``) gives samples
per second.
"× bpcore" is that throughput divided by bpcore's at the same thread count.
The pure-Python reference trains on a subset only and on one BLAS thread.

    python benchmarks/compare.py                  # all configs, 1 and 2 threads
    python benchmarks/compare.py --quick          # fewer samples, for a smoke run
    python benchmarks/compare.py --configs M-f32 --threads 1,2,4
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import statistics
import sys
import time
from functools import partial
from typing import Callable, NamedTuple

import numpy as np

import bpcore
from bpcore.reference import Network as RefNetwork
from configs import CAN_LIMIT_BLAS, CONFIGS, blas_threads, get_configs
from numpy_batched import NumpyBatchedNet

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare the training throughput of bpcore, a batched NumPy trainer, "
                    "PyTorch eager (if installed) and bpcore's pure-Python reference.")
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                        help="comma-separated config names (default: %(default)s)")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated thread counts (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs per run, after one warm-up epoch; their median "
                             "counts (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 training samples (200 for the reference) instead of "
                             "each config's 10,000 (1,000)")
    args = parser.parse_args(argv)
    try:
        args.configs = get_configs(args.configs.split(","))
        args.threads = [int(t) for t in args.threads.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    if min(args.threads) < 1 or args.epochs < 1:
        parser.error("thread counts and --epochs must be >= 1")
    return args


def samples_per_s(train_epoch, n_samples, epochs):
    """n_samples / the median time of ``epochs`` calls, after one warm-up call."""
    train_epoch()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_epoch()
        times.append(time.perf_counter() - start)
    return n_samples / statistics.median(times)


class Run(NamedTuple):
    """One row of the table, before it is measured."""

    implementation: str
    threads: int | None  # None: BLAS left at its default (no threadpoolctl)
    n_samples: int
    make_trainer: Callable  # () -> a fresh network's train_epoch(X, Y)
    limits_blas: bool  # run under threadpoolctl's BLAS limit of ``threads``


def runs(config, threads, quick):
    """The runs of one config: bpcore, the NumPy and torch peers, the reference."""
    n, n_ref = (2_000, 200) if quick else (config.n_samples, config.n_samples // 10)
    args = (config.sizes, config.activations, config.cost, config.dtype)
    fit = dict(epochs=1, batch_size=config.batch_size, lr=config.lr, shuffle=False)

    def bpcore_trainer(t):
        net = bpcore.Network(*args, seed=0, num_threads=t)
        return lambda X, Y: net.fit(X, Y, **fit)

    def numpy_trainer():
        net = NumpyBatchedNet(*args, seed=0)
        return lambda X, Y: net.train_epoch(X, Y, config.batch_size, config.lr)

    def torch_trainer(t):
        from torch_eager import TorchEagerNet

        net = TorchEagerNet(*args, seed=0, num_threads=t)
        return lambda X, Y: net.train_epoch(X, Y, config.batch_size, config.lr)

    def reference_trainer():
        net = RefNetwork(*args, seed=0)
        return lambda X, Y: net.fit(X, Y, **fit)

    blas = threads if CAN_LIMIT_BLAS else [None]
    for t in threads:
        yield Run("bpcore", t, n, partial(bpcore_trainer, t), False)
    for t in blas:
        yield Run("numpy-batched", t, n, numpy_trainer, True)
    if HAVE_TORCH:
        for t in threads:
            yield Run("torch-eager", t, n, partial(torch_trainer, t), False)
    yield Run("reference", 1 if CAN_LIMIT_BLAS else None, n_ref, reference_trainer, True)


def machine_lines(threads):
    """Markdown bullet lines describing the machine and the libraries."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), cpu)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = bpcore.build_info()
    lines = [
        f"- CPU: {cpu}; {os.cpu_count()} logical cores, {usable} usable by this process",
        f"- {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}",
        f"- bpcore {info['version']}: OpenMP {'on' if info['openmp'] else 'off'}, "
        f"compile args `{info['compile_args']}`",
    ]
    if CAN_LIMIT_BLAS:
        import threadpoolctl

        for lib in threadpoolctl.threadpool_info():
            if lib["user_api"] == "blas":
                lines.append(f"- NumPy BLAS: {lib['internal_api']} {lib['version']} "
                             f"({lib.get('architecture') or 'unknown arch'}, "
                             f"{lib['threading_layer']} threading)")
    else:
        lines.append("- NumPy BLAS: unknown (threadpoolctl not installed: BLAS threads "
                     "left at their default)")
    if HAVE_TORCH:
        import torch

        lines.append(f"- PyTorch {torch.__version__}")
    lines.append(f"- Threads: {', '.join(map(str, threads))} (bpcore `num_threads`, BLAS via "
                 "threadpoolctl, `torch.set_num_threads`)")
    return lines


def main(argv=None):
    args = parse_args(argv)
    print("\n".join(machine_lines(args.threads)), end="\n\n")
    print("| config | implementation | threads | samples/s | × bpcore |")
    print("|---|---|---:|---:|---:|")
    for config in args.configs:
        baseline = {}
        for run in runs(config, args.threads, args.quick):
            X, Y = config.data(run.n_samples)
            with blas_threads(run.threads if run.limits_blas else None):
                train_epoch = run.make_trainer()
                speed = samples_per_s(lambda: train_epoch(X, Y), run.n_samples, args.epochs)
            if run.implementation == "bpcore":
                baseline[run.threads] = speed
            ratio = f"{speed / baseline[run.threads]:.2f}" if run.threads in baseline else "–"
            print(f"| {config.name} | {run.implementation} | {run.threads or 'default'} | "
                  f"{speed:,.0f} | {ratio} |", flush=True)

if __name__ == "__main__":
    sys.exit(main())
