"""Learning-rate schedules: the learning rate of each epoch of ``fit``.

Pass one as ``fit(..., schedule=)``.  Before each epoch ``fit`` sets the
optimizer's ``lr`` to the schedule's :attr:`~Schedule.lr`, runs the epoch (one
call into the compiled code, every step at that rate) and then calls
:meth:`~Schedule.step` with the history so far; ``history.lr`` records the rate
of each epoch.  The rate changes between epochs only: a schedule that changed it
every mini-batch would need one call into the compiled code per mini-batch.

A schedule is relative to a base rate, ``lr`` of its constructor, or, if that is
None, the rate ``fit`` starts with (its ``lr`` or its optimizer's ``lr``) the
first time the schedule is used.  A schedule counts the epochs it has seen, so
the same object passed to consecutive ``fit`` calls continues where the last
one stopped, as the optimizer does; its state is a few numbers
(:meth:`~Schedule.state_dict`), saved in checkpoints.

With ``e`` the number of epochs before the one about to run (0 for the first)
and ``lr0`` the base rate:

========================  ======================================================
:class:`Constant`         ``lr0``
:class:`StepDecay`        ``lr0 * gamma ** (e // step_size)``
:class:`Exponential`      ``lr0 * gamma ** e``
:class:`Cosine`           ``eta_min + (lr0 - eta_min) * (1 + cos(pi * min(e, T_max) / T_max)) / 2``
:class:`InverseScaling`   ``lr0 / (t_per_epoch * e + 1) ** power_t``
:class:`Adaptive`         ``lr0``, divided by ``factor`` whenever the monitored cost
                          has not improved by ``tol`` for ``patience`` epochs
========================  ======================================================

:class:`InverseScaling` and :class:`Adaptive` are scikit-learn's
``learning_rate='invscaling'`` and ``'adaptive'``.  scikit-learn's ``invscaling``
(``SGDOptimizer.iteration_ends``) sets ``lr = learning_rate_init / (t + 1) **
power_t`` at the end of each epoch, with ``t`` the number of *training examples*
seen so far (not steps): its first epoch runs at ``learning_rate_init``, epoch
``e + 1`` at ``learning_rate_init / (n e + 1) ** power_t``.  That is
``InverseScaling(t_per_epoch=n)``, which :mod:`bpcore.sklearn` uses; the default
``t_per_epoch=1`` counts epochs, ``lr0 / epoch ** power_t``.  :class:`Cosine`
stays at ``eta_min`` after ``T_max`` epochs (PyTorch's closed form would rise again).
"""
from __future__ import annotations

import math

from ._checks import check_int, check_real
from .callbacks import Plateau, resolve_monitor
from .history import History


class Schedule:
    """Base class: the learning rate of the next epoch (:attr:`lr`), and its state.

    Subclasses define ``_lr_at(e)`` (the rate of an epoch after ``e`` others) or
    override :attr:`lr` and :meth:`step`.
    """

    def __init__(self, lr: float | None = None):
        self.base_lr = None if lr is None else check_real("lr", lr, minimum=0.0)
        #: Epochs this schedule has been stepped through (over all fit calls).
        self.epoch = 0

    def start(self, lr: float) -> None:
        """Called by ``fit`` before its first epoch: ``lr`` becomes the base rate if none is set."""
        if self.base_lr is None:
            self.base_lr = check_real("lr", lr, minimum=0.0)

    @property
    def lr(self) -> float:
        """The learning rate of the next epoch."""
        if self.base_lr is None:
            raise RuntimeError(f"{type(self).__name__} has no base rate yet: give it lr= or "
                               "pass it to fit, which starts it with fit's learning rate")
        return self._lr_at(self.epoch)

    def step(self, history: History | None = None) -> None:
        """Called by ``fit`` after each epoch, with the history so far."""
        self.epoch += 1

    def _lr_at(self, e: int) -> float:
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The schedule's state (numbers, JSON-serialisable), for :meth:`load_state_dict`."""
        return {"type": type(self).__name__, "base_lr": self.base_lr, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s output; ``ValueError`` for another schedule's."""
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"the state is that of schedule {got!r}, not of "
                             f"{type(self).__name__!r}")
        try:
            base, epoch = state["base_lr"], state["epoch"]
            self.base_lr = None if base is None else check_real("base_lr", base, minimum=0.0)
            self.epoch = check_int("epoch", epoch, 0)
            self._load_extra(state)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid {type(self).__name__} state: {exc!r}") from None

    def _load_extra(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_lr={self.base_lr}, epoch={self.epoch})"


