"""Do two networks train in parallel from two Python threads?

The kernels run a whole epoch without the GIL, so two Python threads, each
training its own network on one OpenMP thread, should keep two cores busy.
This times four things, each from a fresh network:

    A alone, B alone   each fit by itself, from the main thread
    A then B           both fits, one after the other
    A and B at once    both fits started together from two Python threads

and reports ``overlap = (t_A + t_B) / t_at_once``: 2 means the fits ran fully
in parallel, 1 that they were serialized (as they would be if the GIL were
held during training).  The most two threads can give for these two fits is
``(t_A + t_B) / max(t_A, t_B)``.  ``CPU/wall`` is the process's CPU time (all
threads) over the wall time of a measurement: 1 for one busy thread, 2 for two;
``others CPU s`` is what other processes ran meanwhile (from ``/proc/stat``),
which should be near 0.  Each row is the round of median wall time out of
``--repeats`` rounds, the four measurements taken
in turn within a round so that a busy spell of a shared machine hits them alike.
It also checks that the fits made at once end bitwise where the sequential
ones do.

    python benchmarks/two_threads_overlap.py
    python benchmarks/two_threads_overlap.py --sizes 784,256,10 --epochs 3 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

import bpcore

MODES = ("A alone", "B alone", "A then B", "A and B at once")


@dataclass
class Job:
    """One network and what it is trained on; ``fit`` trains a fresh copy."""

    name: str
    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    cost: str
    X: np.ndarray
    Y: np.ndarray
    epochs: int
    batch_size: int
    seed: int

    def network(self) -> bpcore.Network:
        return bpcore.Network(self.sizes, self.activations, self.cost, seed=self.seed,
                              num_threads=1)

    def fit(self, net: bpcore.Network) -> None:
        net.fit(self.X, self.Y, self.epochs, self.batch_size, 0.05, seed=self.seed)


def make_jobs(sizes=(784, 256, 10), samples=10_000, epochs=10, batch_size=32) -> tuple[Job, Job]:
    """Two different networks of the same shape (equal work), on different data."""
    def data(seed):
        rng = np.random.default_rng(seed)
        return rng.random((samples, sizes[0])), rng.integers(0, sizes[-1], samples)

    hidden = len(sizes) - 2
    a = Job("A", tuple(sizes), ("relu",) * hidden + ("softmax",), "log_likelihood",
            *data(1), epochs, batch_size, seed=1)
    b = Job("B", tuple(sizes), ("sigmoid",) * (hidden + 1), "quadratic",
            *data(2), epochs, batch_size, seed=2)
    return a, b


def busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have run so far (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def timed(fn) -> tuple[float, float, float]:
    """(wall seconds, this process's CPU seconds, other processes' CPU seconds) of ``fn()``.

    The last is NaN where the machine's CPU time cannot be read; it should be
    near 0, or the cores were shared with someone else and the figures mean little.
    """
    busy, cpu, wall = busy_seconds(), time.process_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    others = float("nan") if busy is None else max(0.0, busy_seconds() - busy - cpu)
    return wall, cpu, others


def sequential(jobs, nets) -> None:
    for job, net in zip(jobs, nets):
        job.fit(net)


def at_once(jobs, nets) -> None:
    """Fit each network in its own Python thread, all started together."""
    errors = []
    start = threading.Barrier(len(jobs))

    def work(job, net):
        try:
            start.wait()
            job.fit(net)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=pair) for pair in zip(jobs, nets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def run_mode(mode: str, jobs) -> tuple[tuple[float, float, float], list]:
    """Time one measurement on fresh networks: (:func:`timed`'s figures, the trained networks)."""
    a, b = jobs
    nets = [job.network() for job in jobs]
    if mode == "A alone":
        times = timed(lambda: a.fit(nets[0]))
    elif mode == "B alone":
        times = timed(lambda: b.fit(nets[1]))
    elif mode == "A then B":
        times = timed(lambda: sequential(jobs, nets))
    else:
        times = timed(lambda: at_once(jobs, nets))
    return times, nets


def params(net) -> bytes:
    return b"".join(p.tobytes() for p in net.weights + net.biases)


def measure(jobs, repeats: int) -> tuple[dict, bool]:
    """Per mode, the round of median wall time (wall, CPU, others' CPU) over ``repeats``
    rounds; and whether the fits made at once matched the sequential ones every time."""
    rounds = {mode: [] for mode in MODES}
    same = True
    for _ in range(repeats):
        trained = {}
        for mode in MODES:
            times, trained[mode] = run_mode(mode, jobs)
            rounds[mode].append(times)
        same &= all(params(x) == params(y) for x, y in zip(trained["A then B"],
                                                           trained["A and B at once"]))
    return {mode: sorted(r)[(len(r) - 1) // 2] for mode, r in rounds.items()}, same


def overlap(medians: dict) -> tuple[float, float]:
    """(overlap, its ideal) from the median wall times."""
    t_a, t_b = medians["A alone"][0], medians["B alone"][0]
    return (t_a + t_b) / medians["A and B at once"][0], (t_a + t_b) / max(t_a, t_b)


def table(medians: dict, same: bool) -> str:
    lines = [f"{'measurement':<16} {'wall s':>7} {'CPU s':>7} {'CPU/wall':>9} "
             f"{'others CPU s':>13}"]
    for mode, (wall, cpu, others) in medians.items():
        lines.append(f"{mode:<16} {wall:>7.3f} {cpu:>7.3f} {cpu / wall:>9.2f} {others:>13.2f}")
    ratio, ideal = overlap(medians)
    lines.append(f"\noverlap (t_A + t_B) / t_at_once = {ratio:.2f}  "
                 f"(2 = fully parallel, 1 = serialized; at most {ideal:.2f} for these fits)")
    lines.append(f"results at once bitwise equal to sequential: {'yes' if same else 'NO'}")
    if any(others > 0.1 * wall for wall, _, others in medians.values()):
        lines.append("warning: other processes used the CPU during the runs (others CPU s); "
                     "the overlap is only meaningful on an otherwise idle machine")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="784,256,10", help="layer widths (default %(default)s)")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    jobs = make_jobs(tuple(int(s) for s in args.sizes.split(",")), args.samples, args.epochs,
                     args.batch_size)
    info = bpcore.build_info()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"bpcore {info['version']} ({info['kernels']} kernels), {cores} cores, "
          f"{info['machine']}, Python {info['python']}")
    for job in jobs:
        print(f"{job.name}: {'-'.join(map(str, job.sizes))} {'/'.join(job.activations)} "
              f"{job.cost}, {len(job.X)} samples x {job.epochs} epochs, batch "
              f"{job.batch_size}, num_threads=1")
    print(f"median of {args.repeats} rounds\n")
    medians, same = measure(jobs, args.repeats)
    print(table(medians, same))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
