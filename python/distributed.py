"""Data-parallel training over MPI: ``Network.fit(..., comm=MPI.COMM_WORLD)``.

Every rank of the communicator holds the whole training set (it may be
memory-mapped) and the same network.  Each step's global mini-batch of
``batch_size`` examples, taken from the permutation all ranks draw alike, is
split into P contiguous parts, one per rank; each rank sums the gradients of its
part in compiled code (``Network._gradient_sum``), the P sums are added in one
exchange of the flat gradient buffer, and every rank applies the same update
(``Network._apply_update``) to the same parameters.  The loop over steps is
Python; everything inside a step runs in the kernels, in NumPy or in MPI, on
buffers allocated once per ``fit``.

The reduction: fixed order, exact, and bandwidth-optimal
    An ``MPI_Allreduce`` may add the ranks' contributions in any grouping, and
    the grouping may differ between calls, message sizes, libraries and even
    ranks, so its float result is not reproducible.  Here MPI only moves bytes:
    the flat gradient of n entries is cut into P chunks (cache-line aligned);
    an ``Alltoallv`` gives rank r the r-th chunk of every rank's sum; rank r
    adds those P pieces in rank order 0, 1, ..., P-1 (NumPy, elementwise: the
    same operations whatever the MPI library); an ``Allgatherv`` gives every
    rank all reduced chunks.  Each entry of the sum is thus computed once, by
    one rank, in one fixed order: the parameters are bitwise identical on all
    ranks after every step, and two runs with the same P are bitwise identical.
    This is the reduce-scatter + allgather scheme of bandwidth-optimal
    allreduces: each rank sends and receives 2 (P-1)/P of the buffer, as a ring
    allreduce does.  Its latency is that of an all-to-all (P-1 pairwise
    rounds for large buffers), not log P; see docs/distributed.md for the cost.

One small collective per step besides it
    Before the exchange the ranks combine two flags (a Ctrl-C seen, a local
    failure) with one ``Allreduce`` of two integers; if either is set, no rank
    exchanges or updates, and every rank raises (``KeyboardInterrupt`` or
    :class:`DistributedError`), so that nobody is left waiting in a collective.
    While a distributed epoch runs, SIGINT only sets the flag (its default
    handler is swapped for one that records it): an exception thrown between
    two collectives would leave the other ranks blocked.

Before training: one agreement
    Ranks given different data shapes, architectures, dtypes, kernel builds or
    arguments would deadlock or silently diverge.  ``fit`` gathers a short
    description of each rank's setup (``allgather`` of a few strings, once) and
    raises the same ``ValueError`` on every rank when they differ; a rank whose
    own checks failed sends its error instead, and the others raise
    :class:`DistributedError` naming it.  Arrays are compared by shape, dtype
    and a digest of a sample of their rows (a full hash of a memory-mapped data
    set would read all of it on every rank).  Then rank 0's parameters and its
    shuffling generator are broadcast, so that networks built without a seed
    start alike.

A communicator of size 1 trains exactly as without one.  mpi4py is imported
only when a communicator is given.
"""
from __future__ import annotations

import hashlib
import numbers
import os
import signal
import threading
from contextlib import contextmanager

import numpy as np

#: Settings each rank may choose for itself: what it prints or calls back.
LOCAL_SETTINGS = frozenset({"verbose", "progress", "callback"})

#: Rows of an array hashed to compare it across ranks.
_SAMPLED_ROWS = 32


class DistributedError(RuntimeError):
    """Another rank of a distributed ``fit`` failed; this rank stopped with it."""


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            f"fit(comm=...) needs mpi4py and an MPI library ({exc}): pip install "
            "\".[mpi]\" in bpcore's source tree (or mpi4py built against your cluster's MPI)") from None
    return MPI


def _part(m: int, P: int, r: int) -> tuple[int, int]:
    """Rows lo..hi of a mini-batch of m examples that rank r of P takes (contiguous)."""
    chunk, rest = divmod(m, P)
    lo = r * chunk + min(r, rest)
    return lo, lo + chunk + (r < rest)


