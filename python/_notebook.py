"""What a notebook user reaches for: a History as a DataFrame, and its plot.

pandas and matplotlib are optional; each is imported when asked for, with an
error naming the package to install.
"""
from __future__ import annotations


def history_dataframe(history):
    """``pandas.DataFrame`` of a :class:`bpcore.History`, one row per epoch (see ``to_dataframe``)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("History.to_dataframe needs pandas: pip install pandas "
                          f"(importing it failed: {exc})") from None
    n = history.epochs
    columns = {"train_cost": history.train_cost}
    # an interrupted fit may leave a list one epoch short; every column is cut to n rows
    if history.val_cost:
        columns["val_cost"] = history.val_cost
        columns["val_accuracy"] = history.val_accuracy
    columns["seconds"] = history.seconds
    norms = getattr(history, "grad_norms", None) or []
    if norms:
        for l in range(len(norms[0])):
            columns[f"grad_norm_{l + 1}"] = [epoch[l] for epoch in norms]
    frame = pd.DataFrame({name: list(values)[:n] + [float("nan")] * (n - len(values))
                          for name, values in columns.items()},
                         index=pd.RangeIndex(1, n + 1, name="epoch"))
    return frame


def plot_history(history, path=None, **kwargs):
    """:func:`bpcore.plot.plot_history` of ``history`` (needs matplotlib)."""
    try:
        from . import plot
    except ImportError as exc:
        raise ImportError(f'History.plot needs matplotlib: pip install "bpcore[plot]" '
                          f"({exc.__cause__ or exc})") from None
    return plot.plot_history(history, path, **kwargs)
