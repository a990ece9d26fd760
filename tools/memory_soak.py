"""Memory soak: does a network's whole life cycle give all of its memory back?

Each cycle creates a small :class:`bpcore.Network` (the architecture, dtype
and cost rotate through ``CONFIGS``; one cycle in three uses two threads),
trains it for a few mini-batches, runs ``predict``/``feedforward``/
``evaluate``/``cost``/``backprop`` on it, and drops it.  Some cycles also save
and load it and pickle it, and every cycle takes error paths (bad inputs that
must raise ``ValueError``, a kernel call refused for a too-small workspace, a
file that is not a model, a diverging fit), since a reference or buffer
dropped only on success is where leaks hide.

After ``--warmup`` cycles (lazy imports, OpenMP's thread pool, allocator
arenas and Python's caches settle there), and then every ``--every`` cycles,
after a ``gc.collect()``, three figures are sampled:

* ``RSS``: anonymous resident memory (RSS less file-backed pages, from
  ``/proc/self/statm``), what the system sees;
* ``heap``: bytes in use from ``malloc`` (glibc's ``mallinfo2``; absent
  elsewhere), which sees C allocations at once: a leak first fills the free
  holes of the heap, and RSS grows only once it has outgrown them;
* ``traced``: what ``tracemalloc`` traces (Python objects and NumPy array data).

A least-squares line through each gives the growth in bytes per cycle.

The bound: a quarter of the smallest buffer a cycle allocates per network (one
copy of the parameters of the smallest network in ``CONFIGS``, 2,572 bytes).
Leaking even one such buffer per cycle gives four times the bound; what stays
under it is allocator noise (glibc arenas and free lists, pymalloc pools,
page-granular RSS) and the samples themselves.  Exit status 1 when any slope
exceeds it.

    python tools/memory_soak.py                      # 10,000 cycles
    python tools/memory_soak.py --cycles 500 --every 20 --warmup 100
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import pickle
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import bpcore
import bpcore.network
from bpcore import DivergenceError, Network


@dataclass(frozen=True)
class Config:
    """One network of the rotation."""

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    cost: str
    dtype: str

    @property
    def n_params(self) -> int:
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def param_bytes(self) -> int:
        """Bytes of one copy of the parameters (the network holds three: p, grads, velocity)."""
        return self.n_params * np.dtype(self.dtype).itemsize


CONFIGS = (
    Config((16, 32, 10), ("sigmoid", "sigmoid"), "quadratic", "float64"),
    Config((16, 24, 24, 4), ("relu", "relu", "softmax"), "log_likelihood", "float32"),
    Config((20, 32, 1), ("tanh", "sigmoid"), "cross_entropy", "float64"),
    Config((12, 40, 3), ("leaky_relu", "identity"), "squared_error", "float32"),
)

EXAMPLES = 64      # training examples per cycle
BATCH = 16         # 4 mini-batches per epoch
EPOCHS = 2
SAVE_EVERY = 5     # cycles between save/load, pickling and a corrupt-file load
DIVERGE_EVERY = 10  # cycles between fits that diverge (DivergenceError)


def default_bound(configs=CONFIGS) -> float:
    """Largest growth in bytes per cycle taken for noise: 1/4 of the smallest parameter buffer."""
    return min(c.param_bytes for c in configs) / 4


def make_data(config: Config, seed: int = 0):
    """Inputs, targets and labels that ``config``'s cost accepts."""
    rng = np.random.default_rng(seed)
    n_out = config.sizes[-1]
    X = rng.random((EXAMPLES, config.sizes[0]))
    if n_out == 1:
        labels = (X[:, 0] > 0.5).astype(np.intp)
        Y = labels[:, None].astype(float)
    else:
        labels = rng.integers(0, n_out, EXAMPLES)
        Y = labels if config.cost == "log_likelihood" else np.eye(n_out)[labels]
    return X, Y, labels


