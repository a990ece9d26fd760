"""Conversion and checks of the data: inputs X, targets Y, class labels, the epoch's order.

Every public entry point of :class:`bpcore.Network` and of the reference goes
through these (the scalar arguments through :mod:`bpcore._checks`), so that both
reject the same data with the same messages.  Sample and class weights, when
given, are converted here too.

Finiteness, in at most one pass
-------------------------------
An input is refused if it holds NaN or inf, or values that become inf in the
network's dtype.  Checking costs a pass over X, which for a small network is a
sizeable share of an epoch, so:

* X that is already C-contiguous of the network's dtype is used as it is (no
  copy), and its check is one read: sums of its entries (:func:`all_finite`).
  A sum is NaN or infinite whenever one of its terms is (inf + x = inf,
  inf - inf = NaN, NaN + x = NaN, in any order of summation), so finite sums
  prove X finite; a non-finite sum can also be an overflow of finite terms, and
  only then is the exact element-wise test run.
* Any other X (another dtype, byte order or layout) is converted in blocks of
  rows, each checked by the same sum while it is still in the cache: conversion
  and check together are one pass over X.
* ``fit`` on the compiled network skips even that read when X needs no copy
  (``check_finite=False``): training proves X finite.  A non-finite x_ik makes
  every term delta_j * x_ik of the gradient of W^1 non-finite (0 * inf = NaN,
  d * inf = +-inf, NaN * d = NaN), so the mini-batch's gradient sums, and W^1
  after its step (lr * NaN is NaN even for lr = 0), are non-finite at the end
  of the first epoch, which visits every row.  ``fit`` then restores the
  network and its shuffling generator and refuses X exactly as the up-front
  check would have.  This needs the kernels to multiply every delta by every
  input, zeros included (no skipping of zero deltas);
  ``tests/test_input_checks.py`` checks it for every activation, cost, dtype,
  optimizer, sample weight and position.  Should a later check of ``fit`` fail
  (Y, the validation data, the optimizer ...) while X is not finite, X is
  refused instead (:func:`non_finite_first`): the errors come in the order of
  an up-front check.  The reference, whose NumPy BLAS may skip zero
  multipliers, checks X up front.
"""
from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._config import Architecture

__all__ = ["all_finite", "as_inputs", "as_labels", "as_targets", "check_finite", "epoch_order",
           "non_finite_first", "one_hot"]

#: Rows of X are converted this many bytes of output at a time: a block stays in the
#: cache (L2) between its conversion and its finiteness check.
_BLOCK_BYTES = 1 << 19
#: Entries per row when :func:`all_finite` sums a contiguous array.
_SUM_WIDTH = 4096


def _check_real_dtype(name: str, arr: np.ndarray) -> None:
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")


def _as_array(name: str, value) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be read as a numeric array: {exc}") from None
    _check_real_dtype(name, arr)
    return arr


def all_finite(arr: np.ndarray) -> bool:
    """Whether every entry of a float array is finite, reading it once without a temporary
    of its size: sums of its entries, then, only if one of them is not finite (a
    non-finite entry, or finite entries that overflowed the sum), the exact test.

    A C-contiguous array is summed as rows of ``_SUM_WIDTH`` entries added column by
    column (vector adds into an accumulator that stays in L1), its tail apart.
    """
    if arr.dtype.kind != "f" or arr.size == 0:
        return True
    if arr.flags.c_contiguous:
        flat = arr.reshape(-1)
        body = flat.size - flat.size % _SUM_WIDTH
        with np.errstate(over="ignore", invalid="ignore"):
            tail = np.add.reduce(flat[body:])
            if np.isfinite(tail) and (body == 0 or np.isfinite(np.add.reduce(
                    flat[:body].reshape(-1, _SUM_WIDTH), axis=0)).all()):
                return True
    return bool(np.isfinite(arr).all())


def _non_finite_error(name: str, arr: np.ndarray) -> ValueError:
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    return ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def check_finite(name: str, arr: np.ndarray) -> None:
    """ValueError if the float array holds NaN or inf, saying how many."""
    if not all_finite(arr):
        raise _non_finite_error(name, arr)


@contextlib.contextmanager
def non_finite_first(name: str, arr: np.ndarray, deferred: bool = True):
    """Around the checks that follow ``arr``'s when its finiteness check is ``deferred``:
    if one of them fails while ``arr`` is not finite, ``arr`` is refused instead, as
    the up-front check would have done first."""
    if not deferred:
        yield
        return
    try:
        yield
    except Exception:
        if all_finite(arr):
            raise
        raise _non_finite_error(name, arr) from None


