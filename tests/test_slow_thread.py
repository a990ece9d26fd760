"""A thread that loses its core does not hold the team up (bpcore/_sched.h).

The kernels' test hook ``_slow_thread`` makes one thread nap before every piece
it takes, as a thread the operating system deschedules while it holds work
would.  The others must then exclude it and do (almost) everything themselves,
and the trained weights must be bitwise those of one thread.  A thread left
alone merges runs of consecutive pieces into one; ``_cut_for`` (cut the epoch
for more threads than run it) and ``_max_run`` (cap a run's pieces) make it do
so in every pattern on one thread, deterministically.  What is asserted is who
did the work and in how many runs, counted by the kernels, not how long it took.
"""
from __future__ import annotations

import glob
import os
import sys
import threading
import time

import numpy as np
import pytest

import bpcore
from bpcore import network
from bpcore.optim import SGD

kernels = network._kernels
OPENMP = bpcore.build_info()["openmp"]
needs_openmp = pytest.mark.skipif(not OPENMP, reason="a serial build has no second thread")

SIZES = [64, 48, 32, 10]
BATCH = 32


def _setup(dtype="float64", n=2560):
    """n examples; 2560 fills 80 mini-batches, other counts leave a smaller last one."""
    rng = np.random.default_rng(0)
    X = rng.random((n, SIZES[0])).astype(dtype)
    Y = np.eye(SIZES[-1], dtype=dtype)[rng.integers(0, SIZES[-1], n)]
    return X, Y


