"""The exceptions bpcore raises for its own reasons (re-exported from ``bpcore``).

Wrong arguments raise the built-in ``TypeError`` and ``ValueError``; the classes
here are for what goes wrong while computing with arguments that were valid.
Each derives from the built-in exception or warning a caller would otherwise catch.
"""
from __future__ import annotations

__all__ = ["DivergenceError", "ResultOverflowError", "ConvergenceWarning"]


class DivergenceError(FloatingPointError):
    """Training produced NaN or infinite parameters (usually: the learning rate is too large).

    ``fit`` raises it after restoring the network to its state before the epoch
    that diverged.
    """


class ResultOverflowError(ValueError):
    """Finite inputs whose output, cost or gradient overflowed: too large for the network."""


class ConvergenceWarning(UserWarning):
    """``fit`` finished (or goes on) without learning from the inputs.

    Raised as a warning, never as an error: the network is trained as asked,
    and its parameters are finite (else :class:`DivergenceError` is raised).
    It names the likely cause (inputs on the wrong scale, dead or saturated
    units, a learning rate far off) and what to try.  Filter it as any
    warning, e.g. ``warnings.simplefilter("ignore", bpcore.ConvergenceWarning)``,
    or turn it into an error with ``"error"``.
    """

