"""Sample and class weights: their checks and what the kernels receive.

The cost of a set of rows with weights w is the weighted mean
sum_x w_x C_x / sum_x w_x, and ``backprop`` returns its gradient.  In ``fit``
each mini-batch step uses g = (1/m) sum_x (w_x / w_mean) dC_x/dtheta, w_mean the
mean weight over the training set: uniform weights give exactly the unweighted
steps (the kernels then get no weights at all, so the bits are those of an
unweighted fit), and a mini-batch of zero weights has a zero gradient.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._data import _as_array


def as_sample_weight(sample_weight, n: int, name: str = "sample_weight") -> np.ndarray | None:
    """``sample_weight`` as n float64 weights (>= 0, finite, not all zero), or None."""
    if sample_weight is None:
        return None
    w = _as_array(name, sample_weight)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one weight per example ({n}), got shape "
                         f"{w.shape}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise ValueError(f"{name} must be finite, got {int(np.sum(~np.isfinite(w)))} NaN or "
                         "infinite value(s)")
    if (w < 0).any():
        raise ValueError(f"{name} must be >= 0, got a minimum of {w.min()}")
    if not (w > 0).any():
        raise ValueError(f"{name} must not be all zero (the weighted mean cost would be 0/0)")
    return w


def labels_of(Y: np.ndarray) -> np.ndarray:
    """The class of each row of targets: argmax, or ``y >= 0.5`` for a single output."""
    if Y.shape[1] == 1:
        return (Y[:, 0] >= 0.5).astype(np.intp)
    return np.argmax(Y, axis=1)


def class_sample_weight(class_weight, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-example weights from ``class_weight``: a dict {class: weight} (classes not
    in it weigh 1) or ``"balanced"``, scikit-learn's n_samples / (n_classes *
    count(class)) over the classes present in ``labels``."""
    n_classes = max(n_classes, 2)  # a single sigmoid output has classes 0 and 1
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        counts = np.bincount(labels, minlength=n_classes)
        present = counts > 0
        table = np.ones(n_classes)
        table[present] = labels.shape[0] / (np.count_nonzero(present) * counts[present])
        return table[labels]
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class: weight}} or 'balanced', got "
                        f"{type(class_weight).__name__}")
    table = np.ones(n_classes)
    for key, value in class_weight.items():
        if (isinstance(key, (bool, np.bool_)) or not isinstance(key, (numbers.Integral,))
                or not 0 <= key < n_classes):
            raise ValueError(f"class_weight keys must be class labels 0..{n_classes - 1}, got "
                             f"{key!r}")
        if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
                or not np.isfinite(value) or value < 0):
            raise ValueError(f"class_weight[{key!r}] must be a finite number >= 0, got "
                             f"{value!r}")
        table[int(key)] = float(value)
    return table[labels]


def fit_weights(sample_weight, class_weight, Y: np.ndarray) -> np.ndarray | None:
    """The weights of ``fit``'s training examples (sample weights times class weights),
    or None when there are none or all are equal (then the steps are the unweighted
    ones, bit for bit)."""
    n = Y.shape[0]
    w = as_sample_weight(sample_weight, n)
    if class_weight is not None:
        cw = class_sample_weight(class_weight, labels_of(Y), Y.shape[1])
        w = cw if w is None else w * cw
        if not (w > 0).any():
            raise ValueError("sample_weight times class_weight is zero for every example")
    if w is None or np.all(w == w[0]):
        return None
    return w


def step_factors(w: np.ndarray | None, dtype) -> np.ndarray | None:
    """w_x / w_mean in the network's dtype: the factor of each example's delta^L in fit."""
    if w is None:
        return None
    return np.ascontiguousarray(w / np.mean(w), dtype=dtype)