def expect(exc_type, call) -> None:
    """Run ``call``, which must raise ``exc_type``."""
    try:
        call()
    except exc_type:
        return
    raise AssertionError(f"expected {exc_type.__name__}")


def one_cycle(i: int, data: dict, tmpdir: Path) -> None:
    """Create, train, use, (save, load, pickle,) misuse and drop one network."""
    config = CONFIGS[i % len(CONFIGS)]
    X, Y, labels = data[config]
    # every third cycle on two OpenMP threads (3 and len(CONFIGS) are coprime, so
    # every network gets its turn); few, since on a busy 2-core machine a team of
    # two can wait milliseconds at each barrier of these tiny steps
    net = Network(config.sizes, config.activations, config.cost, config.dtype, seed=i,
                  num_threads=2 if i % 3 == 0 else 1)
    validation = (X[:16], Y[:16]) if i % 3 == 1 else None
    net.fit(X, Y, EPOCHS, BATCH, 0.05, momentum=0.5 * (i % 2), l2=0.01, seed=i,
            validation_data=validation)
    out = net.predict(X)
    net.feedforward(X[0])
    net.evaluate(X, labels)
    net.cost(X, Y)
    net.backprop(X[:8], Y[:8])

    # error paths: checked in Python, and refused by the kernel itself
    expect(ValueError, lambda: net.feedforward(X[:, :-1]))
    expect(ValueError, lambda: net.fit(np.full_like(X, np.nan), Y, 1, BATCH, 0.05))
    expect(ValueError, lambda: net.backprop(X[:8], Y[:7]))
    kernels = bpcore.network._kernels
    too_small = net._scratch(1)
    expect(ValueError, lambda: kernels.train_epoch(
        net._layout, net._params, net._grads, None, kernels.Hyper(kernels.Rule.SGD, 0.1),
        X.astype(net.dtype), np.zeros((EXAMPLES, config.sizes[-1]), net.dtype), None, None,
        BATCH, too_small, too_small, too_small, None, 1))
    if i % DIVERGE_EVERY == 0:
        expect(DivergenceError, lambda: net.fit(X, Y, 1, BATCH, 1e300, l2=1.0, seed=0))

    if i % SAVE_EVERY == 0:
        path = tmpdir / "model.npz"
        net.save(path)
        loaded = Network.load(path)
        clone = pickle.loads(pickle.dumps(net))
        if not (np.array_equal(loaded.predict(X), out) and np.array_equal(clone.predict(X), out)):
            raise AssertionError("save/load or pickle changed the network")
        bad = tmpdir / "bad.npz"
        bad.write_bytes(b"PK\x03\x04 not really a zip archive")
        expect(ValueError, lambda: Network.load(bad))
        del loaded, clone


