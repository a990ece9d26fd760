"""The no-progress check of ``fit``: warnings for a network that learns nothing.

A network can fail to learn without ever producing NaN: ReLUs that all died,
sigmoid units pinned at 0 or 1, inputs a hundred times larger than the
initialisation expects.  ``fit`` then "succeeds" with chance accuracy.  Two
checks turn that into a :class:`bpcore.ConvergenceWarning`; both are cheap next
to one epoch, and neither changes what ``fit`` computes.

**Input scale**, once per ``fit``, before training.  The initialisations
(``scaled_gaussian``, ``xavier``, ``he``) choose the spread of the weights so
that pre-activations are of order 1 for inputs of order 1.  The scale of the
inputs is judged by their bulk, the 99th percentile of |x| over the entries of
evenly spaced rows (about ``_SCALE_ENTRIES`` entries), not by their maximum: standardised
data legitimately hold outliers (scikit-learn's digits after ``StandardScaler``
reach |x| = 42 while 99% of the entries stay below 5), where raw digits are
0..16 and raw MNIST 0..255.  Warns outside ``_SCALE_RANGE``.

**No progress**, after the first epochs (the first epoch >= 2 by which
``_MIN_STEPS`` mini-batch steps were taken) and after the last one.  The
reference point is the *constant cost*: the mean cost of the best prediction
that is the same for every input (the mean target, within the output
activation's range; for one-hot labels: the class frequencies).  A network
reaches it by learning its output biases alone, and a freshly initialised one
starts at or above it, so "the training cost has not fallen below its starting
value" is, for a fresh network, "it is not below the constant cost".  Comparing
with the constant cost rather than the first epoch's also holds for a network
that ``fit`` continues to train (it starts low and may rightly stay flat), and
covers the failures that do lower the cost from a huge start: when every unit of
a hidden layer is dead, the output no longer depends on the input, so the cost
cannot fall below the constant cost.  The training cost is the mean over the
epoch that ``fit`` records anyway; a fit of one epoch is not judged (its mean
includes the start).  Only when the check fails is the cause looked for, by a
forward pass of up to ``_PROBE_ROWS`` rows in NumPy: hidden layers whose units
are all dead (relu 0 for every input) or saturated, an output layer saturated at
the ends of its range, inputs off scale, and failing all these the learning
rate.
"""
from __future__ import annotations

import warnings

import numpy as np

from .exceptions import ConvergenceWarning

#: Entries of X (in whole, evenly spaced rows) on which the input scale is measured:
#: a percentile is a partial sort of its sample, and ``fit`` does it before every
#: training (1024 rows of 784 took a third of a 784-30-10 epoch on 20,000 examples).
_SCALE_ENTRIES = 8_192
#: Typical |x| outside this range warns: an order of magnitude from the ~1 the
#: initialisations assume (raw digits: 16, raw MNIST: 255).
_SCALE_RANGE = (1e-2, 10.0)
#: Mini-batch steps before the cost is judged.
_MIN_STEPS = 100
#: "Below the constant cost" means by at least this fraction of it.
_MARGIN = 0.01
#: Rows of the forward passes that look for stuck outputs and for the cause.
_PROBE_ROWS = 256
#: Share of those rows with an output stuck at the wrong end that warns.
_STUCK_ROWS = 0.1
_SCALE_ADVICE = ("scale the inputs (e.g. sklearn.preprocessing.StandardScaler, or divide "
                 "pixel values by their maximum)")
#: A sigmoid/tanh unit with |z| above this has sigma' < 1e-6 (4 sigma'(z) ~ 4 e^-|z|).
_SATURATED_Z = 15.0

#: Range of the output activations (the constant prediction is clipped to it).
_RANGES = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0),
           "relu": (0.0, np.inf)}

#: ``warnings.warn``'s stacklevel that names the caller of ``fit``: _warn <- a
#: ProgressCheck method <- BaseNetwork.fit <- its _public wrapper <- the caller.
_STACKLEVEL = 5


