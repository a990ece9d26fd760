"""What ``fit`` returns: :class:`History`, one entry per epoch in each list.

A history is plain data (lists of floats), so it can be written into a
checkpoint as JSON and read back exactly (:meth:`History.to_dict`,
:meth:`History.from_dict`); Python's ``json`` writes each float as the shortest
text that reads back to the same double.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ._notebook import HistoryMixin


@dataclass
class History(HistoryMixin):
    """Per-epoch record of a ``fit``: one entry per epoch in each list.

    ``train_cost`` is the mean cost of the training examples as they were met
    during the epoch (each computed just before its mini-batch's step; the
    weighted mean with sample or class weights), the running figure other
    libraries report; it excludes the L2 term.
    ``val_cost``/``val_accuracy`` are measured after the epoch, and stay empty
    without ``validation_data``.  ``seconds`` is the time spent training, the
    validation pass excluded.  ``lr`` is the learning rate of the epoch's steps
    (set by the ``schedule`` of ``fit``, else the optimizer's).  ``grad_norms``
    (with ``fit(record_grad_norms=True)``) holds, per epoch, one number per layer
    l = 1..L: the mean over the epoch's mini-batches of ||dC/db^l||, the speed at
    which layer l learns.

    A ``fit`` resumed from a checkpoint returns the history of the whole run,
    the epochs before the interruption included.
    """

    train_cost: list[float] = field(default_factory=list)
    val_cost: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norms: list[list[float]] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """Epochs recorded."""
        return len(self.train_cost)

    def _keep(self, epochs: int) -> None:
        """Drop every entry after the first ``epochs`` (an epoch recorded in part)."""
        for f in fields(self):
            del getattr(self, f.name)[epochs:]

    def to_dict(self) -> dict[str, list]:
        """The lists by name: JSON-serialisable, read back by :meth:`from_dict`."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data) -> "History":
        """A history from :meth:`to_dict`'s output; ``ValueError`` for anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"a history must be a dict of lists, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"a history has no list(s) {unknown}; it has {sorted(names)}")
        for name, values in data.items():
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                raise ValueError(f"history list {name!r} must be a list of numbers")
        return cls(**{name: list(values) for name, values in data.items()})


def _is_number(value) -> bool:
    """A real number, or a list of them (a per-layer record of one epoch)."""
    if isinstance(value, list):
        return all(_is_number(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["History"]
