"""Generic checks of scalar arguments: reals, integers, bools, names, paths, thread counts.

Every public entry point of :class:`bpcore.Network` and of the reference goes
through these (and through :mod:`bpcore._data` for arrays), so that both reject
the same arguments with the same messages: ``TypeError`` for a wrong kind of
thing, ``ValueError`` for a wrong value, each naming the argument, what was
expected and what was received.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = ["MAX_THREADS", "as_path", "check_bool", "check_fit_args", "check_int", "check_name",
           "check_num_threads", "check_real"]


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
