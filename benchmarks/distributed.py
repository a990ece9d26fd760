"""Data-parallel training over MPI beside threads in one process.

    python benchmarks/distributed.py                       # L and XL, three setups, a table
    python benchmarks/distributed.py --configs L-f32 --samples 2048 --epochs 2
    python benchmarks/distributed.py --ping                # MPI latency and bandwidth here

Setups, each in fresh processes started by this script: 1 process x 1 thread,
1 process x 2 threads, 2 ranks x 1 thread (``mpiexec -n 2``, ``fit(comm=...)``).
Per setup: samples/s (median epoch after a warm-up epoch), the time per step
spent in the gradient exchange during training (the flag collective, the
Alltoallv, the rank-order sum and the Allgatherv; waiting for the slower rank
included), the same exchange timed alone on the same buffer (both ranks ready:
the pure cost), and the scaling efficiency: samples/s / (units x samples/s
of 1 process x 1 thread), units = threads or ranks.

``--ping`` measures what the cost model of docs/distributed.md needs: the
latency (half the round trip of an 8-byte message) and the bandwidth (bytes /
half the round trip of large messages) between two ranks, and the exact
exchange and MPI's own Allreduce on the L and XL gradient sizes.

Needs ``pip install ".[mpi]" (in the bpcore source tree)``.  Timings on a shared or busy machine mean
little; run it when the machine is quiet.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_CONFIGS = ("L-f32", "XL-f32")
SETUPS = (("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
          ("2 ranks x 1 thread", 2, 1))


def _mpiexec() -> str:
    exe = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
    if exe is None:
        sys.exit('mpiexec not found: pip install ".[mpi]" (in the bpcore source tree)')
    return exe


# -- worker: one setup, in this process (one rank of it under mpiexec) -------------------------
def worker(config_name: str, threads: int, samples: int, epochs: int, distributed: bool) -> None:
    from bpcore import Network
    from bpcore.bench import get_configs
    config = get_configs([config_name])[0]
    comm = None
    spent = {"exchange": 0.0, "steps": 0}
    if distributed:
        from mpi4py import MPI
        import bpcore.distributed as dist
        comm = MPI.COMM_WORLD
        exchange, flags = dist._Reducer.__call__, dist.Group._stop_if_any

        def timed_exchange(self, buffer):
            start = time.perf_counter()
            exchange(self, buffer)
            spent["exchange"] += time.perf_counter() - start

        def timed_flags(self, failure):
            start = time.perf_counter()
            flags(self, failure)
            spent["exchange"] += time.perf_counter() - start
            spent["steps"] += 1

        dist._Reducer.__call__, dist.Group._stop_if_any = timed_exchange, timed_flags
    X, Y = config.data(samples)
    net = Network(config.sizes, activations=config.activations, cost=config.cost,
                  dtype=config.dtype, seed=0, num_threads=threads)
    net.fit(X, Y, 1, config.batch_size, config.lr, seed=0, comm=comm)  # warm-up
    spent.update(exchange=0.0, steps=0)
    history = net.fit(X, Y, epochs, config.batch_size, config.lr, seed=1, comm=comm)
    seconds = statistics.median(history.seconds)
    result = {"config": config_name, "threads": threads, "ranks": 1 if comm is None else
              comm.Get_size(), "samples_per_s": samples / seconds,
              "step_ms": 1e3 * seconds / -(-samples // config.batch_size)}
    if comm is not None:
        result["exchange_ms_in_fit"] = 1e3 * spent["exchange"] / max(spent["steps"], 1)
        result["exchange_ms_alone"] = 1e3 * _time_exchange(comm, net._layout.n_params,
                                                          net.dtype)
        result["gradient_mb"] = net._layout.n_params * net.dtype.itemsize / 1e6
    if comm is None or comm.Get_rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)


def _time_exchange(comm, n: int, dtype, repeats: int = 10) -> float:
    """Median seconds of the exact exchange of an n-entry buffer, both ranks ready."""
    from mpi4py import MPI
    from bpcore.distributed import _Reducer
    from bpcore.network import _aligned
    reduce = _Reducer(comm, MPI, n, np.dtype(dtype), _aligned)
    buffer = _aligned(n, dtype)
    times = []
    for _ in range(repeats + 1):
        comm.Barrier()
        start = time.perf_counter()
        reduce(buffer)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


# -- ping: latency and bandwidth between two ranks -------------------------------------------
def ping() -> None:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    results = {}
    for nbytes, repeats in ((8, 2000), (1 << 10, 1000), (1 << 16, 300), (1 << 20, 100),
                            (1 << 23, 30), (1 << 26, 10)):
        buf = np.zeros(nbytes, dtype=np.uint8)
        times = []
        for _ in range(repeats + 3):
            comm.Barrier()
            start = time.perf_counter()
            if rank == 0:
                comm.Send(buf, dest=1)
                comm.Recv(buf, source=1)
            elif rank == 1:
                comm.Recv(buf, source=0)
                comm.Send(buf, dest=0)
            times.append((time.perf_counter() - start) / 2)
        one_way = statistics.median(times[3:])
        results[nbytes] = {"one_way_us": 1e6 * one_way, "GB_per_s": nbytes / one_way / 1e9}
    latency = results[8]["one_way_us"]
    bandwidth = max(r["GB_per_s"] for r in results.values())
    exchanges = {}
    for name, n in (("L-f32", 1_863_696), ("XL-f32", 25_175_040)):
        exact = _time_exchange(comm, n, np.float32)
        buf, out = np.zeros(n, np.float32), np.zeros(n, np.float32)
        times = []
        for _ in range(11):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(buf, out)
            times.append(time.perf_counter() - start)
        exchanges[name] = {"MB": 4 * n / 1e6, "exact_ms": 1e3 * exact,
                           "mpi_allreduce_ms": 1e3 * statistics.median(times[1:])}
    if rank == 0:
        print(f"MPI: {MPI.Get_library_version().splitlines()[0]}; {comm.Get_size()} ranks")
        print("message bytes   one-way us   GB/s")
        for nbytes, r in results.items():
            print(f"{nbytes:>13,}   {r['one_way_us']:>10.2f}   {r['GB_per_s']:.3f}")
        print(f"latency ~ {latency:.2f} us, bandwidth ~ {bandwidth:.2f} GB/s")
        for name, e in exchanges.items():
            print(f"{name} gradient ({e['MB']:.1f} MB): exact exchange {e['exact_ms']:.2f} ms, "
                  f"MPI_Allreduce {e['mpi_allreduce_ms']:.2f} ms")
        print("RESULT " + json.dumps({"latency_us": latency, "bandwidth_GB_per_s": bandwidth,
                                      "messages": results, "exchanges": exchanges}), flush=True)


# -- driver ------------------------------------------------------------------------------------
def _run(cmd, threads: int, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    parser.add_argument("--samples", type=int, default=None,
                        help="training examples (default: the config's)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (median)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per setup")
    parser.add_argument("--ping", action="store_true", help="latency and bandwidth only")
    parser.add_argument("--worker", nargs=4, metavar=("CONFIG", "THREADS", "SAMPLES", "DIST"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--ping-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        config, threads, samples, dist = args.worker
        worker(config, int(threads), int(samples), args.epochs, dist == "1")
        return 0
    if args.ping_worker:
        ping()
        return 0
    mpiexec = _mpiexec()
    if args.ping:
        done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(HERE), "--ping-worker"],
                              env=dict(os.environ, OMP_NUM_THREADS="1"), text=True,
                              capture_output=True, timeout=args.timeout)
        print(done.stdout.rsplit("RESULT ", 1)[0], done.stderr, end="")
        return done.returncode
    from bpcore.bench import get_configs
    rows = []
    for config in get_configs(args.configs.split(",")):
        samples = args.samples or config.n_samples
        base = None
        for label, ranks, threads in SETUPS:
            cmd = [sys.executable, str(HERE), "--epochs", str(args.epochs), "--worker",
                   config.name, str(threads), str(samples), "1" if ranks > 1 else "0"]
            if ranks > 1:
                cmd = [mpiexec, "-n", str(ranks), *cmd]
            r = _run(cmd, threads, args.timeout)
            base = base or r["samples_per_s"]
            r["efficiency"] = r["samples_per_s"] / (max(ranks, threads) * base)
            rows.append((config.name, label, r))
            print(f"{config.name:7} {label:22} {r['samples_per_s']:>10,.0f} samples/s",
                  file=sys.stderr, flush=True)
    print("| config | setup | samples/s | ms per step | exchange ms/step in fit | exchange ms "
          "alone | gradient MB | efficiency |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, label, r in rows:
        cells = [name, label, f"{r['samples_per_s']:,.0f}", f"{r['step_ms']:.2f}"]
        for key, fmt in (("exchange_ms_in_fit", ".2f"), ("exchange_ms_alone", ".2f"),
                         ("gradient_mb", ".1f")):
            cells.append(format(r[key], fmt) if key in r else "–")
        cells.append(f"{r['efficiency']:.2f}")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
