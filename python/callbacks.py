"""Callbacks for ``fit``: :class:`EarlyStopping`, and the plateau rule it shares with schedules.

A ``fit`` callback is any callable ``callback(epoch, history)`` run after each
epoch; returning ``True`` stops training there.  :class:`EarlyStopping` is the
one early-stopping rule of bpcore: ``bpcore train --early-stopping`` and the
scikit-learn estimators (:mod:`bpcore.sklearn`) both use it.

When a figure "has not improved" is decided by :class:`Plateau`, which the
``Adaptive`` learning-rate schedule (:mod:`bpcore.schedules`) uses too.  It is
scikit-learn's test (``_update_no_improvement_count`` of its MLP), written once:
an epoch counts as no improvement when its value is not better than the best so
far by at least ``tol``; that is ``value < best + tol`` for a figure to maximise
and ``value > best - tol`` for one to minimise.  With ``tol = 0`` an equal value
is no improvement either (scikit-learn counts a tie with ``tol = 0`` as one; ties
are common in accuracies, and a plateau of equal accuracies should end training).
"""
from __future__ import annotations

import math
from collections.abc import Callable

from ._checks import check_bool, check_int, check_name, check_real
from .history import History

#: The History lists a monitor may name, and whether a larger value is better.
MONITORS = {"val_accuracy": "max", "val_cost": "min", "train_cost": "min"}

_MODES = ("max", "min")


def resolve_monitor(monitor, mode) -> tuple[Callable[[History], float], str]:
    """``(history -> value, mode)`` for a monitor given by name or as a callable."""
    if callable(monitor):
        if mode is None:
            raise ValueError("mode must be 'max' or 'min' when monitor is a callable, got None")
        return monitor, check_name("mode", mode, _MODES)
    name = check_name("monitor", monitor, tuple(MONITORS))
    if mode is not None:
        check_name("mode", mode, _MODES)
        if mode != MONITORS[name]:
            raise ValueError(f"mode must be {MONITORS[name]!r} for monitor {name!r}, got {mode!r}")

    def read(history: History) -> float:
        values = getattr(history, name)
        if not values:
            raise ValueError(f"monitor {name!r} needs fit's validation_data: history.{name} "
                             "is empty")
        return values[-1]

    return read, MONITORS[name]


class Plateau:
    """Counts the epochs in a row whose value did not improve on the best (see the module).

    ``best`` is the best value so far (``-inf``/``inf`` before the first),
    ``wait`` the epochs in a row without improvement.  Its state is two floats,
    saved by :meth:`state_dict`.
    """

    def __init__(self, mode: str, tol: float = 0.0):
        self.mode = check_name("mode", mode, _MODES)
        self.tol = check_real("tol", tol, minimum=0.0)
        self.best = -math.inf if mode == "max" else math.inf
        self.wait = 0

    def update(self, value: float) -> bool:
        """Record one epoch's value; True if it is a new best (strictly better)."""
        value = float(value)
        if self.mode == "max":
            stale = value < self.best + self.tol if self.tol > 0 else value <= self.best
            better = value > self.best
        else:
            stale = value > self.best - self.tol if self.tol > 0 else value >= self.best
            better = value < self.best
        self.wait = self.wait + 1 if stale else 0
        if better:
            self.best = value
        return better

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


class EarlyStopping:
    """Stop ``fit`` once a figure has not improved for ``patience`` epochs in a row.

    Pass it as ``fit``'s ``callback``.  After each epoch it reads the monitored
    value, counts the epochs in a row that did not improve on the best by
    ``tol`` (see :mod:`bpcore.callbacks`), and returns ``True`` (which stops
    ``fit``) when that count reaches ``patience``.  With ``restore_best`` it
    keeps a copy of the parameters of the best epoch and puts them back into
    the network when it stops; :meth:`restore` does it on demand (after a
    ``fit`` that ran all its epochs, say).

    Parameters
    ----------
    network : bpcore.Network or bpcore.reference.Network
        The network being trained (its ``weights`` and ``biases`` are copied).
    patience : int or None
        Epochs in a row without improvement that stop training; ``None`` never
        stops (the callback then only tracks the best epoch).
    monitor : {"val_accuracy", "val_cost", "train_cost"} or callable, default "val_accuracy"
        The last entry of that :class:`~bpcore.History` list, or
        ``monitor(history) -> float``.
    mode : {"max", "min"}, optional
        Whether larger values are better; implied by a monitor name, required
        with a callable.
    tol : float, default 0
        Improvement that counts as one.
    restore_best : bool, default True
        Keep the best epoch's parameters and restore them when stopping.

    Attributes
    ----------
    values : list of float
        The monitored value after each epoch.
    best : float
        The best of ``values`` (``-inf``/``inf`` before the first epoch).
    best_epoch : int
        The epoch (1-based, as ``fit`` numbers them) of ``best``; 0 before.
    stopped_epoch : int or None
        The epoch after which it stopped training, None if it has not.
    """

    def __init__(self, network, patience: int | None = 5, *, monitor="val_accuracy",
                 mode: str | None = None, tol: float = 0.0, restore_best: bool = True):
        self.network = network
        self.patience = None if patience is None else check_int("patience", patience, 1)
        self._read, mode = resolve_monitor(monitor, mode)
        self.restore_best = check_bool("restore_best", restore_best)
        self._plateau = Plateau(mode, tol)
        self.values: list[float] = []
        self.best_epoch = 0
        self.stopped_epoch: int | None = None
        self._best_params: list | None = None

    @property
    def best(self) -> float:
        return self._plateau.best

    @property
    def wait(self) -> int:
        """Epochs in a row, up to the last, that did not improve."""
        return self._plateau.wait

    def __call__(self, epoch: int, history: History) -> bool:
        value = float(self._read(history))
        self.values.append(value)
        if self._plateau.update(value):
            self.best_epoch = epoch
            if self.restore_best:
                net = self.network
                self._best_params = [a.copy() for a in list(net.weights) + list(net.biases)]
        if self.patience is not None and self._plateau.wait >= self.patience:
            self.stopped_epoch = epoch
            if self.restore_best:
                self.restore()
            return True
        return False

    def restore(self) -> None:
        """Put the parameters of the best epoch back into the network (if one was seen)."""
        if self._best_params is None:
            return
        L = len(self._best_params) // 2
        self.network.weights = self._best_params[:L]
        self.network.biases = self._best_params[L:]


__all__ = ["EarlyStopping", "Plateau", "MONITORS"]
