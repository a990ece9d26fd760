"""A network's whole life cycle gives its memory back: a short run of tools/memory_soak.py.

Each cycle creates a small network, trains it, predicts, evaluates, takes the
error paths (bad inputs, a kernel call refused for a too-small workspace, a
diverging fit), sometimes saves, loads and pickles it, and drops it.  After a
warm-up, a least-squares line through samples of the anonymous RSS, of the
bytes in use from malloc (glibc's mallinfo2) and of tracemalloc's traced
memory gives each one's growth per cycle.

The bound is a quarter of one copy of the parameters of the smallest network
in the rotation (12-40-3 in float32: 643 parameters, 2,572 bytes, so 643
bytes per cycle).  Each network allocates three such buffers (parameters,
gradients, velocity) plus workspaces larger than one, so a leak of even one
buffer per cycle grows at four times the bound or more: ~770 KB over the 300
sampled cycles.  What stays under it is noise: glibc's free lists and
arenas, pymalloc pools, RSS moving by whole 4 KiB pages, Python's caches
filling after the warm-up, tracemalloc's own tables and the samples
themselves (measured: 15 to 55 bytes per cycle over such a run, 1 to 7 over
10,000 cycles).

In so short a run a leak may not reach RSS at all: it first fills the holes
that earlier frees left in the heap.  The malloc and tracemalloc figures see
it at once, and ``test_the_soak_catches_a_leak_of_one_buffer_per_cycle``
checks that they do, for a leak that tracemalloc traces (a NumPy array) and
one it cannot (a C ``malloc``).
"""
import ctypes
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "memory_soak.py"
_spec = importlib.util.spec_from_file_location("memory_soak", TOOL)
memory_soak = importlib.util.module_from_spec(_spec)
sys.modules["memory_soak"] = memory_soak  # dataclasses look their module up there
_spec.loader.exec_module(memory_soak)

CYCLES, EVERY, WARMUP = 400, 20, 100
SMALLEST = min(c.param_bytes for c in memory_soak.CONFIGS)
BOUND = memory_soak.default_bound()
GLIBC = memory_soak.heap_bytes() is not None


def _table(result):
    return "\n".join([memory_soak.HEADER] + [memory_soak.row(result, k)
                                             for k in range(len(result.cycles))])


def test_bound_is_a_quarter_of_the_smallest_buffer():
    assert SMALLEST == 643 * 4  # 12-40-3 in float32
    assert BOUND == SMALLEST / 4


def test_network_life_cycle_does_not_leak():
    result = memory_soak.soak(CYCLES, EVERY, WARMUP)
    slopes = result.slopes()
    assert set(slopes) == ({"rss", "heap", "traced"} if GLIBC else {"rss", "traced"})
    over = {name: round(value) for name, value in slopes.items() if value >= BOUND}
    assert not over, f"bytes per cycle over {BOUND:.0f}: {over}\n{_table(result)}"


_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]


@pytest.mark.parametrize("kind", ["numpy", "malloc"])
def test_the_soak_catches_a_leak_of_one_buffer_per_cycle(kind):
    """A NumPy array (traced) or a C malloc (untraced) the size of the smallest
    buffer, written and kept on every cycle, takes the slope over the bound."""
    if kind == "malloc" and not GLIBC:
        pytest.skip("an untraced leak is seen through glibc's mallinfo2")
    leaked = []

    def leaky_cycle(i, data, tmpdir):
        memory_soak.one_cycle(i, data, tmpdir)
        if kind == "numpy":
            leaked.append(np.ones(SMALLEST, np.uint8))
        else:  # never freed
            ctypes.memset(_libc.malloc(SMALLEST), 1, SMALLEST)

    result = memory_soak.soak(150, 10, 30, cycle=leaky_cycle)
    slopes = result.slopes()
    if GLIBC:
        assert slopes["heap"] > BOUND, _table(result)
    if kind == "numpy":
        assert slopes["traced"] > BOUND, _table(result)
    else:
        assert slopes["traced"] < BOUND, _table(result)
