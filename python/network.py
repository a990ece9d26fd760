"""The compiled network: the Python face of the Cython kernels.

All parameters live in one flat buffer in the layout of ``bpcore/_kernels.pyx``
(W^1, b^1, W^2, b^2, ...); ``weights`` and ``biases`` are views into it, so
writing to them changes the network.  Each public method checks its
arguments, allocates what the kernels need, and makes one call that runs
without the GIL: one call per epoch in ``fit``, never one per mini-batch.
"""
from __future__ import annotations

import threading
import zipfile
import zlib
from contextlib import contextmanager

import numpy as np

from ._dispatch import kernels as _kernels
from ._base import BaseNetwork, DivergenceError, History
from ._config import ACTIVATIONS, COSTS, make_architecture, resolve_dtype
from ._threads import check_num_threads, get_num_threads
from ._checks import as_path
from ._checkpoint import atomic_write

#: Whether the kernels were built with OpenMP (fixed for the process).
_OPENMP = _kernels.compiled_info()["openmp"]

#: Work per mini-batch step below which a network runs on one thread, whatever
#: its ``num_threads`` (results do not depend on the count, only the speed does:
#: "never slower with 2 threads").  Handing pieces of a step to a second core costs
#: the parameters and activations that move between the cores' caches and the
#: waits for the last piece, a few microseconds per step; below this size that is
#: more than the second core saves (docs/performance.md has the measurements).
_MIN_PARALLEL_FLOP = 4_000_000

#: Examples per block of a thread in ``feedforward``/``cost`` (bounds the scratch memory;
#: as many as a mini-batch that takes the packed forward product, _gemm.h's
#: BP_FWD_PK_ROWS, so that a large call's blocks run that form at its speed).
_FORWARD_CHUNK = 128

#: Where every buffer handed to the kernels starts (bytes; see "Alignment" in _kernels.pyx).
_ALIGNMENT = _kernels.BUFFER_ALIGNMENT

#: Version of the ``save`` file format; ``load`` reads this version and older.
FORMAT_VERSION = 1


