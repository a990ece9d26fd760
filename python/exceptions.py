"""bpcore's public warning and exception classes."""
from __future__ import annotations

__all__ = ["ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """``fit`` finished (or goes on) without learning from the inputs.

    Raised as a warning, never as an error: the network is trained as asked,
    and its parameters are finite (else :class:`DivergenceError` is raised).
    It names the likely cause (inputs on the wrong scale, dead or saturated
    units, a learning rate far off) and what to try.  Filter it as any
    warning, e.g. ``warnings.simplefilter("ignore", bpcore.ConvergenceWarning)``,
    or turn it into an error with ``"error"``.
    """
