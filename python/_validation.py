"""Checks and conversions of user data and training arguments.

Every public entry point of :class:`bpcore.Network` and of the reference goes
through these, so that both reject the same inputs with the same messages:
``TypeError`` for a wrong kind of thing, ``ValueError`` for a wrong value, each
naming the argument, what was expected and what was received.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._config import Architecture


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


def _check_finite(name: str, arr: np.ndarray) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def as_inputs(X, arch: Architecture, name: str = "X") -> tuple[np.ndarray, bool]:
    """X as a C-contiguous (n, n_0) array of the network's dtype.

    A 1-D array of length n_0 is taken as one example; the flag returned says
    so, for callers that give back a 1-D result.
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
    _check_finite(name, arr)
    with np.errstate(over="ignore"):  # float64 -> float32 can overflow: checked next
        out = np.ascontiguousarray(arr, dtype=arch.dtype)
    if arr.dtype.kind == "f" and not np.isfinite(out).all():
        raise ValueError(f"{name} has values beyond the range of {arch.dtype.name} (infinite "
                         "after conversion)")
    return out, single


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
    _check_finite(name, arr)
    with np.errstate(over="ignore"):  # float64 -> float32 can overflow: checked next
        out = np.ascontiguousarray(arr, dtype=arch.dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} has values beyond the range of {arch.dtype.name} (infinite "
                         "after conversion)")
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


def _show(value) -> str:
    """repr(value) for a message, shortened (a huge int has thousands of digits)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits() cannot be printed
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 80 else text[:60] + "..."


def check_real(name: str, value, *, minimum: float | None = None,
               below: float | None = None) -> float:
    """A finite real scalar, optionally with minimum <= value < below."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {_show(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int or Fraction beyond the float range
        raise ValueError(f"{name} must be finite, got {_show(value)} (beyond the float "
                         "range)") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if below is not None and value >= below:
        raise ValueError(f"{name} must be < {below}, got {value}")
    return value


def check_name(name: str, value, allowed) -> str:
    """A string among ``allowed`` (an activation, cost, init ... name)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(allowed)}; got {value!r}")
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: {name} must be one of {list(allowed)}")
    return value


def check_int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    """An integer >= minimum, and <= maximum if given (bools are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {_show(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {_show(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {_show(value)}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """A bool (or NumPy bool); anything else, even if it has a truth value, is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {_show(value)}")
    return bool(value)


#: The most threads a network may be asked to use.  Far above any core count
#: bpcore runs on; asking the OpenMP runtime for a million threads crashed the
#: process (it cannot create them), so the request is refused up front.
MAX_THREADS = 1024


def check_num_threads(n, name: str = "num_threads") -> int | None:
    """A thread count: None (follow the default) or an int in [1, MAX_THREADS]."""
    return None if n is None else check_int(name, n, 1, MAX_THREADS)


def as_path(name: str, value) -> str:
    """A file path given as str, bytes or os.PathLike, as a str."""
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike file path, got "
                        f"{type(value).__name__} {_show(value)}")
    return os.fsdecode(os.fspath(value))


def check_fit_args(epochs, batch_size, lr, l2, momentum) -> tuple[int, int, float, float, float]:
    """The scalar arguments of ``fit``, checked."""
    return (check_int("epochs", epochs, 0),
            check_int("batch_size", batch_size, 1),
            check_real("lr", lr, minimum=0.0),
            check_real("l2", l2, minimum=0.0),
            check_real("momentum", momentum, minimum=0.0, below=1.0))


def epoch_order(rng: np.random.Generator, n: int, shuffle: bool) -> np.ndarray:
    """The order in which one epoch visits the n training examples."""
    return rng.permutation(n).astype(np.intp) if shuffle else np.arange(n, dtype=np.intp)