def _converted(name: str, arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous copy of the 2-D ``arr`` in ``dtype``, converted and checked for
    finiteness block by block (one pass over ``arr``)."""
    out = np.empty(arr.shape, dtype=dtype)
    check = arr.dtype.kind == "f"  # integers and bools are finite, also in float32
    rows = max(1, _BLOCK_BYTES // max(1, arr.shape[1] * dtype.itemsize))
    with np.errstate(over="ignore", invalid="ignore"):  # float64 -> float32 can overflow
        for start in range(0, arr.shape[0], rows):
            block = out[start:start + rows]
            np.copyto(block, arr[start:start + rows], casting="unsafe")
            if check and not all_finite(block):
                check_finite(name, arr)  # NaN or inf already in the input
                raise ValueError(f"{name} has values beyond the range of {dtype.name} "
                                 "(infinite after conversion)")
    return out


def _in_dtype(name: str, arr: np.ndarray, dtype: np.dtype, check: bool = True) -> np.ndarray:
    """The 2-D ``arr`` as a finite C-contiguous array of ``dtype``: itself if it already is
    one (checked unless ``check`` is false), else a checked copy."""
    if arr.dtype != dtype or not arr.flags.c_contiguous:
        return _converted(name, arr, dtype)
    if check:
        check_finite(name, arr)
    return arr


def as_inputs(X, arch: Architecture, name: str = "X", *,
              defer_finite_check: bool = False) -> tuple[np.ndarray, bool]:
    """X as a finite C-contiguous (n, n_0) array of the network's dtype.

    X that already is one is returned as it is, not copied.  ``defer_finite_check``
    skips the finiteness check of such an X (a converted copy is always checked: that
    costs nothing more); the caller must then prove X finite otherwise (see the module
    docstring).  A 1-D array of length n_0 is taken as one example; the flag returned
    says so, for callers that give back a 1-D result.
    """
    arr = _as_array(name, X)
    n_in = arch.sizes[0]
    single = arr.ndim == 1
    if single:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_examples, {n_in}) (or 1-D for one example), "
            f"got {arr.ndim}-D shape {arr.shape}")
    if arr.shape[1] != n_in:
        raise ValueError(
            f"{name} must have {n_in} columns (sizes[0]), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    return _in_dtype(name, arr, arch.dtype, check=not defer_finite_check), single


def one_hot(labels: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    """Rows e_{label}: the (n, n_classes) one-hot encoding of integer labels."""
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def as_labels(labels, n: int, n_classes: int, name: str = "labels") -> np.ndarray:
    """Integer class labels of length n, each in [0, n_classes)."""
    arr = _as_array(name, labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer class labels, got {arr.ndim}-D shape {arr.shape}")
    if arr.dtype.kind not in "iu" and not (
            arr.dtype.kind == "f" and arr.size and np.isfinite(arr).all()
            and (arr == np.round(arr)).all()):
        raise TypeError(f"{name} must be integer class labels, got dtype {arr.dtype}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have one entry per example ({n}), got {arr.shape[0]}")
    upper = max(n_classes, 2)  # a single sigmoid output classifies into {0, 1}
    # checked before the conversion to intp, which would wrap a float label like 1e300
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise ValueError(
            f"{name} must lie in [0, {upper - 1}] for an output layer of {n_classes} neuron(s), "
            f"got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.intp, copy=False)


def as_targets(Y, n: int, arch: Architecture, name: str = "Y") -> np.ndarray:
    """Targets as a C-contiguous (n, n_L) array of the network's dtype.

    Y may be (n, n_L) targets or 1-D integer class labels, which are one-hot
    encoded.  Targets are checked against what the cost can take: in [0, 1] for
    ``cross_entropy``, rows that are probability vectors for ``log_likelihood``.
    """
    arr = _as_array(name, Y)
    n_out = arch.sizes[-1]
    if arr.ndim == 1:
        if arr.dtype.kind not in "iu":
            raise TypeError(
                f"1-D {name} must be integer class labels, got dtype {arr.dtype}; "
                f"pass targets of shape ({n}, {n_out}) instead")
        if n_out < 2:
            raise ValueError(
                f"class labels need an output layer of at least 2 neurons to one-hot encode, "
                f"got sizes[-1] = {n_out}; pass {name} with shape ({n}, 1)")
        labels = as_labels(arr, n, n_out, name)
        return one_hot(labels, n_out, arch.dtype)
    if arr.ndim != 2 or arr.shape[1] != n_out:
        raise ValueError(
            f"{name} must have shape ({n}, {n_out}) or be {n} integer labels, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have one row per example of X ({n}), got {arr.shape[0]}")
    out = _in_dtype(name, arr, arch.dtype)
    if arch.cost == "cross_entropy" and ((out < 0).any() or (out > 1).any()):
        raise ValueError(f"{name} must lie in [0, 1] for cost 'cross_entropy'")
    if arch.cost == "log_likelihood":
        # delta^L = a - y needs sum_j y_j = 1; sqrt(eps) is the precision the
        # arithmetic itself preserves in that sum.
        tol = math.sqrt(np.finfo(arch.dtype).eps)
        if (out < 0).any() or (np.abs(out.sum(axis=1) - 1) > tol).any():
            raise ValueError(
                f"rows of {name} must be probability vectors (>= 0, summing to 1) for cost "
                "'log_likelihood'; pass integer labels to have them one-hot encoded")
    return out


def epoch_order(rng: np.random.Generator, n: int, shuffle: bool) -> np.ndarray:
    """The order in which one epoch visits the n training examples."""
    if not shuffle:
        return np.arange(n, dtype=np.intp)
    return rng.permutation(n).astype(np.intp, copy=False)  # int64: already intp on 64 bits