def _aligned(shape, dtype, zero: bool = True) -> np.ndarray:
    """A C-contiguous array of ``shape`` whose data start on an ``_ALIGNMENT``-byte boundary.

    NumPy's own buffers start 16 bytes into a line; the kernels' 64-byte vector
    loads from them would each touch two cache lines.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = (np.zeros if zero else np.empty)(nbytes + _ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class Network(BaseNetwork):
    """A fully-connected network trained by backpropagation and mini-batch SGD.

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, inputs first: ``[784, 30, 10]`` is Nielsen's network.
    activations : str or sequence of str
        One name for every layer, or one per layer (``len(sizes) - 1``):
        ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu`` (slope 0.01),
        ``identity``, ``softmax`` (output layer, with ``log_likelihood`` only).
    cost : str
        ``quadratic`` (1/2 ||a - y||^2, network.py), ``squared_error``
        (||a - y||^2, 3Blue1Brown's C_0), ``cross_entropy`` (binary, sigmoid
        output), ``log_likelihood`` (softmax output). The cost of a batch is the
        mean of the per-example costs.
    dtype : {"float64", "float32"}
        Precision of parameters and arithmetic.  Inputs are converted to it.
    init : {"scaled_gaussian", "gaussian", "xavier", "he"}
        Initial parameters, see :func:`bpcore._config.init_parameters`.
    seed : int, optional
        Seeds initialisation and (unless ``fit`` gets its own) shuffling.
    num_threads : int, optional
        Most OpenMP threads this network uses, 1 to 1024.  Default:
        :func:`bpcore.get_num_threads`.  A mini-batch step too small to pay for
        the synchronisation of a second thread (under 4 MFLOP, e.g. 784-30-10 at
        batch 10) runs on one thread whatever the count; the results are bitwise
        the same for every count.

    Examples
    --------
    >>> import numpy as np
    >>> from bpcore import Network
    >>> net = Network([2, 8, 1], activations=["tanh", "sigmoid"], cost="cross_entropy", seed=1)
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    >>> Y = np.array([[0], [1], [1], [0]], dtype=float)
    >>> history = net.fit(X, Y, epochs=2000, batch_size=4, lr=1.0, seed=0)
    >>> np.round(net.feedforward(X)[:, 0]).tolist()
    [0.0, 1.0, 1.0, 0.0]
    """

    # The kernels multiply every delta by every input, zeros included: a non-finite
    # input leaves W^1 non-finite after the first epoch (bpcore._data).
    _training_proves_inputs_finite = True

    _trains_over_mpi = True

    def __init__(self, sizes, activations="sigmoid", cost="quadratic", dtype="float64",
                 init="scaled_gaussian", seed=None, num_threads=None):
        self._num_threads = check_num_threads(num_threads)
        self._busy = threading.RLock()
        self._team_memory = None
        super().__init__(sizes, activations, cost, dtype, init, seed)

    def _allocate(self, biases, weights):
        arch = self._arch
        self._layout = _kernels.Layout(arch.sizes, [ACTIVATIONS.index(a) for a in arch.activations],
                                       COSTS.index(arch.cost), arch.dtype.itemsize)
        # zeros: the alignment gaps between layers (never read) stay finite
        self._params, self._grads = (_aligned(self._layout.n_params, arch.dtype)
                                     for _ in range(2))
        self._weights = self._views(self._params, "w")
        self._biases = self._views(self._params, "b")
        for view, value in zip(self._weights + self._biases, weights + biases):
            view[...] = value

    def _views(self, flat: np.ndarray, kind: str) -> list[np.ndarray]:
        """Per-layer views of W^l (kind "w") or b^l (kind "b") into a flat buffer."""
        sizes, views = self._layout.sizes, []
        for l in range(1, len(sizes)):
            if kind == "w":
                start = self._layout.w_off[l]
                views.append(flat[start:start + sizes[l] * sizes[l - 1]].reshape(sizes[l], sizes[l - 1]))
            else:
                start = self._layout.b_off[l]
                views.append(flat[start:start + sizes[l]])
        return views

    # -- parameters ----------------------------------------------------------------
    @property
    def weights(self) -> list[np.ndarray]:
        """W^l for l = 1..L, shape (n_l, n_{l-1}): ``weights[l-1][j, k]`` is w^l_jk (live views)."""
        return list(self._weights)

    @weights.setter
    def weights(self, values) -> None:
        self._assign("weights", self._weights, values)

    @property
    def biases(self) -> list[np.ndarray]:
        """b^l for l = 1..L, shape (n_l,) (live views)."""
        return list(self._biases)

    @biases.setter
    def biases(self, values) -> None:
        self._assign("biases", self._biases, values)

    def _assign(self, name, views, values) -> None:
        values = list(values)
        if len(values) != len(views):
            raise ValueError(f"{name} needs {len(views)} arrays, got {len(values)}")
        arrays = []
        for l, (view, value) in enumerate(zip(views, values), start=1):
            value = np.asarray(value)
            if value.shape != view.shape:
                raise ValueError(f"{name}[{l - 1}] must have shape {view.shape}, got {value.shape}")
            if value.dtype.kind not in "biuf":
                raise ValueError(f"{name}[{l - 1}] must be real numbers, got dtype {value.dtype}")
            with np.errstate(over="ignore"):  # overflow is reported just below
                value = value.astype(self.dtype)
            if not np.isfinite(value).all():
                raise ValueError(f"{name}[{l - 1}] must be finite in {self.dtype.name}")
            arrays.append(value)
        for view, value in zip(views, arrays):
            view[...] = value

    @property
    def num_threads(self) -> int:
        """Threads the kernels use for this network (1 in a build without OpenMP)."""
        if not _OPENMP:
            return 1
        return self._num_threads if self._num_threads is not None else get_num_threads()

    @num_threads.setter
    def num_threads(self, n) -> None:
        self._num_threads = check_num_threads(n)

    # -- the math, delegated to the kernels -------------------------------------------
    def _state_arrays(self):
        return [self._params]

    def _bind_optimizer(self, optimizer):
        return optimizer._bind(self._layout.n_params, self.dtype, _aligned)

    def _scratch(self, rows: int) -> np.ndarray:
        return _aligned((rows, self._layout.units), self.dtype, zero=False)

    def _fit_workspace(self, batch_size):
        """The three training workspaces (Z, A, D), for all epochs of one ``fit``.

        Fresh ones per epoch would be page-faulted anew inside every epoch (3 x 21 MB
        for a 1024-4096-4096-1024 network at batch 512).
        """
        return tuple(self._scratch(batch_size) for _ in range(3))

    @contextmanager
    def _exclusive(self):
        """Hold the network for a call; refuse one from another thread meanwhile.

        The kernels run without the GIL, so two Python threads could otherwise
        run ``fit`` and ``feedforward`` on the same parameters at once.  The lock
        is reentrant: a ``fit`` callback may use the network it is called from.
        """
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                "this Network is in use by another thread (fit, feedforward, backprop or "
                "cost are running); share a network between threads only under your own "
                "lock, or give each thread its own network")
        try:
            yield
        finally:
            self._busy.release()

    def _threads_for(self, rows: int) -> int:
        """Threads for a pass over mini-batches of ``rows`` examples: the network's
        count, or one when a step is under ``_MIN_PARALLEL_FLOP``."""
        if self.num_threads == 1:
            return 1
        flop = 6 * rows * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        return self.num_threads if flop >= _MIN_PARALLEL_FLOP else 1

    def _forward_call(self, X, Y=None):
        threads = self._threads_for(X.shape[0])
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        costs = None if Y is None else np.empty(X.shape[0])
        rows = threads * min(_FORWARD_CHUNK, -(-X.shape[0] // threads))
        with self._exclusive():
            _kernels.forward(self._layout, self._params, X, out, self._scratch(rows),
                             self._scratch(rows), Y, costs, threads)
        return out, costs

    def _forward(self, X):
        return self._forward_call(X)[0]

    def _example_costs(self, X, Y):
        return self._forward_call(X, Y)[1]

    def _outputs_and_costs(self, X, Y):
        return self._forward_call(X, Y)  # the kernel writes a^L as it computes C_x

    def _gradient_sum(self, X, Y, sample_weight=None, *, costs=None, workspace=None,
                      out=None) -> np.ndarray:
        """sum over the rows x of X of w_x dC_x/dtheta, a flat buffer in the layout of
        ``_params`` (aligned; its gaps zero), for data-parallel training to allreduce.

        X, Y and ``sample_weight`` (None: w = 1) are taken as they are: C-contiguous,
        of the network's dtype, checked by the caller.  ``costs`` (or None) receives
        each row's C_x; ``workspace`` (Z, A, D of at least len(X) rows) and ``out``
        (an aligned buffer like ``_params``, gaps zero) are used instead of new ones,
        as bpcore.distributed does at every step.
        """
        n = X.shape[0]
        grads = _aligned(self._layout.n_params, self.dtype) if out is None else out
        w = None if sample_weight is None else np.ascontiguousarray(sample_weight, self.dtype)
        Z, A, D = workspace if workspace is not None else (self._scratch(n) for _ in range(3))
        with self._exclusive():
            _kernels.gradient(self._layout, self._params, grads, X, Y, w, Z, A, D,
                              self._threads_for(n), costs)
        return grads

    def _apply_update(self, grad_sum: np.ndarray, scale: float, optimizer) -> None:
        """One step of ``optimizer`` from a flat gradient sum (``_gradient_sum``'s layout)
        with g = scale * grad_sum: the step ``fit`` takes after a mini-batch of m
        examples has scale = 1/m."""
        state = self._bind_optimizer(optimizer)
        hyper = optimizer._hyper(_kernels)
        with self._exclusive():
            _kernels.apply_update(self._layout, self._params, grad_sum,
                                  state if state.shape[0] else None, hyper, float(scale),
                                  self._threads_for_params())
        optimizer._t = hyper.t

    def _threads_for_params(self) -> int:
        """Threads for a pass over the parameters alone (as the step of one example)."""
        return self._threads_for(1)

    def _gradient(self, X, Y, w=None):
        grads = self._gradient_sum(X, Y, w)
        total = X.shape[0] if w is None else float(np.sum(w))
        grads /= total
        return self._views(grads, "b"), self._views(grads, "w")

    def _team_memory_for(self, threads: int) -> np.ndarray:
        """What the kernels keep of each thread between epochs: its speed estimates and
        whether it is excluded for holding the others up (bpcore/_sched.h)."""
        if self._team_memory is None or self._team_memory.shape[0] != threads:
            self._team_memory = np.zeros((threads, _kernels.TEAM_MEMORY))
        return self._team_memory

    def _train_epoch(self, X, Y, order, batch_size, optimizer, factors, workspace,
                     bias_norms=None):
        threads = self._threads_for(min(batch_size, X.shape[0]))
        costs = np.empty(X.shape[0])
        state = self._bind_optimizer(optimizer)
        hyper = optimizer._hyper(_kernels)
        with self._exclusive():
            try:
                _kernels.train_epoch(self._layout, self._params, self._grads,
                                     state if state.shape[0] else None, hyper, X, Y, order,
                                     factors, batch_size, *workspace, costs, threads,
                                     bias_norms=bias_norms,
                                     team_memory=self._team_memory_for(threads))
            finally:
                optimizer._t = hyper.t
        return costs

    # -- pickling ------------------------------------------------------------------
    def __reduce__(self):
        """Pickle by value: architecture, parameters, thread setting and shuffle state."""
        state = {"weights": [w.copy() for w in self._weights],
                 "biases": [b.copy() for b in self._biases],
                 "shuffle_state": self._shuffle_rng.bit_generator.state}
        return (_unpickle, (type(self), self.sizes, self.activations, self.cost_name,
                            self.dtype.name, self.init, self._num_threads, state))

    # -- files ---------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the network to ``path`` as an ``.npz`` archive (no pickle), atomically.

        Holds ``format_version``, ``sizes``, ``activations``, ``cost``, ``dtype``
        and ``w1..wL``, ``b1..bL``.  The file is written next to ``path`` and
        renamed over it, so an interrupted save never leaves a half-written model.
        It gets the permissions ``open(path, "w")`` would give it (those of the
        file it replaces, else 0666 less the umask).  Raises
        ``FileNotFoundError`` if the directory of ``path`` does not exist.
        """
        path = as_path("path", path)
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "sizes": np.array(self.sizes, dtype=np.int64),
            "activations": np.array(self.activations),
            "cost": np.array(self.cost_name),
            "dtype": np.array(self.dtype.name),
        }
        for l, (w, b) in enumerate(zip(self._weights, self._biases), start=1):
            arrays[f"w{l}"] = w
            arrays[f"b{l}"] = b
        with atomic_write(path) as file:
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path, *, num_threads=None) -> "Network":
        """Read a network written by :meth:`save`; never executes code from the file.

        Raises ``ValueError`` naming the problem for anything that is not such a
        file: not a zip archive, truncated, missing or extra arrays, an unknown
        format version, shapes or dtype that disagree with the recorded
        architecture, non-finite parameters.
        """
        path = as_path("path", path)
        try:
            # opened here, not by np.load, which leaks its file when the zip is unreadable
            with open(path, "rb") as file:
                # np.load takes what is neither a zip nor a .npy for a pickle, and its
                # refusal suggests allow_pickle=True: advice never to give about a model file
                magic = file.read(len(_NPY_MAGIC))
                file.seek(0)
                if magic == _NPY_MAGIC:
                    raise ValueError("it holds a single .npy array, not an .npz archive")
                if not magic.startswith(_ZIP_MAGIC):
                    raise ValueError("it is not an .npz archive (a zip file)")
                with np.load(file, allow_pickle=False) as archive:
                    contents = {name: _member(archive, name) for name in archive.files}
            for name, value in contents.items():
                if not isinstance(value, np.ndarray):
                    raise ValueError(f"member {name!r} is not a .npy array")
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error,
                NotImplementedError, RuntimeError) as exc:
            # zipfile raises NotImplementedError for an unknown compression method or
            # zip version, RuntimeError for an encrypted member
            raise ValueError(f"{path!r} is not a readable bpcore model file: {exc}") from None
        return cls._from_arrays(path, contents, num_threads)

    @classmethod
    def _from_arrays(cls, path, contents, num_threads):
        def bad(why):
            return ValueError(f"{path!r} is not a valid bpcore model file: {why}")

        header = ("format_version", "sizes", "activations", "cost", "dtype")
        missing = [k for k in header if k not in contents]
        if missing:
            raise bad(f"missing {missing}")
        version = contents["format_version"]
        if version.shape != () or version.dtype.kind not in "iu":
            raise bad("format_version is not an integer")
        if not 1 <= int(version) <= FORMAT_VERSION:
            raise bad(f"format version {int(version)} is not supported (this bpcore reads "
                      f"1..{FORMAT_VERSION})")
        sizes, acts = contents["sizes"], contents["activations"]
        if sizes.ndim != 1 or sizes.dtype.kind not in "iu":
            raise bad("sizes is not a 1-D integer array")
        if acts.ndim != 1 or acts.dtype.kind != "U":
            raise bad("activations is not a 1-D array of names")
        for key in ("cost", "dtype"):
            if contents[key].shape != () or contents[key].dtype.kind != "U":
                raise bad(f"{key} is not a name")
        try:
            arch = make_architecture([int(s) for s in sizes], [str(a) for a in acts],
                                     str(contents["cost"]), resolve_dtype(str(contents["dtype"])))
        except (TypeError, ValueError) as exc:
            raise bad(exc) from None
        L = arch.n_layers
        expected = set(header) | {f"w{l}" for l in range(1, L + 1)} | {f"b{l}" for l in range(1, L + 1)}
        if set(contents) != expected:
            extra, lacking = set(contents) - expected, expected - set(contents)
            raise bad(f"arrays {sorted(lacking)} missing, {sorted(extra)} unexpected")
        # Every array is checked before the network is built, so a small file
        # that claims huge sizes fails here instead of allocating them.
        for l in range(1, L + 1):
            shapes = {f"w{l}": (arch.sizes[l], arch.sizes[l - 1]), f"b{l}": (arch.sizes[l],)}
            for name, shape in shapes.items():
                value = contents[name]
                if value.shape != shape:
                    raise bad(f"{name} has shape {value.shape}, sizes {list(arch.sizes)} need "
                              f"{shape}")
                if value.dtype != arch.dtype:
                    raise bad(f"{name} has dtype {value.dtype}, the file says {arch.dtype.name}")
                if not np.isfinite(value).all():
                    raise bad(f"{name} contains NaN or infinite values")
        net = cls(arch.sizes, arch.activations, arch.cost, arch.dtype, seed=0,
                  num_threads=num_threads)
        net.weights = [contents[f"w{l}"] for l in range(1, L + 1)]
        net.biases = [contents[f"b{l}"] for l in range(1, L + 1)]
        return net


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive


def _member(archive, name: str):
    """``archive[name]``; a member np.load refuses to read without pickle is reported as such."""
    try:
        return archive[name]
    except ValueError as exc:
        if "pickle" not in str(exc).lower():
            raise
        raise ValueError(f"member {name!r} holds Python objects (an object array), which a "
                         "model file never does") from None


def _unpickle(cls, sizes, activations, cost, dtype, init, num_threads, state):
    net = cls(sizes, activations, cost, dtype, init=init, seed=0, num_threads=num_threads)
    net.weights = state["weights"]
    net.biases = state["biases"]
    net._shuffle_rng.bit_generator.state = state["shuffle_state"]
    return net


__all__ = ["Network", "History", "DivergenceError", "FORMAT_VERSION"]
