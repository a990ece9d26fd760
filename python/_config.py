"""Names a network is described by, their checks, and parameter initialisation.

Shared by the compiled :class:`bpcore.Network` and the pure-Python
:class:`bpcore.reference.Network`, so that both accept exactly the same
architectures and, for the same ``seed``, start from bitwise the same
parameters.  The *math* of each activation and cost lives separately in the
Cython kernels (``bpcore/_math.pxd``) and in ``reference.py``; this module only
knows their names, which it reads from the kernels' codes (``bpcore/_codes.h``,
exported as the enums ``Activation`` and ``Cost``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._checks import check_int, check_name
from ._dispatch import kernels as _kernels


def _names(codes) -> tuple[str, ...]:
    """The member names of a kernels' enum, lower case, in the order of their codes."""
    return tuple(member.name.lower() for member in sorted(codes, key=int))


#: Activation names; ``ACTIVATIONS[code]`` is the kernels' ``Activation`` of that code.
ACTIVATIONS = _names(_kernels.Activation)
#: Cost names; ``COSTS[code]`` is the kernels' ``Cost`` of that code.
COSTS = _names(_kernels.Cost)
#: Initialisation schemes (see :func:`init_parameters`).
INITS = ("gaussian", "scaled_gaussian", "xavier", "he")
#: Floating-point types a network can compute in.
DTYPES = ("float32", "float64")

#: Slope of ``leaky_relu`` for z <= 0 (the kernels use the same constant).
LEAKY_SLOPE = 0.01

#: Output activations each cost may be paired with.  The fused output errors
#: delta^L = a - y hold only for sigmoid + cross_entropy and softmax +
#: log_likelihood; softmax has a non-diagonal Jacobian, so the seeds' element-wise
#: delta^L = dC/da (.) sigma'(z^L) does not apply to it and it is accepted only
#: with log_likelihood.
_ALLOWED_OUTPUT = {
    "quadratic": ("identity", "sigmoid", "tanh", "relu", "leaky_relu"),
    "squared_error": ("identity", "sigmoid", "tanh", "relu", "leaky_relu"),
    "cross_entropy": ("sigmoid",),
    "log_likelihood": ("softmax",),
}


@dataclass(frozen=True)
class Architecture:
    """A validated description of a fully-connected network.

    ``sizes[0]`` is the number of inputs; layer ``l`` (1-based, as in the
    seeds) has ``sizes[l]`` neurons and activation ``activations[l - 1]``.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    cost: str
    dtype: np.dtype

    @property
    def n_layers(self) -> int:
        """L, the number of weight layers."""
        return len(self.sizes) - 1


def resolve_dtype(dtype: object) -> np.dtype:
    """``"float32"``/``"float64"`` (or the NumPy types) as a native-byte-order ``np.dtype``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        error = ValueError if isinstance(dtype, str) else TypeError
        raise error(f"dtype must be one of {list(DTYPES)}, got {dtype!r}") from None
    if resolved.name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {resolved.name!r}")
    # ">f8" is float64 too, but the kernels compute in the machine's byte order
    return np.dtype(resolved.name)


def make_architecture(sizes, activations, cost, dtype) -> Architecture:
    """Check a (sizes, activations, cost, dtype) description; raise on anything unsafe."""
    # a set or a dict has a length too, but no order of layers
    if (isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray))
            or getattr(sizes, "ndim", 1) != 1):
        raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least an input and an output layer, got {list(sizes)!r}")
    sizes = tuple(check_int(f"sizes[{i}]", s, 1) for i, s in enumerate(sizes))
    n_layers = len(sizes) - 1
    n_params = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    if n_params * 8 > sys.maxsize:  # more bytes than an array can address
        raise ValueError(f"sizes {list(sizes)} make a network of {n_params:.3g} parameters, "
                         "too many to address in memory")

    if isinstance(activations, str):
        activations = (activations,) * n_layers
    elif isinstance(activations, Sequence) and not isinstance(activations, bytes):
        activations = tuple(activations)
        if len(activations) != n_layers:
            raise ValueError(
                f"activations must be one name or a list of len(sizes) - 1 = {n_layers} "
                f"names, got {len(activations)}: {list(activations)!r}")
    else:
        raise TypeError(f"activations must be a string or a list of strings, got {activations!r}")
    for i, act in enumerate(activations):
        check_name(f"activations[{i}]", act, ACTIVATIONS)
    if "softmax" in activations[:-1]:
        raise ValueError(
            "softmax is only allowed as the output layer's activation, got activations="
            f"{list(activations)!r}")

    cost = check_name("cost", cost, COSTS)
    allowed = _ALLOWED_OUTPUT[cost]
    if activations[-1] not in allowed:
        raise ValueError(
            f"cost {cost!r} needs an output activation in {list(allowed)}, got "
            f"{activations[-1]!r}" + (" (use cost='log_likelihood' with softmax)"
                                      if activations[-1] == "softmax" else ""))
    if activations[-1] == "softmax" and sizes[-1] < 2:
        raise ValueError("a softmax output layer needs at least 2 neurons, got sizes[-1] = 1")
    return Architecture(sizes, activations, cost, resolve_dtype(dtype))


def make_rngs(seed) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for (initialisation, shuffling) from one ``seed``.

    ``seed`` is None (fresh entropy) or an integer >= 0.
    """
    if seed is not None:
        seed = check_int("seed", seed, 0)
    init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init_seq), np.random.default_rng(shuffle_seq)


def init_parameters(arch: Architecture, init: str, rng: np.random.Generator) -> tuple[list, list]:
    """Random initial ``(biases, weights)`` as float64 lists, W^l of shape (n_l, n_{l-1}).

    - ``gaussian``: every weight and bias N(0, 1) (Nielsen's network.py);
    - ``scaled_gaussian``: weights N(0, 1/n_in), biases N(0, 1) (network2.py);
    - ``xavier``: weights U(-r, r), r = sqrt(6 / (n_in + n_out)), biases 0;
    - ``he``: weights N(0, 2/n_in), biases 0.

    Biases of all layers are drawn first, then weights, from ``rng``, always in
    float64, so the same seed gives the same network in either dtype (rounded
    once to float32).
    """
    check_name("init", init, INITS)
    pairs = list(zip(arch.sizes[:-1], arch.sizes[1:]))
    if init in ("gaussian", "scaled_gaussian"):
        biases = [rng.standard_normal(n_out) for _, n_out in pairs]
    else:
        biases = [np.zeros(n_out) for _, n_out in pairs]
    weights = []
    for n_in, n_out in pairs:
        if init == "gaussian":
            w = rng.standard_normal((n_out, n_in))
        elif init == "scaled_gaussian":
            w = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
        elif init == "xavier":
            r = np.sqrt(6.0 / (n_in + n_out))
            w = rng.uniform(-r, r, size=(n_out, n_in))
        else:  # he
            w = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        weights.append(w)
    return biases, weights