def _pieces_per_batch(m, nt=2, dtype="float64"):
    """Pieces of one mini-batch of m examples in the layer-wise cut for nt threads
    (bpcore/_kernels.pyx, ``Schedule``): blocks of examples (two per thread, a
    multiple of 4 rows) for the gather and the output error; two pieces of units per
    thread (at least 16 units each) for each z^l and rows of W^l, and for each
    delta^l (l < L) at least a column panel of the delta product's tile each."""
    rows = max(4, -(-(-(-m // (2 * nt))) // 4) * 4)
    blocks = -(-m // rows)
    units = [max(1, min(2 * nt, n // 16)) for n in SIZES[1:]]
    grain = kernels.DELTA_GRAIN[dtype]
    deltas = [max(1, min(2 * nt, n // grain)) for n in SIZES[1:-1]]
    return 2 * blocks + sum(units) + sum(deltas) + sum(units)


def _lone_runs_per_batch(nt=2):
    """At most this many runs per mini-batch for a thread left alone: one per phase of
    examples or units (they join across the members' ranges), one per layer and
    member for the rows of W (the members' rows of a layer are not adjacent)."""
    layers = len(SIZES) - 1
    return (2 * layers + 1) + nt * layers


def _kernel_epoch(net, optimizer, X, Y, order, threads, workspace, **options):
    """One epoch through the kernels' entry, with their statistics."""
    state = net._bind_optimizer(optimizer)
    hyper = optimizer._hyper(kernels)
    stats = np.zeros(threads + 2, dtype=np.int64)  # pieces, exclusions; last: runs
    runs = np.zeros(threads, dtype=np.int64)
    kernels.train_epoch(net._layout, net._params, net._grads, state if state.shape[0] else None,
                        hyper, X, Y, order, None, BATCH, *workspace, None, threads,
                        stats=stats[:threads + 1], runs=runs, **options)
    optimizer._t = hyper.t
    stats[-1] = runs.sum()
    return stats, runs


def _epoch(threads, slow_thread=-1, slow_seconds=0.0, dtype="float64", epochs=1, n=2560,
           **options):
    """Train a fresh network; return its parameters and the kernels' statistics:
    pieces per thread, exclusions, and (``_epoch(...)[2]``) runs per thread."""
    X, Y = _setup(dtype, n)
    net = bpcore.Network(SIZES, activations=["tanh", "relu", "sigmoid"], dtype=dtype, seed=3)
    workspace = net._fit_workspace(BATCH)
    optimizer = SGD(0.1, momentum=0.9, weight_decay=1e-4)
    order = np.random.default_rng(1).permutation(X.shape[0])
    for _ in range(epochs):
        stats, runs = _kernel_epoch(net, optimizer, X, Y, order, threads, workspace,
                                    _slow_thread=slow_thread, _slow_seconds=slow_seconds,
                                    **options)
    return net._params.copy(), stats[:-1], runs


def test_statistics_count_every_piece():
    params, stats, runs = _epoch(1)
    # one thread: per mini-batch one piece of examples and one per layer of W
    batches = -(-2560 // BATCH)
    assert stats[0] == batches * (1 + len(SIZES) - 1)
    assert stats[-1] == 0
    # a lone thread takes the layers of W in one run (after its first mini-batch,
    # which measures its speed)
    assert 2 * batches <= runs[0] <= 2 * batches + len(SIZES)


@needs_openmp
@pytest.mark.parametrize("slow", [0, 1])
def test_a_slow_thread_is_left_out_and_changes_no_bit(slow):
    alone, _, _ = _epoch(1)
    together, _, _ = _epoch(2)
    assert np.array_equal(alone, together)
    # The stand-in naps 20 ms before each piece it takes: roughly what a thread
    # that shares its core with another process waits for its next time slice.
    slowed, stats, runs = _epoch(2, slow_thread=slow, slow_seconds=0.02)
    assert np.array_equal(alone, slowed)
    pieces = stats[:2]
    # Without exclusion it would do about half of the 2,000 pieces, each nap a wait
    # of the other thread (seconds in all); once excluded it stays out at least
    # twice as long as the wait it caused, longer each time it comes back and holds
    # the others up again, so over this epoch (a few ms without it) it takes a few
    # pieces at most (none if the other thread took them all before it started).
    assert pieces[slow] <= 4, f"the slow thread took {pieces[slow]} of {pieces.sum()} pieces"
    assert stats[-1] >= 1 or pieces[slow] == 0, "the slow thread worked but was never excluded"
    assert pieces.sum() == _epoch(2)[1][:2].sum() == 80 * _pieces_per_batch(BATCH)
    # Left alone, the other thread merges each phase's pieces into runs: 13 at most per
    # mini-batch, not 25 (the first mini-batch, before its speed is known, in pieces).
    fast = 1 - slow
    assert runs[fast] <= 80 * _lone_runs_per_batch() + _pieces_per_batch(BATCH), (
        f"{runs[fast]} runs for {pieces[fast]} pieces")


@needs_openmp
def test_a_slow_thread_changes_no_bit_in_float32_over_epochs():
    alone, _, _ = _epoch(1, dtype="float32", epochs=2)
    slowed, stats, _ = _epoch(3, slow_thread=2, slow_seconds=0.005, dtype="float32", epochs=2)
    assert np.array_equal(alone, slowed)
    assert stats[2] <= 8, f"the slow thread took {stats[2]} of {stats[:3].sum()} pieces"


@needs_openmp
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_thread_left_alone_runs_merged_pieces_and_changes_no_bit(dtype):
    # 2531 examples: 79 mini-batches of 32 and a last one of 3 (a single block)
    alone, _, _ = _epoch(1, dtype=dtype, n=2531)
    slowed, stats, runs = _epoch(2, slow_thread=1, slow_seconds=0.02, dtype=dtype, n=2531)
    assert np.array_equal(alone, slowed)
    assert stats[:2].sum() == (79 * _pieces_per_batch(BATCH, dtype=dtype)
                               + _pieces_per_batch(3, dtype=dtype))
    assert stats[1] <= 4, (stats, runs)
    assert runs[0] <= (80 * _lone_runs_per_batch()
                       + _pieces_per_batch(BATCH, dtype=dtype)), (stats, runs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cut_for, max_run", [(2, 0), (3, 2), (3, 3), (5, 2), (5, 4), (7, 0)])
def test_any_merging_of_pieces_changes_no_bit(dtype, cut_for, max_run):
    # One thread on an epoch cut for several: it is always alone, so it merges
    # runs of at most max_run pieces (0: each phase's rest), which start and end
    # inside phases and span layers; the weights stay those of one thread.
    alone, plain, _ = _epoch(1, dtype=dtype, n=2531)
    merged, stats, runs = _epoch(1, dtype=dtype, n=2531, _cut_for=cut_for, _max_run=max_run)
    assert np.array_equal(alone, merged)
    unmerged, cut, one_each = _epoch(1, dtype=dtype, n=2531, _cut_for=cut_for, _max_run=1)
    assert np.array_equal(alone, unmerged)
    assert one_each[0] == cut[0] == stats[0] > plain[0]  # every piece of the cut, once
    assert runs[0] < stats[0] and runs[0] >= -(-stats[0] // (max_run or stats[0]))


@needs_openmp
def test_an_exclusion_lasts_into_the_next_call_through_team_memory():
    X, Y = _setup()
    net = bpcore.Network(SIZES, activations=["tanh", "relu", "sigmoid"], seed=3)
    workspace = net._fit_workspace(BATCH)
    memory = np.zeros((2, kernels.TEAM_MEMORY))
    optimizer = SGD(0.1)

    def epoch(**slow):
        return _kernel_epoch(net, optimizer, X, Y, None, 2, workspace, team_memory=memory,
                             **slow)[0][:-1]

    first = epoch(_slow_thread=1, _slow_seconds=0.02)
    if first[1] == 0:
        pytest.skip("thread 1 started after thread 0 had taken every piece")  # pragma: no cover
    assert first[-1] >= 1
    # Excluded for at least twice its ~20 ms wait: the next call (a few ms) runs
    # without it, where a fresh team would have given it about half of the pieces.
    second = epoch()
    assert second[1] == 0 and second[0] == first[:2].sum()
    # exclusion end and length, and the speeds, kept
    assert memory[1, 2] > 0 and memory[1, 3] >= 2 * 0.02e9 and memory[0, :2].min() > 0


MS = 1_000_000  # nanoseconds


@pytest.mark.parametrize("waited, since_last_end, last_out, expected", [
    (10 * MS, None, 0, 20 * MS),            # a first exclusion: twice the wait
    (10 * MS, 5 * MS, 20 * MS, 40 * MS),    # soon after the last one: twice that one
    (10 * MS, 5 * MS, 200 * MS, 320 * MS),  # ... at most 32 times its own wait
    (10 * MS, 79 * MS, 20 * MS, 40 * MS),   # "soon": within 4 times the last one's length
    (10 * MS, 80 * MS, 20 * MS, 20 * MS),   # later: a fresh start
    (10 * MS, 1 * MS, 4 * MS, 20 * MS),     # never shorter than twice the wait
    (50 * MS, 1 * MS, 900 * MS, 1000 * MS), # and never over a second
])
def test_an_exclusion_grows_while_the_thread_keeps_holding_the_others_up(
        waited, since_last_end, last_out, expected):
    """The rule of _sched.h: a thread the host deschedules once (a hiccup of a virtual
    CPU) is out for a few times the wait it caused; one that holds the others up again
    soon after it rejoined (another process on its core) is out twice as long each
    time, up to 32 times the wait, so that it soon spends nearly all its time out."""
    now = 10_000 * MS
    last_end = 0 if since_last_end is None else now - since_last_end
    assert kernels._exclusion_length(waited, now, last_end, last_out) == expected


@needs_openmp
def test_a_thread_that_stalled_once_rejoins_within_the_epoch():
    """One 20 ms stall (the stand-in naps before its first piece only) excludes the
    thread once, for about twice that wait; the epoch (~0.2-0.5 s) then has it back
    for most of its pieces.  Excluded for 32 x the wait (the rule before), it would
    have sat out ~0.6 s, a whole epoch of this network."""
    sizes, n = [256, 256, 256, 10], 16384
    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    net = bpcore.Network(sizes, activations=["tanh", "relu", "sigmoid"], seed=3)
    stats, _ = _kernel_epoch(net, SGD(0.1), X, Y, None, 2, net._fit_workspace(BATCH),
                             _slow_thread=1, _slow_seconds=0.02, _slow_pieces=1)
    pieces, exclusions = stats[:2], stats[2]
    assert exclusions >= 1, "the stall held thread 0 up but was never noticed"
    assert pieces[1] >= 0.2 * pieces.sum(), f"thread 1 rejoined for {pieces[1]} of {pieces.sum()}"


def _masks():
    """{thread id: the CPUs it may run on} of this process's threads (Linux)."""
    masks = {}
    for status in glob.glob("/proc/self/task/*/status"):
        try:
            with open(status) as f:
                line = next(x for x in f if x.startswith("Cpus_allowed_list:"))
        except (OSError, StopIteration):  # pragma: no cover - a thread that just ended
            continue
        cpus = set()
        for part in line.split(":", 1)[1].strip().split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        masks[int(status.split("/")[4])] = frozenset(cpus)
    return masks


@needs_openmp
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pinning is Linux-only")
def test_an_epoch_pins_each_thread_to_its_own_cpu_and_gives_the_mask_back():
    cpus = frozenset(os.sched_getaffinity(0))
    if not 2 <= len(cpus) <= 16:
        pytest.skip("needs a mask of 2 to 16 CPUs")  # pragma: no cover
    before = _masks()
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(_masks())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # thread 0, the calling one, naps 20 ms holding its first piece: long enough
        # to be seen pinned
        _, stats, _ = _epoch(len(cpus), slow_thread=0, slow_seconds=0.02)
    finally:
        stop.set()
        watcher.join()
    main = threading.get_native_id()
    pinned = {next(iter(m[main])) for m in seen if len(m.get(main, cpus)) == 1}
    assert len(pinned) == 1 and pinned <= cpus, f"the calling thread ran on {pinned}"
    assert any(sum(len(c) == 1 for c in m.values()) >= 2 for m in seen), "no other thread pinned"
    assert os.sched_getaffinity(0) == cpus
    after = _masks()
    assert all(after[t] == before.get(t, cpus) for t in after), (before, after)

    # a narrower mask than the team (one CPU for two threads) is left as it is
    one = {min(cpus)}
    os.sched_setaffinity(0, one)
    try:
        _epoch(2)
        assert os.sched_getaffinity(0) == one
    finally:
        os.sched_setaffinity(0, cpus)


def test_a_team_of_one_ignores_a_remembered_exclusion():
    """Team memory keeps an exclusion's end as an absolute time; a network whose team
    is one thread (num_threads=1 here; also a team OpenMP shrank) reads no clock, so
    it must not consult that exclusion at all: the epoch finishes, and its weights
    are those of the same epoch without the memory."""
    X, Y = _setup()
    results = []
    for memory in (None, np.array([[0.0, 0.0, 4e18, 1e9]])):  # excluded "until" far ahead
        net = bpcore.Network(SIZES, activations=["tanh", "relu", "sigmoid"], seed=3)
        workspace = net._fit_workspace(BATCH)
        done = []
        worker = threading.Thread(target=lambda: done.append(_kernel_epoch(
            net, SGD(0.1), X, Y, None, 1, workspace, team_memory=memory)), daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "a team of one waited out a remembered exclusion"
        assert done
        results.append(net._params.copy())
    assert np.array_equal(*results)