# -- describing a rank's setup ------------------------------------------------------------
def _digest(array: np.ndarray) -> str:
    """Shape, dtype and a hash of up to ``_SAMPLED_ROWS`` evenly spaced rows."""
    if array.ndim == 0:
        return repr(array.item())
    n = array.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, _SAMPLED_ROWS)).astype(np.intp)) if n else []
    sample = np.ascontiguousarray(array[rows])
    h = hashlib.blake2b(sample.tobytes(), digest_size=8).hexdigest()
    return f"array(shape={array.shape}, dtype={array.dtype.name}, sampled rows {h})"


def describe(value) -> str:
    """A short text that is equal on two ranks when ``value`` means the same there."""
    if value is None or isinstance(value, (bool, str, bytes, np.bool_)):
        return repr(value)
    if isinstance(value, numbers.Integral):  # 3 and np.int64(3) alike
        return repr(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, numbers.Number):
        return repr(complex(value))
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    if isinstance(value, np.ndarray):
        return _digest(value)
    if isinstance(value, (list, tuple)):
        if len(value) > 8:  # data given as nested lists
            try:
                return _digest(np.asarray(value))
            except (ValueError, TypeError):
                pass
        return "(" + ", ".join(describe(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in sorted(value.items())) + "}"
    state = getattr(value, "state_dict", None)
    if callable(state):  # an optimizer: its hyper-parameters and state
        return f"{type(value).__qualname__}{describe(state())}"
    fields = getattr(value, "__dict__", None)
    if fields:  # a schedule and the like: its public attributes
        public = {k: v for k, v in fields.items() if not k.startswith("_")}
        return f"{type(value).__qualname__}{describe(public)}"
    return type(value).__qualname__  # a function: only its kind can be compared


def _disagreement(name: str, values: list[str]) -> str:
    ranks: dict[str, list[int]] = {}
    for rank, value in enumerate(values):
        ranks.setdefault(value, []).append(rank)
    return f"{name}: " + "; ".join(
        f"{value} on rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}"
        for value, rs in ranks.items())


# -- Ctrl-C -------------------------------------------------------------------------------
@contextmanager
def _sigint_as_flag():
    """Within the block, Ctrl-C sets ``flag["hit"]`` instead of raising KeyboardInterrupt.

    Only where Python delivers SIGINT (the main thread) and only over its
    default handler; a handler of the user's is left alone.  A second Ctrl-C
    raises at once (a way out of a job that hangs for another reason).
    """
    flag = {"hit": False}
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield flag
        return

    def record(signum, frame):
        if flag["hit"]:
            raise KeyboardInterrupt
        flag["hit"] = True

    previous = signal.signal(signal.SIGINT, record)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the exact sum of the ranks' gradients --------------------------------------------------
class _Reducer:
    """In place: buffer <- sum over ranks of every rank's buffer, in rank order (see above)."""

    def __init__(self, comm, MPI, n: int, dtype: np.dtype, aligned):
        P, r = comm.Get_size(), comm.Get_rank()
        line = max(1, 64 // dtype.itemsize)  # entries per cache line
        share = -(-n // P)
        chunk = -(-share // line) * line  # ceil(n / P), rounded up to whole lines
        self.starts = [min(q * chunk, n) for q in range(P)]
        self.counts = [min(chunk, n - s) for s in self.starts]
        self.mine = slice(self.starts[r], self.starts[r] + self.counts[r])
        count, width = self.counts[r], max(self.counts[r], 1)
        self.received = aligned((P, width), dtype)  # row q: rank q's piece of our chunk
        self.receive = [self.received, ([count] * P, [q * width for q in range(P)])]
        self.send = (self.counts, self.starts)
        self.type = MPI.DOUBLE if dtype == np.float64 else MPI.FLOAT
        self.comm, self.MPI = comm, MPI

    def __call__(self, buffer: np.ndarray) -> None:
        self.comm.Alltoallv([buffer, self.send, self.type], [*self.receive, self.type])
        count, pieces = self.mine.stop - self.mine.start, self.received
        if count:
            total = buffer[self.mine]
            np.add(pieces[0, :count], pieces[1, :count], out=total)
            for q in range(2, pieces.shape[0]):
                np.add(total, pieces[q, :count], out=total)
        self.comm.Allgatherv(self.MPI.IN_PLACE, [buffer, self.send, self.type])


class Group:
    """The ranks of one distributed ``fit``: its agreement, its steps, its stops."""

    def __init__(self, comm, MPI, net):
        self.comm, self.MPI, self.net = comm, MPI, net
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.agreed = False
        self.sigint = {"hit": False}  # set by fit() for its duration (see _sigint_as_flag)
        self._buffers = None
        self._flags = np.zeros(2, dtype=np.int32)

    @classmethod
    def join(cls, comm, net) -> "Group | None":
        """The group of ``comm`` (an mpi4py intracommunicator); None if it has one rank."""
        MPI = _mpi()
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise TypeError("comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, "
                            f"got {type(comm).__module__}.{type(comm).__qualname__}")
        if comm.Get_size() == 1:
            return None
        return cls(comm, MPI, net)

    # -- before training ------------------------------------------------------------
    def _gather(self, entry):
        """Every rank's (error, description) pair; raise on all ranks if any failed."""
        entries = self.comm.allgather(entry)
        self.agreed = True
        failed = [(r, e) for r, (e, _) in enumerate(entries) if e is not None]
        if failed:
            if entry[0] is not None:
                return None  # this rank re-raises its own error
            r, error = failed[0]
            raise DistributedError(f"fit(comm=...) failed on rank {r} before training, so every "
                                   f"rank stops: {error}")
        return [d for _, d in entries]

    def refuse(self, exc: BaseException) -> None:
        """Take part in the agreement with this rank's error (then the caller re-raises)."""
        self._gather((f"{type(exc).__name__}: {exc}", None))

    def agree(self, rng, data: dict, settings: dict) -> None:
        """Check that all ranks were given the same setup; start from rank 0's state.

        ``data``: the checked arrays (training set, validation set, weights);
        ``settings``: fit's other arguments (``LOCAL_SETTINGS`` are not compared).
        """
        from ._dispatch import kernels
        from . import __version__
        net = self.net
        mine = {"bpcore": __version__, "kernels": kernels.__name__.rpartition(".")[2],
                "network": repr(net)}
        mine.update((name, describe(value)) for name, value in data.items())
        mine.update((name, describe(value)) for name, value in sorted(settings.items())
                    if name not in LOCAL_SETTINGS)
        everyone = self._gather((None, mine))
        different = [_disagreement(name, [d.get(name, "(absent)") for d in everyone])
                     for name in mine if len({d.get(name) for d in everyone}) > 1]
        if different:
            raise ValueError("fit(comm=...): every rank must be given the same data, network "
                             "and arguments, but they differ in " + " | ".join(different))
        self.comm.Bcast([net._params, self._type()], root=0)
        rng.bit_generator.state = self.comm.bcast(rng.bit_generator.state, root=0)

    def _type(self):
        return self.MPI.DOUBLE if self.net.dtype == np.float64 else self.MPI.FLOAT

    # -- training -------------------------------------------------------------------
    def end_epoch(self, stop: bool, history) -> bool:
        """Whether to stop: True on every rank if ``stop`` (a callback's) is on any.

        A Ctrl-C that arrived since the epoch's last step (during validation, say)
        raises KeyboardInterrupt here on every rank, with ``history`` attached, as
        ``fit`` does for one during an epoch (this epoch is complete: nothing to undo).
        """
        flags = self._flags
        flags[0] = self.rank + 1 if self.sigint["hit"] else 0
        flags[1] = 1 if stop else 0
        self.comm.Allreduce(self.MPI.IN_PLACE, [flags, self.MPI.INT], op=self.MPI.MAX)
        if flags[0]:
            exc = KeyboardInterrupt(f"interrupted on rank {flags[0] - 1}")
            exc.history = history
            raise exc
        return bool(flags[1])

    def _buffers_for(self, X, Y, rows: int):
        from .network import _aligned
        net, b = self.net, self._buffers
        if b is None or b["X"].shape[0] < rows or b["costs"].shape[0] != X.shape[0]:
            self._buffers = b = {
                "X": _aligned((rows, X.shape[1]), net.dtype),
                "Y": _aligned((rows, Y.shape[1]), net.dtype),
                "costs": np.zeros(X.shape[0]),
                "w": _aligned(rows, net.dtype),
                "grads": _aligned(net._layout.n_params, net.dtype),
                "reduce": _Reducer(self.comm, self.MPI, net._layout.n_params, net.dtype,
                                   _aligned),
            }
        return b

    def _stop_if_any(self, failure) -> None:
        """The per-step flags: raise on every rank if any rank failed or saw Ctrl-C."""
        flags = self._flags
        flags[0] = self.rank + 1 if self.sigint["hit"] else 0
        flags[1] = self.rank + 1 if failure is not None else 0
        self.comm.Allreduce(self.MPI.IN_PLACE, [flags, self.MPI.INT], op=self.MPI.MAX)
        if failure is not None:
            raise failure
        if flags[1]:
            raise DistributedError(f"rank {flags[1] - 1} failed during training (see its "
                                   "error), so every rank stops")
        if flags[0]:
            raise KeyboardInterrupt(f"interrupted on rank {flags[0] - 1}")

    def train_epoch(self, X, Y, order, batch_size, optimizer, factors, workspace,
                    bias_norms=None):
        """One epoch of data-parallel steps, as ``Network._train_epoch`` takes one alone:
        the costs of all examples in visiting order (the same array on every rank), and
        with ``bias_norms`` the speed of learning of each layer, from the combined sums."""
        net, P, r, n = self.net, self.size, self.rank, X.shape[0]
        b = self._buffers_for(X, Y, -(-min(batch_size, n) // P))
        costs, grads, reduce = b["costs"], b["grads"], b["reduce"]
        costs[...] = 0
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            lo, hi = _part(m, P, r)
            k, failure = hi - lo, None
            try:
                if k:
                    rows = order[start + lo:start + hi]
                    np.take(X, rows, axis=0, out=b["X"][:k], mode="clip")
                    np.take(Y, rows, axis=0, out=b["Y"][:k], mode="clip")
                    w = None
                    if factors is not None:
                        w = np.take(factors, rows, out=b["w"][:k], mode="clip")
                    net._gradient_sum(b["X"][:k], b["Y"][:k], w, out=grads, workspace=workspace,
                                      costs=costs[start + lo:start + hi])
                else:  # fewer examples than ranks in this mini-batch
                    grads[...] = 0
            except KeyboardInterrupt:  # raised only where SIGINT is not a flag
                self.sigint["hit"] = True
            except Exception as exc:
                failure = exc
            self._stop_if_any(failure)
            reduce(grads)
            if bias_norms is not None:  # ||dC/db^l|| of the global mini-batch
                layout = net._layout
                for l in range(1, len(layout.sizes)):
                    b0 = layout.b_off[l]
                    bias_norms[l - 1] += np.sqrt(np.sum(
                        grads[b0:b0 + layout.sizes[l]].astype(np.float64) ** 2)) / m
            net._apply_update(grads, 1.0 / m, optimizer)
        # Each position's cost was written by exactly one rank, the others hold +0.0, so
        # the sum is exact whatever order MPI adds in.
        self.comm.Allreduce(self.MPI.IN_PLACE, costs, op=self.MPI.SUM)
        return costs


def fit(base_fit, net, *args, comm, **options):
    """``base_fit(*args, comm=group, **options)`` for the ranks of ``comm``.

    A rank that fails before the agreement (a bad argument) still takes part in
    it, so that the others raise instead of waiting for it.
    """
    group = Group.join(comm, net)
    if group is None:
        return base_fit(*args, comm=None, **options)
    try:
        with _sigint_as_flag() as group.sigint:
            history = base_fit(*args, comm=group, **options)
    except BaseException as exc:
        if not group.agreed:
            group.refuse(exc)
        raise
    if group.sigint["hit"]:  # after the ranks' last exchange: this rank's alone
        exc = KeyboardInterrupt()
        exc.history = history
        raise exc
    return history


__all__ = ["DistributedError"]
