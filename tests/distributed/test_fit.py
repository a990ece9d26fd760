"""fit(comm=...) on every rank: exactness, agreement with one process, bad setups, stops.

Run by tests/test_distributed.py as ``mpiexec -n 2 python -m pytest tests/distributed``
(they pass on 3 ranks too).  The random shapes come from a seeded generator, not
from hypothesis: under MPI each rank would shrink a failure on its own, and the
ranks' collectives would stop matching.
"""
from __future__ import annotations

import signal

import numpy as np
import pytest
from mpi4py import MPI

import bpcore._checkpoint
from bpcore import DivergenceError, Network
from bpcore.schedules import Adaptive, StepDecay
from bpcore.optim import SGD, Adam, AdamW
from bpcore.distributed import DistributedError, _part, _Reducer
from bpcore.network import _aligned
from mpi_helpers import flat_params, same_on_all_ranks

# Random configurations (drawn once, the same on every rank): sizes, output pair,
# batch size (some not multiples of the ranks, one smaller than them), examples.
_rng = np.random.default_rng(14)
_PAIRS = [("sigmoid", "quadratic"), ("softmax", "log_likelihood"), ("sigmoid", "cross_entropy"),
          ("identity", "squared_error")]
CONFIGS = []
for _ in range(8):
    sizes = [int(s) for s in _rng.integers(1, 12, size=int(_rng.integers(2, 5)))]
    out, cost = _PAIRS[int(_rng.integers(len(_PAIRS)))]
    if out == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    hidden = str(_rng.choice(["tanh", "relu", "sigmoid", "leaky_relu"]))
    n = int(_rng.integers(5, 60))
    CONFIGS.append((sizes, [hidden] * (len(sizes) - 2) + [out], cost,
                    int(_rng.integers(1, 17)), n))
CONFIGS.append(([3, 4, 2], ["tanh", "sigmoid"], "quadratic", 1, 7))   # 1 example per step
CONFIGS.append(([3, 4, 2], ["tanh", "sigmoid"], "quadratic", 64, 21))  # one step of all


def data(sizes, cost, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    if cost == "log_likelihood":
        Y = rng.integers(0, sizes[-1], n)
    elif cost == "cross_entropy":
        Y = rng.uniform(size=(n, sizes[-1]))
    else:
        Y = rng.normal(size=(n, sizes[-1]))
    return X, Y


def make(sizes, acts, cost, dtype="float64", seed=1):
    return Network(sizes, activations=acts, cost=cost, dtype=dtype, seed=seed, num_threads=1)


def test_contiguous_parts_cover_each_batch():
    for m in range(0, 40):
        for P in (1, 2, 3, 5):
            parts = [_part(m, P, r) for r in range(P)]
            assert parts[0][0] == 0 and parts[-1][1] == m
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


@pytest.mark.parametrize("n", [1, 7, 16, 17, 1000, 4099])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reduction_is_the_rank_order_sum_on_every_rank(comm, n, dtype):
    P, r = comm.Get_size(), comm.Get_rank()
    rng = np.random.default_rng(100 + r)
    mine = _aligned(n, dtype)
    mine[...] = rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, size=n)
    everyone = comm.allgather(mine.copy())
    expected = everyone[0].copy()
    for q in range(1, P):
        expected += everyone[q]
    _Reducer(comm, MPI, n, np.dtype(dtype), _aligned)(mine)
    assert mine.tobytes() == expected.tobytes()
    assert same_on_all_ranks(comm, [mine])


