"""What a notebook user reaches for: a History as a DataFrame, and its plot.

``HistoryMixin`` gives :class:`bpcore.History` its ``to_dataframe`` and ``plot``
methods.  pandas and matplotlib are optional; each is imported when asked for,
with an error naming the package to install.  (The progress bar of
``fit(progress=True)`` is ``tqdm.auto``'s: a widget in Jupyter, text elsewhere.)
"""
from __future__ import annotations

from dataclasses import fields


class HistoryMixin:
    """``to_dataframe`` and ``plot`` of :class:`bpcore.History`."""

    def to_dataframe(self):
        """The history as a ``pandas.DataFrame``, one row per epoch (needs pandas).

        Columns: ``epoch`` (the index, from 1), ``train_cost``, ``val_cost`` and
        ``val_accuracy`` when there was validation data, ``seconds``, ``lr``, and
        ``grad_norm_1`` .. ``grad_norm_L`` when ``fit(record_grad_norms=True)``
        recorded the speed of learning.
        """
        return history_dataframe(self)

    def plot(self, path=None, **kwargs):
        """Draw the history: :func:`bpcore.plot.plot_history` (needs matplotlib).

        Cost and accuracy per epoch, and the speed of learning of each layer when
        it was recorded.  Returns the matplotlib ``Figure``; with ``path`` it is
        also written there.
        """
        return plot_history(self, path, **kwargs)


def history_dataframe(history):
    """``pandas.DataFrame`` of a :class:`bpcore.History`, one row per epoch (see ``to_dataframe``)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("History.to_dataframe needs pandas: pip install pandas "
                          f"(importing it failed: {exc})") from None
    n = history.epochs
    columns = {}
    for f in fields(history):
        values = list(getattr(history, f.name))
        if not values and f.name != "train_cost":  # e.g. no validation data
            continue
        if values and isinstance(values[0], (list, tuple)):  # one number per layer
            name = f.name[:-1] if f.name.endswith("s") else f.name  # grad_norms: grad_norm_l
            for l in range(len(values[0])):
                columns[f"{name}_{l + 1}"] = [epoch[l] for epoch in values]
        else:
            columns[f.name] = values
    # an interrupted fit may leave a list an epoch short: its column ends in NaN
    frame = pd.DataFrame({name: values[:n] + [float("nan")] * (n - len(values))
                          for name, values in columns.items()},
                         index=pd.RangeIndex(1, n + 1, name="epoch"))
    return frame


def plot_history(history, path=None, **kwargs):
    """:func:`bpcore.plot.plot_history` of ``history`` (needs matplotlib)."""
    try:
        from . import plot
    except ImportError as exc:
        raise ImportError(f'History.plot needs matplotlib: pip install ".[plot]" (in the bpcore source tree) '
                          f"({exc.__cause__ or exc})") from None
    return plot.plot_history(history, path, **kwargs)

