"""What the compiled and the reference networks share: arguments, the fit loop, evaluation.

A subclass supplies the math, in four methods:

* ``_forward(X) -> a^L`` for every row of X;
* ``_example_costs(X, Y) -> C_x`` for every row (and, optionally,
  ``_outputs_and_costs(X, Y)``, both from one pass);
* ``_gradient(X, Y, w) -> (nabla_b, nabla_w)`` of the (w-weighted, w None: plain)
  mean cost over the rows;
* ``_train_epoch(X, Y, order, batch_size, optimizer, factors, workspace) -> C_x``
  in visiting order, after one epoch of optimizer steps in place (``factors``:
  each example's w_x / w_mean, or None);

and the arrays that make up its parameters (``_state_arrays``), which ``fit``
snapshots, with the optimizer's state, to undo an epoch that diverged.
``_fit_workspace(batch_size)`` may supply scratch buffers that ``fit`` hands to
every ``_train_epoch`` of the call.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import time

import numpy as np

from . import _diagnostics
from . import distributed as _distributed
from ._config import Architecture, init_parameters, make_architecture, make_rngs
from ._checks import check_bool, check_fit_args
from ._data import (_as_array, all_finite, as_inputs, as_labels, as_targets, check_finite,
                    epoch_order, non_finite_first)
from ._interop import InteropMixin
from ._progress import EpochReport
from ._weights import as_sample_weight, fit_weights, step_factors
from ._checkpoint import Checkpointer
from .exceptions import DivergenceError, ResultOverflowError
from .history import History
from .optim import for_fit
from .schedules import check_schedule


def _public(method):
    """``method`` run under the network's ``_exclusive()``, its arguments checked first.

    A wrong argument is reported as Python would, but naming the class the user
    holds (``Network.fit() got an unexpected keyword argument 'verbos'; did you
    mean 'verbose'?``), not the base class that defines the method.  The
    signature (``inspect.signature``, ``help``, the API docs) is the method's own.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            signature.bind(self, *args, **kwargs)
        except TypeError as exc:
            message = f"{type(self).__name__}.{method.__name__}() {exc}"
            unknown = [k for k in kwargs if k not in signature.parameters]
            close = unknown and difflib.get_close_matches(unknown[0], signature.parameters, 1)
            raise TypeError(message + (f"; did you mean {close[0]!r}?" if close else "")) from None
        with self._exclusive():
            return method(self, *args, **kwargs)

    return call


