"""The chain rule of one weight: the factors whose product is dC_x/dw^l_jk.

In the seeds' notation (3Blue1Brown's lesson, Nielsen's chapter 2), for one
example x with cost C_x:

    dC_x/dw^l_jk = dz^l_j/dw^l_jk * da^l_j/dz^l_j * dC_x/da^l_j
                 = a^(l-1)_k      * sigma'(z^l_j) * dC_x/da^l_j

where, in the output layer L, dC_x/da^L_j comes from the cost (a^L_j - y_j for
``quadratic``, 2 (a^L_j - y_j) for ``squared_error``), and in a layer l < L it
is what the layer above sends back,

    dC_x/da^l_j = sum_i w^(l+1)_ij delta^(l+1)_i,   delta^l_j = sigma'(z^l_j) dC_x/da^l_j.

The fused outputs are not split into three: sigmoid + ``cross_entropy`` and
softmax + ``log_likelihood`` have delta^L_j = a^L_j - y_j, the form bpcore (and
every careful implementation) computes.  For sigmoid + cross-entropy the split
exists, sigma'(z) = a (1 - a) times dC/da = (a - y) / (a (1 - a)), but its two
factors overflow and lose all precision where a rounds to 0 or 1, which is
where a saturated network lives; for softmax it does not exist at all, since
a^L_j depends on every z^L_i: delta^L_j = sum_i dC/da^L_i da^L_i/dz^L_j, not one
product.  So the output layer of a fused pair has two factors, a^(L-1)_k and
delta^L_j = a^L_j - y_j, and the text says why.

Everything is computed in float64 from the network's parameters with the
reference's sigma and sigma' (``bpcore.reference``), one example at a time,
so ``gradient`` agrees with ``backprop`` of that single example to the rounding
of the network's dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: dC_x/da^L by cost, for the costs whose delta^L is dC_x/da^L (.) sigma'(z^L).
#: (``reference.output_error`` is this times sigma'; tests/test_explain.py ties them.)
COST_DERIVATIVE = {
    "quadratic": lambda a, y: a - y,
    "squared_error": lambda a, y: 2 * (a - y),
}

#: How dC_x/da^L_j reads for each cost in the text.
_COST_TEXT = {"quadratic": "(a{L}_{j} - y_{j})", "squared_error": "2 (a{L}_{j} - y_{j})"}

#: At most this many terms of the sum over the next layer are written out.
_SHOWN_TERMS = 6


def _up(l) -> str:
    """The superscript of layer l as the text writes it: a^2, a^(l-1)."""
    return f"^{l}"


def _num(value: float) -> str:
    return f"{value:.6g}"


@dataclass(frozen=True)
class Explanation:
    """The chain-rule factors of dC_x/dw^layer_jk for one example.

    Attributes
    ----------
    layer, j, k : int
        The weight w^layer_jk, ``net.weights[layer - 1][j, k]``.
    factors : tuple of float
        Numbers whose product is ``gradient``: (a^(l-1)_k, sigma'(z^l_j),
        dC_x/da^l_j), or (a^(L-1)_k, delta^L_j) in the output layer of a fused
        pair (sigmoid + cross_entropy, softmax + log_likelihood).
    symbols : tuple of str
        The name of each factor, in the same order.
    gradient : float
        dC_x/dw^layer_jk, equal to ``net.backprop(x, y)[1][layer - 1][j, k]``.
    delta : float
        delta^layer_j = dC_x/dz^layer_j (= dC_x/db^layer_j).
    next_weights, next_deltas : ndarray or None
        For layer < L: w^(l+1)_ij and delta^(l+1)_i over i, whose products sum
        to dC_x/da^l_j.  None in the output layer.
    """

    layer: int
    j: int
    k: int
    n_layers: int
    activation: str
    cost: str
    fused: bool
    factors: tuple
    symbols: tuple
    gradient: float
    delta: float
    a_out: float = math.nan          # a^L_j (output layer only)
    y: float = math.nan              # y_j (output layer only)
    next_weights: np.ndarray | None = field(default=None, repr=False)
    next_deltas: np.ndarray | None = field(default=None, repr=False)

    def __str__(self) -> str:
        l, j, k, L = self.layer, self.j, self.k, self.n_layers
        where = "output" if l == L else "hidden"
        head = (f"dC_x/dw{_up(l)}_{j},{k} for one example x: layer {l} of {L} ({where}, "
                f"{self.activation}), {self.cost} cost")
        values = " * ".join(_num(v) for v in self.factors)
        lines = [head]
        if l == L and self.fused:
            pair = ("sigmoid + cross-entropy" if self.cost == "cross_entropy"
                    else "softmax + log-likelihood")
            lines += [
                f"  = dz{_up(l)}_{j}/dw{_up(l)}_{j},{k} * dC_x/dz{_up(l)}_{j}",
                f"  = a{_up(l - 1)}_{k} * delta{_up(l)}_{j},   delta{_up(l)}_{j} = "
                f"a{_up(l)}_{j} - y_{j} = {_num(self.a_out)} - {_num(self.y)}",
                f"  = {values}",
                f"  = {_num(self.gradient)}",
                f"  ({pair}: " + (
                    f"sigma'(z{_up(l)}_{j}) = a(1 - a) and dC_x/da{_up(l)}_{j} = "
                    "(a - y)/(a(1 - a)) cancel into a - y; they are not formed, since where "
                    "a rounds to 0 or 1 one is 0 and the other infinite)"
                    if self.cost == "cross_entropy" else
                    f"a{_up(l)}_{j} depends on every z{_up(l)}_i, so dC_x/dz{_up(l)}_{j} = "
                    f"sum_i dC_x/da{_up(l)}_i da{_up(l)}_i/dz{_up(l)}_{j}, which is a - y for "
                    "targets that sum to 1; there is no single sigma' factor)")]
            return "\n".join(lines)
        lines.append(f"  = dz{_up(l)}_{j}/dw{_up(l)}_{j},{k} * da{_up(l)}_{j}/dz{_up(l)}_{j} * "
                     f"dC_x/da{_up(l)}_{j}")
        if l == L:
            dc = _COST_TEXT[self.cost].format(L=_up(L), j=j)
            lines += [f"  = a{_up(l - 1)}_{k} * sigma'(z{_up(l)}_{j}) * {dc}",
                      f"    with a{_up(L)}_{j} = {_num(self.a_out)}, y_{j} = {_num(self.y)}"]
        else:
            terms = [f"({_num(w)})({_num(d)})" for w, d in
                     zip(self.next_weights[:_SHOWN_TERMS], self.next_deltas[:_SHOWN_TERMS])]
            more = len(self.next_weights) - _SHOWN_TERMS
            if more > 0:
                terms.append(f"... ({more} more)")
            lines += [f"  = a{_up(l - 1)}_{k} * sigma'(z{_up(l)}_{j}) * "
                      f"sum_i w{_up(l + 1)}_i,{j} delta{_up(l + 1)}_i",
                      f"    with sum_i w{_up(l + 1)}_i,{j} delta{_up(l + 1)}_i = "
                      + " + ".join(terms) + f" = {_num(self.factors[2])}"]
        lines += [f"  = {values}", f"  = {_num(self.gradient)}",
                  f"  (delta{_up(l)}_{j} = sigma'(z{_up(l)}_{j}) * dC_x/da{_up(l)}_{j} = "
                  f"{_num(self.delta)})"]
        return "\n".join(lines)


def explain(net, x, y, layer, j, k) -> Explanation:
    """The :class:`Explanation` of dC_x/dw^layer_jk (see :meth:`bpcore.Network.explain`)."""
    from .reference import SIGMA, SIGMA_PRIME, output_error
    from ._checks import check_int

    L = net.n_layers
    layer = check_int("layer", layer, 1, L)
    j = check_int("j", j, 0, net.sizes[layer] - 1)
    k = check_int("k", k, 0, net.sizes[layer - 1] - 1)
    X, Y = net._inputs_and_targets(x, y, names=("x", "y"))
    if X.shape[0] != 1:
        raise ValueError(f"x must be one example ({net.sizes[0]} values), got {X.shape[0]} rows")
    weights = [np.asarray(w, dtype=np.float64) for w in net.weights]
    biases = [np.asarray(b, dtype=np.float64) for b in net.biases]
    acts = net.activations
    a_list, z_list = [X[0].astype(np.float64)], [None]
    with np.errstate(all="ignore"):  # non-finite results are refused below
        for w, b, act in zip(weights, biases, acts):
            z_list.append(w @ a_list[-1] + b)               # z^l = W^l a^(l-1) + b^l
            a_list.append(SIGMA[act](z_list[-1]))             # a^l = sigma(z^l)
        target = Y[0].astype(np.float64)
        deltas = [None] * (L + 1)
        deltas[L] = output_error(net.cost_name, acts[-1], z_list[L], a_list[L], target)
        for l in range(L - 1, layer - 1, -1):
            deltas[l] = (weights[l].T @ deltas[l + 1]) * SIGMA_PRIME[acts[l - 1]](z_list[l])
    a_in = float(a_list[layer - 1][k])
    fused = net.cost_name not in COST_DERIVATIVE
    common = dict(layer=layer, j=j, k=k, n_layers=L, activation=acts[layer - 1],
                  cost=net.cost_name, fused=fused, delta=float(deltas[layer][j]))
    if layer == L:
        output = dict(a_out=float(a_list[L][j]), y=float(target[j]))
        if fused:
            explanation = Explanation(
                factors=(a_in, float(deltas[L][j])),
                symbols=(f"a^{L - 1}_{k}", f"delta^{L}_{j} = a^{L}_{j} - y_{j}"),
                gradient=a_in * float(deltas[L][j]), **common, **output)
        else:
            sigma_prime = float(SIGMA_PRIME[acts[-1]](z_list[L][j:j + 1])[0])
            dc_da = float(COST_DERIVATIVE[net.cost_name](a_list[L][j], target[j]))
            explanation = Explanation(
                factors=(a_in, sigma_prime, dc_da),
                symbols=(f"a^{L - 1}_{k}", f"sigma'(z^{L}_{j})", f"dC_x/da^{L}_{j}"),
                gradient=a_in * sigma_prime * dc_da, **common, **output)
    else:
        next_w, next_d = weights[layer][:, j], deltas[layer + 1]
        sigma_prime = float(SIGMA_PRIME[acts[layer - 1]](z_list[layer][j:j + 1])[0])
        dc_da = float(next_w @ next_d)
        explanation = Explanation(
            factors=(a_in, sigma_prime, dc_da),
            symbols=(f"a^{layer - 1}_{k}", f"sigma'(z^{layer}_{j})",
                     f"dC_x/da^{layer}_{j} = sum_i w^{layer + 1}_i,{j} delta^{layer + 1}_i"),
            gradient=a_in * sigma_prime * dc_da, next_weights=next_w.copy(),
            next_deltas=next_d.copy(), **common)
    if not all(math.isfinite(v) for v in explanation.factors + (explanation.gradient,)):
        raise net._overflow("a chain-rule factor", "x and y")
    return explanation
