"""Train bpcore and its peers on the benchmark configs; print Markdown tables.

Every implementation runs in this one process on the same synthetic data: one
warm-up epoch, then the median of 3 timed epochs (``--epochs``) gives samples
per second.  bpcore's epochs are those of one multi-epoch ``fit`` (the times
``fit`` records in ``history.seconds``), so its one-off input checks per call
are not counted, as they would not be in real training.  The pure-Python
reference trains on a subset of the small configs only, on one BLAS thread.

GFLOP/s count 6 * sum(n_in * n_out) per sample; "% peak" divides them by the
float32/float64 matrix-multiply rate NumPy's BLAS reaches in this run (2048^3)
at the same thread count.  The summary gives, per config and thread count,
bpcore's throughput over the best peer's (NumPy batched, PyTorch eager) and
the 2-thread over 1-thread speed-up.

    python benchmarks/compare.py                  # all configs, 1 and 2 threads
    python benchmarks/compare.py --quick          # fewer samples, for a smoke run
    python benchmarks/compare.py --configs M-f32 --threads 1,2,4 --plot bench.png
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
from configs import (CAN_LIMIT_BLAS, CONFIGS, REFERENCE_CONFIGS, blas_threads,
                     flop_per_sample, get_configs)
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
    parser.add_argument("--plot", metavar="PNG",
                        help="also draw the samples/s as a bar chart (needs matplotlib)")
    parser.add_argument("--quick", action="store_true",
                        help="at most 2,000 training samples (200 for the reference) "
                             "instead of each config's own count (a tenth of it)")
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
    n = min(2_000, config.n_samples) if quick else config.n_samples
    n_ref = 200 if quick else config.n_samples // 10
    args = (config.sizes, config.activations, config.cost, config.dtype)
    fit = dict(epochs=1, batch_size=config.batch_size, lr=config.lr, shuffle=False)

    def bpcore_trainer(t):
        net = bpcore.Network(*args, seed=0, num_threads=t)
        return lambda X, Y, epochs: net.fit(X, Y, **{**fit, "epochs": epochs}).seconds

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
    if config.name in REFERENCE_CONFIGS:
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


def matmul_peak(dtype, threads, n=2048):
    """GFLOP/s of NumPy's BLAS on an n^3 matrix product (best of 3)."""
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    with blas_threads(threads):
        a @ a
        best = min(_timed(lambda: a @ a) for _ in range(3))
    return 2 * n ** 3 / best / 1e9


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(run, X, Y, epochs):
    """Samples/s of one run: the median epoch after a warm-up epoch."""
    with blas_threads(run.threads if run.limits_blas else None):
        train = run.make_trainer()
        if run.implementation == "bpcore":  # one fit of 1 + epochs epochs
            times = train(X, Y, 1 + epochs)[1:]
        else:
            train(X, Y)
            times = [_timed(lambda: train(X, Y)) for _ in range(epochs)]
    return run.n_samples / statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    print("\n".join(machine_lines(args.threads)), end="\n")
    peaks = {(dtype, t): matmul_peak(dtype, t if CAN_LIMIT_BLAS else None)
             for dtype in sorted({c.dtype for c in args.configs}) for t in args.threads}
    print("- Matrix-multiply peak measured now (NumPy BLAS, 2048^3): " + "; ".join(
        f"{dtype} {t} thread(s) {gflops:.0f} GFLOP/s" for (dtype, t), gflops in peaks.items()),
        end="\n\n")
    print("| config | implementation | threads | samples/s | GFLOP/s | % peak | × bpcore |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for config in args.configs:
        baseline = {}
        for run in runs(config, args.threads, args.quick):
            X, Y = config.data(run.n_samples)
            speed = measure(run, X, Y, args.epochs)
            gflops = speed * flop_per_sample(config) / 1e9
            peak = peaks.get((config.dtype, run.threads))
            if run.implementation == "bpcore":
                baseline[run.threads] = speed
            ratio = f"{speed / baseline[run.threads]:.2f}" if run.threads in baseline else "–"
            share = f"{100 * gflops / peak:.0f}" if peak else "–"
            print(f"| {config.name} | {run.implementation} | {run.threads or 'default'} | "
                  f"{speed:,.0f} | {gflops:.1f} | {share} | {ratio} |", flush=True)
            rows.append(dict(config=config.name, implementation=run.implementation,
                             threads=run.threads, samples_per_s=speed))
    print()
    print_summary(rows, args.threads)
    if args.plot:
        from bpcore.plot import plot_benchmark

        plot_benchmark(rows, args.plot)
        print(f"\nwrote {args.plot}")


def print_summary(rows, threads):
    """Per config and thread count: bpcore over the best peer, and its thread scaling."""
    speed = {(r["config"], r["implementation"], r["threads"]): r["samples_per_s"] for r in rows}
    print("| config | threads | bpcore samples/s | best peer | bpcore ÷ best peer | "
          "bpcore ÷ torch | bpcore vs 1 thread |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for config in dict.fromkeys(r["config"] for r in rows):
        for t in threads:
            mine = speed.get((config, "bpcore", t))
            peers = {impl: s for (c, impl, th), s in speed.items()
                     if c == config and th == t and impl in ("numpy-batched", "torch-eager")}
            if mine is None or not peers:
                continue
            best = max(peers, key=peers.get)
            torch = speed.get((config, "torch-eager", t))
            one = speed.get((config, "bpcore", 1))
            print(f"| {config} | {t} | {mine:,.0f} | {best} {peers[best]:,.0f} | "
                  f"{mine / peers[best]:.2f} | {f'{mine / torch:.1f}' if torch else '–'} | "
                  f"{mine / one:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
