"""Gradient checking: backpropagation against central finite differences of the cost.

For a parameter theta (one weight w^l_jk or bias b^l_j) the central difference

    fd = (C(theta + h) - C(theta - h)) / (2 h)

approximates dC/dtheta with two errors: truncation, h^2/6 |C'''|, and
rounding, about u |C| / h where u is the machine epsilon of the network's dtype
(each cost value carries an absolute error of a few ulps of |C|, and their
difference is divided by 2 h).  Their sum is smallest for h of order u^(1/3),
where both are of order u^(2/3): 6.1e-6 and ~4e-11 in float64, 4.9e-3 and
~2.4e-5 in float32.  That is the default step, scaled by ``max(1, |theta|)`` so that
theta +- h stays resolvable in the dtype for large parameters.

Agreement is measured per parameter by the relative error

    |g - fd| / max(|g|, |fd|, floor)

where g is the backpropagated derivative, and ``floor`` is the smallest
derivative the central difference can resolve to the tolerance: its rounding
error bound (see ``ROUNDING_ULPS``) divided by the tolerance.  Without a floor a
derivative that is zero, or lost in rounding noise (a saturated sigmoid, a dead
relu unit), would score a relative error of order 1 although backpropagation is
right; with it, such derivatives pass exactly when |g - fd| is within the
rounding error of the difference quotient.

Activations with a kink (``relu``, ``leaky_relu``) are not differentiable at
z = 0: if some z of some example lies within about h of 0, the central
difference straddles two slopes and the parameters feeding that z show a large
error although backpropagation is right.  With h ~ 6e-6 (float64) and data
drawn from a continuous distribution this is rare; with h ~ 5e-3 (float32) it
is common (about half of small random relu networks trip it).  Check such
networks in float64, and check again with other data before suspecting the
gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._base import BaseNetwork, ResultOverflowError
from ._checks import check_int, check_real

#: Largest relative error accepted, by dtype.  Above the floor, a correct
#: gradient's error is truncation, ~h^2 |C'''| / (6 |g|), plus rounding,
#: ~K u |C| / (h |g|) for cost values good to K ulps: at the default step about
#: K u^(2/3) |C| / |g|, which with K ~ 10 and |C| / |g| ~ 10 is 4e-9 in float64
#: and 2e-3 in float32 (where the backpropagated gradient is itself only good to
#: ~L n u for L layers of width n).  Observed on small random networks with
#: smooth activations: <= 1e-8 and <= 3e-4.  The tolerances leave a margin of 30
#: to 100 over that and stay below what a real mistake produces (a missing
#: factor, a wrong sign, a transposed W: relative errors of 1e-2 to 1).
TOLERANCES = {"float64": 1e-6, "float32": 1e-2}

#: Bound on the absolute rounding error of one cost value, in ulps of
#: max(1, |C|): the cost passes through a few hundred roundings at most in the
#: networks one gradient-checks (the same bound the test suite uses).
ROUNDING_ULPS = 100.0


@dataclass(frozen=True)
class GradientCheck:
    """Outcome of :func:`check_gradients`.

    Attributes
    ----------
    max_rel_error_per_layer : tuple of float
        For each layer l = 1..L, the largest relative error
        ``|g - fd| / max(|g|, |fd|, floor)`` over the checked weights and
        biases of that layer (``inf`` if a value was NaN or infinite).
    n_checked_per_layer : tuple of int
        How many parameters of each layer were checked.
    tolerance : float
        Largest relative error accepted (``TOLERANCES`` of the network's dtype).
    eps : float
        Relative step: parameter theta was moved by ``eps * max(1, |theta|)``.
    """

    max_rel_error_per_layer: tuple[float, ...]
    n_checked_per_layer: tuple[int, ...]
    tolerance: float
    eps: float

    @property
    def worst(self) -> float:
        """Largest relative error over all checked parameters."""
        return max(self.max_rel_error_per_layer)

    @property
    def ok(self) -> bool:
        """Whether every checked derivative is within ``tolerance``."""
        return self.worst <= self.tolerance

    @property
    def failed_layers(self) -> tuple[int, ...]:
        """The layers l (1-based) whose error exceeds ``tolerance``."""
        return tuple(l for l, err in enumerate(self.max_rel_error_per_layer, start=1)
                     if not err <= self.tolerance)

    def __str__(self) -> str:
        lines = ["layer  checked  max rel. error"]
        for l, (err, n) in enumerate(zip(self.max_rel_error_per_layer,
                                         self.n_checked_per_layer), start=1):
            flag = "" if err <= self.tolerance else "  FAIL"
            lines.append(f"{l:5d}  {n:7d}  {err:14.2e}{flag}")
        verdict = "ok" if self.ok else f"FAILED in layer(s) {list(self.failed_layers)}"
        lines.append(f"worst {self.worst:.2e}, tolerance {self.tolerance:.0e}, "
                     f"eps {self.eps:.2e}: {verdict}")
        return "\n".join(lines)


def check_gradients(network: BaseNetwork, X, Y, *, eps: float | None = None,
                    n_samples: int | None = None, seed: int | None = None) -> GradientCheck:
    """Compare ``network.backprop(X, Y)`` with central differences of ``network.cost(X, Y)``.

    Each checked parameter theta is set, in place in the network's live
    ``weights``/``biases``, to theta + h and theta - h in turn, with
    ``h = eps * max(1, |theta|)``, and then restored to its exact original
    value (also if the cost raises), so the network is bitwise unchanged
    afterwards.  The difference quotient divides by the span actually stored,
    (theta + h) - (theta - h) after rounding to the dtype.

    Parameters
    ----------
    network : bpcore.Network or bpcore.reference.Network
        The network whose gradient is checked, at its current parameters.
    X : array_like, shape (n_examples, sizes[0])
        Inputs.
    Y : array_like, shape (n_examples, sizes[-1]) or (n_examples,)
        Targets, or integer class labels (one-hot encoded), as for ``backprop``.
    eps : float, optional
        Relative step, > 0.  Default: the cube root of the dtype's machine
        epsilon (6.1e-6 in float64, 4.9e-3 in float32), the step that
        balances truncation and rounding error of a central difference.
    n_samples : int, optional
        Check this many randomly chosen parameters (weights and biases
        together) of each layer, or all of a layer's parameters if it has
        fewer.  Default: all parameters.  Costs two cost evaluations per
        checked parameter.
    seed : int, optional
        Seeds the choice of parameters when ``n_samples`` is given.

    Returns
    -------
    GradientCheck
        Per-layer maximum relative errors, the tolerance used and the verdict
        ``ok``; ``str()`` of it is a small table.

    Raises
    ------
    TypeError
        If ``network`` is not a bpcore network, or an argument has the wrong type.
    ValueError
        If an argument has a wrong value, X and Y do not fit the network, the
        cost is not finite, or ``eps`` is below the resolution of the dtype.

    Notes
    -----
    The relative error of a parameter is ``|g - fd| / max(|g|, |fd|, floor)``
    with ``floor = ROUNDING_ULPS * u * max(1, |C|) / (h * tolerance)``: the
    rounding error bound of the central difference divided by the tolerance,
    so that derivatives too small for the central difference to resolve are
    judged by the absolute error that rounding allows.  Kinks of
    ``relu``/``leaky_relu`` within h of some z give spurious failures; see the
    module documentation.

    Examples
    --------
    >>> import numpy as np
    >>> from bpcore import Network, check_gradients
    >>> net = Network([3, 5, 2], activations=["tanh", "softmax"], cost="log_likelihood", seed=0)
    >>> rng = np.random.default_rng(0)
    >>> X, labels = rng.normal(size=(10, 3)), rng.integers(0, 2, size=10)
    >>> result = check_gradients(net, X, labels)
    >>> result.ok, result.n_checked_per_layer
    (True, (20, 12))
    >>> check_gradients(net, X, labels, n_samples=4, seed=1).n_checked_per_layer
    (4, 4)
    """
    if not isinstance(network, BaseNetwork):
        raise TypeError("network must be a bpcore.Network or a bpcore.reference.Network, got "
                        f"{type(network).__name__}")
    machine_eps = float(np.finfo(network.dtype).eps)
    if eps is None:
        eps = machine_eps ** (1 / 3)
    else:
        eps = check_real("eps", eps)
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
    if n_samples is not None:
        n_samples = check_int("n_samples", n_samples, 1)
    if seed is not None:
        seed = check_int("seed", seed, 0)
    tolerance = TOLERANCES[network.dtype.name]

    cost = _cost(network, X, Y)  # also checks X and Y
    if not math.isfinite(cost):
        raise ValueError(f"the cost is {cost} at the network's current parameters; central "
                         "differences need a finite cost")
    nabla_b, nabla_w = network.backprop(X, Y)  # ValueError if a derivative overflows
    cost_noise = ROUNDING_ULPS * machine_eps * max(1.0, abs(cost))
    rng = np.random.default_rng(seed)
    errors, counts = [], []
    for w, b, grad_w, grad_b in zip(network.weights, network.biases, nabla_w, nabla_b):
        total = w.size + b.size
        if n_samples is None or n_samples >= total:
            chosen = np.arange(total)
        else:
            chosen = np.sort(rng.choice(total, size=n_samples, replace=False))
        layer_error = 0.0
        for i in chosen:
            if i < w.size:
                array, grad, idx = w, grad_w, np.unravel_index(i, w.shape)
            else:
                array, grad, idx = b, grad_b, (i - w.size,)
            fd, h = _central_difference(network, X, Y, array, idx, eps)
            g = float(grad[idx])
            floor = cost_noise / (h * tolerance)
            error = abs(g - fd) / max(abs(g), abs(fd), floor)
            layer_error = max(layer_error, error if math.isfinite(error) else math.inf)
        errors.append(layer_error)
        counts.append(len(chosen))
    return GradientCheck(tuple(errors), tuple(counts), tolerance, eps)


def _cost(network: BaseNetwork, X, Y) -> float:
    """``network.cost(X, Y)``, or inf where the cost overflows (which ``cost`` refuses)."""
    try:
        return network.cost(X, Y)
    except ResultOverflowError:
        return math.inf


def _central_difference(network: BaseNetwork, X, Y, array: np.ndarray, idx: tuple,
                        eps: float) -> tuple[float, float]:
    """(fd, h): the central difference of the cost in ``array[idx]``, and half its span."""
    original = array[idx]  # a scalar of the array's dtype, written back bitwise
    step = eps * max(1.0, abs(float(original)))
    try:
        array[idx] = original + step
        plus, c_plus = float(array[idx]), _cost(network, X, Y)
        array[idx] = original - step
        minus, c_minus = float(array[idx]), _cost(network, X, Y)
    finally:
        array[idx] = original
    if plus == minus:
        raise ValueError(f"eps={eps} is too small for {array.dtype}: theta +- eps * "
                         f"max(1, |theta|) rounds to theta = {float(original)!r}")
    return (c_plus - c_minus) / (plus - minus), (plus - minus) / 2


__all__ = ["GradientCheck", "check_gradients", "TOLERANCES", "ROUNDING_ULPS"]
