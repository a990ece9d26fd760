"""What a ``fit`` call adds to the epoch it runs: input checks, shuffling, bookkeeping.

Times ``Network.fit(X, Y, epochs=1, shuffle=True)`` as a user calls it against the
bare epoch, the network's private ``_train_epoch`` on the same data in a shuffled
order made outside the timing, interleaved (fit, epoch, fit, epoch ...) so that a
drift of the machine's load hits both alike; prints the best and the median of
each, the ratio fit / epoch - 1 of the best and of the medians, and the median
of the paired ratios (each fit against the epoch timed just before it), the
least sensitive to a drifting load (the goal of issue 11: <= 3% on N1 with
20,000 examples).  ``--layout`` also times X given as float64 (converted), as
a Fortran-ordered array (copied) and as integer labels for Y.

    python benchmarks/fit_overhead.py                       # N1-f64, N1-f32, 1 thread
    python benchmarks/fit_overhead.py --configs N2-f32 --repeats 15 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import bpcore
from bpcore.optim import for_fit
from configs import get_configs


def bare_epoch(net, X, Y, config, order, workspace, optimizer):
    """One epoch through the kernels, with none of fit's checks (private API: the
    arguments ``fit`` passes to ``_train_epoch``)."""
    net._train_epoch(X, Y, order, config.batch_size, optimizer, None, workspace)


def measure(config, n, threads, repeats, variants):
    X, Y = config.data(n)
    net = bpcore.Network(config.sizes, config.activations, config.cost, config.dtype, seed=0,
                         num_threads=threads)
    workspace = net._fit_workspace(min(config.batch_size, n))
    order = np.random.default_rng(1).permutation(n).astype(np.intp)
    inputs = {"X, Y of the network's dtype": (X, Y)}
    if "layout" in variants:
        other = np.float32 if config.dtype == "float64" else np.float64
        inputs[f"X as {np.dtype(other).name}"] = (X.astype(other), Y)
        inputs["X Fortran-ordered"] = (np.asfortranarray(X), Y)
        inputs["Y as integer labels"] = (X, Y.argmax(axis=1))
    optimizer = for_fit(config.lr, None, 0.0, 0.0, n)  # what fit(lr=) trains with
    calls = {"epoch": lambda: bare_epoch(net, X, Y, config, order, workspace, optimizer)}
    for label, (x, y) in inputs.items():
        calls[f"fit, {label}"] = (lambda x=x, y=y: net.fit(
            x, y, epochs=1, batch_size=config.batch_size, lr=config.lr, shuffle=True))
    times = {label: [] for label in calls}
    for call in calls.values():  # warm-up
        call()
    for _ in range(repeats):
        for label, call in calls.items():
            start = time.perf_counter()
            call()
            times[label].append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="N1-f64,N1-f32")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--layout", action="store_true",
                        help="also time converted / copied X and integer labels")
    args = parser.parse_args(argv)
    print("| config | call | best ms | median ms | best / best epoch - 1 | "
          "median / median epoch - 1 | paired, median |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for config in get_configs(args.configs.split(",")):
        times = measure(config, args.samples, args.threads, args.repeats,
                        {"layout"} if args.layout else set())
        best_epoch, median_epoch = min(times["epoch"]), statistics.median(times["epoch"])
        for label, ts in times.items():
            best, median = min(ts), statistics.median(ts)
            paired = statistics.median(t / e - 1 for t, e in zip(ts, times["epoch"]))
            print(f"| {config.name} | {label} | {1e3 * best:.2f} | {1e3 * median:.2f} | "
                  f"{100 * (best / best_epoch - 1):+.1f}% | "
                  f"{100 * (median / median_epoch - 1):+.1f}% | {100 * paired:+.1f}% |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