@pytest.mark.parametrize("sizes, acts, cost, batch_size, n", CONFIGS)
def test_equals_one_process_and_ranks_identical_after_every_step(comm, sizes, acts, cost,
                                                                batch_size, n):
    X, Y = data(sizes, cost, n)
    net = make(sizes, acts, cost)
    after_step = []
    original = net._apply_update

    def record(*args):
        original(*args)
        after_step.append(flat_params(net).tobytes())

    net._apply_update = record
    history = net.fit(X, Y, 6, batch_size, 0.1, momentum=0.6, l2=0.3, seed=2, comm=comm)
    steps = 6 * -(-n // batch_size)
    assert len(after_step) == steps
    everyone = comm.allgather(after_step)
    assert all(theirs == everyone[0] for theirs in everyone)  # bitwise, every step

    alone = make(sizes, acts, cost)
    single = alone.fit(X, Y, 6, batch_size, 0.1, momentum=0.6, l2=0.3, seed=2)
    p, q = flat_params(net), flat_params(alone)
    # f64: the ranks' partial sums round differently from one running sum; the issue's
    # bound after several epochs
    assert np.max(np.abs(p - q)) <= 1e-10 * np.max(np.abs(q))
    np.testing.assert_allclose(history.train_cost, single.train_cost, rtol=1e-10)
    assert same_on_all_ranks(comm, [np.array(history.train_cost)])


OPTIMIZERS = {
    "sgd-nesterov": lambda: SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda: Adam(0.01, weight_decay=0.001),
    "adamw": lambda: AdamW(0.01),
}


@pytest.mark.parametrize("weighting", ["none", "sample", "balanced"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_and_weights_equal_one_process_across_fits(comm, name, weighting):
    X, Y = data([6, 9, 3], "log_likelihood", 45)
    weights = {"sample_weight": np.random.default_rng(3).uniform(0.1, 2.0, 45)} \
        if weighting == "sample" else {"class_weight": "balanced"} if weighting == "balanced" \
        else {}
    net, alone = (make([6, 9, 3], ["tanh", "softmax"], "log_likelihood") for _ in range(2))
    ours, theirs = OPTIMIZERS[name](), OPTIMIZERS[name]()
    for call in range(2):  # the same optimizer carries on into the second fit
        h = net.fit(X, Y, 3, 8, optimizer=ours, seed=call, comm=comm, **weights)
        h1 = alone.fit(X, Y, 3, 8, optimizer=theirs, seed=call, **weights)
        assert same_on_all_ranks(comm, [flat_params(net)] + ours._arrays())
        p, q = flat_params(net), flat_params(alone)
        assert np.max(np.abs(p - q)) <= 1e-10 * np.max(np.abs(q))
        np.testing.assert_allclose(h.train_cost, h1.train_cost, rtol=1e-10)
        assert ours.steps == theirs.steps == 18 * (call + 1)  # 6 steps per epoch


def _shared_folder(comm, tmp_path_factory, name):
    """A folder every rank sees (rank 0's temporary one; the ranks share this machine)."""
    return comm.bcast(str(tmp_path_factory.mktemp(name)) if comm.Get_rank() == 0 else None)


@pytest.mark.parametrize("schedule", [lambda: StepDecay(2, gamma=0.5), lambda: Adaptive()])
def test_schedules_and_resume_from_rank_0s_checkpoint(comm, tmp_path_factory, monkeypatch,
                                                      schedule):
    X, Y = data([6, 9, 3], "log_likelihood", 40)
    path = _shared_folder(comm, tmp_path_factory, "ckpt") + "/run.npz"
    if comm.Get_rank() != 0:  # only rank 0 writes
        def refuse(*args, **kwargs):
            raise AssertionError("a rank other than 0 wrote the checkpoint")
        monkeypatch.setattr(bpcore._checkpoint.Checkpointer, "after_epoch", refuse)
    whole = make([6, 9, 3], ["tanh", "softmax"], "log_likelihood")
    h_whole = whole.fit(X, Y, 5, 8, optimizer=Adam(0.01), schedule=schedule(), seed=1,
                        comm=comm)
    part = make([6, 9, 3], ["tanh", "softmax"], "log_likelihood")
    part.fit(X, Y, 3, 8, optimizer=Adam(0.01), schedule=schedule(), seed=1, checkpoint=path,
             comm=comm)
    resumed = make([6, 9, 3], ["tanh", "softmax"], "log_likelihood", seed=7)
    h = resumed.fit(X, Y, 5, 8, optimizer=Adam(0.01), schedule=schedule(), seed=1,
                    checkpoint=path, resume=True, comm=comm)
    assert flat_params(resumed).tobytes() == flat_params(whole).tobytes()
    assert h.lr == h_whole.lr and h.train_cost == h_whole.train_cost
    assert same_on_all_ranks(comm, [flat_params(resumed)])


def test_ranks_that_resume_from_different_epochs_all_raise(comm, tmp_path_factory):
    X, Y = data([4, 5, 2], "quadratic", 20)
    folder = _shared_folder(comm, tmp_path_factory, "ckpt-one")
    if comm.Get_rank() == 0:  # a checkpoint that only rank 0 is given
        make([4, 5, 2], ["relu", "sigmoid"], "quadratic").fit(
            X, Y, 1, 5, 0.1, seed=0, checkpoint=f"{folder}/run.npz")
    comm.Barrier()
    path = f"{folder}/run.npz" if comm.Get_rank() == 0 else f"{folder}/other.npz"
    with pytest.raises(ValueError, match="differ in epochs done .resumed.: 1 on rank 0; 0 on"):
        make([4, 5, 2], ["relu", "sigmoid"], "quadratic").fit(
            X, Y, 3, 5, 0.1, seed=0, checkpoint=path, resume=True, comm=comm)


def test_two_runs_with_the_same_ranks_are_bitwise_identical(comm):
    X, Y = data([6, 8, 3], "log_likelihood", 90)
    nets = [make([6, 8, 3], ["relu", "softmax"], "log_likelihood") for _ in range(2)]
    for net in nets:
        net.fit(X, Y, 4, 10, 0.2, momentum=0.9, seed=5, comm=comm)
    assert flat_params(nets[0]).tobytes() == flat_params(nets[1]).tobytes()


def test_float32_ranks_identical_and_close_to_one_process(comm):
    X, Y = data([6, 16, 3], "log_likelihood", 80)
    net = make([6, 16, 3], ["tanh", "softmax"], "log_likelihood", dtype="float32")
    net.fit(X, Y, 3, 16, 0.1, seed=1, comm=comm)
    alone = make([6, 16, 3], ["tanh", "softmax"], "log_likelihood", dtype="float32")
    alone.fit(X, Y, 3, 16, 0.1, seed=1)
    assert same_on_all_ranks(comm, [flat_params(net)])
    # 15 steps, each of which may round its sums differently: a few (4) roundings of the
    # largest parameter per step
    p, q = flat_params(net), flat_params(alone)
    assert np.max(np.abs(p - q)) <= 15 * 4 * np.finfo(np.float32).eps * np.max(np.abs(q))


def test_networks_built_without_a_seed_start_from_rank_0(comm):
    X, Y = data([4, 5, 2], "quadratic", 30)
    net = Network([4, 5, 2], num_threads=1)  # a different random start on each rank
    alone = Network([4, 5, 2], num_threads=1)
    alone.weights, alone.biases = net.weights, net.biases
    alone._shuffle_rng.bit_generator.state = net._shuffle_rng.bit_generator.state
    net.fit(X, Y, 2, 8, 0.5, comm=comm)  # no seed: the network's generators
    alone.fit(X, Y, 2, 8, 0.5)  # each rank from its own start
    assert same_on_all_ranks(comm, [flat_params(net), net._shuffle_rng.random(3)])
    p, q = flat_params(net), flat_params(alone)
    from_mine = bool(np.max(np.abs(p - q)) <= 1e-10 * np.max(np.abs(q)))
    assert comm.allgather(from_mine) == [True] + [False] * (comm.Get_size() - 1)


def test_communicator_of_one_rank_trains_as_without(comm):
    X, Y = data([5, 7, 3], "log_likelihood", 50, seed=comm.Get_rank())
    alone = comm.Split(color=comm.Get_rank())
    try:
        a, b = (make([5, 7, 3], ["tanh", "softmax"], "log_likelihood") for _ in range(2))
        ha = a.fit(X, Y, 3, 7, 0.3, momentum=0.5, seed=4, comm=alone)
        hb = b.fit(X, Y, 3, 7, 0.3, momentum=0.5, seed=4)
    finally:
        alone.Free()
    assert flat_params(a).tobytes() == flat_params(b).tobytes()
    assert ha.train_cost == hb.train_cost


def test_validation_and_memory_mapped_data(comm, tmp_path_factory):
    X, Y = data([6, 8, 3], "log_likelihood", 70)
    folder = comm.bcast(str(tmp_path_factory.mktemp("mmap")) if comm.Get_rank() == 0 else None)
    if comm.Get_rank() == 0:
        np.save(f"{folder}/X.npy", X)
    comm.Barrier()
    mapped = np.load(f"{folder}/X.npy", mmap_mode="r")
    a, b = (make([6, 8, 3], ["relu", "softmax"], "log_likelihood") for _ in range(2))
    ha = a.fit(mapped, Y, 3, 9, 0.2, seed=3, validation_data=(X[:20], Y[:20]), comm=comm)
    hb = b.fit(X, Y, 3, 9, 0.2, seed=3, validation_data=(X[:20], Y[:20]), comm=comm)
    del mapped
    assert flat_params(a).tobytes() == flat_params(b).tobytes()
    assert ha.val_accuracy == hb.val_accuracy and len(ha.val_cost) == 3
    assert same_on_all_ranks(comm, [np.array(ha.val_cost + ha.train_cost)])


def test_only_rank_0_prints(comm, capsys):
    X, Y = data([4, 5, 2], "quadratic", 20)
    make([4, 5, 2], ["sigmoid", "sigmoid"], "quadratic").fit(X, Y, 2, 5, 0.5, seed=0,
                                                             verbose=True, comm=comm)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == (2 if comm.Get_rank() == 0 else 0)


def test_a_callback_stopping_on_one_rank_stops_all(comm):
    X, Y = data([4, 5, 2], "quadratic", 20)
    net = make([4, 5, 2], ["sigmoid", "sigmoid"], "quadratic")
    history = net.fit(X, Y, 10, 5, 0.5, seed=0, comm=comm,
                      callback=lambda epoch, h: comm.Get_rank() == 1 and epoch == 3)
    assert history.epochs == 3
    assert same_on_all_ranks(comm, [flat_params(net)])


def test_divergence_raises_on_every_rank_and_restores(comm):
    X, Y = data([4, 5, 2], "quadratic", 20)
    net = make([4, 5, 2], ["identity", "identity"], "quadratic")
    before = flat_params(net)
    with pytest.raises(DivergenceError):
        net.fit(X * 1e3, Y, 3, 5, 1e3, seed=0, comm=comm)
    assert flat_params(net).tobytes() == before.tobytes()


# -- bad setups: the same clear error on every rank, no hang ------------------------------
BAD = {  # what differs on rank r: the field the error names first, the change
    "batch_size": ("batch_size", lambda r: dict(batch_size=8 + r)),
    "lr": ("lr", lambda r: dict(lr=0.1 * (1 + r))),
    "momentum": ("momentum", lambda r: dict(momentum=0.25 * r)),
    "seed": ("seed", lambda r: dict(seed=r)),
    "epochs": ("epochs", lambda r: dict(epochs=2 + r)),
    "data shape": ("X", lambda r: dict(rows=30 + r)),
    "targets": ("Y", lambda r: dict(shift=float(r))),  # same shapes, other values
    "sizes": ("network", lambda r: dict(sizes=[4, 5 + r, 2])),
    "activations": ("network", lambda r: dict(acts=["tanh" if r else "relu", "sigmoid"])),
    "dtype": ("network", lambda r: dict(dtype="float32" if r else "float64")),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_ranks_given_different_setups_all_raise(comm, case):
    r = comm.Get_rank()
    kw = dict(batch_size=8, lr=0.1, momentum=0.0, seed=0, epochs=2, rows=30, shift=0.0,
              sizes=[4, 5, 2], acts=["relu", "sigmoid"], dtype="float64")
    field, change = BAD[case]
    kw.update(change(r))
    X, Y = data([4, 5, 2], "quadratic", kw["rows"])
    net = make(kw["sizes"], kw["acts"], "quadratic", kw["dtype"])
    with pytest.raises(ValueError, match=f"differ in {field}: .* on rank 0; .* on ranks? 1"):
        net.fit(X, Y + kw["shift"], kw["epochs"], kw["batch_size"], kw["lr"],
                momentum=kw["momentum"], seed=kw["seed"], comm=comm)


def test_a_rank_whose_arguments_fail_stops_the_others(comm):
    X, Y = data([4, 5, 2], "quadratic", 30)
    net = make([4, 5, 2], ["relu", "sigmoid"], "quadratic")
    if comm.Get_rank() == 1:
        with pytest.raises(ValueError, match="X must have 4 columns"):
            net.fit(X[:, :3], Y, 2, 8, 0.1, comm=comm)
    else:
        with pytest.raises(DistributedError, match="failed on rank 1 before training.*"
                                                   "X must have 4 columns"):
            net.fit(X, Y, 2, 8, 0.1, comm=comm)


def test_comm_must_be_a_communicator():
    net = make([4, 5, 2], ["relu", "sigmoid"], "quadratic")
    X, Y = data([4, 5, 2], "quadratic", 10)
    with pytest.raises(TypeError, match="comm must be an mpi4py intracommunicator.*got "
                                        "builtins.int"):
        net.fit(X, Y, 1, 5, 0.1, comm=3)


# -- stops during training -----------------------------------------------------------------
def _on_step(net, step, action):
    """Run ``action`` in the ``step``-th call of net._gradient_sum (0-based)."""
    original, calls = net._gradient_sum, [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == step + 1:
            action()
        return original(*args, **kwargs)

    net._gradient_sum = wrapped


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_last_epoch(comm):
    X, Y = data([4, 6, 2], "quadratic", 40)
    net = make([4, 6, 2], ["tanh", "sigmoid"], "quadratic")
    if comm.Get_rank() == 1:  # a real SIGINT, in the 3rd epoch (4 steps per epoch)
        _on_step(net, 9, lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(KeyboardInterrupt) as caught:
        net.fit(X, Y, 50, 10, 0.3, momentum=0.5, seed=3, comm=comm)
    assert caught.value.history.epochs == 2
    again = make([4, 6, 2], ["tanh", "sigmoid"], "quadratic")
    again.fit(X, Y, 2, 10, 0.3, momentum=0.5, seed=3, comm=comm)
    assert flat_params(net).tobytes() == flat_params(again).tobytes()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_between_epochs_on_one_rank_stops_every_rank_after_that_epoch(comm):
    X, Y = data([4, 6, 2], "quadratic", 40)
    net = make([4, 6, 2], ["tanh", "sigmoid"], "quadratic")

    def callback(epoch, history):  # after the epoch, as validation is
        if comm.Get_rank() == 1 and epoch == 2:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="interrupted on rank 1") as caught:
        net.fit(X, Y, 50, 10, 0.3, seed=3, comm=comm, callback=callback)
    assert caught.value.history.epochs == 2
    again = make([4, 6, 2], ["tanh", "sigmoid"], "quadratic")
    again.fit(X, Y, 2, 10, 0.3, seed=3, comm=comm)
    assert flat_params(net).tobytes() == flat_params(again).tobytes()


def test_an_error_on_one_rank_during_training_stops_every_rank(comm):
    X, Y = data([4, 6, 2], "quadratic", 40)
    net = make([4, 6, 2], ["tanh", "sigmoid"], "quadratic")
    before = flat_params(net)

    def fail():
        raise MemoryError("injected")

    if comm.Get_rank() == 0:
        _on_step(net, 5, fail)
        with pytest.raises(MemoryError, match="injected"):
            net.fit(X, Y, 5, 10, 0.3, seed=3, comm=comm)
    else:
        with pytest.raises(DistributedError, match="rank 0 failed during training"):
            net.fit(X, Y, 5, 10, 0.3, seed=3, comm=comm)
    assert same_on_all_ranks(comm, [flat_params(net)])
    assert not np.array_equal(flat_params(net), before)  # epoch 1 stays done
