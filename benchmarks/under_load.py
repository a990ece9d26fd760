"""Two threads against one while another process keeps one core busy.

The case of a laptop beside a browser, a CI runner, two trainings at once: a
second process (``python -c "while True: pass"``) spins on the last usable core,
started and killed by this script.  Then, per config and run, bpcore with one
thread pinned to the first (free) core, and bpcore with ``num_threads=2`` on
the free and the busy core; the figure is the ratio 2 threads / 1 thread of their samples/s
(issue 11's goal: >= 0.9 on N2, M and L).  Each measurement is a cell of
``compare.py`` (``peers.py``: its own process, best of ``--repeats`` epochs of
``fit(epochs=1, shuffle=True)``); ``--peers bpcore,jax`` adds JAX's thread pool
under the same load.  Needs two usable cores (Linux: affinity).

    python benchmarks/under_load.py                       # N2, M, L; 3 runs
    python benchmarks/under_load.py --configs M-f32 --runs 5 --json load.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from configs import get_configs
from peers import PEERS, run_cell, usable_cpus


def spinner(cpu: int) -> subprocess.Popen:
    """A Python process spinning on ``cpu`` until killed."""
    import os

    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="N2-f32,M-f32,L-f32")
    parser.add_argument("--peers", default="bpcore")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, help="training samples (default: the config's)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    configs = get_configs(args.configs.split(","))
    peers = args.peers.split(",")
    if set(peers) - set(PEERS):
        parser.error(f"unknown peer(s) {sorted(set(peers) - set(PEERS))}")
    cpus = usable_cpus()
    if len(cpus) < 2:
        parser.error("needs two usable cores: one for the spinning process, one free")
    free, busy = cpus[0], cpus[-1]
    print(f"- a process spins on CPU {busy}; 1 thread pinned to CPU {free}, 2 threads on "
          f"CPUs {free} and {busy}; best of {args.repeats} epoch(s) per process, "
          f"{args.runs} run(s)\n")
    load = spinner(busy)
    rows = []
    try:
        for run in range(args.runs):
            for config in configs:
                for peer in peers:
                    speed = {}
                    for threads, pinned in ((1, [free]), (2, [free, busy])):
                        spec = dict(peer=peer, config=config.name, threads=threads,
                                    n_samples=args.samples or config.n_samples,
                                    repeats=args.repeats)
                        result = run_cell(spec, cpus=pinned)
                        speed[threads] = result["n_samples"] / min(result["times"])
                    rows.append(dict(run=run, config=config.name, peer=peer, one=speed[1],
                                     two=speed[2], ratio=speed[2] / speed[1]))
                    print(f"run {run + 1}: {config.name} {peer}: 1T {speed[1]:,.0f}, 2T "
                          f"{speed[2]:,.0f} samples/s, 2T/1T {speed[2] / speed[1]:.2f}",
                          file=sys.stderr, flush=True)
    finally:
        load.kill()
        load.wait()
    print("| config | implementation | 1 thread (pinned, free core) | 2 threads | 2T / 1T per "
          "run | median 2T / 1T |")
    print("|---|---|---:|---:|---|---:|")
    for config in configs:
        for peer in peers:
            mine = [r for r in rows if r["config"] == config.name and r["peer"] == peer]
            print(f"| {config.name} | {peer} | {max(r['one'] for r in mine):,.0f} | "
                  f"{max(r['two'] for r in mine):,.0f} | "
                  + ", ".join(f"{r['ratio']:.2f}" for r in mine)
                  + f" | {statistics.median(r['ratio'] for r in mine):.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"free_cpu": free, "busy_cpu": busy, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