class Constant(Schedule):
    """The base rate for every epoch.

    Parameters
    ----------
    lr : float, optional
        The base rate; default: the rate of the first ``fit`` it is given.
    """

    def _lr_at(self, e: int) -> float:
        return self.base_lr


class StepDecay(Schedule):
    """The base rate times ``gamma`` every ``step_size`` epochs (PyTorch's ``StepLR``).

    Parameters
    ----------
    step_size : int
        Epochs between two reductions, >= 1.
    gamma : float, default 0.1
        Factor of each reduction, >= 0.
    lr : float, optional
        The base rate; default: the rate of the first ``fit`` it is given.

    Examples
    --------
    >>> from bpcore.schedules import StepDecay
    >>> schedule = StepDecay(2, gamma=0.5, lr=0.1)
    >>> [schedule._lr_at(e) for e in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, step_size: int, gamma: float = 0.1, lr: float | None = None):
        super().__init__(lr)
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = check_real("gamma", gamma, minimum=0.0)

    def _lr_at(self, e: int) -> float:
        return self.base_lr * self.gamma ** (e // self.step_size)


class Exponential(Schedule):
    """The base rate times ``gamma`` after every epoch (PyTorch's ``ExponentialLR``).

    Parameters
    ----------
    gamma : float
        Factor per epoch, >= 0.
    lr : float, optional
        The base rate; default: the rate of the first ``fit`` it is given.
    """

    def __init__(self, gamma: float, lr: float | None = None):
        super().__init__(lr)
        self.gamma = check_real("gamma", gamma, minimum=0.0)

    def _lr_at(self, e: int) -> float:
        return self.base_lr * self.gamma ** e


class Cosine(Schedule):
    """Half a cosine from the base rate down to ``eta_min`` over ``T_max`` epochs, then ``eta_min``.

    Parameters
    ----------
    T_max : int
        Epochs from the base rate to ``eta_min``, >= 1.
    eta_min : float, default 0
        The last rate.
    lr : float, optional
        The base rate; default: the rate of the first ``fit`` it is given.
    """

    def __init__(self, T_max: int, eta_min: float = 0.0, lr: float | None = None):
        super().__init__(lr)
        self.T_max = check_int("T_max", T_max, 1)
        self.eta_min = check_real("eta_min", eta_min, minimum=0.0)

    def _lr_at(self, e: int) -> float:
        progress = min(e, self.T_max) / self.T_max
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2


class InverseScaling(Schedule):
    """``lr0 / (t + 1) ** power_t`` with ``t = t_per_epoch * e``: scikit-learn's ``invscaling``.

    Parameters
    ----------
    power_t : float, default 0.5
        The exponent, >= 0.
    t_per_epoch : int, default 1
        What one epoch adds to ``t``: 1 to count epochs; the number of training
        examples for scikit-learn's own ``t`` (see :mod:`bpcore.schedules`).
    lr : float, optional
        The base rate; default: the rate of the first ``fit`` it is given.
    """

    def __init__(self, power_t: float = 0.5, t_per_epoch: int = 1, lr: float | None = None):
        super().__init__(lr)
        self.power_t = check_real("power_t", power_t, minimum=0.0)
        self.t_per_epoch = check_int("t_per_epoch", t_per_epoch, 1)

    def _lr_at(self, e: int) -> float:
        # scikit-learn's expression, operation for operation
        return float(self.base_lr) / (self.t_per_epoch * e + 1) ** self.power_t


class Adaptive(Schedule):
    """scikit-learn's ``adaptive``: divide the rate by ``factor`` on a plateau of the cost.

    After each epoch the monitored value (by default the training cost) is
    checked with :class:`bpcore.callbacks.Plateau`'s rule; when ``patience``
    epochs in a row have not improved it by ``tol``, the rate is divided by
    ``factor`` and the count starts again, unless the rate is already at most
    ``min_lr``: then it stays, and :attr:`exhausted` becomes True (scikit-learn
    stops training there; a ``fit`` callback can do the same).

    scikit-learn's documentation says "two consecutive epochs"; its code
    (``_fit_stochastic``) divides when the count of epochs without improvement
    exceeds ``n_iter_no_change`` (default 10), that is ``patience =
    n_iter_no_change + 1``, which :mod:`bpcore.sklearn` passes.  The default
    here, ``patience=2``, is the documented rule.

    Parameters
    ----------
    lr : float, optional
        The base rate; default: the rate of the first ``fit`` it is given.
    tol : float, default 1e-4
        Improvement that counts as one.
    patience : int, default 2
        Epochs in a row without improvement that divide the rate.
    factor : float, default 5
        The divisor, >= 1.
    min_lr : float, default 1e-6
        No division once the rate is at most this.
    monitor : {"train_cost", "val_cost", "val_accuracy"} or callable, default "train_cost"
        What is watched, as for :class:`bpcore.callbacks.EarlyStopping`.
    mode : {"min", "max"}, optional
        Needed with a callable ``monitor``.
    """

    def __init__(self, lr: float | None = None, *, tol: float = 1e-4, patience: int = 2,
                 factor: float = 5.0, min_lr: float = 1e-6, monitor="train_cost",
                 mode: str | None = None):
        super().__init__(lr)
        self.patience = check_int("patience", patience, 1)
        self.factor = check_real("factor", factor, minimum=1.0)
        self.min_lr = check_real("min_lr", min_lr, minimum=0.0)
        self._read, mode = resolve_monitor(monitor, mode)
        self._plateau = Plateau(mode, tol)
        self._current: float | None = None
        #: True once a plateau was met with the rate already at most ``min_lr``.
        self.exhausted = False

    def _lr_at(self, e: int) -> float:
        return self.base_lr if self._current is None else self._current

    def step(self, history: History | None = None) -> None:
        if history is None:
            raise TypeError("Adaptive.step needs the history of the epochs so far")
        current = self.lr
        self._plateau.update(self._read(history))
        if self._plateau.wait >= self.patience:
            if current <= self.min_lr:
                self.exhausted = True
            else:
                self._current = current / self.factor
                self._plateau.wait = 0
        super().step(history)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "current": self._current, "exhausted": self.exhausted,
                **self._plateau.state_dict()}

    def _load_extra(self, state: dict) -> None:
        current = state["current"]
        self._current = None if current is None else check_real("current", current, minimum=0.0)
        self.exhausted = bool(state["exhausted"])
        self._plateau.load_state_dict(state)


#: Every schedule class by name (as ``state_dict()["type"]`` gives it).
SCHEDULES = {cls.__name__: cls for cls in
             (Constant, StepDecay, Exponential, Cosine, InverseScaling, Adaptive)}


def check_schedule(schedule) -> Schedule | None:
    """``fit``'s ``schedule`` argument: None or a :class:`Schedule`."""
    if schedule is not None and not isinstance(schedule, Schedule):
        raise TypeError("schedule must be a bpcore.schedules.Schedule (Constant, StepDecay, "
                        "Exponential, Cosine, InverseScaling, Adaptive) or None, got "
                        f"{type(schedule).__name__}")
    return schedule


__all__ = ["Schedule", "Constant", "StepDecay", "Exponential", "Cosine", "InverseScaling",
           "Adaptive", "SCHEDULES"]