def typical_scale(X: np.ndarray) -> float:
    """The 99th percentile of |x| over the entries of evenly spaced rows, about
    ``_SCALE_ENTRIES`` of them (at least one row); NaN when a sampled entry is not
    finite (``fit`` refuses such an X itself, so there is nothing to judge)."""
    n_rows = max(1, _SCALE_ENTRIES // max(1, X.shape[1]))
    rows = np.abs(X[::max(1, -(-X.shape[0] // n_rows))])
    if not np.isfinite(rows).all():
        return float("nan")
    return _percentile(rows.reshape(-1), 99)


def _percentile(a: np.ndarray, q: float) -> float:
    """``np.percentile(a, q)`` of a 1-D finite array (its default, linear interpolation
    between the order statistics around (n - 1) q / 100), from a partial sort.

    np.percentile goes through np.unique, whose first call imports numpy.ma: a fixed
    cost of the first ``fit`` of a process several times that of the percentile.
    """
    position = (a.size - 1) * (q / 100)
    lo = int(position)
    hi = min(lo + 1, a.size - 1)
    part = np.partition(a, (lo, hi))
    low, high, t = float(part[lo]), float(part[hi]), position - lo
    # np.percentile's lerp, exact at both ends
    return high - (high - low) * (1 - t) if t >= 0.5 else low + (high - low) * t


def constant_cost(cost: str, output_activation: str, Y: np.ndarray, weights=None) -> float:
    """Mean cost over the rows of Y of the best output that is the same for every row.

    With ``weights`` (one per row), the weighted mean, as ``fit`` records the
    training cost then; the best constant output is the weighted mean target.
    """
    Y = np.asarray(Y, dtype=np.float64)
    lo, hi = _RANGES.get(output_activation, (-np.inf, np.inf))
    a = np.clip(np.average(Y, axis=0, weights=weights), lo, hi)
    if cost in ("quadratic", "squared_error"):
        per_row = np.sum((a - Y) ** 2, axis=1)
        return float(np.average(per_row, weights=weights)
                     * (0.5 if cost == "quadratic" else 1.0))
    if cost == "log_likelihood":
        # the constant softmax output is the mean target normalised, p = a / sum(a); the
        # cost is linear in y, so its (weighted) mean over the rows is -sum_j a_j ln p_j
        # (no second pass over Y); a class no row with weight > 0 holds adds nothing
        present = a > 0
        return float(-np.sum(a[present] * np.log(a[present] / a.sum())))
    with np.errstate(divide="ignore", invalid="ignore"):
        # cross_entropy: a_j is 0 or 1 only where every y_j is
        terms = (np.where(Y != 0, Y * np.log(a), 0.0)
                 + np.where(Y != 1, (1 - Y) * np.log1p(-a), 0.0))
    return float(-np.average(np.sum(terms, axis=1), weights=weights))


class ProgressCheck:
    """The two checks for one ``fit``: construct before training, call after each epoch."""

    def __init__(self, net, X, Y, epochs: int, batch_size: int, lr, momentum, weights=None):
        self.net, self.X, self.Y, self.weights = net, X, Y, weights
        self.lr, self.momentum = lr, momentum
        steps = -(-X.shape[0] // batch_size)  # per epoch
        first = max(2, -(-_MIN_STEPS // steps))
        self.check_at = {e for e in (first, epochs) if 2 <= e <= epochs and first <= e}
        self.warned = False
        self.scale = typical_scale(X)
        if self._off_scale():
            effect = ("saturated, or with outputs far larger than 1" if self.scale > 1
                      else "almost blind to them")
            self._warn(f"the inputs X are on a scale far from the one the initialisation "
                       f"expects: 99% of their entries have |x| <= {self.scale:.3g}, where "
                       f"{net.init!r} initial weights assume values of order 1, so the first "
                       f"layer starts {effect}; {_SCALE_ADVICE}")

    def after_epoch(self, epoch: int, history) -> None:
        if self.warned or epoch not in self.check_at:
            return
        cost = history.train_cost[-1]
        floor = constant_cost(self.net.cost_name, self.net.activations[-1], self.Y,
                              self.weights)
        stuck = self._stuck_rows()
        if cost < (1 - _MARGIN) * floor and stuck < _STUCK_ROWS:
            return
        self.warned = True
        if cost >= (1 - _MARGIN) * floor:
            what = (f"no progress: after {epoch} epochs the training cost ({cost:.4g}) is no "
                    f"lower than {floor:.4g}, the cost of predicting the same output for "
                    "every input, so the network has learnt nothing from its inputs.")
        else:
            what = (f"stalled: after {epoch} epochs {stuck:.0%} of the training examples "
                    "checked have an output saturated at the wrong end of its range, where "
                    f"the gradient of the {self.net.cost_name} cost vanishes (sigma' < 1e-6): "
                    "they no longer learn.")
        self._warn(f"{what} {self._cause(stuck >= _STUCK_ROWS)}")

    def _off_scale(self) -> bool:
        return (np.isfinite(self.scale) and self.scale > 0
                and not _SCALE_RANGE[0] <= self.scale <= _SCALE_RANGE[1])

    def _probe(self):
        """Up to ``_PROBE_ROWS`` evenly spaced rows of X and Y."""
        step = max(1, self.X.shape[0] // _PROBE_ROWS)
        return (np.ascontiguousarray(self.X[::step][:_PROBE_ROWS]),
                np.ascontiguousarray(self.Y[::step][:_PROBE_ROWS]))

    def _stuck_rows(self) -> float:
        """Fraction of the probe rows with an output unit saturated at the wrong end.

        Only where saturation stops learning: a quadratic or squared-error cost on
        sigmoid or tanh outputs, whose delta^L carries sigma'(z^L).  (Cross-entropy
        with sigmoid and log-likelihood with softmax cancel sigma': delta^L = a - y.)
        """
        act = self.net.activations[-1]
        if self.net.cost_name not in ("quadratic", "squared_error") or act not in ("sigmoid",
                                                                                 "tanh"):
            return 0.0
        X, Y = self._probe()
        with np.errstate(all="ignore"):
            a = np.asarray(self.net._forward(X), dtype=np.float64)
        lo, hi = _RANGES[act]
        slope = a * (1 - a) if act == "sigmoid" else 1 - a * a  # sigma' from a
        wrong = np.abs(a - Y) > (hi - lo) / 2
        return float(np.mean(np.any((slope < 1e-6) & wrong, axis=1)))

    @staticmethod
    def _warn(message: str) -> None:
        warnings.warn(message, ConvergenceWarning, stacklevel=_STACKLEVEL)

    def _cause(self, stuck: bool = False) -> str:
        """The likely cause, and what to try, from a forward pass of a few rows.

        ``stuck``: outputs are saturated at the wrong end under a cost whose
        gradient carries sigma'."""
        from .reference import SIGMA

        net = self.net
        a = np.asarray(self._probe()[0], dtype=np.float64)
        found = []
        L = net.n_layers
        with np.errstate(all="ignore"):
            for l, (w, b, act) in enumerate(zip(net.weights, net.biases, net.activations), 1):
                # einsum, not BLAS: NumPy's OpenBLAS pool would spin on the cores
                # the rest of fit trains on (docs/threads-and-dtype.md)
                z = np.einsum("ij,kj->ik", a, np.asarray(w, dtype=np.float64)) + b
                if act == "softmax":
                    e = np.exp(z - z.max(axis=1, keepdims=True))
                    a = e / e.sum(axis=1, keepdims=True)
                else:
                    a = SIGMA[act](z)
                where = "the output layer" if l == L else f"hidden layer {l}"
                if act == "relu" and l < L and not np.any(a > 0):
                    found.append(f"every unit of {where} is dead (its relu outputs 0 for "
                                 "every input)")
                elif act in ("sigmoid", "tanh") and np.mean(np.abs(z) > _SATURATED_Z) > 0.99:
                    found.append(f"the {act} units of {where} are saturated (|z| > "
                                 f"{_SATURATED_Z:g}, where sigma' is below 1e-6)")
                elif act == "softmax" and np.mean(a.max(axis=1) > 1 - 1e-6) > 0.99:
                    found.append(f"{where} is saturated (softmax outputs of 0 and 1)")
        if not found and np.all(np.ptp(a, axis=0) <= 1e-8 * (1 + np.abs(a).max(axis=0))):
            found.append("the output is the same for every input (a hidden layer passes "
                         "nothing on)")
        tries = []
        if self._off_scale():
            found.append(f"the inputs are far from unit scale (99% of |x| <= {self.scale:.3g})")
            tries.append(_SCALE_ADVICE)
        lr = "the learning rate" if self.lr is None else f"the learning rate (lr={self.lr:g})"
        if stuck:
            tries.append("use a cost whose gradient does not vanish at saturation "
                         "(cross_entropy with sigmoid outputs, log_likelihood with softmax)")
        if found or stuck:
            tries.append(f"lower {lr}" + (f" or the momentum ({self.momentum:g})"
                                          if self.momentum else ""))
            if any("dead" in f for f in found):
                tries.append("use leaky_relu or a smaller initial scale")
            return (("Likely cause: " + "; ".join(found) + ". " if found else "")
                    + "Try: " + "; ".join(tries) + ".")
        return (f"No dead or saturated layer found: {lr} may be too small, or too large; or "
                "the inputs carry no information about the targets. Try a learning rate ten "
                "times smaller or larger, and check that X and Y are paired correctly.")
