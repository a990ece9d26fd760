"""Train bpcore and its peers on the benchmark configs, each cell in its own process.

Peers: ``bpcore`` (``Network.fit(epochs=1, shuffle=True)`` timed as a user calls
it, input checks included, and beside it the epoch's own time from
``history.seconds``), ``numpy`` (batched NumPy on BLAS, ``numpy_batched.py``),
``torch`` (PyTorch eager, ``torch_eager.py``), ``jax`` (``jax.jit`` of a
``jax.lax.scan`` over the whole epoch, ``jax_scan.py``) and the pure-Python
``reference`` on the small configs.  Every implementation shuffles each epoch
(each mini-batch's rows gathered in a fresh random order) and runs plain SGD.
torch and jax are optional: their columns are left out when they are not installed.

Every cell (implementation x config x thread count) runs in a fresh process
(``peers.py``): its thread pools live and die with it, its thread count is set
through the environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) and
the library's own call, and ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are
removed from its environment.  ``--runs`` repeats the whole sweep, the cells of
one config interleaved, so that a change of the machine's load hits every peer;
a cell's figure is its best epoch over all runs (and the median is kept in the
JSON).  The header names the CPU, NumPy's OpenBLAS and the kernel it picked
(threadpoolctl's ``architecture``) and bpcore's kernels; the roof is the cores'
FMA rate measured in the same run (``roof.py``, ``tools/fma_peak.c``).

GFLOP/s are given two ways: "true", the FLOP backpropagation does (no delta of
the input layer: 6 * sum(n_in * n_out) - 2 * n_0 * n_1 per sample), and "6Σ",
the customary 6 * sum(n_in * n_out).

    python benchmarks/compare.py                         # every config, 1 and 2 threads
    python benchmarks/compare.py --quick                 # small data: a smoke run
    python benchmarks/compare.py --configs M-f32,L-f32 --threads 1,2 --runs 3 \\
        --json bench.json --plot bench.png
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

from configs import (ACTIVATION_CONFIGS, CONFIGS, REFERENCE_CONFIGS, SHAPE_CONFIGS,
                     flop_per_sample, get_configs, true_flop_per_sample)
from peers import FORCED_KERNEL_VARS, NEEDS, PEERS, run_cell, timed_env, usable_cpus
from roof import cpu_flags, cpu_model, fma_roof

LABELS = {"bpcore": "bpcore fit", "bpcore-epoch": "bpcore epoch", "numpy": "NumPy batched",
          "torch": "PyTorch eager", "jax": "JAX jit+scan", "reference": "reference"}
#: Peers bpcore is compared with (the reference is the oracle, not a peer).
RIVALS = ("numpy", "torch", "jax")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Training throughput of bpcore beside NumPy, PyTorch, JAX and the "
                    "reference, every cell in its own process.")
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                        help="comma-separated config names (default: %(default)s; also "
                        "the activations " + ", ".join(c.name for c in ACTIVATION_CONFIGS)
                        + " and the other shapes "
                        + ", ".join(c.name for c in SHAPE_CONFIGS) + ")")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated thread counts (default: %(default)s)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="comma-separated implementations (default: %(default)s); "
                             "torch and jax are skipped when not installed")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed epochs per process, after a warm-up epoch "
                             "(default: %(default)s)")
    parser.add_argument("--runs", type=int, default=1,
                        help="processes per cell, the sweep repeated (default: %(default)s)")
    parser.add_argument("--samples", type=int,
                        help="training samples of every config (default: each config's own)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: at most 1,000 samples (256 for L/XL), 1 repeat")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="pin each process to its first N usable cores when N threads "
                             "are fewer than the cores (JAX is always pinned: that is how "
                             "its thread count is set; default: on)")
    parser.add_argument("--roof", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the FMA roof with tools/fma_peak.c (needs gcc)")
    parser.add_argument("--json", metavar="PATH", help="also write every measurement as JSON")
    parser.add_argument("--plot", metavar="PNG",
                        help="also draw samples/s per config, every peer (needs matplotlib)")
    args = parser.parse_args(argv)
    try:
        args.configs = get_configs(args.configs.split(","))
        args.threads = [int(t) for t in args.threads.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    args.peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(args.peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {list(PEERS)}")
    if min(args.threads) < 1 or args.repeats < 1 or args.runs < 1:
        parser.error("thread counts, --repeats and --runs must be >= 1")
    if args.quick:
        args.repeats = 1
    return args


def n_samples(config, args) -> int:
    if args.samples:
        return args.samples
    if args.quick:
        return min(config.n_samples, 256 if config.name.startswith(("L-", "XL-")) else 1_000)
    return config.n_samples


def available(peers):
    """The peers whose libraries are installed, and a note per peer left out."""
    keep, notes = [], []
    for peer in peers:
        module = NEEDS.get(peer)
        if module and importlib.util.find_spec(module) is None:
            notes.append(f"{peer}: not installed (`pip install {module}"
                         f"{'==2.13.0' if module == 'torch' else ''}`), column left out")
        else:
            keep.append(peer)
    return keep, notes


def cells(args, peers):
    """The sweep: per run, per config, per thread count, every peer (interleaved)."""
    for run in range(args.runs):
        for config in args.configs:
            for threads in args.threads:
                for peer in peers:
                    if peer == "reference" and (config.name not in REFERENCE_CONFIGS
                                                or threads != 1):
                        continue
                    yield run, dict(peer=peer, config=config.name, threads=threads,
                                    n_samples=n_samples(config, args), repeats=args.repeats)


def summarise(results, roof):
    """Per (config, peer, threads): best and median samples/s, GFLOP/s, % of the roof."""
    table = {}
    for r in results:
        for peer, times in ((r["peer"], r["times"]), ("bpcore-epoch", r.get("epoch_times"))):
            if not times or (peer == "bpcore-epoch" and r["peer"] != "bpcore"):
                continue
            key = (r["config"], peer, r["threads"])
            entry = table.setdefault(key, {"n_samples": r["n_samples"], "times": []})
            entry["times"] += times
    for (name, peer, threads), entry in table.items():
        config = get_configs([name])[0]
        best = entry["n_samples"] / min(entry["times"])
        median = entry["n_samples"] / statistics.median(entry["times"])
        entry.update(best=best, median=median,
                     gflops_true=best * true_flop_per_sample(config) / 1e9,
                     gflops_6sum=best * flop_per_sample(config) / 1e9)
        peak = (roof.get(config.dtype) or {}).get(threads)
        if peak:
            entry.update(roof=peak, roof_true=entry["gflops_true"] / peak,
                         roof_6sum=entry["gflops_6sum"] / peak)
    return table


def header(probe, roof, args, notes):
    info = probe["bpcore"]
    lines = [f"- CPU: {cpu_model()}; {os.cpu_count()} logical cores, {len(usable_cpus())} "
             f"usable; AVX-512: {'yes' if 'avx512f' in cpu_flags() else 'no'}, AVX2: "
             f"{'yes' if 'avx2' in cpu_flags() else 'no'}",
             f"- Python {probe['python']}, NumPy {probe['numpy']}"
             + "".join(f", {m} {probe[m]}" for m in ("torch", "jax") if m in probe),
             f"- bpcore {info.get('version')}: kernels `{info.get('kernels')}`, OpenMP "
             f"{'on' if info.get('openmp') else 'off'}"]
    for lib in probe["blas"]:
        lines.append(f"- NumPy's BLAS: {lib.get('internal_api')} {lib.get('version')}, kernel "
                     f"`{lib.get('architecture') or 'unknown'}`, {lib.get('threading_layer')} "
                     "threading (as the timed processes see it)")
    if not probe["blas"]:
        lines.append("- NumPy's BLAS: unknown (threadpoolctl not installed)")
    forced = [f"{v}={os.environ[v]}" for v in FORCED_KERNEL_VARS if v in os.environ]
    lines.append("- Removed from the timed processes' environment: "
                 + (", ".join(forced) if forced else "nothing (neither "
                    + " nor ".join(FORCED_KERNEL_VARS) + " was set)"))
    if "error" in roof:
        lines.append(f"- FMA roof: not measured ({roof['error']})")
    else:
        per = "; ".join(f"{bits}-bit: " + ", ".join(f"{g:.0f} on {t}T" for t, g in w.items())
                        for bits, w in sorted(roof["widths"].items(), reverse=True))
        lines.append(f"- FMA roof (tools/fma_peak.c, gcc {roof['compiler']} -O2 -march=native, "
                     f"float32 GFLOP/s): {per}; float64 is half")
    pinning = "pinned to N cores for N threads" if args.pin else "unpinned (JAX pinned)"
    lines.append(f"- Each cell its own process; {args.runs} run(s) x {args.repeats} timed "
                 f"epoch(s) after a warm-up, best epoch; every implementation shuffles each "
                 f"epoch; processes {pinning}")
    lines += [f"- {note}" for note in notes]
    return lines


def _fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def print_tables(table, args, peers, roof):
    columns = ["bpcore", "bpcore-epoch"] * ("bpcore" in peers) + [
        p for p in peers if p != "bpcore"]
    print("| config | threads | " + " | ".join(LABELS[c] for c in columns)
          + " | bpcore ÷ best peer | % of roof, true FLOP: bpcore / best peer "
            "| % of roof, 6Σ: bpcore / best peer |")
    print("|---|---:|" + "---:|" * (len(columns) + 3))
    for config in args.configs:
        for threads in args.threads:
            row = {c: table.get((config.name, c, threads)) for c in columns}
            if not any(row.values()):
                continue
            cells_ = [_fmt(row[c]["best"]) if row[c] else "–" for c in columns]
            rivals = {p: row[p] for p in RIVALS if row.get(p)}
            mine = row.get("bpcore")
            ratio = share_true = share_6 = "–"
            if mine and rivals:
                best = max(rivals, key=lambda p: rivals[p]["best"])
                ratio = f"{mine['best'] / rivals[best]['best']:.2f} ({best})"
                if "roof" in mine:
                    share_true = (f"{100 * mine['roof_true']:.0f}% / "
                                  f"{100 * rivals[best]['roof_true']:.0f}%")
                    share_6 = (f"{100 * mine['roof_6sum']:.0f}% / "
                               f"{100 * rivals[best]['roof_6sum']:.0f}%")
            print(f"| {config.name} | {threads} | " + " | ".join(cells_)
                  + f" | {ratio} | {share_true} | {share_6} |")
    print()
    print("| config | implementation | threads | samples | best samples/s | median samples/s "
          "| GFLOP/s true | GFLOP/s 6Σ | % roof true |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (name, peer, threads), e in table.items():
        share = f"{100 * e['roof_true']:.0f}%" if "roof" in e else "–"
        print(f"| {name} | {LABELS[peer]} | {threads} | {e['n_samples']:,} | {_fmt(e['best'])} | "
              f"{_fmt(e['median'])} | {e['gflops_true']:.1f} | {e['gflops_6sum']:.1f} | {share} |")
    if len(args.threads) > 1 and "bpcore" in peers:
        print()
        one, most = min(args.threads), max(args.threads)
        speed = {c.name: [table.get((c.name, "bpcore", t)) for t in (one, most)]
                 for c in args.configs}
        scaling = [f"{name} {b['best'] / a['best']:.2f}x" for name, (a, b) in speed.items()
                   if a and b]
        print(f"bpcore (fit), {most} threads over {one}: " + ", ".join(scaling))


def plot(table, args, peers, path):
    """One panel per config: samples/s of every implementation, grouped by threads."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    series = ["bpcore", "bpcore-epoch"] * ("bpcore" in peers) + [p for p in peers
                                                                  if p != "bpcore"]
    n = len(args.configs)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.6 * rows), squeeze=False)
    width = 0.8 / len(series)
    for ax, config in zip(axes.ravel(), args.configs):
        for i, peer in enumerate(series):
            xs, ys = [], []
            for k, threads in enumerate(args.threads):
                entry = table.get((config.name, peer, threads))
                if entry:
                    xs.append(k + (i - (len(series) - 1) / 2) * width)
                    ys.append(entry["best"])
            ax.bar(xs, ys, width, label=LABELS[peer], color=f"C{i}")
        ax.set_xticks(range(len(args.threads)), [f"{t} thread{'s' * (t > 1)}"
                                                 for t in args.threads])
        ax.set_ylim(bottom=0)
        ax.set_title(config.name)
        ax.set_ylabel("samples/s")
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(series), fontsize="small")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    peers, notes = available(args.peers)
    probe = run_cell(dict(peer="probe", config=None, threads=1, n_samples=0, repeats=0))
    roof = (fma_roof(args.threads, env=timed_env(max(args.threads))) if args.roof
            else {"error": "--no-roof"})
    print("\n".join(header(probe, roof, args, notes)), end="\n\n", flush=True)
    results = []
    started = time.perf_counter()
    for run, spec in cells(args, peers):
        result = run_cell(spec, pin=args.pin)
        results.append({**result, "run": run})
        print(f"[{time.perf_counter() - started:6.0f} s] run {run + 1}: {spec['config']} "
              f"{spec['peer']} {spec['threads']}T: "
              f"{result['n_samples'] / min(result['times']):,.0f} samples/s",
              file=sys.stderr, flush=True)
    table = summarise(results, roof)
    print_tables(table, args, peers, roof)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                   "usable": len(usable_cpus())},
                       "probe": probe, "roof": roof,
                       "options": {k: v for k, v in vars(args).items() if k != "configs"}
                       | {"configs": [c.name for c in args.configs]},
                       "cells": results,
                       "summary": [{"config": c, "implementation": p, "threads": t, **e}
                                   for (c, p, t), e in table.items()]}, f, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        plot(table, args, peers, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
