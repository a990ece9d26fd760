"""Files of Nielsen's network2.py: its ``Network.save`` JSON, read and written.

network2.py's ``save`` writes one JSON object::

    {"sizes": [784, 30, 10],
     "weights": [W^1 as nested lists (n_1 rows of n_0), W^2, ...],
     "biases":  [b^1 as nested lists (n_1 rows of 1 entry), b^2, ...],
     "cost": "QuadraticCost" or "CrossEntropyCost"}

and its ``load`` rebuilds ``Network(sizes, cost)`` with sigmoid neurons in
every layer.  Its ``QuadraticCost`` is 1/2 ||a - y||^2 with
delta^L = (a - y) sigma'(z^L) (bpcore's ``quadratic``), its ``CrossEntropyCost``
the binary cross-entropy with delta^L = a - y (``cross_entropy``).  Numbers are
float64; ``json`` writes the shortest repr that reads back as the same double,
so a float64 network survives the round trip bitwise (and a float32 one, whose
values are float64 values too).
"""
from __future__ import annotations

import json
import math

import numpy as np

#: network2.py's cost class names and bpcore's names for the same costs.
COSTS = {"QuadraticCost": "quadratic", "CrossEntropyCost": "cross_entropy"}


def _refuse(net) -> str | None:
    """Why network2.py cannot hold ``net``, or None."""
    if any(act != "sigmoid" for act in net.activations):
        return (f"its activations are {list(net.activations)}; network2.py has sigmoid neurons "
                "in every layer")
    if net.cost_name not in COSTS.values():
        return (f"its cost is {net.cost_name!r}; network2.py has QuadraticCost (quadratic) and "
                "CrossEntropyCost (cross_entropy)")
    return None


def save(net, path) -> None:
    """Write ``net`` as network2.py's ``save`` does (see :meth:`bpcore.Network.save_network2`)."""
    from ._checks import as_path

    path = as_path("path", path)
    reason = _refuse(net)
    if reason is not None:
        raise ValueError(f"a network2.py file cannot hold this network: {reason}")
    cost = next(name for name, ours in COSTS.items() if ours == net.cost_name)
    data = {"sizes": list(net.sizes),
            "weights": [np.asarray(w, dtype=np.float64).tolist() for w in net.weights],
            "biases": [np.asarray(b, dtype=np.float64).reshape(-1, 1).tolist()
                       for b in net.biases],
            "cost": cost}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file)


def _array(value, shape, what: str) -> np.ndarray:
    """A float64 array of ``shape`` from nested lists of numbers, or a ValueError."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} is not a nested list of numbers of shape {shape} ({exc})") \
            from None
    if arr.shape != shape:
        raise ValueError(f"{what} must have shape {shape} (network2.py's layout), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    return arr


def read(path) -> dict:
    """The contents of a network2.py file, checked: ``sizes``, ``cost`` (bpcore's name),
    ``weights`` and ``biases`` (float64, bpcore's shapes).  ValueError names what is wrong."""
    from ._checks import as_path

    path = as_path("path", path)
    try:
        with open(path, "rb") as file:
            data = json.loads(file.read().decode("utf-8"),
                              parse_constant=lambda name: math.nan)  # NaN/Infinity: refused below
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} is not a network2.py file: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a network2.py file: it holds a JSON "
                         f"{type(data).__name__}, not an object")
    expected = {"sizes", "weights", "biases", "cost"}
    if set(data) != expected:
        missing, extra = sorted(expected - set(data)), sorted(set(data) - expected)
        raise ValueError(f"{path} is not a network2.py file: it needs exactly the keys "
                         f"{sorted(expected)}" + (f"; missing {missing}" if missing else "")
                         + (f"; unexpected {extra}" if extra else ""))
    sizes = data["sizes"]
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(type(s) is int and s >= 1 for s in sizes)):
        raise ValueError(f"{path}: 'sizes' must be a list of at least 2 positive integers, got "
                         f"{str(sizes)[:80]}")
    cost = data["cost"]
    if cost not in COSTS:
        raise ValueError(f"{path}: 'cost' must be one of {sorted(COSTS)}, got {str(cost)[:80]!r}")
    L = len(sizes) - 1
    for key in ("weights", "biases"):
        if not isinstance(data[key], list) or len(data[key]) != L:
            raise ValueError(f"{path}: {key!r} must be a list of {L} arrays (one per layer of "
                             f"sizes {sizes}), got {type(data[key]).__name__}"
                             + (f" of {len(data[key])}" if isinstance(data[key], list) else ""))
    weights = [_array(w, (sizes[l], sizes[l - 1]), f"{path}: weights[{l - 1}]")
               for l, w in enumerate(data["weights"], start=1)]
    biases = [_array(b, (sizes[l], 1), f"{path}: biases[{l - 1}]").reshape(-1)
              for l, b in enumerate(data["biases"], start=1)]
    return {"sizes": sizes, "cost": COSTS[cost], "weights": weights, "biases": biases}