class BaseNetwork(InteropMixin):
    """Constructor, argument checks and the training loop; the math is in subclasses."""

    _arch: Architecture
    #: Whether ``fit(comm=...)`` trains over MPI (bpcore.distributed), or refuses.
    _trains_over_mpi = False
    #: Whether ``_train_epoch`` makes the parameters non-finite whenever an input is
    #: (it multiplies every delta by every input), so that ``fit`` need not check X
    #: before training (see bpcore._data).
    _training_proves_inputs_finite = False

    def __init__(self, sizes, activations="sigmoid", cost="quadratic", dtype="float64",
                 init="scaled_gaussian", seed=None):
        self._arch = make_architecture(sizes, activations, cost, dtype)
        init_rng, self._shuffle_rng = make_rngs(seed)
        self.init = init
        biases, weights = init_parameters(self._arch, init, init_rng)
        self._allocate(biases, weights)

    # -- description -------------------------------------------------------------
    @property
    def sizes(self) -> tuple[int, ...]:
        """n_0, ..., n_L."""
        return self._arch.sizes

    @property
    def activations(self) -> tuple[str, ...]:
        """Activation of layers 1..L."""
        return self._arch.activations

    @property
    def cost_name(self) -> str:
        """Name of the cost function (see :meth:`cost` for its value)."""
        return self._arch.cost

    @property
    def dtype(self) -> np.dtype:
        return self._arch.dtype

    @property
    def n_layers(self) -> int:
        """L, the number of weight layers."""
        return self._arch.n_layers

    def __repr__(self) -> str:
        return (f"{type(self).__module__}.{type(self).__name__}(sizes={list(self.sizes)}, "
                f"activations={list(self.activations)}, cost={self.cost_name!r}, "
                f"dtype={self.dtype.name!r})")

    # -- results that overflowed ------------------------------------------------------
    # Inputs are finite (checked), but huge ones can still overflow inside the
    # network: a relu or identity layer passes 1e300 on, and (a - y)^2 of 1e200
    # is inf.  Such a result is refused rather than returned.

    def _overflow(self, what: str, names: str) -> ResultOverflowError:
        return ResultOverflowError(
            f"{what} overflowed to inf or NaN in {self.dtype.name} for the given {names}: "
            f"the values of {names} are too large for this network; scale them down")

    def _finite_output(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        """a^L for the rows of X, refused if it overflowed."""
        with np.errstate(all="ignore"):  # the reference's NumPy warns on overflow
            out = self._forward(X)
        if not np.isfinite(out).all():
            raise self._overflow("the output a^L", name)
        return out

    def _finite_costs(self, X: np.ndarray, Y: np.ndarray, names: str = "X and Y") -> np.ndarray:
        """C_x for the rows of X, refused if any overflowed."""
        with np.errstate(all="ignore"):
            costs = self._example_costs(X, Y)
        if not np.isfinite(costs).all():
            raise self._overflow("the cost", names)
        return costs

    # -- inference ---------------------------------------------------------------
    def feedforward(self, X):
        """a^L for each row of X (a 1-D X is one example and gives a 1-D result).

        Raises ``ValueError`` if a^L overflows (inputs too large for the network).
        """
        X, single = as_inputs(X, self._arch)
        out = self._finite_output(X)
        return out[0] if single else out

    predict = feedforward

    def cost(self, X, Y, sample_weight=None) -> float:
        """C = mean over the rows x of X of C_x (see the ``cost`` names in the README).

        With ``sample_weight`` w (one weight >= 0 per row), the weighted mean
        sum_x w_x C_x / sum_x w_x.

        ``quadratic``: C_x = 1/2 ||a - y||^2; ``squared_error``: C_x = ||a - y||^2;
        ``cross_entropy``: C_x = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)];
        ``log_likelihood``: C_x = -sum_j y_j ln a_j (= -ln a_y for a one-hot y).
        Y is (n, n_L) targets or integer labels.  No L2 term is included.
        Raises ``ValueError`` if the cost overflows (X or Y too large).
        """
        X, Y = self._inputs_and_targets(X, Y)
        w = as_sample_weight(sample_weight, X.shape[0])
        costs = self._finite_costs(X, Y)
        return float(np.mean(costs) if w is None else np.sum(w * costs) / np.sum(w))

    def evaluate(self, X, labels, sample_weight=None) -> float:
        """Fraction of rows whose predicted class equals the label.

        The predicted class is the argmax of a^L, or ``a^L >= 0.5`` for a single output.
        With ``sample_weight`` w, the weighted fraction sum_x w_x [correct_x] / sum_x w_x.
        """
        X, _ = as_inputs(X, self._arch)
        labels = as_labels(labels, X.shape[0], self.sizes[-1])
        w = as_sample_weight(sample_weight, X.shape[0])
        correct = self._classify(self._finite_output(X)) == labels
        return float(np.mean(correct) if w is None else np.sum(w * correct) / np.sum(w))

    def _classify(self, out: np.ndarray) -> np.ndarray:
        if out.shape[1] == 1:
            return (out[:, 0] >= 0.5).astype(np.intp)
        return np.argmax(out, axis=1)

    # -- learning ----------------------------------------------------------------
    def backprop(self, X, Y, sample_weight=None):
        """Gradient of the mean cost over the rows of X: ``(nabla_b, nabla_w)``.

        Lists with one array per layer l = 1..L, shaped like ``biases`` and
        ``weights``: nabla_b[l-1][j] = dC/db^l_j, nabla_w[l-1][j, k] = dC/dw^l_jk.
        With ``sample_weight`` w, the gradient of the weighted mean cost
        sum_x w_x C_x / sum_x w_x (see :meth:`cost`).
        Raises ``ValueError`` if a derivative overflows (X or Y too large).
        """
        X, Y = self._inputs_and_targets(X, Y)
        w = as_sample_weight(sample_weight, X.shape[0])
        with np.errstate(all="ignore"):
            nabla_b, nabla_w = self._gradient(X, Y, w)
        if not all(np.isfinite(g).all() for g in nabla_b + nabla_w):
            raise self._overflow("the gradient", "X and Y")
        return nabla_b, nabla_w

    @_public
    def fit(self, X, Y, epochs, batch_size, lr=None, *, optimizer=None, l2=0.0, momentum=0.0,
            schedule=None, sample_weight=None, class_weight=None, shuffle=True, seed=None,
            validation_data=None, verbose=False, progress=False, callback=None,
            checkpoint=None, checkpoint_every=1, resume=False, comm=None,
            record_grad_norms=False) -> History:
        """Train by mini-batch gradient descent; return the per-epoch history.

        Each epoch visits the examples in a new random order (``shuffle``) in
        mini-batches of ``batch_size`` (the last one may be smaller) and after
        each mini-batch of m examples steps every weight and bias.  With ``lr``
        (stochastic gradient descent, network2.py's):

            v <- momentum * v - lr * (dC/dw + (l2 / n) * w);   w <- w + v

        where C is the mean cost over the mini-batch and n = len(X) (the L2
        term, network2.py's, applies to weights, not biases).  With
        ``momentum=0`` this is w <- (1 - lr l2 / n) w - lr dC/dw.  Velocities
        start at zero in every call.  With ``optimizer`` instead (a
        :mod:`bpcore.optim` ``SGD``, ``Adam`` or ``AdamW``; then without ``lr``,
        ``l2`` and ``momentum``), its rule, and its state carries over from one
        call to the next: the same optimizer in consecutive calls trains exactly
        as one longer call.

        ``sample_weight`` (one weight >= 0 per example) and ``class_weight`` (a
        dict {class: weight}, or ``"balanced"``: n / (n_classes * count(class)))
        weight the examples: each step uses (1/m) sum_x (w_x / w_mean) dC_x/dw,
        w_mean the mean weight over the training set (equal weights give the
        unweighted steps exactly), and ``history.train_cost`` is the weighted mean.

        Y is (n, n_L) targets or 1-D integer class labels (one-hot encoded).
        ``validation_data`` is ``(X_val, Y_val)`` of the same kinds.  ``seed``
        fixes the shuffling; without it the network's own generator (from the
        constructor's ``seed``) is used.  If the parameters or the costs become
        NaN or infinite, the network (and the optimizer) is restored to its state
        before that epoch and :class:`DivergenceError` is raised (``ValueError`` instead if the
        cost of the data overflows already with the parameters ``fit`` started
        from: the data are too large for the network).  Ctrl-C (``KeyboardInterrupt``)
        stops training within about 50 ms; the network is then restored to its
        state after the last completed epoch, and the exception carries the
        history of those epochs as ``exc.history``.  ``callback(epoch, history)``, if
        given, is called after each epoch (1-based) with the history so far;
        returning ``True`` stops training there (:class:`bpcore.callbacks.EarlyStopping`
        is one).  ``verbose`` prints a line per epoch (the format of ``bpcore train``),
        ``progress`` shows a tqdm progress bar (a widget in a notebook).

        ``schedule`` (a :mod:`bpcore.schedules` schedule) sets the learning rate
        of each epoch; ``history.lr`` records the rate of every epoch.
        ``checkpoint`` (a path) writes, atomically, everything needed to continue
        after every ``checkpoint_every`` epochs and after the last (see
        ``bpcore._checkpoint``); with ``resume=True`` a ``fit`` with the same
        arguments continues from that file if it exists, up to ``epochs`` epochs
        in all, and ends bitwise where an uninterrupted ``fit`` would have; the
        history returned covers the whole run.  A checkpoint of another
        architecture, optimizer or schedule, or a damaged one, raises ``ValueError``.
        ``record_grad_norms=True`` fills ``history.grad_norms``: per epoch, for each
        layer l, the mean over the mini-batches of ||dC/db^l||, computed inside
        the compiled epoch from the bias gradients it has at hand.

        A fit that learns nothing warns with :class:`bpcore.ConvergenceWarning`
        (see ``bpcore._diagnostics``): inputs on a scale far from the one the
        initialisation expects, and a training cost that after the first epochs is
        no lower than what predicting the same output for every input achieves.

        ``comm``, an mpi4py communicator (``MPI.COMM_WORLD``; needs the extra ``mpi``),
        trains data-parallel over its ranks: every rank calls ``fit`` with the same
        data and arguments, each computes the gradient of its part of every
        mini-batch, and all end with bitwise identical networks (rank 0's starting
        parameters and shuffling); only rank 0 prints and writes the checkpoint (which
        every rank reads to resume).  See :mod:`bpcore.distributed`.
        """
        if comm is not None and not isinstance(comm, _distributed.Group):
            if not self._trains_over_mpi:
                raise TypeError(f"comm: {type(self).__module__}.{type(self).__qualname__} "
                                "trains in one process; bpcore.Network trains over MPI")
            options = {k: v for k, v in locals().items()
                       if k not in ("self", "X", "Y", "epochs", "batch_size", "lr", "comm")}
            # bpcore.distributed joins the ranks and calls fit again with comm a Group
            return _distributed.fit(self.fit, self, X, Y, epochs, batch_size, lr, comm=comm,
                                    **options)
        settings = {k: v for k, v in locals().items()
                    if k not in ("self", "X", "Y", "validation_data", "comm")}
        epochs, batch_size, lr_, l2, momentum = check_fit_args(
            epochs, batch_size, 0.0 if lr is None else lr, l2, momentum)
        lr = None if lr is None else lr_
        shuffle, verbose = check_bool("shuffle", shuffle), check_bool("verbose", verbose)
        progress = check_bool("progress", progress)
        record_grad_norms = check_bool("record_grad_norms", record_grad_norms)
        # X's finiteness is proven by the first epoch (bpcore._data), or refused if a
        # later check fails meanwhile
        proven_by_training = self._training_proves_inputs_finite
        X, Y = self._inputs_and_targets(X, Y, defer_finite_check=proven_by_training)
        with non_finite_first("X", X, proven_by_training):
            n = X.shape[0]
            optimizer = for_fit(lr, optimizer, momentum, l2, n)
            weights = fit_weights(sample_weight, class_weight, Y)
            factors = step_factors(weights, self.dtype)
            validation = self._validation_set(validation_data)
            if callback is not None and not callable(callback):
                raise TypeError(f"callback must be callable, got {type(callback).__name__}")
            rng = self._shuffle_rng if seed is None else make_rngs(seed)[1]
            batch_size = min(batch_size, n)  # a larger one is one batch of all: same steps
            schedule = check_schedule(schedule)
            saver = Checkpointer.for_fit(checkpoint, checkpoint_every, resume, self,
                                         {"n_examples": n, "batch_size": batch_size})
        # One snapshot buffer per state array for all epochs: a fresh copy per epoch
        # would be page-faulted anew in every epoch (hundreds of MB for a large network).
        self._bind_optimizer(optimizer)
        done, history = (0, History()) if saver is None else saver.resume(epochs, rng, optimizer,
                                                                           schedule)
        if schedule is not None:
            schedule.start(optimizer.lr)
        state = self._state_arrays() + optimizer._arrays()
        before = [np.empty_like(a) for a in state]
        workspace = self._fit_workspace(batch_size)
        bias_norms = np.zeros(self.n_layers) if record_grad_norms else None
        train_epoch = self._train_epoch
        if comm is not None:  # the ranks check their setups; rank 0's parameters, shuffling
            comm.agree(rng, {"X": X, "Y": Y, "validation_data": validation,
                             "epochs done (resumed)": done}, settings)
            train_epoch, verbose = comm.train_epoch, verbose and comm.rank == 0
            progress = progress and comm.rank == 0
            saver = saver if comm.rank == 0 else None
        watch = _diagnostics.ProgressCheck(self, X, Y, epochs, batch_size, optimizer.lr,
                                           momentum, weights)
        report = EpochReport(epochs, n, verbose, progress)
        first_epoch, ran = done + 1, 0
        # Ctrl-C may land anywhere in the loop, not only in the compiled epoch: from the
        # start of an epoch's steps until its history is recorded, the parameters are
        # put back to the last recorded epoch; elsewhere they already are its.
        epoch_open = False
        try:
            for epoch in range(first_epoch, epochs + 1):
                if epoch == first_epoch:
                    rng_state = rng.bit_generator.state
                if schedule is not None:
                    optimizer.lr = schedule.lr
                start = time.perf_counter()
                order = epoch_order(rng, n, shuffle)
                for saved, array in zip(before, state):
                    np.copyto(saved, array)
                steps_before = optimizer._t
                if bias_norms is not None:
                    bias_norms[...] = 0
                kept, epoch_open = history.epochs, True
                with np.errstate(all="ignore"):  # non-finite results are handled below
                    costs = train_epoch(X, Y, order, batch_size, optimizer, factors,
                                        workspace, bias_norms=bias_norms)
                seconds = time.perf_counter() - start
                finite = (np.isfinite(costs).all()
                          and all(np.isfinite(a).all() for a in state))
                if finite and validation is not None:
                    Xv, Yv, labels = validation
                    with np.errstate(all="ignore"):
                        val_out, val_costs = self._outputs_and_costs(Xv, Yv)
                    finite = np.isfinite(val_costs).all() and np.isfinite(val_out).all()
                if not finite:
                    report.close()
                    self._restore(state, before)
                    optimizer._t = steps_before
                    if epoch == first_epoch:  # X may be non-finite, or overflow the network
                        if proven_by_training and not all_finite(X):
                            rng.bit_generator.state = rng_state  # as if refused up front
                            check_finite("X", X)
                        self._refuse_overflowing_data(X, Y, validation)
                    raise DivergenceError(
                        f"training diverged in epoch {epoch}: the parameters or the cost became "
                        f"NaN or infinite with lr={optimizer.lr}; the network was restored to its "
                        f"state before epoch {epoch} (try a smaller lr)")
                ran += 1
                history.seconds.append(seconds)
                history.lr.append(optimizer.lr)
                history.train_cost.append(float(
                    np.mean(costs) if weights is None
                    else np.sum(weights[order] * costs) / np.sum(weights)))
                if bias_norms is not None:  # sums over the epoch's -(-n // batch_size) mini-batches
                    history.grad_norms.append((bias_norms / -(-n // batch_size)).tolist())
                if validation is not None:
                    history.val_cost.append(float(np.mean(val_costs)))
                    history.val_accuracy.append(float(np.mean(self._classify(val_out) == labels)))
                epoch_open = False  # the parameters are those of the epochs in history
                report(epoch, history)
                watch.after_epoch(epoch, history)
                if schedule is not None:
                    schedule.step(history)
                if saver is not None:
                    saver.after_epoch(epoch, epochs, history, rng, optimizer, schedule)
                stop = callback is not None and callback(epoch, history) is True
                if comm is not None:  # one rank's callback stops them all; so does a Ctrl-C
                    stop = comm.end_epoch(stop, history)
                if stop:
                    break
        except KeyboardInterrupt as exc:
            report.close()
            if epoch_open:
                self._restore(state, before)
                optimizer._t = steps_before
                history._keep(kept)
            exc.history = history
            raise
        report.close()
        if proven_by_training and not ran:  # no epoch ran to prove X finite
            check_finite("X", X)
        return history

    def _refuse_overflowing_data(self, X, Y, validation) -> None:
        """ValueError if the cost of the training or the validation data overflows now."""
        self._finite_costs(X, Y)
        if validation is not None:
            Xv, Yv, _ = validation
            self._finite_costs(Xv, Yv, "validation_data")
            self._finite_output(Xv, "validation_data")

    @staticmethod
    def _restore(arrays: list[np.ndarray], saved: list[np.ndarray]) -> None:
        for array, value in zip(arrays, saved):
            array[...] = value

    # -- argument handling ---------------------------------------------------------
    def _inputs_and_targets(self, X, Y, names=("X", "Y"), defer_finite_check=False):
        X, single = as_inputs(X, self._arch, names[0], defer_finite_check=defer_finite_check)
        with non_finite_first(names[0], X, defer_finite_check):
            if single:  # Y of one example: its targets (floats), or its label
                Y = _as_array(names[1], Y)
                if Y.ndim < 2:
                    Y = Y.reshape(1, -1) if Y.dtype.kind == "f" else Y.reshape(-1)
            return X, as_targets(Y, X.shape[0], self._arch, names[1])

    def _validation_set(self, validation_data):
        """(X, targets, labels) from validation_data, or None."""
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, Y_val), got "
                            f"{type(validation_data).__name__}")
        X, Y = self._inputs_and_targets(*validation_data, names=("validation_data[0]",
                                                                 "validation_data[1]"))
        if Y.shape[1] == 1:
            labels = (Y[:, 0] >= 0.5).astype(np.intp)
        else:
            labels = np.argmax(Y, axis=1)
        return X, Y, labels

    # -- to be supplied by subclasses ------------------------------------------------
    def _exclusive(self):
        """Context held around a public call (``Network``: refuses a second thread)."""
        return contextlib.nullcontext()

    def _allocate(self, biases: list, weights: list) -> None:
        raise NotImplementedError

    def _state_arrays(self) -> list[np.ndarray]:
        raise NotImplementedError

    def _bind_optimizer(self, optimizer) -> None:
        """Create (or check) the optimizer's state for this network's parameters."""
        raise NotImplementedError

    def _forward(self, X):
        raise NotImplementedError

    def _example_costs(self, X, Y):
        raise NotImplementedError

    def _outputs_and_costs(self, X, Y):
        """(a^L, C_x) for the rows of X: ``fit``'s evaluation of the validation data
        after every epoch (a subclass may compute both in one forward pass)."""
        return self._forward(X), self._example_costs(X, Y)

    def _gradient(self, X, Y, w=None):
        raise NotImplementedError

    def _train_epoch(self, X, Y, order, batch_size, optimizer, factors, workspace,
                     bias_norms=None):
        """One epoch; with ``bias_norms`` (L floats) add ||dC/db^l|| of each mini-batch to
        ``bias_norms[l - 1]``."""
        raise NotImplementedError

    def _fit_workspace(self, batch_size: int):
        """Scratch for all epochs of one ``fit`` of mini-batches of ``batch_size`` (default: none)."""
        return None
