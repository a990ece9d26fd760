"""What a notebook user reaches for: a History as a DataFrame, its plot, and a
progress report that is a widget in Jupyter and plain lines in a log.

pandas and matplotlib are optional; each is imported when asked for, with an
error naming the package to install.
"""
from __future__ import annotations

import sys


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


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell run by ``IPKernelApp``)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class EpochProgress:
    """A progress report of ``fit``'s epochs that suits where it runs.

    In a Jupyter notebook, tqdm's notebook widget (``tqdm.notebook``, which needs
    ipywidgets); on a terminal, tqdm's text bar; anywhere else (a log file, a
    pipe, a notebook without ipywidgets) one plain line per epoch, since a bar
    redrawn with carriage returns is unreadable there.  Its unit is epochs: an
    epoch runs as one call into the compiled core.  Call it as
    ``fit(callback=...)`` would be called, ``progress(epoch, history)``, then
    ``close()``.
    """

    def __init__(self, epochs: int, n_examples: int, file=None):
        self.epochs, self.n_examples = epochs, n_examples
        self.file = sys.stderr if file is None else file
        self.bar = None
        self.kind = "lines"
        if in_notebook():
            try:
                from tqdm.notebook import tqdm as notebook_tqdm

                self.bar = notebook_tqdm(total=epochs, unit="epoch", desc="training")
                self.kind = "notebook"
            except ImportError:  # no ipywidgets: tqdm.notebook cannot draw its widget
                pass
        elif getattr(self.file, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, unit="epoch", desc="training", file=self.file,
                            dynamic_ncols=True)
            self.kind = "terminal"

    def __call__(self, epoch: int, history) -> None:
        if self.bar is None:
            from ._base import BaseNetwork

            print(BaseNetwork._epoch_line(history, epoch, self.epochs, self.n_examples),
                  file=self.file, flush=True)
            return
        postfix = f"train cost {history.train_cost[-1]:.4f}"
        if history.val_accuracy:
            postfix += f", accuracy {history.val_accuracy[-1]:.4f}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