def rss_bytes() -> int:
    """Anonymous resident memory now: RSS less file-backed pages (Linux).

    File-backed pages (the shared libraries' code) come and go with the page
    cache, whatever the process does; a leak grows the anonymous part.
    Elsewhere: the peak RSS from getrusage.
    """
    try:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2():
    try:
        fn = ctypes.CDLL(None).mallinfo2  # glibc >= 2.33
    except (AttributeError, OSError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()


def heap_bytes() -> int | None:
    """Bytes in use from malloc, all arenas and mmapped blocks (glibc), else None."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd


def slope(x, y) -> float:
    """Least-squares slope of y against x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = x - x.mean()
    return float(dx @ (y - y.mean()) / (dx @ dx))


#: The figures sampled, in table order.
METRICS = ("rss", "heap", "traced")


@dataclass
class Soak:
    """Samples taken after the warm-up (bytes), and the slopes fitted through them."""

    cycles: list[int] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    heap: list[int] = field(default_factory=list)    # empty without mallinfo2
    traced: list[int] = field(default_factory=list)  # empty without tracemalloc
    seconds: float = 0.0

    def slopes(self) -> dict[str, float]:
        """Bytes per cycle of each figure that was sampled."""
        return {m: slope(self.cycles, getattr(self, m)) for m in METRICS if getattr(self, m)}


def soak(cycles: int, every: int, warmup: int, trace: bool = True, cycle=None,
         on_sample=None) -> Soak:
    """Run ``cycles`` cycles; sample at ``warmup`` and every ``every`` cycles after it.

    ``cycle(i, data, tmpdir)`` is one cycle (default :func:`one_cycle`);
    ``on_sample(result)`` is called after each sample.
    """
    if warmup + 2 * every > cycles:
        raise ValueError("need cycles >= warmup + 2 * every for a slope")
    cycle = cycle or one_cycle
    data = {config: make_data(config) for config in CONFIGS}
    result = Soak()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bpcore-soak-") as tmp:
            # One Path for the whole run: Python 3.11's pathlib interns the parts
            # of each new path, and a part that dies leaves a dead slot in the
            # interned-strings dict; as these accumulate, that dict is resized
            # (a one-off ~1 MB step of traced memory, not a leak of bpcore's).
            tmpdir = Path(tmp)
            for i in range(1, cycles + 1):
                cycle(i, data, tmpdir)
                if i >= warmup and (i - warmup) % every == 0:
                    gc.collect()
                    result.cycles.append(i)
                    result.rss.append(rss_bytes())
                    if _MALLINFO2 is not None:
                        result.heap.append(heap_bytes())
                    if trace:
                        result.traced.append(tracemalloc.get_traced_memory()[0])
                    if on_sample is not None:
                        on_sample(result)
    finally:
        result.seconds = time.perf_counter() - start
        if trace:
            tracemalloc.stop()
    return result


HEADER = f"{'cycle':>7}" + "".join(f" {m + ' KiB':>12} {'d' + m:>9}" for m in METRICS)


def row(result: Soak, k: int) -> str:
    """Sample ``k`` as a table row: each figure and its growth since the first sample."""
    line = f"{result.cycles[k]:>7}"
    for m in METRICS:
        values = getattr(result, m)
        if values:
            line += f" {values[k] / 1024:>12.1f} {(values[k] - values[0]) / 1024:>9.1f}"
        else:
            line += f" {'-':>12} {'-':>9}"
    return line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=250, help="cycles between samples")
    parser.add_argument("--warmup", type=int, default=500, help="cycles before the first sample")
    parser.add_argument("--max-slope", type=float, default=default_bound(),
                        help="bytes per cycle allowed for each figure "
                             "(default: 1/4 of the smallest parameter buffer, %(default).0f)")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="leave tracemalloc off (cycles run faster untraced)")
    args = parser.parse_args(argv)

    info = bpcore.build_info()
    print(f"bpcore {info['version']}, kernels {info['kernels']}, OpenMP {info['openmp']}, "
          f"Python {info['python']}, NumPy {info['numpy']}")
    print(f"{args.cycles} cycles, warm-up {args.warmup}, a sample every {args.every}; "
          f"networks: {', '.join('-'.join(map(str, c.sizes)) + ' ' + c.dtype for c in CONFIGS)}")
    print(HEADER)
    result = soak(args.cycles, args.every, args.warmup, trace=not args.no_tracemalloc,
                  on_sample=lambda r: print(row(r, len(r.cycles) - 1), flush=True))
    print(f"\nruntime {result.seconds:.1f} s ({1e3 * result.seconds / args.cycles:.2f} ms/cycle)")
    slopes = result.slopes()
    for name, value in slopes.items():
        print(f"{name + ' slope:':<14} {value:10.2f} bytes/cycle")
    print(f"{'bound:':<14} {args.max_slope:10.2f} bytes/cycle")
    over = [name for name, value in slopes.items() if value > args.max_slope]
    if over:
        print(f"FAIL: {', '.join(over)} grow faster than the bound")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
