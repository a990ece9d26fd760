"""Optimizers: the update rule a network's ``fit`` applies after each mini-batch.

``SGD``, ``Adam`` and ``AdamW`` follow the algorithms documented for
``torch.optim`` (dampening 0; Nesterov as PyTorch writes it; Adam with bias
correction and eps added to sqrt(v_hat); AdamW's decoupled decay), with one
difference: weight decay applies to the weights, not the biases (as ``l2`` and
network2.py).  g is the mean gradient of the mini-batch's cost::

    SGD     d = g + wd p;  b <- momentum b + d;  d <- d + momentum b (nesterov) or b;
            p <- p - lr d
    Adam    g <- g + wd p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
            p <- p - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    AdamW   p <- (1 - lr wd) p, then Adam's step without the g + wd p term

An optimizer owns its state (SGD's momentum buffer; Adam's m, v and step count
t).  The state is created, zero, at the first ``fit`` it is given and bound to
that network's number of parameters; passing the same object to the next
``fit`` continues exactly where the last one stopped (bitwise as one longer
call), and a new object starts fresh.  ``lr`` may be changed between calls (a
schedule does that between epochs).  ``state_dict`` / ``load_state_dict``
save and restore everything (plain arrays and numbers: ``np.savez`` stores them
without pickle).

The rules are computed in the compiled kernels (``bpcore/_optim.h`` in the
source tree), fused into the gradient's last pass over the weights; the
reference network (:mod:`bpcore.reference`) applies the same rules in plain
NumPy (:data:`bpcore.reference.UPDATE_RULES`).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_bool, check_real
from ._dispatch import kernels as _kernels

#: Kernel rule codes by the names used in state dicts and the reference.
RULES = {"sgd": int(_kernels.Rule.SGD), "sgd_velocity": int(_kernels.Rule.SGD_VELOCITY),
         "adam": int(_kernels.Rule.ADAM)}


class Optimizer:
    """Base of the optimizers: the learning rate, the state and its binding to a network.

    Subclasses set ``_rule`` (a key of :data:`RULES`), ``_HYPER`` (the names of
    their hyperparameters, attributes of the object) and ``_BUFFERS`` (the names
    of their state buffers, given the hyperparameters).
    """

    _rule: str
    _HYPER: tuple[str, ...] = ("lr",)

    def __init__(self, lr):
        self.lr = lr
        self._state = None   # (buffers, n) array once bound; None before
        self._n = None       # the bound parameter count
        self._dtype = None
        self._t = 0          # steps taken

    # -- hyperparameters -----------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate eta; may be set between ``fit`` calls or epochs."""
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = check_real("lr", value, minimum=0.0)

    @property
    def steps(self) -> int:
        """Optimizer steps taken so far (t): one per mini-batch."""
        return self._t

    def _buffer_names(self) -> tuple[str, ...]:
        return ()

    def _hyper_values(self) -> dict:
        """Keyword arguments of the kernels' ``Hyper`` besides rule, lr and t."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._HYPER)
        return f"{type(self).__name__}({args})"

    # -- state ---------------------------------------------------------------------
    def _hyper(self, kernels):
        """The view of this optimizer by ``kernels`` (a kernels module; a fresh object
        per call, since ``lr`` may have changed)."""
        return kernels.Hyper(RULES[self._rule], self._lr, t=self._t, **self._hyper_values())

    def _bind(self, n: int, dtype, allocate) -> np.ndarray:
        """The state buffers for a network of n parameters of ``dtype``, created zero
        by ``allocate(shape, dtype)`` at the first use; a later network of another
        size or dtype is refused."""
        dtype = np.dtype(dtype)
        if self._n is None:
            self._state = allocate((len(self._buffer_names()), n), dtype)
            self._n, self._dtype = n, dtype
        elif (self._n, self._dtype) != (n, dtype):
            raise ValueError(
                f"this {type(self).__name__} holds the state of a network of {self._n} "
                f"{self._dtype.name} parameters; it cannot train one of {n} {dtype.name} "
                "parameters (use a new optimizer for another network)")
        return self._state

    def _arrays(self) -> list[np.ndarray]:
        """The mutable state arrays (for ``fit`` to snapshot and restore)."""
        return [] if self._state is None else [self._state]

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: rule, hyperparameters, step count, buffers.

        Values are str, float, int or ndarray (copies), so that
        ``np.savez(path, **opt.state_dict())`` stores it without pickle.
        """
        out = {"rule": self._rule, "steps": int(self._t),
               "n_params": -1 if self._n is None else int(self._n),
               "dtype": "" if self._dtype is None else self._dtype.name}
        for name in self._HYPER:
            value = getattr(self, name)
            if isinstance(value, tuple):  # betas
                for i, v in enumerate(value):
                    out[f"{name}_{i}"] = float(v)
            else:
                out[name] = value
        if self._state is not None:
            for name, row in zip(self._buffer_names(), self._state):
                out[name] = row.copy()
        return out

    def load_state_dict(self, state) -> None:
        """Restore a ``state_dict`` of the same rule (or what ``np.load`` gives back).

        Raises ``ValueError`` for a state of another rule, or with buffers of a
        size other than the network this optimizer is bound to (if it is bound).
        """
        try:
            get = {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v)
                   for k, v in dict(state).items()}
        except (TypeError, ValueError):
            raise TypeError(f"state must be a mapping from state_dict(), got "
                            f"{type(state).__name__}") from None
        name = type(self).__name__
        if get.get("rule") != self._rule:
            raise ValueError(f"state is the state of rule {get.get('rule')!r}; this {name} "
                             f"needs rule {self._rule!r}")
        hyper = {}
        for key in self._HYPER:
            if key == "betas":
                missing = [k for k in ("betas_0", "betas_1") if k not in get]
                value = None if missing else (get["betas_0"], get["betas_1"])
            else:
                missing = [] if key in get else [key]
                value = get.get(key)
            if missing:
                raise ValueError(f"state lacks {missing} for a {name}")
            hyper[key] = value
        n, dtype = int(get.get("n_params", -1)), str(get.get("dtype", ""))
        buffers = self._buffer_names_for(hyper)
        arrays = []
        if n >= 0:
            if self._n is not None and (self._n, self._dtype.name) != (n, dtype):
                raise ValueError(
                    f"state belongs to a network of {n} {dtype} parameters; this {name} is "
                    f"bound to one of {self._n} {self._dtype.name} parameters")
            for key in buffers:
                value = np.asarray(get.get(key))
                if value.shape != (n,) or value.dtype.name != dtype:
                    raise ValueError(f"state[{key!r}] must be a {dtype} array of shape ({n},), "
                                     f"got {value.dtype.name} shape {value.shape}")
                if not np.isfinite(value).all():
                    raise ValueError(f"state[{key!r}] contains NaN or infinite values")
                arrays.append(value)
        steps = get.get("steps")
        if isinstance(steps, float) and steps.is_integer():
            steps = int(steps)
        if not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"state['steps'] must be an integer >= 0, got {steps!r}")
        # all checked: now change the object
        self._set_hyper(hyper)
        self._t = int(steps)
        if n >= 0:
            if self._n is None:
                from .network import _aligned
                self._state = _aligned((len(buffers), n), dtype)
                self._n, self._dtype = n, np.dtype(dtype)
            for row, value in zip(self._state, arrays):
                row[...] = value
        else:
            self._state, self._n, self._dtype = None, None, None

    def _buffer_names_for(self, hyper: dict) -> tuple[str, ...]:
        return self._buffer_names()

    def _set_hyper(self, hyper: dict) -> None:
        for key, value in hyper.items():
            setattr(self, key, value)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    Parameters
    ----------
    lr : float
        Learning rate eta >= 0.
    momentum : float
        mu in [0, 1); 0 is plain SGD (no state).
    nesterov : bool
        Nesterov momentum (needs momentum > 0).
    weight_decay : float
        L2 coefficient >= 0, added to the weights' gradient: g + weight_decay * w
        (biases get none).  ``fit(lr=, l2=)``'s l2 is weight_decay = l2 / n.

    Notes
    -----
    With b the momentum buffer (zero at the start) and g the mean gradient::

        d = g + weight_decay * w;  b <- momentum * b + d
        w <- w - lr * (d + momentum * b)   (nesterov)  or  w - lr * b

    ``fit(X, Y, epochs, batch_size, lr, momentum=, l2=)`` uses the equivalent
    velocity form of network2.py and scikit-learn, v <- mu v - lr (g + (l2/n) w),
    w <- w + v (the same steps for a constant lr; that form keeps its arithmetic
    bit for bit).

    Examples
    --------
    >>> from bpcore import Network
    >>> from bpcore.optim import SGD
    >>> import numpy as np
    >>> X, y = np.random.default_rng(0).random((40, 3)), np.arange(40) % 2
    >>> opt = SGD(0.1, momentum=0.9, nesterov=True)
    >>> history = Network([3, 4, 2], seed=0).fit(X, y, 2, 8, optimizer=opt)
    >>> opt.steps
    10
    """

    _rule = "sgd"
    _HYPER = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self._set_hyper({"momentum": momentum, "nesterov": nesterov,
                         "weight_decay": weight_decay})

    def _set_hyper(self, hyper: dict) -> None:
        lr = hyper.get("lr", self._lr)
        momentum = check_real("momentum", hyper.get("momentum", self.momentum), minimum=0.0,
                              below=1.0)
        nesterov = check_bool("nesterov", hyper.get("nesterov", self.nesterov))
        weight_decay = check_real("weight_decay", hyper.get("weight_decay", self.weight_decay),
                                  minimum=0.0)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
        if self._n is not None and (momentum == 0) != (self.momentum == 0):
            raise ValueError(f"momentum={momentum} changes the state this SGD holds (momentum "
                             f"{self.momentum}); use a new optimizer")
        self.lr, self._momentum, self._nesterov = lr, momentum, nesterov
        self._weight_decay = weight_decay

    momentum = property(lambda self: self.__dict__.get("_momentum", 0.0),
                        doc="mu, the momentum coefficient.")
    nesterov = property(lambda self: self.__dict__.get("_nesterov", False),
                        doc="Whether the momentum is Nesterov's.")
    weight_decay = property(lambda self: self.__dict__.get("_weight_decay", 0.0),
                            doc="The L2 coefficient added to the weights' gradient.")

    def _buffer_names(self):
        return self._buffer_names_for({"momentum": self.momentum})

    def _buffer_names_for(self, hyper):
        return ("momentum_buffer",) if hyper["momentum"] != 0 else ()

    def _hyper_values(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class _VelocitySGD(SGD):
    """SGD in the velocity form (network2.py, scikit-learn): the buffer holds the step.

    v <- mu v - lr (g + weight_decay w); w <- w + v (Nesterov: w <- w + mu v - lr (g +
    weight_decay w)).  What ``fit(lr=, momentum=, l2=)`` runs, with
    weight_decay = l2 / n, fresh in every call.
    """

    _rule = "sgd_velocity"

    def _buffer_names_for(self, hyper):
        return ("velocity",) if hyper["momentum"] != 0 else ()


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``, with L2 weight decay on the weights.

    Parameters
    ----------
    lr : float
        Learning rate eta >= 0.
    betas : (float, float)
        Decay rates (b1, b2) of the first and second moment estimates, each in [0, 1).
    eps : float
        Added to sqrt(v_hat) in the denominator, > 0.
    weight_decay : float
        L2 coefficient >= 0: g <- g + weight_decay * w before the moments (biases get
        none).  For decoupled decay use :class:`AdamW`.

    Notes
    -----
    With m, v zero at the start and t the step count (1 at the first step)::

        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    _rule = "adam"
    _HYPER = ("lr", "betas", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self._set_hyper({"betas": betas, "eps": eps, "weight_decay": weight_decay})

    def _set_hyper(self, hyper: dict) -> None:
        lr = hyper.get("lr", self._lr)
        betas = hyper.get("betas", self.betas)
        if (isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__")
                or len(betas) != 2):
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        betas = (check_real("betas[0]", betas[0], minimum=0.0, below=1.0),
                 check_real("betas[1]", betas[1], minimum=0.0, below=1.0))
        eps = check_real("eps", hyper.get("eps", self.eps), minimum=0.0)
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        weight_decay = check_real("weight_decay", hyper.get("weight_decay", self.weight_decay),
                                  minimum=0.0)
        self.lr, self._betas, self._eps, self._weight_decay = lr, betas, eps, weight_decay

    betas = property(lambda self: self.__dict__.get("_betas", (0.9, 0.999)),
                     doc="(b1, b2), the moments' decay rates.")
    eps = property(lambda self: self.__dict__.get("_eps", 1e-8),
                   doc="The term added to sqrt(v_hat).")
    weight_decay = property(lambda self: self.__dict__.get("_weight_decay", 0.0),
                            doc="The weight decay coefficient (weights only).")

    def _buffer_names(self):
        return ("exp_avg", "exp_avg_sq")

    def _hyper_values(self):
        return {"beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps,
                "weight_decay": self.weight_decay, "decoupled": self._decoupled}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    Each step first shrinks the weights, w <- (1 - lr * weight_decay) w (biases
    are not decayed), then takes Adam's step without an L2 term.  Parameters as
    :class:`Adam`; ``weight_decay`` defaults to 0.01.
    """

    _rule = "adam"
    _decoupled = True

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(lr, betas, eps, weight_decay)

    def state_dict(self) -> dict:
        out = super().state_dict()
        out["rule"] = "adamw"
        return out

    def load_state_dict(self, state) -> None:
        state = dict(state)
        rule = state.get("rule")
        rule = rule.item() if isinstance(rule, np.ndarray) else rule
        if rule != "adamw":
            raise ValueError(f"state is the state of rule {rule!r}; this AdamW needs rule "
                             "'adamw'")
        state["rule"] = "adam"
        super().load_state_dict(state)


def for_fit(lr, optimizer, momentum: float, l2: float, n: int) -> Optimizer:
    """The optimizer of a ``fit`` call: ``optimizer`` itself, or for ``lr=`` (with
    ``momentum``, ``l2`` already checked) a fresh SGD in the velocity form with
    weight decay l2 / n, whose steps are bitwise those of bpcore before optimizers."""
    if optimizer is None:
        if lr is None:
            raise TypeError("fit needs a learning rate lr (plain SGD) or an optimizer=, got "
                            "neither")
        return _VelocitySGD(lr, momentum, weight_decay=l2 / n)
    if lr is not None:
        raise TypeError(f"fit takes lr or optimizer, not both (got lr={lr!r} and "
                        f"optimizer={optimizer!r}); set the optimizer's lr instead")
    if momentum != 0 or l2 != 0:
        raise ValueError(f"momentum and l2 go with lr=; with optimizer={optimizer!r} give it "
                         f"momentum or weight_decay instead (got momentum={momentum}, l2={l2})")
    if not isinstance(optimizer, Optimizer):
        raise TypeError("optimizer must be a bpcore.optim optimizer (SGD, Adam, AdamW), got "
                        f"{type(optimizer).__name__}")
    return optimizer


__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
